//! Checks a workflow definition before anything runs (DESIGN §5): names, step kinds,
//! dependencies and their cycles, templates and what they read, limits, the input schema.
//!
//! Every problem is reported, not just the first, each with the JSON pointer of what is
//! wrong (`/steps/2/depends_on/0`) and a message that says what to fix; [`source`]
//! turns pointers into lines and columns of the file.
//!
//! [`source`]: super::source

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;

use serde::Serialize;
use serde_json::Value;

use super::definition::{StepDef, WorkflowDef};
use super::template::Templates;
use crate::domain::valid_name;

/// The names of the namespace a definition is checked against.
///
/// Each catalog is `None` when it is not known where the check runs (then the names in
/// it are not checked: offline, `mark1 workflows validate` knows the config's agents but
/// no stored workflows), and a set, possibly empty, when it is (then every name outside
/// it is a problem).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KnownNames {
    /// Agent names.
    pub agents: Option<BTreeSet<String>>,
    /// Every capability some agent has.
    pub capabilities: Option<BTreeSet<String>>,
    /// Stored workflows and their versions.
    pub workflows: Option<BTreeMap<String, BTreeSet<u32>>>,
}

impl KnownNames {
    /// Nothing known: only the checks that need no catalog run.
    pub fn unknown() -> Self {
        Self::default()
    }

    /// Catalogs known to be empty: every agent, capability and sub-workflow is unknown.
    pub fn empty() -> Self {
        KnownNames {
            agents: Some(BTreeSet::new()),
            capabilities: Some(BTreeSet::new()),
            workflows: Some(BTreeMap::new()),
        }
    }

    /// Adds an agent and its capabilities (the agent and capability catalogs become known).
    pub fn with_agent<C: Into<String>>(
        mut self,
        name: impl Into<String>,
        capabilities: impl IntoIterator<Item = C>,
    ) -> Self {
        self.agents.get_or_insert_with(BTreeSet::new).insert(name.into());
        self.capabilities.get_or_insert_with(BTreeSet::new).extend(capabilities.into_iter().map(Into::into));
        self
    }

    /// Adds a stored version of a workflow (the workflow catalog becomes known).
    pub fn with_workflow(mut self, name: impl Into<String>, version: u32) -> Self {
        self.workflows.get_or_insert_with(BTreeMap::new).entry(name.into()).or_default().insert(version);
        self
    }
}

/// One thing wrong with a definition (or a run input).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// A JSON pointer into the definition, e.g. `/steps/2/depends_on/0`; `""` is the whole.
    pub pointer: String,
    /// What is wrong and what to do about it.
    pub message: String,
}

impl Problem {
    pub fn new(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Problem { pointer: pointer.into(), message: message.into() }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.pointer.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{} (at {})", self.message, self.pointer)
        }
    }
}

/// Every problem of `def`, in the order of the definition; empty when it may run.
pub fn validate(def: &WorkflowDef, known: &KnownNames) -> Vec<Problem> {
    let mut ids = HashMap::new();
    for (i, step) in def.steps.iter().enumerate() {
        ids.entry(step.id.as_str()).or_insert(i);
    }
    let mut v = Validator { def, known, ids, templates: Templates::new(), problems: Vec::new() };
    v.workflow();
    for (i, step) in def.steps.iter().enumerate() {
        v.step(i, step);
    }
    // Cycles and what each step may read are found by walking dependencies, in time
    // quadratic in the steps: past the bound the definition is refused before that work.
    if def.steps.len() <= MAX_STEPS {
        v.cycles();
        v.references();
    }
    v.problems
}

/// The problems of a run input against the definition's `input_schema`, with pointers
/// into the input (`/input/repo`). Schemas are compiled without resolving anything over
/// the network.
pub fn validate_input(schema: &Value, input: &Value) -> Vec<Problem> {
    let validator = match jsonschema::validator_for(schema) {
        Ok(validator) => validator,
        Err(e) => {
            return vec![Problem::new(
                "/input_schema",
                format!("input_schema is not a valid JSON Schema: {e}"),
            )]
        }
    };
    validator
        .iter_errors(input)
        .take(MAX_SCHEMA_ERRORS)
        .map(|e| {
            let at = e.instance_path().as_str().to_string();
            Problem::new(format!("/input{at}"), format!("the input does not match input_schema: {e}"))
        })
        .collect()
}

/// Schema errors reported at most, so a huge input cannot make a huge answer.
const MAX_SCHEMA_ERRORS: usize = 100;

/// Steps of one workflow at most; a larger graph is split into sub-workflows.
pub const MAX_STEPS: usize = 1000;

/// Names listed at most in a message.
const MAX_LISTED: usize = 12;

struct Validator<'a> {
    def: &'a WorkflowDef,
    known: &'a KnownNames,
    /// Step id → index of its first step.
    ids: HashMap<&'a str, usize>,
    templates: Templates,
    problems: Vec<Problem>,
}

impl<'a> Validator<'a> {
    fn problem(&mut self, pointer: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem::new(pointer, message));
    }

    fn workflow(&mut self) {
        let def = self.def;
        if !valid_name(&def.name) {
            self.problem(
                "/name",
                format!(
                    "workflow name {:?} is not valid: use lowercase letters, digits, `_` and `-`, starting \
                     with a letter",
                    def.name
                ),
            );
        }
        if def.version == Some(0) {
            self.problem("/version", "versions start at 1: use 1 or more, or leave version out");
        }
        if def.steps.is_empty() {
            self.problem("/steps", "a workflow needs at least one step: add one under steps");
        } else if def.steps.len() > MAX_STEPS {
            let message = format!(
                "a workflow has at most {MAX_STEPS} steps and this one has {}: move some into \
                 sub-workflows (steps with workflow: {{name: …}})",
                def.steps.len()
            );
            self.problem("/steps", message);
        }
        if def.concurrency == Some(0) {
            self.problem(
                "/concurrency",
                "concurrency 0 would never run a step: use 1 or more, or leave it out for the default (16)",
            );
        }
        if let Some(schema) = &def.input_schema {
            self.schema(schema);
        }
    }

    fn schema(&mut self, schema: &Value) {
        if !schema.is_object() && !schema.is_boolean() {
            self.problem(
                "/input_schema",
                "input_schema must be a JSON Schema: an object such as {type: object}",
            );
            return;
        }
        let meta = match jsonschema::meta::validator_for(schema) {
            Ok(meta) => meta,
            Err(e) => {
                let message = format!("input_schema cannot be checked: {e}; use a standard draft's $schema");
                return self.problem("/input_schema", message);
            }
        };
        let before = self.problems.len();
        for e in meta.iter_errors(schema).take(MAX_SCHEMA_ERRORS) {
            let at = format!("/input_schema{}", e.instance_path().as_str());
            self.problem(at, format!("input_schema is not a valid JSON Schema: {e}"));
        }
        if self.problems.len() == before {
            if let Err(e) = jsonschema::validator_for(schema) {
                self.problem("/input_schema", format!("input_schema cannot be used: {e}"));
            }
        }
    }

    fn step(&mut self, i: usize, step: &'a StepDef) {
        let at = format!("/steps/{i}");
        if !valid_step_id(&step.id) {
            self.problem(
                format!("{at}/id"),
                format!(
                    "step id {:?} is not valid: use lowercase letters, digits and `_`, starting with a \
                     letter (templates read it as steps.<id>)",
                    step.id
                ),
            );
        } else if self.ids[step.id.as_str()] != i {
            let first = self.ids[step.id.as_str()];
            self.problem(
                format!("{at}/id"),
                format!(
                    "step id {:?} is already the id of /steps/{first}: give each step its own id",
                    step.id
                ),
            );
        }
        self.kind(&at, step);
        let mut listed = HashSet::new();
        for (j, dep) in step.depends_on.iter().enumerate() {
            let here = format!("{at}/depends_on/{j}");
            if *dep == step.id {
                self.problem(here, "a step cannot depend on itself: remove this entry");
            } else if !self.ids.contains_key(dep.as_str()) {
                let message =
                    format!("depends on {dep:?}, which is not a step: steps are {}", self.step_list());
                self.problem(here, message);
            } else if !listed.insert(dep) {
                self.problem(here, format!("{dep:?} is listed twice: remove one"));
            }
        }
        if step.concurrency == Some(0) {
            self.problem(
                format!("{at}/concurrency"),
                "concurrency 0 would never run an item: use 1 or more, or leave it out for the default (8)",
            );
        } else if step.concurrency.is_some() && step.for_each.is_none() {
            self.problem(
                format!("{at}/concurrency"),
                "concurrency limits the items of a for_each, and this step has none: remove it",
            );
        }
        if let Some(retry) = &step.retry {
            if retry.attempts == 0 {
                self.problem(
                    format!("{at}/retry/attempts"),
                    "attempts counts every try, the first included: use 1 or more (1: no retry)",
                );
            }
        }
        if step.timeout.is_some_and(|t| t.is_zero()) {
            self.problem(
                format!("{at}/timeout"),
                "a timeout of 0 leaves no time to run: use more, or leave it out",
            );
        }
        if let Some(target) = step.on_error.route() {
            let here = format!("{at}/on_error/goto");
            if target == step.id {
                self.problem(
                    here,
                    "a step cannot route its own failure to itself: use retry to run it again",
                );
            } else if !self.ids.contains_key(target) {
                let message =
                    format!("goes to {target:?}, which is not a step: steps are {}", self.step_list());
                self.problem(here, message);
            }
        }
    }

    /// Exactly one of agent, capability, workflow, approval, each known when it can be.
    fn kind(&mut self, at: &str, step: &StepDef) {
        let present: Vec<&str> = [
            ("agent", step.agent.is_some()),
            ("capability", step.capability.is_some()),
            ("workflow", step.workflow.is_some()),
            ("approval", step.approval.is_some()),
            ("plan", step.plan.is_some()),
        ]
        .into_iter()
        .filter_map(|(key, set)| set.then_some(key))
        .collect();
        match present.as_slice() {
            [] => self.problem(
                at,
                "this step runs nothing: give it one of agent, capability, workflow, approval or plan",
            ),
            [first, rest @ ..] => {
                for key in rest {
                    self.problem(
                        format!("{at}/{key}"),
                        format!(
                            "a step runs exactly one of agent, capability, workflow, approval or plan, and \
                             this one also has {first}: keep one"
                        ),
                    );
                }
            }
        }
        if let Some(agent) = &step.agent {
            self.agent(format!("{at}/agent"), agent);
        }
        if let Some(capability) = &step.capability {
            self.capability(format!("{at}/capability"), capability);
        }
        if let Some(sub) = &step.workflow {
            self.sub_workflow(at, sub);
        }
        if let Some(plan) = &step.plan {
            self.plan_step(at, step, plan);
        }
        if let Some(approval) = &step.approval {
            let pointless = [
                (
                    "input",
                    step.input.is_some(),
                    "an approval step gives no task an input: put what the approver reads in \
                     approval.message",
                ),
                (
                    "for_each",
                    step.for_each.is_some(),
                    "an approval step pauses once for one decision: remove for_each",
                ),
                ("retry", step.retry.is_some(), "an approval step is decided, not retried: remove retry"),
                (
                    "timeout",
                    step.timeout.is_some(),
                    "an approval step waits for a person: set how long in approval.timeout instead",
                ),
            ];
            for (key, set, message) in pointless {
                if set {
                    self.problem(format!("{at}/{key}"), message);
                }
            }
            self.gate(&format!("{at}/approval"), approval);
        }
    }

    /// An agent a step names: a valid name, known when agents are known.
    fn agent(&mut self, at: String, agent: &str) {
        let known = self.known.agents.as_ref();
        if !valid_name(agent) {
            self.problem(at, format!("{agent:?} is not a valid agent name"));
        } else if let Some(known) = known.filter(|k| !k.contains(agent)) {
            let message = format!("no agent is named {agent:?}: known agents are {}", list(known));
            self.problem(at, message);
        }
    }

    /// A capability a step asks for: not empty, and some agent's when agents are known.
    fn capability(&mut self, at: String, capability: &str) {
        let known = self.known.capabilities.as_ref();
        if capability.trim().is_empty() {
            self.problem(at, "the capability is empty: name one, e.g. code.review");
        } else if let Some(known) = known.filter(|k| !k.contains(capability)) {
            let message =
                format!("no agent has capability {capability:?}: known capabilities are {}", list(known));
            self.problem(at, message);
        }
    }

    /// A wait for a decision (an approval step's, or a plan step's `approval`) at `at`.
    fn gate(&mut self, at: &str, approval: &super::ApprovalDef) {
        if approval.timeout.is_some_and(|t| t.is_zero()) {
            self.problem(format!("{at}/timeout"), "a timeout of 0 leaves no time to decide");
        }
        if approval.default.is_some() && approval.timeout.is_none() {
            self.problem(
                format!("{at}/default"),
                "default is the decision taken when the approval's timeout passes, and there is no \
                 timeout: set timeout or remove default",
            );
        }
    }

    fn sub_workflow(&mut self, at: &str, sub: &super::WorkflowRef) {
        let def = self.def;
        if !valid_name(&sub.name) {
            self.problem(
                format!("{at}/workflow/name"),
                format!("{:?} is not a valid workflow name", sub.name),
            );
            return;
        }
        if sub.name == def.name && (sub.version.is_none() || sub.version == def.version) {
            self.problem(
                format!("{at}/workflow"),
                "a workflow cannot run itself as a step: it would never end; name another workflow",
            );
            return;
        }
        let Some(workflows) = &self.known.workflows else { return };
        match (workflows.get(&sub.name), sub.version) {
            (None, _) => {
                let message = format!(
                    "no stored workflow is named {:?}: stored workflows are {}; create it first",
                    sub.name,
                    list(workflows.keys())
                );
                self.problem(format!("{at}/workflow/name"), message);
            }
            (Some(versions), Some(version)) if !versions.contains(&version) => {
                let stored: Vec<String> = versions.iter().map(u32::to_string).collect();
                let message = format!(
                    "workflow {:?} has no version {version}: stored versions are {}; pin one of them or \
                     leave version out for the latest",
                    sub.name,
                    stored.join(", ")
                );
                self.problem(format!("{at}/workflow/version"), message);
            }
            _ => {}
        }
    }

    fn step_list(&self) -> String {
        list(self.def.steps.iter().map(|s| &s.id))
    }
}

/// Step ids are read in templates as `steps.<id>` and written in task keys
/// (`run:<run>:<step>:<attempt>`), so they are names without `-`: `[a-z][a-z0-9_]*`.
pub fn valid_step_id(id: &str) -> bool {
    valid_name(id) && !id.contains('-')
}

fn list<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> String {
    let mut names = names.into_iter();
    let shown: Vec<String> = names.by_ref().take(MAX_LISTED).map(|n| n.as_ref().to_string()).collect();
    match (shown.len(), names.count()) {
        (0, _) => "none".to_string(),
        (_, 0) => shown.join(", "),
        (_, more) => format!("{} and {more} more", shown.join(", ")),
    }
}

mod order;
mod plan;
#[cfg(test)]
mod tests;
