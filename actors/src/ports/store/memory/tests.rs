//! Workflows, runs and journals in the memory store; the same behaviour is checked on
//! every backend by `tests/integration/store/workflows.rs`.

use std::time::Duration;

use serde_json::json;

use super::*;
use crate::domain::workflow::{JournalKind, ParentStep, RunState, WorkflowDef};

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

fn workflow(namespace: &str, name: &str, version: u32) -> WorkflowRecord {
    let def: WorkflowDef = serde_json::from_value(json!({
        "name": name,
        "version": version,
        "steps": [{"id": "scan", "agent": "scanner", "input": {"path": "{{ input.repo }}"}}],
    }))
    .unwrap();
    WorkflowRecord { namespace: namespace.into(), name: name.into(), version, def, created_at: at(0) }
}

fn run(namespace: &str, workflow: &str, state: RunState, owner: Option<Uuid>) -> RunRecord {
    RunRecord {
        id: RunId::new(),
        namespace: namespace.into(),
        workflow: workflow.into(),
        version: 1,
        state,
        input: json!({"repo": "."}),
        output: None,
        error: None,
        idempotency_key: None,
        submitter: Some("key:alice".into()),
        durable: true,
        parent: None,
        owner,
        created_at: at(0),
        updated_at: at(0),
    }
}

fn entry(run: RunId, seq: u64) -> JournalEntry {
    JournalEntry {
        run,
        seq,
        step: Some("scan".into()),
        attempt: Some(1),
        kind: JournalKind::StepRunning,
        data: json!({"seq": seq}),
        recorded_at: at(seq),
    }
}

fn put_workflow(w: &WorkflowRecord) -> Write {
    Write::PutWorkflow(Box::new(w.clone()))
}

fn put_run(r: &RunRecord) -> Write {
    Write::PutRun(Box::new(r.clone()))
}

fn append(e: JournalEntry) -> Write {
    Write::AppendJournal(Box::new(e))
}

fn rejected<T: std::fmt::Debug>(result: Result<T, StoreError>) -> bool {
    matches!(result, Err(StoreError::Rejected(_)))
}

#[tokio::test]
async fn workflow_versions_are_kept_and_the_newest_is_found() {
    let store = MemoryStore::new();
    let (v1, v2, v10) = (workflow("a", "triage", 1), workflow("a", "triage", 2), workflow("a", "triage", 10));
    let (other, elsewhere) = (workflow("a", "deploy", 1), workflow("b", "triage", 3));
    store.write_batch(&[put_workflow(&v10), put_workflow(&v1), put_workflow(&elsewhere)]).await.unwrap();
    store.write_batch(&[put_workflow(&v2), put_workflow(&other)]).await.unwrap();
    assert_eq!(store.workflow("a", "triage", None).await.unwrap(), Some(v10.clone()), "newest");
    assert_eq!(store.workflow("a", "triage", Some(2)).await.unwrap(), Some(v2.clone()));
    assert_eq!(store.workflow("a", "triage", Some(3)).await.unwrap(), None);
    assert_eq!(store.workflow("b", "triage", None).await.unwrap(), Some(elsewhere.clone()));
    assert_eq!(store.workflow("c", "triage", None).await.unwrap(), None);
    let listed = store.workflows(Some("a")).await.unwrap();
    assert_eq!(listed, vec![other.clone(), v1.clone(), v2.clone(), v10.clone()], "by name, then version");
    assert_eq!(store.workflows(None).await.unwrap(), vec![other, v1, v2, v10, elsewhere]);
}

#[tokio::test]
async fn a_stored_version_or_journal_seq_rejects_the_whole_batch() {
    let store = MemoryStore::new();
    let (v1, r) = (workflow("a", "triage", 1), run("a", "triage", RunState::Running, None));
    store.write_batch(&[put_workflow(&v1), append(entry(r.id, 1))]).await.unwrap();

    let innocent = run("a", "triage", RunState::Running, None);
    let mut changed = v1.clone();
    changed.def.description = Some("changed".into());
    assert!(rejected(store.write_batch(&[put_run(&innocent), put_workflow(&changed)]).await));
    let twice = [put_workflow(&workflow("a", "triage", 2)), put_workflow(&workflow("a", "triage", 2))];
    assert!(rejected(store.write_batch(&twice).await), "twice in one batch");
    assert!(rejected(store.write_batch(&[put_run(&innocent), append(entry(r.id, 1))]).await));
    let twice = [append(entry(r.id, 2)), append(entry(r.id, 2))];
    assert!(rejected(store.write_batch(&twice).await), "twice in one batch");

    assert_eq!(store.run(innocent.id).await.unwrap(), None, "nothing of a rejected batch lands");
    assert_eq!(store.workflow("a", "triage", None).await.unwrap(), Some(v1), "unchanged");
    assert_eq!(store.journal(r.id).await.unwrap(), vec![entry(r.id, 1)]);
}

#[tokio::test]
async fn runs_are_replaced_found_by_key_and_journaled_in_seq_order() {
    let store = MemoryStore::new();
    let mut first = run("a", "triage", RunState::Running, Some(Uuid::now_v7()));
    first.idempotency_key = Some("order-1".into());
    first.parent = Some(ParentStep { run: RunId::new(), step: "review".into() });
    let mut done = first.clone();
    (done.state, done.output, done.updated_at) = (RunState::Succeeded, Some(json!({"ok": true})), at(9));
    store.write_batch(&[put_run(&first), put_run(&done)]).await.unwrap();
    assert_eq!(store.run(first.id).await.unwrap(), Some(done.clone()), "the last put wins");
    assert_eq!(store.run_by_idempotency_key("a", "order-1").await.unwrap(), Some(done));
    assert_eq!(store.run_by_idempotency_key("b", "order-1").await.unwrap(), None);
    assert_eq!(store.run(RunId::new()).await.unwrap(), None);

    let other = RunId::new();
    store
        .write_batch(&[append(entry(first.id, 3)), append(entry(other, 1)), append(entry(first.id, 1))])
        .await
        .unwrap();
    store.write_batch(&[append(entry(first.id, 2))]).await.unwrap();
    let seqs: Vec<u64> = store.journal(first.id).await.unwrap().iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert_eq!(store.journal(RunId::new()).await.unwrap(), vec![]);
}

#[tokio::test]
async fn runs_are_listed_newest_first_by_filter_and_by_cursor() {
    let store = MemoryStore::new();
    let made = [
        run("a", "triage", RunState::Running, None),
        run("a", "deploy", RunState::Succeeded, None),
        run("a", "triage", RunState::Succeeded, None),
        run("b", "triage", RunState::Running, None),
    ];
    store.write_batch(&made.iter().map(put_run).collect::<Vec<_>>()).await.unwrap();
    let list = |query: RunQuery| {
        let (store, made) = (&store, &made);
        async move {
            let found = store.list_runs(&query).await.unwrap();
            found.iter().map(|r| made.iter().position(|m| m.id == r.id).unwrap()).collect::<Vec<_>>()
        }
    };
    assert_eq!(list(RunQuery::default()).await, [3, 2, 1, 0]);
    let in_a = RunQuery { namespace: Some("a".into()), ..RunQuery::default() };
    assert_eq!(list(in_a.clone()).await, [2, 1, 0]);
    assert_eq!(list(RunQuery { workflow: Some("triage".into()), ..in_a.clone() }).await, [2, 0]);
    assert_eq!(list(RunQuery { state: Some(RunState::Succeeded), ..in_a.clone() }).await, [2, 1]);
    assert_eq!(list(RunQuery { before: Some(made[2].id), limit: 1, ..in_a.clone() }).await, [1]);
    assert_eq!(list(RunQuery { submitter: Some("key:alice".into()), ..in_a.clone() }).await, [2, 1, 0]);
    assert_eq!(list(RunQuery { submitter: Some("key:bob".into()), ..in_a }).await, Vec::<usize>::new());
}

#[tokio::test]
async fn orphan_runs_are_claimed_like_tasks() {
    let store = MemoryStore::new();
    let lease = |node: &str, until| NodeStart {
        id: Uuid::now_v7(),
        node: node.into(),
        started_at: at(0),
        lease_until: until,
    };
    let (earlier, live, expired, me) =
        (lease("n1", at(60)), lease("n2", at(60)), lease("n3", at(1)), lease("n1", at(60)));
    for s in [&earlier, &live, &expired, &me] {
        store.open_lease(s).await.unwrap();
    }
    let rowless = Some(Uuid::now_v7());
    let orphans = [
        run("a", "w", RunState::Running, Some(earlier.id)),
        run("a", "w", RunState::WaitingApproval, Some(expired.id)),
        run("a", "w", RunState::Running, rowless),
    ];
    let kept = [
        run("a", "w", RunState::Succeeded, Some(earlier.id)),
        run("a", "w", RunState::Running, Some(live.id)),
        run("a", "w", RunState::Running, Some(me.id)),
        run("a", "w", RunState::Running, None),
    ];
    store.write_batch(&orphans.iter().chain(&kept).map(put_run).collect::<Vec<_>>()).await.unwrap();
    let ids = |runs: &[RunRecord]| runs.iter().map(|r| r.id).collect::<Vec<_>>();
    let first = store.claim_orphan_runs(&me, at(30), 2).await.unwrap();
    assert_eq!(ids(&first), ids(&orphans[..2]), "oldest first, at most the limit");
    assert!(first.iter().all(|r| r.owner == Some(me.id)));
    assert_eq!(ids(&store.claim_orphan_runs(&me, at(30), 10).await.unwrap()), ids(&orphans[2..]));
    assert_eq!(store.claim_orphan_runs(&me, at(30), 10).await.unwrap(), vec![], "nothing twice");
    for r in &kept {
        assert_eq!(store.run(r.id).await.unwrap().unwrap().owner, r.owner, "{:?} is not claimed", r.state);
    }
    let late = store.claim_orphan_runs(&me, at(61), 10).await.unwrap();
    assert_eq!(ids(&late), vec![kept[1].id], "n2's lease has ended");
}

#[tokio::test]
async fn prune_takes_finished_runs_with_their_journals() {
    let store = MemoryStore::new();
    let old = |state| {
        let mut r = run("a", "w", state, None);
        r.updated_at = at(10);
        r
    };
    let done = [old(RunState::Succeeded), old(RunState::Failed), old(RunState::Cancelled)];
    let (waiting, mut recent) = (old(RunState::WaitingApproval), old(RunState::Failed));
    recent.updated_at = at(12);
    let all: Vec<&RunRecord> = done.iter().chain([&waiting, &recent]).collect();
    let mut writes: Vec<Write> = all.iter().map(|r| put_run(r)).collect();
    writes.extend(all.iter().flat_map(|r| [append(entry(r.id, 1)), append(entry(r.id, 2))]));
    store.write_batch(&writes).await.unwrap();

    assert_eq!(store.prune(at(11), 2).await.unwrap(), 2);
    assert_eq!(store.prune(at(11), 2).await.unwrap(), 1);
    assert_eq!(store.prune(at(11), 2).await.unwrap(), 0);
    for r in &done {
        assert_eq!(store.run(r.id).await.unwrap(), None);
        assert_eq!(store.journal(r.id).await.unwrap(), vec![], "the journal goes with its run");
    }
    for r in [&waiting, &recent] {
        assert!(store.run(r.id).await.unwrap().is_some(), "{:?} is kept", r.state);
        assert_eq!(store.journal(r.id).await.unwrap().len(), 2);
    }
}

#[tokio::test]
async fn task_keys_are_found_by_index_and_forgotten_with_their_task() {
    use crate::domain::{TaskRecord, TaskRequest};
    let store = MemoryStore::with_retention(2);
    let keyed = |key: &str| {
        let request = TaskRequest::to_agent("a", serde_json::Value::Null).idempotency_key(key);
        TaskRecord::queued(&request, 1, None, at(1))
    };
    let (first, second, third) = (keyed("k1"), keyed("k2"), keyed("k3"));
    for task in [&first, &second] {
        store.write_batch(&[Write::PutTask(Arc::new(task.clone()))]).await.unwrap();
    }
    assert_eq!(store.task_by_idempotency_key("default", "k1").await.unwrap(), Some(first.clone()));
    assert_eq!(store.task_by_idempotency_key("other", "k1").await.unwrap(), None);
    // A third task evicts the oldest: its key goes with it.
    store.write_batch(&[Write::PutTask(Arc::new(third.clone()))]).await.unwrap();
    assert_eq!(store.task_by_idempotency_key("default", "k1").await.unwrap(), None);
    assert_eq!(store.task_by_idempotency_key("default", "k3").await.unwrap(), Some(third));
}

#[tokio::test]
async fn finished_runs_beyond_the_retention_go_oldest_first_with_their_journals() {
    let store = MemoryStore::with_retention(2);
    let (old, live, newer, newest) = (
        run("a", "w", RunState::Succeeded, None),
        run("a", "w", RunState::Running, None),
        run("a", "w", RunState::Failed, None),
        run("a", "w", RunState::Succeeded, None),
    );
    store.write_batch(&[put_run(&old), append(entry(old.id, 1))]).await.unwrap();
    store.write_batch(&[put_run(&live), put_run(&newer)]).await.unwrap();
    assert_eq!(store.run(old.id).await.unwrap(), None, "the oldest finished run went");
    assert!(store.journal(old.id).await.unwrap().is_empty(), "with its journal");
    store.write_batch(&[put_run(&newest)]).await.unwrap();
    assert!(store.run(live.id).await.unwrap().is_some(), "an unfinished run stays, holding back the rest");
    assert!(store.run(newer.id).await.unwrap().is_some());
}

#[tokio::test]
async fn usage_beyond_the_retention_goes_oldest_first_and_its_id_is_forgotten() {
    use crate::domain::model::UsageRecord;
    let usage = |secs: u64, namespace: &str| UsageRecord {
        id: Uuid::now_v7(),
        at_ms: at(secs).duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis() as i64,
        namespace: namespace.into(),
        task: None,
        run: None,
        agent: None,
        provider: "local".into(),
        model: "small".into(),
        prompt_tokens: 1,
        completion_tokens: 1,
        cost: 1.0,
        latency_ms: 1,
        first_token_ms: None,
    };
    let store = MemoryStore::with_retention(2);
    // Written newest first: the one that ended first goes, whatever the order of writes.
    let (newest, middle, oldest) = (usage(3, "c"), usage(2, "b"), usage(1, "a"));
    let writes: Vec<Write> =
        [&newest, &middle, &oldest].iter().map(|u| Write::PutUsage(Box::new((*u).clone()))).collect();
    store.write_batch(&writes).await.unwrap();
    let namespaces = |totals: Vec<UsageTotal>| totals.into_iter().map(|t| t.namespace).collect::<Vec<_>>();
    assert_eq!(namespaces(store.usage_totals(at(0)).await.unwrap()), ["b", "c"]);
    // The dropped record's id is no longer held, so the table does not grow with ids.
    assert_eq!(store.inner.lock().usage.len(), 2);
}
