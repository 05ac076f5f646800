//! Domain events (DESIGN §13.4).

use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the node's event sequence; strictly increasing.
    pub seq: u64,
    #[serde(with = "humantime_serde")]
    pub time: SystemTime,
    pub kind: EventKind,
    pub namespace: String,
    /// What the event is about: a task id, an agent key, an actor name.
    pub subject: String,
    pub data: Value,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    #[serde(rename = "task.queued")]
    TaskQueued,
    #[serde(rename = "task.running")]
    TaskRunning,
    #[serde(rename = "task.progress")]
    TaskProgress,
    #[serde(rename = "task.retrying")]
    TaskRetrying,
    #[serde(rename = "task.succeeded")]
    TaskSucceeded,
    #[serde(rename = "task.failed")]
    TaskFailed,
    #[serde(rename = "task.cancelled")]
    TaskCancelled,
    #[serde(rename = "task.timed_out")]
    TaskTimedOut,
    #[serde(rename = "agent.registered")]
    AgentRegistered,
    #[serde(rename = "agent.removed")]
    AgentRemoved,
    #[serde(rename = "agent.failed")]
    AgentFailed,
    #[serde(rename = "agent.restarted")]
    AgentRestarted,
    #[serde(rename = "actor.restarted")]
    ActorRestarted,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::TaskQueued => "task.queued",
            EventKind::TaskRunning => "task.running",
            EventKind::TaskProgress => "task.progress",
            EventKind::TaskRetrying => "task.retrying",
            EventKind::TaskSucceeded => "task.succeeded",
            EventKind::TaskFailed => "task.failed",
            EventKind::TaskCancelled => "task.cancelled",
            EventKind::TaskTimedOut => "task.timed_out",
            EventKind::AgentRegistered => "agent.registered",
            EventKind::AgentRemoved => "agent.removed",
            EventKind::AgentFailed => "agent.failed",
            EventKind::AgentRestarted => "agent.restarted",
            EventKind::ActorRestarted => "actor.restarted",
        }
    }

    pub fn for_task_state(state: crate::domain::TaskState) -> EventKind {
        use crate::domain::TaskState::*;
        match state {
            Queued => EventKind::TaskQueued,
            Running => EventKind::TaskRunning,
            Succeeded => EventKind::TaskSucceeded,
            Failed => EventKind::TaskFailed,
            Cancelled => EventKind::TaskCancelled,
            TimedOut => EventKind::TaskTimedOut,
        }
    }
}
