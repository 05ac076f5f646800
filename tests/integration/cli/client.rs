//! `mark1 agents|tasks|events|whoami|tree` against a real `mark1 serve` child process,
//! as a user drives them: `MARK1_URL` and `MARK1_API_KEY` in the environment, JSON on
//! stdout, the exit codes of DESIGN §13.8.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{free_port, mark1, write_config, KillOnDrop};

/// A `mark1 serve` child on a free port, and an admin key made before it started.
pub(super) struct Served {
    _child: KillOnDrop,
    pub dir: tempfile::TempDir,
    pub url: String,
    pub key: String,
}

/// Starts `mark1 serve` with `MARK1_URL`, `MARK1_API_KEY` and `MARK1_TEST_POSTGRES_URL`
/// set: they are not configuration and must not be rejected as unknown keys.
pub(super) fn serve() -> Served {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path());
    let created = stdout_json(
        &mark1(dir.path()).args(["keys", "create", "--role", "admin", "--json"]).output().unwrap(),
    );
    let key = created["key"].as_str().unwrap().to_string();
    let listen = free_port();
    let url = format!("http://{listen}");
    let postgres = std::env::var("MARK1_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let mut child = mark1(dir.path())
        .arg("serve")
        .env("MARK1_SERVER__LISTEN", &listen)
        .env("MARK1_URL", &url)
        .env("MARK1_API_KEY", &key)
        .env("MARK1_TEST_POSTGRES_URL", postgres)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until_running(&mut child);
    Served { _child: KillOnDrop(child), dir, url, key }
}

/// Reads the log until the node says it runs, then keeps draining it on a thread so the
/// child never blocks on a full pipe.
fn wait_until_running(child: &mut Child) {
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let until = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    loop {
        let Some(Ok(line)) = lines.next() else { panic!("serve exited before running: {seen:#?}") };
        if line.contains("node running") {
            break;
        }
        seen.push(line);
        assert!(Instant::now() < until, "serve did not start in time: {seen:#?}");
    }
    std::thread::spawn(move || lines.for_each(drop));
}

impl Served {
    pub fn cli(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    pub fn command(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = mark1(self.dir.path());
        cmd.args(args).env("MARK1_URL", &self.url).env("MARK1_API_KEY", &self.key);
        cmd
    }

    /// A command that must succeed and print one JSON document.
    pub fn json(&self, args: &[&str]) -> Value {
        stdout_json(&self.cli(args))
    }

    pub fn code(&self, args: &[&str]) -> Option<i32> {
        self.cli(args).status.code()
    }
}

pub(super) fn stdout_json(out: &Output) -> Value {
    assert!(out.status.success(), "exit {:?}: {}", out.status.code(), String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn tasks_are_submitted_waited_for_listed_and_cancelled() {
    let node = serve();
    let me = node.json(&["whoami", "--json"]);
    assert_eq!((&me["role"], &me["namespace"]), (&json!("admin"), &Value::Null));

    let args = [
        "tasks",
        "submit",
        "echo",
        "--input",
        r#"{"text":"hi"}"#,
        "--wait",
        "30s",
        "--idempotency-key",
        "k1",
        "--json",
    ];
    let task = node.json(&args);
    assert_eq!((&task["state"], &task["output"]), (&json!("succeeded"), &json!({"text": "hi"})), "{task}");
    let id = task["id"].as_str().unwrap();
    assert_eq!(node.json(&args)["id"], id, "the same idempotency key answers with the first task");
    let conflict = ["tasks", "submit", "echo", "--input", "{}", "--idempotency-key", "k1"];
    assert_eq!(node.code(&conflict), Some(1), "same key, other work: 409 is a failure");

    assert_eq!(node.json(&["tasks", "get", id, "--json"])["state"], "succeeded");
    let page = node.json(&["tasks", "list", "--agent", "echo", "--limit", "1", "--all", "--json"]);
    assert_eq!(page["tasks"].as_array().map(Vec::len), Some(1), "{page}");
    assert_eq!((&page["tasks"][0]["id"], &page["next"]), (&json!(id), &Value::Null));
    let table = String::from_utf8(node.cli(&["tasks", "list"]).stdout).unwrap();
    assert!(table.starts_with("ID ") && table.contains(id) && table.contains("succeeded"), "{table}");

    // Input from a file, by capability; a slow task is cancelled and its wait exits 1.
    let input = node.dir.path().join("input.json");
    std::fs::write(&input, r#"{"delay": 30}"#).unwrap();
    let slow = node.json(&[
        "tasks",
        "submit",
        "--capability",
        "text.echo",
        "--input",
        &format!("@{}", input.display()),
        "--json",
    ]);
    let slow_id = slow["id"].as_str().unwrap();
    assert_eq!(node.code(&["tasks", "cancel", slow_id, "--json"]), Some(0));
    let waited = node.cli(&["tasks", "get", slow_id, "--wait", "20s", "--json"]);
    assert_eq!(waited.status.code(), Some(1), "a cancelled task ends the wait with failure");
    assert_eq!(serde_json::from_slice::<Value>(&waited.stdout).unwrap()["state"], "cancelled");

    assert_eq!(node.code(&["tasks", "get", "01a00000-0000-7000-8000-000000000000"]), Some(3));
    assert_eq!(node.code(&["tasks", "get", "no-such-task"]), Some(3));
    assert_eq!(node.code(&["tasks", "submit", "nobody", "--input", "{}"]), Some(3));
    assert_eq!(node.code(&["tasks", "submit", "echo", "--input", "{not json"]), Some(2));
    assert_eq!(
        node.code(&["tasks", "submit", "echo", "--wait", "1000h"]),
        Some(2),
        "over server.max_wait: 400"
    );
}

#[test]
fn agents_are_listed_registered_resized_and_removed() {
    let node = serve();
    let agents = node.json(&["agents", "list", "--json"]);
    let names: Vec<String> = agents
        .as_array()
        .unwrap()
        .iter()
        .map(|a| format!("{}/{}", a["namespace"].as_str().unwrap(), a["name"].as_str().unwrap()))
        .collect();
    assert_eq!(names, ["default/echo"]);
    assert_eq!(node.json(&["agents", "get", "default/echo", "--json"])["capabilities"], json!(["text.echo"]));

    let file = node.dir.path().join("words.toml");
    let command = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/agents/wordcount.py");
    let mut f = std::fs::File::create(&file).unwrap();
    writeln!(
        f,
        "[agents.words]\ncommand = \"{}\"\ncapabilities = [\"text.stats\"]\npool = {{ min = 1, max = 2 }}",
        command.display()
    )
    .unwrap();
    let registered = node.json(&["agents", "register", file.to_str().unwrap(), "--json"]);
    assert_eq!(registered[0]["name"], "words", "{registered}");
    let resized = node.json(&["agents", "resize", "default/words", "--min", "1", "--max", "3", "--json"]);
    assert_eq!(resized["name"], "words");
    let table = String::from_utf8(node.cli(&["agents", "list"]).stdout).unwrap();
    assert!(
        table.starts_with("AGENT ") && table.contains("default/words") && table.contains("text.stats"),
        "{table}"
    );
    let counted = node.json(&[
        "tasks",
        "submit",
        "words",
        "--input",
        r#"{"text": "a b c"}"#,
        "--wait",
        "30s",
        "--json",
    ]);
    assert_eq!(
        (&counted["state"], &counted["output"]["words"]),
        (&json!("succeeded"), &json!(3)),
        "{counted}"
    );

    assert_eq!(node.json(&["agents", "remove", "default/words", "--json"])["removed"], true);
    assert_eq!(node.code(&["agents", "get", "default/words"]), Some(3));
    assert_eq!(node.code(&["agents", "get", "words"]), Some(2), "NAMESPACE/NAME");
    assert_eq!(node.code(&["agents", "register", "/no/such/file.toml"]), Some(2));
}

#[test]
fn tree_once_prints_the_running_nodes_tree() {
    let node = serve();
    let tree = node.json(&["tree", "--once", "--json"]);
    assert_eq!(tree["name"], "cli");
    let agents = tree["children"].as_array().unwrap().iter().find(|c| c["name"] == "cli/agents").unwrap();
    assert_eq!(agents["children"][0]["name"], "cli/agents/pool:default/echo");
    let text = String::from_utf8(node.cli(&["tree", "--once"]).stdout).unwrap();
    assert!(text.starts_with("cli  [Running]") && text.contains("pool:default/echo"), "{text}");
    let piped = node.cli(&["tree"]);
    assert_eq!(piped.status.code(), Some(2), "the interactive tree needs a terminal");
}

#[test]
fn bad_keys_are_4_and_a_node_that_is_not_running_is_5() {
    let node = serve();
    let forged = format!("mk1_000000000000_{}", "A".repeat(43));
    for args in [&["whoami"][..], &["tasks", "list"], &["tree", "--once"]] {
        let out = node.command(args).env("MARK1_API_KEY", &forged).output().unwrap();
        assert_eq!(out.status.code(), Some(4), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(out.stdout.is_empty());
        let out = node.command(args).env_remove("MARK1_API_KEY").output().unwrap();
        assert_eq!(out.status.code(), Some(4), "no key: {args:?}");
    }
    let gone = format!("http://{}", free_port());
    for args in [
        &["whoami"][..],
        &["agents", "list"],
        &["tasks", "get", "x"],
        &["tree", "--once", "--json"],
        &["events", "watch"],
    ] {
        let out = node.command(args).env("MARK1_URL", &gone).output().unwrap();
        assert_eq!(out.status.code(), Some(5), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the node"), "{args:?}");
    }
    let out = node.command(&["whoami", "--url", &gone]).output().unwrap();
    assert_eq!(out.status.code(), Some(5), "--url wins over MARK1_URL");
}

#[test]
fn events_are_listed_and_watched_live() {
    let node = serve();
    let mut watch = KillOnDrop(
        node.command(&["events", "watch", "--json", "--kind", "task.succeeded"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(watch.0.stdout.take().unwrap()).lines();
    // The watcher has no way to say it is subscribed; a task per second until one is seen.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.by_ref() {
            if tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    let until = Instant::now() + Duration::from_secs(30);
    let event: Value = loop {
        assert!(Instant::now() < until, "no event seen");
        node.json(&["tasks", "submit", "echo", "--input", "{}", "--wait", "10s", "--json"]);
        if let Ok(line) = rx.recv_timeout(Duration::from_secs(1)) {
            break serde_json::from_str(&line).expect("one JSON event per line");
        }
    };
    assert_eq!(event["kind"], "task.succeeded");
    let id = event["subject"].as_str().unwrap();

    let page = node.json(&["events", "list", "--task", id, "--json"]);
    let kinds: Vec<&str> =
        page["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"task.queued"), "{page}");
    assert_eq!(kinds.last(), Some(&"task.succeeded"), "{page}");
    let after = page["events"][0]["seq"].as_u64().unwrap();
    let later = node.json(&["events", "list", "--task", id, "--after", &after.to_string(), "--json"]);
    assert_eq!(later["events"].as_array().unwrap().len(), kinds.len() - 1, "{later}");
}

/// The interactive tree in a pseudo-terminal of 80×24 (util-linux `script`): it draws the
/// live tree, and `q` quits with exit 0 and the terminal restored.
#[test]
fn the_interactive_tree_draws_in_80_by_24_and_quits_on_q() {
    let node = serve();
    let shell = format!("stty cols 80 rows 24; exec {} tree", env!("CARGO_BIN_EXE_mark1"));
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
    let status = super::wait_with_timeout(&mut child.0, Duration::from_secs(10));
    let mut screen = String::new();
    std::io::Read::read_to_string(child.0.stdout.as_mut().unwrap(), &mut screen).unwrap();
    assert_eq!(status.code(), Some(0), "{screen}");
    assert!(screen.contains("pool:default/echo") && screen.contains("q quit"), "{screen}");
    // Leaving the alternate screen is the last thing it writes.
    assert!(screen.contains("\u{1b}[?1049l"), "the terminal is restored: {screen:?}");
}
