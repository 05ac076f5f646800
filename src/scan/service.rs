//! The node's [`Scanner`]: scan jobs (`POST /v1/scans`) run here, bounded so they never
//! starve the node. At most `scan.max_concurrent` scans run at once (a semaphore; the
//! others wait for a slot), each on tokio's blocking pool, and their files are parsed by
//! a rayon pool of `scan.threads` of its own, made at the first scan: the node's runtime
//! workers and rayon's global pool stay free.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use mark1_actors::domain::scan::ScanSummary;
use mark1_actors::ports::{ScanOutcome, ScanProgress, Scanner};
use tokio::sync::Semaphore;

use super::report::RepositoryAnalysis;
use super::Rules;

pub struct LocalScanner {
    slots: Semaphore,
    threads: usize,
    pool: OnceLock<Result<Arc<rayon::ThreadPool>, String>>,
}

impl LocalScanner {
    pub fn new(max_concurrent: usize, threads: usize) -> Self {
        LocalScanner {
            slots: Semaphore::new(max_concurrent.max(1)),
            threads: threads.max(1),
            pool: OnceLock::new(),
        }
    }

    fn pool(&self) -> Result<Arc<rayon::ThreadPool>, String> {
        self.pool
            .get_or_init(|| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(self.threads)
                    .thread_name(|i| format!("mark1-scan-{i}"))
                    .build()
                    .map(Arc::new)
                    .map_err(|e| format!("cannot start the scan threads: {e}"))
            })
            .clone()
    }
}

/// The counts stored beside a report.
pub fn summary_of(analysis: &RepositoryAnalysis) -> ScanSummary {
    let s = &analysis.summary;
    let n = |v: usize| v as u64;
    ScanSummary {
        files: n(s.files),
        llm_calls: n(s.llm_calls),
        agents: n(s.agents),
        tools: n(s.tools),
        mcp: n(s.mcp),
        problems: n(s.problems),
    }
}

#[async_trait::async_trait]
impl Scanner for LocalScanner {
    async fn scan(&self, path: PathBuf, progress: Arc<ScanProgress>) -> Result<ScanOutcome, String> {
        let _slot = self.slots.acquire().await.map_err(|_| "the scanner is closed".to_string())?;
        let pool = self.pool()?;
        let scanned = tokio::task::spawn_blocking(move || {
            let report = |done: usize, total: usize| progress.set(done, total);
            let analysis = pool.install(|| super::scan(&path, Rules::built_in(), Some(&report)));
            analysis.map_err(|e| e.to_string()).and_then(|analysis| {
                // Serialized directly (not through a JSON value), as `mark1 scan --json` prints it.
                let text =
                    serde_json::to_string(&analysis).map_err(|e| format!("cannot encode the report: {e}"))?;
                Ok(ScanOutcome { result: Arc::from(text), summary: summary_of(&analysis) })
            })
        })
        .await;
        scanned.unwrap_or_else(|e| Err(format!("the scan stopped: {e}")))
    }
}
