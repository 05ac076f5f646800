//! API keys, task listings and the audit log through the `Store` port, on every backend
//! (and the in-memory store, which unit tests and benches stand on).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mark1::auth::keys::{self, AuthError, KeyRejected, KeySpec};
use mark1::{TaskId, TaskRecord, TaskState};
use mark1_actors::domain::audit::verify_chain;
use mark1_actors::domain::{AuditEntry, AuditOutcome, AuditRecord, Role, Target};
use mark1_actors::ports::{MemoryStore, Store, StoreError, TaskQuery, Write};
use serde_json::json;

use super::backends::{for_each_backend, Fresh};
use super::{now, put, task};

fn new_key(
    role: Role,
    namespace: Option<&str>,
    created_at: SystemTime,
) -> (String, mark1_actors::domain::ApiKeyRecord) {
    let spec = KeySpec {
        role,
        namespace: namespace.map(Into::into),
        name: format!("{role} key"),
        created_by: Some("cli:test".into()),
        expires_at: Some(created_at + Duration::from_secs(3600)),
    };
    keys::generate(spec, created_at).unwrap()
}

async fn keys_suite(store: &dyn Store) {
    let t0 = now();
    let (admin_key, admin) = new_key(Role::Admin, None, t0);
    let (dev_key, dev) = new_key(Role::Developer, Some("team-a"), t0 + Duration::from_secs(1));
    store.put_api_key(&dev).await.unwrap();
    store.write_batch(&[Write::PutApiKey(Box::new(admin.clone()))]).await.unwrap();
    assert_eq!(store.api_key(&dev.id).await.unwrap(), Some(dev.clone()));
    assert_eq!(store.api_key("000000000000").await.unwrap(), None);
    assert_eq!(store.api_keys().await.unwrap(), vec![admin.clone(), dev.clone()], "oldest first");
    let taken = store.put_api_key(&dev).await;
    assert!(matches!(taken, Err(StoreError::Rejected(_))), "an id is stored once: {taken:?}");

    // The edge's path: parse, look up by id, verify.
    let principal = keys::authenticate(store, &dev_key, t0 + Duration::from_secs(2)).await.unwrap();
    assert_eq!((principal.subject, principal.namespace), (format!("key:{}", dev.id), Some("team-a".into())));
    let admin_principal = keys::authenticate(store, &admin_key, t0).await.unwrap();
    assert_eq!((admin_principal.role, admin_principal.namespace), (Role::Admin, None));

    assert!(!store.revoke_api_key("000000000000", t0).await.unwrap(), "unknown id");
    let revoked_at = t0 + Duration::from_secs(5);
    assert!(store.revoke_api_key(&dev.id, revoked_at).await.unwrap());
    assert!(store.revoke_api_key(&dev.id, revoked_at + Duration::from_secs(5)).await.unwrap());
    assert_eq!(
        store.api_key(&dev.id).await.unwrap().unwrap().revoked_at,
        Some(revoked_at),
        "first time kept"
    );
    let refused = keys::authenticate(store, &dev_key, revoked_at).await;
    assert_eq!(refused, Err(AuthError::Rejected(KeyRejected::Revoked)));

    // Put and revoked in one batch: stored revoked; a revocation of an unknown id is no change.
    let (_, late) = new_key(Role::Viewer, Some("team-b"), t0 + Duration::from_secs(2));
    let revoke = |id: &str| Write::RevokeApiKey { id: id.into(), at: revoked_at };
    let batch = [Write::PutApiKey(Box::new(late.clone())), revoke(&late.id), revoke("ffffffffffff")];
    store.write_batch(&batch).await.unwrap();
    assert_eq!(store.api_key(&late.id).await.unwrap().unwrap().revoked_at, Some(revoked_at));
    assert_eq!(store.api_key(&admin.id).await.unwrap().unwrap().revoked_at, None);
    assert_eq!(store.api_keys().await.unwrap().len(), 3);
}

#[tokio::test]
async fn api_keys_are_stored_found_listed_and_revoked() {
    keys_suite(&MemoryStore::new()).await;
    for_each_backend(|Fresh { store, .. }| async move { keys_suite(store.as_ref()).await }).await;
}

/// Six tasks, oldest first: namespaces a and b, states, agents and submitters mixed.
fn tasks() -> Vec<TaskRecord> {
    let mut made = Vec::new();
    for n in 0..6u32 {
        let state = if n % 2 == 0 { TaskState::Queued } else { TaskState::Succeeded };
        let mut t = task(if n < 4 { "team-a" } else { "team-b" }, state, now());
        t.submitter = Some(if n % 3 == 0 { "key:alice" } else { "key:bob" }.into());
        (t.target, t.agent) = match n {
            // Addressed to an agent by name, not dispatched yet.
            2 => (Target::Agent("summarize".into()), None),
            _ => (
                Target::Capabilities(vec!["x".into()]),
                Some(if n == 3 { "summarize" } else { "echo" }.into()),
            ),
        };
        made.push(t);
    }
    made
}

async fn listing_suite(store: &dyn Store) {
    let made = tasks();
    store.write_batch(&made.iter().map(put).collect::<Vec<_>>()).await.unwrap();
    let ids = |found: Vec<TaskRecord>| {
        found.iter().map(|t| made.iter().position(|m| m.id == t.id).unwrap()).collect::<Vec<_>>()
    };
    let list = |query: TaskQuery| async move { ids(store.list_tasks(&query).await.unwrap()) };
    assert_eq!(list(TaskQuery::default()).await, [5, 4, 3, 2, 1, 0]);
    let in_a = TaskQuery { namespace: Some("team-a".into()), ..TaskQuery::default() };
    assert_eq!(list(in_a.clone()).await, [3, 2, 1, 0]);
    assert_eq!(list(TaskQuery { state: Some(TaskState::Queued), ..in_a.clone() }).await, [2, 0]);
    assert_eq!(list(TaskQuery { agent: Some("summarize".into()), ..TaskQuery::default() }).await, [3, 2]);
    assert_eq!(list(TaskQuery { submitter: Some("key:alice".into()), ..TaskQuery::default() }).await, [3, 0]);
    let everything = TaskQuery {
        namespace: Some("team-a".into()),
        state: Some(TaskState::Succeeded),
        agent: Some("summarize".into()),
        submitter: Some("key:alice".into()),
        before: Some(made[5].id),
        limit: 10,
    };
    assert_eq!(list(everything).await, [3]);
    assert_eq!(
        list(TaskQuery { namespace: Some("team-c".into()), ..TaskQuery::default() }).await,
        Vec::<usize>::new()
    );

    // Pages of two, each after the last id of the page before.
    let mut pages = Vec::new();
    let mut before: Option<TaskId> = None;
    loop {
        let page = store.list_tasks(&TaskQuery { before, limit: 2, ..TaskQuery::default() }).await.unwrap();
        let Some(last) = page.last() else { break };
        before = Some(last.id);
        pages.push(ids(page));
    }
    assert_eq!(pages, [vec![5, 4], vec![3, 2], vec![1, 0]]);
    assert_eq!(
        store.list_tasks(&TaskQuery { limit: 1, ..TaskQuery::default() }).await.unwrap(),
        vec![made[5].clone()]
    );
}

#[tokio::test]
async fn tasks_are_listed_newest_first_by_filter_and_by_cursor() {
    listing_suite(&MemoryStore::new()).await;
    for_each_backend(|Fresh { store, .. }| async move { listing_suite(store.as_ref()).await }).await;
}

fn audit_entry(n: u64) -> AuditEntry {
    AuditEntry {
        actor: "key:0123456789ab".into(),
        action: "agent.register".into(),
        namespace: n.is_multiple_of(2).then(|| "team-a".into()),
        subject: Some(format!("agent:team-a/a{n}")),
        outcome: if n.is_multiple_of(3) { AuditOutcome::Denied } else { AuditOutcome::Success },
        request_id: (n % 2 == 1).then(|| format!("req-{n}")),
        data: json!({"n": n, "float": 0.1 + n as f64, "text": "hé \"quoted\"", "z": [null, true], "a": {}}),
    }
}

/// Appends `count` records to `chain` in one batch; returns them.
async fn append(store: &dyn Store, chain: &str, count: u64) -> Vec<AuditRecord> {
    let mut head = store.audit_head(chain).await.unwrap();
    let records: Vec<AuditRecord> = (0..count)
        .map(|_| {
            let n = head.map_or(1, |h| h.seq + 1);
            let record = AuditRecord::chained(chain, head, now(), audit_entry(n));
            head = Some(record.head());
            record
        })
        .collect();
    let writes: Vec<Write> = records.iter().map(|r| Write::AppendAudit(Box::new(r.clone()))).collect();
    store.write_batch(&writes).await.unwrap();
    records
}

async fn audit_suite(store: &dyn Store) {
    assert_eq!(store.audit_head("n1").await.unwrap(), None);
    assert_eq!(store.audit_chains().await.unwrap(), Vec::<String>::new());
    let mut n1 = append(store, "n1", 3).await;
    n1.extend(append(store, "n1", 2).await);
    let cli = append(store, "n1:cli", 2).await;
    assert_eq!(store.audit_head("n1").await.unwrap(), Some(n1[4].head()));
    assert_eq!(store.audit_chains().await.unwrap(), ["n1", "n1:cli"]);

    let stored = store.audit_records(Some("n1"), 0, 100).await.unwrap();
    assert_eq!(stored, n1, "every field comes back as written");
    assert_eq!(verify_chain(&stored).unwrap().records, 5, "and hashes the same after the trip");
    assert_eq!(store.audit_records(Some("n1"), 2, 2).await.unwrap(), n1[2..4].to_vec());
    let all = store.audit_records(None, 0, 100).await.unwrap();
    assert_eq!(all, [n1.clone(), cli].concat(), "by chain, then seq");

    // A second writer of seq 6: refused with the rest of its batch, the chain unforked.
    let (_, key) = new_key(Role::Admin, None, now());
    let fork = AuditRecord::chained("n1", Some(n1[4].head()), now(), audit_entry(99));
    let rival = AuditRecord::chained("n1", Some(n1[4].head()), now(), audit_entry(6));
    store.write_batch(&[Write::AppendAudit(Box::new(rival))]).await.unwrap();
    let refused = store
        .write_batch(&[Write::PutApiKey(Box::new(key.clone())), Write::AppendAudit(Box::new(fork))])
        .await;
    assert!(matches!(refused, Err(StoreError::Rejected(_))), "{refused:?}");
    assert_eq!(store.api_key(&key.id).await.unwrap(), None, "the batch is one transaction");
    let chain = store.audit_records(Some("n1"), 0, 100).await.unwrap();
    assert_eq!(verify_chain(&chain).unwrap().records, 6);
}

#[tokio::test]
async fn audit_chains_are_appended_read_back_and_never_forked() {
    audit_suite(&MemoryStore::new()).await;
    for_each_backend(|Fresh { store, .. }| async move { audit_suite(store.as_ref()).await }).await;
}

#[tokio::test]
async fn a_nodes_audit_records_land_on_its_chain_in_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let handle = crate::support::started(crate::support::builder(dir.path()), 0).await;
    let name = handle.name().to_string();
    let results = futures::future::join_all((1..=10).map(|n| handle.audit(audit_entry(n)))).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let store: Arc<dyn Store> = handle.store();
    let records = store.audit_records(Some(&name), 0, 100).await.unwrap();
    assert_eq!(verify_chain(&records).unwrap().records, 10);
    let mut actions: Vec<u64> = records.iter().map(|r| r.data["n"].as_u64().unwrap()).collect();
    actions.sort();
    assert_eq!(actions, (1..=10).collect::<Vec<_>>(), "each entry once");
    crate::support::stop(handle).await;
}
