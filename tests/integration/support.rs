//! Shared helpers: test agents, node builders, polling.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mark1::config::ConfigLoader;
use mark1::{Agent, AgentError, Config, Node, NodeHandle, TaskContext};
use serde_json::{json, Value};

/// A configuration with no file and no environment, its data under `dir`.
pub fn config(dir: &std::path::Path, name: &str) -> Config {
    ConfigLoader::new()
        .no_file()
        .env(Vec::<(String, String)>::new())
        .set("node.name", name)
        .set("node.data_dir", dir.to_str().unwrap())
        .load()
        .expect("test config loads")
}

/// A unique node name per test: registry names are global to the process.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}", N.fetch_add(1, Ordering::Relaxed))
}

pub struct Echo;

impl Agent for Echo {
    async fn handle(&self, _: TaskContext, input: Value) -> Result<Value, AgentError> {
        Ok(input)
    }
}

/// Sleeps for `input.ms`, then answers; reports whether it saw a cancellation.
pub struct Sleeper {
    pub cancelled: Arc<AtomicU32>,
}

impl Agent for Sleeper {
    async fn handle(&self, ctx: TaskContext, input: Value) -> Result<Value, AgentError> {
        let ms = input["ms"].as_u64().unwrap_or(10_000);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(ms)) => Ok(json!({"slept": ms})),
            _ = ctx.cancel.cancelled() => {
                self.cancelled.fetch_add(1, Ordering::SeqCst);
                Err(AgentError::Cancelled)
            }
        }
    }
}

/// Fails retryably until its `nth` call, then succeeds; counts calls.
pub struct Flaky {
    pub calls: Arc<AtomicU32>,
    pub succeed_on: u32,
    pub retryable: bool,
}

impl Agent for Flaky {
    async fn handle(&self, ctx: TaskContext, _: Value) -> Result<Value, AgentError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if n >= self.succeed_on {
            return Ok(json!({"attempt": ctx.attempt, "key": ctx.idempotency_key}));
        }
        Err(AgentError::Failed { message: format!("call {n} failed"), retryable: self.retryable })
    }
}

/// Panics on every task.
pub struct Panicker;

impl Agent for Panicker {
    async fn handle(&self, _: TaskContext, _: Value) -> Result<Value, AgentError> {
        panic!("agent bug")
    }
}

/// Appends `<task id> <idempotency key>` per execution (the crash tests' agents); O_APPEND
/// writes of one line are atomic, and the page cache keeps them when the process is killed.
pub struct ExecutionLog(parking_lot::Mutex<std::fs::File>);

impl ExecutionLog {
    pub fn open(path: &std::path::Path) -> Arc<Self> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
        Arc::new(ExecutionLog(parking_lot::Mutex::new(file)))
    }

    pub fn record(&self, ctx: &TaskContext) {
        use std::io::Write as _;
        let line = format!("{} {}\n", ctx.task_id, ctx.idempotency_key);
        self.0.lock().write_all(line.as_bytes()).unwrap();
    }
}

/// A node builder on a fresh configuration under `dir`.
pub fn builder(dir: &std::path::Path) -> mark1::NodeBuilder {
    Node::builder().config(config(dir, &unique("node")))
}

/// Builds and starts the node, then waits until its first `agents` agents have workers.
pub async fn started(builder: mark1::NodeBuilder, agents: usize) -> NodeHandle {
    let handle = builder.build().await.expect("node builds").start().await.expect("node starts");
    agents_ready(&handle, agents).await;
    handle
}

/// Polls `check` until it is true or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let until = Instant::now() + within;
    while Instant::now() < until {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// Waits until the task is running on an agent.
pub async fn running(handle: &NodeHandle, id: mark1::TaskId) {
    eventually(Duration::from_secs(5), "task running", || async {
        handle.get(id).await.map(|t| t.state == mark1::TaskState::Running).unwrap_or(false)
    })
    .await
}

/// Waits until the node lists `n` agents with at least one worker each.
pub async fn agents_ready(handle: &NodeHandle, n: usize) {
    eventually(Duration::from_secs(20), "agents ready", || async {
        handle.agents().await.map(|a| a.len() >= n && a.iter().all(|a| a.workers > 0)).unwrap_or(false)
    })
    .await
}

/// Shuts down and checks nothing panicked or hung.
pub async fn stop(handle: NodeHandle) {
    let report = handle.shutdown(Duration::from_secs(10)).await;
    assert!(report.stopped_cleanly, "clean shutdown: {report:?}");
}

/// A durable start of `workflow` in the default namespace, submitted by `submitter`.
pub fn start_run(workflow: &str, input: Value, submitter: &str) -> mark1::workflows::StartRun {
    mark1::workflows::StartRun {
        namespace: "default".into(),
        workflow: workflow.into(),
        version: None,
        input,
        idempotency_key: None,
        submitter: Some(submitter.into()),
        durable: true,
        parent: None,
    }
}
