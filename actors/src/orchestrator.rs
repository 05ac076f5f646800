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
pub mod quotas;
mod recovery;
mod registration;
mod registry;
mod tasks;
mod wait_slots;

use std::sync::Arc;
use std::time::{Duration, Instant};

use mark1_supervisors::{ActorStats, Addr, SupervisorMsg};
use ractor::{Actor, ActorProcessingErr, ActorRef, MessagingErr, RpcReplyPort};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

pub use registry::AgentEntry;
use registry::AgentRegistry;
pub use registry::{AgentHealth, AgentStatus};
use tasks::{RecordReply, TaskEntry, TaskTable, Waiter};
use wait_slots::WaitSlots;

use self::quotas::{QuotaSettings, Quotas};
use crate::agent_instance::AttemptOutcome;
use crate::agents::{AgentCatalog, AgentDefinition, PoolStarter};
use crate::domain::{EventKind, TaskId, TaskRecord, TaskRequest, TaskState};
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
        reply: RecordReply,
    },
    /// Internal: the bounded waits filed under this slot are due.
    WaitElapsed {
        slot: u64,
    },
    /// Replies when the task is final.
    Wait {
        id: TaskId,
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
        args.store.open_lease(&start).await?;
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
            OrchestratorMsg::Submit { request, reply } => state.submit(request, Intake::Accept(reply), false),
            OrchestratorMsg::SubmitAndWait { request, wait, reply } => {
                state.submit(request, Intake::Wait(reply, wait), false)
            }
            OrchestratorMsg::WaitElapsed { slot } => state.wait_elapsed(slot),
            OrchestratorMsg::IdempotencyChecked { request, intake, found } => {
                state.idempotency_checked(request, intake, found)
            }
            OrchestratorMsg::Claim => state.claim(),
            OrchestratorMsg::Claimed(result) => state.claimed(result),
            OrchestratorMsg::RenewLease => state.renew_lease(),
            OrchestratorMsg::Wait { id, reply } => state.wait(id, reply, None),
            OrchestratorMsg::Get { id, reply } => match state.tasks.get(&id) {
                Some(entry) => drop(reply.send(Ok(entry.record.clone()))),
                None => state.read_from_store(id, reply),
            },
            OrchestratorMsg::Cancel { id, reply } => state.cancel(id, reply),
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
            OrchestratorMsg::AttemptDone { task_id, attempt, outcome, elapsed } => {
                state.attempt_done(task_id, attempt, outcome, elapsed)
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
                        &entry.spec.namespace,
                        key,
                        json!({"reason": reason}),
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
    Wait(RecordReply, Option<Duration>),
}

impl Intake {
    fn refuse(self, error: TaskError) {
        match self {
            Intake::Accept(reply) => drop(reply.send(Err(error))),
            Intake::Wait(reply, _) => drop(reply.send(Err(error))),
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
                if !existing.request.same_work(&request) {
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
        let spec = match self.registry.select(&request.namespace, &request.target) {
            Ok(entry) if entry.queue_full() => {
                let (agent, limit) = (entry.spec.key(), entry.spec.queue_limit);
                return Err((
                    intake,
                    TaskError::QueueFull { agent, limit, retry_after: Duration::from_secs(1) },
                ));
            }
            Ok(entry) => entry.spec.clone(),
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
        let mut entry = TaskEntry {
            attempt_timeout: request.timeout.unwrap_or(spec.timeout),
            retry_backoff: spec.retries.backoff,
            request,
            record,
            agent_key: None,
            cancel: CancellationToken::new(),
            waiters: Vec::new(),
            accept_reply: None,
            subject: id.to_string(),
            attempt_started_at: None,
            holds_run_slot: false,
        };
        let data = entry.event_agent().map_or(Value::Null, |agent| json!({"agent": agent}));
        let queued = self.args.events.emit_at(
            now,
            EventKind::TaskQueued,
            &entry.record.namespace,
            entry.subject.clone(),
            data,
        );
        // A durable task is committed, with its first event, before it is accepted; a
        // non-durable one is written once, in the background, when it finishes (DESIGN
        // §13.10: it may be lost).
        let accept_write = durable.then(|| Write::PutTask(Box::new(entry.record.clone())));
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

    /// Sends the writes `write_later` gathered.
    fn flush_writes(&mut self) {
        if self.unacked_writes.is_empty() {
            return;
        }
        let writes = std::mem::take(&mut self.unacked_writes);
        let message = StoreWriterMsg::Write { writes, ack: None, retry: Retry::UntilCommitted };
        if self.args.store_writer.cast(message).is_err() {
            tracing::error!("the store writer is not running; writes of accepted tasks are lost");
        }
    }

    /// Replies when the task is final, and for a durable task once its final state is
    /// committed: a task that finished moments ago may still have its final write in the
    /// store writer, so the reply goes through a barrier there (acked once everything
    /// sent before it is committed).
    fn wait(&mut self, id: TaskId, reply: RecordReply, wait: Option<Duration>) {
        if self.tasks.get(&id).is_some_and(|e| !e.record.state.is_final()) {
            let waiter = self.waiter(id, reply, wait);
            return self.tasks.get_mut(&id).expect("just seen").waiters.push(waiter);
        }
        let Some(entry) = self.tasks.get_mut(&id) else {
            // Not held here: finished long ago (or unknown); the store has the last word.
            return self.read_from_store(id, reply);
        };
        if !entry.record.durable {
            return drop(reply.send(Ok(entry.record.clone())));
        }
        let record = entry.record.clone();
        let ack: Ack = Box::new(move |result| {
            let answer = result
                .map(|()| record)
                .map_err(|e| TaskError::Unavailable(format!("the final state was not stored: {e}")));
            let _ = reply.send(answer);
        });
        self.write_now(Vec::new(), ack, Retry::UntilCommitted);
    }

    /// Answers from the store for a task no longer held in memory; the read runs outside
    /// the mailbox.
    fn read_from_store(&self, id: TaskId, reply: RecordReply) {
        let store = self.args.store.clone();
        tokio::spawn(async move {
            let result = match store.task(id).await {
                Ok(Some(record)) => Ok(record),
                Ok(None) => Err(TaskError::NotFound(id)),
                Err(error) => Err(TaskError::Unavailable(error.to_string())),
            };
            let _ = reply.send(result);
        });
    }

    /// Queues writes of accepted work nobody waits for; they are kept until committed.
    /// The flush message goes to the back of the mailbox, so every write made while the
    /// current backlog is handled joins it.
    fn write_later(&mut self, writes: impl IntoIterator<Item = Write>) {
        self.unacked_writes.extend(writes);
        if !self.flush_scheduled {
            self.flush_scheduled = self.myself.cast(OrchestratorMsg::FlushWrites).is_ok();
        }
    }

    /// A durable task's commit finished: accept it and dispatch, or refuse it.
    fn accepted(&mut self, id: TaskId, result: Result<(), StoreError>) {
        // Cancelled while its commit was in flight: it already has its final state, and
        // the submitter already heard "accepted".
        if self.tasks.get(&id).is_none_or(|e| e.record.state.is_final()) {
            return;
        }
        match result {
            Ok(()) => {
                if let Some(reply) = self.tasks.get_mut(&id).and_then(|e| e.accept_reply.take()) {
                    let _ = reply.send(Ok(Submitted { id, existing: false }));
                }
                self.dispatch(id);
            }
            Err(error) => {
                if let Some(entry) = self.tasks.forget(&id) {
                    self.quotas.finished(&entry.record.namespace, id);
                    self.args.metrics.in_flight.dec();
                    self.args.metrics.rejected.inc();
                    let error = TaskError::Unavailable(error.to_string());
                    if let Some(reply) = entry.accept_reply {
                        let _ = reply.send(Err(error.clone()));
                    }
                    self.wait_slots.unfile(id, &entry.waiters);
                    for waiter in entry.waiters {
                        waiter.send(Err(error.clone()));
                    }
                }
            }
        }
    }

    fn cancel(&mut self, id: TaskId, reply: RecordReply) {
        let Some(entry) = self.tasks.get(&id) else {
            let _ = reply.send(Err(TaskError::NotFound(id)));
            return;
        };
        if !entry.record.state.is_final() {
            // The token reaches the attempt wherever it is: queued in a pool (it will not
            // start) or running (the agent is told; a process gets `cancel`, then a kill).
            entry.cancel.cancel();
            self.finish(id, TaskState::Cancelled, None, Some("cancelled".into()));
        }
        let _ = reply.send(self.tasks.get(&id).map(|e| e.record.clone()).ok_or(TaskError::NotFound(id)));
    }

    /// Records the final state, emits the event, writes the record and tells the waiters:
    /// those of a durable task once the final state is committed.
    fn finish(&mut self, id: TaskId, state: TaskState, output: Option<Value>, error: Option<String>) {
        let now = self.args.clock.now();
        let Some(entry) = self.tasks.get_mut(&id) else { return };
        entry.record.state = state;
        entry.record.output = output;
        entry.record.error = if state == TaskState::Succeeded { None } else { error };
        entry.record.updated_at = now;
        let attempt = entry.ended_attempt(state, now);
        let held = std::mem::take(&mut entry.holds_run_slot);
        self.wait_slots.unfile(id, &entry.waiters);
        let quota = self.quotas.enabled().then(|| (entry.record.namespace.clone(), held));
        // Metrics, the event and the write come first: whoever hears the final state
        // can already see them.
        let metrics = &self.args.metrics;
        metrics.finished(state);
        metrics.in_flight.dec();
        metrics
            .duration
            .observe(now.duration_since(entry.record.created_at).unwrap_or_default().as_secs_f64());
        let agent = entry.event_agent();
        let data = match state {
            // The record has the attempt count; the common case carries only the agent.
            TaskState::Succeeded => json!({"agent": agent}),
            _ => json!({"agent": agent, "attempt": entry.record.attempt, "error": entry.record.error}),
        };
        // The last event of the task: its subject text is not needed afterwards.
        let subject = std::mem::take(&mut entry.subject);
        let kind = EventKind::for_task_state(state);
        let event = self.args.events.emit_at(now, kind, &entry.record.namespace, subject, data);
        let mut writes = vec![Write::PutTask(Box::new(entry.record.clone()))];
        if let Some(reply) = entry.accept_reply.take() {
            // Finished before its commit was acknowledged (cancelled at once, say).
            let _ = reply.send(Ok(Submitted { id, existing: false }));
        }
        if entry.record.durable {
            writes.push(Write::AppendEvent(event));
            writes.extend(attempt.map(|a| Write::PutAttempt(Box::new(a))));
            let waiters = std::mem::take(&mut entry.waiters);
            let record = entry.record.clone();
            let ack: Ack = Box::new(move |result| {
                let reply = result
                    .map(|()| record)
                    .map_err(|e| TaskError::Unavailable(format!("the final state was not stored: {e}")));
                for waiter in waiters {
                    waiter.send(reply.clone());
                }
            });
            self.write_now(writes, ack, Retry::UntilCommitted);
        } else {
            for waiter in entry.waiters.drain(..) {
                waiter.send(Ok(entry.record.clone()));
            }
            self.write_later(writes);
        }
        self.tasks.finished(id);
        if let Some((namespace, held)) = quota {
            if held {
                self.quotas.release(&namespace);
            }
            self.quotas.finished(&namespace, id);
            self.run_waiting(&namespace);
        }
        self.check_drained();
    }

    /// Dispatches the next task of `namespace` that waits for a run slot, if one is free.
    fn run_waiting(&mut self, namespace: &str) {
        while let Some(next) = self.quotas.next_waiting(namespace) {
            if self.tasks.get(&next).is_some_and(|e| !e.record.state.is_final()) {
                return self.dispatch(next);
            }
        }
    }

    /// A waiter of task `id`; a bounded one gets a timer that answers it at its bound.
    /// A waiter of task `id`; a bounded one is filed in the wait slots (a new slot gets a
    /// timer message).
    fn waiter(&mut self, id: TaskId, reply: RecordReply, wait: Option<Duration>) -> Waiter {
        let Some(wait) = wait else { return Waiter { reply, until: None, slot: None } };
        let until = Instant::now() + wait;
        let (slot, timer) = self.wait_slots.add(id, until);
        if let Some(delay) = timer {
            let timer = self.myself.send_after(delay, move || OrchestratorMsg::WaitElapsed { slot });
            self.wait_slots.timer(slot, timer.abort_handle());
        }
        Waiter { reply, until: Some(until), slot: Some(slot) }
    }

    /// Answers the bounded waiters whose bound has passed, with their task as it is now.
    /// (A finished task's waiters were answered, and its ids taken out, when it finished.)
    fn wait_elapsed(&mut self, slot: u64) {
        let now = Instant::now();
        for id in self.wait_slots.take(slot) {
            let Some(entry) = self.tasks.get_mut(&id) else { continue };
            if entry.record.state.is_final() {
                continue;
            }
            let (due, waiting): (Vec<Waiter>, Vec<Waiter>) = std::mem::take(&mut entry.waiters)
                .into_iter()
                .partition(|w| w.until.is_some_and(|u| u <= now));
            entry.waiters = waiting;
            for waiter in due {
                waiter.send(Ok(entry.record.clone()));
            }
        }
    }

    fn check_drained(&mut self) {
        if self.draining && self.tasks.live() == 0 {
            for reply in self.drain_waiters.drain(..) {
                let _ = reply.send(());
            }
        }
    }
}
