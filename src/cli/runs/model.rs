//! A run as `mark1 runs watch` and the run tables see it, free of any terminal or socket:
//! built from the run view (`GET /v1/runs/{id}`), moved on by the run's events, and
//! answering what changed as [`Transition`]s, the lines `watch --plain` prints.
//!
//! Events are applied as they arrive, and views fetched after them bring the rest (items,
//! outputs, errors). A view can be older than an event already applied (a durable run
//! publishes an event when it journals the entry, and applies the entry once it is
//! committed), so a view never takes a step back: per step, the pair (attempt, how far
//! the attempt got) only grows. Applying what is already known changes nothing and
//! reports nothing, so an event also reflected in a view is printed once.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::Value;

/// One step of the run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Step {
    pub id: String,
    /// From the definition; `None` when it does not have the step (one added to the run)
    /// or could not be read.
    pub depends_on: Option<Vec<String>>,
    /// queued, running, succeeded, failed, cancelled, timed_out, skipped, waiting_approval.
    pub state: String,
    pub attempt: u32,
    /// A `for_each` step's item count, once it fanned out.
    pub items: Option<usize>,
    pub item_states: Vec<String>,
    pub error: Option<String>,
    pub skip_reason: Option<String>,
    pub retry_at: Option<SystemTime>,
    pub decide_at: Option<SystemTime>,
    /// Failed, and the run goes on.
    pub handled: bool,
}

impl Step {
    /// `a,b`; `-` for none, `?` when unknown.
    pub fn depends_text(&self) -> String {
        match &self.depends_on {
            None => "?".into(),
            Some(deps) if deps.is_empty() => "-".into(),
            Some(deps) => deps.join(","),
        }
    }

    /// Items finished (succeeded, failed…) of `items`: `7/10`.
    pub fn item_progress(&self) -> Option<String> {
        let total = self.items?;
        let done = self.item_states.iter().filter(|s| is_final_step_state(s)).count();
        Some(format!("{done}/{total}"))
    }

    /// How far the step got: never lower in a later view of the same run.
    fn progress_key(&self) -> (u32, u8) {
        let rank = match self.state.as_str() {
            // Queued after a failed attempt: that attempt is over.
            "queued" if self.retry_at.is_some() || self.error.is_some() => 2,
            "queued" => 0,
            "running" | "waiting_approval" => 1,
            _ => 2,
        };
        (self.attempt, rank)
    }

    /// What the step shows besides its state: why it waits, failed or was skipped.
    pub fn detail(&self, now: SystemTime) -> String {
        let mut parts = Vec::new();
        if let Some(at) = self.retry_at.filter(|_| self.state == "queued") {
            parts.push(format!("retry {}", in_time(at, now)));
        }
        if let Some(at) = self.decide_at.filter(|_| self.state == "waiting_approval") {
            parts.push(format!("decides itself {}", in_time(at, now)));
        }
        if let Some(reason) = &self.skip_reason {
            parts.push(format!("skipped: {reason}"));
        }
        if let Some(error) = &self.error {
            parts.push(error.clone());
        }
        if self.handled {
            parts.push("(handled, the run goes on)".into());
        }
        parts.join("; ")
    }
}

fn in_time(at: SystemTime, now: SystemTime) -> String {
    match at.duration_since(now) {
        Ok(left) => format!("in {}", short(left)),
        Err(_) => "now".into(),
    }
}

/// A duration to the second (to the millisecond under one).
pub fn short(d: Duration) -> String {
    let d = if d < Duration::from_secs(1) {
        Duration::from_millis(d.as_millis() as u64)
    } else {
        Duration::from_secs(d.as_secs())
    };
    humantime::format_duration(d).to_string()
}

pub fn is_final_step_state(state: &str) -> bool {
    !matches!(state, "queued" | "running" | "waiting_approval" | "")
}

pub fn is_final_run_state(state: &str) -> bool {
    matches!(state, "succeeded" | "failed" | "cancelled")
}

/// What changed, as `watch --plain` prints it (one line each).
#[derive(Clone, Debug, PartialEq)]
pub enum Transition {
    Run {
        state: String,
        error: Option<String>,
    },
    Step {
        step: String,
        state: String,
        attempt: u32,
        detail: Option<String>,
    },
    Item {
        step: String,
        index: usize,
        state: String,
        progress: Option<String>,
        error: Option<String>,
    },
    Decided {
        step: String,
        approved: bool,
        by: Option<String>,
    },
    /// A plan step's model answered with a plan that passed validation.
    Planned {
        step: String,
        steps: usize,
        model: Option<String>,
    },
}

impl fmt::Display for Transition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Transition::Run { state, error } => {
                write!(f, "run {state}")?;
                error.as_ref().map_or(Ok(()), |e| write!(f, ": {e}"))
            }
            Transition::Step { step, state, attempt, detail } => {
                write!(f, "step {step} {state}")?;
                if *attempt > 0 {
                    write!(f, " (attempt {attempt})")?;
                }
                detail.as_ref().map_or(Ok(()), |d| write!(f, ": {d}"))
            }
            Transition::Item { step, index, state, progress, error } => {
                write!(f, "step {step} item {index} {state}")?;
                if let Some(progress) = progress {
                    write!(f, " ({progress})")?;
                }
                error.as_ref().map_or(Ok(()), |e| write!(f, ": {e}"))
            }
            Transition::Planned { step, steps, model } => {
                write!(f, "step {step} planned {steps} step{}", if *steps == 1 { "" } else { "s" })?;
                model.as_ref().map_or(Ok(()), |m| write!(f, " with {m}"))
            }
            Transition::Decided { step, approved, by } => {
                write!(f, "step {step} {}", if *approved { "approved" } else { "rejected" })?;
                by.as_ref().map_or(Ok(()), |by| write!(f, " by {by}"))
            }
        }
    }
}

/// A run view as the API sends it (what the model reads of it).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ViewDto {
    id: String,
    namespace: String,
    workflow: String,
    version: Option<u64>,
    state: String,
    error: Option<String>,
    output: Option<Value>,
    created_at: Option<String>,
    updated_at: Option<String>,
    steps: Vec<StepDto>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct StepDto {
    id: String,
    state: String,
    attempt: u32,
    error: Option<String>,
    skip_reason: Option<String>,
    items: Option<Vec<Value>>,
    item_states: Vec<ItemDto>,
    retry_at: Option<Value>,
    decide_at: Option<Value>,
    handled: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ItemDto {
    state: String,
}

#[derive(Clone, Debug, Default)]
pub struct RunModel {
    pub id: String,
    pub namespace: String,
    pub workflow: String,
    pub version: Option<u64>,
    /// Empty until the first view.
    pub state: String,
    pub error: Option<String>,
    pub output: Option<Value>,
    pub created_at: Option<SystemTime>,
    pub updated_at: Option<SystemTime>,
    /// In the order of the view (the definition's, then added steps).
    steps: Vec<Step>,
    depends_on: HashMap<String, Vec<String>>,
    /// `<step>:<attempt>` of the decisions and plans already shown: each is one line.
    decided: HashSet<String>,
    planned: HashSet<String>,
}

impl RunModel {
    pub fn new(id: &str) -> Self {
        RunModel { id: id.to_string(), ..RunModel::default() }
    }

    /// A model of one view, for the tables of `runs get` and friends.
    pub fn of_view(view: &Value) -> Self {
        let mut model = RunModel::default();
        model.apply_view(view);
        model
    }

    /// The definition's `depends_on`, by step id.
    pub fn set_depends_on(&mut self, depends_on: HashMap<String, Vec<String>>) {
        for step in &mut self.steps {
            step.depends_on = depends_on.get(&step.id).cloned();
        }
        self.depends_on = depends_on;
    }

    pub fn is_final(&self) -> bool {
        is_final_run_state(&self.state)
    }

    /// How long the run has taken: until now, or until it ended.
    pub fn elapsed(&self, now: SystemTime) -> Option<Duration> {
        let end = if self.is_final() { self.updated_at.unwrap_or(now) } else { now };
        end.duration_since(self.created_at?).ok()
    }

    /// Steps in dependency order: a step after everything it depends on, and otherwise
    /// in the order of the definition.
    pub fn ordered(&self) -> Vec<&Step> {
        let known: HashSet<&str> = self.steps.iter().map(|s| s.id.as_str()).collect();
        let mut placed: HashSet<&str> = HashSet::new();
        let mut order = Vec::with_capacity(self.steps.len());
        while order.len() < self.steps.len() {
            let ready = self.steps.iter().find(|s| {
                !placed.contains(s.id.as_str())
                    && s.depends_on
                        .iter()
                        .flatten()
                        .all(|d| placed.contains(d.as_str()) || !known.contains(d.as_str()))
            });
            // A cycle cannot be stored, but a model is no place to loop forever over one.
            let next = ready.or_else(|| self.steps.iter().find(|s| !placed.contains(s.id.as_str())));
            let step = next.expect("a step is left while fewer are placed");
            placed.insert(&step.id);
            order.push(step);
        }
        order
    }

    #[cfg(test)]
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }

    fn step_mut(&mut self, id: &str) -> &mut Step {
        let i = match self.steps.iter().position(|s| s.id == id) {
            Some(i) => i,
            None => {
                let depends_on = self.depends_on.get(id).cloned();
                let state = "queued".to_string();
                self.steps.push(Step { id: id.to_string(), depends_on, state, ..Step::default() });
                self.steps.len() - 1
            }
        };
        &mut self.steps[i]
    }

    /// Merges a run view; answers what it moved on.
    pub fn apply_view(&mut self, view: &Value) -> Vec<Transition> {
        let Ok(view) = ViewDto::deserialize(view) else { return Vec::new() };
        let mut changes = Vec::new();
        if self.id.is_empty() {
            self.id = view.id.clone();
        }
        self.namespace = view.namespace;
        self.workflow = view.workflow;
        self.version = view.version.or(self.version);
        self.created_at = view.created_at.as_deref().and_then(parse_time).or(self.created_at);
        self.updated_at = view.updated_at.as_deref().and_then(parse_time).or(self.updated_at);
        self.output = view.output.or(self.output.take());
        for dto in view.steps {
            let fresh = Step {
                id: dto.id.clone(),
                depends_on: self.depends_on.get(&dto.id).cloned(),
                state: dto.state,
                attempt: dto.attempt,
                items: dto.items.as_ref().map(Vec::len),
                item_states: dto.item_states.into_iter().map(|i| i.state).collect(),
                error: dto.error,
                skip_reason: dto.skip_reason,
                retry_at: dto.retry_at.as_ref().and_then(time_value),
                decide_at: dto.decide_at.as_ref().and_then(time_value),
                handled: dto.handled,
            };
            let known = self.steps.iter().any(|s| s.id == dto.id);
            let step = self.step_mut(&dto.id);
            if known && fresh.progress_key() < step.progress_key() {
                continue; // older than what an event told
            }
            let moved =
                !known || (fresh.state.as_str(), fresh.attempt) != (step.state.as_str(), step.attempt);
            let depends_on = std::mem::take(&mut step.depends_on);
            *step = Step { depends_on, ..fresh };
            if moved && (known || step.state != "queued") {
                changes.push(step_transition(step));
            }
        }
        // A final run stays final: a view that says otherwise is older.
        let older = self.is_final() && !is_final_run_state(&view.state);
        if !view.state.is_empty() && !older {
            if view.state != self.state {
                self.state = view.state;
                self.error = view.error;
                let run = Transition::Run { state: self.state.clone(), error: self.error.clone() };
                // Told before its steps while it goes on, after them once it ended.
                if self.is_final() {
                    changes.push(run);
                } else {
                    changes.insert(0, run);
                }
            } else {
                self.error = view.error.or(self.error.take());
            }
        }
        changes
    }

    /// Applies one event of `/v1/events` (events of other runs are ignored); answers what
    /// it moved on.
    pub fn apply_event(&mut self, event: &Value) -> Vec<Transition> {
        if event["subject"].as_str() != Some(self.id.as_str()) {
            return Vec::new();
        }
        let kind = event["kind"].as_str().unwrap_or_default();
        let data = &event["data"];
        let error = data["error"].as_str().map(str::to_string);
        if let Some(state) = kind.strip_prefix("run.") {
            let (state, why) = match state {
                "started" => ("running", None),
                "succeeded" => ("succeeded", None),
                "failed" => ("failed", error),
                "cancelled" => ("cancelled", data["reason"].as_str().map(str::to_string)),
                _ => return Vec::new(), // run.changed: the next view shows what changed
            };
            if self.state == state {
                return Vec::new();
            }
            self.state = state.to_string();
            self.error = why;
            if self.is_final() {
                self.updated_at = event["time"].as_str().and_then(parse_time).or(self.updated_at);
            }
            return vec![Transition::Run { state: self.state.clone(), error: self.error.clone() }];
        }
        let Some(what) = kind.strip_prefix("step.") else { return Vec::new() };
        let Some(id) = data["step"].as_str() else { return Vec::new() };
        let attempt = data["attempt"].as_u64().map(|a| a as u32);
        let step = self.step_mut(id);
        let attempt = attempt.unwrap_or(step.attempt);
        if let Some(item) = what.strip_prefix("item_") {
            let Some(index) = data["index"].as_u64().map(|i| i as usize) else { return Vec::new() };
            let state = match item {
                "running" => "running",
                "succeeded" => "succeeded",
                _ => "failed",
            };
            if step.item_states.len() <= index {
                step.item_states.resize(index + 1, "queued".into());
            }
            if step.item_states[index] == state || is_final_step_state(&step.item_states[index]) {
                return Vec::new();
            }
            step.item_states[index] = state.to_string();
            let progress = step.item_progress();
            return vec![Transition::Item {
                step: id.to_string(),
                index,
                state: state.into(),
                progress,
                error,
            }];
        }
        if what == "planned" {
            if !self.planned.insert(format!("{id}:{attempt}")) {
                return Vec::new();
            }
            let steps = data["planned_steps"].as_u64().unwrap_or(0) as usize;
            let model = data["model"].as_str().map(str::to_string);
            return vec![Transition::Planned { step: id.to_string(), steps, model }];
        }
        if what == "decided" {
            let approved = data["approved"].as_bool().unwrap_or(false);
            if !self.decided.insert(format!("{id}:{attempt}")) {
                return Vec::new();
            }
            let by = data["by"].as_str().map(str::to_string);
            return vec![Transition::Decided { step: id.to_string(), approved, by }];
        }
        let mut next = Step { attempt, ..step.clone() };
        match what {
            "running" => {
                if attempt != step.attempt {
                    next.item_states.clear();
                }
                next.state = "running".into();
                (next.error, next.retry_at, next.skip_reason) = (None, None, None);
            }
            "succeeded" => next.state = "succeeded".into(),
            "failed" => {
                next.state = data["state"].as_str().unwrap_or("failed").to_string();
                next.error = error;
            }
            "retrying" => {
                next.state = "queued".into();
                next.error = error.or(Some("failed".into()));
                next.retry_at = time_value(&data["retry_at"]);
            }
            "skipped" => {
                next.state = "skipped".into();
                next.skip_reason = data["reason"].as_str().map(str::to_string);
            }
            "waiting_approval" => next.state = "waiting_approval".into(),
            _ => return Vec::new(),
        }
        let same = (next.state.as_str(), next.attempt) == (step.state.as_str(), step.attempt);
        if same || next.progress_key() < step.progress_key() {
            return Vec::new(); // known already, or older than a view applied since
        }
        *step = next;
        let mut transition = step_transition(step);
        if what == "retrying" {
            if let Transition::Step { state, .. } = &mut transition {
                *state = "retrying".into();
            }
        }
        vec![transition]
    }
}

fn step_transition(step: &Step) -> Transition {
    let mut detail = Vec::new();
    if let Some(progress) = step.item_progress().filter(|_| is_final_step_state(&step.state)) {
        detail.push(format!("{progress} items"));
    }
    if let Some(reason) = &step.skip_reason {
        detail.push(reason.clone());
    }
    if let Some(error) = &step.error {
        detail.push(error.clone());
    }
    Transition::Step {
        step: step.id.clone(),
        state: step.state.clone(),
        attempt: step.attempt,
        detail: if detail.is_empty() { None } else { Some(detail.join("; ")) },
    }
}

/// RFC 3339 text, as the API writes times.
pub fn parse_time(text: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(text).ok()
}

/// A time as RFC 3339 text, or as milliseconds since the Unix epoch (event data).
fn time_value(value: &Value) -> Option<SystemTime> {
    match value {
        Value::String(text) => parse_time(text),
        Value::Number(ms) => ms.as_u64().map(|ms| UNIX_EPOCH + Duration::from_millis(ms)),
        _ => None,
    }
}

/// The `depends_on` of every step of a definition (`def` of a stored workflow).
pub fn depends_on(def: &Value) -> HashMap<String, Vec<String>> {
    def["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|step| {
            let id = step["id"].as_str()?.to_string();
            let deps = step["depends_on"].as_array().into_iter().flatten();
            Some((id, deps.filter_map(|d| d.as_str().map(str::to_string)).collect()))
        })
        .collect()
}

#[cfg(test)]
#[path = "model/tests.rs"]
pub(crate) mod tests;
