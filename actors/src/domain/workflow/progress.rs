//! A run's progress as pure data: the state of every step, changed only by journal
//! entries. The run actor asks it what happens next ([`RunProgress::advance`]), journals
//! the entries it returns, then acts on them; a restarted node rebuilds the same
//! progress by applying the run's journal in order ([`RunProgress::apply`]). Decisions
//! that depend on data (a `when`, the items of a `for_each`, a rendered output) are
//! made once and journaled, so a replay never evaluates them again.
//!
//! Semantics (docs/workflows.md says the same for users):
//! - a dependency is *satisfied* when it succeeded, was skipped by its `when` or by
//!   hand, or failed with `on_error: continue`;
//! - it *blocks* when it failed otherwise, or was skipped because something before it
//!   failed: the dependent is skipped too (reason `upstream`);
//! - a step that is some step's `on_error: {goto}` runs only when routed to; one never
//!   routed to is skipped (reason `not_routed`) once nothing else can run;
//! - a failure with `on_error: fail` fails the run at once.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use self::index::Index;
use super::{
    Decision, JournalEntry, JournalKind, OnError, RunId, RunState, StepDef, StepKind, StepState,
    TemplateError, Templates, Usage, WorkflowDef,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// Its `when` was false.
    Condition,
    /// Someone skipped it, giving its output.
    Manual,
    /// A step it depends on failed (or was skipped for that reason).
    Upstream,
    /// It is an error route nothing was routed to.
    NotRouted,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ItemProgress {
    pub state: StepState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepProgress {
    pub id: String,
    pub state: StepState,
    /// The attempt running, or the last one made (0 before the first).
    pub attempt: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_reason: Option<SkipReason>,
    /// A `for_each` step's items, as evaluated when it first started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<Value>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub item_states: Vec<ItemProgress>,
    /// A failed attempt runs again at this time.
    #[serde(skip_serializing_if = "Option::is_none", with = "humantime_serde")]
    pub retry_at: Option<SystemTime>,
    /// An approval decides itself (by its default) at this time.
    #[serde(skip_serializing_if = "Option::is_none", with = "humantime_serde")]
    pub decide_at: Option<SystemTime>,
    /// Failed, and the run goes on (`continue`, or routed to another step).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub handled: bool,
}

impl StepProgress {
    fn new(id: &str) -> Self {
        StepProgress {
            id: id.to_string(),
            state: StepState::Queued,
            attempt: 0,
            output: None,
            error: None,
            skip_reason: None,
            items: None,
            item_states: Vec::new(),
            retry_at: None,
            decide_at: None,
            handled: false,
        }
    }

    fn is_failure(&self) -> bool {
        matches!(self.state, StepState::Failed | StepState::TimedOut | StepState::Cancelled)
    }
}

/// What a dependency means for its dependents right now.
#[derive(PartialEq)]
enum Dep {
    Satisfied,
    Blocks,
    Pending,
}

/// A change someone asked for that the run's state does not allow.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    #[error("no step '{0}' in this run")]
    UnknownStep(String),
    #[error("step '{step}' is {state:?}; {wanted}")]
    WrongState { step: String, state: StepState, wanted: &'static str },
    #[error("the run is {0:?} and can no longer change")]
    RunFinal(RunState),
}

/// How one unit of work (a step's task, or one item's) ended.
#[derive(Clone, Debug, PartialEq)]
pub enum UnitOutcome {
    Succeeded(Value),
    /// `state` is `failed`, `timed_out` or `cancelled`.
    Failed {
        state: StepState,
        error: String,
    },
}

/// What templates see of the steps, kept up to date as entries apply: each step is
/// converted once per transition, so a template costs the steps it reads, not every
/// step of the run (a long chain would otherwise be quadratic).
#[derive(Debug, Default)]
struct StepValues(parking_lot::RwLock<BTreeMap<String, minijinja::Value>>);

impl minijinja::value::Object for StepValues {
    fn get_value(self: &Arc<Self>, key: &minijinja::Value) -> Option<minijinja::Value> {
        self.0.read().get(key.as_str()?).cloned()
    }

    fn enumerate(self: &Arc<Self>) -> minijinja::value::Enumerator {
        let keys = self.0.read().keys().map(|k| minijinja::Value::from(k.as_str())).collect();
        minijinja::value::Enumerator::Values(keys)
    }
}

#[derive(Debug)]
pub struct RunProgress {
    pub run: RunId,
    /// The definition, with any steps added to the run. Changed only through entries.
    def: WorkflowDef,
    pub input: Value,
    /// One per step of `def`, in its order. Changed only through entries.
    steps: Vec<StepProgress>,
    pub state: RunState,
    pub output: Option<Value>,
    pub error: Option<String>,
    /// The `seq` of the next journal entry.
    pub next_seq: u64,
    routed: HashSet<String>,
    /// The template context's `input`, `run` and `steps`, built as the run goes.
    ctx_input: minijinja::Value,
    ctx_run: minijinja::Value,
    ctx_steps: Arc<StepValues>,
    index: Index,
}

/// A journal entry before it has a run, a seq and a time.
struct Draft {
    kind: JournalKind,
    step: Option<String>,
    attempt: Option<u32>,
    data: Value,
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

fn from_millis(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

impl RunProgress {
    pub fn new(run: RunId, def: WorkflowDef, input: Value) -> Self {
        let steps: Vec<StepProgress> = def.steps.iter().map(|s| StepProgress::new(&s.id)).collect();
        let ctx_input = minijinja::Value::from_serialize(&input);
        let ctx_run = minijinja::Value::from_serialize(json!({
            "id": run.to_string(), "workflow": def.name, "version": def.version,
        }));
        let mut progress = RunProgress {
            run,
            def,
            input,
            steps,
            state: RunState::Running,
            output: None,
            error: None,
            next_seq: 1,
            routed: HashSet::new(),
            ctx_input,
            ctx_run,
            ctx_steps: Arc::default(),
            index: Index::default(),
        };
        progress.reindex();
        progress
    }

    /// Rebuilds the index and the template context of every step: after a change that
    /// touches many steps (steps added, a run ended or reopened).
    fn reindex(&mut self) {
        self.index = Index::build(&self.def, &self.steps);
        for i in 0..self.steps.len() {
            self.refresh_context(i);
        }
    }

    /// Shows step `i` as it is now to templates.
    fn refresh_context(&self, i: usize) {
        let s = &self.steps[i];
        let value =
            minijinja::Value::from_serialize(json!({"output": s.output, "state": s.state, "error": s.error}));
        self.ctx_steps.0.write().insert(s.id.clone(), value);
    }

    /// Rebuilds a run's progress from its journal.
    pub fn replay(run: RunId, def: WorkflowDef, input: Value, journal: &[JournalEntry]) -> Self {
        let mut progress = Self::new(run, def, input);
        for entry in journal {
            progress.apply(entry);
        }
        progress
    }

    pub fn def(&self) -> &WorkflowDef {
        &self.def
    }

    pub fn steps(&self) -> &[StepProgress] {
        &self.steps
    }

    pub fn into_steps(self) -> Vec<StepProgress> {
        self.steps
    }

    pub fn step(&self, id: &str) -> Option<&StepProgress> {
        self.index(id).map(|i| &self.steps[i])
    }

    fn index(&self, id: &str) -> Option<usize> {
        self.index.position(id)
    }

    fn is_route(&self, id: &str) -> bool {
        self.index.is_route(id)
    }

    /// Applies one journal entry. Entries are applied in `seq` order; the last applied
    /// decides `next_seq`.
    pub fn apply(&mut self, entry: &JournalEntry) {
        self.apply_entry(entry);
        match entry.step.as_deref().and_then(|id| self.index(id)) {
            Some(i) if entry.kind != JournalKind::StepRetryRequested => {
                self.index.update(i, &self.steps[i], &self.steps);
                self.refresh_context(i);
            }
            // Entries that may touch every step (added, cancelled, failed, reopened).
            _ => self.reindex(),
        }
    }

    fn apply_entry(&mut self, entry: &JournalEntry) {
        self.next_seq = self.next_seq.max(entry.seq + 1);
        let data = &entry.data;
        let index = entry.step.as_deref().and_then(|id| self.index(id));
        match (entry.kind, index) {
            (JournalKind::RunStarted, _) => {}
            (JournalKind::RunSucceeded, _) => {
                self.state = RunState::Succeeded;
                self.output = data.get("output").cloned();
            }
            (JournalKind::RunFailed, _) => {
                self.state = RunState::Failed;
                self.error = data["error"].as_str().map(str::to_string);
                self.interrupt("the run failed");
            }
            (JournalKind::RunCancelled, _) => {
                self.state = RunState::Cancelled;
                self.error = Some(format!("cancelled by {}", data["by"].as_str().unwrap_or("someone")));
                self.interrupt("the run was cancelled");
            }
            (JournalKind::StepsAdded, _) => {
                let added: Vec<StepDef> = serde_json::from_value(data["steps"].clone()).unwrap_or_default();
                for step in added {
                    self.steps.push(StepProgress::new(&step.id));
                    self.def.steps.push(step);
                }
            }
            (JournalKind::StepRunning, Some(i)) => {
                let step = &mut self.steps[i];
                step.state = StepState::Running;
                step.attempt = entry.attempt.unwrap_or(step.attempt + 1);
                step.retry_at = None;
                step.error = None;
                if let Some(items) = data.get("items").and_then(Value::as_array) {
                    step.items = Some(items.clone());
                }
                if let Some(items) = &step.items {
                    // A new attempt runs again the items that did not succeed.
                    step.item_states.resize(
                        items.len(),
                        ItemProgress { state: StepState::Queued, output: None, error: None },
                    );
                    for item in &mut step.item_states {
                        if item.state != StepState::Succeeded {
                            *item = ItemProgress { state: StepState::Queued, output: None, error: None };
                        }
                    }
                }
            }
            (JournalKind::ItemRunning | JournalKind::ItemSucceeded | JournalKind::ItemFailed, Some(i)) => {
                let Some(n) = data["index"].as_u64() else { return };
                let Some(item) = self.steps[i].item_states.get_mut(n as usize) else { return };
                match entry.kind {
                    JournalKind::ItemRunning => item.state = StepState::Running,
                    JournalKind::ItemSucceeded => {
                        item.state = StepState::Succeeded;
                        item.output = data.get("output").cloned();
                    }
                    _ => {
                        item.state = StepState::Failed;
                        item.error = data["error"].as_str().map(str::to_string);
                    }
                }
            }
            (JournalKind::StepSucceeded, Some(i)) => {
                let step = &mut self.steps[i];
                step.state = StepState::Succeeded;
                step.output = data.get("output").cloned();
                step.decide_at = None;
            }
            (JournalKind::StepRetrying, Some(i)) => {
                let step = &mut self.steps[i];
                step.state = StepState::Queued;
                step.error = data["error"].as_str().map(str::to_string);
                step.retry_at = Some(from_millis(data["retry_at"].as_u64().unwrap_or(0)));
            }
            (JournalKind::StepFailed, Some(i)) => {
                let state = serde_json::from_value(data["state"].clone()).unwrap_or(StepState::Failed);
                let handled = {
                    let step = &mut self.steps[i];
                    step.state = state;
                    step.error = data["error"].as_str().map(str::to_string);
                    step.decide_at = None;
                    step.retry_at = None;
                    step.output = None;
                    &mut step.handled
                };
                match &self.def.steps[i].on_error {
                    OnError::Fail => *handled = false,
                    OnError::Continue => *handled = true,
                    OnError::Goto(route) => {
                        *handled = true;
                        self.routed.insert(route.clone());
                    }
                }
            }
            (JournalKind::StepSkipped, Some(i)) => {
                let step = &mut self.steps[i];
                step.state = StepState::Skipped;
                step.skip_reason = serde_json::from_value(data["reason"].clone()).ok();
                step.output = data.get("output").filter(|o| !o.is_null()).cloned();
                step.retry_at = None;
                step.decide_at = None;
            }
            (JournalKind::StepWaitingApproval, Some(i)) => {
                let step = &mut self.steps[i];
                step.state = StepState::WaitingApproval;
                step.attempt = entry.attempt.unwrap_or(1);
                step.decide_at = data["until"].as_u64().map(from_millis);
            }
            (JournalKind::StepDecided, Some(i)) => {
                // The decision itself: a `step.succeeded` or `step.failed` follows it.
                self.steps[i].decide_at = None;
            }
            (JournalKind::StepRetryRequested, Some(i)) => {
                if self.state.is_final() {
                    self.state = RunState::Running;
                    self.error = None;
                }
                let step = &mut self.steps[i];
                step.state = StepState::Queued;
                step.handled = false;
                // Steps skipped because this one failed, or stopped when the run failed,
                // get their chance again.
                self.reopen();
            }
            _ => {}
        }
    }

    /// A final run stops what was still going: running and waiting steps are cancelled.
    fn interrupt(&mut self, why: &str) {
        for step in &mut self.steps {
            if matches!(step.state, StepState::Running | StepState::WaitingApproval)
                || (step.state == StepState::Queued && step.retry_at.is_some())
            {
                step.state = StepState::Cancelled;
                step.error = Some(why.to_string());
                step.retry_at = None;
                step.decide_at = None;
            }
        }
    }

    /// Puts back in the queue the steps skipped for an upstream failure and those the
    /// run's failure stopped: called when a failed step runs again, so what depends on it
    /// can run after all. (A cancelled run is never reopened.)
    fn reopen(&mut self) {
        for step in &mut self.steps {
            let upstream = step.state == StepState::Skipped
                && matches!(step.skip_reason, Some(SkipReason::Upstream | SkipReason::NotRouted));
            if upstream || step.state == StepState::Cancelled {
                step.state = StepState::Queued;
                step.skip_reason = None;
                step.handled = false;
            }
        }
    }

    fn dep(&self, id: &str) -> Dep {
        let Some(step) = self.step(id) else { return Dep::Blocks };
        match step.state {
            StepState::Succeeded => Dep::Satisfied,
            StepState::Skipped => match step.skip_reason {
                Some(SkipReason::Condition | SkipReason::Manual) => Dep::Satisfied,
                _ => Dep::Blocks,
            },
            StepState::Failed | StepState::TimedOut | StepState::Cancelled => {
                let i = self.index(id).expect("a step found above");
                if self.def.steps[i].on_error == OnError::Continue {
                    Dep::Satisfied
                } else {
                    Dep::Blocks
                }
            }
            StepState::Queued | StepState::Running | StepState::WaitingApproval => Dep::Pending,
        }
    }

    /// Units of work running now: steps (sub-workflows included) and `for_each` items.
    pub fn running_units(&self) -> usize {
        self.index
            .live
            .iter()
            .map(|&i| &self.steps[i])
            .map(|s| match (s.state, &s.items) {
                (StepState::Running, Some(_)) => {
                    s.item_states.iter().filter(|i| i.state == StepState::Running).count()
                }
                (StepState::Running, None) => 1,
                _ => 0,
            })
            .sum()
    }

    /// The template context: `input`, `steps`, `run`, and `item`/`index` when given.
    pub fn context(&self, item: Option<(usize, &Value)>) -> minijinja::Value {
        let steps = minijinja::Value::from_dyn_object(self.ctx_steps.clone());
        match item {
            None => minijinja::context! { input => self.ctx_input, run => self.ctx_run, steps },
            Some((index, item)) => minijinja::context! {
                input => self.ctx_input,
                run => self.ctx_run,
                steps,
                item => minijinja::Value::from_serialize(item),
                index,
            },
        }
    }

    /// The input of step `i` (of one of its items), rendered now.
    pub fn render_input(
        &self,
        templates: &Templates,
        i: usize,
        item: Option<usize>,
    ) -> Result<Value, TemplateError> {
        let def = &self.def.steps[i];
        let item = item.and_then(|n| Some((n, self.steps[i].items.as_ref()?.get(n)?)));
        match &def.input {
            Some(input) => templates.render(input, &self.context(item)),
            None => Ok(item.map_or_else(|| self.input.clone(), |(_, v)| v.clone())),
        }
    }

    /// Decides every transition possible now, applies them, and returns them as journal
    /// entries to write (in order) before acting on them. Empty when nothing can move.
    pub fn advance(&mut self, templates: &Templates, now: SystemTime) -> Vec<JournalEntry> {
        let mut entries = Vec::new();
        while !self.state.is_final() {
            let drafts = self.next_drafts(templates, now);
            if drafts.is_empty() {
                break;
            }
            for draft in drafts {
                entries.push(self.record(draft, now));
            }
            entries.extend(self.after_failure(now));
        }
        entries
    }

    /// Makes a journal entry of `draft`, applies it, and returns it.
    fn record(&mut self, draft: Draft, now: SystemTime) -> JournalEntry {
        let entry = JournalEntry {
            run: self.run,
            seq: self.next_seq,
            step: draft.step,
            attempt: draft.attempt,
            kind: draft.kind,
            data: draft.data,
            recorded_at: now,
        };
        self.apply(&entry);
        entry
    }

    fn step_draft(&self, kind: JournalKind, i: usize, attempt: Option<u32>, data: Value) -> Draft {
        Draft { kind, step: Some(self.steps[i].id.clone()), attempt, data }
    }

    /// One round of decisions: starts, skips, items, and the run's end.
    fn next_drafts(&self, templates: &Templates, now: SystemTime) -> Vec<Draft> {
        let mut drafts = Vec::new();
        let mut free = self.def.concurrency().saturating_sub(self.running_units());
        // Only steps that can move: ready to start or skip, running, or with a timer.
        let mut look: Vec<usize> =
            self.index.ready.iter().chain(&self.index.live).chain(&self.index.timed).copied().collect();
        look.sort_unstable();
        look.dedup();
        for i in look {
            let (step, def) = (&self.steps[i], &self.def.steps[i]);
            match step.state {
                StepState::Queued if step.retry_at.is_none_or(|at| at <= now) => {
                    let deps: Vec<Dep> = def.depends_on.iter().map(|d| self.dep(d)).collect();
                    if deps.contains(&Dep::Blocks) {
                        drafts.push(self.step_draft(
                            JournalKind::StepSkipped,
                            i,
                            None,
                            json!({"reason": SkipReason::Upstream}),
                        ));
                        continue;
                    }
                    if deps.contains(&Dep::Pending)
                        || (self.is_route(&step.id) && !self.routed.contains(&step.id))
                    {
                        continue;
                    }
                    if let Some(draft) = self.start(templates, i, now, &mut free) {
                        drafts.push(draft);
                    }
                }
                StepState::Running if step.items.is_some() => {
                    drafts.extend(self.items_next(i, &mut free));
                }
                StepState::WaitingApproval if step.decide_at.is_some_and(|at| at <= now) => {
                    let approved = def.approval.as_ref().and_then(|a| a.default) == Some(Decision::Approve);
                    let decided = def.approval.as_ref().and_then(|a| a.default).is_some();
                    if decided {
                        drafts.push(self.step_draft(
                            JournalKind::StepDecided,
                            i,
                            Some(step.attempt),
                            json!({"approved": approved, "comment": "the approval timed out", "by": "timeout"}),
                        ));
                    }
                    drafts.push(self.decision_outcome(
                        i,
                        approved,
                        decided,
                        "the approval timed out",
                        "timeout",
                    ));
                }
                _ => {}
            }
            if !drafts.is_empty() && drafts.iter().any(|d| d.kind == JournalKind::StepFailed) {
                break;
            }
        }
        if drafts.is_empty() {
            drafts.extend(self.finish(templates));
        }
        drafts
    }

    /// The entry that ends an approval step: succeeded when approved, failed otherwise.
    fn decision_outcome(&self, i: usize, approved: bool, decided: bool, comment: &str, by: &str) -> Draft {
        let attempt = Some(self.steps[i].attempt);
        if approved {
            self.step_draft(
                JournalKind::StepSucceeded,
                i,
                attempt,
                json!({"output": {"approved": true, "comment": comment, "by": by}}),
            )
        } else {
            let (state, error) = if decided {
                (StepState::Failed, format!("rejected by {by}: {comment}"))
            } else {
                (StepState::TimedOut, "the approval timed out with no default decision".to_string())
            };
            self.step_draft(JournalKind::StepFailed, i, attempt, json!({"error": error, "state": state}))
        }
    }

    /// Starts a ready step, if the run has room: skip by `when`, wait for approval, fan
    /// out, or run. A template that fails to evaluate fails the step.
    fn start(&self, templates: &Templates, i: usize, now: SystemTime, free: &mut usize) -> Option<Draft> {
        let def = &self.def.steps[i];
        let step = &self.steps[i];
        let attempt = step.attempt + 1;
        let fail = |what: &str, e: TemplateError| {
            self.step_draft(
                JournalKind::StepFailed,
                i,
                Some(attempt),
                json!({"error": format!("{what}: {e}"), "state": StepState::Failed}),
            )
        };
        // A retried step is past its `when`: it was decided on the first attempt.
        if step.attempt == 0 {
            if let Some(when) = &def.when {
                match templates.truthy(when, &self.context(None)) {
                    Ok(true) => {}
                    Ok(false) => {
                        return Some(self.step_draft(
                            JournalKind::StepSkipped,
                            i,
                            None,
                            json!({"reason": SkipReason::Condition}),
                        ))
                    }
                    Err(e) => return Some(fail("`when` failed", e)),
                }
            }
        }
        if let Some(StepKind::Approval(approval)) = def.kind() {
            let until = approval.timeout.map(|t| millis(now + t));
            return Some(self.step_draft(
                JournalKind::StepWaitingApproval,
                i,
                Some(attempt),
                json!({"until": until}),
            ));
        }
        if let (Some(for_each), None) = (&def.for_each, &step.items) {
            let items = match templates.eval(for_each, Usage::Expression, &self.context(None)) {
                Ok(Value::Array(items)) => items,
                Ok(Value::Null) => Vec::new(),
                Ok(other) => {
                    let e = TemplateError(format!("gave {other}, not a list"));
                    return Some(fail("`for_each`", e));
                }
                Err(e) => return Some(fail("`for_each` failed", e)),
            };
            return Some(self.step_draft(
                JournalKind::StepRunning,
                i,
                Some(attempt),
                json!({"items": items}),
            ));
        }
        if step.items.is_some() {
            // A retry of a fan-out: items are started one by one, within the limits.
            return Some(self.step_draft(JournalKind::StepRunning, i, Some(attempt), json!({})));
        }
        if *free == 0 {
            return None;
        }
        *free -= 1;
        Some(self.step_draft(JournalKind::StepRunning, i, Some(attempt), json!({})))
    }

    /// Starts the next items of a running `for_each`, or ends the step when all are done.
    fn items_next(&self, i: usize, free: &mut usize) -> Vec<Draft> {
        let step = &self.steps[i];
        let attempt = Some(step.attempt);
        if step.item_states.iter().all(|it| it.state == StepState::Succeeded) {
            let outputs: Vec<Value> =
                step.item_states.iter().map(|it| it.output.clone().unwrap_or(Value::Null)).collect();
            return vec![self.step_draft(JournalKind::StepSucceeded, i, attempt, json!({"output": outputs}))];
        }
        let running = step.item_states.iter().filter(|it| it.state == StepState::Running).count();
        let mut room = self.def.steps[i].item_concurrency().saturating_sub(running);
        let mut drafts = Vec::new();
        for (n, item) in step.item_states.iter().enumerate() {
            if room == 0 || *free == 0 {
                break;
            }
            if item.state == StepState::Queued {
                room -= 1;
                *free -= 1;
                drafts.push(self.step_draft(JournalKind::ItemRunning, i, attempt, json!({"index": n})));
            }
        }
        drafts
    }

    /// When nothing else can move: skips routes nothing went to, then ends the run.
    fn finish(&self, templates: &Templates) -> Vec<Draft> {
        if !self.index.live.is_empty() {
            return Vec::new();
        }
        let queued: Vec<usize> = self.index.queued.iter().copied().collect();
        if queued.iter().any(|&i| self.steps[i].retry_at.is_some()) {
            return Vec::new(); // a retry is due later
        }
        if !queued.is_empty() {
            return queued
                .into_iter()
                .filter(|&i| self.is_route(&self.steps[i].id) && !self.routed.contains(&self.steps[i].id))
                .map(|i| {
                    self.step_draft(
                        JournalKind::StepSkipped,
                        i,
                        None,
                        json!({"reason": SkipReason::NotRouted}),
                    )
                })
                .collect();
        }
        if let Some(failed) = self.unhandled_failure() {
            return vec![failed];
        }
        let output = match &self.def.output {
            None => Ok(Value::Object(
                self.steps.iter().filter_map(|s| Some((s.id.clone(), s.output.clone()?))).collect(),
            )),
            Some(output) => templates.render(output, &self.context(None)),
        };
        vec![match output {
            Ok(output) => Draft {
                kind: JournalKind::RunSucceeded,
                step: None,
                attempt: None,
                data: json!({"output": output}),
            },
            Err(e) => Draft {
                kind: JournalKind::RunFailed,
                step: None,
                attempt: None,
                data: json!({"error": format!("the run's output failed to render: {e}")}),
            },
        }]
    }

    /// Records how one unit of step `id`'s attempt `attempt` ended (item `item` of a
    /// `for_each`), then advances. A stale report (another attempt, a step no longer
    /// running) changes nothing.
    pub fn complete(
        &mut self,
        templates: &Templates,
        id: &str,
        item: Option<usize>,
        attempt: u32,
        outcome: UnitOutcome,
        now: SystemTime,
    ) -> Vec<JournalEntry> {
        let Some(i) = self.index(id) else { return Vec::new() };
        let step = &self.steps[i];
        if self.state.is_final() || step.state != StepState::Running || step.attempt != attempt {
            return Vec::new();
        }
        let mut entries = Vec::new();
        match (item, outcome) {
            (Some(n), outcome) => {
                if step.item_states.get(n).is_none_or(|it| it.state != StepState::Running) {
                    return Vec::new();
                }
                match outcome {
                    UnitOutcome::Succeeded(output) => {
                        let draft = self.step_draft(
                            JournalKind::ItemSucceeded,
                            i,
                            Some(attempt),
                            json!({"index": n, "output": output}),
                        );
                        entries.push(self.record(draft, now));
                    }
                    UnitOutcome::Failed { state, error } => {
                        let draft = self.step_draft(
                            JournalKind::ItemFailed,
                            i,
                            Some(attempt),
                            json!({"index": n, "error": error}),
                        );
                        entries.push(self.record(draft, now));
                        let error = format!("item {n}: {error}");
                        entries.extend(self.attempt_failed(i, state, error, now));
                    }
                }
            }
            (None, UnitOutcome::Succeeded(output)) => {
                let draft =
                    self.step_draft(JournalKind::StepSucceeded, i, Some(attempt), json!({"output": output}));
                entries.push(self.record(draft, now));
            }
            (None, UnitOutcome::Failed { state, error }) => {
                entries.extend(self.attempt_failed(i, state, error, now))
            }
        }
        entries.extend(self.after_failure(now));
        entries.extend(self.advance(templates, now));
        entries
    }

    /// A failed attempt: retried when attempts are left, else the step fails.
    fn attempt_failed(
        &mut self,
        i: usize,
        state: StepState,
        error: String,
        now: SystemTime,
    ) -> Vec<JournalEntry> {
        let step = &self.steps[i];
        let def = &self.def.steps[i];
        let attempt = step.attempt;
        let draft = if state != StepState::Cancelled && attempt < def.max_attempts() {
            let delay = def.retry.as_ref().map(|r| r.delay_before(attempt + 1)).unwrap_or_default();
            self.step_draft(
                JournalKind::StepRetrying,
                i,
                Some(attempt),
                json!({"error": error, "state": state, "retry_at": millis(now + delay)}),
            )
        } else {
            self.step_draft(
                JournalKind::StepFailed,
                i,
                Some(attempt),
                json!({"error": error, "state": state}),
            )
        };
        vec![self.record(draft, now)]
    }

    /// A step that failed with `on_error: fail` fails the run at once.
    fn after_failure(&mut self, now: SystemTime) -> Vec<JournalEntry> {
        match self.unhandled_failure() {
            Some(draft) if !self.state.is_final() => vec![self.record(draft, now)],
            _ => Vec::new(),
        }
    }

    /// The `run.failed` a failed step with `on_error: fail` calls for, if there is one.
    fn unhandled_failure(&self) -> Option<Draft> {
        let failed = &self.steps[*self.index.unhandled.first()?];
        let error =
            format!("step '{}' failed: {}", failed.id, failed.error.as_deref().unwrap_or("unknown error"));
        Some(Draft { kind: JournalKind::RunFailed, step: None, attempt: None, data: json!({"error": error}) })
    }

    fn change_step(&self, id: &str) -> Result<usize, ChangeError> {
        self.index(id).ok_or_else(|| ChangeError::UnknownStep(id.to_string()))
    }

    /// Approves or rejects a waiting approval step.
    pub fn decide(
        &mut self,
        templates: &Templates,
        id: &str,
        approved: bool,
        comment: &str,
        by: &str,
        now: SystemTime,
    ) -> Result<Vec<JournalEntry>, ChangeError> {
        self.live()?;
        let i = self.change_step(id)?;
        let state = self.steps[i].state;
        if state != StepState::WaitingApproval {
            return Err(ChangeError::WrongState {
                step: id.into(),
                state,
                wanted: "only a step waiting for approval can be decided",
            });
        }
        let attempt = Some(self.steps[i].attempt);
        let decided = self.step_draft(
            JournalKind::StepDecided,
            i,
            attempt,
            json!({"approved": approved, "comment": comment, "by": by}),
        );
        let mut entries = vec![self.record(decided, now)];
        let outcome = self.decision_outcome(i, approved, true, comment, by);
        entries.push(self.record(outcome, now));
        entries.extend(self.after_failure(now));
        entries.extend(self.advance(templates, now));
        Ok(entries)
    }

    /// Skips a step that has not started (or waits for approval), with the output its
    /// dependents will see.
    pub fn skip(
        &mut self,
        templates: &Templates,
        id: &str,
        output: Value,
        by: &str,
        now: SystemTime,
    ) -> Result<Vec<JournalEntry>, ChangeError> {
        self.live()?;
        let i = self.change_step(id)?;
        let state = self.steps[i].state;
        if !matches!(state, StepState::Queued | StepState::WaitingApproval) {
            return Err(ChangeError::WrongState {
                step: id.into(),
                state,
                wanted: "only a step that has not started can be skipped",
            });
        }
        let draft = self.step_draft(
            JournalKind::StepSkipped,
            i,
            None,
            json!({"reason": SkipReason::Manual, "output": output, "by": by}),
        );
        let mut entries = vec![self.record(draft, now)];
        entries.extend(self.advance(templates, now));
        Ok(entries)
    }

    /// Runs a failed step again with a new attempt; a run that failed because of it
    /// runs again.
    pub fn retry(
        &mut self,
        templates: &Templates,
        id: &str,
        by: &str,
        now: SystemTime,
    ) -> Result<Vec<JournalEntry>, ChangeError> {
        if self.state == RunState::Cancelled {
            return Err(ChangeError::RunFinal(self.state));
        }
        let i = self.change_step(id)?;
        let state = self.steps[i].state;
        if !self.steps[i].is_failure() {
            return Err(ChangeError::WrongState {
                step: id.into(),
                state,
                wanted: "only a failed step can be retried",
            });
        }
        let draft = self.step_draft(
            JournalKind::StepRetryRequested,
            i,
            Some(self.steps[i].attempt),
            json!({"by": by}),
        );
        let mut entries = vec![self.record(draft, now)];
        entries.extend(self.advance(templates, now));
        Ok(entries)
    }

    /// Adds steps to a running run. The caller validated the run's definition with them.
    pub fn add_steps(
        &mut self,
        templates: &Templates,
        steps: Vec<StepDef>,
        by: &str,
        now: SystemTime,
    ) -> Result<Vec<JournalEntry>, ChangeError> {
        self.live()?;
        let draft = Draft {
            kind: JournalKind::StepsAdded,
            step: None,
            attempt: None,
            data: json!({"steps": steps, "by": by}),
        };
        let mut entries = vec![self.record(draft, now)];
        entries.extend(self.advance(templates, now));
        Ok(entries)
    }

    pub fn cancel(
        &mut self,
        by: &str,
        reason: &str,
        now: SystemTime,
    ) -> Result<Vec<JournalEntry>, ChangeError> {
        self.live()?;
        let draft = Draft {
            kind: JournalKind::RunCancelled,
            step: None,
            attempt: None,
            data: json!({"by": by, "reason": reason}),
        };
        Ok(vec![self.record(draft, now)])
    }

    fn live(&self) -> Result<(), ChangeError> {
        if self.state.is_final() {
            Err(ChangeError::RunFinal(self.state))
        } else {
            Ok(())
        }
    }

    /// The run's state as its record shows it: `waiting_approval` when nothing runs but
    /// an approval waits.
    pub fn record_state(&self) -> RunState {
        if self.state == RunState::Running
            && self.running_units() == 0
            && self.index.live.iter().any(|&i| self.steps[i].state == StepState::WaitingApproval)
        {
            RunState::WaitingApproval
        } else {
            self.state
        }
    }

    /// The earliest time a retry or an approval's default is due.
    pub fn next_timer(&self) -> Option<SystemTime> {
        self.index.timed.iter().filter_map(|&i| self.steps[i].retry_at.or(self.steps[i].decide_at)).min()
    }
}

mod index;
#[cfg(test)]
mod tests;
