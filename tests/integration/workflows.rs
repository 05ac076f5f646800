//! Workflow runs on whole nodes (SQLite, the default store): definitions, versions,
//! execution, live changes, and resuming after a restart.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mark1::workflows::{
    JournalKind, RunChange, RunId, RunState, RunView, StartRun, StepState, WorkflowDef, WorkflowError,
};
use mark1::{AgentSpec, NodeError, NodeHandle};
use serde_json::{json, Value};

use crate::support::{builder, start_run, started, stop, Echo, Flaky, Sleeper};

fn def(v: Value) -> WorkflowDef {
    serde_json::from_value(v).expect("a definition")
}

fn start(workflow: &str, input: Value) -> StartRun {
    start_run(workflow, input, "test")
}

async fn node(dir: &std::path::Path) -> NodeHandle {
    let cancelled = Arc::new(AtomicU32::new(0));
    started(
        builder(dir)
            .agent(AgentSpec::native("echo").capability("text.echo"), Echo)
            .agent(AgentSpec::native("sleeper"), Sleeper { cancelled }),
        2,
    )
    .await
}

async fn finished(handle: &NodeHandle, id: RunId) -> RunView {
    let view = handle.wait_run(id, Duration::from_secs(20)).await.expect("the run is readable");
    assert!(view.record.state.is_final(), "the run ended in time: {view:?}");
    view
}

fn step_state(view: &RunView, step: &str) -> StepState {
    view.steps.iter().find(|s| s.id == step).unwrap_or_else(|| panic!("step {step}")).state
}

#[tokio::test]
async fn a_dag_fans_out_branches_joins_and_journals_every_transition() {
    let dir = tempfile::tempdir().unwrap();
    let handle = node(dir.path()).await;
    let created = handle
        .create_workflow(
            "default",
            def(json!({"name": "dag", "input_schema": {"type": "object", "required": ["items"]}, "steps": [
                {"id": "each", "capability": "text.echo", "for_each": "input.items", "concurrency": 2,
                 "input": {"n": "{{ item }}"}},
                {"id": "big", "agent": "echo", "depends_on": ["each"], "when": "steps.each.output | length > 2",
                 "input": {"count": "{{ steps.each.output | length }}"}},
                {"id": "small", "agent": "echo", "depends_on": ["each"], "when": "steps.each.output | length <= 2"},
                {"id": "join", "agent": "echo", "depends_on": ["big", "small"],
                 "input": {"sum": "{{ steps.each.output | map(attribute='n') | sum }}"}},
            ], "output": {"sum": "{{ steps.join.output.sum }}", "count": "{{ steps.big.output.count }}"}})),
        )
        .await
        .expect("a valid definition is stored");
    assert_eq!(created.version, 1);

    let run = handle.start_run(start("dag", json!({"items": [1, 2, 3]}))).await.expect("the run starts");
    let view = finished(&handle, run.id).await;
    assert_eq!(view.record.state, RunState::Succeeded, "{view:?}");
    assert_eq!(view.record.output, Some(json!({"sum": 6, "count": 3})));
    assert_eq!(step_state(&view, "small"), StepState::Skipped);
    assert_eq!(step_state(&view, "join"), StepState::Succeeded);

    let journal = handle.store().journal(run.id).await.unwrap();
    let kinds: Vec<JournalKind> = journal.iter().map(|e| e.kind).collect();
    assert_eq!(kinds.first(), Some(&JournalKind::RunStarted));
    assert_eq!(kinds.last(), Some(&JournalKind::RunSucceeded));
    assert_eq!(kinds.iter().filter(|k| **k == JournalKind::ItemSucceeded).count(), 3);
    let seqs: Vec<u64> = journal.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=journal.len() as u64).collect::<Vec<_>>());
    let stored = handle.store().run(run.id).await.unwrap().unwrap();
    assert_eq!((stored.state, stored.owner), (RunState::Succeeded, None));

    let bad = handle.start_run(start("dag", json!({"nope": 1}))).await.unwrap_err();
    assert!(matches!(bad, NodeError::Workflow(WorkflowError::InvalidInput(_))), "{bad}");
    stop(handle).await;
}

#[tokio::test]
async fn a_running_run_keeps_its_version_and_live_changes_apply() {
    let dir = tempfile::tempdir().unwrap();
    let handle = node(dir.path()).await;
    handle
        .create_workflow(
            "default",
            def(json!({"name": "gate", "steps": [
                {"id": "wait", "agent": "sleeper", "input": {"ms": 200}},
                {"id": "approve", "approval": {}, "depends_on": ["wait"]},
                {"id": "after", "agent": "echo", "depends_on": ["approve"],
                 "input": "{{ steps.approve.output.comment }}"},
            ]})),
        )
        .await
        .unwrap();
    let run = handle.start_run(start("gate", json!({}))).await.unwrap();
    handle
        .create_workflow("default", def(json!({"name": "gate", "steps": [{"id": "other", "agent": "echo"}]})))
        .await
        .unwrap();

    crate::support::eventually(Duration::from_secs(10), "the run waits for approval", || async {
        handle.get_run(run.id).await.map(|v| v.record.state == RunState::WaitingApproval).unwrap_or(false)
    })
    .await;
    let view = handle.get_run(run.id).await.unwrap();
    assert_eq!(view.record.version, 1);
    assert_eq!(view.steps.len(), 3, "the run keeps the version it started with");

    let added =
        serde_json::from_value(json!([{"id": "extra", "agent": "echo", "depends_on": ["after"]}])).unwrap();
    handle.change_run(run.id, RunChange::AddSteps { steps: added }, "ann").await.expect("steps are added");
    let unknown = serde_json::from_value(json!([{"id": "bad", "agent": "nobody"}])).unwrap();
    let refused = handle.change_run(run.id, RunChange::AddSteps { steps: unknown }, "ann").await.unwrap_err();
    assert!(matches!(refused, NodeError::Workflow(WorkflowError::Invalid(_))), "{refused}");

    let decide = RunChange::Decide { step: "approve".into(), approved: true, comment: "ship it".into() };
    handle.change_run(run.id, decide, "ann").await.expect("the approval is decided");
    let view = finished(&handle, run.id).await;
    assert_eq!(view.record.state, RunState::Succeeded, "{view:?}");
    assert_eq!(step_state(&view, "extra"), StepState::Succeeded);
    assert_eq!(view.steps.iter().find(|s| s.id == "after").unwrap().output, Some(json!("ship it")));

    let newer = handle.start_run(start("gate", json!({}))).await.unwrap();
    assert_eq!(newer.version, 2, "a new run takes the latest version");
    stop(handle).await;
}

#[tokio::test]
async fn a_failed_step_is_retried_by_hand_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let flaky = Flaky { calls: calls.clone(), succeed_on: 2, retryable: false };
    let handle = started(
        builder(dir.path()).agent(AgentSpec::native("echo"), Echo).agent(AgentSpec::native("flaky"), flaky),
        2,
    )
    .await;
    handle
        .create_workflow(
            "default",
            def(json!({"name": "retry", "steps": [
                {"id": "first", "agent": "flaky"},
                {"id": "then", "agent": "echo", "depends_on": ["first"], "input": "{{ steps.first.output.key }}"},
            ]})),
        )
        .await
        .unwrap();
    let run = handle.start_run(start("retry", json!({}))).await.unwrap();
    let view = finished(&handle, run.id).await;
    assert_eq!(view.record.state, RunState::Failed);
    assert_eq!(step_state(&view, "then"), StepState::Queued, "a failed run leaves what never started queued");

    let view = handle.change_run(run.id, RunChange::RetryStep { step: "first".into() }, "ann").await.unwrap();
    assert_eq!(view.record.state, RunState::Running, "a retried step runs its failed run again");
    let view = finished(&handle, run.id).await;
    assert_eq!(view.record.state, RunState::Succeeded, "{view:?}");
    let key = format!("run:{}:first:2", run.id);
    assert_eq!(
        view.steps.iter().find(|s| s.id == "then").unwrap().output,
        Some(json!(key)),
        "attempt 2's key"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    stop(handle).await;
}

#[tokio::test]
async fn a_step_whose_input_fails_to_render_fails_instead_of_waiting_forever() {
    let dir = tempfile::tempdir().unwrap();
    let handle = node(dir.path()).await;
    let bad = def(
        json!({"name": "bad_input", "steps": [{"id": "a", "agent": "echo", "input": {"n": "{{ input.n + 1 }}"}}]}),
    );
    handle.create_workflow("default", bad).await.unwrap();
    let run = handle.start_run(start("bad_input", json!({"n": "one"}))).await.unwrap();
    let view = finished(&handle, run.id).await;
    assert_eq!(
        (view.record.state, step_state(&view, "a")),
        (RunState::Failed, StepState::Failed),
        "{view:?}"
    );
    let error = view.steps[0].error.as_deref().unwrap_or_default();
    assert!(error.starts_with("input: "), "{error}");
    stop(handle).await;
}

#[tokio::test]
async fn cancel_stops_the_steps_in_flight_and_skip_gives_an_output() {
    let dir = tempfile::tempdir().unwrap();
    let cancelled = Arc::new(AtomicU32::new(0));
    let handle = started(
        builder(dir.path())
            .agent(AgentSpec::native("echo"), Echo)
            .agent(AgentSpec::native("sleeper"), Sleeper { cancelled: cancelled.clone() }),
        2,
    )
    .await;
    handle
        .create_workflow(
            "default",
            def(json!({"name": "long", "steps": [
                {"id": "slow", "agent": "sleeper", "input": {"ms": 60000}},
                {"id": "later", "agent": "echo", "depends_on": ["slow"]},
            ]})),
        )
        .await
        .unwrap();
    let run = handle.start_run(start("long", json!({}))).await.unwrap();
    let skip = RunChange::SkipStep { step: "later".into(), output: json!("given") };
    handle.change_run(run.id, skip, "ann").await.expect("a queued step can be skipped");
    let cancel = RunChange::Cancel { reason: "enough".into() };
    handle.change_run(run.id, cancel, "ann").await.unwrap();
    let view = finished(&handle, run.id).await;
    assert_eq!(view.record.state, RunState::Cancelled);
    assert_eq!(view.record.error.as_deref(), Some("cancelled by ann: enough"), "the reason is kept");
    assert_eq!(step_state(&view, "slow"), StepState::Cancelled);
    let later = view.steps.iter().find(|s| s.id == "later").unwrap();
    assert_eq!((later.state, later.output.clone()), (StepState::Skipped, Some(json!("given"))));
    let again = handle.change_run(run.id, RunChange::Cancel { reason: "twice".into() }, "ann").await;
    assert!(again.is_err(), "a finished run cannot change");
    crate::support::eventually(Duration::from_secs(5), "the step's task is cancelled too", || async {
        cancelled.load(Ordering::SeqCst) == 1
    })
    .await;
    stop(handle).await;
}

#[tokio::test]
async fn idempotency_keys_return_the_first_run_and_sub_workflows_run_as_steps() {
    let dir = tempfile::tempdir().unwrap();
    let handle = node(dir.path()).await;
    handle
        .create_workflow(
            "default",
            def(json!({"name": "child", "steps": [{"id": "c", "agent": "echo"}],
                                                "output": {"got": "{{ steps.c.output }}"}})),
        )
        .await
        .unwrap();
    handle
        .create_workflow(
            "default",
            def(json!({"name": "parent", "steps": [
                {"id": "sub", "workflow": {"name": "child", "version": 1}, "input": {"x": "{{ input.x }}"}},
            ], "output": "{{ steps.sub.output.got.x }}"})),
        )
        .await
        .unwrap();
    let mut request = start("parent", json!({"x": 7}));
    request.idempotency_key = Some("once".into());
    let first = handle.start_run(request.clone()).await.unwrap();
    let again = handle.start_run(request.clone()).await.unwrap();
    assert_eq!(first.id, again.id);
    request.input = json!({"x": 8});
    let conflict = handle.start_run(request).await.unwrap_err();
    assert!(matches!(conflict, NodeError::Workflow(WorkflowError::IdempotencyConflict { .. })), "{conflict}");

    let view = finished(&handle, first.id).await;
    assert_eq!(
        (view.record.state, view.record.output.clone()),
        (RunState::Succeeded, Some(json!(7))),
        "{view:?}"
    );
    stop(handle).await;
}

#[tokio::test]
async fn cancelling_a_run_cancels_the_sub_run_of_its_step() {
    let dir = tempfile::tempdir().unwrap();
    let handle = node(dir.path()).await;
    handle
        .create_workflow(
            "default",
            def(json!({"name": "slow_child", "steps": [{"id": "s", "agent": "sleeper", "input": {"ms": 60000}}]})),
        )
        .await
        .unwrap();
    handle
        .create_workflow(
            "default",
            def(json!({"name": "holder", "steps": [{"id": "sub", "workflow": {"name": "slow_child"}}]})),
        )
        .await
        .unwrap();
    let parent = handle.start_run(start("holder", json!({}))).await.unwrap();
    let query = mark1::workflows::RunQuery { workflow: Some("slow_child".into()), ..Default::default() };
    let child_running = || async {
        let id = handle.runs(&query).await.ok()?.first()?.id;
        let view = handle.get_run(id).await.ok()?;
        view.steps.iter().any(|s| s.state == StepState::Running).then_some(id)
    };
    crate::support::eventually(Duration::from_secs(10), "the sub-run is running its step", || async {
        child_running().await.is_some()
    })
    .await;
    let child = child_running().await.unwrap();
    handle.change_run(parent.id, RunChange::Cancel { reason: "stop".into() }, "ann").await.unwrap();
    assert_eq!(finished(&handle, parent.id).await.record.state, RunState::Cancelled);
    let view = finished(&handle, child).await;
    assert_eq!(view.record.state, RunState::Cancelled, "{view:?}");
    assert_eq!(view.record.parent.as_ref().map(|p| p.run), Some(parent.id));
    stop(handle).await;
}
