//! The `Store` port's behaviour, one suite run against every backend (DESIGN §8, §12):
//! SQLite always, PostgreSQL when `MARK1_TEST_POSTGRES_URL` is set.

mod access;
pub mod backends;
mod scans;
mod usage;
mod workflows;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mark1::store::{newest_schema_version, open, Backend, StoreOpenError, StoreOptions};
use mark1::{AgentSpec, ProcessSpec, TaskId, TaskRecord, TaskState};
use mark1_actors::domain::{Event, EventKind, Target};
use mark1_actors::ports::{AttemptRecord, NodeStart, StoreError, Write};
use serde_json::json;
use sqlx::Connection;
use uuid::Uuid;

use backends::{for_each_backend, Fresh};

/// Now, to the microsecond: what a store keeps of a time.
fn now() -> SystemTime {
    let us = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as u64;
    UNIX_EPOCH + Duration::from_micros(us)
}

/// A task with every field set, so a round trip checks every column.
fn task(namespace: &str, state: TaskState, updated_at: SystemTime) -> TaskRecord {
    TaskRecord {
        id: TaskId::new(),
        namespace: namespace.into(),
        target: Target::Capabilities(vec!["text.echo".into(), "text.stats".into()]),
        agent: Some("echo".into()),
        state,
        input: Arc::new(json!({"text": "hé", "n": [1, 2.5, null, true], "big": u64::MAX})),
        output: state.is_final().then(|| json!({"ok": true}).into()),
        error: (state == TaskState::Failed).then(|| "it broke".into()),
        priority: 7,
        attempt: 2,
        max_attempts: 3,
        idempotency_key: None,
        durable: true,
        submitter: Some("alice".into()),
        timeout: Some(Duration::from_millis(1500)),
        traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
        owner: Some(Uuid::now_v7()),
        created_at: updated_at - Duration::from_secs(1),
        updated_at,
        deadline: Some(updated_at + Duration::from_secs(3600)),
    }
}

fn put(task: &TaskRecord) -> Write {
    Write::PutTask(std::sync::Arc::new(task.clone()))
}

fn event(seq: u64, time: SystemTime) -> Event {
    Event {
        seq,
        time,
        kind: EventKind::TaskSucceeded,
        namespace: "default".into(),
        subject: format!("task-{seq}").into(),
        data: json!({"seq": seq, "nested": {"a": [1, 2]}}).into(),
    }
}

fn append(event: Event) -> Write {
    Write::AppendEvent(Arc::new(event))
}

fn start(node: &str, lease_until: SystemTime) -> NodeStart {
    NodeStart { id: Uuid::now_v7(), node: node.into(), started_at: now(), lease_until }
}

#[tokio::test]
async fn puts_are_upserts_and_the_last_put_of_a_batch_wins() {
    for_each_backend(|Fresh { store, .. }| async move {
        let first = task("default", TaskState::Queued, now());
        let mut running = first.clone();
        running.state = TaskState::Running;
        running.attempt = 3;
        running.owner = None;
        running.deadline = None;
        running.timeout = None;
        let other = task("default", TaskState::Queued, now());
        store.write_batch(&[put(&first), put(&other), put(&running)]).await.unwrap();
        assert_eq!(store.task(first.id).await.unwrap(), Some(running.clone()), "last put wins");
        assert_eq!(store.task(other.id).await.unwrap(), Some(other));

        let mut done = running.clone();
        done.state = TaskState::Succeeded;
        done.output = Some(json!({"answer": 42}).into());
        done.updated_at = now();
        store.write_batch(&[put(&done)]).await.unwrap();
        assert_eq!(store.task(first.id).await.unwrap(), Some(done), "a later batch replaces the row");
        assert_eq!(store.task(TaskId::new()).await.unwrap(), None);
    })
    .await;
}

#[tokio::test]
async fn idempotency_keys_are_found_and_unique_per_namespace() {
    for_each_backend(|Fresh { store, .. }| async move {
        let mut keyed = task("team-a", TaskState::Queued, now());
        keyed.idempotency_key = Some("order-1".into());
        let mut elsewhere = task("team-b", TaskState::Queued, now());
        elsewhere.idempotency_key = Some("order-1".into());
        store.write_batch(&[put(&keyed), put(&elsewhere)]).await.unwrap();
        assert_eq!(store.task_by_idempotency_key("team-a", "order-1").await.unwrap(), Some(keyed.clone()));
        assert_eq!(store.task_by_idempotency_key("team-b", "order-1").await.unwrap(), Some(elsewhere));
        assert_eq!(store.task_by_idempotency_key("team-a", "order-2").await.unwrap(), None);
        assert_eq!(store.task_by_idempotency_key("team-c", "order-1").await.unwrap(), None);

        // Another task with the same key: the whole batch is refused, nothing of it lands.
        let mut duplicate = task("team-a", TaskState::Queued, now());
        duplicate.idempotency_key = Some("order-1".into());
        let innocent = task("team-a", TaskState::Queued, now());
        let result = store.write_batch(&[put(&innocent), put(&duplicate), append(event(1, now()))]).await;
        assert!(matches!(result, Err(StoreError::Rejected(_))), "{result:?}");
        assert_eq!(store.task(innocent.id).await.unwrap(), None, "the batch is one transaction");
        assert_eq!(store.last_event_seq().await.unwrap(), 0);
        assert_eq!(store.task_by_idempotency_key("team-a", "order-1").await.unwrap(), Some(keyed));
    })
    .await;
}

#[tokio::test]
async fn tasks_are_counted_by_state() {
    for_each_backend(|Fresh { store, .. }| async move {
        let states = [TaskState::Queued, TaskState::Running, TaskState::Running, TaskState::Failed];
        let writes = states.iter().map(|s| put(&task("default", *s, now()))).collect::<Vec<_>>();
        store.write_batch(&writes).await.unwrap();
        assert_eq!(store.count_tasks(TaskState::Queued).await.unwrap(), 1);
        assert_eq!(store.count_tasks(TaskState::Running).await.unwrap(), 2);
        assert_eq!(store.count_tasks(TaskState::Failed).await.unwrap(), 1);
        assert_eq!(store.count_tasks(TaskState::TimedOut).await.unwrap(), 0);
    })
    .await;
}

#[tokio::test]
async fn attempts_come_back_first_first_and_are_replaced_by_key() {
    for_each_backend(|Fresh { store, .. }| async move {
        let t = task("default", TaskState::Running, now());
        let attempt = |n: u32, state: TaskState| AttemptRecord {
            task_id: t.id,
            attempt: n,
            node_start: Uuid::now_v7(),
            agent: Some("echo".into()),
            state,
            error: (state == TaskState::Failed).then(|| format!("attempt {n} failed")),
            started_at: now(),
            finished_at: state.is_final().then(now),
        };
        let (a1, a2, a3) =
            (attempt(1, TaskState::Running), attempt(2, TaskState::Failed), attempt(3, TaskState::Running));
        let writes = [&a2, &a1, &a3].map(|a| Write::PutAttempt(Box::new(a.clone())));
        store.write_batch(&writes).await.unwrap();
        let mut a1_failed = a1.clone();
        a1_failed.state = TaskState::Failed;
        a1_failed.error = Some("timeout".into());
        a1_failed.finished_at = Some(now());
        store.write_batch(&[Write::PutAttempt(Box::new(a1_failed.clone()))]).await.unwrap();
        assert_eq!(store.attempts(t.id).await.unwrap(), vec![a1_failed, a2, a3]);
        assert_eq!(store.attempts(TaskId::new()).await.unwrap(), vec![]);
    })
    .await;
}

#[tokio::test]
async fn events_resume_after_a_seq_and_the_sequence_continues() {
    for_each_backend(|Fresh { store, .. }| async move {
        assert_eq!(store.last_event_seq().await.unwrap(), 0);
        assert_eq!(store.events_after(0, 10).await.unwrap(), vec![]);
        let events: Vec<Event> = (1..=10).map(|seq| event(seq, now())).collect();
        store.write_batch(&events[..4].iter().cloned().map(append).collect::<Vec<_>>()).await.unwrap();
        store.write_batch(&events[4..].iter().cloned().map(append).collect::<Vec<_>>()).await.unwrap();
        assert_eq!(store.last_event_seq().await.unwrap(), 10);
        assert_eq!(store.events_after(3, 4).await.unwrap(), events[3..7].to_vec());
        assert_eq!(store.events_after(8, 100).await.unwrap(), events[8..].to_vec());
        assert_eq!(store.events_after(10, 100).await.unwrap(), vec![]);
        let again = store.write_batch(&[append(event(10, now()))]).await;
        assert!(matches!(again, Err(StoreError::Rejected(_))), "a seq is stored once: {again:?}");
    })
    .await;
}

#[tokio::test]
async fn agents_are_put_and_removed_in_the_order_written() {
    for_each_backend(|Fresh { store, .. }| async move {
        let process = ProcessSpec::new("/opt/agents/review.py").arg("--fast");
        let a = AgentSpec::process("a", process).capability("code.review").pool_size(1, 3).cost(0.5);
        let b = AgentSpec::native("b").namespace("team-b").timeout(Duration::from_secs(5));
        let (c, d) = (AgentSpec::native("c"), AgentSpec::native("d").capability("x"));
        let remove = |spec: &AgentSpec| Write::RemoveAgent {
            namespace: spec.namespace.clone(),
            name: spec.name.clone(),
        };
        let put = |spec: &AgentSpec| Write::PutAgent(Box::new(spec.clone()));
        store.write_batch(&[put(&a), put(&b)]).await.unwrap();
        assert_eq!(store.agents().await.unwrap(), vec![a.clone(), b.clone()]);
        // Within one batch: c is put then removed, d removed then put.
        store.write_batch(&[remove(&a), put(&c), remove(&c), remove(&d), put(&d)]).await.unwrap();
        let mut got = store.agents().await.unwrap();
        got.sort_by_key(AgentSpec::key);
        assert_eq!(got, vec![d, b]);
    })
    .await;
}

#[tokio::test]
async fn leases_open_renew_and_close() {
    for_each_backend(|Fresh { store, .. }| async move {
        let s = start("n1", now() + Duration::from_secs(30));
        store.open_lease(&s).await.unwrap();
        store.renew_lease(s.id, now() + Duration::from_secs(60)).await.unwrap();
        let unknown = store.renew_lease(Uuid::now_v7(), now()).await;
        assert!(matches!(unknown, Err(StoreError::Rejected(_))), "{unknown:?}");
        // Closing ends the lease at once: another node may claim what it left unfinished.
        let mut left = task("default", TaskState::Running, now());
        left.owner = Some(s.id);
        store.write_batch(&[put(&left)]).await.unwrap();
        let other = start("n2", now() + Duration::from_secs(30));
        store.open_lease(&other).await.unwrap();
        assert_eq!(store.claim_orphans(&other, now(), 10).await.unwrap(), vec![], "n1's lease is live");
        store.close_lease(s.id).await.unwrap();
        store.close_lease(s.id).await.unwrap();
        let claimed = store.claim_orphans(&other, now(), 10).await.unwrap();
        assert_eq!(claimed.iter().map(|t| t.id).collect::<Vec<_>>(), vec![left.id]);
    })
    .await;
}

#[tokio::test]
async fn orphans_are_claimed_oldest_first_within_the_limit() {
    for_each_backend(|Fresh { store, .. }| async move {
        let t0 = now();
        let later = t0 + Duration::from_secs(60);
        let earlier_start = start("n1", later);
        let other_live = start("n2", later);
        let other_expired = start("n3", t0 - Duration::from_secs(1));
        let me = start("n1", later);
        for s in [&earlier_start, &other_live, &other_expired, &me] {
            store.open_lease(s).await.unwrap();
        }
        let owned = |owner: &NodeStart, state: TaskState| {
            let mut t = task("default", state, t0);
            t.owner = Some(owner.id);
            t
        };
        let mine_before =
            [owned(&earlier_start, TaskState::Running), owned(&earlier_start, TaskState::Queued)];
        let finished = owned(&earlier_start, TaskState::Succeeded);
        let live = owned(&other_live, TaskState::Running);
        let expired = [owned(&other_expired, TaskState::Running), owned(&other_expired, TaskState::Queued)];
        let mut unowned = task("default", TaskState::Queued, t0);
        unowned.owner = None;
        // Owned by a start with no lease row (never recorded, or removed): nobody holds it.
        let rowless = task("default", TaskState::Queued, t0);
        let mut all = vec![put(&finished), put(&live), put(&unowned), put(&rowless)];
        all.extend(mine_before.iter().chain(&expired).map(put));
        store.write_batch(&all).await.unwrap();

        let mut orphans: Vec<TaskRecord> =
            mine_before.iter().chain(&expired).chain([&rowless]).cloned().collect();
        orphans.sort_by_key(|t| t.id);
        let first = store.claim_orphans(&me, t0, 3).await.unwrap();
        let ids = |tasks: &[TaskRecord]| tasks.iter().map(|t| t.id).collect::<Vec<_>>();
        assert_eq!(ids(&first), ids(&orphans[..3]), "oldest first, at most the limit");
        assert!(first.iter().all(|t| t.owner == Some(me.id)), "returned with the new owner");
        let rest = store.claim_orphans(&me, t0, 3).await.unwrap();
        assert_eq!(ids(&rest), ids(&orphans[3..]), "the rest on the next call");
        assert_eq!(orphans.len(), 5);
        assert_eq!(store.claim_orphans(&me, t0, 3).await.unwrap(), vec![], "nothing twice");
        for t in &orphans {
            assert_eq!(store.task(t.id).await.unwrap().unwrap().owner, Some(me.id));
        }
        for t in [&finished, &live] {
            assert_eq!(
                store.task(t.id).await.unwrap().unwrap().owner,
                t.owner,
                "{:?} is not claimed",
                t.state
            );
        }
        assert_eq!(store.task(unowned.id).await.unwrap().unwrap().owner, None);
        assert_eq!(store.claim_orphans(&me, t0, 0).await.unwrap(), vec![]);

        // Once n2's lease has ended, its running task is claimable too.
        let claimed = store.claim_orphans(&me, later + Duration::from_secs(1), 10).await.unwrap();
        assert_eq!(ids(&claimed), vec![live.id]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_claiming_at_once_never_take_the_same_task() {
    for_each_backend(|Fresh { store, .. }| async move {
        let t0 = now();
        let gone = start("gone", t0 - Duration::from_secs(1));
        let (a, b) = (start("a", t0 + Duration::from_secs(60)), start("b", t0 + Duration::from_secs(60)));
        for s in [&gone, &a, &b] {
            store.open_lease(s).await.unwrap();
        }
        let orphans: Vec<TaskRecord> = (0..400)
            .map(|_| {
                let mut t = task("default", TaskState::Running, t0);
                t.owner = Some(gone.id);
                t
            })
            .collect();
        store.write_batch(&orphans.iter().map(put).collect::<Vec<_>>()).await.unwrap();
        let claimer = |me: NodeStart| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let claimed = store.claim_orphans(&me, t0, 25).await.unwrap();
                    if claimed.is_empty() {
                        return mine;
                    }
                    mine.extend(claimed.into_iter().map(|t| t.id));
                }
            })
        };
        let (by_a, by_b) = tokio::join!(claimer(a.clone()), claimer(b.clone()));
        let (by_a, by_b) = (by_a.unwrap(), by_b.unwrap());
        let mut all: Vec<TaskId> = by_a.iter().chain(&by_b).copied().collect();
        all.sort();
        let before = all.len();
        all.dedup();
        assert_eq!(before, all.len(), "a task was claimed twice");
        assert_eq!(all, orphans.iter().map(|t| t.id).collect::<Vec<_>>(), "every orphan was claimed");
        for id in &by_a {
            assert_eq!(store.task(*id).await.unwrap().unwrap().owner, Some(a.id));
        }
    })
    .await;
}

#[tokio::test]
async fn prune_deletes_old_finished_tasks_with_their_attempts_and_old_events_in_batches() {
    for_each_backend(|Fresh { store, .. }| async move {
        let cutoff = now();
        let old = cutoff - Duration::from_secs(3600);
        let old_done: Vec<TaskRecord> = (0..5).map(|_| task("default", TaskState::Succeeded, old)).collect();
        let old_running = task("default", TaskState::Running, old);
        let new_done = task("default", TaskState::Failed, cutoff + Duration::from_secs(1));
        let attempt = |t: &TaskRecord| {
            Write::PutAttempt(Box::new(AttemptRecord {
                task_id: t.id,
                attempt: 1,
                node_start: Uuid::now_v7(),
                agent: None,
                state: t.state,
                error: None,
                started_at: old,
                finished_at: None,
            }))
        };
        let mut writes: Vec<Write> = old_done.iter().chain([&old_running, &new_done]).map(put).collect();
        writes.extend(old_done.iter().chain([&old_running, &new_done]).map(attempt));
        writes.extend((1..=3).map(|seq| append(event(seq, old))));
        writes.extend((4..=5).map(|seq| append(event(seq, cutoff + Duration::from_secs(1)))));
        store.write_batch(&writes).await.unwrap();

        assert_eq!(store.prune(cutoff, 2).await.unwrap(), 4, "two tasks and two events");
        assert_eq!(store.prune(cutoff, 2).await.unwrap(), 3, "two tasks and the last old event");
        assert_eq!(store.prune(cutoff, 2).await.unwrap(), 1);
        assert_eq!(store.prune(cutoff, 2).await.unwrap(), 0);
        for t in &old_done {
            assert_eq!(store.task(t.id).await.unwrap(), None);
            assert_eq!(store.attempts(t.id).await.unwrap(), vec![], "attempts go with their task");
        }
        for t in [&old_running, &new_done] {
            assert!(store.task(t.id).await.unwrap().is_some(), "{:?} is kept", t.state);
            assert_eq!(store.attempts(t.id).await.unwrap().len(), 1);
        }
        let seqs: Vec<u64> = store.events_after(0, 10).await.unwrap().iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![4, 5]);
    })
    .await;
}

#[tokio::test]
async fn a_batch_larger_than_one_statement_is_one_transaction() {
    for_each_backend(|Fresh { store, .. }| async move {
        let tasks: Vec<TaskRecord> = (0..5000).map(|_| task("default", TaskState::Queued, now())).collect();
        let mut writes: Vec<Write> = tasks.iter().map(put).collect();
        writes.extend((1..=5000).map(|seq| append(event(seq, now()))));
        store.write_batch(&writes).await.unwrap();
        assert_eq!(store.count_tasks(TaskState::Queued).await.unwrap(), 5000);
        assert_eq!(store.last_event_seq().await.unwrap(), 5000);
        assert_eq!(store.task(tasks[4321].id).await.unwrap().as_ref(), Some(&tasks[4321]));

        // A conflict in the last statement undoes the first ones.
        let mut more: Vec<Write> =
            (0..3000).map(|_| put(&task("default", TaskState::Running, now()))).collect();
        more.push(append(event(1, now())));
        assert!(matches!(store.write_batch(&more).await, Err(StoreError::Rejected(_))));
        assert_eq!(store.count_tasks(TaskState::Running).await.unwrap(), 0);
    })
    .await;
}

#[tokio::test]
async fn batches_of_any_size_store_their_rows_and_no_others() {
    // SQLite's statements have room for 1, 2, 3, 4, 6, 8, 12… rows; these sizes leave
    // some of it empty.
    for_each_backend(|Fresh { store, .. }| async move {
        let (mut stored, mut seq) = (0, 0);
        for size in [5, 7, 13, 50, 97] {
            let mut writes: Vec<Write> =
                (0..size).map(|_| put(&task("default", TaskState::Queued, now()))).collect();
            writes.extend((0..size).map(|_| {
                seq += 1;
                append(event(seq, now()))
            }));
            store.write_batch(&writes).await.unwrap();
            stored += size;
            assert_eq!(
                store.count_tasks(TaskState::Queued).await.unwrap(),
                stored,
                "after a batch of {size}"
            );
            assert_eq!(store.events_after(0, 1000).await.unwrap().len() as u64, stored);
        }
    })
    .await;
}

#[tokio::test]
async fn a_database_with_a_newer_schema_is_refused_and_data_survives_reopening() {
    for_each_backend(|Fresh { store, options, backend }| async move {
        let t = task("default", TaskState::Queued, now());
        store.write_batch(&[put(&t)]).await.unwrap();
        let reopened = open(&options).await.unwrap();
        assert_eq!(reopened.version, newest_schema_version());
        assert_eq!(reopened.backend, backend);
        assert_eq!(reopened.store.task(t.id).await.unwrap(), Some(t));
        reopened.close().await;

        let newer = newest_schema_version() + 1;
        let sql = format!(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES ({newer}, 'from the future', TRUE, {}, 0)",
            if backend == Backend::Sqlite { "x'00'" } else { "'\\x00'::bytea" }
        );
        match backend {
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&options.url).await.unwrap();
                sqlx::raw_sql(&sql).execute(&mut conn).await.unwrap();
                conn.close().await.unwrap();
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&options.url).await.unwrap();
                sqlx::raw_sql(&sql).execute(&mut conn).await.unwrap();
                conn.close().await.unwrap();
            }
        }
        let error = open(&options).await.err().expect("a newer schema is refused");
        assert!(
            matches!(error, StoreOpenError::SchemaTooNew { found, known } if found == newer && known == newer - 1),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(message.contains(&format!("version {newer}")) && message.contains("upgrade mark1"), "{message}");
    })
    .await;
}

/// A commit's pages reach the database file soon after it, copied from the WAL in the
/// background, instead of all at once inside the commit that passes SQLite's automatic
/// checkpoint (1,000 pages, far more than these writes).
#[tokio::test]
async fn sqlite_commits_are_copied_from_the_wal_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mark1.db");
    let opened = open(&StoreOptions::new(format!("sqlite://{}", file.display()))).await.unwrap();
    let size = || std::fs::metadata(&file).unwrap().len();
    let before = size();
    let tasks: Vec<TaskRecord> = (0..200).map(|_| task("default", TaskState::Queued, now())).collect();
    opened.store.write_batch(&tasks.iter().map(put).collect::<Vec<_>>()).await.unwrap();
    let what = format!("the database file to grow past {before} bytes");
    crate::support::eventually(Duration::from_secs(10), &what, || async { size() > before }).await;
    opened.close().await;
}

#[tokio::test]
async fn an_unreachable_database_is_named_without_its_password() {
    let options = StoreOptions::new("postgres://mark1:hunter2@127.0.0.1:1/mark1");
    let error = open(&options).await.err().expect("nothing listens on port 1");
    assert!(error.is_unavailable(), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("postgres://mark1@127.0.0.1:1/mark1"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");

    let file = tempfile::NamedTempFile::new().unwrap();
    let under_a_file = format!("sqlite://{}/mark1.db", file.path().display());
    let error = open(&StoreOptions::new(under_a_file)).await.err().expect("a file is not a folder");
    assert!(matches!(error, StoreOpenError::CreateDir { .. }), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_built_without_a_store_keeps_its_tasks_in_sqlite_under_its_data_dir() {
    use crate::support::{builder, started, stop, Echo};
    let dir = tempfile::tempdir().unwrap();
    let handle = started(builder(dir.path()).agent(AgentSpec::native("echo"), Echo), 1).await;
    let request = mark1::TaskRequest::to_agent("echo", json!({"text": "kept"}));
    let done = handle.run(request, Duration::from_secs(5)).await.unwrap();
    assert_eq!(done.state, TaskState::Succeeded);
    stop(handle).await;

    let file = dir.path().join("mark1.db");
    assert!(file.is_file(), "the default store is {}", file.display());
    let opened = open(&StoreOptions::new(format!("sqlite://{}", file.display()))).await.unwrap();
    let stored = opened.store.task(done.id).await.unwrap().expect("the task is in the file");
    assert_eq!(
        (stored.state, stored.output.as_deref()),
        (TaskState::Succeeded, Some(&json!({"text": "kept"})))
    );
    opened.close().await;
}
