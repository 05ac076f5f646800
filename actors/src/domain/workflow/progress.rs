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
    Decision, JournalEntry, JournalKind, OnError, Plan, RunId, RunState, StepDef, StepKind, StepState,
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
    /// A plan step's plan for its current attempt, once accepted: what an approver reads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
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
            plan: None,
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
    #[error("the run has ended ({}) and can no longer change", .0.as_str())]
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
                let by = data["by"].as_str().unwrap_or("someone");
                self.error = Some(match data["reason"].as_str().filter(|r| !r.is_empty()) {
                    Some(reason) => format!("cancelled by {by}: {reason}"),
                    None => format!("cancelled by {by}"),
                });
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
                let attempt = entry.attempt.unwrap_or(step.attempt + 1);
                if attempt != step.attempt {
                    // Each attempt of a plan step asks for a plan of its own.
                    step.plan = None;
                }
                step.attempt = attempt;
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
            (JournalKind::StepPlanned, Some(i)) => {
                self.steps[i].plan = serde_json::from_value(data.clone()).ok();
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

mod changes;
mod decide;
mod index;
mod plan;
#[cfg(test)]
mod tests;
