use serde_json::json;

use super::*;

fn errors(text: &str) -> Vec<Diagnostic> {
    parse(text, Some("flow.yaml")).expect_err("the text has errors")
}

/// `(pointer, line, column)` of each diagnostic.
fn places(found: &[Diagnostic]) -> Vec<(&str, usize, usize)> {
    found.iter().map(|d| (d.pointer.as_str(), d.line, d.column)).collect()
}

#[test]
fn positions_of_values_and_keys() {
    let text = "name: triage\nsteps:\n  - id: scan\n    agent: scanner\n    input: {path: \"{{ input.repo }}\"}\n    depends_on: [a, b]\n  - id: b\n    depends_on:\n      - x\n";
    let (value, positions) = parse_value(text).unwrap();
    assert_eq!(value["steps"][0]["input"]["path"], "{{ input.repo }}");
    let at = |pointer: &str| {
        let p = positions.value(pointer).unwrap_or_else(|| panic!("{pointer} has a position"));
        (p.line, p.column)
    };
    assert_eq!(at(""), (1, 1));
    assert_eq!(at("/name"), (1, 7));
    assert_eq!(at("/steps/0"), (3, 5));
    assert_eq!(at("/steps/0/id"), (3, 9));
    assert_eq!(at("/steps/0/input"), (5, 12));
    assert_eq!(at("/steps/0/input/path"), (5, 19));
    assert_eq!(at("/steps/0/depends_on/1"), (6, 21));
    assert_eq!(at("/steps/1/depends_on/0"), (9, 9));
    assert_eq!(positions.key("/steps/1/depends_on"), Some(Position { line: 8, column: 5 }));
    // A pointer to something absent is shown at what encloses it.
    assert_eq!(positions.locate("/steps/1/when"), Position { line: 7, column: 5 });
    assert_eq!(positions.locate("/nothing/here"), Position { line: 1, column: 1 });
}

#[test]
fn json_is_read_too_with_its_positions() {
    let text = "{\"name\": \"x\",\n \"steps\": [{\"id\": \"a\", \"agent\": \"echo\", \"retry\": {\"attempts\": 2}}]}";
    let parsed = parse(text, None).unwrap();
    assert_eq!(parsed.def.steps[0].max_attempts(), 2);
    assert_eq!(parsed.positions.value("/steps/0/agent"), Some(Position { line: 2, column: 33 }));
}

#[test]
fn an_unknown_key_is_shown_at_the_key() {
    let found = errors("name: t\nsteps:\n  - id: a\n    agent: x\n    depend_on: [b]\n");
    assert_eq!(places(&found), [("/steps/0/depend_on", 5, 5)]);
    assert!(found[0].message.contains("unknown field `depend_on`"), "{}", found[0]);
    assert!(found[0].message.contains("`depends_on`"), "the message lists the keys: {}", found[0]);
    assert_eq!(found[0].to_string(), format!("flow.yaml:5:5: {} (at /steps/0/depend_on)", found[0].message));
}

#[test]
fn a_wrong_type_is_shown_at_the_value() {
    let found = errors("name: t\nsteps:\n  - id: a\n    agent: x\n    retry: {attempts: many}\n");
    assert_eq!(places(&found), [("/steps/0/retry/attempts", 5, 23)]);
    assert!(found[0].message.contains("invalid type"), "{}", found[0]);
    let found = errors("name: t\nsteps:\n  - id: a\n    agent: x\n    timeout: soon\n");
    assert_eq!(places(&found), [("/steps/0/timeout", 5, 14)]);
    let found = errors("name: t\nsteps:\n  - id: a\n    agent: x\n    on_error: retry\n");
    assert_eq!(places(&found), [("/steps/0/on_error", 5, 15)]);
    assert!(found[0].message.contains("unknown variant `retry`"), "{}", found[0]);
}

#[test]
fn a_missing_key_is_shown_at_its_mapping() {
    let found = errors("name: t\nsteps:\n  - agent: x\n");
    assert_eq!(places(&found), [("/steps/0", 3, 5)]);
    assert!(found[0].message.contains("missing field `id`"), "{}", found[0]);
    let found = errors("steps:\n  - {id: a, agent: x}\n");
    assert_eq!(places(&found), [("", 1, 1)]);
    assert!(found[0].message.contains("missing field `name`"), "{}", found[0]);
    assert_eq!(found[0].to_string(), "flow.yaml:1:1: missing field `name`");
}

#[test]
fn shape_errors_of_every_step_and_of_the_rest_are_all_reported() {
    let text = "name: t\nconcurrency: lots\nsteps:\n  - id: a\n    depend_on: []\n  - id: b\n  - id: c\n    when: [1]\n";
    let found = errors(text);
    assert_eq!(
        places(&found),
        [("/concurrency", 2, 14), ("/steps/0/depend_on", 5, 5), ("/steps/2/when", 8, 11)],
        "{found:#?}"
    );
}

#[test]
fn syntax_errors_are_positioned() {
    let found = errors("name: t\nsteps:\n  - id: a\n   agent: x\n");
    assert_eq!(found.len(), 1);
    assert_eq!((found[0].line, found[0].column), (4, 4), "at the misplaced key: {}", found[0]);
    assert!(found[0].message.starts_with("this is not valid YAML or JSON"), "{}", found[0]);
    let found = errors("{\"name\": \"t\",\n \"steps\": [}\n");
    assert_eq!((found[0].line, found[0].column), (2, 12), "{}", found[0]);
    let found = errors("name: t\nname: u\nsteps: []\n");
    assert_eq!(places(&found), [("/name", 2, 1)]);
    assert!(found[0].message.contains("appears twice"), "{}", found[0]);
    let found = errors("name: t\nsteps: []\n---\nname: u\n");
    assert_eq!((found[0].line, found[0].column), (3, 1));
    assert!(found[0].message.contains("one definition"), "{}", found[0]);
    let found = errors("name: t\nsteps: !custom []\n");
    assert_eq!(places(&found), [("/steps", 2, 8)]);
    let found = errors("name: t\n[a]: 1\nsteps: []\n");
    assert!(found[0].message.contains("key must be plain text"), "{}", found[0]);
}

#[test]
fn scalars_follow_the_yaml_1_2_core_schema() {
    let text = "a: yes\nb: ~\nc: 0x10\nd: 0o17\ne: -12\nf: 1.5e3\ng: .5\nh: '12'\ni: true\nj: 1_000\nk: !!str 12\nl: 99999999999999999999\nm: null\nn: |\n  text\n";
    let (value, _) = parse_value(text).unwrap();
    assert_eq!(
        value,
        json!({"a": "yes", "b": null, "c": 16, "d": 15, "e": -12, "f": 1500.0, "g": 0.5, "h": "12", "i": true,
               "j": "1_000", "k": "12", "l": 1e20, "m": null, "n": "text\n"})
    );
    let err = parse_value("a: .inf\n").unwrap_err();
    assert!(err.message.contains("quote it"), "{err}");
    assert_eq!((err.line, err.column), (1, 4));
    assert!(parse_value("a: !!int twelve\n").is_err());
}

#[test]
fn aliases_and_nesting_are_bounded() {
    let (value, _) = parse_value("base: &b {agent: x}\nother: *b\n").unwrap();
    assert_eq!(value["other"], json!({"agent": "x"}));
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..8 {
        let p = i - 1;
        bomb.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    let err = parse_value(&bomb).unwrap_err();
    assert!(err.message.contains("more than"), "{err}");
    let deep = format!("a: {}{}", "[".repeat(100), "]".repeat(100));
    let err = parse_value(&deep).unwrap_err();
    assert!(err.message.contains("deeper than 64"), "{err}");
    assert_eq!((err.line, err.column), (1, 4 + 63));
}

#[test]
fn check_positions_every_problem_of_a_valid_shape() {
    let text =
        "name: t\nsteps:\n  - id: a\n    agent: ghost\n  - id: b\n    agent: echo\n    depends_on: [a, c]\n";
    let known = KnownNames::empty().with_agent("echo", ["text.echo"]);
    let found = check(text, Some("f.yaml"), &known).unwrap_err();
    assert_eq!(places(&found), [("/steps/0/agent", 4, 12), ("/steps/1/depends_on/1", 7, 21)]);
    assert!(
        found[1].to_string().starts_with("f.yaml:7:21: depends on \"c\", which is not a step"),
        "{}",
        found[1]
    );
    let def = check("name: t\nsteps:\n  - {id: a, agent: echo}\n", None, &known).unwrap();
    assert_eq!(def.steps[0].id, "a");
}

#[test]
fn empty_text_is_a_definition_error_not_a_crash() {
    let found = errors("");
    assert_eq!(places(&found), [("", 1, 1)]);
    assert!(found[0].message.contains("invalid type: null"), "{}", found[0]);
}
