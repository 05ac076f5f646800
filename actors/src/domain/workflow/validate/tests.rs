//! Each kind of bad definition, read from YAML through `source::check` so each problem
//! is asserted with its pointer and its line and column.

use serde_json::json;

use super::*;
use crate::domain::workflow::source::{check, Diagnostic};

fn known() -> KnownNames {
    KnownNames::empty()
        .with_agent("scanner", ["code.scan"])
        .with_agent("reviewer", ["code.review", "code.fix"])
        .with_workflow("lint", 1)
        .with_workflow("lint", 2)
}

fn diagnostics(text: &str) -> Vec<Diagnostic> {
    match check(text, Some("flow.yaml"), &known()) {
        Ok(def) => panic!("expected problems, got a valid definition: {def:?}"),
        Err(d) => d,
    }
}

/// The 1-based line and column where `needle` first occurs in `text`.
fn pos_of(text: &str, needle: &str) -> (usize, usize) {
    let offset = text.find(needle).unwrap_or_else(|| panic!("{needle:?} is in the text"));
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or_default().chars().count() + 1;
    (line, column)
}

/// Asserts the definition has exactly one problem, at `pointer`, shown where `needle` is,
/// with a message that contains `says`.
#[track_caller]
fn one(text: &str, pointer: &str, needle: &str, says: &str) {
    let found = diagnostics(text);
    assert_eq!(found.len(), 1, "exactly one problem: {found:#?}");
    let d = &found[0];
    assert_eq!(d.pointer, pointer, "{d}");
    assert_eq!((d.line, d.column), pos_of(text, needle), "{d}");
    assert!(d.message.contains(says), "{d:?} says {says:?}");
    assert_eq!(d.file.as_deref(), Some("flow.yaml"));
}

/// A definition with one step of each kind around `extra`.
fn with_steps(steps: &str) -> String {
    format!("name: flow\nsteps:\n{steps}")
}

const TRIAGE: &str = r#"name: triage
version: 3
input_schema: {type: object, required: [repo]}
steps:
  - id: scan
    agent: scanner
    input: {path: "{{ input.repo }}", run: "{{ run.id }}"}
  - id: review
    capability: code.review
    depends_on: [scan]
    when: "{{ steps.scan.output.llm_calls | length > 0 }}"
    for_each: "{{ steps.scan.output.files }}"
    concurrency: 4
    input: {file: "{{ item }}", n: "{{ index }}", all: "{% for f in range(3) %}{{ f }}{% endfor %}"}
    retry: {attempts: 3, backoff: 2s}
    timeout: 60s
    on_error: continue
  - id: approve
    approval: {timeout: 24h, default: reject, message: "ship it?"}
    depends_on: [review]
  - id: sub
    workflow: {name: lint, version: 2}
    depends_on: [approve]
    input: {code: "{{ steps.scan.output }}"}
    when: steps.approve.state == 'succeeded'
output: {reviews: "{{ steps.review.output }}", linted: "{{ steps.sub.output }}"}
"#;

#[test]
fn the_design_example_is_valid() {
    let def = check(TRIAGE, None, &known()).expect("valid");
    assert_eq!(def.steps.len(), 4);
    assert!(validate(&def, &KnownNames::unknown()).is_empty());
}

#[test]
fn names_and_the_list_of_steps() {
    one("name: Triage\nsteps:\n  - {id: a, agent: scanner}\n", "/name", "Triage", "lowercase");
    one("name: t\nversion: 0\nsteps:\n  - {id: a, agent: scanner}\n", "/version", "0", "start at 1");
    one("name: t\nsteps: []\n", "/steps", "[]", "at least one step");
    one(&with_steps("  - {id: my-step, agent: scanner}\n"), "/steps/0/id", "my-step", "not valid");
}

#[test]
fn duplicate_ids_point_at_the_second() {
    let text = with_steps("  - id: a\n    agent: scanner\n  - id: a\n    agent: reviewer\n");
    let found = diagnostics(&text);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!((found[0].pointer.as_str(), found[0].line, found[0].column), ("/steps/1/id", 5, 9));
}

#[test]
fn a_step_runs_exactly_one_known_thing() {
    one(&with_steps("  - id: a\n    depends_on: []\n"), "/steps/0", "id: a", "runs nothing");
    one(
        &with_steps("  - id: a\n    agent: scanner\n    capability: code.scan\n"),
        "/steps/0/capability",
        "code.scan",
        "also has agent",
    );
    one(
        &with_steps("  - id: a\n    agent: scannr\n"),
        "/steps/0/agent",
        "scannr",
        "known agents are reviewer, scanner",
    );
    one(
        &with_steps("  - id: a\n    capability: code.reveiw\n"),
        "/steps/0/capability",
        "code.reveiw",
        "no agent has capability",
    );
    one(
        &with_steps("  - id: a\n    workflow: {name: lnt}\n"),
        "/steps/0/workflow/name",
        "lnt",
        "no stored workflow",
    );
    one(
        &with_steps("  - id: a\n    workflow: {name: lint, version: 7}\n"),
        "/steps/0/workflow/version",
        "7",
        "stored versions are 1, 2",
    );
    one(
        &with_steps("  - id: a\n    workflow: {name: flow}\n"),
        "/steps/0/workflow",
        "{name: flow}",
        "cannot run itself",
    );
}

#[test]
fn an_unknown_catalog_is_not_checked_and_an_empty_one_is() {
    let text = with_steps("  - {id: a, agent: anyone}\n  - {id: b, capability: any.thing}\n  - {id: c, workflow: {name: any}}\n");
    assert!(check(&text, None, &KnownNames::unknown()).is_ok());
    let found = check(&text, None, &KnownNames::empty()).unwrap_err();
    let pointers: Vec<&str> = found.iter().map(|d| d.pointer.as_str()).collect();
    assert_eq!(pointers, ["/steps/0/agent", "/steps/1/capability", "/steps/2/workflow/name"]);
    assert!(found[0].message.contains("known agents are none"), "{}", found[0]);
}

#[test]
fn dependencies_name_other_steps_once() {
    one(
        &with_steps("  - id: a\n    agent: scanner\n    depends_on: [b]\n"),
        "/steps/0/depends_on/0",
        "b]",
        "not a step: steps are a",
    );
    one(
        &with_steps("  - id: a\n    agent: scanner\n    depends_on: [a]\n"),
        "/steps/0/depends_on/0",
        "a]",
        "itself",
    );
    let text =
        with_steps("  - {id: a, agent: scanner}\n  - id: b\n    agent: scanner\n    depends_on: [a, a]\n");
    one(&text, "/steps/1/depends_on/1", "a]", "listed twice");
}

#[test]
fn a_cycle_is_named_by_its_steps() {
    let text = with_steps(
        "  - id: a\n    agent: scanner\n    depends_on: [b]\n  - id: b\n    agent: scanner\n    depends_on: [c]\n  - id: c\n    agent: scanner\n    depends_on: [a]\n  - id: d\n    agent: scanner\n    depends_on: [a]\n",
    );
    let found = diagnostics(&text);
    assert_eq!(found.len(), 1, "one cycle, reported once: {found:#?}");
    assert_eq!(found[0].pointer, "/steps/2/depends_on/0");
    assert_eq!((found[0].line, found[0].column), (11, 18));
    assert!(found[0].message.contains("a → b → c → a"), "{}", found[0]);
}

#[test]
fn templates_that_do_not_compile() {
    let text = with_steps("  - id: a\n    agent: scanner\n    input: {deep: [ok, \"{{ input.x \"]}\n");
    one(&text, "/steps/0/input/deep/1", "\"{{ input.x", "does not compile");
    one(
        &with_steps("  - id: a\n    agent: scanner\n    when: \"input.x ==\"\n"),
        "/steps/0/when",
        "\"input.x ==",
        "does not compile",
    );
    one(
        &with_steps("  - id: a\n    agent: scanner\n    for_each: \"{% for %}\"\n"),
        "/steps/0/for_each",
        "\"{% for",
        "does not compile",
    );
    let text =
        format!("{}output: {{a: \"{{{{ steps.a.output \"}}\n", with_steps("  - {id: a, agent: scanner}\n"));
    one(&text, "/output/a", "\"{{ steps.a.output \"", "does not compile");
}

#[test]
fn a_step_reads_only_what_exists_before_it_runs() {
    let text = with_steps("  - {id: scan, agent: scanner}\n  - id: b\n    agent: scanner\n    input: {f: \"{{ steps.scan.output.files }}\"}\n");
    one(
        &text,
        "/steps/1/input/f",
        "\"{{ steps.scan",
        "the output of scan cannot exist yet when b runs: add scan to depends_on",
    );
    let text = with_steps("  - id: a\n    agent: scanner\n    when: \"{{ steps.a.output }}\"\n");
    one(&text, "/steps/0/when", "\"{{ steps.a", "its own output");
    let text = with_steps("  - id: a\n    agent: scanner\n    input: \"{{ steps.nope.output }}\"\n");
    one(&text, "/steps/0/input", "\"{{ steps.nope", "there is no step \"nope\"");
    let text = with_steps("  - {id: a, agent: scanner}\n  - id: b\n    agent: scanner\n    depends_on: [a]\n    input: \"{{ steps.a.outptu }}\"\n");
    one(&text, "/steps/1/input", "\"{{ steps.a.outptu", "did you mean steps.a.output.outptu");
    let text = with_steps("  - id: a\n    agent: scanner\n    input: \"{{ inptu.repo }} {{ run.name }}\"\n");
    let found = diagnostics(&text);
    let messages: Vec<&str> = found.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(found.len(), 2, "{messages:?}");
    assert!(messages.iter().any(|m| m.starts_with("inptu is not defined")), "{messages:?}");
    assert!(messages.iter().any(|m| m.starts_with("run.name does not exist")), "{messages:?}");
}

#[test]
fn dependencies_count_transitively_and_the_output_reads_any_step() {
    let text = format!(
        "{}output: \"{{{{ steps.a.output }}}} {{{{ steps.c.state }}}}\"\n",
        with_steps(
            "  - {id: a, agent: scanner}\n  - {id: b, agent: scanner, depends_on: [a]}\n  - id: c\n    agent: scanner\n    depends_on: [b]\n    input: \"{{ steps.a.output }}\"\n"
        )
    );
    assert!(check(&text, None, &known()).is_ok());
}

#[test]
fn item_and_index_exist_only_in_the_input_of_a_for_each_step() {
    let text = with_steps("  - id: a\n    agent: scanner\n    input: \"{{ item }}\"\n");
    one(&text, "/steps/0/input", "\"{{ item", "only defined in a for_each step");
    let text = with_steps("  - id: a\n    agent: scanner\n    for_each: input.files\n    when: index > 0\n");
    one(&text, "/steps/0/when", "index > 0", "index is not defined in when");
    let text = with_steps("  - id: a\n    agent: scanner\n    for_each: item.files\n");
    one(&text, "/steps/0/for_each", "item.files", "item is not defined in for_each");
    let text = format!("{}output: \"{{{{ item }}}}\"\n", with_steps("  - {id: a, agent: scanner}\n"));
    one(&text, "/output", "\"{{ item", "item is not defined in output");
}

#[test]
fn on_error_routes_to_another_step_which_may_read_the_failure() {
    let text = with_steps("  - id: a\n    agent: scanner\n    on_error: {goto: fix}\n");
    one(&text, "/steps/0/on_error/goto", "fix", "not a step");
    let text = with_steps("  - id: a\n    agent: scanner\n    on_error: {goto: a}\n");
    one(&text, "/steps/0/on_error/goto", "a}", "to itself");
    let text = with_steps("  - {id: a, agent: scanner, on_error: {goto: fix}}\n  - id: fix\n    agent: reviewer\n    input: \"{{ steps.a.error }}\"\n");
    assert!(check(&text, None, &known()).is_ok());
}

#[test]
fn limits_that_can_never_run() {
    one(
        "name: t\nconcurrency: 0\nsteps:\n  - {id: a, agent: scanner}\n",
        "/concurrency",
        "0",
        "never run a step",
    );
    let text = with_steps("  - id: a\n    agent: scanner\n    for_each: input.files\n    concurrency: 0\n");
    one(&text, "/steps/0/concurrency", "0", "never run an item");
    let text = with_steps("  - id: a\n    agent: scanner\n    concurrency: 2\n");
    one(&text, "/steps/0/concurrency", "2", "has none");
    let text = with_steps("  - id: a\n    agent: scanner\n    retry: {attempts: 0}\n");
    one(&text, "/steps/0/retry/attempts", "0}", "1 or more");
    let text = with_steps("  - id: a\n    agent: scanner\n    timeout: 0s\n");
    one(&text, "/steps/0/timeout", "0s", "no time");
}

#[test]
fn what_an_approval_step_cannot_have() {
    for (key, line, says) in [
        ("input", "    input: {a: 1}\n", "approval.message"),
        ("for_each", "    for_each: input.files\n", "remove for_each"),
        ("retry", "    retry: {attempts: 2}\n", "remove retry"),
        ("timeout", "    timeout: 2h\n", "approval.timeout"),
    ] {
        let text = with_steps(&format!("  - id: a\n    approval: {{timeout: 1h}}\n{line}"));
        let needle = line.trim_start().split(':').nth(1).unwrap().trim();
        one(&text, &format!("/steps/0/{key}"), needle, says);
    }
    let text = with_steps("  - id: a\n    approval: {default: approve}\n");
    one(&text, "/steps/0/approval/default", "approve", "no timeout");
}

#[test]
fn an_input_schema_must_be_a_json_schema() {
    let text = "name: t\ninput_schema: {type: objekt}\nsteps:\n  - {id: a, agent: scanner}\n";
    one(text, "/input_schema/type", "objekt", "not a valid JSON Schema");
    let text = "name: t\ninput_schema: [1]\nsteps:\n  - {id: a, agent: scanner}\n";
    one(text, "/input_schema", "[1]", "must be a JSON Schema");
    // Nothing is fetched: a meta-schema or a $ref elsewhere is a problem, not a request.
    let text = "name: t\ninput_schema: {$schema: \"http://127.0.0.1:9/meta\"}\nsteps:\n  - {id: a, agent: scanner}\n";
    one(text, "/input_schema", "{$schema", "cannot be checked");
    let text =
        "name: t\ninput_schema: {$ref: \"http://127.0.0.1:9/s.json\"}\nsteps:\n  - {id: a, agent: scanner}\n";
    one(text, "/input_schema", "{$ref", "cannot be used");
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = "name: Bad\nsteps:\n  - id: a\n    agent: ghost\n    depends_on: [zzz]\n  - id: b\n    capability: code.scan\n    retry: {attempts: 0}\n    input: \"{{ steps.a.output }} {{ item }}\"\n";
    let found = diagnostics(text);
    let got: Vec<(&str, usize, usize)> =
        found.iter().map(|d| (d.pointer.as_str(), d.line, d.column)).collect();
    assert_eq!(
        got,
        [
            ("/name", 1, 7),
            ("/steps/0/agent", 4, 12),
            ("/steps/0/depends_on/0", 5, 18),
            ("/steps/1/retry/attempts", 8, 23),
            ("/steps/1/input", 9, 12),
            ("/steps/1/input", 9, 12),
        ],
        "{found:#?}"
    );
}

#[test]
fn run_inputs_are_checked_against_the_schema() {
    let schema = json!({"type": "object", "required": ["repo"], "properties": {"repo": {"type": "string"}, "n": {"type": "integer"}}});
    assert!(validate_input(&schema, &json!({"repo": "x"})).is_empty());
    let problems = validate_input(&schema, &json!({"n": "two"}));
    let pointers: Vec<&str> = problems.iter().map(|p| p.pointer.as_str()).collect();
    assert_eq!(pointers.len(), 2, "{problems:?}");
    assert!(pointers.contains(&"/input") && pointers.contains(&"/input/n"), "{problems:?}");
    assert!(problems.iter().any(|p| p.message.contains("\"repo\" is a required property")), "{problems:?}");
    let broken = validate_input(&json!({"type": "objekt"}), &json!({}));
    assert_eq!(broken[0].pointer, "/input_schema", "{broken:?}");
}

#[test]
fn step_ids_are_names_without_dashes() {
    assert!(valid_step_id("scan_2"));
    assert!(!valid_step_id("scan-2"));
    assert!(!valid_step_id("Scan"));
    assert!(!valid_step_id(""));
}

#[test]
fn a_workflow_has_a_bounded_number_of_steps() {
    let steps: Vec<StepDef> = (0..=MAX_STEPS)
        .map(|i| {
            serde_json::from_value(json!({
                "id": format!("s{i}"), "agent": "scanner",
                "depends_on": if i > 0 { vec![format!("s{}", i - 1)] } else { vec![] },
                "input": if i > 0 { "{{ steps.s0.output }}" } else { "first" },
            }))
            .unwrap()
        })
        .collect();
    let mut def: WorkflowDef = serde_json::from_value(json!({"name": "big", "steps": []})).unwrap();
    def.steps = steps;
    let problems = validate(&def, &known());
    assert_eq!(problems, [Problem::new("/steps", problems[0].message.clone())]);
    assert!(problems[0].message.contains("at most 1000 steps"), "{problems:?}");
    def.steps.truncate(MAX_STEPS);
    let problems = validate(&def, &known());
    assert!(problems.is_empty(), "a chain of {MAX_STEPS} steps is fine: {:?}", problems.first());
}

#[test]
fn long_lists_of_names_are_cut() {
    let names: Vec<String> = (0..14).map(|i| format!("n{i}")).collect();
    assert_eq!(list(&names), "n0, n1, n2, n3, n4, n5, n6, n7, n8, n9, n10, n11 and 2 more");
    assert_eq!(list(&names[..2]), "n0, n1");
    assert_eq!(list(Vec::<String>::new()), "none");
}

#[test]
fn a_plan_step_is_checked_before_its_model_is_asked() {
    let text = with_steps(
        r#"  - id: scan
    agent: scanner
  - id: fix
    depends_on: [scan]
    plan:
      goal: "fix the {{ steps.scan.output.files | length }} files {{ input.repo }} has"
      model: local/llama3.1
      max_steps: 5
      approval: true
      agents: [reviewer]
    input: {files: "{{ steps.scan.output.files }}"}
    retry: {attempts: 2}
"#,
    );
    let def = check(&text, None, &known()).expect("a valid plan step");
    let plan = def.steps[1].plan.as_ref().unwrap();
    assert_eq!((plan.max_steps(), plan.approval.clone()), (5, Some(Default::default())));

    let step = |plan: &str| with_steps(&format!("  - id: a\n    plan: {plan}\n"));
    one(&step(r#"{goal: ""}"#), "/steps/0/plan/goal", r#""""#, "the goal is empty");
    one(&step("{goal: g, max_steps: 0}"), "/steps/0/plan/max_steps", "0}", "1 or more");
    one(&step(r#"{goal: g, model: "llama 3"}"#), "/steps/0/plan/model", r#""llama 3""#, "not a model id");
    one(
        &step("{goal: g, agents: [scannr]}"),
        "/steps/0/plan/agents/0",
        "scannr",
        "known agents are reviewer",
    );
    one(&step("{goal: g, capabilities: []}"), "/steps/0/plan/capabilities", "[]", "no capability");
    one(
        &step("{goal: g, approval: {default: approve}}"),
        "/steps/0/plan/approval/default",
        "approve",
        "no timeout",
    );
    one(&step(r#"{goal: "{{ steps.zzz.output }}"}"#), "/steps/0/plan/goal", "\"{{", "there is no step");
    one(&step(r#"{goal: "do {{ item }}"}"#), "/steps/0/plan/goal", "\"do", "not defined in goal");
    one(&step(r#"{goal: "{{ unclosed"}"#), "/steps/0/plan/goal", "\"{{", "does not compile");
    let text = with_steps("  - id: a\n    plan: {goal: g}\n    for_each: input.files\n");
    one(&text, "/steps/0/for_each", "input.files", "plans once");
    let text = with_steps("  - id: a\n    agent: scanner\n    plan: {goal: g}\n");
    one(&text, "/steps/0/plan", "{goal", "also has agent");
    // The shape of `plan` itself, as any key of a definition: at the very key or value.
    one(&step("{goal: g, agent: scanner}"), "/steps/0/plan/agent", "agent: scanner", "unknown field `agent`");
    one(&step("{goal: g, approval: yes}"), "/steps/0/plan/approval", "yes", "expected true, false");
    one(
        &step("{goal: g, approval: {timout: 1h}}"),
        "/steps/0/plan/approval/timout",
        "timout",
        "unknown field",
    );
}
