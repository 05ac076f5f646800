use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mark1_supervisors::{spawn_instrumented, ActorStats, Addr, Supervisor, SupervisorArgs};
use ractor::Actor;

use super::*;
use crate::domain::scan::ScanSummary;
use crate::events::EventBus;
use crate::ports::{MemoryStore, Store, SystemClock};
use crate::store_writer::{StoreWriter, StoreWriterArgs, StoreWriterStats};

/// Reports half the files, waits a little, then answers `outcome`.
struct FakeScanner {
    outcome: Result<ScanOutcome, String>,
}

#[async_trait::async_trait]
impl Scanner for FakeScanner {
    async fn scan(&self, _: PathBuf, progress: Arc<ScanProgress>) -> Result<ScanOutcome, String> {
        progress.set(1, 2);
        tokio::time::sleep(PROGRESS_EVERY * 2).await;
        progress.set(2, 2);
        self.outcome.clone()
    }
}

async fn env(outcome: Result<ScanOutcome, String>) -> (ScanEnv, Arc<MemoryStore>, Arc<EventBus>) {
    let store = Arc::new(MemoryStore::new());
    let stats = Arc::new(StoreWriterStats::default());
    let args = StoreWriterArgs {
        store: store.clone(),
        batch_max: 100,
        flush_delay: Duration::from_millis(1),
        lazy_delay: Duration::from_millis(1),
        queue_limit: 100,
        stats,
    };
    let (writer, _) = Actor::spawn(None, StoreWriter, args).await.unwrap();
    let writer = Addr::new(writer, ActorStats::new("store_writer"));
    let sup_stats = ActorStats::new("scans");
    let (supervisor, _) =
        spawn_instrumented(None, Supervisor, SupervisorArgs::new(sup_stats.clone()), sup_stats, None)
            .await
            .unwrap();
    let events = EventBus::new(100, Arc::new(SystemClock));
    let env = ScanEnv {
        scanner: Arc::new(FakeScanner { outcome }),
        writer,
        events: events.clone(),
        clock: Arc::new(SystemClock),
        supervisor: supervisor.actor().clone(),
    };
    (env, store, events)
}

async fn until_final(store: &MemoryStore, id: ScanId) -> ScanRecord {
    for _ in 0..200 {
        if let Some(record) = store.scan(id).await.unwrap().filter(|r| r.state.is_final()) {
            return record;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("scan {id} did not finish");
}

fn kinds(events: &EventBus) -> Vec<EventKind> {
    events.since(0, 100).unwrap().iter().map(|e| e.kind).collect()
}

#[tokio::test]
async fn a_job_stores_its_running_record_then_its_report_and_reports_progress() {
    let summary = ScanSummary { files: 2, llm_calls: 1, ..ScanSummary::default() };
    let outcome = ScanOutcome { result: Arc::from(r#"{"llm_calls":[1]}"#), summary };
    let (env, store, events) = env(Ok(outcome)).await;
    let record =
        ScanRecord::running("default", PathBuf::from("/tmp"), Some("alice".into()), SystemTime::now());
    let id = record.id;
    env.start(record, Duration::from_secs(5)).await.unwrap();
    let stored = store.scan(id).await.unwrap().expect("committed before start returns");
    assert_eq!(stored.state, ScanState::Running);
    let done = until_final(&store, id).await;
    assert_eq!((done.state, done.summary), (ScanState::Succeeded, Some(summary)));
    assert!(done.finished_at.is_some());
    assert_eq!(store.scan_result(id).await.unwrap().as_deref(), Some(r#"{"llm_calls":[1]}"#));
    // The finished event follows the commit, so wait for it too.
    for _ in 0..100 {
        if kinds(&events).contains(&EventKind::ScanFinished) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let kinds = kinds(&events);
    assert_eq!(kinds.first(), Some(&EventKind::ScanStarted));
    assert!(kinds.contains(&EventKind::ScanProgress), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&EventKind::ScanFinished));
    assert!(kinds.iter().filter(|k| **k == EventKind::ScanProgress).count() <= 3, "throttled: {kinds:?}");
    // The job left through its supervisor.
    for _ in 0..100 {
        let children = env.supervisor.call(SupervisorMsg::Children, None).await.unwrap().unwrap();
        if children.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the job's slot is still there");
}

#[tokio::test]
async fn a_failed_scan_is_recorded_with_its_reason() {
    let (env, store, events) = env(Err("no such folder".into())).await;
    let record = ScanRecord::running("team-a", PathBuf::from("/nowhere"), None, SystemTime::now());
    let id = record.id;
    env.start(record, Duration::from_secs(5)).await.unwrap();
    let done = until_final(&store, id).await;
    assert_eq!(done.state, ScanState::Failed);
    assert_eq!(done.error.as_deref(), Some("no such folder"));
    assert_eq!(store.scan_result(id).await.unwrap(), None);
    for _ in 0..100 {
        if kinds(&events).contains(&EventKind::ScanFailed) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no scan.failed event: {:?}", kinds(&events));
}
