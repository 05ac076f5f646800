//! The example workflows (examples/workflows/*.yaml) run on a node configured by the
//! repository's config.toml, with its example process agents (examples/agents/echo.py
//! and wordcount.py). Each runs with the input its header comment shows
//! (`mark1 runs start NAME --input '…'`), an approval is decided as the header shows
//! (`mark1 runs approve RUN_ID STEP --comment "…"`), and each run's end is checked: so
//! the examples work, and the commands in their headers say what they do. The config's
//! Ollama provider is pointed at the scripted model server, which answers the `plan`
//! example's model call with a plan.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mark1::config::ConfigLoader;
use mark1::models::scripted::{Answer, ScriptedServer};
use mark1::workflows::{RunChange, RunState, RunView, StartRun, StepState};
use mark1::{Node, NodeHandle};
use mark1_actors::domain::workflow::source::parse;
use serde_json::{json, Value};

use crate::support::{agents_ready, eventually, start_run, stop, unique};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A node on the repository's config.toml, its data in `dir`, its Ollama `models`.
async fn node(dir: &Path, models: &ScriptedServer) -> NodeHandle {
    let config = ConfigLoader::new()
        .file(root().join("config.toml"))
        .env(Vec::<(String, String)>::new())
        .set("node.name", unique("examples"))
        .set("node.data_dir", dir.to_str().unwrap())
        .set("models.providers.ollama.base_url", models.ollama_url().as_str())
        .load()
        .expect("the repository's config.toml loads");
    let handle = Node::builder().config(config).build().await.unwrap().start().await.unwrap();
    agents_ready(&handle, 2).await;
    eventually(Duration::from_secs(10), "the router discovered llama3.1", || async {
        handle.models().models().await.is_ok_and(|m| m.iter().any(|m| m.info.id == "llama3.1"))
    })
    .await;
    handle
}

/// The plan the model answers the `plan` example with: count by capability, then echo.
const COUNT_PLAN: &str = r#"{"steps": [
    {"id": "stats", "capability": "text.stats", "input": {"text": "{{ input.text }}"}},
    {"id": "summary", "capability": "text.echo", "depends_on": ["stats"],
     "input": {"words": "{{ steps.stats.output.words }}"}}
]}"#;

/// An example's file name, its workflow's name, and what its header comment shows.
struct Example {
    file: String,
    name: String,
    /// The inputs of `mark1 runs start NAME --input '…'`, in order.
    inputs: Vec<Value>,
    /// `mark1 runs approve RUN_ID STEP --comment "…"`: the step and the comment.
    approve: Option<(String, String)>,
}

fn examples() -> Vec<Example> {
    let dir = root().join("examples/workflows");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files.iter().map(|path| example(path)).collect()
}

fn example(path: &Path) -> Example {
    let file = path.file_name().unwrap().to_string_lossy().to_string();
    let text = std::fs::read_to_string(path).unwrap();
    let name = parse(&text, Some(&file)).unwrap_or_else(|e| panic!("{file}: {e:?}")).def.name;
    let (mut inputs, mut approve) = (Vec::new(), None);
    for line in text.lines().take_while(|l| l.starts_with('#')) {
        if let Some(rest) = line.split_once("mark1 runs start ").map(|(_, r)| r) {
            let (workflow, input) = rest.split_once(" --input ").unwrap_or_else(|| panic!("{file}: {line}"));
            assert_eq!(workflow, name, "{file}: the header starts the file's workflow");
            let input = input.strip_prefix('\'').and_then(|i| i.strip_suffix('\'')).expect("a quoted input");
            inputs.push(serde_json::from_str(input).unwrap_or_else(|e| panic!("{file}: {input}: {e}")));
        }
        if let Some(rest) = line.split_once("mark1 runs approve RUN_ID ").map(|(_, r)| r) {
            let (step, comment) = rest.split_once(" --comment ").unwrap_or_else(|| panic!("{file}: {line}"));
            let comment = comment.trim_matches('"').to_string();
            approve = Some((step.to_string(), comment));
        }
    }
    assert!(!inputs.is_empty(), "{file}: the header shows how to start a run");
    Example { file, name, inputs, approve }
}

fn start(workflow: &str, input: Value) -> StartRun {
    start_run(workflow, input, "examples")
}

fn step_state(view: &RunView, step: &str) -> StepState {
    view.steps.iter().find(|s| s.id == step).unwrap_or_else(|| panic!("step {step}: {view:?}")).state
}

/// Runs `example` with `input` (deciding its approval as the header shows) to its end.
async fn run(handle: &NodeHandle, example: &Example, input: Value) -> RunView {
    let what = format!("{} with {input}", example.file);
    let run = handle.start_run(start(&example.name, input)).await.unwrap_or_else(|e| panic!("{what}: {e}"));
    if let Some((step, comment)) = &example.approve {
        eventually(Duration::from_secs(20), &format!("{what}: the run waits for approval"), || async {
            let view = handle.get_run(run.id).await.unwrap();
            assert!(!view.record.state.is_final(), "{what}: ended without an approval: {view:?}");
            view.record.state == RunState::WaitingApproval
        })
        .await;
        let decide = RunChange::Decide { step: step.clone(), approved: true, comment: comment.clone() };
        handle.change_run(run.id, decide, "ann").await.unwrap_or_else(|e| panic!("{what}: {e}"));
    }
    let view = handle.wait_run(run.id, Duration::from_secs(20)).await.unwrap();
    assert!(view.record.state.is_final(), "{what}: the run ended in time: {view:?}");
    view
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_workflows_run_on_the_repository_config_as_their_headers_show() {
    let dir = tempfile::tempdir().unwrap();
    let models = ScriptedServer::start().await.unwrap();
    let handle = node(dir.path(), &models).await;
    let examples = examples();
    let names: Vec<&str> = examples.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["approval", "conditional", "count-words", "error-route", "fan-out", "plan"]);
    for example in &examples {
        let text = std::fs::read_to_string(root().join("examples/workflows").join(&example.file)).unwrap();
        let def = parse(&text, Some(&example.file)).unwrap().def;
        handle.create_workflow("default", def).await.unwrap_or_else(|e| panic!("{}: {e}", example.file));
    }

    let mut ran = Vec::new();
    for example in &examples {
        for input in &example.inputs {
            ran.push(format!("{} {}", example.name, input.get("fail").is_some()));
            if example.name == "plan" {
                models.script.push(Answer::Text(COUNT_PLAN.into()));
            }
            let view = run(&handle, example, input.clone()).await;
            let what = format!("{} with {input}", example.file);
            let output = view.record.output.clone().unwrap_or_default();
            assert_eq!(view.record.state, RunState::Succeeded, "{what}: {view:?}");
            match (example.name.as_str(), input.get("fail")) {
                ("approval", _) => {
                    assert_eq!(output, json!({"published": "release notes", "approved_by": "ann"}), "{what}");
                    let gate = view.steps.iter().find(|s| s.id == "gate").unwrap();
                    assert_eq!(gate.output.as_ref().unwrap()["comment"], json!("ship it"), "{what}");
                }
                ("conditional", _) => {
                    let words = input["text"].as_str().unwrap().split_whitespace().count();
                    let (ran, skipped) = if words > 5 { ("long", "short") } else { ("short", "long") };
                    assert_eq!(output, json!(format!("{ran}: {words} words")), "{what}");
                    assert_eq!(step_state(&view, ran), StepState::Succeeded, "{what}");
                    assert_eq!(step_state(&view, skipped), StepState::Skipped, "{what}");
                }
                ("count-words", _) => {
                    assert_eq!(output["summary"], json!({"texts": 2, "words": 5}), "{what}: {output}");
                    let words: Vec<&Value> =
                        output["per_text"].as_array().unwrap().iter().map(|t| &t["words"]).collect();
                    assert_eq!(words, [&json!(3), &json!(2)], "{what}: {output}");
                }
                ("error-route", Some(reason)) => {
                    let deploy = view.steps.iter().find(|s| s.id == "deploy").unwrap();
                    assert_eq!((deploy.state, deploy.attempt), (StepState::Failed, 2), "{what}: {view:?}");
                    assert_eq!(step_state(&view, "verify"), StepState::Skipped, "{what}");
                    assert_eq!(step_state(&view, "rollback"), StepState::Succeeded, "{what}");
                    let rolled_back = output["rolled_back"].as_str().unwrap_or_default();
                    assert!(rolled_back.contains(reason.as_str().unwrap()), "{what}: {output}");
                    assert_eq!(output["verified"], Value::Null, "{what}: {output}");
                }
                ("error-route", None) => {
                    assert_eq!(output, json!({"verified": true, "rolled_back": null}), "{what}");
                    assert_eq!(step_state(&view, "rollback"), StepState::Skipped, "{what}");
                }
                ("fan-out", _) => assert_eq!(output, json!({"words": [3, 2, 1], "total": 6}), "{what}"),
                ("plan", _) => {
                    let words = input["text"].as_str().unwrap().split_whitespace().count();
                    assert_eq!(output["summary"], json!({"words": words}), "{what}: {output}");
                    let plan = view.steps[0].plan.as_ref().expect("the plan is shown");
                    assert_eq!(plan.model, "ollama/llama3.1", "{what}");
                }
                (other, _) => panic!("no expectations for example {other}"),
            }
        }
    }
    for both_ways in ["conditional false", "error-route true", "error-route false"] {
        assert!(ran.iter().any(|r| r == both_ways), "{both_ways}: {ran:?}");
    }
    assert_eq!(ran.iter().filter(|r| r.starts_with("conditional")).count(), 2, "both branches: {ran:?}");
    stop(handle).await;
}
