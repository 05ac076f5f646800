//! `mark1 workflows validate FILE` on the local config, with no node running.

use std::path::Path;

use serde_json::Value;

use super::{mark1, write_config};

const GOOD: &str = r#"name: greet
input_schema: {type: object, required: [names]}
steps:
  - id: hello
    agent: echo
    for_each: input.names
    input: {text: "hello {{ item }}"}
  - id: summary
    capability: text.echo
    depends_on: [hello]
    input: {text: "{{ steps.hello.output | length }} greetings"}
output: "{{ steps.summary.output }}"
"#;

/// Two problems: an agent the config does not have (line 4), and a step reading the
/// output of a step it does not depend on (line 7).
const BAD: &str = r#"name: greet
steps:
  - id: hello
    agent: ecko
  - id: summary
    capability: text.echo
    input: {text: "{{ steps.hello.output }}"}
"#;

fn validate(dir: &Path, args: &[&str]) -> std::process::Output {
    mark1(dir).args(["workflows", "validate"]).args(args).output().unwrap()
}

#[test]
fn a_good_definition_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path());
    std::fs::write(dir.path().join("good.yaml"), GOOD).unwrap();
    let out = validate(dir.path(), &["good.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "good.yaml: valid (2 steps)\n");
    let out = validate(dir.path(), &["good.yaml", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).unwrap(), serde_json::json!([]));
}

#[test]
fn a_bad_definition_prints_every_problem_at_its_line_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path());
    std::fs::write(dir.path().join("bad.yaml"), BAD).unwrap();
    let out = validate(dir.path(), &["bad.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[0].starts_with("bad.yaml:4:12: no agent is named \"ecko\""), "{stdout}");
    assert!(lines[0].ends_with("(at /steps/0/agent)"), "{stdout}");
    assert!(lines[1].starts_with("bad.yaml:7:19: the output of hello cannot exist yet"), "{stdout}");
    assert!(lines[1].contains("add hello to depends_on"), "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid (2 problems)"));

    let out = validate(dir.path(), &["bad.yaml", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let found: Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    let places: Vec<(&str, u64, u64)> = found
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["pointer"].as_str().unwrap(), d["line"].as_u64().unwrap(), d["column"].as_u64().unwrap()))
        .collect();
    assert_eq!(places, [("/steps/0/agent", 4, 12), ("/steps/1/input/text", 7, 19)]);
    assert_eq!(found[0]["file"], "bad.yaml");

    // Agents registered in code are not in the config: --any-agent leaves them unchecked.
    let out = validate(dir.path(), &["bad.yaml", "--any-agent", "--json"]);
    let found: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(found.as_array().unwrap().len(), 1, "{found}");
}

#[test]
fn a_missing_file_or_argument_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path());
    let out = validate(dir.path(), &["missing.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.yaml"));
    assert_eq!(validate(dir.path(), &[]).status.code(), Some(2));
}

#[test]
fn the_example_workflows_are_valid_for_the_repository_config() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let examples = root.join("examples/workflows");
    let mut checked = 0;
    for entry in std::fs::read_dir(&examples).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "json") {
            let out = mark1(root)
                .args(["workflows", "validate", "--config", "config.toml"])
                .arg(&path)
                .output()
                .unwrap();
            assert_eq!(
                out.status.code(),
                Some(0),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stdout)
            );
            checked += 1;
        }
    }
    assert!(checked > 0, "examples/workflows has definitions");
}
