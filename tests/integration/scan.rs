//! The scanner against its fixture corpus (tests/fixtures/scan/): every fixture file
//! has its expected findings beside it (`<file>.expected.json`); one scan of the whole
//! corpus is compared with them, per category, as precision and recall.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mark1::scan::{self, report::RepositoryAnalysis, Rules};
use serde_json::{json, Map, Value};

/// The categories compared, and the JSON key of each in the report.
const CATEGORIES: &[&str] = &["llm_calls", "agents", "tools", "mcp", "graphs"];

/// Fields compared on every finding of a category, with the value a finding that does
/// not state one has (the report omits an empty list or an absent value). An expectation
/// that leaves one out expects that value, so a guardrail or target the scanner stops
/// reporting (or starts inventing) is a miss and an extra, not a silent match.
fn always_compared() -> [(&'static str, &'static str, Value); 2] {
    [("agents", "guardrails", json!([])), ("mcp", "target", Value::Null)]
}

/// `finding` with every always-compared field of `category` present.
fn with_defaults(category: &str, mut finding: Value) -> Value {
    for (_, field, default) in always_compared().into_iter().filter(|(c, _, _)| *c == category) {
        let object = finding.as_object_mut().expect("a finding is an object");
        object.entry(field).or_insert(default);
    }
    finding
}

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/scan")
}

fn scan_corpus() -> RepositoryAnalysis {
    scan::scan(&corpus(), Rules::built_in(), None).expect("the corpus scans")
}

/// Expected findings by category, each with its file.
fn expected() -> BTreeMap<&'static str, Vec<Value>> {
    let mut out: BTreeMap<&str, Vec<Value>> = CATEGORIES.iter().map(|c| (*c, Vec::new())).collect();
    let report = scan_files(&corpus());
    for path in report {
        let rel = path.strip_prefix(corpus()).unwrap().to_string_lossy().replace('\\', "/");
        let file = rel.strip_suffix(".expected.json").unwrap().to_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let expected: Map<String, Value> =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{rel} is not valid JSON: {e}"));
        for (category, findings) in expected {
            let list = out
                .get_mut(category.as_str())
                .unwrap_or_else(|| panic!("{rel}: unknown category {category}"));
            for mut finding in findings.as_array().cloned().unwrap_or_default() {
                finding["file"] = json!(file);
                list.push(with_defaults(&category, finding));
            }
        }
    }
    out
}

fn scan_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(scan_files(&path));
        } else if path.to_string_lossy().ends_with(".expected.json") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// A found finding matches an expected one when every field the expectation states is equal.
fn matches(found: &Value, expected: &Value) -> bool {
    expected.as_object().unwrap().iter().all(|(key, value)| &found[key] == value)
}

#[derive(Default)]
struct Score {
    true_positives: usize,
    false_positives: Vec<String>,
    false_negatives: Vec<String>,
}

impl Score {
    fn precision(&self) -> f64 {
        let found = self.true_positives + self.false_positives.len();
        if found == 0 {
            1.0
        } else {
            self.true_positives as f64 / found as f64
        }
    }

    fn recall(&self) -> f64 {
        let expected = self.true_positives + self.false_negatives.len();
        if expected == 0 {
            1.0
        } else {
            self.true_positives as f64 / expected as f64
        }
    }
}

fn score(found: &[Value], expected: &[Value]) -> Score {
    let mut score = Score::default();
    let mut unmatched: Vec<&Value> = found.iter().collect();
    for want in expected {
        match unmatched.iter().position(|f| matches(f, want)) {
            Some(at) => {
                unmatched.remove(at);
                score.true_positives += 1;
            }
            None => score.false_negatives.push(want.to_string()),
        }
    }
    score.false_positives = unmatched.iter().map(|f| f.to_string()).collect();
    score
}

#[test]
fn the_corpus_is_found_with_full_precision_and_recall() {
    let report = serde_json::to_value(scan_corpus()).unwrap();
    let expected = expected();
    let mut failures = Vec::new();
    for category in CATEGORIES {
        let found: Vec<Value> = report[category]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|f| with_defaults(category, f))
            .collect();
        let score = score(&found, &expected[category]);
        eprintln!(
            "{category}: precision {:.3} recall {:.3} ({} expected, {} found)",
            score.precision(),
            score.recall(),
            expected[category].len(),
            found.len()
        );
        // The corpus is written to be found exactly: any miss or extra is a regression.
        for miss in &score.false_negatives {
            failures.push(format!("{category}: missed {miss}"));
        }
        for extra in &score.false_positives {
            failures.push(format!("{category}: unexpected {extra}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn commented_out_and_string_calls_are_never_findings() {
    let report = scan_corpus();
    let quoted = ["gpt-4-commented", "gpt-4-in-docstring", "gpt-4-in-string"];
    for call in &report.llm_calls {
        assert!(!quoted.contains(&call.model.as_deref().unwrap_or("")), "{call:?}");
    }
    // The Anthropic client is imported but never called: no call, still a dependency.
    assert!(report
        .llm_calls
        .iter()
        .all(|c| c.provider != "anthropic" || !c.file.ends_with("openai_traps.py")));
}

#[test]
fn an_unstated_guardrail_or_target_is_compared_as_none() {
    let found = with_defaults("agents", json!({"name": "a", "guardrails": [{"name": "g", "kind": "input"}]}));
    assert!(!matches(&found, &with_defaults("agents", json!({"name": "a"}))));
    assert!(matches(
        &with_defaults("agents", json!({"name": "a"})),
        &with_defaults("agents", json!({"name": "a"}))
    ));
    let found = with_defaults("mcp", json!({"kind": "mcp_client", "target": "npx server"}));
    assert!(!matches(&found, &with_defaults("mcp", json!({"kind": "mcp_client"}))));
}
