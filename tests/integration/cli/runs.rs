//! `mark1 workflows list|get|create` and `mark1 runs …` against a real `mark1 serve`
//! child process, with the example echo agent: definitions stored and refused, runs
//! started, waited for, listed, approved, rejected, changed and cancelled, `runs watch
//! --plain` to the end, and the exit codes of DESIGN §13.8.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::client::{serve, Served};
use super::{wait_with_timeout, KillOnDrop};

/// a → b, both echoes; `input.delay` holds `a` that many seconds.
const PAIR: &str = r#"name: pair
steps:
  - id: a
    agent: echo
    input: {delay: "{{ input.delay | default(0) }}", text: "{{ input.text | default('a') }}"}
  - id: b
    agent: echo
    depends_on: [a]
    input: {after: "{{ steps.a.output.text }}"}
output: "{{ steps.b.output }}"
"#;

/// An agent the node does not have (line 4), a dependency that is not declared (line 7).
const BAD: &str = r#"name: broken
steps:
  - id: hello
    agent: ecko
  - id: summary
    capability: text.echo
    input: {text: "{{ steps.hello.output }}"}
"#;

fn write(node: &Served, name: &str, text: &str) -> PathBuf {
    let path = node.dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/workflows").join(name)
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls the run until `done` holds for it.
fn until_run(node: &Served, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let run = node.json(&["runs", "get", id, "--json"]);
        if done(&run) {
            return run;
        }
        assert!(Instant::now() < until, "{what}: {run}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn step<'a>(run: &'a Value, id: &str) -> &'a Value {
    run["steps"].as_array().unwrap().iter().find(|s| s["id"] == id).unwrap_or_else(|| panic!("{id}: {run}"))
}

#[test]
fn workflows_are_created_listed_and_shown_and_runs_started_and_listed() {
    let node = serve();
    let pair = write(&node, "pair.yaml", PAIR);
    let out = node.cli(&["workflows", "create", pair.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout(&out).contains("stored pair version 1"), "{}", stdout(&out));
    let json = write(&node, "pair.json", &pair_json().to_string());
    let second = node.json(&["workflows", "create", json.to_str().unwrap(), "--json"]);
    assert_eq!((&second["name"], &second["version"]), (&json!("pair"), &json!(2)), "{second}");

    // A refused definition: every problem at its line and column in the file, exit 2.
    let bad = write(&node, "bad.yaml", BAD);
    let out = node.cli(&["workflows", "create", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    let name = bad.display().to_string();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with(&format!("{name}:4:12: no agent is named \"ecko\"")), "{text}");
    assert!(lines[1].starts_with(&format!("{name}:7:19: ")), "{text}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 problems"));

    let listed = node.json(&["workflows", "list", "--json"]);
    let versions: Vec<(String, u64)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["name"].as_str().unwrap().to_string(), w["version"].as_u64().unwrap()))
        .collect();
    assert!(versions.contains(&("pair".into(), 1)) && versions.contains(&("pair".into(), 2)), "{listed}");
    assert!(!versions.iter().any(|(n, _)| n == "broken"), "{listed}");
    let table = stdout(&node.cli(&["workflows", "list"]));
    assert!(table.starts_with("WORKFLOW ") && table.contains("default/pair"), "{table}");
    assert_eq!(node.json(&["workflows", "get", "pair", "--json"])["version"], 2);
    assert_eq!(node.json(&["workflows", "get", "pair", "--version", "1", "--json"])["version"], 1);
    let shown = stdout(&node.cli(&["workflows", "get", "pair"]));
    assert!(
        shown.contains("agent echo") && shown.lines().any(|l| l.starts_with("b ") && l.contains(" a ")),
        "{shown}"
    );
    assert_eq!(node.code(&["workflows", "get", "pair", "--version", "9"]), Some(3));
    assert_eq!(node.code(&["workflows", "get", "nothing"]), Some(3));

    // A run waited for: its steps, its output, exit 0.
    let args = ["runs", "start", "pair", "--input", r#"{"text": "hi"}"#, "--wait", "30s", "--json"];
    let run = node.json(&args);
    assert_eq!((&run["state"], &run["version"]), (&json!("succeeded"), &json!(2)), "{run}");
    assert_eq!(run["output"], json!({"after": "hi"}));
    assert_eq!(step(&run, "a")["state"], "succeeded");
    let id = run["id"].as_str().unwrap().to_string();
    let table = stdout(&node.cli(&["runs", "get", &id]));
    assert!(table.contains("default/pair v2") && table.contains("succeeded"), "{table}");
    assert!(table.lines().any(|l| l.starts_with("b ") && l.contains(" a ")), "b after a: {table}");

    // The same idempotency key answers with the first run.
    let keyed = ["runs", "start", "pair", "--version", "1", "--idempotency-key", "k1", "--json"];
    let first = node.json(&keyed);
    assert_eq!(node.json(&keyed)["id"], first["id"]);
    assert_eq!(first["version"], 1);

    let page = node.json(&["runs", "list", "--workflow", "pair", "--json"]);
    let ids: Vec<&str> = page["runs"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&id.as_str()) && ids.contains(&first["id"].as_str().unwrap()), "{page}");
    let succeeded = node.json(&["runs", "list", "--state", "succeeded", "--limit", "1", "--all", "--json"]);
    assert!(succeeded["runs"].as_array().unwrap().iter().all(|r| r["state"] == "succeeded"), "{succeeded}");
    let table = stdout(&node.cli(&["runs", "list"]));
    assert!(table.starts_with("ID ") && table.contains(&id), "{table}");

    let events = node.json(&["runs", "events", &id, "--json"]);
    let kinds: Vec<&str> = events
        .get("events")
        .unwrap_or(&events)
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"run.started"), "{events}");
    assert_eq!(kinds.last(), Some(&"run.succeeded"), "{events}");
    assert!(stdout(&node.cli(&["runs", "events", &id])).contains("step.succeeded"));
    let listed = node.json(&["events", "list", "--run", &id, "--json"]);
    assert_eq!(listed["events"].as_array().map(Vec::len), Some(kinds.len()), "{listed}");

    // Exit codes: not found 3, bad input 2, unauthorized 4.
    assert_eq!(node.code(&["runs", "start", "nothing"]), Some(3));
    assert_eq!(node.code(&["runs", "get", "01a00000-0000-7000-8000-000000000000"]), Some(3));
    assert_eq!(node.code(&["runs", "watch", "01a00000-0000-7000-8000-000000000000", "--plain"]), Some(3));
    assert_eq!(node.code(&["runs", "watch", "no-such-run", "--plain"]), Some(3));
    assert_eq!(node.code(&["runs", "approve", "01a00000-0000-7000-8000-000000000000", "gate"]), Some(3));
    assert_eq!(node.code(&["runs", "start", "pair", "--input", "{not json"]), Some(2));
    let forged = format!("mk1_000000000000_{}", "A".repeat(43));
    for args in [
        &["workflows", "list"][..],
        &["workflows", "create", pair.to_str().unwrap()],
        &["runs", "list"],
        &["runs", "start", "pair"],
        &["runs", "watch", &id, "--plain"],
    ] {
        let out = node.command(args).env("MARK1_API_KEY", &forged).output().unwrap();
        assert_eq!(out.status.code(), Some(4), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// PAIR as JSON, to store it from a `.json` file.
fn pair_json() -> Value {
    json!({"name": "pair", "steps": [
        {"id": "a", "agent": "echo",
         "input": {"delay": "{{ input.delay | default(0) }}", "text": "{{ input.text | default('a') }}"}},
        {"id": "b", "agent": "echo", "depends_on": ["a"], "input": {"after": "{{ steps.a.output.text }}"}},
    ], "output": "{{ steps.b.output }}"})
}

/// `runs watch --plain` in the background: its lines as they come, and its exit.
struct Watch {
    child: KillOnDrop,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Watch {
    fn start(node: &Served, id: &str) -> Watch {
        let mut child = KillOnDrop(
            node.command(&["runs", "watch", id, "--plain"])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let out = BufReader::new(child.0.stdout.take().unwrap());
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in out.lines() {
                if tx.send(line.unwrap()).is_err() {
                    return;
                }
            }
        });
        Watch { child, lines }
    }

    /// Waits for a line that contains `text`; answers every line up to it.
    fn until(&self, text: &str) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            match self.lines.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => {
                    let done = line.contains(text);
                    seen.push(line);
                    if done {
                        return seen;
                    }
                }
                Err(e) => panic!("no line with {text:?} ({e}); seen {seen:#?}"),
            }
        }
    }

    fn finish(mut self) -> (Option<i32>, Vec<String>) {
        let status = wait_with_timeout(&mut self.child.0, Duration::from_secs(30));
        (status.code(), self.lines.try_iter().collect())
    }
}

#[test]
fn approvals_skips_and_added_steps_change_a_watched_run() {
    let node = serve();
    let approval = example("approval.yaml");
    assert_eq!(node.code(&["workflows", "create", approval.to_str().unwrap()]), Some(0));

    // Approved: the watch prints each transition and ends with the run, exit 0.
    let run = node.json(&["runs", "start", "approval", "--input", r#"{"text": "notes"}"#, "--json"]);
    let id = run["id"].as_str().unwrap().to_string();
    let watch = Watch::start(&node, &id);
    let seen = watch.until("step gate waiting_approval");
    assert!(seen[0].starts_with("run "), "{seen:#?}");
    let waiting = until_run(&node, &id, "the run waits", |r| r["state"] == "waiting_approval");
    assert_eq!(step(&waiting, "gate")["state"], "waiting_approval");
    let table = stdout(&node.cli(&["runs", "get", &id]));
    assert!(table.contains("waiting_approval"), "{table}");
    let extra = write(
        &node,
        "extra.yaml",
        "- id: extra\n  agent: echo\n  depends_on: [publish]\n  input: {done: true}\n",
    );
    let added = node.json(&["runs", "add-steps", &id, extra.to_str().unwrap(), "--json"]);
    assert_eq!(step(&added, "extra")["state"], "queued", "{added}");
    let unknown = write(&node, "unknown.yaml", "steps:\n  - id: other\n    agent: nobody\n");
    let out = node.cli(&["runs", "add-steps", &id, unknown.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout(&out).contains("nobody"), "{}", stdout(&out));

    let approved = node.json(&["runs", "approve", &id, "gate", "--comment", "ship it", "--json"]);
    assert_eq!(approved["id"], id.as_str());
    let seen = watch.until("run succeeded");
    assert!(seen.iter().any(|l| l.starts_with("step gate approved")), "{seen:#?}");
    assert!(seen.iter().any(|l| l.starts_with("step extra succeeded")), "{seen:#?}");
    let (code, _) = watch.finish();
    assert_eq!(code, Some(0));
    let done = node.json(&["runs", "get", &id, "--json"]);
    assert_eq!(done["output"]["published"], "notes", "{done}");

    // Rejected: the gate fails, so does the run; watching it afterwards exits 1 at once.
    let run = node.json(&["runs", "start", "approval", "--input", r#"{"text": "draft"}"#, "--json"]);
    let id = run["id"].as_str().unwrap().to_string();
    until_run(&node, &id, "the run waits", |r| r["state"] == "waiting_approval");
    assert_eq!(node.code(&["runs", "approve", &id, "publish"]), Some(1), "publish is not waiting");
    node.json(&["runs", "reject", &id, "gate", "--comment", "not yet", "--json"]);
    until_run(&node, &id, "the run fails", |r| r["state"] == "failed");
    let out = node.cli(&["runs", "watch", &id, "--plain"]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout(&out).lines().last().unwrap_or_default().starts_with("run failed"), "{}", stdout(&out));
    assert_eq!(node.code(&["runs", "get", &id, "--wait", "1s"]), Some(1), "a failed run ends a wait badly");

    // Skipped with an output: the dependents see it.
    let run = node.json(&["runs", "start", "approval", "--input", r#"{"text": "x"}"#, "--json"]);
    let id = run["id"].as_str().unwrap().to_string();
    until_run(&node, &id, "the run waits", |r| r["state"] == "waiting_approval");
    node.json(&["runs", "skip", &id, "gate", "--output", r#"{"by": "the cli"}"#, "--json"]);
    let done = until_run(&node, &id, "the run ends", |r| r["state"] == "succeeded");
    assert_eq!(done["output"]["approved_by"], "the cli", "{done}");
}

#[test]
fn a_cancelled_run_ends_its_watch_with_exit_1() {
    let node = serve();
    let pair = write(&node, "pair.yaml", PAIR);
    assert_eq!(node.code(&["workflows", "create", pair.to_str().unwrap()]), Some(0));
    let input = write(&node, "input.yaml", "delay: 30\ntext: slow\n");
    let run = node.json(&["runs", "start", "pair", "--input-file", input.to_str().unwrap(), "--json"]);
    let id = run["id"].as_str().unwrap().to_string();
    until_run(&node, &id, "a runs", |r| step(r, "a")["state"] == "running");
    let watch = Watch::start(&node, &id);
    watch.until("step a running");
    let cancelled = node.json(&["runs", "cancel", &id, "--reason", "enough", "--json"]);
    assert_eq!(cancelled["id"], id.as_str());
    let seen = watch.until("run cancelled");
    assert!(seen.last().unwrap().contains("enough"), "{seen:#?}");
    let (code, _) = watch.finish();
    assert_eq!(code, Some(1));
    let run = node.json(&["runs", "get", &id, "--json"]);
    assert_eq!(run["state"], "cancelled");
    assert_eq!(node.code(&["runs", "cancel", &id]), Some(1), "a final run cannot change: 409");
    assert_eq!(node.code(&["runs", "retry", &id, "nope"]), Some(1));
}

/// The live view in a pseudo-terminal of 80×24 (util-linux `script`): it draws the run,
/// and `q` quits with exit 0, the terminal restored, the run going on.
#[test]
fn the_live_run_view_draws_in_80_by_24_and_quits_on_q() {
    let node = serve();
    let approval = example("approval.yaml");
    assert_eq!(node.code(&["workflows", "create", approval.to_str().unwrap()]), Some(0));
    let run = node.json(&["runs", "start", "approval", "--input", r#"{"text": "t"}"#, "--json"]);
    let id = run["id"].as_str().unwrap().to_string();
    until_run(&node, &id, "the run waits", |r| r["state"] == "waiting_approval");
    let shell = format!("stty cols 80 rows 24; exec {} runs watch {id}", env!("CARGO_BIN_EXE_mark1"));
    let mut child = KillOnDrop(
        std::process::Command::new("script")
            .args(["-qec", &shell, "/dev/null"])
            .current_dir(node.dir.path())
            .env("MARK1_URL", &node.url)
            .env("MARK1_API_KEY", &node.key)
            .env("TERM", "xterm")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_secs(3));
    child.0.stdin.as_mut().unwrap().write_all(b"q").unwrap();
    let status = wait_with_timeout(&mut child.0, Duration::from_secs(10));
    let mut screen = String::new();
    std::io::Read::read_to_string(child.0.stdout.as_mut().unwrap(), &mut screen).unwrap();
    assert_eq!(status.code(), Some(0), "{screen}");
    assert!(screen.contains("default/approval v1") && screen.contains("waiting_approval"), "{screen}");
    assert!(screen.contains("q quit"), "{screen}");
    assert!(screen.contains("\u{1b}[?1049l"), "the terminal is restored: {screen:?}");
    assert_eq!(node.json(&["runs", "get", &id, "--json"])["state"], "waiting_approval");
    let piped = node.cli(&["runs", "watch", &id]);
    assert_eq!(piped.status.code(), Some(2), "the live view needs a terminal");
}
