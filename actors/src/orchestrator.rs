//! The orchestrator: intake, agent selection, dispatch, retries, deadlines, cancel.
//!
//! It owns the task table and the agent registry. Submissions are checked (target,
//! in-flight limit, idempotency), recorded, committed when durable, then routed to the
//! chosen agent's pool; attempts report back as messages. Nothing slow runs in its
//! mailbox: commits are acknowledged through the store writer, pool starts and store
//! reads run as spawned futures that report back.
//!
//! Each incarnation holds a lease (a row in `nodes`) renewed by heartbeat; the tasks it
//! accepts point to it, and it claims the unfinished tasks of expired leases and of its
//! node's earlier starts (see `recovery`).

mod attempts;
mod client;
mod outcomes;
pub mod quotas;
mod recovery;
mod registration;
mod registry;
mod tasks;
mod wait_slots;
mod waiting;

use std::sync::Arc;
use std::time::Duration;

use mark1_supervisors::{ActorStats, Addr, SupervisorMsg};
use ractor::{Actor, ActorProcessingErr, ActorRef, MessagingErr, RpcReplyPort};
use serde_json::{json, Value};

pub use client::TaskClient;
pub use registry::AgentEntry;
use registry::AgentRegistry;
pub use registry::{AgentHealth, AgentStatus};
pub use tasks::WaitReply;
use tasks::{RecordReply, TaskEntry, TaskTable};
use wait_slots::WaitSlots;

use self::quotas::{QuotaSettings, Quotas};
use crate::agent_instance::AttemptOutcome;
use crate::agents::{AgentCatalog, AgentDefinition, PoolStarter};
use crate::domain::{EventKind, Target, TaskId, TaskRecord, TaskRequest};
use crate::metrics::TaskMetrics;
use crate::ports::{Clock, EventSink, NodeStart, Store, StoreError, Write};
use crate::store_writer::{Ack, Retry, StoreWriterMsg};

/// Why a submission or a task request was refused. Typed, so the edge can map it.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum TaskError {
    #[error("no agent '{name}' in namespace '{namespace}'")]
    UnknownAgent { namespace: String, name: String },
    #[error("no agent in namespace '{namespace}' has the capabilities {capabilities:?}")]
    NoCapableAgent { namespace: String, capabilities: Vec<String> },
    #[error("agent {agent} is failed: {reason}")]
    AgentFailed { agent: String, reason: String },
    #[error("too many tasks in flight (limit {limit}); retry later")]
    Overloaded { limit: usize, retry_after: Duration },
    #[error("agent {agent} has {limit} tasks queued already; retry later")]
    QueueFull { agent: String, limit: usize, retry_after: Duration },
    #[error("idempotency key '{key}' was used for a different task")]
    IdempotencyConflict { key: String },
    #[error("namespace {namespace} has {limit} tasks in flight, its quota; retry in {retry_after:?}")]
    QuotaExceeded { namespace: String, limit: usize, retry_after: Duration },
    #[error("no task {0}")]
    NotFound(TaskId),
    #[error("invalid task: {0}")]
    Invalid(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("the node is shutting down and accepts no new tasks")]
    ShuttingDown,
}

/// How a submission was taken.
#[derive(Clone, Debug, PartialEq)]
pub struct Submitted {
    pub id: TaskId,
    /// The idempotency key matched an earlier task; `id` is that task.
    pub existing: bool,
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum AgentRegistryError {
    #[error("invalid agent: {0}")]
    Invalid(String),
    #[error("agent {0} is already registered")]
    Duplicate(String),
    #[error("no agent {0}")]
    NotFound(String),
    #[error("agent {agent} failed to start: {reason}")]
    StartFailed { agent: String, reason: String },
    /// The change is live but the store did not take it: a restart would not keep it.
    #[error("agent {agent} could not be stored: {reason}")]
    NotStored { agent: String, reason: String },
}

pub enum OrchestratorMsg {
    Submit {
        /// Shared: the orchestrator keeps it for idempotency checks; an `Arc` keeps
        /// the message small.
        request: Arc<TaskRequest>,
        reply: RpcReplyPort<Result<Submitted, TaskError>>,
    },
    /// Submits and replies when the task is final or, with `wait`, once that long has
    /// passed, with the task as it is then: one message for "submit and wait up to".
    SubmitAndWait {
        request: Arc<TaskRequest>,
        wait: Option<Duration>,
        reply: WaitReply,
    },
    /// Internal: the bounded waits filed under this slot are due.
    WaitElapsed {
        slot: u64,
    },
    /// Replies when the task is final or, with `wait`, once that long has passed, with
    /// the task as it is then.
    Wait {
        id: TaskId,
        wait: Option<Duration>,
        reply: RecordReply,
    },
    Get {
        id: TaskId,
        reply: RecordReply,
    },
    Cancel {
        id: TaskId,
        reply: RecordReply,
    },
    /// Cancels the task this node holds under an idempotency key, if any; nobody waits
    /// for the answer (a workflow run dropping a step's task it knows by key only).
    CancelKey {
        namespace: String,
        key: String,
    },
    RegisterAgent {
        definition: AgentDefinition,
        reply: RpcReplyPort<Result<(), AgentRegistryError>>,
    },
    RemoveAgent {
        namespace: String,
        name: String,
        reply: RpcReplyPort<Result<(), AgentRegistryError>>,
    },
    /// Changes an agent's pool bounds.
    ResizeAgent {
        namespace: String,
        name: String,
        min: usize,
        max: usize,
        reply: RpcReplyPort<Result<(), AgentRegistryError>>,
    },
    ListAgents {
        reply: RpcReplyPort<Vec<AgentStatus>>,
    },
    /// Stops intake; replies once no task is in flight.
    Drain {
        reply: RpcReplyPort<()>,
    },
    // Internal messages.
    /// Internal: sends the writes gathered during this turn of the mailbox.
    FlushWrites,
    Accepted {
        id: TaskId,
        result: Result<(), StoreError>,
    },
    AttemptStarted {
        task_id: TaskId,
        attempt: u32,
    },
    AttemptDone {
        task_id: TaskId,
        attempt: u32,
        outcome: AttemptOutcome,
        elapsed: Duration,
        /// The attempt ran and ended before its start was reported (an agent that
        /// answered at once): the start is recorded now, `elapsed` before.
        start_unreported: bool,
    },
    Retry {
        id: TaskId,
        attempt: u32,
    },
    PoolStarted {
        definition: AgentDefinition,
        result: Result<AgentEntry, String>,
        reply: Option<RpcReplyPort<Result<(), AgentRegistryError>>>,
    },
    AgentExited {
        key: String,
        reason: String,
    },
    /// Internal: the store's answer about an idempotency key not held in memory.
    IdempotencyChecked {
        request: Arc<TaskRequest>,
        intake: Intake,
        found: Result<Option<Box<TaskRecord>>, StoreError>,
    },
    /// Internal: claim orphaned tasks now (at start, then with every heartbeat).
    Claim,
    /// Internal: tasks claimed from expired leases.
    Claimed(Result<Vec<TaskRecord>, StoreError>),
    /// Internal: renew this incarnation's lease.
    RenewLease,
}

pub struct OrchestratorArgs {
    pub agents: ActorRef<SupervisorMsg>,
    pub catalog: Arc<AgentCatalog>,
    pub pools: PoolStarter,
    pub store_writer: Addr<StoreWriterMsg>,
    /// The orchestrator's own slot, so what it and its agents send it is counted.
    pub stats: Arc<ActorStats>,
    /// For reads of tasks no longer held in memory (reads never go through the writer).
    pub store: Arc<dyn Store>,
    pub events: Arc<dyn EventSink>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<TaskMetrics>,
    /// Intake limit: tasks accepted and not yet final.
    pub max_in_flight: usize,
    /// Per-namespace limits within that.
    pub quotas: QuotaSettings,
    /// Finished tasks kept in memory for `get` and `wait`.
    pub retain_finished: usize,
    /// The node's name: its lease rows carry it, so a restart finds its earlier starts.
    pub node: String,
    /// How long the lease lasts without a heartbeat (renewed every third of it).
    pub lease_ttl: Duration,
}

pub struct Orchestrator;

pub struct OrchestratorState {
    args: OrchestratorArgs,
    tasks: TaskTable,
    registry: AgentRegistry,
    draining: bool,
    drain_waiters: Vec<RpcReplyPort<()>>,
    /// This actor, counting what is sent to it (mailbox depth in the tree).
    myself: Addr<OrchestratorMsg>,
    /// Writes that need no acknowledgement, sent to the store writer as one message per
    /// turn of the mailbox instead of one per task.
    unacked_writes: Vec<Write>,
    /// The final rows of non-durable tasks, sent as the writer's lazy writes.
    lazy_writes: Vec<Write>,
    flush_scheduled: bool,
    /// This incarnation's lease: the owner of every task it accepts or claims.
    start: NodeStart,
    claiming: bool,
    quotas: Quotas,
    wait_slots: WaitSlots,
}

impl Actor for Orchestrator {
    type Msg = OrchestratorMsg;
    type State = OrchestratorState;
    type Arguments = OrchestratorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: OrchestratorArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        // After a restart, bring back every agent the node knows: pools that survived are
        // found again, missing ones are started.
        let mut registry = AgentRegistry::default();
        for definition in args.catalog.all() {
            match args.pools.start(&args.agents, &definition).await {
                Ok(entry) => registry.insert(entry),
                Err(reason) => {
                    tracing::error!(agent = %definition.spec.key(), %reason, "agent failed to start");
                    let mut entry = args.pools.detached_entry(&definition);
                    entry.health = AgentHealth::Failed(reason);
                    registry.insert(entry);
                }
            }
        }
        let now = args.clock.now();
        let start = NodeStart {
            id: uuid::Uuid::now_v7(),
            node: args.node.clone(),
            started_at: now,
            lease_until: now + args.lease_ttl,
        };
        args.store.open_lease(&start).await.map_err(|e| {
            format!(
                "node '{}': cannot open its lease in the store ({e}); check that the store is reachable",
                args.node
            )
        })?;
        let tasks = TaskTable::new(args.retain_finished);
        let myself = Addr::new(myself, args.stats.clone());
        // Claim what earlier starts left unfinished as soon as the mailbox runs, then keep
        // the lease alive and look for expired ones with every heartbeat.
        myself.cast(OrchestratorMsg::Claim)?;
        myself.send_interval(args.lease_ttl / 3, || OrchestratorMsg::RenewLease);
        let quotas = Quotas::new(args.quotas.clone());
        Ok(OrchestratorState {
            args,
            tasks,
            registry,
            draining: false,
            drain_waiters: Vec::new(),
            myself,
            unacked_writes: Vec::new(),
            lazy_writes: Vec::new(),
            flush_scheduled: false,
            start,
            claiming: false,
            quotas,
            wait_slots: WaitSlots::new(),
        })
    }

    /// A clean stop ends the lease, so whatever is left unfinished is claimable at once.
    async fn post_stop(
        &self,
        _: ActorRef<Self::Msg>,
        state: &mut OrchestratorState,
    ) -> Result<(), ActorProcessingErr> {
        let close = state.args.store.close_lease(state.start.id);
        match tokio::time::timeout(Duration::from_secs(5), close).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "could not end the node lease; it will expire"),
            Err(_) => {
                tracing::warn!("the store did not answer in time to end the node lease; it will expire")
            }
        }
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<Self::Msg>,
        msg: OrchestratorMsg,
        state: &mut OrchestratorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            OrchestratorMsg::Submit { request, reply } => {
                let checked = request.key_is_new;
                state.submit(request, Intake::Accept(reply), checked)
            }
            OrchestratorMsg::SubmitAndWait { request, wait, reply } => {
                let checked = request.key_is_new;
                state.submit(request, Intake::Wait(reply, wait), checked)
            }
            OrchestratorMsg::WaitElapsed { slot } => state.wait_elapsed(slot),
            OrchestratorMsg::IdempotencyChecked { request, intake, found } => {
                state.idempotency_checked(request, intake, found)
            }
            OrchestratorMsg::Claim => state.claim(),
            OrchestratorMsg::Claimed(result) => state.claimed(result),
            OrchestratorMsg::RenewLease => state.renew_lease(),
            OrchestratorMsg::Wait { id, wait, reply } => state.wait(id, reply.into(), wait),
            OrchestratorMsg::Get { id, reply } => match state.tasks.get(&id) {
                Some(entry) => drop(reply.send(Ok(TaskRecord::clone(&entry.record)))),
                None => state.read_from_store(id, reply.into()),
            },
            OrchestratorMsg::Cancel { id, reply } => state.cancel(id, reply),
            OrchestratorMsg::CancelKey { namespace, key } => {
                if let Some(id) = state.tasks.by_idempotency_key(&namespace, &key).map(|e| e.record.id) {
                    let (reply, _) = ractor::concurrency::oneshot();
                    state.cancel(id, reply.into());
                }
            }
            OrchestratorMsg::RegisterAgent { definition, reply } => state.register(definition, reply),
            OrchestratorMsg::RemoveAgent { namespace, name, reply } => state.remove(&namespace, &name, reply),
            OrchestratorMsg::ResizeAgent { namespace, name, min, max, reply } => {
                state.resize(&namespace, &name, (min, max), reply)
            }
            OrchestratorMsg::ListAgents { reply } => drop(reply.send(state.registry.statuses())),
            OrchestratorMsg::Drain { reply } => {
                state.draining = true;
                state.drain_waiters.push(reply);
                state.check_drained();
            }
            OrchestratorMsg::Accepted { id, result } => state.accepted(id, result),
            OrchestratorMsg::FlushWrites => {
                state.flush_scheduled = false;
                state.flush_writes();
            }
            OrchestratorMsg::AttemptStarted { task_id, attempt } => state.attempt_started(task_id, attempt),
            OrchestratorMsg::AttemptDone { task_id, attempt, outcome, elapsed, start_unreported } => {
                state.attempt_done(task_id, attempt, outcome, elapsed, start_unreported)
            }
            OrchestratorMsg::Retry { id, attempt } => state.retry(id, attempt),
            OrchestratorMsg::PoolStarted { definition, result, reply } => {
                state.pool_started(definition, result, reply)
            }
            OrchestratorMsg::AgentExited { key, reason } => {
                if let Some(entry) = state.registry.get_mut(&key) {
                    tracing::error!(agent = %key, %reason, "agent failed");
                    entry.health = AgentHealth::Failed(reason.clone());
                    let _ = state.args.events.emit(
                        EventKind::AgentFailed,
                        entry.spec.namespace.as_str().into(),
                        key.into(),
                        json!({"reason": reason}).into(),
                    );
                }
            }
        }
        Ok(())
    }
}

/// Who hears about a submission, and when.
pub enum Intake {
    /// Replies "accepted" (after the commit, when durable).
    Accept(RpcReplyPort<Result<Submitted, TaskError>>),
    /// Replies with the finished task, or after the bound with the task as it is.
    Wait(WaitReply, Option<Duration>),
}

impl Intake {
    fn refuse(self, error: TaskError) {
        match self {
            Intake::Accept(reply) => drop(reply.send(Err(error))),
            Intake::Wait(reply, _) => reply.send(Err(error)),
        }
    }
}

impl OrchestratorState {
    /// `store_checked`: an idempotency key not held in memory was looked up in the store
    /// already (it may belong to a task of an earlier start).
    fn submit(&mut self, request: Arc<TaskRequest>, intake: Intake, store_checked: bool) {
        match self.admit(request, intake, store_checked) {
            Ok(()) => {}
            Err((intake, error)) => {
                self.args.metrics.rejected.inc();
                intake.refuse(error);
            }
        }
    }

    #[allow(clippy::result_large_err)]
    fn admit(
        &mut self,
        request: Arc<TaskRequest>,
        intake: Intake,
        store_checked: bool,
    ) -> Result<(), (Intake, TaskError)> {
        if self.draining {
            return Err((intake, TaskError::ShuttingDown));
        }
        if request.priority > 9 {
            return Err((
                intake,
                TaskError::Invalid(format!("priority {} is outside 0..=9", request.priority)),
            ));
        }
        if let Some(key) = &request.idempotency_key {
            if let Some(existing) = self.tasks.by_idempotency_key(&request.namespace, key) {
                // The record's comparison, as for keys found in the store: a task claimed
                // after a crash holds a request rebuilt from its row (retries spelled out,
                // times to the microsecond).
                if !existing.record.same_work(&request) {
                    return Err((intake, TaskError::IdempotencyConflict { key: key.clone() }));
                }
                let id = existing.record.id;
                match intake {
                    Intake::Accept(reply) => drop(reply.send(Ok(Submitted { id, existing: true }))),
                    Intake::Wait(reply, wait) => self.wait(id, reply, wait),
                }
                return Ok(());
            }
            if !store_checked {
                self.check_idempotency_in_store(request, intake);
                return Ok(());
            }
        }
        if self.tasks.live() >= self.args.max_in_flight {
            let limit = self.args.max_in_flight;
            return Err((intake, TaskError::Overloaded { limit, retry_after: Duration::from_secs(1) }));
        }
        let (spec, namespace, event_data) = match self.registry.select(&request.namespace, &request.target) {
            Ok(entry) if entry.queue_full() => {
                let (agent, limit) = (entry.spec.key(), entry.spec.queue_limit);
                return Err((
                    intake,
                    TaskError::QueueFull { agent, limit, retry_after: Duration::from_secs(1) },
                ));
            }
            // The selected agent is of the request's namespace, so the task shares its
            // namespace text; its event data is the named agent's (a capability task's
            // agent is chosen at dispatch, and its queued event names none).
            Ok(entry) => (entry.spec.clone(), entry.namespace.clone(), entry.event_data.clone()),
            Err(error) => return Err((intake, error)),
        };
        if let Err(limit) = self.quotas.admit(&request.namespace) {
            let namespace = request.namespace.clone();
            return Err((
                intake,
                TaskError::QuotaExceeded { namespace, limit, retry_after: Duration::from_secs(1) },
            ));
        }

        let max_attempts = 1 + request.retries.unwrap_or(spec.retries.attempts);
        let now = self.args.clock.now();
        let record = TaskRecord::queued(&request, max_attempts, Some(self.start.id), now);
        let id = record.id;
        let durable = request.durable;
        let mut entry = TaskEntry::new(request, record, namespace, spec.timeout, spec.retries.backoff);
        let data = match &entry.record.target {
            Target::Agent(_) => {
                entry.event_data = Some(event_data);
                entry.agent_data()
            }
            Target::Capabilities(_) => Arc::new(Value::Null),
        };
        let queued = self.args.events.emit_at(
            now,
            EventKind::TaskQueued,
            entry.namespace.clone(),
            entry.subject.clone(),
            data,
        );
        // A durable task is committed, with its first event, before it is accepted; a
        // non-durable one is written once, in the background, when it finishes (DESIGN
        // §13.10: it may be lost).
        let accept_write = durable.then(|| entry.put());
        match intake {
            Intake::Wait(reply, wait) => {
                let waiter = self.waiter(id, reply, wait);
                entry.waiters.push(waiter)
            }
            Intake::Accept(reply) if durable => entry.accept_reply = Some(reply),
            Intake::Accept(reply) => drop(reply.send(Ok(Submitted { id, existing: false }))),
        }
        self.tasks.insert(entry);
        self.args.metrics.submitted.inc();
        self.args.metrics.in_flight.inc();
        match accept_write {
            Some(write) => {
                let me = self.myself.clone();
                let ack: Ack =
                    Box::new(move |result| drop(me.cast(OrchestratorMsg::Accepted { id, result })));
                self.write_now(vec![write, Write::AppendEvent(queued)], ack, Retry::No);
            }
            // A non-durable task's events live in the event ring only (DESIGN §13.4).
            None => self.dispatch(id),
        }
        Ok(())
    }

    /// Sends writes whose commit someone waits for. Writes queued by `write_later` go
    /// first, so the writes of one task reach the store in the order they were made.
    fn write_now(&mut self, writes: Vec<Write>, ack: Ack, retry: Retry) {
        self.flush_writes();
        if let Err(MessagingErr::SendErr(StoreWriterMsg::Write { ack: Some(ack), .. })) =
            self.args.store_writer.cast(StoreWriterMsg::Write { writes, ack: Some(ack), retry })
        {
            ack(Err(StoreError::Unavailable("the store writer is not running".into())));
        }
    }

    /// Sends the writes `write_later` and `write_lazily` gathered.
    fn flush_writes(&mut self) {
        let mut sent = Ok(());
        if !self.unacked_writes.is_empty() {
            let writes = std::mem::take(&mut self.unacked_writes);
            sent = self.args.store_writer.cast(StoreWriterMsg::Write {
                writes,
                ack: None,
                retry: Retry::UntilCommitted,
            });
        }
        if !self.lazy_writes.is_empty() {
            let writes = std::mem::take(&mut self.lazy_writes);
            sent = sent.and(self.args.store_writer.cast(StoreWriterMsg::Lazy(writes)));
        }
        if sent.is_err() {
            tracing::error!("the store writer is not running; writes of accepted tasks are lost");
        }
    }

    /// Queues writes of accepted work nobody waits for; they are kept until committed.
    /// The flush message goes to the back of the mailbox, so every write made while the
    /// current backlog is handled joins it.
    fn write_later(&mut self, writes: impl IntoIterator<Item = Write>) {
        self.unacked_writes.extend(writes);
        self.schedule_flush();
    }

    /// Queues the writes of rows no other write touches (see [`StoreWriterMsg::Lazy`]).
    fn write_lazily(&mut self, writes: impl IntoIterator<Item = Write>) {
        self.lazy_writes.extend(writes);
        self.schedule_flush();
    }

    fn schedule_flush(&mut self) {
        if !self.flush_scheduled {
            self.flush_scheduled = self.myself.cast(OrchestratorMsg::FlushWrites).is_ok();
        }
    }
}
