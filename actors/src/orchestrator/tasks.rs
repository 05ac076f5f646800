//! The orchestrator's table of tasks: live ones, and a bounded tail of finished ones.

use std::collections::{HashMap, VecDeque};

use foldhash::fast::RandomState;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ractor::RpcReplyPort;
use serde_json::Value;
use smallvec::SmallVec;
use tokio_util::sync::CancellationToken;

use super::registry::AgentEventData;
use super::{Submitted, TaskError};
use crate::domain::{TaskId, TaskRecord, TaskRequest, TaskState};
use crate::ports::{AttemptRecord, Write};

pub type RecordReply = RpcReplyPort<Result<TaskRecord, TaskError>>;

/// Where the answer to a wait goes: a reply port someone awaits, or a continuation the
/// orchestrator runs itself when the answer is ready. A workflow run's step turns the
/// answer into a message to the run this way, with no task waiting on a port in
/// between (one wake-up less per step). A continuation runs inside the orchestrator's
/// handler, so it only sends messages or spawns; dropped unanswered (the orchestrator
/// stopped), it must notice on its own, as a port's receiver would.
pub enum WaitReply {
    Port(RecordReply),
    Then(Box<dyn FnOnce(Result<TaskRecord, TaskError>) + Send>),
}

impl WaitReply {
    pub fn send(self, answer: Result<TaskRecord, TaskError>) {
        match self {
            WaitReply::Port(port) => drop(port.send(answer)),
            WaitReply::Then(then) => then(answer),
        }
    }
}

impl From<RecordReply> for WaitReply {
    fn from(port: RecordReply) -> Self {
        WaitReply::Port(port)
    }
}

/// Someone waiting for a task to finish; a bounded wait is answered with the task as it
/// is at `until` if it has not finished by then.
pub struct Waiter {
    pub reply: WaitReply,
    pub until: Option<Instant>,
    /// The slot of the orchestrator's wait timers `until` is filed under.
    pub slot: Option<u64>,
}

impl Waiter {
    pub fn send(self, answer: Result<TaskRecord, TaskError>) {
        self.reply.send(answer);
    }
}

/// A task's waiters: almost always its submitter alone, so one is held inline.
pub type Waiters = SmallVec<[Waiter; 1]>;

pub struct TaskEntry {
    /// Shared with the writes of it (`Write::PutTask`): changed through
    /// [`record_mut`](Self::record_mut), which copies it only while a write still holds it.
    pub record: Arc<TaskRecord>,
    pub request: Arc<TaskRequest>,
    /// The agent (`<namespace>/<name>`) of the current attempt.
    pub agent_key: Option<Arc<str>>,
    /// The event data of the agent [`event_agent`](Self::event_agent) names, shared with
    /// its registry entry; `None` until the agent is known that way.
    pub event_data: Option<Arc<AgentEventData>>,
    /// Time one attempt may take.
    pub attempt_timeout: Duration,
    pub retry_backoff: Duration,
    /// Cancels the current attempt (and, through `cancel`, the task).
    pub cancel: CancellationToken,
    /// Waiting for the task to finish.
    pub waiters: Waiters,
    /// A durable submission waiting for its commit before it hears "accepted".
    pub accept_reply: Option<RpcReplyPort<Result<Submitted, TaskError>>>,
    /// The task's namespace, shared with its agent's registry entry where it has one:
    /// every event and attempt of the task carries it.
    pub namespace: Arc<str>,
    /// The task id as text, made once: it is the subject of every event of the task.
    pub subject: Arc<str>,
    /// When the current attempt started running; kept for durable tasks only, whose
    /// attempts are stored.
    pub attempt_started_at: Option<SystemTime>,
    /// Holds one of its namespace's run slots (quotas), from dispatch to the attempt's end.
    pub holds_run_slot: bool,
}

impl TaskEntry {
    /// A task just accepted or taken over: queued, nobody waiting yet. `namespace` is
    /// the record's; `timeout` and `backoff` are the agent's, for what the request leaves
    /// unset.
    pub fn new(
        request: Arc<TaskRequest>,
        record: TaskRecord,
        namespace: Arc<str>,
        timeout: Duration,
        backoff: Duration,
    ) -> Self {
        debug_assert_eq!(*namespace, *record.namespace);
        TaskEntry {
            attempt_timeout: request.timeout.unwrap_or(timeout),
            retry_backoff: backoff,
            namespace,
            subject: record.id.text(),
            request,
            record: Arc::new(record),
            agent_key: None,
            event_data: None,
            cancel: CancellationToken::new(),
            waiters: Waiters::new(),
            accept_reply: None,
            attempt_started_at: None,
            holds_run_slot: false,
        }
    }

    /// The record to change: copied first if a write still holds it, so the write keeps
    /// the record as it was put.
    pub fn record_mut(&mut self) -> &mut TaskRecord {
        Arc::make_mut(&mut self.record)
    }

    /// A write of the record as it is now.
    pub fn put(&self) -> Write {
        Write::PutTask(self.record.clone())
    }

    /// The agent a task event names in `data.agent` (so `/v1/events?agents=` finds it):
    /// the one that ran the latest attempt, else the one the submission named; none
    /// while a capability task waits for its first dispatch.
    pub fn event_agent(&self) -> Option<&str> {
        match (&self.record.agent, &self.record.target) {
            (Some(agent), _) => Some(agent),
            (None, crate::domain::Target::Agent(named)) => Some(named),
            (None, crate::domain::Target::Capabilities(_)) => None,
        }
    }

    /// `{"agent": …}` naming [`event_agent`](Self::event_agent): the data of the task's
    /// queued and succeeded events.
    pub fn agent_data(&self) -> Arc<Value> {
        match &self.event_data {
            Some(data) => data.agent.clone(),
            None => Arc::new(serde_json::json!({"agent": self.event_agent()})),
        }
    }

    /// The record of the attempt that just ended as `state`, if one was running; the
    /// task's `error` is its error.
    pub fn ended_attempt(&mut self, state: TaskState, now: SystemTime) -> Option<AttemptRecord> {
        let started_at = self.attempt_started_at.take()?;
        Some(AttemptRecord {
            task_id: self.record.id,
            attempt: self.record.attempt,
            node_start: self.record.owner.unwrap_or_default(),
            agent: self.record.agent.clone(),
            state,
            error: self.record.error.clone(),
            started_at,
            finished_at: Some(now),
        })
    }
}

/// Live tasks plus the most recent finished ones (older finished tasks are only in the
/// store), so memory stays bounded however many tasks pass through.
pub struct TaskTable {
    // foldhash: the task table is touched several times per task; SipHash's DoS
    // resistance buys nothing for server-generated ids.
    // Boxed: under insert/remove churn hashbrown rehashes in place now and then, and
    // moving pointers is far cheaper than moving whole entries.
    tasks: HashMap<TaskId, Box<TaskEntry>, RandomState>,
    finished: VecDeque<TaskId>,
    retain_finished: usize,
    live: usize,
    /// `(namespace, idempotency key)` → task.
    idempotency: HashMap<(String, String), TaskId, RandomState>,
}

impl TaskTable {
    pub fn new(retain_finished: usize) -> Self {
        TaskTable {
            tasks: HashMap::default(),
            finished: VecDeque::new(),
            retain_finished,
            live: 0,
            idempotency: HashMap::default(),
        }
    }

    /// Tasks not yet in a final state.
    pub fn live(&self) -> usize {
        self.live
    }

    pub fn insert(&mut self, entry: TaskEntry) {
        if let Some(key) = &entry.record.idempotency_key {
            self.idempotency.insert((entry.record.namespace.clone(), key.clone()), entry.record.id);
        }
        self.live += 1;
        self.tasks.insert(entry.record.id, Box::new(entry));
    }

    pub fn by_idempotency_key(&self, namespace: &str, key: &str) -> Option<&TaskEntry> {
        // Tuple keys need owned parts for lookup; keys are short.
        let id = self.idempotency.get(&(namespace.to_string(), key.to_string()))?;
        self.get(id)
    }

    pub fn get(&self, id: &TaskId) -> Option<&TaskEntry> {
        self.tasks.get(id).map(|e| &**e)
    }

    pub fn get_mut(&mut self, id: &TaskId) -> Option<&mut TaskEntry> {
        self.tasks.get_mut(id).map(|e| &mut **e)
    }

    /// Marks a task finished and evicts the oldest finished ones beyond the retention.
    pub fn finished(&mut self, id: TaskId) {
        self.live -= 1;
        self.finished.push_back(id);
        while self.finished.len() > self.retain_finished {
            if let Some(old) = self.finished.pop_front() {
                if let Some(entry) = self.tasks.remove(&old) {
                    if let Some(key) = &entry.record.idempotency_key {
                        self.idempotency.remove(&(entry.record.namespace.clone(), key.clone()));
                    }
                }
            }
        }
    }

    /// A task that was never accepted (its commit failed) leaves no trace.
    pub fn forget(&mut self, id: &TaskId) -> Option<TaskEntry> {
        let entry = *self.tasks.remove(id)?;
        self.live -= 1;
        if let Some(key) = &entry.record.idempotency_key {
            self.idempotency.remove(&(entry.record.namespace.clone(), key.clone()));
        }
        Some(entry)
    }
}
