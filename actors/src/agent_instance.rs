//! The agent instance actor: one worker (a process, a native value) running one task
//! at a time.
//!
//! The task runs as a spawned future that owns the worker and hands it back with the
//! result, so the mailbox stays live while the agent works. Cancellation and the attempt
//! timeout reach the task through its cancellation token; the result goes straight to
//! the orchestrator. A worker that crashed or broke the protocol is not trusted again:
//! the instance fails and its pool restarts it with a fresh worker.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

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
    pub namespace: String,
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
        });
    }
}

pub enum AgentInstanceMsg {
    Run(Assignment<AgentJob>),
    /// Internal: the running task ended and hands the worker back.
    Finished {
        worker: Box<dyn AgentWorker>,
        broken: Option<String>,
    },
}

impl From<Assignment<AgentJob>> for AgentInstanceMsg {
    fn from(assignment: Assignment<AgentJob>) -> Self {
        AgentInstanceMsg::Run(assignment)
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
            AgentInstanceMsg::Run(Assignment { job, lease }) => {
                let Some(worker) = state.worker.take() else {
                    // The pool gives one job at a time; a second one is a broken invariant.
                    job.reject(PoolError::NoWorkers);
                    return Err("agent instance received a task while busy".into());
                };
                state.lease = Some(lease);
                state.running = Some(job.cancel.clone().drop_guard());
                let me = Addr::new(myself, state.args.stats.clone());
                spawn_attempt(me, worker, job, state.args.events.clone());
            }
            AgentInstanceMsg::Finished { worker, broken } => {
                state.lease = None;
                if let Some(guard) = state.running.take() {
                    guard.disarm();
                }
                if let Some(reason) = broken {
                    // Dropping the worker ends its process; the pool restarts this instance.
                    drop(worker);
                    return Err(format!("agent '{}' worker broken: {reason}", state.args.spec.name).into());
                }
                state.worker = Some(worker);
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

/// Runs one attempt outside the mailbox, then reports the outcome to the orchestrator
/// and hands the worker back to the instance.
fn spawn_attempt(
    myself: Addr<AgentInstanceMsg>,
    mut worker: Box<dyn AgentWorker>,
    job: AgentJob,
    events: Arc<dyn EventSink>,
) {
    tokio::spawn(async move {
        let started = Instant::now();
        let AgentJob { task_id, attempt, reply_to, timeout, .. } = job;
        let outcome = if job.cancel.is_cancelled() {
            AttemptOutcome::Failed(AgentError::Cancelled)
        } else if timeout.is_zero() {
            AttemptOutcome::TimedOut
        } else {
            let _ = reply_to.cast(OrchestratorMsg::AttemptStarted { task_id, attempt });
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
                tasks: Some(TaskClient::new(reply_to.clone())),
            };
            run_attempt(worker.as_mut(), ctx, Value::clone(&job.input), timeout).await
        };
        let broken = match &outcome {
            AttemptOutcome::Failed(e) if e.breaks_worker() => Some(e.to_string()),
            _ => worker.broken(),
        };
        let _ = reply_to.cast(OrchestratorMsg::AttemptDone {
            task_id,
            attempt,
            outcome,
            elapsed: started.elapsed(),
        });
        let _ = myself.cast(AgentInstanceMsg::Finished { worker, broken });
    });
}

async fn run_attempt(
    worker: &mut dyn AgentWorker,
    ctx: TaskContext,
    input: Value,
    timeout: Duration,
) -> AttemptOutcome {
    // The attempt's own token (a fresh one per attempt): fired by a cancel or the timeout.
    let cancel = ctx.cancel.clone();
    let run = AssertUnwindSafe(worker.run(ctx, input)).catch_unwind();
    tokio::pin!(run);
    let timer = tokio::time::sleep(timeout);
    tokio::pin!(timer);
    let (result, timed_out) = tokio::select! {
        biased;
        result = &mut run => (result, false),
        _ = &mut timer => {
            // Ask the worker to stop and wait for it: it returns once it stopped (a
            // process worker kills its child after the grace period).
            cancel.cancel();
            (run.await, true)
        }
    };
    match result {
        Err(panic) => {
            AttemptOutcome::Failed(AgentError::Crashed(format!("panicked: {}", panic_message(&panic))))
        }
        Ok(_) if timed_out => AttemptOutcome::TimedOut,
        Ok(Ok(output)) => AttemptOutcome::Succeeded(output),
        Ok(Err(error)) => AttemptOutcome::Failed(error),
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
