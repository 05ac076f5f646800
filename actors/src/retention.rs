//! The `retention` actor: prunes finished tasks and runs, old events and old model usage
//! records in the background.
//!
//! Every `interval` it deletes what is older than `keep`, in batches of `batch` rows
//! per store call, so no single transaction holds the database for long; a batch that
//! comes back full is followed by the next one through the mailbox, so the actor stays
//! responsive (and a stop is never stuck behind a long purge).

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::ports::{Clock, Store};

pub enum RetentionMsg {
    /// Prune one batch now (the timer sends it; a full batch sends the next).
    Prune,
    /// Internal: a batch finished with this many rows deleted, or failed.
    Pruned(Option<u64>),
}

pub struct RetentionArgs {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    /// Finished tasks and runs and events older than this are deleted.
    pub keep: Duration,
    pub interval: Duration,
    pub batch: usize,
}

pub struct Retention;

pub struct RetentionState {
    args: RetentionArgs,
    running: bool,
}

impl Actor for Retention {
    type Msg = RetentionMsg;
    type State = RetentionState;
    type Arguments = RetentionArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<RetentionMsg>,
        args: RetentionArgs,
    ) -> Result<RetentionState, ActorProcessingErr> {
        myself.send_interval(args.interval, || RetentionMsg::Prune);
        Ok(RetentionState { args, running: false })
    }

    async fn handle(
        &self,
        myself: ActorRef<RetentionMsg>,
        msg: RetentionMsg,
        state: &mut RetentionState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RetentionMsg::Prune if state.running => {}
            RetentionMsg::Prune => {
                state.running = true;
                let args = &state.args;
                let before = args.clock.now().checked_sub(args.keep).unwrap_or(std::time::UNIX_EPOCH);
                let (store, batch) = (args.store.clone(), args.batch);
                tokio::spawn(async move {
                    let deleted = match store.prune(before, batch).await {
                        Ok(rows) => Some(rows),
                        Err(error) => {
                            tracing::warn!(%error, "pruning old tasks, runs, events and usage failed; will try again");
                            None
                        }
                    };
                    let _ = myself.send_message(RetentionMsg::Pruned(deleted));
                });
            }
            RetentionMsg::Pruned(deleted) => {
                state.running = false;
                if let Some(rows) = deleted {
                    if rows > 0 {
                        tracing::debug!(rows, "pruned old tasks, runs, events and usage");
                    }
                    // A full batch (tasks, runs, events and usage each up to `batch`) may leave more.
                    if rows >= state.args.batch as u64 {
                        myself.send_message(RetentionMsg::Prune)?;
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Event, EventKind};
    use crate::ports::{MemoryStore, SystemClock, Write};
    use std::time::SystemTime;

    #[tokio::test]
    async fn prunes_old_events_in_batches_until_none_is_left() {
        let store = Arc::new(MemoryStore::new());
        let old = SystemTime::now() - Duration::from_secs(3600);
        let writes: Vec<Write> = (1..=25)
            .map(|seq| {
                let time = if seq <= 20 { old } else { SystemTime::now() };
                let event = Event {
                    seq,
                    time,
                    kind: EventKind::TaskQueued,
                    namespace: "default".into(),
                    subject: format!("t{seq}").into(),
                    data: serde_json::Value::Null.into(),
                };
                Write::AppendEvent(Arc::new(event))
            })
            .collect();
        store.write_batch(&writes).await.unwrap();
        // The timer never fires within the test: one prune, then full batches chain.
        let args = RetentionArgs {
            store: store.clone(),
            clock: Arc::new(SystemClock),
            keep: Duration::from_secs(60),
            interval: Duration::from_secs(3600),
            batch: 3,
        };
        let (actor, _) = Actor::spawn(None, Retention, args).await.unwrap();
        actor.send_message(RetentionMsg::Prune).unwrap();
        let left = || store.events().iter().map(|e| e.seq).collect::<Vec<u64>>();
        let until = std::time::Instant::now() + Duration::from_secs(5);
        while left().len() > 5 && std::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(
            left(),
            (21..=25).collect::<Vec<_>>(),
            "every old event is gone, in batches, and only those"
        );
        actor.stop(None);
    }
}
