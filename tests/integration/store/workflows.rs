//! Workflow definitions, runs and run journals through the `Store` port, on every backend
//! and on the in-memory store: round trips, versions, all-or-nothing batches, listings,
//! idempotency keys, claims of orphaned runs, and pruning.

use std::time::{Duration, SystemTime};

use mark1_actors::domain::workflow::{
    JournalEntry, JournalKind, ParentStep, RunId, RunRecord, RunState, WorkflowDef, WorkflowRecord,
};
use mark1_actors::domain::{ApiKeyRecord, Role, TaskState};
use mark1_actors::ports::{MemoryStore, NodeStart, RunQuery, Store, StoreError, Write};
use serde_json::json;
use uuid::Uuid;

use super::backends::{for_each_backend, Fresh};
use super::{now, put, start, task};

/// A definition that uses every kind of step and option, so a round trip checks them all.
fn definition(name: &str, version: u32) -> WorkflowDef {
    serde_json::from_value(json!({
        "name": name,
        "version": version,
        "description": "triage \"quoted\" é",
        "input_schema": {"type": "object", "required": ["repo"]},
        "concurrency": 4,
        "steps": [
            {"id": "scan", "agent": "scanner", "input": {"path": "{{ input.repo }}"}},
            {
                "id": "review",
                "capability": "code.review",
                "depends_on": ["scan"],
                "when": "{{ steps.scan.output.llm_calls | length > 0 }}",
                "for_each": "{{ steps.scan.output.files }}",
                "concurrency": 2,
                "input": {"file": "{{ item }}", "n": [1, 2.5, null, true]},
                "retry": {"attempts": 3, "backoff": "2s"},
                "timeout": "1m 30s",
                "on_error": {"goto": "report"}
            },
            {"id": "nested", "workflow": {"name": "deploy", "version": 2}, "on_error": "continue"},
            {
                "id": "approve",
                "approval": {"timeout": "24h", "default": "reject", "message": "ship it?"},
                "depends_on": ["review"]
            },
            {"id": "report", "agent": "writer"}
        ],
        "output": {"reviews": "{{ steps.review.output }}"}
    }))
    .expect("the definition parses")
}

fn workflow(namespace: &str, name: &str, version: u32) -> WorkflowRecord {
    WorkflowRecord {
        namespace: namespace.into(),
        name: name.into(),
        version,
        def: definition(name, version),
        created_at: now(),
    }
}

/// A run with every field set.
fn run(namespace: &str, workflow: &str, state: RunState, updated_at: SystemTime) -> RunRecord {
    RunRecord {
        id: RunId::new(),
        namespace: namespace.into(),
        workflow: workflow.into(),
        version: 3,
        state,
        input: json!({"repo": "/src/hé", "big": u64::MAX, "n": [1, 2.5, null]}),
        output: state.is_final().then(|| json!({"reviews": []})),
        error: (state == RunState::Failed).then(|| "step review failed".into()),
        idempotency_key: None,
        submitter: Some("key:0123456789ab".into()),
        durable: true,
        parent: Some(ParentStep { run: RunId::new(), step: "nested".into() }),
        owner: Some(Uuid::now_v7()),
        created_at: updated_at - Duration::from_secs(1),
        updated_at,
    }
}

fn entry(run: RunId, seq: u64, kind: JournalKind) -> JournalEntry {
    let step = !matches!(kind, JournalKind::RunStarted | JournalKind::RunSucceeded);
    JournalEntry {
        run,
        seq,
        step: step.then(|| "review".into()),
        attempt: step.then_some(2),
        kind,
        data: json!({"items": ["a.py", "b.py"], "index": seq, "nested": {"ok": true}}),
        recorded_at: now(),
    }
}

fn put_workflow(w: &WorkflowRecord) -> Write {
    Write::PutWorkflow(Box::new(w.clone()))
}

fn put_run(r: &RunRecord) -> Write {
    Write::PutRun(Box::new(r.clone()))
}

fn append(e: &JournalEntry) -> Write {
    Write::AppendJournal(Box::new(e.clone()))
}

fn ids(runs: &[RunRecord]) -> Vec<RunId> {
    runs.iter().map(|r| r.id).collect()
}

async fn round_trip_suite(store: &dyn Store) {
    let (w, r) = (workflow("team-a", "triage", 3), run("team-a", "triage", RunState::Running, now()));
    let mut bare = run("team-a", "triage", RunState::Failed, now());
    (bare.parent, bare.owner, bare.submitter, bare.durable) = (None, None, None, false);
    let kinds = [JournalKind::RunStarted, JournalKind::StepRunning, JournalKind::StepWaitingApproval];
    let journal: Vec<JournalEntry> = (1..=3).map(|seq| entry(r.id, seq, kinds[seq as usize - 1])).collect();
    let mut writes = vec![put_workflow(&w), put_run(&r), put_run(&bare)];
    writes.extend(journal.iter().rev().map(append));
    store.write_batch(&writes).await.unwrap();
    assert_eq!(store.workflow("team-a", "triage", Some(3)).await.unwrap(), Some(w));
    assert_eq!(store.run(r.id).await.unwrap(), Some(r.clone()), "every field comes back");
    assert_eq!(store.run(bare.id).await.unwrap(), Some(bare.clone()), "and every absent one");
    assert_eq!(store.journal(r.id).await.unwrap(), journal, "by seq");
    assert_eq!(store.journal(bare.id).await.unwrap(), vec![]);
    assert_eq!(store.run(RunId::new()).await.unwrap(), None);

    // Puts replace the run; the last of a batch wins.
    let mut waiting = r.clone();
    (waiting.state, waiting.updated_at) = (RunState::WaitingApproval, now());
    let mut done = waiting.clone();
    (done.state, done.output, done.owner) = (RunState::Succeeded, Some(json!({"ok": 1})), None);
    store.write_batch(&[put_run(&waiting), put_run(&done)]).await.unwrap();
    assert_eq!(store.run(r.id).await.unwrap(), Some(done));
    store.write_batch(&[put_run(&waiting)]).await.unwrap();
    assert_eq!(store.run(r.id).await.unwrap(), Some(waiting), "a later batch replaces the row");
}

#[tokio::test]
async fn workflows_runs_and_journal_entries_round_trip() {
    round_trip_suite(&MemoryStore::new()).await;
    for_each_backend(|Fresh { store, .. }| async move { round_trip_suite(store.as_ref()).await }).await;
}

async fn versions_suite(store: &dyn Store) {
    // Version 10 is newer than 2: versions compare as numbers.
    let versions = [1, 10, 2].map(|v| workflow("team-a", "triage", v));
    let (deploy, elsewhere) = (workflow("team-a", "deploy", 1), workflow("team-b", "triage", 7));
    store.write_batch(&versions.iter().map(put_workflow).collect::<Vec<_>>()).await.unwrap();
    store.write_batch(&[put_workflow(&elsewhere), put_workflow(&deploy)]).await.unwrap();
    let [v1, v10, v2] = versions;
    assert_eq!(store.workflow("team-a", "triage", None).await.unwrap(), Some(v10.clone()), "the newest");
    assert_eq!(store.workflow("team-a", "triage", Some(2)).await.unwrap(), Some(v2.clone()));
    assert_eq!(store.workflow("team-a", "triage", Some(3)).await.unwrap(), None);
    assert_eq!(store.workflow("team-b", "triage", None).await.unwrap(), Some(elsewhere.clone()));
    assert_eq!(store.workflow("team-c", "triage", None).await.unwrap(), None);
    assert_eq!(store.workflow("team-a", "nothing", None).await.unwrap(), None);
    let in_a = vec![deploy, v1.clone(), v2, v10];
    assert_eq!(store.workflows(Some("team-a")).await.unwrap(), in_a, "by name, then version");
    assert_eq!(store.workflows(None).await.unwrap(), [in_a, vec![elsewhere]].concat(), "then namespace");
    assert_eq!(store.workflows(Some("team-c")).await.unwrap(), vec![]);

    // A stored version never changes: a put of it rejects its whole batch.
    let r = run("team-a", "triage", RunState::Running, now());
    let first = entry(r.id, 1, JournalKind::RunStarted);
    store.write_batch(&[put_run(&r), append(&first)]).await.unwrap();
    let innocent = run("team-a", "triage", RunState::Running, now());
    let t = task("team-a", TaskState::Queued, now());
    let mut changed = v1.clone();
    changed.def.description = Some("changed".into());
    let batches = [
        vec![
            put(&t),
            put_run(&innocent),
            append(&entry(innocent.id, 1, JournalKind::RunStarted)),
            put_workflow(&changed),
        ],
        vec![put_workflow(&workflow("team-a", "new", 1)), put_workflow(&workflow("team-a", "new", 1))],
        vec![put(&t), put_run(&innocent), append(&entry(r.id, 1, JournalKind::RunSucceeded))],
        vec![
            append(&entry(r.id, 2, JournalKind::StepRunning)),
            append(&entry(r.id, 2, JournalKind::StepFailed)),
        ],
    ];
    for (n, batch) in batches.iter().enumerate() {
        let refused = store.write_batch(batch).await;
        assert!(matches!(refused, Err(StoreError::Rejected(_))), "batch {n}: {refused:?}");
    }
    assert_eq!(store.task(t.id).await.unwrap(), None, "the batch is one transaction");
    assert_eq!(store.run(innocent.id).await.unwrap(), None);
    assert_eq!(store.journal(innocent.id).await.unwrap(), vec![]);
    assert_eq!(store.workflow("team-a", "new", None).await.unwrap(), None);
    assert_eq!(store.workflow("team-a", "triage", Some(1)).await.unwrap(), Some(v1), "unchanged");
    assert_eq!(store.journal(r.id).await.unwrap(), vec![first], "unchanged");
}

#[tokio::test]
async fn workflow_versions_and_journal_seqs_are_written_once() {
    versions_suite(&MemoryStore::new()).await;
    for_each_backend(|Fresh { store, .. }| async move { versions_suite(store.as_ref()).await }).await;
}

async fn listing_suite(store: &dyn Store) {
    // Oldest first: namespaces, workflows and states mixed.
    let mut made: Vec<RunRecord> = [
        ("team-a", "triage", RunState::Running),
        ("team-a", "deploy", RunState::Succeeded),
        ("team-a", "triage", RunState::WaitingApproval),
        ("team-a", "triage", RunState::Succeeded),
        ("team-b", "triage", RunState::Running),
    ]
    .into_iter()
    .map(|(namespace, workflow, state)| run(namespace, workflow, state, now()))
    .collect();
    made[2].submitter = Some("key:other".into());
    store.write_batch(&made.iter().map(put_run).collect::<Vec<_>>()).await.unwrap();
    let position = |found: Vec<RunRecord>| {
        found.iter().map(|r| made.iter().position(|m| m.id == r.id).unwrap()).collect::<Vec<_>>()
    };
    let list = |query: RunQuery| async move { position(store.list_runs(&query).await.unwrap()) };
    assert_eq!(list(RunQuery::default()).await, [4, 3, 2, 1, 0]);
    let in_a = RunQuery { namespace: Some("team-a".into()), ..RunQuery::default() };
    assert_eq!(list(in_a.clone()).await, [3, 2, 1, 0]);
    assert_eq!(list(RunQuery { workflow: Some("triage".into()), ..in_a.clone() }).await, [3, 2, 0]);
    assert_eq!(list(RunQuery { state: Some(RunState::Succeeded), ..RunQuery::default() }).await, [3, 1]);
    assert_eq!(list(RunQuery { state: Some(RunState::WaitingApproval), ..in_a.clone() }).await, [2]);
    let theirs = RunQuery { submitter: Some("key:other".into()), ..in_a.clone() };
    assert_eq!(list(theirs).await, [2]);
    let everything = RunQuery {
        namespace: Some("team-a".into()),
        state: Some(RunState::Running),
        workflow: Some("triage".into()),
        submitter: Some("key:0123456789ab".into()),
        before: Some(made[2].id),
        limit: 10,
    };
    assert_eq!(list(everything).await, [0]);
    assert_eq!(list(RunQuery { namespace: Some("team-c".into()), ..in_a }).await, Vec::<usize>::new());

    // Pages of two, each after the last id of the page before.
    let mut pages = Vec::new();
    let mut before = None;
    loop {
        let page = store.list_runs(&RunQuery { before, limit: 2, ..RunQuery::default() }).await.unwrap();
        let Some(last) = page.last() else { break };
        before = Some(last.id);
        pages.push(position(page));
    }
    assert_eq!(pages, [vec![4, 3], vec![2, 1], vec![0]]);
}

#[tokio::test]
async fn runs_are_listed_newest_first_by_filter_and_by_cursor() {
    listing_suite(&MemoryStore::new()).await;
    for_each_backend(|Fresh { store, .. }| async move { listing_suite(store.as_ref()).await }).await;
}

#[tokio::test]
async fn runs_are_found_by_idempotency_key_which_is_unique_per_namespace() {
    for_each_backend(|Fresh { store, .. }| async move {
        let mut keyed = run("team-a", "triage", RunState::Running, now());
        keyed.idempotency_key = Some("order-1".into());
        let mut elsewhere = run("team-b", "triage", RunState::Running, now());
        elsewhere.idempotency_key = Some("order-1".into());
        store.write_batch(&[put_run(&keyed), put_run(&elsewhere)]).await.unwrap();
        assert_eq!(store.run_by_idempotency_key("team-a", "order-1").await.unwrap(), Some(keyed.clone()));
        assert_eq!(store.run_by_idempotency_key("team-b", "order-1").await.unwrap(), Some(elsewhere));
        assert_eq!(store.run_by_idempotency_key("team-a", "order-2").await.unwrap(), None);
        assert_eq!(store.run_by_idempotency_key("team-c", "order-1").await.unwrap(), None);

        let mut duplicate = run("team-a", "deploy", RunState::Running, now());
        duplicate.idempotency_key = Some("order-1".into());
        let refused = store.write_batch(&[put_run(&duplicate)]).await;
        assert!(matches!(refused, Err(StoreError::Rejected(_))), "{refused:?}");
        assert_eq!(store.run_by_idempotency_key("team-a", "order-1").await.unwrap(), Some(keyed));
    })
    .await;
    let memory = MemoryStore::new();
    let mut keyed = run("team-a", "triage", RunState::Running, now());
    keyed.idempotency_key = Some("order-1".into());
    memory.write_batch(&[put_run(&keyed)]).await.unwrap();
    assert_eq!(memory.run_by_idempotency_key("team-a", "order-1").await.unwrap(), Some(keyed));
}

async fn claim_suite(store: &dyn Store) {
    let t0 = now();
    let later = t0 + Duration::from_secs(60);
    let (earlier_start, other_live) = (start("n1", later), start("n2", later));
    let (other_expired, me) = (start("n3", t0 - Duration::from_secs(1)), start("n1", later));
    for s in [&earlier_start, &other_live, &other_expired, &me] {
        store.open_lease(s).await.unwrap();
    }
    let owned = |owner: Option<Uuid>, state: RunState| {
        let mut r = run("default", "triage", state, t0);
        r.owner = owner;
        r
    };
    let orphans = [
        owned(Some(earlier_start.id), RunState::Running),
        owned(Some(other_expired.id), RunState::WaitingApproval),
        owned(Some(earlier_start.id), RunState::WaitingApproval),
        // A start with no lease row (never recorded, or removed): nobody holds it.
        owned(Some(Uuid::now_v7()), RunState::Running),
        owned(Some(other_expired.id), RunState::Running),
    ];
    let kept = [
        owned(Some(earlier_start.id), RunState::Succeeded),
        owned(Some(other_expired.id), RunState::Cancelled),
        owned(Some(other_live.id), RunState::Running),
        owned(Some(me.id), RunState::Running),
        owned(None, RunState::Running),
    ];
    // A task orphan too: claiming runs leaves it to `claim_orphans`.
    let mut orphan_task = task("default", TaskState::Running, t0);
    orphan_task.owner = Some(other_expired.id);
    let mut writes: Vec<Write> = orphans.iter().chain(&kept).map(put_run).collect();
    writes.push(put(&orphan_task));
    store.write_batch(&writes).await.unwrap();

    let first = store.claim_orphan_runs(&me, t0, 3).await.unwrap();
    assert_eq!(ids(&first), ids(&orphans[..3]), "oldest first, at most the limit");
    assert!(first.iter().all(|r| r.owner == Some(me.id)), "returned with the new owner");
    let rest = store.claim_orphan_runs(&me, t0, 3).await.unwrap();
    assert_eq!(ids(&rest), ids(&orphans[3..]), "the rest on the next call");
    assert_eq!(store.claim_orphan_runs(&me, t0, 3).await.unwrap(), vec![], "nothing twice");
    assert_eq!(store.claim_orphan_runs(&me, t0, 0).await.unwrap(), vec![]);
    for r in &orphans {
        let mut claimed = r.clone();
        claimed.owner = Some(me.id);
        assert_eq!(store.run(r.id).await.unwrap(), Some(claimed), "only the owner changes");
    }
    for r in &kept {
        assert_eq!(store.run(r.id).await.unwrap().unwrap().owner, r.owner, "{:?} is not claimed", r.state);
    }
    assert_eq!(store.task(orphan_task.id).await.unwrap().unwrap().owner, orphan_task.owner);

    // Once n2's lease has ended, its running run is claimable too.
    let claimed = store.claim_orphan_runs(&me, later + Duration::from_secs(1), 10).await.unwrap();
    assert_eq!(ids(&claimed), vec![kept[2].id]);
}

#[tokio::test]
async fn orphan_runs_are_claimed_oldest_first_with_the_leases_of_tasks() {
    claim_suite(&MemoryStore::new()).await;
    for_each_backend(|Fresh { store, .. }| async move { claim_suite(store.as_ref()).await }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_claiming_runs_at_once_never_take_the_same_run() {
    for_each_backend(|Fresh { store, .. }| async move {
        let t0 = now();
        let gone = start("gone", t0 - Duration::from_secs(1));
        let (a, b) = (start("a", t0 + Duration::from_secs(60)), start("b", t0 + Duration::from_secs(60)));
        for s in [&gone, &a, &b] {
            store.open_lease(s).await.unwrap();
        }
        let orphans: Vec<RunRecord> = (0..200)
            .map(|_| {
                let mut r = run("default", "triage", RunState::Running, t0);
                r.owner = Some(gone.id);
                r
            })
            .collect();
        store.write_batch(&orphans.iter().map(put_run).collect::<Vec<_>>()).await.unwrap();
        let claimer = |me: NodeStart| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let claimed = store.claim_orphan_runs(&me, t0, 10).await.unwrap();
                    if claimed.is_empty() {
                        return mine;
                    }
                    mine.extend(claimed.into_iter().map(|r| r.id));
                }
            })
        };
        let (by_a, by_b) = tokio::join!(claimer(a.clone()), claimer(b.clone()));
        let (by_a, by_b) = (by_a.unwrap(), by_b.unwrap());
        let mut all: Vec<RunId> = by_a.iter().chain(&by_b).copied().collect();
        all.sort();
        let before = all.len();
        all.dedup();
        assert_eq!(before, all.len(), "a run was claimed twice");
        assert_eq!(all, ids(&orphans), "every orphan was claimed");
        for id in &by_b {
            assert_eq!(store.run(*id).await.unwrap().unwrap().owner, Some(b.id));
        }
    })
    .await;
}

async fn prune_suite(store: &dyn Store) {
    let cutoff = now();
    let old = cutoff - Duration::from_secs(3600);
    let done: Vec<RunRecord> = [RunState::Succeeded, RunState::Failed, RunState::Cancelled]
        .into_iter()
        .map(|state| run("default", "triage", state, old))
        .collect();
    let unfinished = [
        run("default", "triage", RunState::Running, old),
        run("default", "triage", RunState::WaitingApproval, old),
    ];
    let recent = run("default", "triage", RunState::Succeeded, cutoff + Duration::from_secs(1));
    let all: Vec<&RunRecord> = done.iter().chain(&unfinished).chain([&recent]).collect();
    let mut writes: Vec<Write> = all.iter().map(|r| put_run(r)).collect();
    for r in &all {
        writes.extend((1..=3).map(|seq| append(&entry(r.id, seq, JournalKind::StepRunning))));
    }
    writes.push(put(&task("default", TaskState::Succeeded, old)));
    store.write_batch(&writes).await.unwrap();

    assert_eq!(store.prune(cutoff, 2).await.unwrap(), 3, "one task and two runs");
    assert_eq!(store.prune(cutoff, 2).await.unwrap(), 1, "the last old finished run");
    assert_eq!(store.prune(cutoff, 2).await.unwrap(), 0);
    for r in &done {
        assert_eq!(store.run(r.id).await.unwrap(), None);
        assert_eq!(store.journal(r.id).await.unwrap(), vec![], "the journal goes with its run");
    }
    for r in unfinished.iter().chain([&recent]) {
        assert_eq!(store.run(r.id).await.unwrap().as_ref(), Some(r), "{:?} is kept", r.state);
        assert_eq!(store.journal(r.id).await.unwrap().len(), 3);
    }
    let left = store.list_runs(&RunQuery::default()).await.unwrap();
    assert_eq!(left.len(), 3);
}

#[tokio::test]
async fn prune_deletes_old_finished_runs_with_their_journals() {
    prune_suite(&MemoryStore::new()).await;
    for_each_backend(|Fresh { store, .. }| async move { prune_suite(store.as_ref()).await }).await;
}

#[tokio::test]
async fn a_large_batch_of_runs_journals_and_keys_is_one_transaction() {
    for_each_backend(|Fresh { store, .. }| async move {
        // More journal entries than one SQLite statement holds, and an API key besides:
        // PostgreSQL's statement with every group of parts.
        let runs: Vec<RunRecord> =
            (0..300).map(|_| run("default", "triage", RunState::Running, now())).collect();
        let key = ApiKeyRecord {
            id: "0123456789ab".into(),
            sha256: [7; 32],
            name: "ci".into(),
            role: Role::Operator,
            namespace: Some("default".into()),
            created_by: None,
            created_at: now(),
            expires_at: None,
            revoked_at: None,
        };
        let mut writes: Vec<Write> = runs.iter().map(put_run).collect();
        for r in &runs {
            writes.extend((1..=3).map(|seq| append(&entry(r.id, seq, JournalKind::StepRunning))));
        }
        writes.push(put_workflow(&workflow("default", "triage", 3)));
        writes.push(Write::PutApiKey(Box::new(key.clone())));
        store.write_batch(&writes).await.unwrap();
        assert_eq!(
            store.list_runs(&RunQuery { limit: 1000, ..RunQuery::default() }).await.unwrap().len(),
            300
        );
        assert_eq!(store.journal(runs[299].id).await.unwrap().len(), 3);
        assert_eq!(store.api_key(&key.id).await.unwrap(), Some(key));

        // A duplicate entry at the end undoes the rest.
        let more: Vec<RunRecord> =
            (0..300).map(|_| run("default", "triage", RunState::Running, now())).collect();
        let mut writes: Vec<Write> = more.iter().map(put_run).collect();
        writes.extend(more.iter().map(|r| append(&entry(r.id, 1, JournalKind::RunStarted))));
        writes.push(append(&entry(runs[0].id, 3, JournalKind::StepFailed)));
        assert!(matches!(store.write_batch(&writes).await, Err(StoreError::Rejected(_))));
        assert_eq!(store.run(more[0].id).await.unwrap(), None);
        assert_eq!(store.journal(more[299].id).await.unwrap(), vec![]);
    })
    .await;
}
