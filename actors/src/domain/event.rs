//! Domain events (DESIGN §13.4).

use std::sync::Arc;
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
    /// Shared, like `subject`: a task's events all carry its namespace and id.
    pub namespace: Arc<str>,
    /// What the event is about: a task id, an agent key, an actor name.
    pub subject: Arc<str>,
    /// Shared: most task events carry the same `{"agent": …}` of their agent, built once.
    pub data: Arc<Value>,
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
    #[serde(rename = "run.started")]
    RunStarted,
    #[serde(rename = "run.succeeded")]
    RunSucceeded,
    #[serde(rename = "run.failed")]
    RunFailed,
    #[serde(rename = "run.cancelled")]
    RunCancelled,
    /// Someone changed a running run: added steps, or asked for a failed step again.
    #[serde(rename = "run.changed")]
    RunChanged,
    #[serde(rename = "step.running")]
    StepRunning,
    #[serde(rename = "step.succeeded")]
    StepSucceeded,
    #[serde(rename = "step.failed")]
    StepFailed,
    #[serde(rename = "step.retrying")]
    StepRetrying,
    #[serde(rename = "step.skipped")]
    StepSkipped,
    #[serde(rename = "step.waiting_approval")]
    StepWaitingApproval,
    #[serde(rename = "step.decided")]
    StepDecided,
    /// A plan step's plan was accepted (it runs next, or waits for approval).
    #[serde(rename = "step.planned")]
    StepPlanned,
    /// One item of a `for_each` step started, succeeded or failed.
    #[serde(rename = "step.item_running")]
    StepItemRunning,
    #[serde(rename = "step.item_succeeded")]
    StepItemSucceeded,
    #[serde(rename = "step.item_failed")]
    StepItemFailed,
    /// A scan job started (subject: the scan id).
    #[serde(rename = "scan.started")]
    ScanStarted,
    /// Files done and total of a running scan, at most every half second.
    #[serde(rename = "scan.progress")]
    ScanProgress,
    #[serde(rename = "scan.finished")]
    ScanFinished,
    #[serde(rename = "scan.failed")]
    ScanFailed,
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
            EventKind::RunStarted => "run.started",
            EventKind::RunSucceeded => "run.succeeded",
            EventKind::RunFailed => "run.failed",
            EventKind::RunCancelled => "run.cancelled",
            EventKind::RunChanged => "run.changed",
            EventKind::StepRunning => "step.running",
            EventKind::StepSucceeded => "step.succeeded",
            EventKind::StepFailed => "step.failed",
            EventKind::StepRetrying => "step.retrying",
            EventKind::StepSkipped => "step.skipped",
            EventKind::StepWaitingApproval => "step.waiting_approval",
            EventKind::StepDecided => "step.decided",
            EventKind::StepPlanned => "step.planned",
            EventKind::StepItemRunning => "step.item_running",
            EventKind::StepItemSucceeded => "step.item_succeeded",
            EventKind::StepItemFailed => "step.item_failed",
            EventKind::ScanStarted => "scan.started",
            EventKind::ScanProgress => "scan.progress",
            EventKind::ScanFinished => "scan.finished",
            EventKind::ScanFailed => "scan.failed",
        }
    }

    /// The event that reports a run's journal entry of `kind`.
    pub fn for_journal(kind: crate::domain::workflow::JournalKind) -> EventKind {
        use crate::domain::workflow::JournalKind as J;
        match kind {
            J::RunStarted => EventKind::RunStarted,
            J::RunSucceeded => EventKind::RunSucceeded,
            J::RunFailed => EventKind::RunFailed,
            J::RunCancelled => EventKind::RunCancelled,
            J::StepsAdded | J::StepRetryRequested => EventKind::RunChanged,
            J::StepRunning => EventKind::StepRunning,
            J::ItemRunning => EventKind::StepItemRunning,
            J::ItemSucceeded => EventKind::StepItemSucceeded,
            J::ItemFailed => EventKind::StepItemFailed,
            J::StepSucceeded => EventKind::StepSucceeded,
            J::StepRetrying => EventKind::StepRetrying,
            J::StepFailed => EventKind::StepFailed,
            J::StepSkipped => EventKind::StepSkipped,
            J::StepWaitingApproval => EventKind::StepWaitingApproval,
            J::StepDecided => EventKind::StepDecided,
            J::StepPlanned => EventKind::StepPlanned,
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
