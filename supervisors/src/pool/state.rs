//! The pool's private state: worker slots, the queue, routing, restarts and sizing.
//!
//! The hot path (`submit` → `assign`) touches one worker's counter, `busy`, and the
//! worker's mailbox; it allocates nothing but the message and reads no clock. Idle
//! tracking is done by `tick`, which compares each slot's assignment count with the one
//! it saw last time.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::StreamExt;
use ractor::concurrency::JoinHandle;
use ractor::SpawnErr;
use ractor::{ActorCell, ActorProcessingErr, ActorRef, Message, RpcReplyPort};

use super::queue::JobQueue;
use super::slots::{PoolShared, Router, SlotShared};
use super::{Assignment, Job, Lease, PoolArgs, PoolError, PoolLoad, PoolMsg, PoolStatus, WorkerStart};
use crate::policy::{Backoff, Intensity, RestartWindow};
use crate::stats::{ActorStats, RestartCause, Status};
use crate::supervisor::{StartCtx, SupervisorEvent, SupervisorObserver};

/// How long a stopping worker may take before it is killed.
const WORKER_SHUTDOWN: Duration = Duration::from_secs(5);
const BACKOFF_HISTORY: u32 = 64;
/// Worker starts a pool runs at once while it starts workers up to `min`.
const STARTS_AT_ONCE: usize = 64;

/// How one worker's start went.
type Started<M> = Result<ActorRef<M>, SpawnErr>;

struct WorkerSlot<M> {
    /// Never reused, so a restart timer for a slot that was shrunk away finds nothing.
    n: u64,
    actor: Option<ActorRef<M>>,
    shared: Arc<SlotShared>,
    stats: Arc<ActorStats>,
    /// Waiting for a delayed restart.
    pending: bool,
    recent: RestartWindow,
    assigned: u64,
    seen_assigned: u64,
    last_active: Instant,
}

pub struct PoolState<J, M> {
    name: String,
    router: Router,
    min: usize,
    max: usize,
    cap: usize,
    queue_limit: usize,
    idle_timeout: Duration,
    backoff: Backoff,
    window: RestartWindow,
    start_worker: WorkerStart<M>,
    stats: Arc<ActorStats>,
    load: Arc<PoolLoad>,
    observer: Option<SupervisorObserver>,
    shared: Arc<PoolShared>,
    slots: Vec<WorkerSlot<M>>,
    next_n: u64,
    queue: JobQueue<J>,
    draining: bool,
    drain_waiters: Vec<RpcReplyPort<()>>,
    ticker: Option<JoinHandle<()>>,
}

impl<J: Job, M: Message + From<Assignment<J>>> PoolState<J, M> {
    /// Builds the state and starts `min` workers; failures go through intensity and
    /// backoff like any restart, and exceeding the intensity fails the pool's start.
    pub(super) async fn start(
        myself: &ActorRef<PoolMsg<J>>,
        args: PoolArgs<M>,
    ) -> Result<Self, ActorProcessingErr> {
        let wake_ref = myself.clone();
        let shared = Arc::new(PoolShared {
            load: args.load.clone(),
            draining: AtomicBool::new(false),
            wake: Box::new(move || {
                let _ = wake_ref.send_message(PoolMsg::WorkerFree);
            }),
        });
        if args.min > args.max || args.max == 0 {
            return Err(PoolError::InvalidSize { min: args.min, max: args.max }.into());
        }
        args.load.workers.store(0, SeqCst);
        args.load.busy.store(0, SeqCst);
        args.load.queued.store(0, SeqCst);
        let mut state = PoolState {
            name: myself.get_name().unwrap_or_else(|| args.stats.name().to_string()),
            router: Router::new(args.routing),
            min: args.min,
            max: args.max,
            cap: args.capacity_per_worker.max(1),
            queue_limit: args.queue_limit,
            idle_timeout: args.idle_timeout,
            backoff: args.backoff,
            window: RestartWindow::new(args.intensity),
            start_worker: args.start_worker,
            stats: args.stats,
            load: args.load,
            observer: args.observer,
            shared,
            slots: Vec::new(),
            next_n: 0,
            queue: JobQueue::new(),
            draining: false,
            drain_waiters: Vec::new(),
            ticker: None,
        };
        state.start_up_to_min(myself).await?;
        Ok(state)
    }

    pub(super) fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    pub(super) fn set_ticker(&mut self, ticker: JoinHandle<()>) {
        self.ticker = Some(ticker);
    }

    fn index(&self, n: u64) -> Option<usize> {
        self.slots.iter().position(|s| s.n == n)
    }

    pub(super) fn slot_of(&self, cell: &ActorCell) -> Option<u64> {
        let id = cell.get_id();
        self.slots.iter().find(|s| s.actor.as_ref().is_some_and(|a| a.get_id() == id)).map(|s| s.n)
    }

    fn notify(&self, event: SupervisorEvent) {
        if let Some(observer) = &self.observer {
            observer(event);
        }
    }

    fn pick(&mut self) -> Option<usize> {
        let slots = &self.slots;
        self.router.pick(slots.len(), self.cap, |i| slots[i].actor.as_ref().map(|_| slots[i].shared.load()))
    }

    #[inline]
    fn assign(&mut self, i: usize, job: J) {
        let slot = &mut self.slots[i];
        slot.shared.in_flight.fetch_add(1, SeqCst);
        self.load.busy.fetch_add(1, SeqCst);
        slot.assigned += 1;
        let lease = Lease::new(slot.shared.clone());
        if let Some(actor) = &slot.actor {
            // A worker that died before its exit event arrived drops the message, and
            // with it the lease; the job itself is lost with the worker, as any job a
            // worker held when it died.
            slot.stats.on_sent();
            if actor.send_message(M::from(Assignment { job, lease })).is_err() {
                slot.stats.on_send_failed();
                tracing::debug!(pool = %self.name, "job sent to a worker that already stopped");
            }
        }
    }

    pub(super) async fn submit(
        &mut self,
        myself: &ActorRef<PoolMsg<J>>,
        job: J,
    ) -> Result<(), ActorProcessingErr> {
        if self.draining {
            job.reject(PoolError::Draining);
            return Ok(());
        }
        if self.queue.is_empty() {
            if let Some(i) = self.pick() {
                self.assign(i, job);
                return Ok(());
            }
        }
        // Every worker is at capacity (or jobs are already waiting): grow if allowed. The
        // new worker first takes jobs already queued, so queue order (priority, then
        // arrival) holds.
        // Boxed: see `Pool::handle`.
        if self.slots.len() < self.max && Box::pin(self.grow(myself)).await?.is_some() {
            self.dispatch();
        }
        self.enqueue(job);
        Ok(())
    }

    fn enqueue(&mut self, job: J) {
        if self.slots.is_empty() {
            return job.reject(PoolError::NoWorkers);
        }
        if self.queue.len() >= self.queue_limit {
            return job.reject(PoolError::QueueFull { limit: self.queue_limit });
        }
        self.queue.push(job);
        // Publish the queued job before re-checking for a free worker: see `slots`.
        self.load.queued.fetch_add(1, SeqCst);
        self.dispatch();
    }

    /// Hands queued jobs to free workers, then answers drains that are complete.
    pub(super) fn dispatch(&mut self) {
        while !self.queue.is_empty() {
            let Some(i) = self.pick() else { break };
            let job = self.queue.pop().expect("queue is not empty");
            self.load.queued.fetch_sub(1, SeqCst);
            self.assign(i, job);
        }
        self.check_drained();
    }

    fn check_drained(&mut self) {
        if self.draining && self.queue.is_empty() && self.load.busy.load(SeqCst) == 0 {
            for reply in self.drain_waiters.drain(..) {
                let _ = reply.send(());
            }
        }
    }

    pub(super) fn drain(&mut self, reply: RpcReplyPort<()>) {
        self.draining = true;
        self.shared.draining.store(true, SeqCst);
        self.drain_waiters.push(reply);
        self.dispatch();
    }

    pub(super) fn status(&self) -> PoolStatus {
        PoolStatus {
            workers: self.load.workers.load(Relaxed),
            busy: self.load.busy.load(Relaxed),
            queued: self.queue.len(),
            min: self.min,
            max: self.max,
            draining: self.draining,
        }
    }

    /// Adds and starts workers up to `min`, up to `STARTS_AT_ONCE` at a time: their starts
    /// (a process's spawn and hello, say) overlap instead of waiting one behind another.
    /// Failed starts are then handled in slot order, as `grow` handles one.
    async fn start_up_to_min(&mut self, myself: &ActorRef<PoolMsg<J>>) -> Result<(), ActorProcessingErr> {
        let first = self.slots.len();
        self.slots.reserve(self.min.saturating_sub(first));
        while self.slots.len() < self.min {
            self.add_slot();
        }
        let starts: Vec<_> = (first..self.slots.len()).map(|i| self.begin_start(myself, i)).collect();
        let results: Vec<_> = futures::stream::iter(starts).buffered(STARTS_AT_ONCE).collect().await;
        for (i, result) in (first..).zip(results) {
            if let Err(reason) = self.end_start(i, result) {
                let n = self.slots[i].n;
                self.on_worker_exit(myself, n, RestartCause::StartFailed, reason).await?;
            }
        }
        Ok(())
    }

    /// Adds a worker slot and starts it. `Ok(None)` when its start failed and it awaits
    /// a restart; `Err` when that failure exceeded the intensity.
    async fn grow(&mut self, myself: &ActorRef<PoolMsg<J>>) -> Result<Option<usize>, ActorProcessingErr> {
        let i = self.add_slot();
        match self.start_slot(myself, i).await {
            Ok(()) => Ok(Some(i)),
            Err(reason) => {
                let n = self.slots[i].n;
                self.on_worker_exit(myself, n, RestartCause::StartFailed, reason).await?;
                Ok(None)
            }
        }
    }

    /// Adds an empty slot for the next worker; returns its index.
    fn add_slot(&mut self) -> usize {
        let n = self.next_n;
        self.next_n += 1;
        let window = self.window.intensity().window;
        self.slots.push(WorkerSlot {
            n,
            actor: None,
            shared: SlotShared::new(self.shared.clone()),
            stats: self.stats.child(worker_name(self.stats.name(), n)),
            pending: true,
            recent: RestartWindow::new(Intensity { max_restarts: BACKOFF_HISTORY, window }),
            assigned: 0,
            seen_assigned: 0,
            last_active: Instant::now(),
        });
        self.slots.len() - 1
    }

    async fn start_slot(&mut self, myself: &ActorRef<PoolMsg<J>>, i: usize) -> Result<(), String> {
        let started = self.begin_start(myself, i).await;
        self.end_start(i, started)
    }

    /// Starts slot `i`'s worker; the future ends when the worker has started or failed to.
    fn begin_start(&mut self, myself: &ActorRef<PoolMsg<J>>, i: usize) -> BoxFuture<'static, Started<M>> {
        let slot = &mut self.slots[i];
        let ctx = StartCtx { supervisor: myself.get_cell(), name: None, stats: slot.stats.clone() };
        slot.pending = false;
        slot.stats.set_status(Status::Starting);
        (self.start_worker)(ctx)
    }

    /// Records how slot `i`'s start went.
    fn end_start(&mut self, i: usize, started: Started<M>) -> Result<(), String> {
        match started {
            Ok(actor) => {
                let slot = &mut self.slots[i];
                slot.stats.set_actor_id(actor.get_id().pid());
                slot.stats.set_status(Status::Running);
                slot.shared = SlotShared::new(self.shared.clone());
                slot.actor = Some(actor);
                slot.last_active = Instant::now();
                self.load.workers.fetch_add(1, SeqCst);
                Ok(())
            }
            Err(e) => {
                self.slots[i].stats.set_status(Status::Failed);
                Err(e.to_string())
            }
        }
    }

    /// Worker `n` died (or could not start): restart it after backoff, or escalate.
    pub(super) async fn on_worker_exit(
        &mut self,
        myself: &ActorRef<PoolMsg<J>>,
        n: u64,
        cause: RestartCause,
        reason: String,
    ) -> Result<(), ActorProcessingErr> {
        let mut next = Some((n, cause, reason));
        while let Some((n, cause, reason)) = next.take() {
            let Some(i) = self.index(n) else { continue };
            let slot = &mut self.slots[i];
            if slot.actor.take().is_some() {
                slot.shared.retire();
                self.load.workers.fetch_sub(1, SeqCst);
            }
            let now = Instant::now();
            if !self.window.record(now) {
                return Err(self.escalate(now, &reason).await);
            }
            let slot = &mut self.slots[i];
            slot.stats.record_restart(cause);
            slot.stats.set_status(Status::Restarting);
            slot.pending = true;
            slot.recent.record(now);
            let attempt = slot.recent.recent(now).saturating_sub(1);
            let child = slot.stats.name().to_string();
            self.notify(SupervisorEvent::ChildRestarted {
                supervisor: self.name.clone(),
                child,
                cause,
                reason,
            });
            let delay = self.backoff.delay(attempt);
            if delay.is_zero() {
                match self.start_slot(myself, i).await {
                    Ok(()) => self.dispatch(),
                    Err(reason) => next = Some((n, RestartCause::StartFailed, reason)),
                }
            } else {
                // Dropping the handle detaches the timer; it does not cancel it.
                drop(myself.send_after(delay, move || PoolMsg::RestartWorker { slot: n }));
            }
        }
        // Jobs of a dead worker left `busy`: a drain may be complete now.
        self.check_drained();
        Ok(())
    }

    pub(super) async fn restart_due(
        &mut self,
        myself: &ActorRef<PoolMsg<J>>,
        n: u64,
    ) -> Result<(), ActorProcessingErr> {
        let Some(i) = self.index(n) else { return Ok(()) };
        if !self.slots[i].pending {
            return Ok(());
        }
        match self.start_slot(myself, i).await {
            Ok(()) => {
                self.dispatch();
                Ok(())
            }
            Err(reason) => self.on_worker_exit(myself, n, RestartCause::StartFailed, reason).await,
        }
    }

    pub(super) async fn resize(
        &mut self,
        myself: &ActorRef<PoolMsg<J>>,
        min: usize,
        max: usize,
    ) -> Result<(), ActorProcessingErr> {
        self.min = min;
        self.max = max;
        self.start_up_to_min(myself).await?;
        self.shrink(true);
        self.dispatch();
        Ok(())
    }

    pub(super) fn tick(&mut self) {
        let now = Instant::now();
        for slot in &mut self.slots {
            if slot.assigned != slot.seen_assigned || slot.shared.load() > 0 {
                slot.seen_assigned = slot.assigned;
                slot.last_active = now;
            }
        }
        self.shrink(false);
        // No dispatch here on purpose: a retry on every tick would hide a lost wakeup
        // (see `slots`) from the tests instead of making it fail them.
        self.check_drained();
    }

    /// Stops idle workers: above `max` at once, above `min` once idle for `idle_timeout`
    /// (unless `now` is set). Slots still waiting for a restart go first.
    fn shrink(&mut self, now: bool) {
        let mut i = self.slots.len();
        while i > 0 && self.slots.len() > self.max {
            i -= 1;
            if self.slots[i].pending {
                let slot = self.slots.remove(i);
                slot.stats.set_status(Status::Stopped);
                self.stats.detach(&slot.stats);
            }
        }
        let mut i = self.slots.len();
        while i > 0 && self.slots.len() > self.min {
            i -= 1;
            let slot = &self.slots[i];
            let idle = slot.actor.is_some() && slot.shared.load() == 0;
            let expired =
                now || self.slots.len() > self.max || slot.last_active.elapsed() >= self.idle_timeout;
            if idle && expired {
                self.stop_slot(i);
            }
        }
    }

    fn stop_slot(&mut self, i: usize) {
        let slot = self.slots.remove(i);
        if let Some(actor) = slot.actor {
            slot.shared.retire();
            self.load.workers.fetch_sub(1, SeqCst);
            actor.stop(Some("shutdown".into()));
        }
        slot.stats.set_status(Status::Stopped);
        self.stats.detach(&slot.stats);
    }

    /// Gives up: notifies, stops everything and returns the reason to fail with.
    async fn escalate(&mut self, now: Instant, last_failure: &str) -> ActorProcessingErr {
        let reason = self.window.exceeded(&format!("pool '{}'", self.name), now, last_failure);
        tracing::error!(pool = %self.name, %reason, "pool escalates");
        self.notify(SupervisorEvent::Escalated { supervisor: self.name.clone(), reason: reason.clone() });
        self.shutdown().await;
        self.stats.set_status(Status::Failed);
        reason.into()
    }

    /// Stops every worker (all at once, each killed if it outlives the shutdown timeout)
    /// and hands queued jobs back.
    pub(super) async fn shutdown(&mut self) {
        if let Some(ticker) = self.ticker.take() {
            ticker.abort();
        }
        let mut stopping = Vec::new();
        for slot in &mut self.slots {
            slot.pending = false;
            if let Some(actor) = slot.actor.take() {
                slot.shared.retire();
                self.load.workers.fetch_sub(1, SeqCst);
                slot.stats.set_status(Status::Stopping);
                stopping.push(async move {
                    crate::supervisor::stop_cell(&actor.get_cell(), WORKER_SHUTDOWN).await;
                });
            }
        }
        futures::future::join_all(stopping).await;
        for slot in &self.slots {
            slot.stats.set_status(Status::Stopped);
        }
        self.load.queued.store(0, SeqCst);
        for job in self.queue.drain() {
            job.reject(PoolError::NoWorkers);
        }
    }
}

/// `<pool>/worker-<n>` in one allocation, without `format!`: its machinery cost a pool
/// more instructions per worker started than the rest of `add_slot`.
fn worker_name(pool: &str, n: u64) -> String {
    let mut digits = itoa::Buffer::new();
    let n = digits.format(n);
    let mut name = String::with_capacity(pool.len() + "/worker-".len() + n.len());
    name.push_str(pool);
    name.push_str("/worker-");
    name.push_str(n);
    name
}
