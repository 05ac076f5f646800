use serde_json::json;

use super::*;

const ID: &str = "0190a000-0000-7000-8000-000000000001";

/// fetch → {each (for_each), approve} → report, listed out of order.
pub fn def() -> Value {
    json!({"name": "flow", "steps": [
        {"id": "fetch", "agent": "echo"},
        {"id": "report", "agent": "echo", "depends_on": ["each", "approve"]},
        {"id": "each", "capability": "text.echo", "depends_on": ["fetch"], "for_each": "steps.fetch.output"},
        {"id": "approve", "approval": {}, "depends_on": ["fetch"]},
    ]})
}

/// fetch succeeded; each runs with 2 of 3 items done; approve waits; report is queued.
pub fn view() -> Value {
    json!({
        "id": ID, "namespace": "default", "workflow": "flow", "version": 1, "state": "running",
        "input": {}, "output": null, "error": null, "idempotency_key": null, "submitter": "ann",
        "durable": true, "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:05Z",
        "steps": [
            {"id": "fetch", "state": "succeeded", "attempt": 1, "output": [1, 2, 3]},
            {"id": "report", "state": "queued", "attempt": 0},
            {"id": "each", "state": "running", "attempt": 1, "items": [1, 2, 3],
             "item_states": [{"state": "succeeded"}, {"state": "failed", "error": "x"}, {"state": "running"}]},
            {"id": "approve", "state": "waiting_approval", "attempt": 1},
        ]
    })
}

fn event(kind: &str, data: Value) -> Value {
    json!({"seq": 1, "time": "2026-01-01T00:00:09Z", "kind": kind, "namespace": "default", "subject": ID,
           "data": data})
}

fn lines(transitions: Vec<Transition>) -> Vec<String> {
    transitions.iter().map(ToString::to_string).collect()
}

fn watched() -> RunModel {
    let mut model = RunModel::new(ID);
    model.set_depends_on(depends_on(&def()));
    model.apply_view(&view());
    model
}

#[test]
fn a_first_view_reports_the_run_and_every_step_that_started() {
    let mut model = RunModel::new(ID);
    model.set_depends_on(depends_on(&def()));
    assert_eq!(
        lines(model.apply_view(&view())),
        [
            "run running",
            "step fetch succeeded (attempt 1)",
            "step each running (attempt 1)",
            "step approve waiting_approval (attempt 1)",
        ]
    );
    let ids: Vec<&str> = model.ordered().iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["fetch", "each", "approve", "report"], "dependency order");
    assert_eq!(model.step("report").unwrap().depends_text(), "each,approve");
    assert_eq!(model.step("fetch").unwrap().depends_text(), "-");
    assert_eq!(model.step("each").unwrap().item_progress().as_deref(), Some("2/3"));
    assert!(lines(model.apply_view(&view())).is_empty(), "the same view again changes nothing");
}

#[test]
fn events_move_steps_items_and_the_run_on() {
    let mut model = watched();
    let item =
        event("step.item_succeeded", json!({"workflow": "flow", "step": "each", "attempt": 1, "index": 2}));
    assert_eq!(lines(model.apply_event(&item)), ["step each item 2 succeeded (3/3)"]);
    assert!(model.apply_event(&item).is_empty(), "an item is done once");
    let done = event("step.succeeded", json!({"step": "each", "attempt": 1}));
    assert_eq!(lines(model.apply_event(&done)), ["step each succeeded (attempt 1): 3/3 items"]);
    let decided =
        event("step.decided", json!({"step": "approve", "attempt": 1, "approved": true, "by": "ann"}));
    assert_eq!(lines(model.apply_event(&decided)), ["step approve approved by ann"]);
    let planned = event(
        "step.planned",
        json!({"step": "approve", "attempt": 1, "planned_steps": 2, "model": "llama3.1"}),
    );
    assert_eq!(lines(model.apply_event(&planned)), ["step approve planned 2 steps with llama3.1"]);
    assert!(model.apply_event(&planned).is_empty(), "a plan is shown once");
    assert!(model.apply_event(&decided).is_empty());
    model.apply_event(&event("step.succeeded", json!({"step": "approve", "attempt": 1})));
    let running = event("step.running", json!({"step": "report", "attempt": 1}));
    assert_eq!(lines(model.apply_event(&running)), ["step report running (attempt 1)"]);
    let failed =
        event("step.failed", json!({"step": "report", "attempt": 1, "state": "timed_out", "error": "late"}));
    assert_eq!(lines(model.apply_event(&failed)), ["step report timed_out (attempt 1): late"]);
    let run = event("run.failed", json!({"workflow": "flow", "error": "step report timed out"}));
    assert_eq!(lines(model.apply_event(&run)), ["run failed: step report timed out"]);
    assert!(model.is_final());
    assert_eq!(model.elapsed(SystemTime::now()), Some(Duration::from_secs(9)), "created to the final event");
    let other = json!({"kind": "run.succeeded", "subject": "another-run", "data": {}});
    assert!(model.apply_event(&other).is_empty(), "other runs' events are not this run's");
}

#[test]
fn a_retry_is_reported_and_the_next_attempt_starts_afresh() {
    let mut model = watched();
    let retry_at = (UNIX_EPOCH + Duration::from_secs(1_767_225_610)).duration_since(UNIX_EPOCH).unwrap();
    let retrying = event(
        "step.retrying",
        json!({"step": "each", "attempt": 1, "error": "boom", "state": "failed", "retry_at": retry_at.as_millis() as u64}),
    );
    assert_eq!(lines(model.apply_event(&retrying)), ["step each retrying (attempt 1): boom"]);
    let step = model.step("each").unwrap();
    assert_eq!(step.state, "queued");
    let now = UNIX_EPOCH + Duration::from_secs(1_767_225_600);
    assert_eq!(step.detail(now), "retry in 10s; boom");
    let again = event("step.running", json!({"step": "each", "attempt": 2}));
    assert_eq!(lines(model.apply_event(&again)), ["step each running (attempt 2)"]);
    let step = model.step("each").unwrap();
    assert_eq!((step.item_progress().as_deref(), step.error.as_ref()), (Some("0/3"), None));
}

#[test]
fn an_older_view_never_takes_a_step_back() {
    let mut model = watched();
    model.apply_event(&event("step.succeeded", json!({"step": "each", "attempt": 1})));
    model.apply_event(&event("run.succeeded", json!({})));
    // The view was read before the node applied those entries.
    assert!(lines(model.apply_view(&view())).is_empty(), "{model:?}");
    assert_eq!(model.step("each").unwrap().state, "succeeded");
    assert_eq!(model.state, "succeeded", "a final run stays final");

    // A newer view moves on what no event told (missed while reconnecting).
    let mut newer = view();
    newer["steps"][1] = json!({"id": "report", "state": "skipped", "attempt": 0, "skip_reason": "upstream"});
    assert_eq!(lines(model.apply_view(&newer)), ["step report skipped: upstream"]);
}

#[test]
fn steps_added_to_the_run_appear_after_their_dependencies() {
    let mut model = watched();
    let mut added = view();
    added["steps"].as_array_mut().unwrap().insert(0, json!({"id": "extra", "state": "queued", "attempt": 0}));
    let mut deps = depends_on(&def());
    deps.insert("extra".into(), vec!["report".into()]);
    model.set_depends_on(deps);
    assert!(lines(model.apply_view(&added)).is_empty(), "a queued step is no transition");
    let ids: Vec<&str> = model.ordered().iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["fetch", "each", "approve", "report", "extra"]);
    // An event may name a step no view showed yet.
    let running = event("step.running", json!({"step": "late", "attempt": 1}));
    assert_eq!(lines(model.apply_event(&running)), ["step late running (attempt 1)"]);
    assert_eq!(model.ordered().len(), 6);
    assert_eq!(model.step("late").unwrap().depends_text(), "?", "the definition does not have it");
}

#[test]
fn details_say_why_a_step_waits_or_was_skipped() {
    let now = UNIX_EPOCH + Duration::from_secs(100);
    let step = |state: &str| Step { state: state.into(), ..Step::default() };
    assert_eq!(step("waiting_approval").detail(now), "");
    let timed = Step { decide_at: Some(now + Duration::from_secs(90)), ..step("waiting_approval") };
    assert_eq!(timed.detail(now), "decides itself in 1m 30s");
    let skipped = Step { skip_reason: Some("condition".into()), ..step("skipped") };
    assert_eq!(skipped.detail(now), "skipped: condition");
    let handled = Step { error: Some("boom".into()), handled: true, ..step("failed") };
    assert_eq!(handled.detail(now), "boom; (handled, the run goes on)");
    assert_eq!(short(Duration::from_millis(61_500)), "1m 1s");
    assert_eq!(short(Duration::from_millis(250)), "250ms");
}
