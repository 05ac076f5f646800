//! The `AgentRuntime` port and the native `Agent` trait.

use std::sync::Arc;
use std::time::SystemTime;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::EventSink;
use crate::domain::{AgentSpec, EventKind, TaskId};
use crate::orchestrator::TaskClient;

/// Everything an agent gets to know about the task it runs.
#[derive(Clone, Debug)]
pub struct TaskContext {
    pub task_id: TaskId,
    /// 1 for the first attempt; a re-run after a crash keeps its number.
    pub attempt: u32,
    /// Stable across re-runs of the same attempt (after a crash), new for each retry after
    /// a failure: `<task id>:<attempt>`, or the submitter's key for the first attempt and
    /// `<key>:<attempt>` for later ones.
    pub idempotency_key: String,
    pub deadline: Option<SystemTime>,
    pub namespace: Arc<str>,
    pub traceparent: Option<String>,
    /// Who submitted the task (`key:<id>`, `user:<name>`…); the sub-tasks an agent
    /// submits (in the task's namespace) are recorded as theirs.
    pub submitter: Option<String>,
    /// Fires when the task is cancelled or its time is up; the agent should stop promptly.
    pub cancel: CancellationToken,
    /// Progress reports, relayed as `task.progress` events.
    pub progress: Option<Progress>,
    /// The orchestrator, for sub-tasks (agents calling agents); `None` outside a node.
    pub tasks: Option<TaskClient>,
}

/// Where an agent's progress reports go: `task.progress` events of its task.
#[derive(Clone)]
pub struct Progress {
    sink: Arc<dyn EventSink>,
    task_id: TaskId,
    namespace: Arc<str>,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress").field("task_id", &self.task_id).finish()
    }
}

impl Progress {
    pub fn new(sink: Arc<dyn EventSink>, task_id: TaskId, namespace: Arc<str>) -> Self {
        Progress { sink, task_id, namespace }
    }

    pub fn report(&self, data: Value) {
        let subject = self.task_id.text();
        self.sink.emit(EventKind::TaskProgress, self.namespace.clone(), subject, data.into());
    }
}

impl TaskContext {
    pub fn report_progress(&self, data: Value) {
        if let Some(p) = &self.progress {
            p.report(data);
        }
    }
}

/// Why an agent did not produce an output. Task failures are values, not panics.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum AgentError {
    /// The agent reported an error.
    #[error("{message}")]
    Failed { message: String, retryable: bool },
    /// The agent broke its protocol: malformed output, an oversized line, a wrong id.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The agent's process exited or its worker died.
    #[error("agent crashed: {0}")]
    Crashed(String),
    /// The agent could not start.
    #[error("agent failed to start: {0}")]
    StartFailed(String),
    #[error("cancelled")]
    Cancelled,
}

impl AgentError {
    pub fn failed(message: impl Into<String>) -> Self {
        AgentError::Failed { message: message.into(), retryable: false }
    }

    pub fn retryable(message: impl Into<String>) -> Self {
        AgentError::Failed { message: message.into(), retryable: true }
    }

    /// Whether another attempt may succeed. A crash is retryable: the supervisor brings
    /// up a fresh instance. A protocol error is not: the same agent will break it again.
    pub fn is_retryable(&self) -> bool {
        match self {
            AgentError::Failed { retryable, .. } => *retryable,
            AgentError::Crashed(_) => true,
            AgentError::Protocol(_) | AgentError::StartFailed(_) | AgentError::Cancelled => false,
        }
    }

    /// Whether the worker behind the instance can no longer be trusted and must be
    /// replaced (by its supervisor restarting the instance).
    pub fn breaks_worker(&self) -> bool {
        matches!(self, AgentError::Crashed(_) | AgentError::Protocol(_))
    }
}

/// A Rust agent, registered through the embedding API.
pub trait Agent: Send + Sync + 'static {
    fn handle(
        &self,
        ctx: TaskContext,
        input: Value,
    ) -> impl std::future::Future<Output = Result<Value, AgentError>> + Send;
}

/// Object-safe form of [`Agent`].
#[async_trait::async_trait]
trait DynAgent: Send + Sync + 'static {
    async fn handle_dyn(&self, ctx: TaskContext, input: Value) -> Result<Value, AgentError>;
}

#[async_trait::async_trait]
impl<A: Agent> DynAgent for A {
    async fn handle_dyn(&self, ctx: TaskContext, input: Value) -> Result<Value, AgentError> {
        self.handle(ctx, input).await
    }
}

/// Starts the worker behind one agent instance (a process, a connection, a native value).
#[async_trait::async_trait]
pub trait AgentRuntime: Send + Sync + 'static {
    async fn start(&self, spec: &AgentSpec) -> Result<Box<dyn AgentWorker>, AgentError>;
}

/// The worker of one agent instance: runs one task at a time.
#[async_trait::async_trait]
pub trait AgentWorker: Send + 'static {
    /// Runs one task. Must return promptly with `AgentError::Cancelled` (or the result,
    /// if it came first) once `ctx.cancel` fires.
    async fn run(&mut self, ctx: TaskContext, input: Value) -> Result<Value, AgentError>;

    /// Why the worker can no longer run tasks (its process was killed after ignoring a
    /// cancel, say), or `None` while it is fine. A broken worker is replaced.
    fn broken(&self) -> Option<String> {
        None
    }

    /// Stops the worker (ends the process). Called when the instance stops normally.
    async fn shutdown(self: Box<Self>) {}
}

/// The runtime of native agents: every instance shares the one registered value.
#[derive(Clone)]
pub struct NativeRuntime {
    agent: Arc<dyn DynAgent>,
}

impl NativeRuntime {
    pub fn new<A: Agent>(agent: A) -> Self {
        NativeRuntime { agent: Arc::new(agent) }
    }
}

#[async_trait::async_trait]
impl AgentRuntime for NativeRuntime {
    async fn start(&self, _spec: &AgentSpec) -> Result<Box<dyn AgentWorker>, AgentError> {
        Ok(Box::new(NativeWorker { agent: self.agent.clone() }))
    }
}

struct NativeWorker {
    agent: Arc<dyn DynAgent>,
}

#[async_trait::async_trait]
impl AgentWorker for NativeWorker {
    async fn run(&mut self, ctx: TaskContext, input: Value) -> Result<Value, AgentError> {
        let cancel = ctx.cancel.clone();
        tokio::select! {
            biased;
            result = self.agent.handle_dyn(ctx, input) => result,
            _ = cancel.cancelled() => Err(AgentError::Cancelled),
        }
    }
}
