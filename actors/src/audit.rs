//! The `audit` actor: appends the node's audit records to its hash chain (DESIGN §9).
//!
//! Callers send what they know ([`AuditEntry`]); the actor stamps the time, and when it
//! writes a batch, gives each record the next sequence number and links it to the one
//! before. One batch is written at a time, by a spawned task through
//! `Store::write_batch`, so the mailbox stays live; entries that arrive meanwhile wait
//! and form the next batch, chained after the head the first one committed. A caller is
//! answered once its batch has committed, or with the store's error when it did not;
//! the head then stays at the last committed record.
//!
//! After a failed batch (and when the head could not be read at start) the head is read
//! again from the store before the next batch: the failure may hide a commit whose answer
//! was lost, or another writer of the chain (the store refuses a second record with the
//! same `(node, seq)`, so a chain never forks).

use std::sync::Arc;
use std::time::SystemTime;

use ractor::concurrency::JoinHandle;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::domain::{AuditEntry, AuditHead, AuditRecord};
use crate::ports::{Clock, Store, StoreError, Write};

pub enum AuditMsg {
    /// Appends an entry; answered after the batch that carries it commits.
    Record(AuditEntry, RpcReplyPort<Result<(), AuditError>>),
    /// Internal: the batch in flight committed (the chain's new head) or failed.
    Committed(Result<Option<AuditHead>, StoreError>),
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum AuditError {
    /// Too many entries wait for the store: the caller should answer "unavailable".
    #[error("the audit queue is full ({limit} records waiting)")]
    QueueFull { limit: usize },
    #[error("the audit record was not stored: {0}")]
    Store(StoreError),
}

impl AuditError {
    /// Whether trying again later may succeed.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, AuditError::QueueFull { .. } | AuditError::Store(StoreError::Unavailable(_)))
    }
}

pub struct AuditArgs {
    /// The chain written: the node's name.
    pub chain: String,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    /// Entries waiting or being written, at most; more are refused with `QueueFull`.
    pub queue_limit: usize,
}

type Reply = RpcReplyPort<Result<(), AuditError>>;

pub struct Audit;

pub struct AuditState {
    args: AuditArgs,
    /// The last committed record; `None` for an empty chain.
    head: Option<AuditHead>,
    /// `head` must be read from the store before the next batch.
    stale: bool,
    pending: Vec<(AuditEntry, SystemTime, Reply)>,
    /// The callers of the batch being written, and the task writing it.
    in_flight: Vec<Reply>,
    task: Option<JoinHandle<Result<Option<AuditHead>, StoreError>>>,
}

/// Chains `entries` after the head (read first when `stale`) and writes them in one
/// batch; returns the new head.
async fn commit(
    store: &dyn Store,
    chain: &str,
    head: Option<AuditHead>,
    stale: bool,
    entries: Vec<(AuditEntry, SystemTime)>,
) -> Result<Option<AuditHead>, StoreError> {
    let mut head = if stale { store.audit_head(chain).await? } else { head };
    let writes: Vec<Write> = entries
        .into_iter()
        .map(|(entry, at)| {
            let record = AuditRecord::chained(chain, head, at, entry);
            head = Some(record.head());
            Write::AppendAudit(Box::new(record))
        })
        .collect();
    store.write_batch(&writes).await?;
    Ok(head)
}

impl AuditState {
    /// Moves what waits into the batch in flight; returns its entries.
    fn take_batch(&mut self) -> Vec<(AuditEntry, SystemTime)> {
        let mut entries = Vec::with_capacity(self.pending.len());
        for (entry, at, reply) in self.pending.drain(..) {
            entries.push((entry, at));
            self.in_flight.push(reply);
        }
        entries
    }

    fn flush(&mut self, myself: &ActorRef<AuditMsg>) {
        if self.task.is_some() || self.pending.is_empty() {
            return;
        }
        let entries = self.take_batch();
        let (store, chain, head, stale) =
            (self.args.store.clone(), self.args.chain.clone(), self.head, self.stale);
        let myself = myself.clone();
        self.task = Some(tokio::spawn(async move {
            let result = commit(store.as_ref(), &chain, head, stale, entries).await;
            let _ = myself.send_message(AuditMsg::Committed(result.clone()));
            result
        }));
    }

    /// Answers the callers of the batch that was in flight.
    fn settle(&mut self, result: Result<Option<AuditHead>, StoreError>) {
        self.task = None;
        let outcome = match result {
            Ok(head) => {
                (self.head, self.stale) = (head, false);
                Ok(())
            }
            Err(error) => {
                tracing::warn!(chain = %self.args.chain, %error, records = self.in_flight.len(), "audit records not stored");
                self.stale = true;
                Err(AuditError::Store(error))
            }
        };
        for reply in self.in_flight.drain(..) {
            let _ = reply.send(outcome.clone());
        }
    }
}

impl Actor for Audit {
    type Msg = AuditMsg;
    type State = AuditState;
    type Arguments = AuditArgs;

    /// Seeds the head from the store; a store that does not answer now does not stop the
    /// node from starting: the first batch reads the head instead.
    async fn pre_start(
        &self,
        _: ActorRef<AuditMsg>,
        args: AuditArgs,
    ) -> Result<AuditState, ActorProcessingErr> {
        let (head, stale) = match args.store.audit_head(&args.chain).await {
            Ok(head) => (head, false),
            Err(error) => {
                tracing::warn!(chain = %args.chain, %error, "cannot read the audit chain's head; reading it again before the first record");
                (None, true)
            }
        };
        Ok(AuditState { args, head, stale, pending: Vec::new(), in_flight: Vec::new(), task: None })
    }

    async fn handle(
        &self,
        myself: ActorRef<AuditMsg>,
        msg: AuditMsg,
        state: &mut AuditState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            AuditMsg::Record(entry, reply) => {
                let limit = state.args.queue_limit;
                if state.pending.len() + state.in_flight.len() >= limit {
                    let _ = reply.send(Err(AuditError::QueueFull { limit }));
                    return Ok(());
                }
                state.pending.push((entry, state.args.clock.now(), reply));
                state.flush(&myself);
            }
            AuditMsg::Committed(result) => {
                state.settle(result);
                state.flush(&myself);
            }
        }
        Ok(())
    }

    /// Finishes the batch in flight (its answer may not reach the mailbox any more), then
    /// writes what still waits, so entries accepted before a shutdown are not lost.
    async fn post_stop(
        &self,
        _: ActorRef<AuditMsg>,
        state: &mut AuditState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(task) = state.task.take() {
            let result = task
                .await
                .unwrap_or_else(|e| Err(StoreError::Unavailable(format!("the audit write stopped: {e}"))));
            state.settle(result);
        }
        if !state.pending.is_empty() {
            let entries = state.take_batch();
            let (store, chain) = (state.args.store.clone(), state.args.chain.clone());
            let result = commit(store.as_ref(), &chain, state.head, state.stale, entries).await;
            state.settle(result);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
