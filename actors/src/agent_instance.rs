//! The agent instance actor: one worker (a process, a native value) running one task
//! at a time.
//!
//! The attempt is a future that owns the worker and hands it back with the result. The
//! instance polls it once in its handler: an agent that answers at once (a no-op, a
//! cached answer) costs no task, no timer and no further message. One that has to wait
//! moves to a spawned task, so the mailbox stays live while the agent works; its start
//! is reported then. Cancellation and the attempt timeout reach the task through its
//! cancellation token; the result goes straight to the orchestrator. A worker that
//! crashed or broke the protocol is not trusted again: the instance fails and its pool
//! restarts it with a fresh worker.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime};

use futures::FutureExt;
use mark1_supervisors::{Addr, Assignment, Job, Lease, PoolError};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::Value;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::domain::{AgentSpec, TaskId};
use crate::orchestrator::{OrchestratorMsg, TaskClient};
use crate::ports::{AgentError, AgentRuntime, AgentWorker, EventSink, Progress, TaskContext};

/// One attempt of a task, routed by a pool to an instance.
pub struct AgentJob {
    pub task_id: TaskId,
    pub attempt: u32,
    /// 0..=9; higher runs first among the pool's queued jobs.
    pub priority: u8,
    pub input: Arc<Value>,
    /// Shared with the task's entry and events.
    pub namespace: Arc<str>,
    pub idempotency_key: String,
    pub deadline: Option<SystemTime>,
    /// Time this attempt may run (already capped by the deadline).
    pub timeout: Duration,
    pub traceparent: Option<String>,
    /// Who submitted the task; sub-tasks the agent submits are theirs too.
    pub submitter: Option<String>,
    pub cancel: CancellationToken,
    pub reply_to: Addr<OrchestratorMsg>,
}

/// How one attempt ended, as the orchestrator hears it.
#[derive(Debug)]
pub enum AttemptOutcome {
    Succeeded(Value),
    Failed(AgentError),
    /// The attempt's time ran out.
    TimedOut,
    /// The pool refused the job.
    Rejected(PoolError),
}

impl Job for AgentJob {
    fn priority(&self) -> u8 {
        self.priority
    }

    fn reject(self, error: PoolError) {
        let _ = self.reply_to.cast(OrchestratorMsg::AttemptDone {
            task_id: self.task_id,
            attempt: self.attempt,
            outcome: AttemptOutcome::Rejected(error),
            elapsed: Duration::ZERO,
            start_unreported: false,
        });
    }
}

pub enum AgentInstanceMsg {
    /// Boxed: a message is as large as its largest variant, and every future that holds
    /// one (the handler's, the instrumentation's, ractor's loop boxed per instance) grows
    /// with it; inline, the job made each idle instance about 500 bytes larger.
    Run(Box<Assignment<AgentJob>>),
    /// Internal: the running task ended and hands the worker back.
    Finished { worker: Box<dyn AgentWorker>, broken: Option<String> },
}

impl From<Assignment<AgentJob>> for AgentInstanceMsg {
    fn from(assignment: Assignment<AgentJob>) -> Self {
        AgentInstanceMsg::Run(Box::new(assignment))
    }
}

pub struct AgentInstanceArgs {
    pub spec: Arc<AgentSpec>,
    pub runtime: Arc<dyn AgentRuntime>,
    pub events: Arc<dyn EventSink>,
    /// The instance's own slot, so the worker's hand-back message is counted too.
    pub stats: Arc<mark1_supervisors::ActorStats>,
}

pub struct AgentInstance;

pub struct AgentInstanceState {
    args: AgentInstanceArgs,
    /// `None` while a task holds the worker.
    worker: Option<Box<dyn AgentWorker>>,
    /// Lease of the running task: dropped when the worker comes back.
    lease: Option<Lease>,
    /// Cancels the running attempt if the instance goes away first (stopped, killed,
    /// or failed), so no attempt outlives its instance.
    running: Option<DropGuard>,
}

impl Actor for AgentInstance {
    type Msg = AgentInstanceMsg;
    type State = AgentInstanceState;
    type Arguments = AgentInstanceArgs;

    async fn pre_start(
        &self,
        _: ActorRef<Self::Msg>,
        args: AgentInstanceArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let worker = args.runtime.start(&args.spec).await?;
        Ok(AgentInstanceState { args, worker: Some(worker), lease: None, running: None })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: AgentInstanceMsg,
        state: &mut AgentInstanceState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            AgentInstanceMsg::Run(assignment) => {
                let Assignment { job, lease } = *assignment;
                let Some(worker) = state.worker.take() else {
                    // The pool gives one job at a time; a second one is a broken invariant.
                    job.reject(PoolError::NoWorkers);
                    return Err("agent instance received a task while busy".into());
                };
                let report = Report::new(&job);
                let (cancel, timeout) = (job.cancel.clone(), job.timeout);
                let refused = if cancel.is_cancelled() {
                    Some(AttemptOutcome::Failed(AgentError::Cancelled))
                } else if timeout.is_zero() {
                    Some(AttemptOutcome::TimedOut)
                } else {
                    None
                };
                if let Some(outcome) = refused {
                    report.done(outcome, false);
                    return state.hand_back(worker, None);
                }
                let mut attempt = start_attempt(worker, job, state.args.events.clone());
                match attempt.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
                    Poll::Ready((worker, result)) => {
                        let outcome = outcome_of(result, false);
                        let broken = broken(&outcome, worker.as_ref());
                        report.done(outcome, true);
                        state.hand_back(worker, broken)?;
                    }
                    Poll::Pending => {
                        report.started();
                        state.lease = Some(lease);
                        state.running = Some(cancel.clone().drop_guard());
                        let me = Addr::new(myself, state.args.stats.clone());
                        finish_in_task(me, attempt, report, cancel, timeout);
                    }
                }
            }
            AgentInstanceMsg::Finished { worker, broken } => {
                state.lease = None;
                if let Some(guard) = state.running.take() {
                    guard.disarm();
                }
                state.hand_back(worker, broken)?;
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _: ActorRef<Self::Msg>,
        state: &mut AgentInstanceState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(worker) = state.worker.take() {
            worker.shutdown().await;
        }
        Ok(())
    }
}

impl AgentInstanceState {
    /// Takes the worker back after an attempt, or fails the instance when it is broken.
    fn hand_back(
        &mut self,
        worker: Box<dyn AgentWorker>,
        broken: Option<String>,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(reason) = broken {
            // Dropping the worker ends its process; the pool restarts this instance.
            drop(worker);
            return Err(format!("agent '{}' worker broken: {reason}", self.args.spec.name).into());
        }
        self.worker = Some(worker);
        Ok(())
    }
}

/// An attempt in progress: the agent's run, owning the worker it hands back.
type Attempt = Pin<Box<dyn Future<Output = (Box<dyn AgentWorker>, AgentResult)> + Send>>;

/// What the agent's run gave, or its panic.
type AgentResult = std::thread::Result<Result<Value, AgentError>>;

/// Builds the attempt's future; nothing runs until it is polled.
fn start_attempt(mut worker: Box<dyn AgentWorker>, job: AgentJob, events: Arc<dyn EventSink>) -> Attempt {
    let AgentJob { task_id, attempt, reply_to, .. } = job;
    // The job's fields move into the agent's context: nothing is copied.
    let progress = Progress::new(events, task_id, job.namespace.clone());
    let ctx = TaskContext {
        task_id,
        attempt,
        idempotency_key: job.idempotency_key,
        deadline: job.deadline,
        namespace: job.namespace,
        traceparent: job.traceparent,
        submitter: job.submitter,
        cancel: job.cancel,
        progress: Some(progress),
        tasks: Some(TaskClient::new(reply_to)),
    };
    let input = Value::clone(&job.input);
    Box::pin(async move {
        let result = AssertUnwindSafe(worker.run(ctx, input)).catch_unwind().await;
        (worker, result)
    })
}

/// Runs the rest of an attempt that is waiting on something, outside the mailbox, under
/// the attempt's timeout; then reports the outcome and hands the worker back.
fn finish_in_task(
    myself: Addr<AgentInstanceMsg>,
    mut attempt: Attempt,
    report: Report,
    cancel: CancellationToken,
    timeout: Duration,
) {
    let deadline = report.started.checked_add(timeout);
    tokio::spawn(async move {
        let timer = async {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        let ((worker, result), timed_out) = tokio::select! {
            biased;
            done = &mut attempt => (done, false),
            _ = timer => {
                // Ask the worker to stop and wait for it: it returns once it stopped (a
                // process worker kills its child after the grace period).
                cancel.cancel();
                (attempt.await, true)
            }
        };
        let outcome = outcome_of(result, timed_out);
        let broken = broken(&outcome, worker.as_ref());
        report.done(outcome, false);
        let _ = myself.cast(AgentInstanceMsg::Finished { worker, broken });
    });
}

/// Tells the orchestrator how an attempt went.
struct Report {
    task_id: TaskId,
    attempt: u32,
    reply_to: Addr<OrchestratorMsg>,
    started: tokio::time::Instant,
}

impl Report {
    fn new(job: &AgentJob) -> Report {
        let started = tokio::time::Instant::now();
        Report { task_id: job.task_id, attempt: job.attempt, reply_to: job.reply_to.clone(), started }
    }

    fn started(&self) {
        let _ = self
            .reply_to
            .cast(OrchestratorMsg::AttemptStarted { task_id: self.task_id, attempt: self.attempt });
    }

    /// `start_unreported`: the attempt ran and ended before its start was reported.
    fn done(self, outcome: AttemptOutcome, start_unreported: bool) {
        let _ = self.reply_to.cast(OrchestratorMsg::AttemptDone {
            task_id: self.task_id,
            attempt: self.attempt,
            outcome,
            elapsed: self.started.elapsed(),
            start_unreported,
        });
    }
}

fn outcome_of(result: AgentResult, timed_out: bool) -> AttemptOutcome {
    match result {
        Err(panic) => {
            AttemptOutcome::Failed(AgentError::Crashed(format!("panicked: {}", panic_message(&panic))))
        }
        Ok(_) if timed_out => AttemptOutcome::TimedOut,
        Ok(Ok(output)) => AttemptOutcome::Succeeded(output),
        Ok(Err(error)) => AttemptOutcome::Failed(error),
    }
}

/// Why the worker cannot be trusted with another task, if it cannot.
fn broken(outcome: &AttemptOutcome, worker: &dyn AgentWorker) -> Option<String> {
    match outcome {
        AttemptOutcome::Failed(e) if e.breaks_worker() => Some(e.to_string()),
        _ => worker.broken(),
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every idle instance keeps ractor's message loop, boxed, and that future holds
    /// a message (and the handler futures that hold one): a large variant would make
    /// each of the pool's instances pay for it while idle.
    #[test]
    fn an_instance_message_stays_small() {
        // 40 bytes now (`Finished`); 192 with the job inline.
        assert!(
            std::mem::size_of::<AgentInstanceMsg>() <= 64,
            "AgentInstanceMsg is {} bytes: box the large variant",
            std::mem::size_of::<AgentInstanceMsg>()
        );
    }
}
