//! What the store keeps about workflows and runs: stored definitions, run records, and
//! each run's journal, the ordered account of its step transitions that a restarted
//! node replays to resume the run.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::WorkflowDef;

/// A definition as stored: every version is kept, and a run pins one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkflowRecord {
    pub namespace: String,
    pub name: String,
    pub version: u32,
    /// The definition, its `version` set to [`version`](Self::version).
    pub def: WorkflowDef,
    #[serde(with = "humantime_serde")]
    pub created_at: SystemTime,
}

crate::domain::time_ordered_id! {
    /// A run id: a UUID v7, so ids sort by creation time.
    RunId
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Steps are running or ready to.
    Running,
    /// Nothing runs: the run waits for a decision on an approval step.
    WaitingApproval,
    Succeeded,
    Failed,
    Cancelled,
}

impl RunState {
    pub fn is_final(self) -> bool {
        matches!(self, RunState::Succeeded | RunState::Failed | RunState::Cancelled)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::WaitingApproval => "waiting_approval",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<RunState> {
        [Self::Running, Self::WaitingApproval, Self::Succeeded, Self::Failed, Self::Cancelled]
            .into_iter()
            .find(|state| state.as_str() == s)
    }
}

/// A step's state: the task states plus `skipped` and `waiting_approval` (DESIGN §13.3).
/// `queued` is a step that has not started (its dependencies are not done yet).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    TimedOut,
    Skipped,
    WaitingApproval,
}

impl StepState {
    pub fn is_final(self) -> bool {
        !matches!(self, StepState::Queued | StepState::Running | StepState::WaitingApproval)
    }
}

/// The step of a parent run that a sub-workflow run serves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentStep {
    pub run: RunId,
    pub step: String,
}

/// What the node knows about a run (table `runs`); its steps are in its journal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: RunId,
    pub namespace: String,
    pub workflow: String,
    /// The pinned definition version.
    pub version: u32,
    pub state: RunState,
    pub input: Value,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub idempotency_key: Option<String>,
    pub submitter: Option<String>,
    /// Journal writes committed before the run acts (true), or written in the background.
    pub durable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<ParentStep>,
    /// The node start driving the run while it is not final.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Uuid>,
    #[serde(with = "humantime_serde")]
    pub created_at: SystemTime,
    #[serde(with = "humantime_serde")]
    pub updated_at: SystemTime,
}

/// One entry of a run's journal (table `run_journal`), numbered from 1 per run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub run: RunId,
    pub seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    pub kind: JournalKind,
    /// What the transition carries (an output, an error, a comment, added steps…).
    pub data: Value,
    #[serde(with = "humantime_serde")]
    pub recorded_at: SystemTime,
}

/// The transitions a run journals before acting on them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JournalKind {
    /// `data`: `{"input"}`, and `"definition"` for a run whose definition is not stored
    /// (a plan's sub-run, see [`planned_definition`](super::plan::planned_definition)).
    #[serde(rename = "run.started")]
    RunStarted,
    /// `data`: `{"output"}`.
    #[serde(rename = "run.succeeded")]
    RunSucceeded,
    /// `data`: `{"error"}`.
    #[serde(rename = "run.failed")]
    RunFailed,
    /// `data`: `{"by", "reason"}`.
    #[serde(rename = "run.cancelled")]
    RunCancelled,
    /// `data`: `{"steps": [StepDef…], "by"}`: steps added to a running run.
    #[serde(rename = "steps.added")]
    StepsAdded,
    /// An attempt is about to start (`attempt` set). For a `for_each` step, `data`:
    /// `{"items": […]}`, the evaluated list, so a replay fans out over the same items.
    #[serde(rename = "step.running")]
    StepRunning,
    /// One item of a `for_each` attempt is about to start. `data`: `{"index"}`.
    #[serde(rename = "item.running")]
    ItemRunning,
    /// `data`: `{"index", "output"}`.
    #[serde(rename = "item.succeeded")]
    ItemSucceeded,
    /// `data`: `{"index", "error"}`.
    #[serde(rename = "item.failed")]
    ItemFailed,
    /// `data`: `{"output"}`.
    #[serde(rename = "step.succeeded")]
    StepSucceeded,
    /// The attempt failed and the step will run again. `data`: `{"error", "state",
    /// "retry_at"}` (milliseconds since the Unix epoch); the step is `queued` until then.
    #[serde(rename = "step.retrying")]
    StepRetrying,
    /// `data`: `{"error", "state"}` (`failed`, `timed_out` or `cancelled`).
    #[serde(rename = "step.failed")]
    StepFailed,
    /// `data`: `{"reason", "output"}`.
    #[serde(rename = "step.skipped")]
    StepSkipped,
    /// An approval step started waiting. `data`: `{"until"}` when it has a timeout.
    #[serde(rename = "step.waiting_approval")]
    StepWaitingApproval,
    /// `data`: `{"approved", "comment", "by"}`.
    #[serde(rename = "step.decided")]
    StepDecided,
    /// A plan step's model proposed a plan and it passed the checks. `data`: a
    /// [`Plan`](super::plan::Plan), `{"goal", "model", "steps"}`. A `step.running` of the
    /// same attempt follows when it runs at once, a `step.waiting_approval` when it is held.
    #[serde(rename = "step.planned")]
    StepPlanned,
    /// Someone asked to run a failed step again. `data`: `{"by"}`.
    #[serde(rename = "step.retry_requested")]
    StepRetryRequested,
}

impl JournalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JournalKind::RunStarted => "run.started",
            JournalKind::RunSucceeded => "run.succeeded",
            JournalKind::RunFailed => "run.failed",
            JournalKind::RunCancelled => "run.cancelled",
            JournalKind::StepsAdded => "steps.added",
            JournalKind::StepRunning => "step.running",
            JournalKind::ItemRunning => "item.running",
            JournalKind::ItemSucceeded => "item.succeeded",
            JournalKind::ItemFailed => "item.failed",
            JournalKind::StepSucceeded => "step.succeeded",
            JournalKind::StepRetrying => "step.retrying",
            JournalKind::StepFailed => "step.failed",
            JournalKind::StepSkipped => "step.skipped",
            JournalKind::StepWaitingApproval => "step.waiting_approval",
            JournalKind::StepDecided => "step.decided",
            JournalKind::StepPlanned => "step.planned",
            JournalKind::StepRetryRequested => "step.retry_requested",
        }
    }

    pub fn parse(s: &str) -> Option<JournalKind> {
        ALL_KINDS.into_iter().find(|k| k.as_str() == s)
    }
}

const ALL_KINDS: [JournalKind; 17] = [
    JournalKind::RunStarted,
    JournalKind::RunSucceeded,
    JournalKind::RunFailed,
    JournalKind::RunCancelled,
    JournalKind::StepsAdded,
    JournalKind::StepRunning,
    JournalKind::ItemRunning,
    JournalKind::ItemSucceeded,
    JournalKind::ItemFailed,
    JournalKind::StepSucceeded,
    JournalKind::StepRetrying,
    JournalKind::StepFailed,
    JournalKind::StepSkipped,
    JournalKind::StepWaitingApproval,
    JournalKind::StepDecided,
    JournalKind::StepPlanned,
    JournalKind::StepRetryRequested,
];

/// The idempotency key of the task that runs attempt `attempt` of `step` (of item
/// `item` of a `for_each`): the same after a crash, so a resumed run finds the task it
/// had submitted, and a new one for each retry.
pub fn step_task_key(run: RunId, step: &str, item: Option<usize>, attempt: u32) -> String {
    match item {
        Some(i) => format!("run:{run}:{step}[{i}]:{attempt}"),
        None => format!("run:{run}:{step}:{attempt}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_states_round_trip_through_their_names() {
        for kind in ALL_KINDS {
            assert_eq!(JournalKind::parse(kind.as_str()), Some(kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), serde_json::json!(kind.as_str()));
        }
        for state in [RunState::Running, RunState::WaitingApproval, RunState::Failed] {
            assert_eq!(RunState::parse(state.as_str()), Some(state));
            assert_eq!(serde_json::to_value(state).unwrap(), serde_json::json!(state.as_str()));
        }
    }
}
