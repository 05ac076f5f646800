//! Scan jobs through the `Store` port, on every backend and on the in-memory store:
//! records upserted by id, the report stored with the final put and read apart, listings
//! newest first with filters and a cursor.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mark1_actors::domain::scan::{ScanRecord, ScanState, ScanSummary};
use mark1_actors::ports::{MemoryStore, ScanQuery, Store, Write};

use super::backends::{for_each_backend, Fresh};
use super::now;

fn put(record: &ScanRecord, result: Option<&str>) -> Write {
    Write::PutScan { record: Box::new(record.clone()), result: result.map(Arc::from) }
}

async fn scans_suite(store: &dyn Store) {
    let running =
        ScanRecord::running("team-a", PathBuf::from("/srv/repos/é x"), Some("key:admin".into()), now());
    store.write_batch(&[put(&running, None)]).await.unwrap();
    assert_eq!(store.scan(running.id).await.unwrap().as_ref(), Some(&running));
    assert_eq!(store.scan_result(running.id).await.unwrap(), None, "no report while it runs");

    let mut done = running.clone();
    done.state = ScanState::Succeeded;
    done.summary = Some(ScanSummary { files: 3, llm_calls: 2, agents: 1, tools: 4, mcp: 0, problems: 1 });
    done.finished_at = Some(now() + Duration::from_secs(1));
    let report = r#"{"schema_version":"1.0","llm_calls":[{"provider":"openai","confidence":0.9}]}"#;
    // Two puts in one batch: the last wins.
    store.write_batch(&[put(&running, None), put(&done, Some(report))]).await.unwrap();
    assert_eq!(store.scan(done.id).await.unwrap().as_ref(), Some(&done));
    let stored: serde_json::Value =
        serde_json::from_str(&store.scan_result(done.id).await.unwrap().unwrap()).unwrap();
    assert_eq!(stored, serde_json::from_str::<serde_json::Value>(report).unwrap());

    let mut failed = ScanRecord::running("team-b", PathBuf::from("/srv/other"), None, now());
    failed.state = ScanState::Failed;
    failed.error = Some("cannot scan /srv/other: gone".into());
    failed.finished_at = Some(now());
    let newest = ScanRecord::running("team-a", PathBuf::from("/srv/third"), None, now());
    store.write_batch(&[put(&failed, None), put(&newest, None)]).await.unwrap();
    assert_eq!(store.scan(failed.id).await.unwrap().as_ref(), Some(&failed));

    let ids = |scans: Vec<ScanRecord>| scans.into_iter().map(|s| s.id).collect::<Vec<_>>();
    let all = store.list_scans(&ScanQuery::default()).await.unwrap();
    assert_eq!(ids(all), vec![newest.id, failed.id, done.id], "newest first");
    let team_a = ScanQuery { namespace: Some("team-a".into()), ..ScanQuery::default() };
    assert_eq!(ids(store.list_scans(&team_a).await.unwrap()), vec![newest.id, done.id]);
    let page = ScanQuery { limit: 1, ..team_a.clone() };
    assert_eq!(ids(store.list_scans(&page).await.unwrap()), vec![newest.id]);
    let next = ScanQuery { before: Some(newest.id), ..team_a.clone() };
    assert_eq!(ids(store.list_scans(&next).await.unwrap()), vec![done.id]);
    let failing = ScanQuery { state: Some(ScanState::Failed), ..ScanQuery::default() };
    assert_eq!(ids(store.list_scans(&failing).await.unwrap()), vec![failed.id]);
}

#[tokio::test]
async fn scans_are_stored_with_their_reports_and_listed_newest_first() {
    scans_suite(&MemoryStore::new()).await;
    for_each_backend(|Fresh { store, .. }| async move { scans_suite(store.as_ref()).await }).await;
}
