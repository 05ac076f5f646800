//! The `Scanner` port: scans one folder on the node's disk into a report. The adapter
//! (`src/scan`) bounds how many scans run at once and on which threads, so a scan never
//! takes the node's runtime workers.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use crate::domain::scan::ScanSummary;

/// Files done and total of one running scan: written by the scanner's threads, read by
/// the job's actor on its timer, so progress never floods a mailbox.
#[derive(Debug, Default)]
pub struct ScanProgress {
    done: AtomicUsize,
    total: AtomicUsize,
}

impl ScanProgress {
    pub fn set(&self, done: usize, total: usize) {
        self.total.store(total, Relaxed);
        self.done.store(done, Relaxed);
    }

    /// `(done, total)`.
    pub fn get(&self) -> (usize, usize) {
        (self.done.load(Relaxed), self.total.load(Relaxed))
    }
}

/// A finished scan: its report as JSON text (stored as written) and its counts.
#[derive(Clone, Debug)]
pub struct ScanOutcome {
    pub result: Arc<str>,
    pub summary: ScanSummary,
}

#[async_trait::async_trait]
pub trait Scanner: Send + Sync + 'static {
    /// Scans `path` (a folder the caller checked is allowed), recording progress as it
    /// goes. Waits for a free scan slot first. The error is the reason, for the record.
    async fn scan(&self, path: PathBuf, progress: Arc<ScanProgress>) -> Result<ScanOutcome, String>;
}
