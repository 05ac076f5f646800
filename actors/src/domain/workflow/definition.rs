//! Workflow definitions (DESIGN §13.7): a DAG of steps, as data.
//!
//! These types are the shape of a definition file (YAML or JSON); unknown keys are
//! refused so a typo (`depend_on`) is an error, not a step that silently has no
//! dependencies. Whether a definition makes sense as a whole (no cycles, known agents,
//! templates that compile…) is checked by `validate`, which reports every problem.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowDef {
    pub name: String,
    /// Set by the file, or the next free version when stored without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A JSON Schema the run input must satisfy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<Value>,
    /// How many steps (for_each items included) of one run may run at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
    pub steps: Vec<StepDef>,
    /// The run's output, built from templates once every step is done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
}

/// Steps of a run that may run at once when the definition does not say.
pub const DEFAULT_RUN_CONCURRENCY: usize = 16;

impl WorkflowDef {
    pub fn concurrency(&self) -> usize {
        self.concurrency.unwrap_or(DEFAULT_RUN_CONCURRENCY).max(1)
    }

    pub fn step(&self, id: &str) -> Option<&StepDef> {
        self.steps.iter().find(|s| s.id == id)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepDef {
    pub id: String,
    /// Run by the named agent of the run's namespace…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// …or by any agent with this capability…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capability: Option<String>,
    /// …or as a run of another workflow…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<WorkflowRef>,
    /// …or a pause until someone approves or rejects it…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalDef>,
    /// …or steps a model plans toward a goal, run as a sub-run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<PlanDef>,
    /// The task input (the sub-run's, for `workflow` and `plan`): any JSON; strings in it
    /// are templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// A template or expression: the step runs when it is truthy, else it is skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// A template or expression that gives a list: the step runs once per item (`item`,
    /// `index` in its templates), and its output is the list of the items' outputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_each: Option<String>,
    /// Items of a `for_each` that may run at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<StepRetry>,
    /// Time one attempt may take.
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "OnError::is_fail")]
    pub on_error: OnError,
}

/// Items of a `for_each` that run at once when the step does not say.
pub const DEFAULT_ITEM_CONCURRENCY: usize = 8;

impl StepDef {
    pub fn kind(&self) -> Option<StepKind<'_>> {
        match (&self.agent, &self.capability, &self.workflow, &self.approval, &self.plan) {
            (Some(a), None, None, None, None) => Some(StepKind::Agent(a)),
            (None, Some(c), None, None, None) => Some(StepKind::Capability(c)),
            (None, None, Some(w), None, None) => Some(StepKind::Workflow(w)),
            (None, None, None, Some(a), None) => Some(StepKind::Approval(a)),
            (None, None, None, None, Some(p)) => Some(StepKind::Plan(p)),
            _ => None,
        }
    }

    /// The decision the step waits for, if it waits for one: an approval step's, or the
    /// one a plan step holds its plan for.
    pub fn gate(&self) -> Option<&ApprovalDef> {
        match self.kind()? {
            StepKind::Approval(approval) => Some(approval),
            StepKind::Plan(plan) => plan.approval.as_ref(),
            _ => None,
        }
    }

    pub fn item_concurrency(&self) -> usize {
        self.concurrency.unwrap_or(DEFAULT_ITEM_CONCURRENCY).max(1)
    }

    /// Attempts before the step fails; 1 without a `retry`.
    pub fn max_attempts(&self) -> u32 {
        self.retry.as_ref().map_or(1, |r| r.attempts.max(1))
    }
}

/// What a step runs: exactly one of `agent`, `capability`, `workflow`, `approval`, `plan`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum StepKind<'a> {
    Agent(&'a str),
    Capability(&'a str),
    Workflow(&'a WorkflowRef),
    Approval(&'a ApprovalDef),
    Plan(&'a PlanDef),
}

/// A sub-workflow by name, pinned to a version or the latest when the run starts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowRef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalDef {
    /// How long to wait for a decision; forever when unset.
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// The decision taken when the timeout passes; without one the step times out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Decision>,
    /// Shown to whoever approves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A step that asks a model to break `goal` into steps over the namespace's agents; the
/// plan is checked like a definition, then runs as a sub-run (docs/workflows.md, "Plans").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanDef {
    /// What the plan is for: a template, rendered when the step starts.
    pub goal: String,
    /// The model that plans, as the router takes ids (`llama3.1`, `local/llama3.1`); left
    /// out, the first chat model the router lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Most steps the plan may have; [`DEFAULT_PLAN_STEPS`] when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_steps: Option<usize>,
    /// Holds the plan for a person's decision before it runs: `true`, or an approval's
    /// `{timeout, default, message}`.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "gate")]
    pub approval: Option<ApprovalDef>,
    /// Agents the plan may name. With either list, the plan may use only what the lists
    /// hold; with neither, every agent of the namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agents: Option<Vec<String>>,
    /// Capabilities the plan may ask for (see `agents`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Vec<String>>,
}

/// Steps a plan may have when its step does not say.
pub const DEFAULT_PLAN_STEPS: usize = 10;

impl PlanDef {
    pub fn max_steps(&self) -> usize {
        self.max_steps.unwrap_or(DEFAULT_PLAN_STEPS)
    }
}

/// `approval: true | false | {timeout, default, message}`: a flag is the common case, and
/// the mapping keeps serde's own errors (an unknown key is named), which an untagged enum
/// would replace by "did not match any variant".
fn gate<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<ApprovalDef>, D::Error> {
    struct Gate;

    impl<'de> serde::de::Visitor<'de> for Gate {
        type Value = Option<ApprovalDef>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("true, false, or an approval such as {timeout: 24h, default: reject}")
        }

        fn visit_bool<E: serde::de::Error>(self, held: bool) -> Result<Self::Value, E> {
            Ok(held.then(ApprovalDef::default))
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            ApprovalDef::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Some)
        }
    }

    deserializer.deserialize_any(Gate)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Approve,
    Reject,
}

/// Retries of a failed step: `attempts` in all, waiting `backoff`, doubled after each
/// failure up to [`MAX_BACKOFF`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepRetry {
    pub attempts: u32,
    #[serde(default, with = "humantime_serde")]
    pub backoff: Duration,
}

pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

impl StepRetry {
    /// The wait before attempt `next` (2 for the first retry).
    pub fn delay_before(&self, next: u32) -> Duration {
        let doublings = next.saturating_sub(2).min(16);
        self.backoff.saturating_mul(1 << doublings).min(MAX_BACKOFF)
    }
}

/// What a step's failure (after its retries) does to the run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// The run fails; steps still running are cancelled.
    #[default]
    Fail,
    /// The run goes on: dependents run, seeing the step's `error` and a null `output`.
    Continue,
    /// The named step runs instead of the failed step's dependents, which are skipped.
    /// A step that is some step's route runs only when routed to.
    Goto(String),
}

impl OnError {
    pub fn is_fail(&self) -> bool {
        *self == OnError::Fail
    }

    pub fn route(&self) -> Option<&str> {
        match self {
            OnError::Goto(step) => Some(step),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let r = StepRetry { attempts: 5, backoff: Duration::from_secs(2) };
        assert_eq!(r.delay_before(2), Duration::from_secs(2));
        assert_eq!(r.delay_before(3), Duration::from_secs(4));
        assert_eq!(r.delay_before(4), Duration::from_secs(8));
        assert_eq!(r.delay_before(40), MAX_BACKOFF);
    }

    #[test]
    fn a_step_is_exactly_one_kind() {
        let step: StepDef = serde_json::from_value(serde_json::json!({"id": "a", "agent": "echo"})).unwrap();
        assert_eq!(step.kind(), Some(StepKind::Agent("echo")));
        let both: StepDef =
            serde_json::from_value(serde_json::json!({"id": "a", "agent": "echo", "capability": "x"}))
                .unwrap();
        assert_eq!(both.kind(), None);
        let typo = serde_json::from_value::<StepDef>(serde_json::json!({"id": "a", "depend_on": ["b"]}));
        assert!(typo.unwrap_err().to_string().contains("depend_on"));
        let goto: StepDef =
            serde_json::from_value(serde_json::json!({"id": "a", "agent": "x", "on_error": {"goto": "b"}}))
                .unwrap();
        assert_eq!(goto.on_error.route(), Some("b"));
    }

    #[test]
    fn a_plan_is_held_for_approval_by_a_flag_or_an_approval() {
        let plan = |approval: serde_json::Value| -> PlanDef {
            serde_json::from_value(serde_json::json!({"goal": "g", "approval": approval})).unwrap()
        };
        assert_eq!(plan(serde_json::json!(false)).approval, None);
        assert_eq!(plan(serde_json::json!(true)).approval, Some(ApprovalDef::default()));
        let timed = plan(serde_json::json!({"timeout": "1h", "default": "reject"})).approval.unwrap();
        assert_eq!((timed.timeout, timed.default), (Some(Duration::from_secs(3600)), Some(Decision::Reject)));
        let step: StepDef =
            serde_json::from_value(serde_json::json!({"id": "p", "plan": {"goal": "g", "approval": true}}))
                .unwrap();
        assert!(matches!(step.kind(), Some(StepKind::Plan(_))));
        assert_eq!(step.gate(), Some(&ApprovalDef::default()), "a held plan waits like an approval step");
        let stored = serde_json::to_value(&step).unwrap();
        assert_eq!(serde_json::from_value::<StepDef>(stored).unwrap(), step, "a stored plan step reads back");
    }
}
