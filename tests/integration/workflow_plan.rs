//! Plan steps on whole nodes: a model (the scripted server, through the real OpenAI
//! adapter and the router) plans steps over the node's native agents; the plan is checked,
//! repaired once when it cannot run, held for approval when asked, journaled, and run as a
//! sub-run, which a restarted node resumes without asking the model again.

use std::path::Path;
use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::time::Duration;

use mark1::config::ConfigLoader;
use mark1::models::scripted::{Answer, ScriptedServer};
use mark1::workflows::{
    JournalKind, RunChange, RunId, RunQuery, RunState, RunView, StartRun, StepState, WorkflowDef,
    PLANNED_VERSION,
};
use mark1::{Agent, AgentError, AgentSpec, Node, NodeHandle, TaskContext};
use mark1_actors::ports::{UsageGroup, UsageQuery};
use serde_json::{json, Value};

use crate::support::{eventually, start_run, started, stop, unique, Echo, Sleeper};

/// Answers `{"text": <input.text in capitals>}`.
struct Upper;

impl Agent for Upper {
    async fn handle(&self, _: TaskContext, input: Value) -> Result<Value, AgentError> {
        Ok(json!({"text": input["text"].as_str().unwrap_or_default().to_uppercase()}))
    }
}

/// A node named `name` with data in `dir`, whose one model provider (`oa`) is `server`.
async fn node(dir: &Path, name: &str, server: &ScriptedServer) -> NodeHandle {
    let config = ConfigLoader::new()
        .no_file()
        .env(Vec::<(String, String)>::new())
        .set("node.name", name)
        .set("node.data_dir", dir.to_str().unwrap())
        .set("models.providers.oa.kind", "openai")
        .set("models.providers.oa.base_url", server.openai_url().as_str())
        .load()
        .expect("test config loads");
    let sleeper = Sleeper { cancelled: Arc::new(AtomicU32::new(0)) };
    let builder = Node::builder()
        .config(config)
        .agent(
            AgentSpec::native("upper").capability("text.upper").description("Capitalizes input.text."),
            Upper,
        )
        .agent(AgentSpec::native("echo").capability("text.echo").description("Answers its input."), Echo)
        .agent(AgentSpec::native("sleeper").description("Sleeps input.ms milliseconds."), sleeper);
    let handle = started(builder, 3).await;
    eventually(Duration::from_secs(10), "the router discovered the scripted models", || async {
        handle.models().models().await.is_ok_and(|m| m.iter().any(|m| m.info.id == "llama3.1"))
    })
    .await;
    handle
}

fn def(v: Value) -> WorkflowDef {
    serde_json::from_value(v).expect("a definition")
}

/// A workflow whose one step plans toward shouting `input.text`; `approval` as the plan
/// step's. Its output is what the plan's `say` step answered.
fn shout(name: &str, approval: Value) -> WorkflowDef {
    def(json!({"name": name, "steps": [
        {"id": "plan", "plan": {"goal": "Shout {{ input.text }}, then say it", "model": "llama3.1",
                                "max_steps": 3, "approval": approval},
         "input": {"text": "{{ input.text }}"}},
    ], "output": "{{ steps.plan.output.say.said }}"}))
}

/// A plan that capitalizes the input's text by agent, then says it by capability.
const SHOUT_PLAN: &str = r#"{"steps": [
    {"id": "shout", "agent": "upper", "input": {"text": "{{ input.text }}"}},
    {"id": "say", "capability": "text.echo", "depends_on": ["shout"],
     "input": {"said": "{{ steps.shout.output.text }}"}}
]}"#;

/// A plan naming an agent the node does not have.
const GHOST_PLAN: &str = r#"{"steps": [{"id": "say", "agent": "ghost", "input": {"said": "boo"}}]}"#;

fn start(workflow: &str, input: Value) -> StartRun {
    start_run(workflow, input, "test")
}

async fn finished(handle: &NodeHandle, id: RunId) -> RunView {
    let view = handle.wait_run(id, Duration::from_secs(20)).await.expect("the run is readable");
    assert!(view.record.state.is_final(), "the run ended in time: {view:?}");
    view
}

async fn waiting(handle: &NodeHandle, id: RunId) -> RunView {
    eventually(Duration::from_secs(10), "the run waits for approval", || async {
        handle.get_run(id).await.is_ok_and(|v| v.record.state == RunState::WaitingApproval)
    })
    .await;
    handle.get_run(id).await.unwrap()
}

/// The plan step's sub-runs, newest first.
async fn sub_runs(handle: &NodeHandle, workflow: &str) -> Vec<mark1::workflows::RunRecord> {
    let query = RunQuery { workflow: Some(format!("{workflow}-plan")), ..Default::default() };
    handle.runs(&query).await.unwrap()
}

fn kinds(journal: &[mark1::workflows::JournalEntry]) -> Vec<JournalKind> {
    journal.iter().map(|e| e.kind).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_plans_steps_over_the_agents_and_the_plan_runs_as_a_sub_run() {
    let server = ScriptedServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let handle = node(dir.path(), &unique("plan"), &server).await;
    handle.create_workflow("default", shout("shout", json!(false))).await.unwrap();

    server.script.push(Answer::Text(SHOUT_PLAN.into()));
    let run = handle.start_run(start("shout", json!({"text": "hello"}))).await.unwrap();
    let view = finished(&handle, run.id).await;
    assert_eq!((view.record.state, view.record.output.clone()), (RunState::Succeeded, Some(json!("HELLO"))));
    let step = &view.steps[0];
    assert_eq!(
        step.output,
        Some(json!({"shout": {"text": "HELLO"}, "say": {"said": "HELLO"}})),
        "a plan step's output maps the plan's steps to their outputs"
    );
    let plan = step.plan.as_ref().expect("the view shows the plan");
    assert_eq!((plan.goal.as_str(), plan.model.as_str()), ("Shout hello, then say it", "oa/llama3.1"));
    assert_eq!(plan.steps.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["shout", "say"]);

    let asked = server.script.requests();
    assert_eq!(asked.len(), 1, "one call for a plan that can run");
    assert_eq!(asked[0]["response_format"]["type"], "json_schema", "{}", asked[0]);
    let task = asked[0]["messages"][1]["content"].as_str().unwrap();
    assert!(task.contains("Goal: Shout hello, then say it"), "{task}");
    assert!(
        task.contains("- upper (may be named): Capitalizes input.text. [capabilities: text.upper]"),
        "{task}"
    );

    let journal = handle.store().journal(run.id).await.unwrap();
    let planned =
        journal.iter().position(|e| e.kind == JournalKind::StepPlanned).expect("the plan is journaled");
    assert_eq!(kinds(&journal).iter().filter(|k| **k == JournalKind::StepPlanned).count(), 1);
    assert_eq!(journal[planned + 1].kind, JournalKind::StepRunning, "the plan runs once journaled");
    let filter = mark1_actors::events::EventFilter {
        kinds: vec![mark1_actors::domain::EventKind::StepPlanned],
        ..Default::default()
    };
    let events = handle.list_events(filter, 0, 10).await.unwrap().events;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (&events[0].data["planned_steps"], &events[0].data["model"]),
        (&json!(2), &json!("oa/llama3.1")),
        "the event says how large the plan is and who made it: {:?}",
        events[0].data
    );

    let subs = sub_runs(&handle, "shout").await;
    assert_eq!(subs.len(), 1, "{subs:?}");
    assert_eq!((subs[0].version, subs[0].parent.as_ref().map(|p| p.run)), (PLANNED_VERSION, Some(run.id)));
    let sub = handle.get_run(subs[0].id).await.expect("a planned run reads back from the store");
    assert_eq!(sub.steps.len(), 2);

    // The call is billed to the run's namespace and recorded against the run.
    eventually(Duration::from_secs(10), "the planning call is recorded against the run", || async {
        let query = UsageQuery { group_by: UsageGroup::Run, ..Default::default() };
        let rows = handle.store().usage_report(&query).await.unwrap();
        rows.iter().any(|r| r.key.as_deref() == Some(run.id.to_string().as_str()) && r.calls == 1)
    })
    .await;
    stop(handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_that_cannot_run_is_repaired_once_then_fails_the_step_naming_its_problems() {
    let server = ScriptedServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let handle = node(dir.path(), &unique("plan"), &server).await;
    handle.create_workflow("default", shout("shout", json!(false))).await.unwrap();

    server.script.push(Answer::Text(GHOST_PLAN.into()));
    server.script.push(Answer::Text(format!("```json\n{SHOUT_PLAN}\n```")));
    let run = handle.start_run(start("shout", json!({"text": "again"}))).await.unwrap();
    let view = finished(&handle, run.id).await;
    assert_eq!((view.record.state, view.record.output.clone()), (RunState::Succeeded, Some(json!("AGAIN"))));
    let asked = server.script.requests();
    assert_eq!(asked.len(), 2, "the plan, then one repair");
    let repair = asked[1]["messages"].as_array().unwrap();
    assert_eq!(repair[2]["role"], "assistant", "the repair shows the model its own answer");
    assert_eq!(repair[2]["content"].as_str().unwrap().trim(), GHOST_PLAN.trim());
    let problems = repair[3]["content"].as_str().unwrap();
    assert!(
        problems.contains("no agent is named \"ghost\"") && problems.contains("(at /steps/0/agent)"),
        "{problems}"
    );

    server.script.push(Answer::Text(GHOST_PLAN.into()));
    server.script.push(Answer::Text(GHOST_PLAN.into()));
    let run = handle.start_run(start("shout", json!({"text": "never"}))).await.unwrap();
    let view = finished(&handle, run.id).await;
    assert_eq!(server.script.requests().len(), 4, "one repair, no more");
    assert_eq!((view.record.state, view.steps[0].state), (RunState::Failed, StepState::Failed));
    let error = view.steps[0].error.clone().unwrap_or_default();
    assert!(error.contains("plan cannot run") && error.contains("no agent is named \"ghost\""), "{error}");
    assert!(view.steps[0].plan.is_none(), "nothing was journaled as the plan");
    assert_eq!(sub_runs(&handle, "shout").await.len(), 1, "only the repaired plan ran");
    stop(handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_plan_waits_showing_the_plan_and_runs_only_once_approved() {
    let server = ScriptedServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let handle = node(dir.path(), &unique("plan"), &server).await;
    handle.create_workflow("default", shout("gated", json!({"message": "run this plan?"}))).await.unwrap();

    server.script.push(Answer::Text(SHOUT_PLAN.into()));
    let run = handle.start_run(start("gated", json!({"text": "wait"}))).await.unwrap();
    let view = waiting(&handle, run.id).await;
    assert_eq!(view.steps[0].state, StepState::WaitingApproval);
    let plan = view.steps[0].plan.as_ref().expect("the approver reads the plan");
    assert_eq!(plan.steps.len(), 2);
    assert!(sub_runs(&handle, "gated").await.is_empty(), "nothing of the plan runs before the approval");

    let approve = RunChange::Decide { step: "plan".into(), approved: true, comment: "go".into() };
    handle.change_run(run.id, approve, "ann").await.unwrap();
    let view = finished(&handle, run.id).await;
    assert_eq!((view.record.state, view.record.output.clone()), (RunState::Succeeded, Some(json!("WAIT"))));
    assert_eq!(view.steps[0].attempt, 1, "the approved plan ran in the attempt that made it");

    server.script.push(Answer::Text(SHOUT_PLAN.into()));
    let run = handle.start_run(start("gated", json!({"text": "no"}))).await.unwrap();
    waiting(&handle, run.id).await;
    let reject = RunChange::Decide { step: "plan".into(), approved: false, comment: "not this".into() };
    handle.change_run(run.id, reject, "ann").await.unwrap();
    let view = finished(&handle, run.id).await;
    assert_eq!(view.record.state, RunState::Failed);
    assert!(view.steps[0].error.as_deref().unwrap_or_default().contains("rejected by ann: not this"));
    assert_eq!(sub_runs(&handle, "gated").await.len(), 1, "a rejected plan never runs");
    assert_eq!(server.script.requests().len(), 2);
    stop(handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_resumed_after_a_restart_runs_its_journaled_plan_without_asking_again() {
    let server = ScriptedServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let name = unique("plan-restart");
    let first = node(dir.path(), &name, &server).await;
    first
        .create_workflow(
            "default",
            def(json!({"name": "slow", "steps": [
                {"id": "plan", "plan": {"goal": "nap, then say so"}, "input": {"ms": 1500}},
            ], "output": "{{ steps.plan.output.say }}"})),
        )
        .await
        .unwrap();
    server.script.push(Answer::Text(
        r#"{"steps": [{"id": "nap", "agent": "sleeper", "input": {"ms": "{{ input.ms }}"}},
                      {"id": "say", "agent": "echo", "depends_on": ["nap"],
                       "input": {"slept": "{{ steps.nap.output.slept }}"}}]}"#
            .into(),
    ));
    let run = first.start_run(start("slow", json!({}))).await.unwrap();
    eventually(Duration::from_secs(10), "the plan's first step runs", || async {
        let Some(sub) = sub_runs(&first, "slow").await.first().cloned() else { return false };
        first.get_run(sub.id).await.is_ok_and(|v| v.steps[0].state == StepState::Running)
    })
    .await;
    let report = first.shutdown(Duration::from_millis(50)).await;
    assert!(report.stopped_cleanly, "{report:?}");
    let stored = first.store().run(run.id).await.unwrap().unwrap();
    assert!(!stored.state.is_final(), "the run was left unfinished: {stored:?}");
    drop(first);

    let second = node(dir.path(), &name, &server).await;
    // The run is claimed and resumed in the background: it may not be live yet.
    eventually(Duration::from_secs(20), "the resumed run ends", || async {
        second.get_run(run.id).await.is_ok_and(|v| v.record.state.is_final())
    })
    .await;
    let view = second.get_run(run.id).await.unwrap();
    let errors: Vec<_> = view.steps.iter().map(|s| (&s.id, s.state, &s.error)).collect();
    assert_eq!(
        (view.record.state, view.record.output.clone()),
        (RunState::Succeeded, Some(json!({"slept": 1500}))),
        "{errors:?}"
    );
    assert_eq!(server.script.requests().len(), 1, "the journaled plan ran; the model was not asked again");
    let journal = second.store().journal(run.id).await.unwrap();
    assert_eq!(kinds(&journal).iter().filter(|k| **k == JournalKind::StepPlanned).count(), 1);
    assert_eq!(sub_runs(&second, "slow").await.len(), 1, "the sub-run was found again by its key");
    stop(second).await;
}
