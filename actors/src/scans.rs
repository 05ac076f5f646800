//! Scan jobs as supervised actors (DESIGN §2, §7):
//!
//! ```text
//! scans                supervisor, one-for-one, at most `scan_queue_limit` jobs
//! └── scan:<id>        one per scan job (temporary: a crashed job is recorded failed, not rerun)
//! ```
//!
//! A job's actor writes its `running` record before it counts as started (so the caller
//! can read it at once), hands the scan itself to the [`Scanner`] port (which runs it on
//! its own bounded threads), reports progress from shared counters on a timer
//! (`scan.progress` at most every [`PROGRESS_EVERY`]), then stores the report and its
//! counts, emits `scan.finished` or `scan.failed` once that committed, and leaves.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mark1_supervisors::{
    spawn_instrumented, Addr, ChildSpec, Restart, StartCtx, SupervisorError, SupervisorMsg,
};
use ractor::concurrency::JoinHandle;
use ractor::rpc::CallResult;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::json;

use crate::domain::scan::{ScanId, ScanRecord, ScanState};
use crate::domain::EventKind;
use crate::ports::{Clock, EventSink, ScanOutcome, ScanProgress, Scanner, StoreError, Write};
use crate::store_writer::{Ack, Retry, StoreWriterMsg};

/// `scan.progress` events of one job come at most this often.
pub const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// Why a scan was not started. Typed, so the edge can map it.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ScanError {
    /// No folder may be scanned over the API.
    #[error("scans over the API are off: set scan.allowed_dirs to the folders that may be scanned")]
    Disabled,
    #[error(
        "{path} is outside scan.allowed_dirs ({allowed}); scan a folder under one of them or add it there"
    )]
    NotAllowed { path: String, allowed: String },
    #[error("path: {0}")]
    InvalidPath(String),
    #[error("too many scans waiting (at most {0}); retry when some have finished")]
    Busy(usize),
    #[error("{0}")]
    Unavailable(String),
}

impl From<StoreError> for ScanError {
    fn from(e: StoreError) -> Self {
        ScanError::Unavailable(e.to_string())
    }
}

/// The supervisor child id of a scan job.
pub fn scan_child_id(id: ScanId) -> String {
    format!("scan:{id}")
}

/// What every job of a node shares.
#[derive(Clone)]
pub struct ScanEnv {
    pub scanner: Arc<dyn Scanner>,
    pub writer: Addr<StoreWriterMsg>,
    pub events: Arc<dyn EventSink>,
    pub clock: Arc<dyn Clock>,
    /// The `scans` supervisor, which the job asks to remove it when it is done.
    pub supervisor: ActorRef<SupervisorMsg>,
}

impl ScanEnv {
    /// Starts the job of `record` under the `scans` supervisor; returns once its
    /// `running` record is committed.
    pub async fn start(&self, record: ScanRecord, timeout: Duration) -> Result<ScanRecord, ScanError> {
        let (env, job) = (self.clone(), record.clone());
        let spec = ChildSpec::new(scan_child_id(record.id), move |ctx: StartCtx| {
            let args = ScanJobArgs { env: env.clone(), record: job.clone() };
            async move {
                let (addr, _) =
                    spawn_instrumented(ctx.name, ScanJob, args, ctx.stats, Some(ctx.supervisor)).await?;
                Ok(addr.actor().get_cell())
            }
        })
        .restart(Restart::Temporary);
        match self.supervisor.call(|reply| SupervisorMsg::StartChild(spec, reply), Some(timeout)).await {
            Ok(CallResult::Success(Ok(_))) => Ok(record),
            Ok(CallResult::Success(Err(SupervisorError::Full(n)))) => Err(ScanError::Busy(n)),
            Ok(CallResult::Success(Err(e))) => {
                Err(ScanError::Unavailable(format!("scan {} did not start: {e}", record.id)))
            }
            Ok(CallResult::Timeout) => {
                Err(ScanError::Unavailable(format!("the scans supervisor did not answer within {timeout:?}")))
            }
            _ => Err(ScanError::Unavailable("the scans supervisor is not running".into())),
        }
    }

    /// Sends writes; `ack` hears the commit.
    fn write(&self, writes: Vec<Write>, ack: Option<Ack>) -> bool {
        self.writer.cast(StoreWriterMsg::Write { writes, ack, retry: Retry::UntilCommitted }).is_ok()
    }
}

pub enum ScanJobMsg {
    /// Timer: report progress when it changed.
    Tick,
    /// The scanner is done.
    Scanned(Result<ScanOutcome, String>),
    /// The final record committed (or could not be).
    Stored(Result<(), StoreError>),
}

pub struct ScanJobArgs {
    pub env: ScanEnv,
    pub record: ScanRecord,
}

pub struct ScanJobState {
    env: ScanEnv,
    record: ScanRecord,
    progress: Arc<ScanProgress>,
    /// The last progress reported, and when.
    reported: ((usize, usize), Instant),
    ticker: Option<JoinHandle<()>>,
    /// The final record was handed to the store writer.
    stored: bool,
}

/// One scan job.
pub struct ScanJob;

impl Actor for ScanJob {
    type Msg = ScanJobMsg;
    type State = ScanJobState;
    type Arguments = ScanJobArgs;

    async fn pre_start(
        &self,
        _: ActorRef<ScanJobMsg>,
        ScanJobArgs { env, record }: ScanJobArgs,
    ) -> Result<ScanJobState, ActorProcessingErr> {
        // Committed before the job counts as started: the caller reads it next.
        let (tx, rx) = tokio::sync::oneshot::channel();
        let ack: Ack = Box::new(move |result| {
            let _ = tx.send(result);
        });
        let put = Write::PutScan { record: Box::new(record.clone()), result: None };
        if !env.write(vec![put], Some(ack)) {
            return Err("the store writer is not running".into());
        }
        rx.await.map_err(|_| "the store writer stopped")??;
        Ok(ScanJobState {
            env,
            record,
            progress: Arc::new(ScanProgress::default()),
            reported: ((0, 0), Instant::now()),
            ticker: None,
            stored: false,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<ScanJobMsg>,
        state: &mut ScanJobState,
    ) -> Result<(), ActorProcessingErr> {
        let record = &state.record;
        let data = json!({"path": record.path, "submitter": record.submitter});
        let (namespace, subject) = (record.namespace.as_str().into(), record.id.text());
        state.env.events.emit(EventKind::ScanStarted, namespace, subject, data.into());
        tracing::info!(scan = %record.id, path = %record.path.display(), "scan started");
        let (scanner, path, progress) =
            (state.env.scanner.clone(), record.path.clone(), state.progress.clone());
        let me = myself.clone();
        tokio::spawn(async move {
            // A panicking scan is a failed scan: the spawned task catches it for the job.
            let outcome = tokio::spawn(async move { scanner.scan(path, progress).await })
                .await
                .unwrap_or_else(|e| Err(format!("the scan stopped: {e}")));
            let _ = me.cast(ScanJobMsg::Scanned(outcome));
        });
        state.ticker = Some(myself.send_interval(PROGRESS_EVERY, || ScanJobMsg::Tick));
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<ScanJobMsg>,
        msg: ScanJobMsg,
        state: &mut ScanJobState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ScanJobMsg::Tick => state.report_progress(),
            ScanJobMsg::Scanned(outcome) => {
                if let Some(ticker) = state.ticker.take() {
                    ticker.abort();
                }
                let result = match outcome {
                    Ok(ScanOutcome { result, summary }) => {
                        state.record.state = ScanState::Succeeded;
                        state.record.summary = Some(summary);
                        Some(result)
                    }
                    Err(error) => {
                        state.record.state = ScanState::Failed;
                        state.record.error = Some(error);
                        None
                    }
                };
                state.record.finished_at = Some(state.env.clock.now());
                let me = myself.clone();
                let ack: Ack = Box::new(move |stored| {
                    let _ = me.cast(ScanJobMsg::Stored(stored));
                });
                let put = Write::PutScan { record: Box::new(state.record.clone()), result };
                state.stored = true;
                if !state.env.write(vec![put], Some(ack)) {
                    return Err("the store writer is not running".into());
                }
            }
            ScanJobMsg::Stored(stored) => {
                if let Err(error) = stored {
                    // Kept until committed by the writer; an error here is final.
                    tracing::error!(scan = %state.record.id, %error, "scan record not stored");
                }
                state.finish();
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _: ActorRef<ScanJobMsg>,
        state: &mut ScanJobState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(ticker) = state.ticker.take() {
            ticker.abort();
        }
        // Stopped before its end (the node shut down): recorded failed, not left running.
        if !state.stored {
            state.record.state = ScanState::Failed;
            state.record.error = Some("the node stopped before the scan finished".into());
            state.record.finished_at = Some(state.env.clock.now());
            let put = Write::PutScan { record: Box::new(state.record.clone()), result: None };
            state.env.write(vec![put], None);
        }
        Ok(())
    }
}

impl ScanJobState {
    fn report_progress(&mut self) {
        let now = self.progress.get();
        if now == self.reported.0 || self.reported.1.elapsed() < PROGRESS_EVERY / 2 {
            return;
        }
        self.reported = (now, Instant::now());
        let (done, total) = now;
        let record = &self.record;
        let data = json!({"done": done, "total": total});
        let (namespace, subject) = (record.namespace.as_str().into(), record.id.text());
        self.env.events.emit(EventKind::ScanProgress, namespace, subject, data.into());
    }

    /// The final record is committed: tell subscribers, then leave through the supervisor
    /// (which forgets the child's slot).
    fn finish(&mut self) {
        let record = &self.record;
        let (kind, data) = match record.state {
            ScanState::Failed => (EventKind::ScanFailed, json!({"path": record.path, "error": record.error})),
            _ => (EventKind::ScanFinished, json!({"path": record.path, "summary": record.summary})),
        };
        let (namespace, subject) = (record.namespace.as_str().into(), record.id.text());
        self.env.events.emit(kind, namespace, subject, data.into());
        tracing::info!(scan = %record.id, state = record.state.as_str(), "scan finished");
        let (reply, _) = ractor::concurrency::oneshot();
        let _ = self
            .env
            .supervisor
            .send_message(SupervisorMsg::StopChild(scan_child_id(record.id), reply.into()));
    }
}

#[cfg(test)]
mod tests;
