//! The `store_writer` actor: group commit over the `Store` port.
//!
//! Callers send writes with an optional acknowledgement; the writer gathers them into
//! one `write_batch` (flushed when `batch_max` writes are waiting or `flush_delay` after
//! the first one), runs the commit outside its mailbox, and acknowledges every caller of
//! the batch only after it committed. Whatever arrives during a commit goes into the
//! next one, so commits stay few under load. The queue is bounded: past `queue_limit`
//! waiting writes a caller gets `StoreError::Unavailable` at once.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::ports::{Store, StoreError, Write};

/// Called once with the outcome of the commit that carried the caller's writes. A
/// continuation rather than a reply port so an actor can turn the outcome into a
/// message to itself without a task waiting on a channel.
pub type Ack = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

pub enum StoreWriterMsg {
    /// Writes to commit; an empty list with an ack is a barrier (acked after everything before it).
    Write { writes: Vec<Write>, ack: Option<Ack> },
    /// Internal: the flush delay elapsed.
    Flush,
    /// Internal: a commit finished.
    Committed { result: Result<(), StoreError>, acks: Vec<Ack>, rows: usize },
}

/// Counters shared with benches and metrics.
#[derive(Debug, Default)]
pub struct StoreWriterStats {
    pub rows: AtomicU64,
    pub commits: AtomicU64,
    pub failed_commits: AtomicU64,
    pub rejected: AtomicU64,
}

pub struct StoreWriterArgs {
    pub store: Arc<dyn Store>,
    pub batch_max: usize,
    pub flush_delay: Duration,
    pub queue_limit: usize,
    pub stats: Arc<StoreWriterStats>,
}

pub struct StoreWriter;

pub struct StoreWriterState {
    args: StoreWriterArgs,
    pending: Vec<Write>,
    acks: Vec<Ack>,
    in_flight: usize,
    timer_armed: bool,
}

impl StoreWriterState {
    fn flush(&mut self, myself: &ActorRef<StoreWriterMsg>) {
        if self.in_flight > 0 || (self.pending.is_empty() && self.acks.is_empty()) {
            return;
        }
        let writes = std::mem::take(&mut self.pending);
        let acks = std::mem::take(&mut self.acks);
        let rows = writes.len();
        self.in_flight = rows.max(1);
        let store = self.args.store.clone();
        let myself = myself.clone();
        tokio::spawn(async move {
            let result = if writes.is_empty() { Ok(()) } else { store.write_batch(writes).await };
            let _ = myself.send_message(StoreWriterMsg::Committed { result, acks, rows });
        });
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
        Ok(StoreWriterState { args, pending: Vec::new(), acks: Vec::new(), in_flight: 0, timer_armed: false })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: StoreWriterMsg,
        state: &mut StoreWriterState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            StoreWriterMsg::Write { writes, ack } => {
                if state.pending.len() + state.in_flight + writes.len() > state.args.queue_limit {
                    state.args.stats.rejected.fetch_add(1, Relaxed);
                    if let Some(ack) = ack {
                        ack(Err(StoreError::Unavailable(format!(
                            "the store writer's queue is full ({} writes waiting)",
                            state.args.queue_limit
                        ))));
                    }
                    return Ok(());
                }
                state.pending.extend(writes);
                state.acks.extend(ack);
                if state.in_flight > 0 {
                    // The commit in progress will flush us when it ends.
                } else if state.pending.len() >= state.args.batch_max || state.args.flush_delay.is_zero() {
                    state.flush(&myself);
                } else if !state.timer_armed {
                    state.timer_armed = true;
                    myself.send_after(state.args.flush_delay, || StoreWriterMsg::Flush);
                }
            }
            StoreWriterMsg::Flush => {
                state.timer_armed = false;
                state.flush(&myself);
            }
            StoreWriterMsg::Committed { result, acks, rows } => {
                state.in_flight = 0;
                let stats = &state.args.stats;
                match &result {
                    Ok(()) => {
                        stats.rows.fetch_add(rows as u64, Relaxed);
                        if rows > 0 {
                            stats.commits.fetch_add(1, Relaxed);
                        }
                    }
                    Err(error) => {
                        stats.failed_commits.fetch_add(1, Relaxed);
                        tracing::warn!(%error, rows, "store commit failed");
                    }
                }
                for ack in acks {
                    ack(result.clone());
                }
                if !state.pending.is_empty() || !state.acks.is_empty() {
                    state.flush(&myself);
                }
            }
        }
        Ok(())
    }

    /// Writes still waiting are committed before the writer stops.
    async fn post_stop(
        &self,
        _: ActorRef<Self::Msg>,
        state: &mut StoreWriterState,
    ) -> Result<(), ActorProcessingErr> {
        let writes = std::mem::take(&mut state.pending);
        let result = if writes.is_empty() { Ok(()) } else { state.args.store.write_batch(writes).await };
        for ack in std::mem::take(&mut state.acks) {
            ack(result.clone());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Event, EventKind};
    use crate::ports::MemoryStore;
    use std::time::SystemTime;
    use tokio::sync::oneshot;

    fn event(seq: u64) -> Write {
        Write::AppendEvent(Arc::new(Event {
            seq,
            time: SystemTime::now(),
            kind: EventKind::TaskQueued,
            namespace: "default".into(),
            subject: format!("t{seq}"),
            data: serde_json::Value::Null,
        }))
    }

    async fn writer(
        store: Arc<MemoryStore>,
        queue_limit: usize,
    ) -> (ActorRef<StoreWriterMsg>, Arc<StoreWriterStats>) {
        let stats = Arc::new(StoreWriterStats::default());
        let args = StoreWriterArgs {
            store,
            batch_max: 100,
            flush_delay: Duration::from_millis(1),
            queue_limit,
            stats: stats.clone(),
        };
        (Actor::spawn(None, StoreWriter, args).await.unwrap().0, stats)
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
            w.send_message(StoreWriterMsg::Write { writes: vec![event(i)], ack: Some(a) }).unwrap();
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
        w.send_message(StoreWriterMsg::Write { writes: vec![event(1), event(2), event(3)], ack: Some(a) })
            .unwrap();
        assert!(matches!(rx.await.unwrap(), Err(StoreError::Unavailable(_))));
        assert_eq!(stats.rejected.load(Relaxed), 1);
        w.stop(None);
    }

    #[tokio::test]
    async fn pending_writes_are_flushed_on_stop() {
        let store = Arc::new(MemoryStore::new());
        let stats = Arc::new(StoreWriterStats::default());
        let args = StoreWriterArgs {
            store: store.clone(),
            batch_max: 100,
            flush_delay: Duration::from_secs(3600),
            queue_limit: 100,
            stats,
        };
        let (w, handle) = Actor::spawn(None, StoreWriter, args).await.unwrap();
        w.send_message(StoreWriterMsg::Write { writes: vec![event(1)], ack: None }).unwrap();
        // Supervisors stop children by draining: what is in the mailbox is handled first.
        w.drain().unwrap();
        handle.await.unwrap();
        assert_eq!(store.events().len(), 1);
    }
}
