use std::time::Duration;

use ractor::concurrency::{oneshot, OneshotReceiver};
use serde_json::json;

use super::*;
use crate::domain::audit::verify_chain;
use crate::domain::AuditOutcome;
use crate::ports::{MemoryStore, SystemClock};
use crate::testing::{eventually, SwitchableStore};

const CHAIN: &str = "n1";

fn entry(n: u32) -> AuditEntry {
    let mut entry = AuditEntry::new(format!("key:{n}"), "key.create", AuditOutcome::Success);
    entry.data = json!({"n": n});
    entry
}

async fn start(store: Arc<dyn Store>, queue_limit: usize) -> (ActorRef<AuditMsg>, JoinHandle<()>) {
    let args = AuditArgs { chain: CHAIN.into(), store, clock: Arc::new(SystemClock), queue_limit };
    Actor::spawn(None, Audit, args).await.expect("the audit actor starts")
}

type Answer = OneshotReceiver<Result<(), AuditError>>;

fn send(audit: &ActorRef<AuditMsg>, n: u32) -> Answer {
    let (tx, rx) = oneshot();
    audit.send_message(AuditMsg::Record(entry(n), tx.into())).unwrap();
    rx
}

async fn answer(rx: Answer) -> Result<(), AuditError> {
    tokio::time::timeout(Duration::from_secs(5), rx).await.expect("answered in time").expect("a reply")
}

async fn stop(audit: ActorRef<AuditMsg>, handle: JoinHandle<()>) {
    audit.stop(None);
    tokio::time::timeout(Duration::from_secs(5), handle).await.expect("stops in time").expect("no panic");
}

/// The chain as stored, checked; returns each record's `data.n`.
async fn stored(store: &dyn Store) -> Vec<u64> {
    let records = store.audit_records(Some(CHAIN), 0, 1000).await.unwrap();
    verify_chain(&records).expect("the stored chain holds");
    records.iter().map(|r| r.data["n"].as_u64().unwrap()).collect()
}

#[tokio::test]
async fn records_are_batched_and_a_restart_continues_the_stored_chain() {
    let store = Arc::new(SwitchableStore::default());
    let (audit, handle) = start(store.clone(), 100).await;
    let answers: Vec<Answer> = (1..=20).map(|n| send(&audit, n)).collect();
    for rx in answers {
        answer(rx).await.unwrap();
    }
    assert!(store.batches() < 20, "records were grouped: {} batches for 20", store.batches());
    stop(audit, handle).await;

    let (audit, handle) = start(store.clone(), 100).await;
    answer(send(&audit, 21)).await.unwrap();
    assert_eq!(stored(store.as_ref()).await, (1..=21).collect::<Vec<_>>());
    stop(audit, handle).await;
}

#[tokio::test]
async fn entries_wait_while_a_batch_is_written_and_a_full_queue_refuses() {
    let store = Arc::new(SwitchableStore::default());
    let (audit, handle) = start(store.clone(), 3).await;
    store.hold_writes(true);
    let first = send(&audit, 1);
    eventually("the first batch in flight", || store.batches() == 1).await;
    let (second, third) = (send(&audit, 2), send(&audit, 3));
    assert_eq!(answer(send(&audit, 4)).await, Err(AuditError::QueueFull { limit: 3 }));
    store.hold_writes(false);
    for rx in [first, second, third] {
        answer(rx).await.unwrap();
    }
    assert_eq!(store.batches(), 2, "what waited went as one batch");
    assert_eq!(stored(store.as_ref()).await, [1, 2, 3]);
    stop(audit, handle).await;
}

#[tokio::test]
async fn a_failed_batch_answers_its_callers_and_the_head_stays_at_the_last_commit() {
    let store = Arc::new(SwitchableStore::default());
    let (audit, handle) = start(store.clone(), 100).await;
    answer(send(&audit, 1)).await.unwrap();
    store.set_down(true);
    let failed = answer(send(&audit, 2)).await.unwrap_err();
    assert!(matches!(failed, AuditError::Store(StoreError::Unavailable(_))) && failed.is_unavailable());
    store.set_down(false);
    answer(send(&audit, 3)).await.unwrap();
    assert_eq!(stored(store.as_ref()).await, [1, 3], "record 3 is seq 2, linked to record 1");
    stop(audit, handle).await;
}

#[tokio::test]
async fn a_head_unreadable_at_start_is_read_before_the_first_batch() {
    let store = Arc::new(SwitchableStore::default());
    let (audit, handle) = start(store.clone(), 100).await;
    answer(send(&audit, 1)).await.unwrap();
    stop(audit, handle).await;

    store.set_down(true);
    let (audit, handle) = start(store.clone(), 100).await;
    assert!(answer(send(&audit, 2)).await.is_err());
    store.set_down(false);
    answer(send(&audit, 3)).await.unwrap();
    assert_eq!(stored(store.as_ref()).await, [1, 3]);
    stop(audit, handle).await;
}

#[tokio::test]
async fn another_writer_of_the_chain_is_refused_and_then_followed() {
    let store = Arc::new(MemoryStore::new());
    let (audit, handle) = start(store.clone(), 100).await;
    answer(send(&audit, 1)).await.unwrap();
    // Another process appends seq 2 behind the actor's back.
    let head = store.audit_head(CHAIN).await.unwrap();
    let other = AuditRecord::chained(CHAIN, head, SystemTime::now(), entry(2));
    store.write_batch(&[Write::AppendAudit(Box::new(other))]).await.unwrap();
    let refused = answer(send(&audit, 3)).await.unwrap_err();
    assert!(matches!(refused, AuditError::Store(StoreError::Rejected(_))), "{refused:?}");
    answer(send(&audit, 4)).await.unwrap();
    assert_eq!(stored(store.as_ref()).await, [1, 2, 4], "the chain did not fork");
    stop(audit, handle).await;
}

#[tokio::test]
async fn stopping_writes_the_batch_in_flight_and_what_waits() {
    let store = Arc::new(SwitchableStore::default());
    let (audit, handle) = start(store.clone(), 100).await;
    store.hold_writes(true);
    let first = send(&audit, 1);
    eventually("the first batch in flight", || store.batches() == 1).await;
    let second = send(&audit, 2);
    // Supervisors stop children by draining their mailbox.
    audit.drain().unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    store.hold_writes(false);
    answer(first).await.unwrap();
    answer(second).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), handle).await.unwrap().expect("no panic");
    assert_eq!(stored(store.as_ref()).await, [1, 2]);
}
