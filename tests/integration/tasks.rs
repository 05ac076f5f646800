//! Tasks through a whole node: dispatch, selection, retries, deadlines, cancel,
//! limits, idempotency, events.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mark1::{AgentSpec, NodeError, TaskError, TaskRequest, TaskState};
use mark1_actors::domain::EventKind;
use mark1_actors::events::EventFilter;
use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_wait_and_the_tree_shows_the_work() {
    let dir = tempfile::tempdir().unwrap();
    let handle = started(
        builder(dir.path()).agent(AgentSpec::native("echo").capability("text.echo").pool_size(2, 2), Echo),
        1,
    )
    .await;
    let id = handle.submit(TaskRequest::to_agent("echo", json!({"text": "hi"}))).await.unwrap();
    let done = handle.wait(id, Duration::from_secs(5)).await.unwrap();
    assert_eq!(done.state, TaskState::Succeeded);
    assert_eq!(done.output.as_deref(), Some(&json!({"text": "hi"})));
    assert_eq!(done.attempt, 1);
    assert_eq!(done.agent.as_deref(), Some("echo"));

    let tree = handle.tree();
    let name = handle.name().to_string();
    let pool = tree.find(&format!("{name}/agents/pool:default/echo")).expect("the pool is in the tree");
    assert_eq!(pool.children.len(), 2, "two instances under the pool");
    let handled: u64 = pool.children.iter().map(|c| c.messages_handled).sum();
    assert!(handled >= 1, "an instance handled the task");
    for core in ["store_writer", "events", "models", "agents", "orchestrator", "workflows", "health"] {
        assert!(tree.find(&format!("{name}/{core}")).is_some(), "{core} is in the tree");
    }
    assert!(handle.metrics_text().contains("mark1_tasks_finished_total{state=\"succeeded\"} 1"));
    stop(handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_on_the_task_path_is_counted_so_mailbox_depth_is_real() {
    let dir = tempfile::tempdir().unwrap();
    let sleeper = Sleeper { cancelled: Arc::new(AtomicU32::new(0)) };
    let builder = builder(dir.path())
        .agent(AgentSpec::native("echo").pool_size(2, 2), Echo)
        .agent(AgentSpec::native("sleeper").pool_size(2, 2), sleeper);
    let handle = started(builder, 2).await;
    for i in 0..20 {
        handle.run(TaskRequest::to_agent("echo", json!(i)), Duration::from_secs(5)).await.unwrap();
        handle.run(TaskRequest::to_agent("sleeper", json!({"ms": 1})), Duration::from_secs(5)).await.unwrap();
    }
    let name = handle.name().to_string();
    let pool = |tree: &mark1::ActorSnapshot, agent: &str| {
        tree.find(&format!("{name}/agents/pool:default/{agent}")).unwrap().clone()
    };
    let at_rest =
        |node: &mark1::ActorSnapshot| node.messages_sent == node.messages_handled && node.mailbox_depth == 0;
    eventually(Duration::from_secs(5), "counters at rest", || async {
        let tree = handle.tree();
        let orchestrator = tree.find(&format!("{name}/orchestrator")).unwrap();
        at_rest(orchestrator)
            && ["echo", "sleeper"].iter().all(|a| pool(&tree, a).children.iter().all(at_rest))
    })
    .await;
    let tree = handle.tree();
    let orchestrator = tree.find(&format!("{name}/orchestrator")).unwrap();
    // Per task the submission and the attempt's end; per sleeping task its start too.
    assert!(orchestrator.messages_sent >= 20 * 2 + 20 * 3, "{orchestrator:?}");
    let sent = |agent: &str| pool(&tree, agent).children.iter().map(|w| w.messages_sent).sum::<u64>();
    // An agent that answers at once runs in its instance's handler: one message per task.
    assert_eq!(sent("echo"), 20, "{:?}", pool(&tree, "echo"));
    // One that waits runs as a task and hands its worker back: two.
    assert_eq!(sent("sleeper"), 40, "{:?}", pool(&tree, "sleeper"));
    stop(handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capability_selection_prefers_the_idle_agent_and_names_missing_ones() {
    let dir = tempfile::tempdir().unwrap();
    let cancelled = Arc::new(AtomicU32::new(0));
    let handle = started(
        builder(dir.path())
            .agent(
                AgentSpec::native("slow").capability("work").pool_size(1, 1),
                Sleeper { cancelled: cancelled.clone() },
            )
            .agent(AgentSpec::native("fast").capability("work").pool_size(1, 1), Echo),
        2,
    )
    .await;
    // Occupy `slow` by name; capability tasks must then go to the idle `fast`.
    let busy = handle.submit(TaskRequest::to_agent("slow", json!({"ms": 60_000}))).await.unwrap();
    running(&handle, busy).await;
    for _ in 0..5 {
        let done = handle
            .run(TaskRequest::to_capabilities(["work"], json!(1)), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(done.agent.as_deref(), Some("fast"));
    }
    let err = handle.submit(TaskRequest::to_capabilities(["fly"], json!(1))).await.unwrap_err();
    assert!(matches!(err, NodeError::Task(TaskError::NoCapableAgent { .. })), "{err}");
    assert!(err.to_string().contains("fly"), "the error names the capability: {err}");
    let err = handle.submit(TaskRequest::to_agent("nobody", json!(1))).await.unwrap_err();
    assert!(matches!(err, NodeError::Task(TaskError::UnknownAgent { .. })), "{err}");
    handle.cancel(busy).await.unwrap();
    stop(handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retryable_failures_retry_with_new_attempts_and_others_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let (flaky_calls, hard_calls) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let handle = started(
        builder(dir.path())
            .agent(
                AgentSpec::native("flaky").retries(3, Duration::from_millis(1)),
                Flaky { calls: flaky_calls.clone(), succeed_on: 3, retryable: true },
            )
            .agent(
                AgentSpec::native("hard").retries(3, Duration::from_millis(1)),
                Flaky { calls: hard_calls.clone(), succeed_on: 100, retryable: false },
            ),
        2,
    )
    .await;
    let done = handle.run(TaskRequest::to_agent("flaky", json!(null)), Duration::from_secs(5)).await.unwrap();
    assert_eq!(done.state, TaskState::Succeeded, "{:?}", done.error);
    assert_eq!(done.attempt, 3);
    let key = done.output.unwrap()["key"].as_str().unwrap().to_string();
    assert!(key.ends_with(":3"), "the idempotency key names the attempt: {key}");
    assert_eq!(flaky_calls.load(Ordering::SeqCst), 3);
    let keyed = TaskRequest::to_agent("flaky", json!(null)).idempotency_key("order-7");
    let done = handle.run(keyed, Duration::from_secs(5)).await.unwrap();
    assert_eq!(done.output.unwrap()["key"], json!("order-7"), "a submitter's key names the first attempt");

    let done = handle.run(TaskRequest::to_agent("hard", json!(null)), Duration::from_secs(5)).await.unwrap();
    assert_eq!(done.state, TaskState::Failed);
    assert_eq!(done.attempt, 1, "a non-retryable failure is final");
    assert_eq!(done.error.as_deref(), Some("call 1 failed"));

    // Retries exhausted: the request's own limit wins over the agent's.
    flaky_calls.store(0, Ordering::SeqCst);
    let done = handle
        .run(TaskRequest::to_agent("flaky", json!(null)).retries(1), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!((done.state, done.attempt), (TaskState::Failed, 2));
    stop(handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_and_deadlines_end_in_timed_out() {
    let dir = tempfile::tempdir().unwrap();
    let cancelled = Arc::new(AtomicU32::new(0));
    let handle = started(
        builder(dir.path())
            .agent(AgentSpec::native("sleeper").pool_size(1, 2), Sleeper { cancelled: cancelled.clone() }),
        1,
    )
    .await;
    let req = TaskRequest::to_agent("sleeper", json!({"ms": 60_000})).timeout(Duration::from_millis(50));
    let done = handle.run(req, Duration::from_secs(10)).await.unwrap();
    assert_eq!(done.state, TaskState::TimedOut);
    assert_eq!(cancelled.load(Ordering::SeqCst), 1, "the agent was told to stop");

    let past = SystemTime::now() - Duration::from_secs(1);
    let done = handle
        .run(TaskRequest::to_agent("sleeper", json!({"ms": 1})).deadline(past), Duration::from_secs(5))
        .await;
    assert_eq!(done.unwrap().state, TaskState::TimedOut);
    stop(handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_reaches_a_running_agent() {
    let dir = tempfile::tempdir().unwrap();
    let (handle, cancelled, id) = one_long_task(dir.path()).await;
    let record = handle.cancel(id).await.unwrap();
    assert_eq!(record.state, TaskState::Cancelled);
    eventually(Duration::from_secs(5), "agent saw the cancel", || async {
        cancelled.load(Ordering::SeqCst) == 1
    })
    .await;
    // The instance is free again.
    let done =
        handle.run(TaskRequest::to_agent("sleeper", json!({"ms": 1})), Duration::from_secs(5)).await.unwrap();
    assert_eq!(done.state, TaskState::Succeeded);
    stop(handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intake_and_pool_queues_are_bounded_with_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cancelled = Arc::new(AtomicU32::new(0));
    let config = mark1::config::ConfigLoader::new()
        .no_file()
        .env(Vec::<(String, String)>::new())
        .set("node.name", unique("limits"))
        .set("node.data_dir", dir.path().to_str().unwrap())
        .set("limits.max_in_flight", 4)
        .load()
        .unwrap();
    let handle = mark1::Node::builder()
        .config(config)
        .agent(
            AgentSpec::native("sleeper").pool_size(1, 1).queue_limit(1),
            Sleeper { cancelled: cancelled.clone() },
        )
        .agent(AgentSpec::native("wide").pool_size(1, 1).queue_limit(100), Sleeper { cancelled })
        .build()
        .await
        .unwrap()
        .start()
        .await
        .unwrap();
    agents_ready(&handle, 2).await;
    let slow = || TaskRequest::to_agent("sleeper", json!({"ms": 60_000}));
    let first = handle.submit(slow()).await.unwrap();
    running(&handle, first).await;
    let queued = handle.submit(slow()).await.unwrap();
    // The pool holds one running and one queued: the third is refused at intake.
    eventually(Duration::from_secs(5), "second task queued in the pool", || async {
        handle.agents().await.unwrap().iter().any(|a| a.name == "sleeper" && a.queued == 1)
    })
    .await;
    let err = handle.submit(slow()).await.unwrap_err();
    assert!(matches!(err, NodeError::Task(TaskError::QueueFull { limit: 1, .. })), "{err}");
    assert!(err.to_string().contains("queued already"), "{err}");
    // Intake: 4 in flight at most (two are in flight already).
    let wide = || TaskRequest::to_agent("wide", json!({"ms": 60_000}));
    let more = [handle.submit(wide()).await.unwrap(), handle.submit(wide()).await.unwrap()];
    let err = handle.submit(wide()).await.unwrap_err();
    assert!(matches!(err, NodeError::Task(TaskError::Overloaded { limit: 4, .. })), "{err}");
    for id in [first, queued].into_iter().chain(more) {
        handle.cancel(id).await.unwrap();
    }
    stop(handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_return_the_first_task_or_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let handle = started(builder(dir.path()).agent(AgentSpec::native("echo"), Echo), 1).await;
    let req = || TaskRequest::to_agent("echo", json!({"n": 1})).idempotency_key("k1");
    let first = handle.submit_detailed(req()).await.unwrap();
    let again = handle.submit_detailed(req()).await.unwrap();
    assert!(!first.existing);
    assert_eq!((again.id, again.existing), (first.id, true));
    let other = TaskRequest::to_agent("echo", json!({"n": 2})).idempotency_key("k1");
    let err = handle.submit(other).await.unwrap_err();
    assert!(matches!(err, NodeError::Task(TaskError::IdempotencyConflict { .. })), "{err}");
    // Keys are per namespace.
    let elsewhere = TaskRequest::to_agent("echo", json!({"n": 1})).idempotency_key("k1").namespace("other");
    assert!(matches!(handle.submit(elsewhere).await, Err(NodeError::Task(TaskError::UnknownAgent { .. }))));
    stop(handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_transition_is_an_event_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let handle = started(builder(dir.path()).agent(AgentSpec::native("echo"), Echo), 1).await;
    let mut sub = handle.subscribe(EventFilter::default(), None).await.unwrap();
    let done = handle.run(TaskRequest::to_agent("echo", json!(1)), Duration::from_secs(5)).await.unwrap();
    let mut kinds = Vec::new();
    while kinds.len() < 3 {
        let event = tokio::time::timeout(Duration::from_secs(5), sub.next()).await.unwrap().unwrap().unwrap();
        if *event.subject == *done.id.to_string() {
            kinds.push(event.kind);
        }
    }
    assert_eq!(kinds, [EventKind::TaskQueued, EventKind::TaskRunning, EventKind::TaskSucceeded]);
    stop(handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_tasks_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let cancelled = Arc::new(AtomicU32::new(0));
    let handle = started(
        builder(dir.path()).agent(AgentSpec::native("sleeper").pool_size(2, 2), Sleeper { cancelled }),
        1,
    )
    .await;
    let id = handle.submit(TaskRequest::to_agent("sleeper", json!({"ms": 200}))).await.unwrap();
    let metrics = handle.tree_internals().metrics.clone();
    let report = handle.shutdown(Duration::from_secs(10)).await;
    assert!(report.drained && report.stopped_cleanly, "{report:?}");
    assert_eq!(report.abandoned_tasks, 0);
    assert_eq!(metrics.finished_total(), 1, "task {id} finished before the node stopped");
}

/// Records the order in which it sees inputs; `{"hold": ms}` keeps it busy first.
struct Recorder(Arc<parking_lot::Mutex<Vec<serde_json::Value>>>);

impl mark1::Agent for Recorder {
    async fn handle(
        &self,
        _: mark1::TaskContext,
        input: serde_json::Value,
    ) -> Result<serde_json::Value, mark1::AgentError> {
        if let Some(ms) = input["hold"].as_u64() {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        self.0.lock().push(input.clone());
        Ok(input)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_tasks_run_by_priority() {
    let dir = tempfile::tempdir().unwrap();
    let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let handle = started(
        builder(dir.path()).agent(AgentSpec::native("one").pool_size(1, 1), Recorder(seen.clone())),
        1,
    )
    .await;
    let busy = handle.submit(TaskRequest::to_agent("one", json!({"hold": 300}))).await.unwrap();
    running(&handle, busy).await;
    let mut ids = Vec::new();
    for (n, priority) in [(1, 1), (2, 9), (3, 5), (4, 9)] {
        ids.push(
            handle.submit(TaskRequest::to_agent("one", json!({"n": n})).priority(priority)).await.unwrap(),
        );
    }
    for id in ids {
        handle.wait(id, Duration::from_secs(10)).await.unwrap();
    }
    let order: Vec<_> = seen.lock().iter().filter_map(|v| v["n"].as_u64()).collect();
    assert_eq!(order, [2, 4, 3, 1], "highest priority first, arrival order within a priority");
    let err = handle.submit(TaskRequest::to_agent("one", json!(1)).priority(10)).await.unwrap_err();
    assert!(err.to_string().contains("priority 10"), "{err}");
    stop(handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_that_cannot_drain_reports_it_and_cancels_what_still_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (handle, cancelled, _) = one_long_task(dir.path()).await;
    let report = handle.shutdown(Duration::from_millis(300)).await;
    assert!(!report.drained, "{report:?}");
    assert_eq!(report.abandoned_tasks, 1);
    assert!(report.stopped_cleanly, "{report:?}");
    eventually(Duration::from_secs(5), "the attempt was cancelled, not left running", || async {
        cancelled.load(Ordering::SeqCst) == 1
    })
    .await;
    assert!(matches!(
        handle.submit(TaskRequest::to_agent("sleeper", json!(1))).await,
        Err(NodeError::Unavailable(_))
    ));
}

/// A node with one single-instance `sleeper` agent, busy with a task of a minute.
/// Returns the node, the count of cancellations the agent saw, and the task.
async fn one_long_task(dir: &std::path::Path) -> (mark1::NodeHandle, Arc<AtomicU32>, mark1::TaskId) {
    let cancelled = Arc::new(AtomicU32::new(0));
    let sleeper = Sleeper { cancelled: cancelled.clone() };
    let handle = started(builder(dir).agent(AgentSpec::native("sleeper").pool_size(1, 1), sleeper), 1).await;
    let id = handle.submit(TaskRequest::to_agent("sleeper", json!({"ms": 60_000}))).await.unwrap();
    running(&handle, id).await;
    (handle, cancelled, id)
}

/// Bounded waits answered early cancel their timers: a client waiting up to minutes on
/// quick tasks leaves nothing sleeping behind.
#[tokio::test]
async fn a_bounded_wait_answered_early_leaves_no_timer_behind() {
    let dir = tempfile::tempdir().unwrap();
    let handle = started(builder(dir.path()).agent(AgentSpec::native("echo"), Echo), 1).await;
    let alive = || tokio::runtime::Handle::current().metrics().num_alive_tasks();
    let before = alive();
    // Waits are filed in 10 ms slots with a timer each: spread them over 30 slots.
    for n in 0..30 {
        let done = handle
            .submit_and_wait(TaskRequest::to_agent("echo", json!(n)).durable(false), Duration::from_secs(300))
            .await
            .unwrap();
        assert_eq!(done.state, TaskState::Succeeded);
        tokio::time::sleep(Duration::from_millis(12)).await;
    }
    eventually(Duration::from_secs(5), "the 30 slots' timers are gone", || async { alive() < before + 10 })
        .await;
    stop(handle).await;
}
