//! Tasks: what a caller submits and what the node records about it.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

super::time_ordered_id! {
    /// A task id: a UUID v7, so ids sort by creation time.
    TaskId
}

/// Who should run a task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// A named agent of the task's namespace.
    Agent(String),
    /// Any agent that has every one of these capabilities.
    Capabilities(Vec<String>),
}

/// A submission (DESIGN §13.3).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskRequest {
    pub target: Target,
    /// Shared, not copied, between the request, the record and every attempt.
    pub input: Arc<Value>,
    pub namespace: String,
    /// Higher runs first among queued work of the same pool. 0..=9, default 5.
    pub priority: u8,
    /// Time one attempt may take; the agent's own timeout when unset.
    pub timeout: Option<Duration>,
    /// Wall-clock time after which the task is `timed_out`, whatever its attempts.
    pub deadline: Option<SystemTime>,
    /// Extra attempts for retryable failures; the agent's policy when unset.
    pub retries: Option<u32>,
    pub idempotency_key: Option<String>,
    /// Committed before it is accepted (true, the default) or written in the background.
    pub durable: bool,
    pub submitter: Option<String>,
    /// W3C trace context carried to the agent.
    pub traceparent: Option<String>,
    /// The submitter committed this key's first use itself (a durable run journaled the
    /// step attempt it names), so no task can carry it yet and the orchestrator need not
    /// look for one in the store. Never set from outside the node.
    #[serde(skip)]
    pub key_is_new: bool,
}

impl TaskRequest {
    pub fn to_agent(agent: impl Into<String>, input: Value) -> Self {
        Self::new(Target::Agent(agent.into()), input)
    }

    pub fn to_capabilities<S: Into<String>>(capabilities: impl IntoIterator<Item = S>, input: Value) -> Self {
        Self::new(Target::Capabilities(capabilities.into_iter().map(Into::into).collect()), input)
    }

    fn new(target: Target, input: Value) -> Self {
        TaskRequest {
            target,
            input: Arc::new(input),
            namespace: crate::DEFAULT_NAMESPACE.to_string(),
            priority: 5,
            timeout: None,
            deadline: None,
            retries: None,
            idempotency_key: None,
            durable: true,
            submitter: None,
            traceparent: None,
            key_is_new: false,
        }
    }

    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    pub fn priority(mut self, priority: u8) -> Self {
        self.priority = priority;
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    pub fn deadline(mut self, deadline: SystemTime) -> Self {
        self.deadline = Some(deadline);
        self
    }

    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = Some(retries);
        self
    }

    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    pub fn durable(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }

    /// Whether two requests ask for the same work (idempotency conflicts).
    pub fn same_work(&self, other: &TaskRequest) -> bool {
        self.target == other.target
            && self.input == other.input
            && self.priority == other.priority
            && self.timeout == other.timeout
            && self.deadline == other.deadline
            && self.retries == other.retries
            && self.durable == other.durable
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    TimedOut,
}

impl TaskState {
    pub fn is_final(self) -> bool {
        !matches!(self, TaskState::Queued | TaskState::Running)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Queued => "queued",
            TaskState::Running => "running",
            TaskState::Succeeded => "succeeded",
            TaskState::Failed => "failed",
            TaskState::Cancelled => "cancelled",
            TaskState::TimedOut => "timed_out",
        }
    }
}

/// What the node knows about a task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub id: TaskId,
    pub namespace: String,
    pub target: Target,
    /// The agent that ran (or runs) the latest attempt.
    pub agent: Option<String>,
    pub state: TaskState,
    pub input: Arc<Value>,
    /// Shared like `input`: every answer about the finished task (waiters, gets,
    /// listings) carries it without copying it.
    pub output: Option<Arc<Value>>,
    pub error: Option<String>,
    pub priority: u8,
    /// Attempts started so far (1 for the first).
    pub attempt: u32,
    pub max_attempts: u32,
    pub idempotency_key: Option<String>,
    pub durable: bool,
    pub submitter: Option<String>,
    /// Time one attempt may take, when the submission set it (else the agent's).
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The node start that runs the task while it is not final (DESIGN §4: leases).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Uuid>,
    #[serde(with = "humantime_serde")]
    pub created_at: SystemTime,
    #[serde(with = "humantime_serde")]
    pub updated_at: SystemTime,
    #[serde(with = "humantime_serde")]
    pub deadline: Option<SystemTime>,
}

impl TaskRecord {
    /// A new task, queued, as taken from `request` at `now`: no attempt has started yet.
    pub fn queued(request: &TaskRequest, max_attempts: u32, owner: Option<Uuid>, now: SystemTime) -> Self {
        TaskRecord {
            id: TaskId::new(),
            namespace: request.namespace.clone(),
            target: request.target.clone(),
            agent: None,
            state: TaskState::Queued,
            input: request.input.clone(),
            output: None,
            error: None,
            priority: request.priority,
            attempt: 0,
            max_attempts,
            idempotency_key: request.idempotency_key.clone(),
            durable: request.durable,
            submitter: request.submitter.clone(),
            timeout: request.timeout,
            traceparent: request.traceparent.clone(),
            owner,
            created_at: now,
            updated_at: now,
            deadline: request.deadline,
        }
    }

    /// The submission a stored task came from, to run it again after a crash.
    pub fn to_request(&self) -> TaskRequest {
        TaskRequest {
            target: self.target.clone(),
            input: self.input.clone(),
            namespace: self.namespace.clone(),
            priority: self.priority,
            timeout: self.timeout,
            deadline: self.deadline,
            retries: Some(self.max_attempts.saturating_sub(1)),
            idempotency_key: self.idempotency_key.clone(),
            durable: self.durable,
            submitter: self.submitter.clone(),
            traceparent: self.traceparent.clone(),
            key_is_new: false,
        }
    }

    /// Whether `request` asks for the work this task does (idempotent resubmission). A
    /// request that left `retries` to the agent matches whatever the agent gave. Times
    /// compare to the microsecond, the precision a store keeps.
    pub fn same_work(&self, request: &TaskRequest) -> bool {
        let micros = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_micros()).ok();
        let retries = request.retries.is_none_or(|r| r.saturating_add(1) == self.max_attempts);
        let deadline = self.deadline.map(micros) == request.deadline.map(micros);
        let timeout = self.timeout.map(|d| d.as_micros()) == request.timeout.map(|d| d.as_micros());
        let mut stored = self.to_request();
        stored.retries = request.retries;
        stored.deadline = request.deadline;
        stored.timeout = request.timeout;
        retries && deadline && timeout && stored.same_work(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_task_matches_its_request_at_the_stores_precision() {
        let deadline = SystemTime::UNIX_EPOCH + Duration::new(1_800_000_000, 123_456_789);
        let request = TaskRequest::to_agent("echo", serde_json::json!({"a": 1}))
            .deadline(deadline)
            .timeout(Duration::new(2, 999_999_999));
        // What a store gives back: times to the microsecond.
        let mut stored = TaskRecord::queued(&request, 3, None, SystemTime::now());
        stored.timeout = Some(Duration::new(2, 999_999_000));
        stored.deadline = Some(SystemTime::UNIX_EPOCH + Duration::new(1_800_000_000, 123_456_000));
        assert!(stored.same_work(&request), "retries left to the agent match what it gave");
        assert!(stored.same_work(&request.clone().retries(2)));
        assert!(!stored.same_work(&request.clone().retries(1)));
        assert!(!stored.same_work(&request.clone().priority(9)));
        assert!(!stored.same_work(&request.clone().deadline(deadline + Duration::from_millis(1))));
    }
}
