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
use crate::domain::workflow::{
    step_task_key, RunId, RunRecord, RunState, StepState, UnitOutcome, WorkflowDef,
};
use crate::domain::{TaskId, TaskRecord, TaskRequest, TaskState};
use crate::orchestrator::{OrchestratorMsg, TaskError, WaitReply};
use mark1_supervisors::Addr;

/// How long to wait before asking again when the orchestrator is away.
const AWAY: Duration = Duration::from_millis(100);

/// The longest wait between two looks at a task the orchestrator does not hold.
const LOOK_AGAIN_MAX: Duration = Duration::from_secs(5);

/// How a finished task ends its unit.
pub(super) fn task_outcome(record: &TaskRecord) -> UnitOutcome {
    let error =
        || record.error.clone().unwrap_or_else(|| format!("the task ended {}", record.state.as_str()));
    match record.state {
        TaskState::Succeeded => UnitOutcome::Succeeded(record.output.as_deref().cloned().unwrap_or_default()),
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
        // Not the step's failure: the node is stopping, and the run resumes with the
        // step still in flight when a node starts again.
        TaskError::ShuttingDown => Some(AWAY),
        _ => None,
    }
}

/// How the node's orchestrator is found (it may be restarting).
pub(super) type OrchestratorFn = Arc<dyn Fn() -> Option<Addr<OrchestratorMsg>> + Send + Sync>;

/// Submits a step's task and reports `Accepted` with its id, then `Finished`.
///
/// The task may be one this node's orchestrator does not hold: a run resumed after a
/// crash finds by its key the task an earlier start submitted, and that task is taken
/// over by the orchestrator's own claim, which may come later (or by another node). The
/// orchestrator then answers a wait with the task as the store has it, not final; the
/// unit asks again, less and less often, until the task is final.
pub(super) fn run_task(orchestrator: OrchestratorFn, run: Addr<RunMsg>, unit: UnitKey, request: TaskRequest) {
    tokio::spawn(drive(orchestrator, run, unit, Arc::new(request), true));
}

/// Submits a step's task and waits for its end in one orchestrator message. It is sent
/// from the run actor itself, so a later [`cancel_key`] from the run reaches the
/// orchestrator after it, and the orchestrator hands the end straight to the run (a
/// [`WaitReply::Then`]). Any other answer than the task's end (the orchestrator went
/// away or refused for a while, or answered with a task it does not hold) falls back to
/// the loop of [`run_task`].
pub(super) fn submit_and_wait(
    orchestrator: OrchestratorFn,
    run: Addr<RunMsg>,
    unit: UnitKey,
    request: TaskRequest,
) {
    let Some(addr) = orchestrator() else { return run_task(orchestrator, run, unit, request) };
    let request = Arc::new(request);
    let step = StepWait(Some((orchestrator, run, unit, request.clone())));
    let reply = WaitReply::Then(Box::new(move |answer| step.answer(answer)));
    // Refused, the message is dropped with the continuation, which then falls back.
    let _ = addr.cast(OrchestratorMsg::SubmitAndWait { request, wait: None, reply });
}

/// What a step's wait needs to report its end, or to fall back to [`drive`].
type StepParts = (OrchestratorFn, Addr<RunMsg>, UnitKey, Arc<TaskRequest>);

/// A step's wait for its task, answered by the orchestrator.
struct StepWait(Option<StepParts>);

impl StepWait {
    fn answer(mut self, answer: Result<TaskRecord, TaskError>) {
        let Some((orchestrator, run, unit, request)) = self.0.take() else { return };
        match answer {
            Ok(record) if record.state.is_final() => {
                let _ = run.cast(RunMsg::Finished { unit, outcome: task_outcome(&record) });
            }
            Err(error) if retry_after(&error).is_none() => {
                let outcome = UnitOutcome::Failed { state: StepState::Failed, error: error.to_string() };
                let _ = run.cast(RunMsg::Finished { unit, outcome });
            }
            _ => fall_back((orchestrator, run, unit, request)),
        }
    }
}

/// Submits again through the loop of [`drive`] (the key finds the task if it exists).
fn fall_back((orchestrator, run, unit, request): StepParts) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(drive(orchestrator, run, unit, request, false));
    }
}

impl Drop for StepWait {
    /// Dropped unanswered: the orchestrator stopped (or never took the message). The loop
    /// submits again once one runs, and the idempotency key finds the task if it exists.
    fn drop(&mut self) {
        if let Some(parts) = self.0.take() {
            fall_back(parts);
        }
    }
}

/// Submits (again) and waits until the task is final, through whatever comes in between.
async fn drive(
    orchestrator: OrchestratorFn,
    run: Addr<RunMsg>,
    unit: UnitKey,
    mut request: Arc<TaskRequest>,
    mut first: bool,
) {
    {
        let mut look_again = AWAY;
        loop {
            if run.actor().get_status() == ractor::ActorStatus::Stopped {
                return; // the run is gone (its node stopped); a restarted run submits again
            }
            if !std::mem::take(&mut first) {
                // Asking again: the first submission may have made the task after all.
                Arc::make_mut(&mut request).key_is_new = false;
            }
            let Some(orchestrator) = orchestrator() else {
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
                Some(Ok(record)) if record.state.is_final() => {
                    let _ = run.cast(RunMsg::Finished { unit, outcome: task_outcome(&record) });
                    return;
                }
                // Not held here (yet): look again later.
                Some(Ok(_)) => {
                    tokio::time::sleep(look_again).await;
                    look_again = (look_again * 2).min(LOOK_AGAIN_MAX);
                }
                Some(Err(error)) => {
                    let outcome = UnitOutcome::Failed { state: StepState::Failed, error: error.to_string() };
                    let _ = run.cast(RunMsg::Finished { unit, outcome });
                    return;
                }
                None => tokio::time::sleep(AWAY).await,
            }
        }
    }
}

/// The task once final; `None` when the orchestrator went away before answering.
async fn wait(orchestrator: &Addr<OrchestratorMsg>, id: TaskId) -> Option<Result<TaskRecord, TaskError>> {
    match orchestrator.call(|reply| OrchestratorMsg::Wait { id, wait: None, reply }, None).await {
        Ok(CallResult::Success(answer)) => Some(answer),
        _ => None,
    }
}

/// Asks the orchestrator to cancel the task with this idempotency key, if it holds one.
pub(super) fn cancel_key(env: &RunEnv, namespace: &str, key: String) {
    if let Some(orchestrator) = (env.orchestrator)() {
        let _ = orchestrator.cast(OrchestratorMsg::CancelKey { namespace: namespace.to_string(), key });
    }
}

/// Asks the orchestrator to cancel a task; the answer is not waited for.
pub(super) fn cancel_task(env: &RunEnv, id: TaskId) {
    if let Some(orchestrator) = (env.orchestrator)() {
        let (reply, _) = oneshot();
        let _ = orchestrator.cast(OrchestratorMsg::Cancel { id, reply: reply.into() });
    }
}

/// Whether sub-run `child` was started for `unit` of run `run`: its idempotency key is
/// the unit's (so this holds before the parent knows the sub-run's id).
pub(super) fn started_for(child: &RunRecord, run: RunId, unit: &UnitKey) -> bool {
    child.parent.as_ref().is_some_and(|p| p.run == run && p.step == unit.step)
        && child.idempotency_key.as_deref()
            == Some(step_task_key(run, &unit.step, unit.item, unit.attempt).as_str())
}

/// Starts (or finds, by its idempotency key) a sub-workflow's run: of a stored workflow,
/// or of `planned`, a plan step's plan. A run already final reports at once; otherwise the
/// child reports to its parent when it ends.
pub(super) fn run_child(
    env: Arc<RunEnv>,
    parent: Addr<RunMsg>,
    unit: UnitKey,
    start: StartRun,
    planned: Option<Arc<WorkflowDef>>,
) {
    tokio::spawn(async move {
        loop {
            let Some(engine) = (env.engine)() else {
                tokio::time::sleep(AWAY).await;
                continue;
            };
            let request = Box::new(start.clone());
            let started = match &planned {
                None => engine.call(|reply| EngineMsg::StartRun(request, reply), None).await,
                Some(def) => {
                    let def = def.clone();
                    engine.call(|reply| EngineMsg::StartPlanned { request, def, reply }, None).await
                }
            };
            match started {
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

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use mark1_supervisors::ActorStats;
    use ractor::{Actor, ActorProcessingErr, ActorRef};
    use serde_json::json;
    use tokio::sync::mpsc;

    use super::*;
    use crate::domain::workflow::ParentStep;
    use crate::orchestrator::Submitted;

    /// An orchestrator that does not hold the task a key finds: it answers from "the
    /// store", where the task is `running` (run by another start) for the first
    /// `running_for` looks, then succeeded.
    struct NotHeld;

    struct NotHeldState {
        record: TaskRecord,
        looks: u32,
        running_for: u32,
    }

    impl Actor for NotHeld {
        type Msg = OrchestratorMsg;
        type State = NotHeldState;
        type Arguments = NotHeldState;

        async fn pre_start(
            &self,
            _: ActorRef<OrchestratorMsg>,
            state: NotHeldState,
        ) -> Result<NotHeldState, ActorProcessingErr> {
            Ok(state)
        }

        async fn handle(
            &self,
            _: ActorRef<OrchestratorMsg>,
            msg: OrchestratorMsg,
            state: &mut NotHeldState,
        ) -> Result<(), ActorProcessingErr> {
            match msg {
                OrchestratorMsg::Submit { reply, .. } => {
                    let _ = reply.send(Ok(Submitted { id: state.record.id, existing: true }));
                }
                OrchestratorMsg::Wait { reply, .. } => {
                    state.looks += 1;
                    let mut record = state.record.clone();
                    if state.looks > state.running_for {
                        record.state = TaskState::Succeeded;
                        record.output = Some(Arc::new(json!("done")));
                    }
                    let _ = reply.send(Ok(record));
                }
                _ => {}
            }
            Ok(())
        }
    }

    /// A run that passes on how its units ended.
    struct Outcomes;

    impl Actor for Outcomes {
        type Msg = RunMsg;
        type State = mpsc::UnboundedSender<UnitOutcome>;
        type Arguments = mpsc::UnboundedSender<UnitOutcome>;

        async fn pre_start(
            &self,
            _: ActorRef<RunMsg>,
            tx: Self::Arguments,
        ) -> Result<Self::State, ActorProcessingErr> {
            Ok(tx)
        }

        async fn handle(
            &self,
            _: ActorRef<RunMsg>,
            msg: RunMsg,
            tx: &mut Self::State,
        ) -> Result<(), ActorProcessingErr> {
            if let RunMsg::Finished { outcome, .. } = msg {
                let _ = tx.send(outcome);
            }
            Ok(())
        }
    }

    fn sub_run(parent: RunId, step: &str, key: String) -> RunRecord {
        let now = SystemTime::now();
        RunRecord {
            id: RunId::new(),
            namespace: "default".into(),
            workflow: "child".into(),
            version: 1,
            state: RunState::Succeeded,
            input: json!({}),
            output: Some(json!(1)),
            error: None,
            idempotency_key: Some(key),
            submitter: None,
            durable: true,
            parent: Some(ParentStep { run: parent, step: step.into() }),
            owner: None,
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn a_sub_run_is_matched_to_the_unit_that_started_it_by_its_key() {
        let (run, other) = (RunId::new(), RunId::new());
        let unit = |item, attempt| UnitKey { step: "sub".into(), item, attempt };
        let child = sub_run(run, "sub", step_task_key(run, "sub", None, 2));
        assert!(started_for(&child, run, &unit(None, 2)));
        assert!(!started_for(&child, run, &unit(None, 1)), "another attempt");
        assert!(!started_for(&child, other, &unit(None, 2)), "another run");
        let item = sub_run(run, "sub", step_task_key(run, "sub", Some(3), 1));
        assert!(started_for(&item, run, &unit(Some(3), 1)));
        assert!(!started_for(&item, run, &unit(Some(2), 1)), "another item");
        let by_hand = sub_run(run, "sub", "mine".into());
        assert!(!started_for(&by_hand, run, &unit(None, 1)), "a key someone else chose");
    }

    #[tokio::test(start_paused = true)]
    async fn a_found_task_the_orchestrator_does_not_hold_is_waited_for_until_it_is_final() {
        let request = TaskRequest::to_agent("echo", json!({}));
        let mut record = TaskRecord::queued(&request, 1, None, SystemTime::now());
        record.state = TaskState::Running;
        let state = NotHeldState { record, looks: 0, running_for: 3 };
        let (orchestrator, _) = Actor::spawn(None, NotHeld, state).await.unwrap();
        let (tx, mut outcomes) = mpsc::unbounded_channel();
        let (run, _) = Actor::spawn(None, Outcomes, tx).await.unwrap();

        let found = Addr::new(orchestrator.clone(), ActorStats::new("orchestrator"));
        let unit = UnitKey { step: "s".into(), item: None, attempt: 1 };
        run_task(
            Arc::new(move || Some(found.clone())),
            Addr::new(run.clone(), ActorStats::new("run")),
            unit,
            request,
        );

        let outcome = outcomes.recv().await.expect("the unit ends");
        assert_eq!(outcome, UnitOutcome::Succeeded(json!("done")), "not 'the task ended running'");
        orchestrator.stop(None);
        run.stop(None);
    }

    /// `NotHeld` drops a `SubmitAndWait` unanswered, as an orchestrator that stops with
    /// the step's wait in its table does: the dropped continuation falls back to the loop.
    #[tokio::test(start_paused = true)]
    async fn a_step_wait_dropped_unanswered_falls_back_to_submitting_again() {
        let request = TaskRequest::to_agent("echo", json!({}));
        let record = TaskRecord::queued(&request, 1, None, SystemTime::now());
        let state = NotHeldState { record, looks: 0, running_for: 0 };
        let (orchestrator, _) = Actor::spawn(None, NotHeld, state).await.unwrap();
        let (tx, mut outcomes) = mpsc::unbounded_channel();
        let (run, _) = Actor::spawn(None, Outcomes, tx).await.unwrap();

        let found = Addr::new(orchestrator.clone(), ActorStats::new("orchestrator"));
        let unit = UnitKey { step: "s".into(), item: None, attempt: 1 };
        submit_and_wait(
            Arc::new(move || Some(found.clone())),
            Addr::new(run.clone(), ActorStats::new("run")),
            unit,
            request,
        );

        let ended = tokio::time::timeout(Duration::from_secs(60), outcomes.recv()).await;
        let outcome = ended.expect("the unit ends, not waits forever").expect("the run is there");
        assert_eq!(outcome, UnitOutcome::Succeeded(json!("done")));
        orchestrator.stop(None);
        run.stop(None);
    }

    /// An orchestrator draining for shutdown: it refuses every submission.
    struct Draining;

    impl Actor for Draining {
        type Msg = OrchestratorMsg;
        type State = Arc<std::sync::atomic::AtomicU32>;
        type Arguments = Arc<std::sync::atomic::AtomicU32>;

        async fn pre_start(
            &self,
            _: ActorRef<OrchestratorMsg>,
            submits: Self::Arguments,
        ) -> Result<Self::State, ActorProcessingErr> {
            Ok(submits)
        }

        async fn handle(
            &self,
            _: ActorRef<OrchestratorMsg>,
            msg: OrchestratorMsg,
            submits: &mut Self::State,
        ) -> Result<(), ActorProcessingErr> {
            if let OrchestratorMsg::Submit { reply, .. } = msg {
                submits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = reply.send(Err(TaskError::ShuttingDown));
            }
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_step_refused_by_a_node_shutting_down_is_not_failed_and_gives_up_with_its_run() {
        let submits = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let (orchestrator, _) = Actor::spawn(None, Draining, submits.clone()).await.unwrap();
        let (tx, mut outcomes) = mpsc::unbounded_channel();
        let (run, run_handle) = Actor::spawn(None, Outcomes, tx).await.unwrap();
        let found = Addr::new(orchestrator.clone(), ActorStats::new("orchestrator"));
        let unit = UnitKey { step: "s".into(), item: None, attempt: 1 };
        let request = TaskRequest::to_agent("echo", json!({}));
        run_task(
            Arc::new(move || Some(found.clone())),
            Addr::new(run.clone(), ActorStats::new("run")),
            unit,
            request,
        );

        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(outcomes.try_recv().is_err(), "the step stays in flight: the run resumes on the next start");
        assert!(submits.load(std::sync::atomic::Ordering::SeqCst) > 1, "asked again while the node drains");
        run.stop(None);
        run_handle.await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let after_stop = submits.load(std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(
            submits.load(std::sync::atomic::Ordering::SeqCst),
            after_stop,
            "no asking after the run stopped"
        );
        orchestrator.stop(None);
    }
}
