//! The [`Pool`] actor: a balanced pool of identical workers with a bounded queue.
//!
//! Workers take one [`Assignment`] at a time up to `capacity_per_worker`; the [`Lease`] in
//! each assignment marks the worker free again when dropped, so the pool learns of
//! completions through shared atomics and needs no message per finished job unless
//! jobs are waiting in its queue (or the pool is draining).
//!
//! Workers are supervised like permanent children, one-for-one, with the pool's own
//! intensity and backoff, so a pool never depends on an outer supervisor to stay full.
//! Jobs are FIFO: the queue has no priorities (a per-priority queue would need the
//! pool to know the job's priority, which [`Job`] does not expose). While workers are
//! restarting and none can take work, jobs stay queued up to `queue_limit`.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use ractor::{Actor, ActorProcessingErr, ActorRef, Message, RpcReplyPort, SpawnErr, SupervisionEvent};

use crate::policy::{Backoff, Intensity};
use crate::stats::{ActorStats, RestartCause};
use crate::supervisor::{Exit, StartCtx, SupervisorObserver};

/// How the pool picks a worker for the next job among those with spare capacity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Routing {
    RoundRobin,
    #[default]
    LeastLoaded,
    /// Two random workers, the less loaded wins.
    PowerOfTwo,
}

/// A unit of work a pool routes. A job the pool cannot accept is handed back through
/// `reject`, so the submitter always hears of it.
pub trait Job: Send + 'static {
    fn reject(self, error: PoolError);

    /// Queued jobs of higher priority go first; equal priorities keep their order.
    fn priority(&self) -> u8 {
        0
    }
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum PoolError {
    #[error("the pool's queue is full ({limit} jobs waiting)")]
    QueueFull { limit: usize },
    #[error("the pool is draining and accepts no new work")]
    Draining,
    #[error("the pool has no workers and cannot start any")]
    NoWorkers,
    /// `Resize` needs `min <= max` and `max >= 1`.
    #[error("invalid pool size: min {min}, max {max} (need min <= max and max >= 1)")]
    InvalidSize { min: usize, max: usize },
}

/// Handed to a worker with each job; dropping it marks the worker's slot free.
pub struct Lease {
    slot: Arc<slots::SlotShared>,
}

/// What a worker receives: the job and its lease.
pub struct Assignment<J> {
    pub job: J,
    pub lease: Lease,
}

/// Starts one worker, linked to `ctx.supervisor` and instrumented with `ctx.stats`.
pub type WorkerStart<M> =
    Arc<dyn Fn(StartCtx) -> BoxFuture<'static, Result<ActorRef<M>, SpawnErr>> + Send + Sync>;

/// Load figures readable without messaging the pool.
#[derive(Debug, Default)]
pub struct PoolLoad {
    pub workers: AtomicUsize,
    pub busy: AtomicUsize,
    pub queued: AtomicUsize,
}

pub struct PoolArgs<M> {
    pub routing: Routing,
    pub min: usize,
    pub max: usize,
    pub capacity_per_worker: usize,
    pub queue_limit: usize,
    /// Workers above `min` idle for this long are stopped.
    pub idle_timeout: Duration,
    pub intensity: Intensity,
    pub backoff: Backoff,
    pub start_worker: WorkerStart<M>,
    pub stats: Arc<ActorStats>,
    pub load: Arc<PoolLoad>,
    pub observer: Option<SupervisorObserver>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PoolStatus {
    pub workers: usize,
    pub busy: usize,
    pub queued: usize,
    pub min: usize,
    pub max: usize,
    pub draining: bool,
}

pub enum PoolMsg<J> {
    Submit(J),
    Resize {
        min: usize,
        max: usize,
        reply: RpcReplyPort<Result<(), PoolError>>,
    },
    Status(RpcReplyPort<PoolStatus>),
    /// Stops accepting work and replies once the queue is empty and no worker is busy.
    Drain(RpcReplyPort<()>),
    /// Internal: a lease was released while jobs were queued.
    WorkerFree,
    /// Internal: periodic shrink check.
    Tick,
    /// Internal: restart a worker slot after backoff.
    RestartWorker {
        slot: u64,
    },
}

pub struct Pool<J, M>(std::marker::PhantomData<fn() -> (J, M)>);

impl<J, M> Default for Pool<J, M> {
    fn default() -> Self {
        Pool(std::marker::PhantomData)
    }
}

mod queue;
mod slots;
mod state;
#[cfg(test)]
mod tests;

pub use state::PoolState;

impl<J: Job, M: Message + From<Assignment<J>>> Actor for Pool<J, M> {
    type Msg = PoolMsg<J>;
    type State = PoolState<J, M>;
    type Arguments = PoolArgs<M>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        PoolState::start(&myself, args).await
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Started here, not in pre_start: ractor's interval stops once it sees the actor
        // not running, and during pre_start it is still starting.
        let period = (state.idle_timeout() / 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
        state.set_ticker(myself.send_interval(period, || PoolMsg::Tick));
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.shutdown().await;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // The rare paths that spawn workers are boxed, here and in `submit`: inline, their
        // futures made this handler's several times larger, and it is moved per message.
        match message {
            PoolMsg::Submit(job) => state.submit(&myself, job).await?,
            PoolMsg::WorkerFree => state.dispatch(),
            PoolMsg::Tick => state.tick(),
            PoolMsg::Resize { min, max, reply } => {
                if min > max || max == 0 {
                    let _ = reply.send(Err(PoolError::InvalidSize { min, max }));
                } else {
                    let _ = reply.send(Ok(()));
                    Box::pin(state.resize(&myself, min, max)).await?;
                }
            }
            PoolMsg::Status(reply) => {
                let _ = reply.send(state.status());
            }
            PoolMsg::Drain(reply) => state.drain(reply),
            PoolMsg::RestartWorker { slot } => Box::pin(state.restart_due(&myself, slot)).await?,
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let Some((cell, exit)) = Exit::from_event(event) else { return Ok(()) };
        // Workers are permanent: a normal exit is restarted too, counted as `stopped`.
        // Cells that are no longer a current worker (shrunk, stopped) are ignored.
        match state.slot_of(&cell) {
            Some(n) => {
                let cause = exit.cause.unwrap_or(RestartCause::Stopped);
                state.on_worker_exit(&myself, n, cause, exit.reason).await
            }
            None => Ok(()),
        }
    }
}
