//! Agents as supervised actors: restarts, escalation contained to the agent, runtime
//! registration and removal, several nodes in one process.

use std::sync::Arc;
use std::time::Duration;

use mark1::{AgentSpec, NodeError, TaskError, TaskRequest, TaskState};
use mark1_actors::domain::EventKind;
use mark1_actors::events::EventFilter;
use mark1_actors::orchestrator::AgentHealth;
use mark1_actors::ports::Store;
use mark1_actors::testing::SwitchableStore;
use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_agent_fails_its_task_and_its_instance_is_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let handle = started(
        builder(dir.path())
            .agent(AgentSpec::native("buggy").pool_size(1, 1), Panicker)
            .agent(AgentSpec::native("echo"), Echo),
        2,
    )
    .await;
    let mut events = handle
        .subscribe(EventFilter { kinds: vec![EventKind::AgentRestarted], ..Default::default() }, None)
        .await
        .unwrap();
    let done = handle.run(TaskRequest::to_agent("buggy", json!(1)), Duration::from_secs(5)).await.unwrap();
    assert_eq!(done.state, TaskState::Failed);
    assert!(done.error.as_deref().unwrap().contains("panicked: agent bug"), "{:?}", done.error);

    let event = tokio::time::timeout(Duration::from_secs(5), events.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(&*event.subject, "default/buggy");
    let pool_name = format!("{}/agents/pool:default/buggy", handle.name());
    eventually(Duration::from_secs(5), "instance restarted", || async {
        let tree = handle.tree();
        let pool = tree.find(&pool_name).unwrap().clone();
        pool.children.iter().map(|c| c.restarts.failed).sum::<u64>() == 1
            && pool.children.iter().all(|c| c.status == mark1_supervisors::Status::Running)
    })
    .await;
    // The other agent never noticed.
    let ok = handle.run(TaskRequest::to_agent("echo", json!(2)), Duration::from_secs(5)).await.unwrap();
    assert_eq!(ok.state, TaskState::Succeeded);
    stop(handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_beyond_its_restart_intensity_is_marked_failed_and_the_node_keeps_running() {
    let dir = tempfile::tempdir().unwrap();
    let handle = started(
        builder(dir.path())
            .agent(AgentSpec::native("buggy").pool_size(1, 1), Panicker)
            .agent(AgentSpec::native("echo"), Echo),
        2,
    )
    .await;
    // The default pool intensity is 5 restarts in 10 s: the 6th failure escalates.
    for _ in 0..20 {
        match handle.run(TaskRequest::to_agent("buggy", json!(1)), Duration::from_secs(5)).await {
            Err(NodeError::Task(TaskError::AgentFailed { .. })) => break,
            Ok(_) => {}
            Err(other) => panic!("unexpected: {other}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let agents = handle.agents().await.unwrap();
    let buggy = agents.iter().find(|a| a.name == "buggy").unwrap();
    assert!(
        matches!(&buggy.health, AgentHealth::Failed(reason) if reason.contains("intensity")),
        "{:?}",
        buggy.health
    );
    let err = handle.submit(TaskRequest::to_agent("buggy", json!(1))).await.unwrap_err();
    assert!(err.to_string().contains("is failed"), "{err}");
    assert!(handle.is_running(), "the failure stopped at the agent");
    let ok = handle.run(TaskRequest::to_agent("echo", json!(2)), Duration::from_secs(5)).await.unwrap();
    assert_eq!(ok.state, TaskState::Succeeded);
    eventually(Duration::from_secs(10), "health reports the failed agent", || async {
        handle.health().failed_agents.iter().any(|(name, _)| name == "default/buggy")
    })
    .await;
    stop(handle).await;
}

/// An agent registered or removed at run time is answered only once the store has the
/// change, so a node that crashes after the answer comes back as it was told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_changes_are_answered_only_once_the_store_has_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SwitchableStore::default());
    let node = builder(dir.path()).store(store.clone()).build().await.unwrap();
    let handle = Arc::new(node.start().await.unwrap());
    let stored = || async { store.agents().await.unwrap().iter().any(|a| a.name == "late") };

    store.hold_writes(true);
    let h = handle.clone();
    let registering = tokio::spawn(async move { h.register_agent(AgentSpec::native("late"), Echo).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!registering.is_finished(), "answered before the store had the agent");
    store.hold_writes(false);
    registering.await.unwrap().unwrap();
    assert!(stored().await, "the answer came after the commit");

    store.hold_writes(true);
    let h = handle.clone();
    let removing = tokio::spawn(async move { h.remove_agent("default", "late").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!removing.is_finished(), "answered before the store had the removal");
    store.hold_writes(false);
    removing.await.unwrap().unwrap();
    assert!(!stored().await, "the answer came after the commit");
    stop(Arc::into_inner(handle).expect("no other handle is left")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_register_and_leave_at_run_time() {
    let dir = tempfile::tempdir().unwrap();
    let handle = builder(dir.path()).build().await.unwrap().start().await.unwrap();
    handle.register_agent(AgentSpec::native("late").capability("late.work"), Echo).await.unwrap();
    let done = handle
        .run(TaskRequest::to_capabilities(["late.work"], json!(1)), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(done.state, TaskState::Succeeded);
    let dup = handle.register_agent(AgentSpec::native("late"), Echo).await.unwrap_err();
    assert!(dup.to_string().contains("already registered"), "{dup}");
    let bad = handle.register_agent(AgentSpec::native("Bad Name"), Echo).await.unwrap_err();
    assert!(bad.to_string().contains("[a-z][a-z0-9_-]*"), "{bad}");

    handle.remove_agent("default", "late").await.unwrap();
    let gone = handle.submit(TaskRequest::to_agent("late", json!(1))).await.unwrap_err();
    assert!(matches!(gone, NodeError::Task(TaskError::UnknownAgent { .. })), "{gone}");
    let pool = format!("{}/agents/pool:default/late", handle.name());
    eventually(Duration::from_secs(5), "pool gone from the tree", || async {
        handle.tree().find(&pool).is_none()
    })
    .await;
    stop(handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_nodes_run_in_one_process() {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = started(builder(a_dir.path()).agent(AgentSpec::native("echo"), Echo), 1).await;
    let b = started(builder(b_dir.path()).agent(AgentSpec::native("echo"), Echo), 1).await;
    assert_ne!(a.name(), b.name());
    for handle in [&a, &b] {
        let done = handle
            .run(TaskRequest::to_agent("echo", json!(handle.name())), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(done.output.as_deref(), Some(&json!(handle.name())));
        assert!(handle.tree().find(&format!("{}/agents/pool:default/echo", handle.name())).is_some());
    }
    stop(a).await;
    // b is untouched by a's shutdown.
    let done = b.run(TaskRequest::to_agent("echo", json!(1)), Duration::from_secs(5)).await.unwrap();
    assert_eq!(done.state, TaskState::Succeeded);
    stop(b).await;
}
