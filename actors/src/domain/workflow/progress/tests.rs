use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

use super::*;

fn def(v: Value) -> WorkflowDef {
    serde_json::from_value(v).unwrap()
}

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

/// A run under test, with its whole journal kept so replays can be compared.
struct Sim {
    p: RunProgress,
    journal: Vec<JournalEntry>,
    templates: Templates,
}

impl Sim {
    fn start(definition: Value, input: Value) -> Sim {
        let p = RunProgress::new(RunId::new(), def(definition), input);
        let mut sim = Sim { p, journal: Vec::new(), templates: Templates::new() };
        let entries = sim.p.advance(&sim.templates, t0());
        sim.keep(entries);
        sim
    }

    fn keep(&mut self, entries: Vec<JournalEntry>) -> Vec<(JournalKind, Option<String>)> {
        let summary = entries.iter().map(|e| (e.kind, e.step.clone())).collect();
        self.journal.extend(entries);
        summary
    }

    fn done(&mut self, step: &str, item: Option<usize>, output: Value) {
        let attempt = self.p.step(step).unwrap().attempt;
        let e = self.p.complete(&self.templates, step, item, attempt, UnitOutcome::Succeeded(output), t0());
        self.keep(e);
    }

    fn fail(&mut self, step: &str, item: Option<usize>, at: SystemTime) {
        let attempt = self.p.step(step).unwrap().attempt;
        let outcome = UnitOutcome::Failed { state: StepState::Failed, error: "boom".into() };
        let e = self.p.complete(&self.templates, step, item, attempt, outcome, at);
        self.keep(e);
    }

    fn state(&self, step: &str) -> StepState {
        self.p.step(step).unwrap().state
    }

    fn running(&self) -> Vec<&str> {
        self.p.steps.iter().filter(|s| s.state == StepState::Running).map(|s| s.id.as_str()).collect()
    }

    /// Replaying the journal gives the same progress as living through it.
    fn assert_replays(&self) {
        let fresh = RunProgress::replay(self.p.run, self.original_def(), self.p.input.clone(), &self.journal);
        assert_eq!(fresh.steps, self.p.steps);
        let rebuilt = Index::build(&self.p.def, &self.p.steps);
        assert_eq!(self.p.index, rebuilt, "the index kept entry by entry is the one built from scratch");
        assert_eq!(
            (fresh.state, &fresh.output, fresh.next_seq),
            (self.p.state, &self.p.output, self.p.next_seq)
        );
        let seqs: Vec<u64> = self.journal.iter().map(|e| e.seq).collect();
        assert_eq!(
            seqs,
            (1..=self.journal.len() as u64).collect::<Vec<_>>(),
            "seq counts from 1 without gaps"
        );
    }

    fn original_def(&self) -> WorkflowDef {
        let mut d = self.p.def.clone();
        let added: usize = self
            .journal
            .iter()
            .filter(|e| e.kind == JournalKind::StepsAdded)
            .map(|e| e.data["steps"].as_array().unwrap().len())
            .sum();
        d.steps.truncate(d.steps.len() - added);
        d
    }
}

#[test]
fn a_chain_runs_in_order_and_outputs_flow_through_templates() {
    let mut s = Sim::start(
        json!({"name": "w", "steps": [
            {"id": "a", "agent": "x", "input": {"n": "{{ input.n }}"}},
            {"id": "b", "agent": "x", "depends_on": ["a"], "input": {"m": "{{ steps.a.output.n + 1 }}"}},
        ], "output": {"final": "{{ steps.b.output }}"}}),
        json!({"n": 1}),
    );
    assert_eq!(s.running(), ["a"]);
    assert_eq!(s.p.render_input(&s.templates, 0, None).unwrap(), json!({"n": 1}));
    s.done("a", None, json!({"n": 1}));
    assert_eq!(s.running(), ["b"]);
    assert_eq!(s.p.render_input(&s.templates, 1, None).unwrap(), json!({"m": 2}));
    s.done("b", None, json!("B"));
    assert_eq!(s.p.state, RunState::Succeeded);
    assert_eq!(s.p.output, Some(json!({"final": "B"})));
    s.assert_replays();
}

#[test]
fn a_false_condition_skips_and_the_join_still_runs() {
    let mut s = Sim::start(
        json!({"name": "w", "steps": [
            {"id": "check", "agent": "x"},
            {"id": "yes", "agent": "x", "depends_on": ["check"], "when": "steps.check.output.ok"},
            {"id": "no", "agent": "x", "depends_on": ["check"], "when": "{{ not steps.check.output.ok }}"},
            {"id": "join", "agent": "x", "depends_on": ["yes", "no"]},
        ]}),
        json!({}),
    );
    s.done("check", None, json!({"ok": false}));
    assert_eq!((s.state("yes"), s.state("no")), (StepState::Skipped, StepState::Running));
    s.done("no", None, json!(1));
    assert_eq!(s.running(), ["join"]);
    s.done("join", None, json!(2));
    assert_eq!(s.p.state, RunState::Succeeded);
    s.assert_replays();
}

#[test]
fn failures_fail_the_run_continue_or_route() {
    // on_error: fail (the default) fails the run and cancels what runs beside it.
    let mut s = Sim::start(
        json!({"name": "w", "steps": [{"id": "a", "agent": "x"}, {"id": "b", "agent": "x"}]}),
        json!({}),
    );
    s.fail("a", None, t0());
    assert_eq!(s.p.state, RunState::Failed);
    assert_eq!(s.state("b"), StepState::Cancelled);
    assert!(s.p.error.as_deref().unwrap().contains("step 'a' failed: boom"));
    s.assert_replays();

    // continue: dependents run and see the error.
    let mut s = Sim::start(
        json!({"name": "w", "steps": [
            {"id": "a", "agent": "x", "on_error": "continue"},
            {"id": "b", "agent": "x", "depends_on": ["a"], "input": "{{ steps.a.error }}"},
        ]}),
        json!({}),
    );
    s.fail("a", None, t0());
    assert_eq!(s.running(), ["b"]);
    assert_eq!(s.p.render_input(&s.templates, 1, None).unwrap(), json!("boom"));
    s.done("b", None, json!(null));
    assert_eq!(s.p.state, RunState::Succeeded);

    // goto: the route runs, the failed step's dependents are skipped, and a route
    // nothing went to is skipped.
    let definition = json!({"name": "w", "steps": [
        {"id": "a", "agent": "x", "on_error": {"goto": "cleanup"}},
        {"id": "after", "agent": "x", "depends_on": ["a"]},
        {"id": "cleanup", "agent": "x"},
    ]});
    let mut s = Sim::start(definition.clone(), json!({}));
    assert_eq!(s.running(), ["a"], "a route waits to be routed to");
    s.fail("a", None, t0());
    assert_eq!((s.state("after"), s.state("cleanup")), (StepState::Skipped, StepState::Running));
    s.done("cleanup", None, json!("cleaned"));
    assert_eq!(s.p.state, RunState::Succeeded);
    s.assert_replays();
    let mut s = Sim::start(definition, json!({}));
    s.done("a", None, json!(1));
    s.done("after", None, json!(2));
    assert_eq!(s.state("cleanup"), StepState::Skipped);
    assert_eq!(s.p.step("cleanup").unwrap().skip_reason, Some(SkipReason::NotRouted));
    assert_eq!(s.p.state, RunState::Succeeded);
}

#[test]
fn retries_wait_their_backoff_and_keep_counting_attempts() {
    let mut s = Sim::start(
        json!({"name": "w", "steps": [{"id": "a", "agent": "x", "retry": {"attempts": 3, "backoff": "2s"}}]}),
        json!({}),
    );
    s.fail("a", None, t0());
    let a = s.p.step("a").unwrap();
    assert_eq!((a.state, a.attempt, a.retry_at), (StepState::Queued, 1, Some(t0() + Duration::from_secs(2))));
    assert!(s.p.advance(&s.templates, t0() + Duration::from_secs(1)).is_empty(), "not before the backoff");
    let e = s.p.advance(&s.templates, t0() + Duration::from_secs(2));
    s.keep(e);
    assert_eq!((s.state("a"), s.p.step("a").unwrap().attempt), (StepState::Running, 2));
    s.fail("a", None, t0() + Duration::from_secs(2));
    assert_eq!(s.p.next_timer(), Some(t0() + Duration::from_secs(6)), "the backoff doubles");
    let e = s.p.advance(&s.templates, t0() + Duration::from_secs(6));
    s.keep(e);
    s.fail("a", None, t0() + Duration::from_secs(6));
    assert_eq!(s.p.state, RunState::Failed, "three attempts, then the step fails");
    s.assert_replays();
}

#[test]
fn fan_out_respects_its_concurrency_joins_in_order_and_retries_only_failed_items() {
    let mut s = Sim::start(
        json!({"name": "w", "steps": [
            {"id": "each", "agent": "x", "for_each": "input.files", "concurrency": 2,
             "input": {"file": "{{ item }}", "i": "{{ index }}"}, "retry": {"attempts": 2}},
            {"id": "sum", "agent": "x", "depends_on": ["each"], "input": "{{ steps.each.output }}"},
        ]}),
        json!({"files": ["a", "b", "c"]}),
    );
    let running = |s: &Sim| s.p.steps[0].item_states.iter().filter(|i| i.state == StepState::Running).count();
    assert_eq!(running(&s), 2);
    assert_eq!(s.p.render_input(&s.templates, 0, Some(1)).unwrap(), json!({"file": "b", "i": 1}));
    s.done("each", Some(1), json!("B"));
    assert_eq!(running(&s), 2, "the third item starts when one ends");
    s.fail("each", Some(2), t0());
    assert_eq!(
        (s.state("each"), s.p.step("each").unwrap().attempt),
        (StepState::Running, 2),
        "retried at once"
    );
    s.done("each", Some(0), json!("A"));
    let each = s.p.step("each").unwrap();
    assert_eq!(each.item_states[1].state, StepState::Succeeded, "a retry keeps items that succeeded");
    s.done("each", Some(2), json!("C"));
    assert_eq!(s.p.step("each").unwrap().output, Some(json!(["A", "B", "C"])));
    assert_eq!(s.p.render_input(&s.templates, 1, None).unwrap(), json!(["A", "B", "C"]));
    s.done("sum", None, json!(3));
    assert_eq!(s.p.state, RunState::Succeeded);
    s.assert_replays();
}

#[test]
fn a_fan_out_over_nothing_succeeds_with_an_empty_list() {
    let s = Sim::start(
        json!({"name": "w", "steps": [{"id": "e", "agent": "x", "for_each": "input.none"}]}),
        json!({}),
    );
    assert_eq!(s.p.state, RunState::Succeeded);
    assert_eq!(s.p.step("e").unwrap().output, Some(json!([])));
}

#[test]
fn run_concurrency_bounds_steps_and_items_together() {
    let s = Sim::start(
        json!({"name": "w", "concurrency": 3, "steps": [
            {"id": "a", "agent": "x"}, {"id": "b", "agent": "x"},
            {"id": "c", "agent": "x", "for_each": "[1, 2, 3, 4]"},
        ]}),
        json!({}),
    );
    assert_eq!(s.p.running_units(), 3);
}

#[test]
fn approvals_wait_then_follow_a_decision_or_their_default() {
    let definition = json!({"name": "w", "steps": [
        {"id": "gate", "approval": {"timeout": "1h", "default": "approve"}},
        {"id": "ship", "agent": "x", "depends_on": ["gate"]},
    ]});
    let mut s = Sim::start(definition.clone(), json!({}));
    assert_eq!(
        (s.state("gate"), s.p.record_state()),
        (StepState::WaitingApproval, RunState::WaitingApproval)
    );
    let e = s.p.decide(&s.templates, "gate", false, "not today", "ann", t0()).unwrap();
    s.keep(e);
    assert_eq!(s.p.state, RunState::Failed);
    assert!(s.p.step("gate").unwrap().error.as_deref().unwrap().contains("rejected by ann: not today"));
    s.assert_replays();

    let mut s = Sim::start(definition.clone(), json!({}));
    let e = s.p.decide(&s.templates, "gate", true, "ok", "ann", t0()).unwrap();
    s.keep(e);
    assert_eq!(
        s.p.step("gate").unwrap().output,
        Some(json!({"approved": true, "comment": "ok", "by": "ann"}))
    );
    assert_eq!(s.running(), ["ship"]);
    assert!(matches!(
        s.p.decide(&s.templates, "gate", true, "", "ann", t0()),
        Err(ChangeError::WrongState { .. })
    ));

    let mut s = Sim::start(definition, json!({}));
    assert_eq!(s.p.next_timer(), Some(t0() + Duration::from_secs(3600)));
    let e = s.p.advance(&s.templates, t0() + Duration::from_secs(3600));
    s.keep(e);
    assert_eq!(s.running(), ["ship"], "the default approves at the timeout");
    s.assert_replays();
}

#[test]
fn live_changes_skip_retry_add_and_cancel() {
    let mut s = Sim::start(
        json!({"name": "w", "steps": [
            {"id": "a", "agent": "x"},
            {"id": "b", "agent": "x", "depends_on": ["a"]},
            {"id": "c", "agent": "x", "depends_on": ["a", "b"], "input": "{{ steps.b.output }}"},
        ]}),
        json!({}),
    );
    let e = s.p.skip(&s.templates, "b", json!("given"), "ann", t0()).unwrap();
    s.keep(e);
    assert!(s.p.skip(&s.templates, "a", json!(1), "ann", t0()).is_err(), "a running step cannot be skipped");
    s.fail("a", None, t0());
    assert_eq!(s.p.state, RunState::Failed);
    let e = s.p.retry(&s.templates, "a", "ann", t0()).unwrap();
    s.keep(e);
    assert_eq!((s.p.state, s.running(), s.p.step("a").unwrap().attempt), (RunState::Running, vec!["a"], 2));
    s.done("a", None, json!(1));
    assert_eq!(s.p.render_input(&s.templates, 2, None).unwrap(), json!("given"));
    let added: Vec<StepDef> =
        serde_json::from_value(json!([{"id": "d", "agent": "x", "depends_on": ["c"]}])).unwrap();
    let e = s.p.add_steps(&s.templates, added, "ann", t0()).unwrap();
    s.keep(e);
    s.done("c", None, json!(3));
    assert_eq!(s.running(), ["d"]);
    s.assert_replays();
    let e = s.p.cancel("ann", "enough", t0()).unwrap();
    s.keep(e);
    assert_eq!((s.p.state, s.state("d")), (RunState::Cancelled, StepState::Cancelled));
    assert!(matches!(
        s.p.retry(&s.templates, "d", "ann", t0()),
        Err(ChangeError::RunFinal(RunState::Cancelled))
    ));
    s.assert_replays();
}

#[test]
fn stale_reports_change_nothing() {
    let mut s = Sim::start(json!({"name": "w", "steps": [{"id": "a", "agent": "x"}]}), json!({}));
    let e = s.p.complete(&s.templates, "a", None, 7, UnitOutcome::Succeeded(json!(1)), t0());
    assert!(e.is_empty());
    let e = s.p.complete(&s.templates, "nope", None, 1, UnitOutcome::Succeeded(json!(1)), t0());
    assert!(e.is_empty());
}

fn plan(steps: Value) -> Plan {
    Plan { goal: "g".into(), model: "oa/m".into(), steps: serde_json::from_value(steps).unwrap() }
}

fn kinds(entries: &[(JournalKind, Option<String>)]) -> Vec<JournalKind> {
    entries.iter().map(|(kind, _)| *kind).collect()
}

#[test]
fn a_plan_step_plans_then_runs_its_plan_in_the_same_attempt_and_replans_on_retry() {
    let mut s = Sim::start(
        json!({"name": "w", "steps": [
            {"id": "p", "plan": {"goal": "do {{ input.what }}"}, "retry": {"attempts": 2}},
            {"id": "after", "agent": "x", "depends_on": ["p"], "input": "{{ steps.p.output.a }}"},
        ]}),
        json!({"what": "it"}),
    );
    assert_eq!(s.running(), ["p"], "asking the model is the step's first phase");
    assert_eq!(s.p.render_goal(&s.templates, "do {{ input.what }}").unwrap(), "do it");
    let e = s.p.planned(&s.templates, "p", 1, plan(json!([{"id": "a", "agent": "x"}])), t0());
    assert_eq!(kinds(&s.keep(e)), [JournalKind::StepPlanned, JournalKind::StepRunning]);
    let p = s.p.step("p").unwrap();
    assert_eq!((p.state, p.attempt), (StepState::Running, 1), "the plan runs in the attempt that planned it");
    assert_eq!(p.plan.as_ref().map(|plan| plan.steps[0].id.as_str()), Some("a"));
    let late = s.p.planned(&s.templates, "p", 1, plan(json!([{"id": "b", "agent": "x"}])), t0());
    assert!(late.is_empty(), "a second plan for the attempt changes nothing");
    s.assert_replays();

    s.fail("p", None, t0());
    let p = s.p.step("p").unwrap();
    assert_eq!((p.state, p.attempt, p.plan.is_none()), (StepState::Running, 2, true), "a retry plans anew");
    let stale = s.p.planned(&s.templates, "p", 1, plan(json!([{"id": "a", "agent": "x"}])), t0());
    assert!(stale.is_empty(), "the first attempt's plan is too late");
    let e = s.p.planned(&s.templates, "p", 2, plan(json!([{"id": "a", "agent": "x"}])), t0());
    s.keep(e);
    s.done("p", None, json!({"a": "A"}));
    s.done("after", None, json!("done"));
    assert_eq!(s.p.state, RunState::Succeeded);
    assert_eq!(s.p.render_input(&s.templates, 1, None).unwrap(), json!("A"), "the plan's output flows on");
    s.assert_replays();
}

#[test]
fn a_held_plan_waits_for_a_decision_then_runs_or_fails() {
    let definition = json!({"name": "w", "steps": [
        {"id": "p", "plan": {"goal": "g", "approval": {"timeout": "1h", "default": "reject"}}},
    ]});
    let mut s = Sim::start(definition.clone(), json!({}));
    let e = s.p.planned(&s.templates, "p", 1, plan(json!([{"id": "a", "agent": "x"}])), t0());
    assert_eq!(kinds(&s.keep(e)), [JournalKind::StepPlanned, JournalKind::StepWaitingApproval]);
    assert_eq!((s.state("p"), s.p.record_state()), (StepState::WaitingApproval, RunState::WaitingApproval));
    assert!(s.p.step("p").unwrap().plan.is_some(), "the approver reads the plan");
    let e = s.p.decide(&s.templates, "p", true, "ok", "ann", t0()).unwrap();
    assert_eq!(kinds(&s.keep(e)), [JournalKind::StepDecided, JournalKind::StepRunning]);
    assert_eq!((s.running(), s.p.step("p").unwrap().attempt), (vec!["p"], 1));
    s.done("p", None, json!({"a": 1}));
    assert_eq!((s.p.state, s.p.output.clone()), (RunState::Succeeded, Some(json!({"p": {"a": 1}}))));
    s.assert_replays();

    let mut s = Sim::start(definition, json!({}));
    let e = s.p.planned(&s.templates, "p", 1, plan(json!([{"id": "a", "agent": "x"}])), t0());
    s.keep(e);
    let e = s.p.advance(&s.templates, t0() + Duration::from_secs(3600));
    s.keep(e);
    assert_eq!((s.state("p"), s.p.state), (StepState::Failed, RunState::Failed), "its default rejects");
    assert!(s.p.error.as_deref().unwrap().contains("rejected by timeout"), "{:?}", s.p.error);
    s.assert_replays();
}
