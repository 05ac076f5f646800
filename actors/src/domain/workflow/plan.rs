//! Plans a model proposes for a `plan` step (docs/workflows.md, "Plans"): the shape the
//! model is asked for, reading its answer into steps, and checking them with the same
//! [`validate`] as any definition, against only what the step allows.
//!
//! An accepted plan is journaled (`step.planned`) and then runs as a sub-run whose
//! definition is the plan. That definition is not stored as a workflow version: the
//! sub-run's `run.started` entry carries it ([`planned_definition`] reads it back).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::definition::{OnError, PlanDef, StepDef, WorkflowDef};
use super::run::{JournalEntry, JournalKind};
use super::source::located;
use super::validate::{validate, KnownNames, Problem};

/// The `version` of a planned run's record: no stored version is 0, so it cannot be
/// mistaken for one; the definition is in the run's journal.
pub const PLANNED_VERSION: u32 = 0;

/// A plan accepted for one attempt of a plan step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The goal as rendered for this attempt.
    pub goal: String,
    /// The model that answered, as `provider/model`.
    pub model: String,
    pub steps: Vec<StepDef>,
}

impl Plan {
    /// The definition the plan's sub-run runs. It has no `output`, so the sub-run's
    /// output is the map of its steps' outputs.
    pub fn definition(&self, workflow: &str, step: &str) -> WorkflowDef {
        WorkflowDef {
            name: planned_name(workflow, step),
            version: None,
            description: Some(self.goal.clone()),
            input_schema: None,
            concurrency: None,
            steps: self.steps.clone(),
            output: None,
        }
    }
}

/// The name of the sub-runs of plan step `step` of `workflow`: a valid workflow name,
/// since both parts are.
pub fn planned_name(workflow: &str, step: &str) -> String {
    format!("{workflow}-{step}")
}

/// The definition a run's `run.started` entry carries, if it is a planned run.
pub fn planned_definition(journal: &[JournalEntry]) -> Option<WorkflowDef> {
    let started = journal.first().filter(|e| e.kind == JournalKind::RunStarted)?;
    serde_json::from_value(started.data.get("definition")?.clone()).ok()
}

/// What the plan of `plan` may use of `known` (the namespace's agents): with either
/// allow-list, only what the lists hold, each list narrowing its own kind and a missing
/// list allowing nothing of its kind; with neither, everything known.
pub fn allowed(known: &KnownNames, plan: &PlanDef) -> KnownNames {
    let listed = plan.agents.is_some() || plan.capabilities.is_some();
    let narrow = |known: &Option<BTreeSet<String>>, list: &Option<Vec<String>>| -> BTreeSet<String> {
        let known = known.clone().unwrap_or_default();
        match list {
            Some(list) => list.iter().filter(|n| known.contains(*n)).cloned().collect(),
            None if listed => BTreeSet::new(),
            None => known,
        }
    };
    KnownNames {
        agents: Some(narrow(&known.agents, &plan.agents)),
        capabilities: Some(narrow(&known.capabilities, &plan.capabilities)),
        // A plan runs agents only: a sub-workflow of a plan is not on offer.
        workflows: Some(Default::default()),
    }
}

/// The JSON Schema of the answer asked of the model, its names limited to `allowed`.
pub fn answer_schema(max_steps: usize, allowed: &KnownNames) -> Value {
    let mut step = json!({
        "type": "object",
        "required": ["id"],
        "additionalProperties": false,
        "properties": {
            "id": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
            "input": {"description": "the JSON the step's agent receives; its strings may be templates"},
            "depends_on": {"type": "array", "items": {"type": "string"}},
        },
    });
    for (key, names) in [("agent", &allowed.agents), ("capability", &allowed.capabilities)] {
        if let Some(names) = names.as_ref().filter(|n| !n.is_empty()) {
            step["properties"][key] = json!({"type": "string", "enum": names});
        }
    }
    json!({
        "type": "object",
        "required": ["steps"],
        "additionalProperties": false,
        "properties": {"steps": {"type": "array", "minItems": 1, "maxItems": max_steps, "items": step}},
    })
}

/// One step as the model writes it: an agent or a capability, an input, dependencies.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlannedStep {
    id: String,
    #[serde(default)]
    agent: Option<String>,
    #[serde(default)]
    capability: Option<String>,
    #[serde(default)]
    input: Option<Value>,
    #[serde(default)]
    depends_on: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Answer {
    steps: Vec<PlannedStep>,
}

impl From<PlannedStep> for StepDef {
    fn from(s: PlannedStep) -> StepDef {
        StepDef {
            id: s.id,
            agent: s.agent,
            capability: s.capability,
            workflow: None,
            approval: None,
            plan: None,
            input: s.input,
            depends_on: s.depends_on,
            when: None,
            for_each: None,
            concurrency: None,
            retry: None,
            timeout: None,
            on_error: OnError::Fail,
        }
    }
}

/// The model's answer as steps, checked as the definition `name` would be against
/// `allowed`, with at most `max_steps` of them; else every problem, with pointers into
/// the answer (`/steps/1/agent`), which is what a repair request shows the model.
pub fn read_answer(
    text: &str,
    name: &str,
    max_steps: usize,
    allowed: &KnownNames,
) -> Result<Vec<StepDef>, Vec<Problem>> {
    let value: Value = serde_json::from_str(json_part(text)).map_err(|e| {
        vec![Problem::new(
            "",
            format!("the answer is not JSON ({e}): answer with one JSON object {{\"steps\": […]}} and nothing else"),
        )]
    })?;
    let answer: Answer = serde_path_to_error::deserialize(&value).map_err(|e| {
        let (pointer, message) = located("", e);
        vec![Problem::new(
            pointer,
            format!("{message}: a step has only id, agent or capability, input, depends_on"),
        )]
    })?;
    let steps: Vec<StepDef> = answer.steps.into_iter().map(StepDef::from).collect();
    let mut problems = Vec::new();
    if steps.len() > max_steps {
        let message =
            format!("the plan has {} steps and may have at most {max_steps}: merge some", steps.len());
        problems.push(Problem::new("/steps", message));
    }
    let def = WorkflowDef {
        name: name.to_string(),
        version: None,
        description: None,
        input_schema: None,
        concurrency: None,
        steps,
        output: None,
    };
    problems.extend(validate(&def, allowed));
    if problems.is_empty() {
        Ok(def.steps)
    } else {
        Err(problems)
    }
}

/// The JSON of an answer, without the Markdown code fence models like to wrap it in.
fn json_part(text: &str) -> &str {
    let text = text.trim();
    let Some(fenced) = text.strip_prefix("```") else { return text };
    // The fence's first line may name the language (```json).
    let body = fenced.split_once('\n').map_or("", |(_, body)| body);
    body.trim_end().strip_suffix("```").unwrap_or(body).trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> KnownNames {
        KnownNames::empty().with_agent("echo", ["text.echo"]).with_agent("upper", ["text.upper"])
    }

    fn plan_def(v: Value) -> PlanDef {
        serde_json::from_value(v).unwrap()
    }

    const TWO: &str = r#"{"steps": [
        {"id": "shout", "agent": "upper", "input": {"text": "{{ input.text }}"}},
        {"id": "say", "capability": "text.echo", "depends_on": ["shout"],
         "input": {"said": "{{ steps.shout.output.text }}"}}
    ]}"#;

    #[test]
    fn a_valid_answer_reads_into_steps_fenced_or_not() {
        let steps = read_answer(TWO, "flow-plan", 10, &known()).unwrap();
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[1].depends_on, ["shout"]);
        let fenced = format!("```json\n{TWO}\n```");
        assert_eq!(read_answer(&fenced, "flow-plan", 10, &known()).unwrap(), steps);
    }

    #[test]
    fn every_problem_is_named_with_its_pointer() {
        let ghost = r#"{"steps": [{"id": "a", "agent": "ghost"}, {"id": "b", "agent": "echo",
            "input": "{{ steps.a.output }}"}]}"#;
        let problems = read_answer(ghost, "flow-plan", 10, &known()).unwrap_err();
        let found: Vec<(&str, &str)> =
            problems.iter().map(|p| (p.pointer.as_str(), p.message.as_str())).collect();
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].0, "/steps/0/agent");
        assert!(found[0].1.contains("\"ghost\"") && found[0].1.contains("echo, upper"), "{found:?}");
        assert_eq!(found[1].0, "/steps/1/input", "a read of a step that is not a dependency");

        let cycle = r#"{"steps": [{"id": "a", "agent": "echo", "depends_on": ["b"]},
                                  {"id": "b", "agent": "echo", "depends_on": ["a"]}]}"#;
        let problems = read_answer(cycle, "flow-plan", 10, &known()).unwrap_err();
        assert!(problems[0].message.contains("a → b → a"), "{problems:?}");

        let extra = r#"{"steps": [{"id": "a", "agent": "echo", "retry": {"attempts": 2}}]}"#;
        let problems = read_answer(extra, "flow-plan", 10, &known()).unwrap_err();
        assert_eq!(problems[0].pointer, "/steps/0/retry", "{problems:?}");

        let prose = read_answer("Sure! Here is the plan.", "flow-plan", 10, &known()).unwrap_err();
        assert!(prose[0].message.starts_with("the answer is not JSON"), "{prose:?}");

        let long = read_answer(TWO, "flow-plan", 1, &known()).unwrap_err();
        assert_eq!((long[0].pointer.as_str(), long.len()), ("/steps", 1), "{long:?}");
    }

    #[test]
    fn allow_lists_narrow_what_the_plan_may_name() {
        let all = allowed(&known(), &plan_def(json!({"goal": "g"})));
        assert_eq!(all.agents, known().agents);
        let only_echo = allowed(&known(), &plan_def(json!({"goal": "g", "agents": ["echo", "nobody"]})));
        assert_eq!(only_echo.agents, Some(BTreeSet::from(["echo".to_string()])));
        assert_eq!(
            only_echo.capabilities,
            Some(BTreeSet::new()),
            "a missing list allows nothing of its kind"
        );
        let problems = read_answer(TWO, "flow-plan", 10, &only_echo).unwrap_err();
        assert!(problems.iter().any(|p| p.pointer == "/steps/0/agent"), "{problems:?}");
        assert!(problems.iter().any(|p| p.pointer == "/steps/1/capability"), "{problems:?}");

        let schema = answer_schema(3, &only_echo);
        let step = &schema["properties"]["steps"]["items"]["properties"];
        assert_eq!(step["agent"]["enum"], json!(["echo"]));
        assert!(step.get("capability").is_none(), "no capability is on offer: {schema}");
        assert_eq!(schema["properties"]["steps"]["maxItems"], json!(3));
    }

    #[test]
    fn a_planned_run_carries_its_definition_in_its_first_entry() {
        let plan = Plan {
            goal: "say it loud".into(),
            model: "oa/llama3.1".into(),
            steps: read_answer(TWO, "flow-plan", 10, &known()).unwrap(),
        };
        let def = plan.definition("flow", "plan");
        assert_eq!(def.name, "flow-plan");
        assert!(validate(&def, &known()).is_empty());
        let entry = |kind, data| JournalEntry {
            run: super::super::RunId::new(),
            seq: 1,
            step: None,
            attempt: None,
            kind,
            data,
            recorded_at: std::time::SystemTime::now(),
        };
        let started = entry(JournalKind::RunStarted, json!({"input": {}, "definition": def}));
        assert_eq!(planned_definition(&[started]), Some(def));
        assert_eq!(planned_definition(&[entry(JournalKind::RunStarted, json!({"input": {}}))]), None);
    }
}
