//! [`NodeHandle`]: what a running node offers its embedder.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mark1_actors::audit::{AuditError, AuditMsg};
use mark1_actors::domain::{AuditEntry, TaskId, TaskRecord, TaskRequest};
use mark1_actors::events::{EventFilter, EventPage, EventsError, EventsMsg, Subscription};
use mark1_actors::health::HealthReport;
use mark1_actors::models::ModelRouter;
use mark1_actors::node::NodeTree;
use mark1_actors::orchestrator::{AgentRegistryError, AgentStatus, OrchestratorMsg, Submitted, TaskError};
use mark1_actors::ports::{Agent, NativeRuntime, Store};
use mark1_actors::{agents::AgentDefinition, domain::AgentSpec};
use mark1_supervisors::ActorSnapshot;
use prometheus_client::registry::Registry;
use ractor::rpc::CallResult;
use ractor::RpcReplyPort;
use serde::Serialize;

use super::DeclaredRuntimes;
use crate::config::{Config, ConfigError};
use crate::metrics::HttpMetrics;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreOpenError),
    #[error("invalid agent: {0}")]
    InvalidAgent(String),
    #[error("the node could not start: {0}")]
    Start(String),
    #[error(transparent)]
    Task(#[from] TaskError),
    #[error(transparent)]
    Agent(#[from] AgentRegistryError),
    #[error(transparent)]
    Events(#[from] EventsError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Workflow(#[from] mark1_actors::workflows::WorkflowError),
    #[error(transparent)]
    Scan(#[from] mark1_actors::scans::ScanError),
    /// No such scan, or not visible to the caller.
    #[error("no scan {0}")]
    UnknownScan(String),
    /// A core actor is not running.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A core actor did not answer in time.
    #[error("timed out: {0}")]
    Timeout(String),
}

/// What a graceful shutdown did.
#[derive(Clone, Debug, Serialize)]
pub struct ShutdownReport {
    /// Every task in flight finished before the drain timeout.
    pub drained: bool,
    /// Tasks still in flight when actors were stopped.
    pub abandoned_tasks: i64,
    /// The tree stopped within the timeout (otherwise it was killed).
    pub stopped_cleanly: bool,
    pub elapsed_ms: u64,
}

/// A running node.
pub struct NodeHandle {
    tree: NodeTree,
    config: Config,
    registry: Registry,
    /// Checks and runs process and LLM agents registered at run time.
    declared: DeclaredRuntimes,
    http_metrics: Arc<HttpMetrics>,
}

impl NodeHandle {
    pub(super) fn new(
        tree: NodeTree,
        config: Config,
        registry: Registry,
        declared: DeclaredRuntimes,
        http_metrics: Arc<HttpMetrics>,
    ) -> Self {
        NodeHandle { tree, config, registry, declared, http_metrics }
    }

    /// The edge's request metrics, registered with the node's other metrics.
    pub fn http_metrics(&self) -> &Arc<HttpMetrics> {
        &self.http_metrics
    }

    pub fn name(&self) -> &str {
        &self.tree.name
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Upper bound for control calls into the tree (`server.call_timeout`): a core actor
    /// that does not answer within it is reported as timed out rather than hanging the
    /// caller (HTTP 504).
    fn call_timeout(&self) -> Duration {
        self.config.server.call_timeout
    }

    async fn ask<R: Send + 'static>(
        &self,
        build: impl FnOnce(RpcReplyPort<R>) -> OrchestratorMsg,
        timeout: Duration,
    ) -> Result<R, NodeError> {
        let orchestrator = self
            .tree
            .orchestrator()
            .ok_or_else(|| NodeError::Unavailable("the orchestrator is not running".into()))?;
        match orchestrator.call(build, Some(timeout)).await {
            Ok(CallResult::Success(reply)) => Ok(reply),
            Ok(CallResult::Timeout) => {
                Err(NodeError::Timeout(format!("the orchestrator did not answer within {timeout:?}")))
            }
            Ok(CallResult::SenderError) | Err(_) => {
                Err(NodeError::Unavailable("the orchestrator stopped".into()))
            }
        }
    }

    /// Submits a task; returns once it is accepted (committed, when durable).
    pub async fn submit(&self, request: TaskRequest) -> Result<TaskId, NodeError> {
        Ok(self.submit_detailed(request).await?.id)
    }

    /// Like [`submit`](Self::submit), telling whether an idempotency key matched an earlier task.
    pub async fn submit_detailed(&self, request: TaskRequest) -> Result<Submitted, NodeError> {
        let request = std::sync::Arc::new(request);
        Ok(self.ask(|reply| OrchestratorMsg::Submit { request, reply }, self.call_timeout()).await??)
    }

    /// Submits and waits for the final state in one message.
    pub async fn run(&self, request: TaskRequest, timeout: Duration) -> Result<TaskRecord, NodeError> {
        let request = std::sync::Arc::new(request);
        Ok(self
            .ask(|reply| OrchestratorMsg::SubmitAndWait { request, wait: None, reply: reply.into() }, timeout)
            .await??)
    }

    /// Submits and waits up to `wait` for the task to finish, in one message: returns the
    /// task finished, or as it is when `wait` ends.
    pub async fn submit_and_wait(
        &self,
        request: TaskRequest,
        wait: Duration,
    ) -> Result<TaskRecord, NodeError> {
        let request = std::sync::Arc::new(request);
        let deadline = wait + self.call_timeout();
        let wait = Some(wait);
        Ok(self
            .ask(|reply| OrchestratorMsg::SubmitAndWait { request, wait, reply: reply.into() }, deadline)
            .await??)
    }

    /// Waits up to `timeout` for the task to finish; returns the task as it is then.
    pub async fn wait(&self, id: TaskId, timeout: Duration) -> Result<TaskRecord, NodeError> {
        // One message: the orchestrator answers at the bound with the task as it is, so no
        // waiter is left behind for a task that runs on.
        let wait = Some(timeout);
        Ok(self
            .ask(|reply| OrchestratorMsg::Wait { id, wait, reply }, timeout + self.call_timeout())
            .await??)
    }

    pub async fn get(&self, id: TaskId) -> Result<TaskRecord, NodeError> {
        Ok(self.ask(|reply| OrchestratorMsg::Get { id, reply }, self.call_timeout()).await??)
    }

    pub async fn cancel(&self, id: TaskId) -> Result<TaskRecord, NodeError> {
        Ok(self.ask(|reply| OrchestratorMsg::Cancel { id, reply }, self.call_timeout()).await??)
    }

    /// Registers a native agent on the running node.
    pub async fn register_agent(&self, spec: AgentSpec, agent: impl Agent) -> Result<(), NodeError> {
        let definition = AgentDefinition::new(spec, std::sync::Arc::new(NativeRuntime::new(agent)));
        Ok(self
            .ask(|reply| OrchestratorMsg::RegisterAgent { definition, reply }, self.call_timeout())
            .await??)
    }

    /// Registers a process or LLM agent on the running node. A process agent's command
    /// must lie under `process.allowed_dirs`; an LLM agent's MCP servers must be
    /// configured. The store keeps it, so the node brings it back after a restart.
    pub async fn register_declared_agent(&self, spec: AgentSpec) -> Result<(), NodeError> {
        let key = spec.key();
        let definition = self
            .declared
            .definition(spec)
            .map_err(|e| NodeError::InvalidAgent(format!("agent {key}: {e}")))?;
        Ok(self
            .ask(|reply| OrchestratorMsg::RegisterAgent { definition, reply }, self.call_timeout())
            .await??)
    }

    /// Removes an agent; its pool finishes the work it holds first.
    pub async fn remove_agent(&self, namespace: &str, name: &str) -> Result<(), NodeError> {
        let (namespace, name) = (namespace.to_string(), name.to_string());
        Ok(self
            .ask(|reply| OrchestratorMsg::RemoveAgent { namespace, name, reply }, self.call_timeout())
            .await??)
    }

    /// Changes an agent's pool bounds; the pool grows or shrinks to fit.
    pub async fn resize_agent(
        &self,
        namespace: &str,
        name: &str,
        min: usize,
        max: usize,
    ) -> Result<(), NodeError> {
        let (namespace, name) = (namespace.to_string(), name.to_string());
        Ok(self
            .ask(
                |reply| OrchestratorMsg::ResizeAgent { namespace, name, min, max, reply },
                self.call_timeout(),
            )
            .await??)
    }

    /// Whether every core actor under the root is running (readiness).
    pub fn core_actors_running(&self) -> bool {
        // The root's children only, read from their counters: no snapshot of every worker.
        let core = self.tree.stats.children();
        !core.is_empty() && core.iter().all(|c| c.status() == mark1_supervisors::Status::Running)
    }

    pub async fn agents(&self) -> Result<Vec<AgentStatus>, NodeError> {
        self.ask(|reply| OrchestratorMsg::ListAgents { reply }, self.call_timeout()).await
    }

    /// Subscribes to events after `after` (None: new events only). A cursor older than
    /// the ring resumes from the store; an expired one is reported by the first `next`.
    pub async fn subscribe(
        &self,
        filter: EventFilter,
        after: Option<u64>,
    ) -> Result<Subscription, NodeError> {
        self.ask_events(|reply| EventsMsg::Subscribe { filter, after, reply }).await
    }

    /// At most `limit` events after `after` matching `filter`, from the store and the ring.
    pub async fn list_events(
        &self,
        filter: EventFilter,
        after: u64,
        limit: usize,
    ) -> Result<EventPage, NodeError> {
        Ok(self.ask_events(|reply| EventsMsg::List { filter, after, limit, reply }).await??)
    }

    async fn ask_events<R: Send + 'static>(
        &self,
        build: impl FnOnce(RpcReplyPort<R>) -> EventsMsg,
    ) -> Result<R, NodeError> {
        let events = self
            .tree
            .events_actor()
            .ok_or_else(|| NodeError::Unavailable("the events actor is not running".into()))?;
        let timeout = self.call_timeout();
        match events.call(build, Some(timeout)).await {
            Ok(CallResult::Success(reply)) => Ok(reply),
            Ok(CallResult::Timeout) => {
                Err(NodeError::Timeout(format!("the events actor did not answer within {timeout:?}")))
            }
            Ok(CallResult::SenderError) | Err(_) => {
                Err(NodeError::Unavailable("the events actor stopped".into()))
            }
        }
    }

    /// Appends an audit record to the node's chain (named after the node); returns once
    /// it is committed.
    pub async fn audit(&self, entry: AuditEntry) -> Result<(), NodeError> {
        let audit = self
            .tree
            .audit_actor()
            .ok_or_else(|| NodeError::Unavailable("the audit actor is not running".into()))?;
        match audit.call(|reply| AuditMsg::Record(entry, reply), Some(self.call_timeout())).await {
            Ok(CallResult::Success(result)) => Ok(result?),
            Ok(CallResult::Timeout) => Err(NodeError::Timeout(format!(
                "the audit actor did not answer within {:?}",
                self.call_timeout()
            ))),
            Ok(CallResult::SenderError) | Err(_) => {
                Err(NodeError::Unavailable("the audit actor stopped".into()))
            }
        }
    }

    /// The node's store, for reads that need no actor: API keys, task listings, the audit log.
    pub fn store(&self) -> Arc<dyn Store> {
        self.tree.store.clone()
    }

    /// The live actor tree, read from counters without messaging any actor.
    pub fn tree(&self) -> ActorSnapshot {
        self.tree.snapshot()
    }

    /// The model router: every model call of the node goes through it.
    pub fn models(&self) -> &ModelRouter {
        &self.tree.models
    }

    pub fn health(&self) -> HealthReport {
        self.tree.health.read().clone()
    }

    /// Tasks, rows and commits done so far: benches report these as `work`.
    pub fn tree_internals(&self) -> &NodeTree {
        &self.tree
    }

    /// Prometheus text exposition of this node's metrics.
    pub fn metrics_text(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String");
        out
    }

    /// Whether the root supervisor still runs (a core actor escalating stops it).
    pub fn is_running(&self) -> bool {
        self.tree.is_running()
    }

    /// Waits until the node stops by itself (root escalation). Returns at once if stopped.
    pub async fn stopped(&self) {
        self.tree.finished().await;
    }

    /// Graceful, ordered shutdown: stop intake and drain in-flight tasks (up to
    /// `timeout`), then stop actors in reverse start order; the store writer commits
    /// what it holds last. Takes `&self` so a handle shared by many tasks (an `Arc`)
    /// can be shut down; calls after it fail as unavailable.
    pub async fn shutdown(&self, timeout: Duration) -> ShutdownReport {
        let started = Instant::now();
        let drained = matches!(self.ask(|reply| OrchestratorMsg::Drain { reply }, timeout).await, Ok(()));
        let abandoned_tasks = self.tree.metrics.in_flight.get();
        let left = timeout.saturating_sub(started.elapsed()).max(Duration::from_secs(1));
        // Stopping the root stops its children in reverse start order, each draining
        // its mailbox first; the store writer, started first, commits last.
        self.tree.root.stop(Some("shutdown".into()));
        let stopped_cleanly = match tokio::time::timeout(left, self.tree.finished()).await {
            Ok(()) => true,
            Err(_) => {
                self.tree.root.kill();
                false
            }
        };
        // Last, once no agent can call them: the MCP servers the node started. Bounded,
        // since a connection being made holds its server's lock for up to its timeout.
        let _ = tokio::time::timeout(Duration::from_secs(5), self.declared.llm.close()).await;
        ShutdownReport {
            drained,
            abandoned_tasks,
            stopped_cleanly,
            elapsed_ms: started.elapsed().as_millis() as u64,
        }
    }
}
