//! Durability at the node level: outages of the store, and what a durable task leaves
//! in it.

use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::time::Duration;

use mark1::config::ConfigLoader;
use mark1::store::Backend;
use mark1::{AgentSpec, NodeError, TaskError, TaskRequest, TaskState};
use mark1_actors::domain::EventKind;
use mark1_actors::node::NodeSettings;
use mark1_actors::ports::Store;
use mark1_actors::testing::SwitchableStore;
use serde_json::json;
use sqlx::Connection;

use crate::store::backends::{for_each_backend, Fresh};
use crate::support::*;

fn fast_health() -> NodeSettings {
    NodeSettings { health_interval: Duration::from_millis(20), ..NodeSettings::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_refuses_new_durable_work_keeps_accepted_work_and_heals_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SwitchableStore::default());
    let sleeper = Sleeper { cancelled: Arc::new(AtomicU32::new(0)) };
    let handle = started(
        builder(dir.path())
            .store(store.clone())
            .settings(fast_health())
            .agent(AgentSpec::native("sleeper").pool_size(2, 2), sleeper),
        1,
    )
    .await;
    let accepted = handle.submit(TaskRequest::to_agent("sleeper", json!({"ms": 300}))).await.unwrap();
    running(&handle, accepted).await;

    store.set_down(true);
    eventually(Duration::from_secs(5), "health reports the store down", || async {
        !handle.health().store_ok
    })
    .await;
    let refused = handle.submit(TaskRequest::to_agent("sleeper", json!({"ms": 1}))).await;
    assert!(
        matches!(refused, Err(NodeError::Task(TaskError::Unavailable(_)))),
        "a durable submission is refused while the store is down: {refused:?}"
    );
    // The accepted task finishes during the outage; its waiter hears only once the final
    // state is stored, and nothing of it is lost.
    let mut waiter = Box::pin(handle.wait(accepted, Duration::from_secs(30)));
    assert!(futures::poll!(&mut waiter).is_pending(), "the wait is registered");
    eventually(Duration::from_secs(5), "the task finished in memory", || async {
        handle.get(accepted).await.is_ok_and(|t| t.state == TaskState::Succeeded)
    })
    .await;
    let stored = store.inner().task(accepted).await.unwrap().expect("committed when accepted");
    assert!(!stored.state.is_final(), "the final state cannot be stored yet: {stored:?}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(futures::poll!(&mut waiter).is_pending(), "a durable task's waiter hears after the commit");
    // Even a wait that starts after the task finished.
    let mut late = Box::pin(handle.wait(accepted, Duration::from_secs(30)));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(futures::poll!(&mut late).is_pending(), "a late waiter hears after the commit too");

    store.set_down(false);
    let record = waiter.await.unwrap();
    assert_eq!(record.state, TaskState::Succeeded);
    assert_eq!(late.await.unwrap().state, TaskState::Succeeded);
    let stored = store.inner().task(accepted).await.unwrap().unwrap();
    assert_eq!(stored.state, TaskState::Succeeded, "kept writes were committed once the store returned");
    eventually(Duration::from_secs(5), "health reports the store back", || async {
        handle.health().store_ok
    })
    .await;
    let after = handle.run(TaskRequest::to_agent("sleeper", json!({"ms": 1})), Duration::from_secs(5)).await;
    assert_eq!(after.unwrap().state, TaskState::Succeeded, "new work is accepted again");
    stop(handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_task_leaves_its_record_attempts_and_events_in_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SwitchableStore::default());
    let flaky = Flaky { calls: Arc::new(AtomicU32::new(0)), succeed_on: 2, retryable: true };
    let handle = started(
        builder(dir.path())
            .store(store.clone())
            .agent(AgentSpec::native("flaky").retries(1, Duration::ZERO), flaky),
        1,
    )
    .await;
    let done = handle
        .run(TaskRequest::to_agent("flaky", json!(1)).idempotency_key("k1"), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!((done.state, done.attempt), (TaskState::Succeeded, 2));
    let memory = store.inner();
    let stored = memory.task(done.id).await.unwrap().unwrap();
    assert_eq!((stored.state, stored.attempt), (TaskState::Succeeded, 2));
    let attempts = memory.attempts(done.id).await.unwrap();
    let outcomes: Vec<_> = attempts.iter().map(|a| (a.attempt, a.state)).collect();
    assert_eq!(outcomes, [(1, TaskState::Failed), (2, TaskState::Succeeded)]);
    let subject = done.id.to_string();
    let kinds: Vec<EventKind> =
        memory.events().iter().filter(|e| *e.subject == *subject).map(|e| e.kind).collect();
    use EventKind::*;
    assert_eq!(kinds, [TaskQueued, TaskRunning, TaskRetrying, TaskRunning, TaskSucceeded]);
    // The agent's shared data where it applies, each attempt's own number.
    let data: Vec<serde_json::Value> =
        memory.events().iter().filter(|e| *e.subject == *subject).map(|e| (*e.data).clone()).collect();
    let agent = json!({"agent": "flaky"});
    assert_eq!([&data[0], &data[4]], [&agent, &agent]);
    assert_eq!(data[1], json!({"attempt": 1, "agent": "flaky"}));
    assert_eq!(data[3], json!({"attempt": 2, "agent": "flaky"}));
    stop(handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_outlive_the_node_that_took_them() {
    let dir = tempfile::tempdir().unwrap();
    let name = unique("idem");
    let node =
        || mark1::Node::builder().config(config(dir.path(), &name)).agent(AgentSpec::native("echo"), Echo);
    let first = started(node(), 1).await;
    let request = || TaskRequest::to_agent("echo", json!({"order": 42})).idempotency_key("order-42");
    let done = first.run(request(), Duration::from_secs(5)).await.unwrap();
    let quick = first.run(request().durable(false).idempotency_key("fast"), Duration::from_secs(5)).await;
    let quick = quick.unwrap();
    stop(first).await;

    // A new node on the same database: the keys are only in the store now.
    let second = started(node(), 1).await;
    let again = second.submit_detailed(request()).await.unwrap();
    assert_eq!((again.id, again.existing), (done.id, true), "a resubmission returns the first task");
    let waited = second.run(request(), Duration::from_secs(5)).await.unwrap();
    assert_eq!((waited.id, waited.state), (done.id, TaskState::Succeeded));
    let changed = TaskRequest::to_agent("echo", json!({"order": 43})).idempotency_key("order-42");
    let conflict = second.submit(changed).await;
    assert!(
        matches!(conflict, Err(NodeError::Task(TaskError::IdempotencyConflict { .. }))),
        "the same key with another body is a conflict: {conflict:?}"
    );
    // A non-durable task is written in the background, and says so.
    let stored = second.get(quick.id).await.unwrap();
    assert_eq!((stored.state, stored.durable), (TaskState::Succeeded, false));
    stop(second).await;
}

/// Takes a real database away from the node, and gives it back.
enum Outage {
    /// Another connection holds SQLite's write lock: the node's commits time out busy.
    Sqlite(sqlx::SqliteConnection),
    /// The database refuses connections and the node's are terminated.
    Postgres { admin: String, database: String },
}

impl Outage {
    async fn begin(backend: Backend, url: &str) -> Outage {
        match backend {
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
                sqlx::raw_sql("BEGIN EXCLUSIVE").execute(&mut conn).await.unwrap();
                Outage::Sqlite(conn)
            }
            Backend::Postgres => {
                let admin =
                    crate::store::backends::postgres_url().expect("a postgres case runs only with it");
                let database = url.rsplit('/').next().unwrap().split('?').next().unwrap().to_string();
                Outage::Postgres { admin, database }.postgres(false).await
            }
        }
    }

    async fn end(self) {
        match self {
            Outage::Sqlite(mut conn) => sqlx::raw_sql("ROLLBACK").execute(&mut conn).await.map(drop).unwrap(),
            outage @ Outage::Postgres { .. } => drop(outage.postgres(true).await),
        }
    }

    async fn postgres(self, allow: bool) -> Outage {
        let Outage::Postgres { admin, database } = &self else { unreachable!() };
        let mut conn = sqlx::PgConnection::connect(admin).await.unwrap();
        let sql = format!("ALTER DATABASE \"{database}\" ALLOW_CONNECTIONS {allow}");
        sqlx::raw_sql(&sql).execute(&mut conn).await.unwrap();
        if !allow {
            sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
                .bind(database)
                .execute(&mut conn)
                .await
                .unwrap();
        }
        self
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_database_outage_refuses_new_work_keeps_accepted_work_and_heals() {
    for_each_backend(real_outage).await;
}

async fn real_outage(Fresh { options, backend, .. }: Fresh) {
    let dir = tempfile::tempdir().unwrap();
    let config = ConfigLoader::new()
        .no_file()
        .env(Vec::<(String, String)>::new())
        .set("node.name", unique("outage").as_str())
        .set("node.data_dir", dir.path().to_str().unwrap())
        .set("store.url", options.url.as_str())
        .load()
        .unwrap();
    let sleeper = Sleeper { cancelled: Arc::new(AtomicU32::new(0)) };
    let handle = started(
        mark1::Node::builder()
            .config(config)
            .settings(fast_health())
            .agent(AgentSpec::native("sleeper").pool_size(2, 2), sleeper),
        1,
    )
    .await;
    let name = backend.as_str();
    let accepted = handle.submit(TaskRequest::to_agent("sleeper", json!({"ms": 500}))).await.unwrap();
    running(&handle, accepted).await;
    // The `running` row is written in the background: once it is in, no commit is in
    // flight when the outage begins, and the next one is the refused submission's.
    let store = handle.store();
    eventually(Duration::from_secs(5), "the running state is stored", || async {
        store.task(accepted).await.is_ok_and(|t| t.is_some_and(|t| t.state == TaskState::Running))
    })
    .await;
    let mut waiter = Box::pin(handle.wait(accepted, Duration::from_secs(60)));
    assert!(futures::poll!(&mut waiter).is_pending());

    let outage = Outage::begin(backend, &options.url).await;
    let refused = handle.submit(TaskRequest::to_agent("sleeper", json!({"ms": 1}))).await;
    assert!(
        matches!(refused, Err(NodeError::Task(TaskError::Unavailable(_)))),
        "{name}: a durable submission is refused while the database is away: {refused:?}"
    );
    eventually(Duration::from_secs(10), "health reports the store down", || async {
        !handle.health().store_ok
    })
    .await;
    eventually(Duration::from_secs(5), "the task finished in memory", || async {
        handle.get(accepted).await.is_ok_and(|t| t.state == TaskState::Succeeded)
    })
    .await;
    assert!(futures::poll!(&mut waiter).is_pending(), "{name}: the waiter hears after the commit");

    outage.end().await;
    let record = waiter.await.unwrap();
    assert_eq!(record.state, TaskState::Succeeded, "{name}");
    eventually(Duration::from_secs(10), "health reports the store back", || async {
        handle.health().store_ok
    })
    .await;
    let after = handle.run(TaskRequest::to_agent("sleeper", json!({"ms": 1})), Duration::from_secs(10)).await;
    assert_eq!(after.unwrap().state, TaskState::Succeeded, "{name}: new work is taken again");
    stop(handle).await;
    let stored = store_task(&options.url, accepted).await;
    assert_eq!(stored, Some(TaskState::Succeeded), "{name}: the kept final state reached the database");
}

/// The task's state as another connection to the database sees it.
async fn store_task(url: &str, id: mark1::TaskId) -> Option<TaskState> {
    let opened = mark1::store::open(&mark1::store::StoreOptions::new(url)).await.unwrap();
    let state = opened.store.task(id).await.unwrap().map(|t| t.state);
    opened.close().await;
    state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_tasks_and_their_events_are_pruned_after_the_retention() {
    let dir = tempfile::tempdir().unwrap();
    let config = ConfigLoader::new()
        .no_file()
        .env(Vec::<(String, String)>::new())
        .set("node.name", unique("retention").as_str())
        .set("node.data_dir", dir.path().to_str().unwrap())
        .set("store.retention", "2s")
        .set("store.prune_interval", "20ms")
        .set("store.prune_batch", "2")
        .load()
        .unwrap();
    let handle =
        started(mark1::Node::builder().config(config).agent(AgentSpec::native("echo"), Echo), 1).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            handle.run(TaskRequest::to_agent("echo", json!(i)), Duration::from_secs(5)).await.unwrap().id,
        );
    }
    let url = handle.config().store_url();
    let opened = mark1::store::open(&mark1::store::StoreOptions::new(url)).await.unwrap();
    assert!(opened.store.task(ids[0]).await.unwrap().is_some(), "kept until the retention passes");
    eventually(Duration::from_secs(10), "old tasks and events pruned, a few rows at a time", || async {
        let (store, ids) = (&opened.store, &ids);
        let mut gone = true;
        for id in ids {
            gone &= store.task(*id).await.unwrap().is_none();
        }
        gone && store.events_after(0, 100).await.unwrap().iter().all(|e| e.kind == EventKind::AgentRegistered)
    })
    .await;
    opened.close().await;
    stop(handle).await;
}

/// DESIGN §13.10 and §13.4: a non-durable task is written once, in the background, marked
/// as such; its events live in the event ring only, never in the store.
#[tokio::test]
async fn a_non_durable_task_is_stored_once_finished_and_its_events_only_in_the_ring() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SwitchableStore::default());
    let handle =
        started(builder(dir.path()).store(store.clone()).agent(AgentSpec::native("echo"), Echo), 1).await;
    let done = handle
        .run(TaskRequest::to_agent("echo", json!({"n": 1})).durable(false), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(done.state, TaskState::Succeeded);
    let subject = done.id.to_string();
    eventually(Duration::from_secs(5), "the finished task is written in the background", || async {
        store
            .inner()
            .task(done.id)
            .await
            .unwrap()
            .is_some_and(|t| t.state == TaskState::Succeeded && !t.durable)
    })
    .await;
    let stored = store.inner().events_after(0, 1000).await.unwrap();
    assert!(stored.iter().all(|e| *e.subject != *subject), "no event of it is stored: {stored:?}");
    let listed = handle.list_events(Default::default(), 0, 100).await.unwrap();
    let kinds: Vec<EventKind> =
        listed.events.iter().filter(|e| *e.subject == *subject).map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [EventKind::TaskQueued, EventKind::TaskRunning, EventKind::TaskSucceeded],
        "the ring has them"
    );
    stop(handle).await;
}

/// A task taken over after a stop is held again in memory, rebuilt from its stored row;
/// resubmitting its request (retries left to the agent) still finds it, as it would in
/// the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claimed_task_still_matches_its_idempotent_resubmission() {
    let dir = tempfile::tempdir().unwrap();
    let name = unique("claimed");
    let node = || {
        let sleeper = Sleeper { cancelled: Arc::new(AtomicU32::new(0)) };
        mark1::Node::builder().config(config(dir.path(), &name)).agent(AgentSpec::native("sleeper"), sleeper)
    };
    let request = || TaskRequest::to_agent("sleeper", json!({"ms": 1000})).idempotency_key("long-1");
    let first = started(node(), 1).await;
    let id = first.submit(request()).await.unwrap();
    running(&first, id).await;
    let report = first.shutdown(Duration::from_millis(50)).await;
    assert!(!report.drained, "the task was left unfinished: {report:?}");

    let second = started(node(), 1).await;
    eventually(Duration::from_secs(10), "the second start took the task over", || async {
        second.get(id).await.is_ok_and(|t| t.owner.is_some() && !t.state.is_final())
    })
    .await;
    let again = second.submit_detailed(request()).await;
    assert!(matches!(again, Ok(ref s) if s.id == id && s.existing), "{again:?}");
    stop(second).await;
}
