//! The `store_writer` actor: group commit over the `Store` port.
//!
//! Callers send writes with an optional acknowledgement; the writer gathers them into
//! one `write_batch`, runs the commit outside its mailbox, and acknowledges every caller
//! of the batch only after it committed. Whatever arrives during a commit goes into the
//! next one, so commits stay few under load. A write someone waits for starts a commit
//! at once when none is in flight; writes nobody waits for wait up to `flush_delay` (or
//! until `batch_max` are waiting) to ride along with the next one, so a sequential caller
//! pays one commit, not a delay, and background writes rarely cost a commit of their own.
//! Lazy writes (the rows of non-durable tasks, which no other write touches) do not ride
//! along with every commit: they gather apart for up to `lazy_delay` (or until
//! `batch_max`) and then join the next commit, a batch of their own unless one is in
//! flight, when they join what waits behind it. So most commits someone waits for carry
//! only what that caller and its peers wrote.
//!
//! Writes come in two kinds ([`Retry`]). A write that promises nothing yet (a durable
//! submission before it is accepted) fails fast: past `queue_limit` waiting writes, or
//! while the store is down, its caller hears `StoreError::Unavailable` at once. A write
//! about work already accepted must never be lost: when the store is unavailable it is
//! kept, in order, and retried with backoff until the store answers again.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::metrics::CommitMetrics;
use crate::ports::{Store, StoreError, Write};

/// Called once with the outcome of the commit that carried the caller's writes. A
/// continuation rather than a reply port so an actor can turn the outcome into a
/// message to itself without a task waiting on a channel.
pub type Ack = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// What the writer does with a write the store cannot take right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Refuse it (the caller has promised nothing yet and can tell its own caller).
    No,
    /// Keep it and retry until it commits (it records work already accepted).
    UntilCommitted,
}

pub enum StoreWriterMsg {
    /// Writes to commit; an empty list with an ack is a barrier (acked after everything before it).
    Write { writes: Vec<Write>, ack: Option<Ack>, retry: Retry },
    /// Writes nobody waits for, of rows no other write touches (the final row of a
    /// non-durable task): their order against other writes does not matter, so they are
    /// gathered apart and committed in batches of their own. Kept until committed.
    Lazy(Vec<Write>),
    /// Internal: the flush delay (or the retry backoff) elapsed.
    Flush,
    /// Internal: the lazy delay elapsed.
    LazyDue,
    /// Internal: a commit finished, with one outcome per caller of the batch.
    Committed { outcomes: Vec<Result<(), StoreError>>, batch: Batch },
}

/// Counters shared with benches, metrics and health.
#[derive(Debug, Default)]
pub struct StoreWriterStats {
    pub rows: AtomicU64,
    pub commits: AtomicU64,
    pub failed_commits: AtomicU64,
    pub rejected: AtomicU64,
    /// The last commit failed because the store was unavailable; kept writes wait.
    pub store_down: AtomicBool,
    /// Latency and size of each commit.
    pub commit: CommitMetrics,
}

pub struct StoreWriterArgs {
    pub store: Arc<dyn Store>,
    pub batch_max: usize,
    pub flush_delay: Duration,
    /// How long lazy writes gather before they are committed.
    pub lazy_delay: Duration,
    pub queue_limit: usize,
    pub stats: Arc<StoreWriterStats>,
}

/// Writes in arrival order (so the last write of a task wins, whatever its kind), and
/// who sent which.
#[derive(Default)]
pub struct Batch {
    writes: Vec<Write>,
    callers: Vec<Caller>,
}

/// One `Write` message: its writes in the batch, its ack, and its kind.
struct Caller {
    writes: Range<usize>,
    ack: Option<Ack>,
    keep: bool,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.callers.is_empty()
    }

    fn push(&mut self, writes: Vec<Write>, ack: Option<Ack>, keep: bool) {
        let start = self.writes.len();
        self.writes.extend(writes);
        self.callers.push(Caller { writes: start..self.writes.len(), ack, keep });
    }

    fn ack_all(self, result: &Result<(), StoreError>) {
        for ack in self.callers.into_iter().filter_map(|c| c.ack) {
            ack(result.clone());
        }
    }
}

/// Commits a batch. When the database rejects it (the data of some write is at fault),
/// each caller's writes are committed on their own, so one bad write fails only its
/// caller. Returns one outcome per caller.
async fn commit(
    store: &dyn Store,
    writes: &[Write],
    callers: &[Range<usize>],
) -> Vec<Result<(), StoreError>> {
    match store.write_batch(writes).await {
        Err(StoreError::Rejected(_)) if callers.len() > 1 => {
            let mut outcomes = Vec::with_capacity(callers.len());
            for range in callers {
                outcomes.push(store.write_batch(&writes[range.clone()]).await);
            }
            outcomes
        }
        outcome => vec![outcome; callers.len()],
    }
}

pub struct StoreWriter;

pub struct StoreWriterState {
    args: StoreWriterArgs,
    pending: Batch,
    /// Lazy writes gathering until `lazy_delay` or `batch_max`.
    lazy: Vec<Write>,
    lazy_timer_armed: bool,
    in_flight: usize,
    timer_armed: bool,
    /// Delay before the next retry while the store is down; zero while it is up.
    backoff: Duration,
}

const RETRY_FIRST: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(5);

impl StoreWriterState {
    fn flush(&mut self, myself: &ActorRef<StoreWriterMsg>) {
        let down = !self.backoff.is_zero();
        if self.in_flight > 0 || (self.pending.is_empty() && !down) {
            return;
        }
        let batch = std::mem::take(&mut self.pending);
        self.in_flight = batch.writes.len().max(1);
        let store = self.args.store.clone();
        let myself = myself.clone();
        let ranges: Vec<Range<usize>> = batch.callers.iter().map(|c| c.writes.clone()).collect();
        let metrics = self.args.stats.commit.clone();
        let runtime = store.commit_runtime().unwrap_or_else(tokio::runtime::Handle::current);
        runtime.spawn(async move {
            let outcomes = match (batch.writes.is_empty(), down) {
                (false, _) => {
                    let started = std::time::Instant::now();
                    let outcomes = commit(store.as_ref(), &batch.writes, &ranges).await;
                    metrics.duration.observe(started.elapsed().as_secs_f64());
                    metrics.writes.observe(batch.writes.len() as f64);
                    outcomes
                }
                // Nothing to write while the store is down: probe whether it is back, so
                // new work is taken again without waiting for a kept write.
                (true, true) => vec![store.ping().await; batch.callers.len().max(1)],
                (true, false) => vec![Ok(()); batch.callers.len()],
            };
            let _ = myself.send_message(StoreWriterMsg::Committed { outcomes, batch });
        });
    }

    /// Takes in lazy writes: gathered, or committed with what is pending once enough wait.
    fn lazy(&mut self, myself: &ActorRef<StoreWriterMsg>, writes: Vec<Write>) {
        self.lazy.extend(writes);
        if self.lazy.len() >= self.args.batch_max || self.args.lazy_delay.is_zero() {
            self.release_lazy(myself);
        } else if !self.lazy_timer_armed {
            self.lazy_timer_armed = true;
            myself.send_after(self.args.lazy_delay, || StoreWriterMsg::LazyDue);
        }
    }

    /// Moves the gathered lazy writes into the next commit.
    fn release_lazy(&mut self, myself: &ActorRef<StoreWriterMsg>) {
        if self.lazy.is_empty() {
            return;
        }
        let writes = std::mem::take(&mut self.lazy);
        self.pending.push(writes, None, true);
        if self.backoff.is_zero() {
            self.flush(myself);
        }
    }

    fn arm_timer(&mut self, myself: &ActorRef<StoreWriterMsg>, delay: Duration) {
        if !self.timer_armed {
            self.timer_armed = true;
            myself.send_after(delay, || StoreWriterMsg::Flush);
        }
    }

    fn committed(
        &mut self,
        myself: &ActorRef<StoreWriterMsg>,
        outcomes: Vec<Result<(), StoreError>>,
        batch: Batch,
    ) {
        self.in_flight = 0;
        let stats = &self.args.stats;
        let unavailable = outcomes.iter().find_map(|o| match o {
            Err(StoreError::Unavailable(e)) => Some(e.clone()),
            _ => None,
        });
        let Batch { writes, callers } = batch;
        let mut slots: Vec<Option<Write>> = writes.into_iter().map(Some).collect();
        let mut retry = Batch::default();
        let mut committed_rows = 0;
        for (caller, outcome) in callers.into_iter().zip(outcomes.iter().chain(std::iter::repeat(&Ok(())))) {
            match outcome {
                Ok(()) => committed_rows += caller.writes.len(),
                // Kept writes go back, in order, in front of anything newer.
                Err(StoreError::Unavailable(_)) if caller.keep => {
                    let writes = slots[caller.writes.clone()].iter_mut().filter_map(Option::take).collect();
                    retry.push(writes, caller.ack, true);
                    continue;
                }
                Err(StoreError::Unavailable(_)) => {}
                Err(error) => {
                    // The database refuses these writes and would again: retrying would
                    // only hold up every later write.
                    let rows = caller.writes.len();
                    tracing::error!(%error, rows, "store refused writes; they are dropped");
                }
            }
            if let Some(ack) = caller.ack {
                ack(outcome.clone());
            }
        }
        stats.rows.fetch_add(committed_rows as u64, Relaxed);
        if committed_rows > 0 {
            stats.commits.fetch_add(1, Relaxed);
        }
        if outcomes.iter().any(Result::is_err) {
            stats.failed_commits.fetch_add(1, Relaxed);
        }
        match unavailable {
            Some(error) => {
                if !stats.store_down.swap(true, Relaxed) {
                    tracing::warn!(%error, "store unavailable; keeping accepted work until it returns");
                }
                let newer = std::mem::take(&mut self.pending);
                for caller in newer.callers {
                    let writes = newer.writes[caller.writes.clone()].to_vec();
                    retry.push(writes, caller.ack, caller.keep);
                }
                self.pending = retry;
                self.backoff = (self.backoff * 2).clamp(RETRY_FIRST, RETRY_MAX);
                self.arm_timer(myself, self.backoff);
            }
            None => {
                if stats.store_down.swap(false, Relaxed) {
                    tracing::info!("store is back; kept writes committed");
                }
                self.backoff = Duration::ZERO;
                self.flush(myself);
            }
        }
    }
}

impl Actor for StoreWriter {
    type Msg = StoreWriterMsg;
    type State = StoreWriterState;
    type Arguments = StoreWriterArgs;

    async fn pre_start(
        &self,
        _: ActorRef<Self::Msg>,
        args: StoreWriterArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(StoreWriterState {
            args,
            pending: Batch::default(),
            lazy: Vec::new(),
            lazy_timer_armed: false,
            in_flight: 0,
            timer_armed: false,
            backoff: Duration::ZERO,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: StoreWriterMsg,
        state: &mut StoreWriterState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            StoreWriterMsg::Write { writes, ack, retry } => {
                let keep = retry == Retry::UntilCommitted;
                if !keep {
                    let waiting = state.pending.writes.len() + state.in_flight;
                    let refusal = if state.args.stats.store_down.load(Relaxed) {
                        Some("the store is down; retry later".to_string())
                    } else if waiting + writes.len() > state.args.queue_limit {
                        Some(format!(
                            "the store writer's queue is full ({waiting} writes waiting, limit {}: \
                             store.queue_limit); retry later",
                            state.args.queue_limit
                        ))
                    } else {
                        None
                    };
                    if let Some(refusal) = refusal {
                        state.args.stats.rejected.fetch_add(1, Relaxed);
                        if let Some(ack) = ack {
                            ack(Err(StoreError::Unavailable(refusal)));
                        }
                        return Ok(());
                    }
                }
                let waited_for = ack.is_some();
                let pending = &mut state.pending;
                pending.push(writes, ack, keep);
                if state.in_flight > 0 {
                    // The commit in progress will flush us when it ends.
                } else if !state.backoff.is_zero() {
                    state.arm_timer(&myself, state.backoff);
                } else if waited_for
                    || pending.writes.len() >= state.args.batch_max
                    || state.args.flush_delay.is_zero()
                {
                    // Someone waits: commit now. What arrives meanwhile forms the next batch,
                    // so commits stay few under load without a delay on every one.
                    state.flush(&myself);
                } else {
                    // Nobody waits: gather, and ride along with the next commit someone
                    // waits for, if one comes within the flush delay.
                    state.arm_timer(&myself, state.args.flush_delay);
                }
            }
            StoreWriterMsg::Lazy(writes) => state.lazy(&myself, writes),
            StoreWriterMsg::Flush => {
                state.timer_armed = false;
                state.flush(&myself);
            }
            StoreWriterMsg::LazyDue => {
                state.lazy_timer_armed = false;
                state.release_lazy(&myself);
            }
            StoreWriterMsg::Committed { outcomes, batch } => state.committed(&myself, outcomes, batch),
        }
        Ok(())
    }

    /// Writes still waiting are committed before the writer stops.
    async fn post_stop(
        &self,
        _: ActorRef<Self::Msg>,
        state: &mut StoreWriterState,
    ) -> Result<(), ActorProcessingErr> {
        let mut batch = std::mem::take(&mut state.pending);
        if !state.lazy.is_empty() {
            batch.push(std::mem::take(&mut state.lazy), None, true);
        }
        let result =
            if batch.writes.is_empty() { Ok(()) } else { state.args.store.write_batch(&batch.writes).await };
        if let Err(error) = &result {
            tracing::error!(%error, rows = batch.writes.len(), "store writes lost at stop: the store did not take them");
        }
        batch.ack_all(&result);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Event, EventKind};
    use crate::ports::MemoryStore;
    use crate::testing::{eventually, SwitchableStore};
    use std::time::SystemTime;
    use tokio::sync::oneshot;

    fn event(seq: u64) -> Write {
        Write::AppendEvent(Arc::new(Event {
            seq,
            time: SystemTime::now(),
            kind: EventKind::TaskQueued,
            namespace: "default".into(),
            subject: format!("t{seq}").into(),
            data: serde_json::Value::Null.into(),
        }))
    }

    async fn writer(
        store: Arc<dyn Store>,
        queue_limit: usize,
    ) -> (ActorRef<StoreWriterMsg>, Arc<StoreWriterStats>) {
        let (w, _, stats) = writer_with(store, queue_limit, Duration::from_millis(1)).await;
        (w, stats)
    }

    type Spawned = (ActorRef<StoreWriterMsg>, ractor::concurrency::JoinHandle<()>, Arc<StoreWriterStats>);

    async fn writer_with(store: Arc<dyn Store>, queue_limit: usize, flush_delay: Duration) -> Spawned {
        spawn_writer(store, 100, flush_delay, flush_delay, queue_limit).await
    }

    /// A writer whose batches hold 4 writes and whose background writes commit at once.
    async fn lazy_writer(store: Arc<dyn Store>, lazy_delay: Duration) -> Spawned {
        spawn_writer(store, 4, Duration::ZERO, lazy_delay, 100).await
    }

    async fn spawn_writer(
        store: Arc<dyn Store>,
        batch_max: usize,
        flush_delay: Duration,
        lazy_delay: Duration,
        queue_limit: usize,
    ) -> Spawned {
        let stats = Arc::new(StoreWriterStats::default());
        let args =
            StoreWriterArgs { store, batch_max, flush_delay, lazy_delay, queue_limit, stats: stats.clone() };
        let (w, handle) = Actor::spawn(None, StoreWriter, args).await.unwrap();
        (w, handle, stats)
    }

    fn ack() -> (Ack, oneshot::Receiver<Result<(), StoreError>>) {
        let (tx, rx) = oneshot::channel();
        (Box::new(move |r| drop(tx.send(r))), rx)
    }

    #[tokio::test]
    async fn acks_after_commit_and_groups_writes() {
        let store = Arc::new(MemoryStore::new());
        let (w, stats) = writer(store.clone(), 1000).await;
        let mut waits = Vec::new();
        for i in 0..50 {
            let (a, rx) = ack();
            w.send_message(StoreWriterMsg::Write { writes: vec![event(i)], ack: Some(a), retry: Retry::No })
                .unwrap();
            waits.push(rx);
        }
        for rx in waits {
            rx.await.unwrap().unwrap();
        }
        assert_eq!(store.events().len(), 50, "every acked write is in the store");
        let commits = stats.commits.load(Relaxed);
        assert!(commits < 50, "writes were grouped: {commits} commits for 50 writes");
        w.stop(None);
    }

    #[tokio::test]
    async fn full_queue_is_unavailable() {
        let store = Arc::new(MemoryStore::new());
        let (w, stats) = writer(store, 2).await;
        let (a, rx) = ack();
        w.send_message(StoreWriterMsg::Write {
            writes: vec![event(1), event(2), event(3)],
            ack: Some(a),
            retry: Retry::No,
        })
        .unwrap();
        assert!(matches!(rx.await.unwrap(), Err(StoreError::Unavailable(_))));
        assert_eq!(stats.rejected.load(Relaxed), 1);
        w.stop(None);
    }

    #[tokio::test]
    async fn pending_writes_are_flushed_on_stop() {
        let store = Arc::new(MemoryStore::new());
        let (w, handle, _) = writer_with(store.clone(), 100, Duration::from_secs(3600)).await;
        w.send_message(StoreWriterMsg::Write { writes: vec![event(1)], ack: None, retry: Retry::No })
            .unwrap();
        // Supervisors stop children by draining: what is in the mailbox is handled first.
        w.drain().unwrap();
        handle.await.unwrap();
        assert_eq!(store.events().len(), 1);
    }

    #[tokio::test]
    async fn an_outage_refuses_new_work_and_keeps_accepted_work_until_the_store_returns() {
        let store = Arc::new(SwitchableStore::default());
        store.set_down(true);
        let (w, stats) = writer(store.clone(), 1000).await;
        let send = |seq, retry| {
            let (a, rx) = ack();
            w.send_message(StoreWriterMsg::Write { writes: vec![event(seq)], ack: Some(a), retry }).unwrap();
            rx
        };
        let kept = send(1, Retry::UntilCommitted);
        let refused = send(2, Retry::No);
        assert!(matches!(refused.await.unwrap(), Err(StoreError::Unavailable(_))));
        // The writer now knows the store is down: new work is refused without a commit.
        while !stats.store_down.load(Relaxed) {
            tokio::task::yield_now().await;
        }
        assert!(matches!(send(3, Retry::No).await.unwrap(), Err(StoreError::Unavailable(_))));
        let later = send(4, Retry::UntilCommitted);
        store.set_down(false);
        kept.await.unwrap().unwrap();
        later.await.unwrap().unwrap();
        let seqs: Vec<u64> = store.inner().events().iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [1, 4], "kept writes committed in order; refused ones never");
        assert!(!stats.store_down.load(Relaxed));
        send(5, Retry::No).await.unwrap().unwrap();
        w.stop(None);
    }

    #[tokio::test]
    async fn with_nothing_kept_a_probe_finds_the_store_back() {
        let store = Arc::new(SwitchableStore::default());
        store.set_down(true);
        let (w, stats) = writer(store.clone(), 1000).await;
        let send = || {
            let (a, rx) = ack();
            w.send_message(StoreWriterMsg::Write { writes: vec![event(1)], ack: Some(a), retry: Retry::No })
                .unwrap();
            rx
        };
        assert!(send().await.unwrap().is_err());
        assert!(stats.store_down.load(Relaxed));
        store.set_down(false);
        while stats.store_down.load(Relaxed) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        send().await.unwrap().unwrap();
        w.stop(None);
    }

    #[tokio::test]
    async fn a_rejected_write_fails_only_its_caller() {
        let store = Arc::new(SwitchableStore::default());
        store.poison_event(2);
        let (w, _, _) = writer_with(store.clone(), 100, Duration::from_millis(20)).await;
        let mut waits = Vec::new();
        for (seqs, retry) in [(vec![1], Retry::No), (vec![2, 3], Retry::UntilCommitted), (vec![4], Retry::No)]
        {
            let (a, rx) = ack();
            let writes = seqs.into_iter().map(event).collect();
            w.send_message(StoreWriterMsg::Write { writes, ack: Some(a), retry }).unwrap();
            waits.push(rx);
        }
        let outcomes: Vec<_> = outcomes_of(waits).await;
        assert!(outcomes[0].is_ok() && outcomes[2].is_ok(), "{outcomes:?}");
        assert!(matches!(outcomes[1], Err(StoreError::Rejected(_))), "{outcomes:?}");
        let seqs: Vec<u64> = store.inner().events().iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [1, 4], "the other callers' writes are committed");
        w.stop(None);
    }

    async fn outcomes_of(
        waits: Vec<oneshot::Receiver<Result<(), StoreError>>>,
    ) -> Vec<Result<(), StoreError>> {
        let mut outcomes = Vec::new();
        for rx in waits {
            outcomes.push(rx.await.unwrap());
        }
        outcomes
    }

    fn seqs(store: &MemoryStore) -> Vec<u64> {
        store.events().iter().map(|e| e.seq).collect()
    }

    #[tokio::test]
    async fn gathering_lazy_writes_do_not_ride_along_with_a_commit_someone_waits_for() {
        let store = Arc::new(MemoryStore::new());
        let (w, handle, _) = lazy_writer(store.clone(), Duration::from_secs(3600)).await;
        w.send_message(StoreWriterMsg::Lazy(vec![event(1)])).unwrap();
        let (a, rx) = ack();
        w.send_message(StoreWriterMsg::Write { writes: vec![event(2)], ack: Some(a), retry: Retry::No })
            .unwrap();
        rx.await.unwrap().unwrap();
        assert_eq!(seqs(&store), [2], "the waited-for commit carries only its own write");
        // Enough lazy writes for a batch commit together, without waiting for the delay.
        w.send_message(StoreWriterMsg::Lazy(vec![event(3), event(4), event(5)])).unwrap();
        eventually("a full batch of lazy writes commits", || seqs(&store).len() == 5).await;
        // What is left gathering is written when the writer stops.
        w.send_message(StoreWriterMsg::Lazy(vec![event(6)])).unwrap();
        w.drain().unwrap();
        handle.await.unwrap();
        assert_eq!(seqs(&store), [2, 1, 3, 4, 5, 6]);
    }

    #[tokio::test]
    async fn lazy_writes_commit_once_their_delay_passes() {
        let store = Arc::new(MemoryStore::new());
        let (w, _, stats) = lazy_writer(store.clone(), Duration::from_millis(20)).await;
        w.send_message(StoreWriterMsg::Lazy(vec![event(1)])).unwrap();
        w.send_message(StoreWriterMsg::Lazy(vec![event(2)])).unwrap();
        // The writer counts a commit after the store shows it: wait for the count.
        eventually("lazy writes commit after their delay", || stats.commits.load(Relaxed) == 1).await;
        assert_eq!(seqs(&store), [1, 2], "gathered into one commit");
        w.stop(None);
    }

    #[tokio::test]
    async fn lazy_writes_are_kept_through_an_outage() {
        let store = Arc::new(SwitchableStore::default());
        store.set_down(true);
        let (w, _, stats) = lazy_writer(store.clone(), Duration::ZERO).await;
        w.send_message(StoreWriterMsg::Lazy(vec![event(1)])).unwrap();
        eventually("the writer sees the outage", || stats.store_down.load(Relaxed)).await;
        store.set_down(false);
        eventually("the kept lazy write commits", || store.inner().events().len() == 1).await;
        w.stop(None);
    }

    #[tokio::test]
    async fn a_task_written_twice_in_one_batch_keeps_the_last_write_whatever_its_kind() {
        // The accept write fails fast and the cancel write is kept: arrival order decides.
        let store = Arc::new(MemoryStore::new());
        let (w, _, _) = writer_with(store.clone(), 100, Duration::from_millis(20)).await;
        let request = crate::domain::TaskRequest::to_agent("echo", serde_json::Value::Null);
        let mut record = crate::domain::TaskRecord::queued(&request, 1, None, SystemTime::now());
        let first = Write::PutTask(Arc::new(record.clone()));
        record.state = crate::domain::TaskState::Cancelled;
        let (a, rx) = ack();
        w.send_message(StoreWriterMsg::Write { writes: vec![first], ack: None, retry: Retry::No }).unwrap();
        let last = Write::PutTask(Arc::new(record.clone()));
        w.send_message(StoreWriterMsg::Write {
            writes: vec![last],
            ack: Some(a),
            retry: Retry::UntilCommitted,
        })
        .unwrap();
        rx.await.unwrap().unwrap();
        let stored = store.task(record.id).await.unwrap().unwrap();
        assert_eq!(stored.state, crate::domain::TaskState::Cancelled);
        w.stop(None);
    }
}
