//! Units of a run's work outside its mailbox: a step's task (or one item's) submitted
//! through the orchestrator and waited for, and a sub-workflow's run started through
//! the engine. Each reports back to the run as a message.
//!
//! A unit is at-least-once: when the orchestrator restarts or refuses for a while
//! (overload, quota, store down), the same request is sent again, and its idempotency key
//! makes the orchestrator answer with the task it already has.

use std::sync::Arc;
use std::time::Duration;

use ractor::concurrency::oneshot;
use ractor::rpc::CallResult;

use super::engine::{EngineMsg, StartRun};
use super::run::{RunMsg, UnitKey};
use super::{RunEnv, WorkflowError};
use crate::domain::workflow::{RunRecord, RunState, StepState, UnitOutcome};
use crate::domain::{TaskId, TaskRecord, TaskRequest, TaskState};
use crate::orchestrator::{OrchestratorMsg, TaskError};
use mark1_supervisors::Addr;

/// How long to wait before asking again when the orchestrator is away.
const AWAY: Duration = Duration::from_millis(100);

/// How a finished task ends its unit.
pub(super) fn task_outcome(record: &TaskRecord) -> UnitOutcome {
    let error =
        || record.error.clone().unwrap_or_else(|| format!("the task ended {}", record.state.as_str()));
    match record.state {
        TaskState::Succeeded => UnitOutcome::Succeeded(record.output.clone().unwrap_or_default()),
        TaskState::TimedOut => UnitOutcome::Failed { state: StepState::TimedOut, error: error() },
        TaskState::Cancelled => UnitOutcome::Failed { state: StepState::Cancelled, error: error() },
        _ => UnitOutcome::Failed { state: StepState::Failed, error: error() },
    }
}

/// How a finished sub-workflow run ends the step that started it.
pub(super) fn run_outcome(record: &RunRecord) -> UnitOutcome {
    let error = || record.error.clone().unwrap_or_else(|| format!("the run ended {}", record.state.as_str()));
    match record.state {
        RunState::Succeeded => UnitOutcome::Succeeded(record.output.clone().unwrap_or_default()),
        RunState::Cancelled => UnitOutcome::Failed { state: StepState::Cancelled, error: error() },
        _ => UnitOutcome::Failed { state: StepState::Failed, error: error() },
    }
}

fn retry_after(error: &TaskError) -> Option<Duration> {
    match error {
        TaskError::Overloaded { retry_after, .. }
        | TaskError::QueueFull { retry_after, .. }
        | TaskError::QuotaExceeded { retry_after, .. } => Some(*retry_after),
        TaskError::Unavailable(_) => Some(AWAY),
        _ => None,
    }
}

/// Submits a step's task and reports `Accepted` with its id, then `Finished`.
pub(super) fn run_task(env: Arc<RunEnv>, run: Addr<RunMsg>, unit: UnitKey, request: TaskRequest) {
    tokio::spawn(async move {
        let request = Arc::new(request);
        loop {
            let Some(orchestrator) = (env.orchestrator)() else {
                tokio::time::sleep(AWAY).await;
                continue;
            };
            let request = request.clone();
            let submitted = orchestrator.call(|reply| OrchestratorMsg::Submit { request, reply }, None).await;
            let id = match submitted {
                Ok(CallResult::Success(Ok(submitted))) => submitted.id,
                Ok(CallResult::Success(Err(error))) => match retry_after(&error) {
                    Some(delay) => {
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    None => {
                        let outcome =
                            UnitOutcome::Failed { state: StepState::Failed, error: error.to_string() };
                        let _ = run.cast(RunMsg::Finished { unit, outcome });
                        return;
                    }
                },
                // The orchestrator stopped: it comes back, and the key finds the task.
                _ => {
                    tokio::time::sleep(AWAY).await;
                    continue;
                }
            };
            if run.cast(RunMsg::Accepted { unit: unit.clone(), task: id }).is_err() {
                return; // the run is gone; a restarted run submits again
            }
            match wait(&orchestrator, id).await {
                Some(Ok(record)) => {
                    let _ = run.cast(RunMsg::Finished { unit, outcome: task_outcome(&record) });
                    return;
                }
                Some(Err(error)) => {
                    let outcome = UnitOutcome::Failed { state: StepState::Failed, error: error.to_string() };
                    let _ = run.cast(RunMsg::Finished { unit, outcome });
                    return;
                }
                None => tokio::time::sleep(AWAY).await,
            }
        }
    });
}

/// The task once final; `None` when the orchestrator went away before answering.
async fn wait(orchestrator: &Addr<OrchestratorMsg>, id: TaskId) -> Option<Result<TaskRecord, TaskError>> {
    match orchestrator.call(|reply| OrchestratorMsg::Wait { id, wait: None, reply }, None).await {
        Ok(CallResult::Success(answer)) => Some(answer),
        _ => None,
    }
}

/// Asks the orchestrator to cancel a task; the answer is not waited for.
pub(super) fn cancel_task(env: &RunEnv, id: TaskId) {
    if let Some(orchestrator) = (env.orchestrator)() {
        let (reply, _) = oneshot();
        let _ = orchestrator.cast(OrchestratorMsg::Cancel { id, reply: reply.into() });
    }
}

/// Starts (or finds, by its idempotency key) a sub-workflow's run. A run already final
/// reports at once; otherwise the child reports to its parent when it ends.
pub(super) fn run_child(env: Arc<RunEnv>, parent: Addr<RunMsg>, unit: UnitKey, start: StartRun) {
    tokio::spawn(async move {
        loop {
            let Some(engine) = (env.engine)() else {
                tokio::time::sleep(AWAY).await;
                continue;
            };
            let request = Box::new(start.clone());
            match engine.call(|reply| EngineMsg::StartRun(request, reply), None).await {
                Ok(CallResult::Success(Ok(record))) => {
                    let _ = parent.cast(RunMsg::ChildStarted { unit: unit.clone(), child: record.id });
                    if record.state.is_final() {
                        let _ = parent.cast(RunMsg::Finished { unit, outcome: run_outcome(&record) });
                    }
                    return;
                }
                Ok(CallResult::Success(Err(error))) if !matches!(error, WorkflowError::Unavailable(_)) => {
                    let outcome = UnitOutcome::Failed { state: StepState::Failed, error: error.to_string() };
                    let _ = parent.cast(RunMsg::Finished { unit, outcome });
                    return;
                }
                _ => tokio::time::sleep(AWAY).await,
            }
        }
    });
}
