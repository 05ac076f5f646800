//! The [`Pool`] actor: a balanced pool of identical workers with a bounded queue.
//!
//! Workers take one [`Assignment`] at a time up to `capacity_per_worker`; the [`Lease`] in
//! each assignment marks the worker free again when dropped, so the pool learns of
//! completions through shared atomics and needs no message per finished job unless
//! jobs are waiting in its queue.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use ractor::{Actor, ActorProcessingErr, ActorRef, Message, RpcReplyPort, SpawnErr};

use crate::policy::{Backoff, Intensity};
use crate::stats::ActorStats;
use crate::supervisor::{StartCtx, SupervisorObserver};

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
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum PoolError {
    #[error("the pool's queue is full ({limit} jobs waiting)")]
    QueueFull { limit: usize },
    #[error("the pool is draining and accepts no new work")]
    Draining,
    #[error("the pool has no workers and cannot start any")]
    NoWorkers,
}

/// Handed to a worker with each job; dropping it marks the worker's slot free.
pub struct Lease {
    // private: the worker's in-flight counter and the pool to nudge
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

pub struct PoolState<J, M> {
    _p: std::marker::PhantomData<(J, M)>,
}

impl<J: Job, M: Message + From<Assignment<J>>> Actor for Pool<J, M> {
    type Msg = PoolMsg<J>;
    type State = PoolState<J, M>;
    type Arguments = PoolArgs<M>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        _args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        todo!()
    }
}
