//! The store's own thread, on which batches are committed.

use std::cell::Cell;
use std::future::Future;

use mark1_actors::ports::StoreError;
use tokio::runtime::{Builder, Runtime};

/// A runtime of one worker thread that runs every `write_batch`. A commit waits on its
/// database several times (on SQLite each statement is answered by the connection's
/// thread; PostgreSQL answers over a socket), and each answer wakes the commit from
/// outside the runtime that runs it. On the node's runtime such a wake-up joins the
/// queue behind the actors' messages, and commits are what every durable task waits
/// for. The store writer runs its commits on this thread too (`Store::commit_runtime`),
/// so a commit goes there and its outcome comes back as one message each way. Measured
/// with `mark1 bench durable` (SQLite, 256 submitters): a commit of 64 tasks 1.0–1.2 ms
/// here against 1.28–1.4 ms on the node's runtime, and 29.5 against 33 µs of CPU per
/// task (medians of six runs each; throughput moved within the noise).
pub(crate) struct Io {
    /// `None` only while dropping.
    runtime: Option<Runtime>,
}

thread_local! {
    /// Set on the store's thread: work already there runs in place.
    static ON_STORE_THREAD: Cell<bool> = const { Cell::new(false) };
}

impl Io {
    pub fn new() -> std::io::Result<Io> {
        let runtime = Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("mark1-store")
            .on_thread_start(|| ON_STORE_THREAD.set(true))
            .enable_all()
            .build()?;
        Ok(Io { runtime: Some(runtime) })
    }

    /// The runtime, for work that outlives one call (the SQLite checkpointer).
    pub fn handle(&self) -> &tokio::runtime::Handle {
        self.runtime.as_ref().expect("the runtime lives until the store is dropped").handle()
    }

    /// Runs `work` on the store's thread and waits for it.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        if ON_STORE_THREAD.get() {
            return work.await;
        }
        let runtime = self.runtime.as_ref().expect("the runtime lives until the store is dropped");
        match runtime.spawn(work).await {
            Ok(outcome) => outcome,
            // Only when the store is dropped while a commit runs: nothing was confirmed.
            Err(error) => Err(StoreError::Unavailable(format!("the store's thread stopped: {error}"))),
        }
    }
}

impl Drop for Io {
    /// Without blocking: the last reference to a store may go inside async code.
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
