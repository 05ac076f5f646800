//! Crash tests (issue 3, DESIGN §12): a child process runs a node whose agents log each
//! execution and then hold at a barrier that never opens; once the store shows 1,000
//! durable tasks in flight the test kills the child with SIGKILL, starts a new node on
//! the same database, and checks that nothing accepted was lost: every task completes,
//! each has exactly one recorded completion, a task whose completion was committed
//! before the crash never runs again, and a task that ran twice carried the same
//! idempotency key both times.
//!
//! The child is this test binary run again with `--exact crash::child_node --ignored`,
//! so the node in it is built by the same library code a user embeds.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use mark1::config::ConfigLoader;
use mark1::{Agent, AgentError, AgentSpec, Config, Node, TaskContext, TaskRequest, TaskState};
use mark1_actors::domain::EventKind;
use serde_json::{json, Value};

use crate::store::backends::{for_each_backend, Fresh};
use crate::support::{agents_ready, eventually, stop, ExecutionLog};

const HELD: u64 = 1_000;
const FINISHED_BEFORE: u64 = 100;

/// Logs the execution, then either answers at once or holds until the process dies.
struct Logged {
    log: Arc<ExecutionLog>,
    hold: bool,
}

impl Agent for Logged {
    async fn handle(&self, ctx: TaskContext, input: Value) -> Result<Value, AgentError> {
        self.log.record(&ctx);
        if self.hold {
            std::future::pending::<()>().await;
        }
        Ok(input)
    }
}

fn node_config(dir: &Path, url: &str) -> Config {
    ConfigLoader::new()
        .no_file()
        .env(Vec::<(String, String)>::new())
        .set("node.name", "crashed")
        .set("node.data_dir", dir.to_str().unwrap())
        .set("store.url", url)
        .load()
        .expect("crash test config loads")
}

fn agents(builder: mark1::NodeBuilder, log: &Arc<ExecutionLog>, hold: bool) -> mark1::NodeBuilder {
    let held = AgentSpec::native("held")
        .pool_size(HELD as usize, HELD as usize)
        .queue_limit(2 * HELD as usize)
        .timeout(Duration::from_secs(600));
    builder
        .agent(held, Logged { log: log.clone(), hold })
        .agent(AgentSpec::native("quick").pool_size(4, 4), Logged { log: log.clone(), hold: false })
}

/// The node in the child process. Does nothing unless run by `crash_and_recover`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the crash tests run it in a child process"]
async fn child_node() {
    let (Ok(dir), Ok(url)) = (std::env::var("MARK1_CRASH_DIR"), std::env::var("MARK1_CRASH_URL")) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let log = ExecutionLog::open(&dir.join("executions.log"));
    let builder = agents(Node::builder().config(node_config(&dir, &url)), &log, true);
    let handle = builder.build().await.unwrap().start().await.unwrap();
    agents_ready(&handle, 2).await;
    for i in 0..FINISHED_BEFORE {
        let done =
            handle.run(TaskRequest::to_agent("quick", json!(i)), Duration::from_secs(30)).await.unwrap();
        assert_eq!(done.state, TaskState::Succeeded);
    }
    for i in 0..HELD {
        handle.submit(TaskRequest::to_agent("held", json!(i))).await.unwrap();
    }
    // Held here until the test kills the process.
    std::future::pending::<()>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_with_work_in_flight_loses_nothing_and_records_each_completion_once() {
    for_each_backend(crash_and_recover).await;
}

async fn crash_and_recover(Fresh { store, options, backend }: Fresh) {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("executions.log");
    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash::child_node", "--ignored", "--nocapture", "--test-threads=1"])
        .env("MARK1_CRASH_DIR", dir.path())
        .env("MARK1_CRASH_URL", &options.url)
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // The barrier: every held task is recorded as running, i.e. in flight in the store.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while store.count_tasks(TaskState::Running).await.unwrap_or(0) < HELD {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("{}: the child node exited early: {status}", backend.as_str());
        }
        assert!(std::time::Instant::now() < deadline, "{}: 1,000 tasks never ran", backend.as_str());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(store.count_tasks(TaskState::Succeeded).await.unwrap(), FINISHED_BEFORE);
    child.start_kill().unwrap(); // SIGKILL
    child.wait().await.unwrap();

    let log = ExecutionLog::open(&log_path);
    let handle = agents(Node::builder().config(node_config(dir.path(), &options.url)), &log, false)
        .build()
        .await
        .unwrap()
        .start()
        .await
        .unwrap();
    let total = HELD + FINISHED_BEFORE;
    eventually(Duration::from_secs(120), "every task completed after the restart", || async {
        store.count_tasks(TaskState::Succeeded).await.unwrap_or(0) == total
    })
    .await;
    stop(handle).await;

    // One recorded completion per task: one succeeded attempt and one completion event.
    let events = store.events_after(0, 1_000_000).await.unwrap();
    let mut completions: HashMap<&str, u32> = HashMap::new();
    for event in events.iter().filter(|e| e.kind == EventKind::TaskSucceeded) {
        *completions.entry(&*event.subject).or_default() += 1;
    }
    assert_eq!(completions.len() as u64, total, "{}: every task has a completion event", backend.as_str());
    assert!(completions.values().all(|&n| n == 1), "{}: exactly one completion event each", backend.as_str());

    // Executions: held tasks twice with the same key, finished ones never again.
    let text = std::fs::read_to_string(&log_path).unwrap();
    let mut executions: HashMap<&str, Vec<&str>> = HashMap::new();
    for line in text.lines() {
        let (task, key) = line.split_once(' ').unwrap();
        executions.entry(task).or_default().push(key);
    }
    assert_eq!(executions.len() as u64, total);
    let mut twice = 0;
    for (task, keys) in &executions {
        let id = task.parse().unwrap();
        let attempts = store.attempts(id).await.unwrap();
        let succeeded = attempts.iter().filter(|a| a.state == TaskState::Succeeded).count();
        assert_eq!(
            succeeded,
            1,
            "{}: task {task} has one recorded completion: {attempts:?}",
            backend.as_str()
        );
        match keys.as_slice() {
            [_] => {}
            [first, second] => {
                assert_eq!(first, second, "{}: a re-run keeps its idempotency key", backend.as_str());
                twice += 1;
            }
            more => panic!("{}: task {task} ran {} times", backend.as_str(), more.len()),
        }
    }
    assert_eq!(twice, HELD, "{}: every held task ran again, and no finished one did", backend.as_str());
}
