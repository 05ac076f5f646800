//! Durability at the node level: outages of the store, and what a durable task leaves
//! in it.

use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::time::Duration;

use mark1::{AgentSpec, NodeError, TaskError, TaskRequest, TaskState};
use mark1_actors::domain::EventKind;
use mark1_actors::node::NodeSettings;
use mark1_actors::ports::Store;
use mark1_actors::testing::SwitchableStore;
use serde_json::json;

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

    store.set_down(false);
    let record = waiter.await.unwrap();
    assert_eq!(record.state, TaskState::Succeeded);
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
        memory.events().iter().filter(|e| e.subject == subject).map(|e| e.kind).collect();
    use EventKind::*;
    assert_eq!(kinds, [TaskQueued, TaskRunning, TaskRetrying, TaskRunning, TaskSucceeded]);
    stop(handle).await;
}
