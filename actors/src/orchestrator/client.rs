//! Agents calling agents: a sub-task submitted through the orchestrator and awaited, so
//! every hop is selected, queued, metered and authorized like any other task.

use std::sync::Arc;
use std::time::Duration;

use mark1_supervisors::Addr;
use ractor::rpc::CallResult;
use tokio_util::sync::CancellationToken;

use super::{OrchestratorMsg, TaskError};
use crate::domain::{TaskId, TaskRecord, TaskRequest};

/// How long to wait before asking again about a task the orchestrator answered for
/// without holding it (it was taken over after a restart).
const LOOK_AGAIN: Duration = Duration::from_millis(200);

/// The orchestrator that handed an agent its task, for the sub-tasks the agent submits.
#[derive(Clone)]
pub struct TaskClient {
    orchestrator: Addr<OrchestratorMsg>,
}

impl std::fmt::Debug for TaskClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskClient").finish_non_exhaustive()
    }
}

impl TaskClient {
    pub fn new(orchestrator: Addr<OrchestratorMsg>) -> Self {
        TaskClient { orchestrator }
    }

    /// Submits `request` and waits until the task is final. When `cancel` fires first,
    /// the sub-task is cancelled too and the answer is `None`.
    pub async fn run(
        &self,
        request: TaskRequest,
        cancel: &CancellationToken,
    ) -> Option<Result<TaskRecord, TaskError>> {
        let request = Arc::new(request);
        // Not raced against the cancel: a submission the orchestrator took must be known
        // by its id, or a cancel could not reach it. The orchestrator answers at once.
        let submitted =
            self.orchestrator.call(|reply| OrchestratorMsg::Submit { request, reply }, None).await;
        let id = match flatten(submitted) {
            Ok(submitted) => submitted.id,
            Err(error) => return Some(Err(error)),
        };
        loop {
            let answer = tokio::select! {
                biased;
                _ = cancel.cancelled() => return self.cancel(id),
                answer = self.orchestrator.call(|reply| OrchestratorMsg::Wait { id, wait: None, reply }, None) => answer,
            };
            match flatten(answer) {
                Ok(record) if !record.state.is_final() => tokio::select! {
                    biased;
                    _ = cancel.cancelled() => return self.cancel(id),
                    _ = tokio::time::sleep(LOOK_AGAIN) => {}
                },
                answer => return Some(answer),
            }
        }
    }

    /// Asks for the sub-task to be cancelled without waiting for the answer.
    fn cancel(&self, id: TaskId) -> Option<Result<TaskRecord, TaskError>> {
        let (reply, _) = ractor::concurrency::oneshot();
        let _ = self.orchestrator.cast(OrchestratorMsg::Cancel { id, reply: reply.into() });
        None
    }
}

fn flatten<T, M>(
    answer: Result<CallResult<Result<T, TaskError>>, ractor::MessagingErr<M>>,
) -> Result<T, TaskError> {
    match answer {
        Ok(CallResult::Success(result)) => result,
        _ => Err(TaskError::Unavailable("the orchestrator is restarting; try again".into())),
    }
}
