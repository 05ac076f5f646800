//! Pool tests with a toy worker that logs which job ran where, and jobs that can hold
//! their lease until a gate opens. Conditions are polled, never slept for.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, ActorStatus};
use tokio::sync::Semaphore;

use super::*;
use crate::instrumented::{spawn_instrumented, Addr};
use crate::stats::{Restarts, Status};
use crate::supervisor::tests::eventually;
use crate::supervisor::SupervisorEvent;

#[derive(Clone, Default)]
struct Shared {
    /// (job id, worker pid) for every job a worker received.
    ran: Arc<Mutex<Vec<(usize, u64)>>>,
    rejected: Arc<Mutex<Vec<(usize, PoolError)>>>,
    /// Leases released by gated jobs.
    released: Arc<AtomicUsize>,
    cells: Arc<Mutex<Vec<ActorCell>>>,
    starts: Arc<AtomicUsize>,
    /// Worker starts that must still fail.
    failures: Arc<AtomicUsize>,
}

struct TJob {
    id: usize,
    gate: Option<Arc<Semaphore>>,
    panic: bool,
    shared: Shared,
}

impl Job for TJob {
    fn reject(self, error: PoolError) {
        self.shared.rejected.lock().push((self.id, error));
    }
}

struct W;
struct WMsg(Assignment<TJob>);

impl From<Assignment<TJob>> for WMsg {
    fn from(a: Assignment<TJob>) -> Self {
        WMsg(a)
    }
}

impl Actor for W {
    type Msg = WMsg;
    type State = ();
    type Arguments = Shared;

    async fn pre_start(&self, me: ActorRef<WMsg>, s: Shared) -> Result<(), ActorProcessingErr> {
        if s.failures.fetch_update(SeqCst, SeqCst, |f| f.checked_sub(1)).is_ok() {
            return Err("worker refuses to start".into());
        }
        s.starts.fetch_add(1, SeqCst);
        s.cells.lock().push(me.get_cell());
        Ok(())
    }

    async fn handle(&self, me: ActorRef<WMsg>, WMsg(a): WMsg, _: &mut ()) -> Result<(), ActorProcessingErr> {
        a.job.shared.ran.lock().push((a.job.id, me.get_id().pid()));
        if a.job.panic {
            panic!("worker panics on job {}", a.job.id);
        }
        if let Some(gate) = a.job.gate {
            let (lease, released) = (a.lease, a.job.shared.released.clone());
            tokio::spawn(async move {
                let _permit = gate.acquire().await;
                drop(lease);
                released.fetch_add(1, SeqCst);
            });
        }
        Ok(())
    }
}

struct Harness {
    pool: Addr<PoolMsg<TJob>>,
    stats: Arc<ActorStats>,
    load: Arc<PoolLoad>,
    shared: Shared,
    gate: Arc<Semaphore>,
    events: Arc<Mutex<Vec<SupervisorEvent>>>,
}

fn args(shared: &Shared, routing: Routing, min: usize, max: usize, cap: usize) -> PoolArgs<WMsg> {
    let s = shared.clone();
    let start_worker: WorkerStart<WMsg> = Arc::new(move |ctx: StartCtx| {
        let s = s.clone();
        Box::pin(async move {
            let (addr, _) = spawn_instrumented(ctx.name, W, s, ctx.stats, Some(ctx.supervisor)).await?;
            Ok(addr.actor().clone())
        })
    });
    PoolArgs {
        routing,
        min,
        max,
        capacity_per_worker: cap,
        queue_limit: 100,
        idle_timeout: Duration::from_secs(3600),
        intensity: Intensity { max_restarts: 20, window: Duration::from_secs(5) },
        backoff: Backoff::IMMEDIATE,
        start_worker,
        stats: ActorStats::new("pool"),
        load: Arc::new(PoolLoad::default()),
        observer: None,
    }
}

async fn start(shared: Shared, mut args: PoolArgs<WMsg>) -> Harness {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    args.observer = Some(Arc::new(move |e| sink.lock().push(e)));
    let (stats, load) = (args.stats.clone(), args.load.clone());
    let (pool, _) =
        spawn_instrumented(None, Pool::<TJob, WMsg>::default(), args, stats.clone(), None).await.unwrap();
    Harness { pool, stats, load, shared, gate: Arc::new(Semaphore::new(0)), events }
}

impl Harness {
    fn submit(&self, id: usize, gated: bool) {
        let gate = gated.then(|| self.gate.clone());
        self.pool
            .cast(PoolMsg::Submit(TJob { id, gate, panic: false, shared: self.shared.clone() }))
            .unwrap();
    }

    async fn status(&self) -> PoolStatus {
        self.pool.call(PoolMsg::Status, Some(Duration::from_secs(5))).await.unwrap().unwrap()
    }

    async fn resize(&self, min: usize, max: usize) -> Result<(), PoolError> {
        self.pool.call(|reply| PoolMsg::Resize { min, max, reply }, None).await.unwrap().unwrap()
    }

    fn worker_of(&self, job: usize) -> Option<u64> {
        self.shared.ran.lock().iter().find(|(j, _)| *j == job).map(|(_, w)| *w)
    }

    fn ran(&self) -> usize {
        self.shared.ran.lock().len()
    }

    fn release(&self) {
        self.gate.add_permits(10_000);
    }

    async fn idle(&self) {
        let load = self.load.clone();
        eventually("pool idle", || load.busy.load(SeqCst) == 0 && load.queued.load(SeqCst) == 0).await;
    }

    async fn shutdown(self) {
        self.release();
        self.pool.actor().stop_and_wait(None, Some(Duration::from_secs(10))).await.unwrap();
        for cell in self.shared.cells.lock().iter() {
            assert_eq!(cell.get_status(), ActorStatus::Stopped, "workers stop with their pool");
        }
        for w in self.stats.children() {
            assert_eq!(w.status(), Status::Stopped, "{}", w.name());
        }
        assert_eq!(self.load.workers.load(SeqCst), 0);
    }
}

#[tokio::test]
async fn round_robin_is_exact() {
    let shared = Shared::default();
    let h = start(shared.clone(), args(&shared, Routing::RoundRobin, 3, 3, 100)).await;
    for j in 0..9 {
        h.submit(j, false);
    }
    eventually("nine jobs ran", || h.ran() == 9).await;
    let pids: Vec<u64> = h.stats.children().iter().map(|w| w.actor_id()).collect();
    let names: Vec<String> = h.stats.children().iter().map(|w| w.name().to_string()).collect();
    assert_eq!(names, vec!["pool/worker-0", "pool/worker-1", "pool/worker-2"]);
    for j in 0..9 {
        assert_eq!(h.worker_of(j), Some(pids[j % 3]), "job {j}");
    }
    h.idle().await;
    let handled: u64 = h.stats.children().iter().map(|w| w.messages_handled()).sum();
    assert_eq!(handled, 9);
    h.shutdown().await;
}

#[tokio::test]
async fn least_loaded_prefers_idle_workers() {
    let shared = Shared::default();
    let h = start(shared.clone(), args(&shared, Routing::LeastLoaded, 3, 3, 4)).await;
    for j in 0..3 {
        h.submit(j, true);
    }
    eventually("three jobs ran", || h.ran() == 3).await;
    let mut workers: Vec<u64> = (0..3).map(|j| h.worker_of(j).unwrap()).collect();
    workers.sort();
    workers.dedup();
    assert_eq!(workers.len(), 3, "each busy worker was passed over for an idle one");
    assert_eq!(h.status().await.busy, 3);
    h.release();
    h.idle().await;
    h.shutdown().await;
}

#[tokio::test]
async fn power_of_two_spreads_work_and_respects_capacity() {
    let shared = Shared::default();
    let h = start(shared.clone(), args(&shared, Routing::PowerOfTwo, 4, 4, 1)).await;
    for j in 0..5 {
        h.submit(j, true);
    }
    eventually("four jobs ran", || h.ran() == 4).await;
    let mut workers: Vec<u64> = (0..5).filter_map(|j| h.worker_of(j)).collect();
    workers.sort();
    workers.dedup();
    assert_eq!(workers.len(), 4, "one job per worker at capacity 1");
    assert_eq!(h.status().await.queued, 1);
    h.release();
    eventually("queued job ran", || h.ran() == 5).await;
    h.idle().await;
    h.shutdown().await;
}

#[tokio::test]
async fn bounded_queue_rejects_overflow_and_runs_queued_jobs_when_a_lease_drops() {
    let shared = Shared::default();
    let mut a = args(&shared, Routing::LeastLoaded, 1, 1, 1);
    a.queue_limit = 2;
    let h = start(shared.clone(), a).await;
    for j in 0..4 {
        h.submit(j, true);
    }
    let s = h.status().await;
    assert_eq!((s.busy, s.queued), (1, 2));
    assert_eq!(h.load.queued.load(SeqCst), 2);
    assert_eq!(*h.shared.rejected.lock(), vec![(3, PoolError::QueueFull { limit: 2 })]);
    h.release();
    eventually("queued jobs ran", || h.ran() == 3).await;
    h.idle().await;
    h.shutdown().await;
}

#[tokio::test]
async fn grows_to_max_under_load_and_shrinks_back_when_idle() {
    let shared = Shared::default();
    let mut a = args(&shared, Routing::RoundRobin, 1, 3, 1);
    a.idle_timeout = Duration::from_millis(40);
    let h = start(shared.clone(), a).await;
    for j in 0..4 {
        h.submit(j, true);
    }
    let s = h.status().await;
    assert_eq!((s.workers, s.busy, s.queued), (3, 3, 1));
    h.release();
    eventually("all ran", || h.ran() == 4).await;
    h.idle().await;
    let (stats, load) = (h.stats.clone(), h.load.clone());
    eventually("shrunk to min", || load.workers.load(SeqCst) == 1 && stats.children().len() == 1).await;
    assert_eq!(h.status().await.workers, 1);
    h.submit(10, false);
    eventually("still serving", || h.ran() == 5).await;
    h.shutdown().await;
}

#[tokio::test]
async fn resize_grows_validates_and_shrinks() {
    let shared = Shared::default();
    let h = start(shared.clone(), args(&shared, Routing::LeastLoaded, 1, 4, 1)).await;
    h.resize(3, 4).await.unwrap();
    assert_eq!(h.status().await.workers, 3);
    assert_eq!(h.resize(3, 2).await, Err(PoolError::InvalidSize { min: 3, max: 2 }));
    assert_eq!(h.resize(0, 0).await, Err(PoolError::InvalidSize { min: 0, max: 0 }));
    h.resize(1, 1).await.unwrap();
    let s = h.status().await;
    assert_eq!((s.workers, s.min, s.max), (1, 1, 1));
    assert_eq!(h.stats.children().len(), 1);
    h.shutdown().await;
}

#[tokio::test]
async fn drain_rejects_new_work_and_replies_when_idle() {
    let shared = Shared::default();
    let h = start(shared.clone(), args(&shared, Routing::LeastLoaded, 1, 1, 1)).await;
    h.submit(0, true);
    h.submit(1, true);
    // The reply port is built here so Drain is sent before the Submit below.
    let (tx, drained) = ractor::concurrency::oneshot();
    h.pool.cast(PoolMsg::Drain(tx.into())).unwrap();
    h.submit(2, false);
    let s = h.status().await;
    assert!(s.draining);
    let mut drained = drained;
    assert!(drained.try_recv().is_err(), "a job is in flight and one queued");
    assert_eq!(*h.shared.rejected.lock(), vec![(2, PoolError::Draining)]);
    h.release();
    tokio::time::timeout(Duration::from_secs(10), drained).await.unwrap().unwrap();
    assert_eq!(h.ran(), 2, "the queued job ran before the drain completed");
    // Already idle: answers at once.
    h.pool.call(PoolMsg::Drain, Some(Duration::from_secs(5))).await.unwrap().unwrap();
    h.shutdown().await;
}

#[tokio::test]
async fn a_panicking_worker_is_restarted_and_the_pool_keeps_serving() {
    let shared = Shared::default();
    let h = start(shared.clone(), args(&shared, Routing::RoundRobin, 2, 2, 1)).await;
    let job = TJob { id: 0, gate: None, panic: true, shared: shared.clone() };
    h.pool.cast(PoolMsg::Submit(job)).unwrap();
    eventually("worker restarted", || shared.starts.load(SeqCst) == 3).await;
    let restarts: Vec<Restarts> = h.stats.children().iter().map(|w| w.restarts()).collect();
    assert_eq!(restarts[0], Restarts { failed: 1, ..Default::default() });
    assert_eq!(restarts[1].total(), 0);
    assert!(h.events.lock().iter().any(|e| matches!(e, SupervisorEvent::ChildRestarted { .. })));
    for j in 1..=20 {
        h.submit(j, false);
    }
    eventually("all served", || h.ran() == 21).await;
    h.idle().await;
    assert_eq!(h.status().await.workers, 2);
    h.shutdown().await;
}

#[tokio::test]
async fn a_dead_workers_lease_cannot_leave_counts_stuck() {
    let shared = Shared::default();
    let h = start(shared.clone(), args(&shared, Routing::LeastLoaded, 1, 1, 1)).await;
    h.submit(0, true);
    eventually("job held", || h.ran() == 1).await;
    assert_eq!(h.load.busy.load(SeqCst), 1);
    let first = shared.cells.lock()[0].clone();
    first.kill();
    eventually("worker restarted", || shared.starts.load(SeqCst) == 2).await;
    assert_eq!(h.status().await.busy, 0, "the dead worker's job left busy");
    assert_eq!(h.stats.children()[0].restarts(), Restarts { killed: 1, ..Default::default() });
    h.release();
    eventually("stale lease dropped", || shared.released.load(SeqCst) == 1).await;
    assert_eq!(h.load.busy.load(SeqCst), 0, "a stale lease does not touch busy");
    h.submit(1, true);
    eventually("new job runs", || h.ran() == 2).await;
    eventually("released", || shared.released.load(SeqCst) == 2).await;
    h.idle().await;
    h.shutdown().await;
}

#[tokio::test]
async fn workers_that_never_start_make_the_pool_fail() {
    let shared = Shared::default();
    shared.failures.store(usize::MAX, SeqCst);
    let mut a = args(&shared, Routing::LeastLoaded, 1, 2, 1);
    a.intensity = Intensity { max_restarts: 2, window: Duration::from_secs(5) };
    let stats = a.stats.clone();
    let err = spawn_instrumented(None, Pool::<TJob, WMsg>::default(), a, stats.clone(), None)
        .await
        .err()
        .expect("the pool cannot start");
    assert!(err.to_string().contains("pool 'pool': 3 restarts in 5s exceeded intensity 2/5s"), "{err}");
    assert_eq!(stats.children()[0].restarts(), Restarts { start_failed: 2, ..Default::default() });
}

/// Many short jobs through few slots: every completion races with the pool queueing the
/// next job, so a lost wakeup would leave jobs stuck in the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_job_is_stranded_in_the_queue_under_churn() {
    let shared = Shared::default();
    let mut a = args(&shared, Routing::PowerOfTwo, 2, 2, 1);
    a.queue_limit = 10_000;
    let h = start(shared.clone(), a).await;
    h.release();
    for j in 0..3_000 {
        h.submit(j, true);
    }
    eventually("all jobs ran", || h.ran() == 3_000).await;
    eventually("all leases released", || shared.released.load(SeqCst) == 3_000).await;
    h.idle().await;
    assert!(h.shared.rejected.lock().is_empty());
    h.shutdown().await;
}

#[tokio::test]
async fn an_invalid_size_fails_the_start() {
    let shared = Shared::default();
    let a = args(&shared, Routing::LeastLoaded, 3, 2, 1);
    let stats = a.stats.clone();
    let err = spawn_instrumented(None, Pool::<TJob, WMsg>::default(), a, stats, None).await.err().unwrap();
    assert!(err.to_string().contains("invalid pool size"), "{err}");
}

/// Workers up to `min` start together, at start and after a resize: each start here
/// waits until four have begun, so starting them one after another would never finish.
#[tokio::test]
async fn workers_up_to_min_start_together() {
    let shared = Shared::default();
    let mut a = args(&shared, Routing::RoundRobin, 4, 8, 1);
    let (s, all_begun) = (shared.clone(), Arc::new(tokio::sync::Barrier::new(4)));
    a.start_worker = Arc::new(move |ctx: StartCtx| {
        let (s, all_begun) = (s.clone(), all_begun.clone());
        Box::pin(async move {
            all_begun.wait().await;
            let (addr, _) = spawn_instrumented(ctx.name, W, s, ctx.stats, Some(ctx.supervisor)).await?;
            Ok(addr.actor().clone())
        })
    });
    let h = tokio::time::timeout(Duration::from_secs(10), start(shared, a)).await.expect("the pool starts");
    assert_eq!(h.load.workers.load(SeqCst), 4);
    let names: Vec<String> = h.stats.children().iter().map(|w| w.name().to_string()).collect();
    assert_eq!(names, ["pool/worker-0", "pool/worker-1", "pool/worker-2", "pool/worker-3"]);
    tokio::time::timeout(Duration::from_secs(10), h.resize(8, 8)).await.expect("the pool grows").unwrap();
    assert_eq!(h.status().await.workers, 8);
    h.shutdown().await;
}
