//! WAL checkpoints off the commit path.
//!
//! SQLite checkpoints its WAL inside the commit that takes it past `wal_autocheckpoint`
//! pages (1,000 by default): that commit copies every page of the WAL into the database
//! file and syncs it, and every task waiting for the commit waits for the copy too. A
//! connection of its own copies the WAL in the background shortly after commits
//! (`PASSIVE`: it never waits for, nor blocks, the writer or the readers), so when the
//! writer's own checkpoint comes due, little is left for it to copy.
//!
//! The writer keeps its automatic checkpoint: under a steady stream of commits only a
//! checkpoint right after a commit finishes the copy before the next write, and a
//! finished copy is what lets the next write start the WAL from the beginning, so the
//! file stays as small as before. Measured with `mark1 bench durable` (SQLite, NORMAL,
//! 256 submitters; README, "Durable store"): accept p99 fell from 1.70–2.03 to 1.20–1.32
//! times issue 3's target, and the node's commit p99 (probe builds that logged every
//! commit) from 8.4–10.5 ms to 6.3–6.6 ms.

use std::time::Duration;

use sqlx::{Pool, Sqlite};
use tokio::sync::mpsc;

/// Pause after a checkpoint, so a busy writer's commits are copied in runs, not one by one.
const PAUSE: Duration = Duration::from_millis(20);

/// The background checkpointer of one database; it stops when this is dropped or closed.
pub(crate) struct Checkpointer {
    nudge: mpsc::Sender<()>,
    pool: Pool<Sqlite>,
}

impl Checkpointer {
    /// Starts the loop on `runtime` over `pool`, a connection of its own (not read-only).
    pub fn start(pool: Pool<Sqlite>, runtime: &tokio::runtime::Handle) -> Checkpointer {
        // One pending nudge is enough: the checkpoint copies whatever is in the WAL by then.
        let (nudge, nudges) = mpsc::channel(1);
        runtime.spawn(run(nudges, pool.clone()));
        Checkpointer { nudge, pool }
    }

    /// A commit went into the WAL.
    pub fn committed(&self) {
        let _ = self.nudge.try_send(());
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

async fn run(mut nudges: mpsc::Receiver<()>, pool: Pool<Sqlite>) {
    while nudges.recv().await.is_some() {
        match sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&pool).await {
            Ok(_) => {}
            Err(_) if pool.is_closed() => return,
            // Another checkpoint is running (the writer's own), or the disk is failing,
            // which the writer's next commit reports; either way the next nudge tries again.
            Err(error) => tracing::debug!(%error, "background WAL checkpoint did not run"),
        }
        tokio::time::sleep(PAUSE).await;
    }
}
