//! SARIF 2.1.0: every finding, dependency problem and unreadable file as a result, so
//! code-scanning UIs show where a repository talks to models. Findings are notes (an
//! inventory, not a defect); dependency and parse problems are warnings.

use std::collections::HashMap;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::{enum_name, model_label};
use crate::scan::report::{ModelSource, PackageStatus, RepositoryAnalysis};

struct Rule {
    id: &'static str,
    name: &'static str,
    short: &'static str,
    full: &'static str,
    level: &'static str,
}

/// The rules, in the order of `tool.driver.rules`: a result's `ruleIndex` is its
/// position here.
const RULES: [Rule; 8] = [
    Rule {
        id: "mark1/llm-call",
        name: "LlmCall",
        short: "LLM call",
        full: "A site that constructs an LLM client or model object, or sends a request to a model.",
        level: "note",
    },
    Rule {
        id: "mark1/agent",
        name: "Agent",
        short: "Agent",
        full: "An agent defined through an agent framework, with its model and tools where the code states them.",
        level: "note",
    },
    Rule {
        id: "mark1/tool",
        name: "Tool",
        short: "Agent tool",
        full: "A function or class exposed to a model as a tool.",
        level: "note",
    },
    Rule {
        id: "mark1/mcp-server",
        name: "McpServer",
        short: "MCP server",
        full: "A Model Context Protocol server defined in the code, with the tools it registers.",
        level: "note",
    },
    Rule {
        id: "mark1/mcp-client",
        name: "McpClient",
        short: "MCP client",
        full: "A Model Context Protocol client session opened by the code.",
        level: "note",
    },
    Rule {
        id: "mark1/shadow-dependency",
        name: "ShadowDependency",
        short: "Imported package declared in no manifest",
        full: "The code imports a package that no dependency manifest declares: it works only where it happens to be installed.",
        level: "warning",
    },
    Rule {
        id: "mark1/unused-dependency",
        name: "UnusedDependency",
        short: "Declared package never imported",
        full: "A dependency manifest declares a package that no source file imports.",
        level: "warning",
    },
    Rule {
        id: "mark1/parse-error",
        name: "ParseError",
        short: "File not read or parsed",
        full: "A file could not be read, was not UTF-8, or did not parse; its findings may be missing.",
        level: "warning",
    },
];

pub(super) fn log(analysis: &RepositoryAnalysis) -> Value {
    let rules: Vec<Value> = RULES
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "name": r.name,
                "shortDescription": { "text": r.short },
                "fullDescription": { "text": r.full },
                "defaultConfiguration": { "level": r.level },
            })
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "mark1",
                "version": analysis.tool.version,
                "rules": rules,
            }},
            "results": results(analysis),
        }],
    })
}

/// A result before it is written: the rule, what to say, where, and what identifies it
/// across edits.
struct Finding {
    rule: &'static str,
    message: String,
    locations: Vec<(String, Option<usize>, Option<usize>)>,
    properties: Value,
    identity: Vec<String>,
}

fn results(analysis: &RepositoryAnalysis) -> Vec<Value> {
    let mut findings = Vec::new();
    for c in &analysis.llm_calls {
        let model = match (c.model_source, &c.model) {
            (ModelSource::Literal, Some(model)) => format!("model {model}"),
            (ModelSource::Default, _) => "the library's default model".into(),
            _ => format!("model {}", model_label(c)),
        };
        findings.push(Finding {
            rule: "mark1/llm-call",
            message: format!("{} {} call with {model}", c.provider, enum_name(c.call_kind)),
            locations: vec![(c.file.clone(), Some(c.line), Some(c.column))],
            properties: properties(c),
            identity: vec![
                c.file.clone(),
                c.symbol.clone(),
                c.model.clone().unwrap_or_default(),
                c.function.clone().unwrap_or_default(),
            ],
        });
    }
    for a in &analysis.agents {
        let model = a.model.as_ref().map(|m| format!(" with model {m}")).unwrap_or_default();
        findings.push(Finding {
            rule: "mark1/agent",
            message: format!("{} agent {}{model} and {} tools", a.framework, a.name, a.tools.len()),
            locations: vec![(a.file.clone(), Some(a.line), Some(a.column))],
            properties: properties(a),
            identity: vec![a.file.clone(), a.symbol.clone(), a.name.clone()],
        });
    }
    for t in &analysis.tools {
        findings.push(Finding {
            rule: "mark1/tool",
            message: format!("{} tool {}", t.framework, t.name),
            locations: vec![(t.file.clone(), Some(t.line), Some(t.column))],
            properties: properties(t),
            identity: vec![t.file.clone(), t.name.clone(), t.function.clone().unwrap_or_default()],
        });
    }
    for m in &analysis.mcp {
        let (rule, what) = if m.kind == "mcp_server" {
            ("mark1/mcp-server", format!("MCP server with {} tools", m.tools.len()))
        } else {
            ("mark1/mcp-client", "MCP client".to_string())
        };
        let name = m.name.as_ref().map(|n| format!(" {n}")).unwrap_or_default();
        let transport = m.transport.as_ref().map(|t| format!(" over {t}")).unwrap_or_default();
        findings.push(Finding {
            rule,
            message: format!("{what}{name}{transport}"),
            locations: vec![(m.file.clone(), Some(m.line), Some(m.column))],
            properties: properties(m),
            identity: vec![m.file.clone(), m.symbol.clone(), m.name.clone().unwrap_or_default()],
        });
    }
    for p in &analysis.dependencies.packages {
        let ecosystem = enum_name(p.ecosystem);
        let (rule, message, locations) = match p.status {
            PackageStatus::Used => continue,
            PackageStatus::Shadow => (
                "mark1/shadow-dependency",
                format!("{ecosystem} package {} is imported but declared in no manifest", p.name),
                p.imported_in.iter().map(|file| (file.clone(), None, None)).collect(),
            ),
            PackageStatus::Unused => (
                "mark1/unused-dependency",
                format!("{ecosystem} package {} is declared but never imported", p.name),
                p.declared_in
                    .iter()
                    .map(|file| (file.clone(), declared_line(analysis, file, &p.name), None))
                    .collect(),
            ),
        };
        findings.push(Finding {
            rule,
            message,
            locations,
            properties: properties(p),
            identity: vec![ecosystem, p.name.clone()],
        });
    }
    for p in &analysis.problems {
        findings.push(Finding {
            rule: "mark1/parse-error",
            message: format!("{}: {}", p.problem, p.message),
            locations: vec![(p.path.clone(), p.line, None)],
            properties: properties(p),
            identity: vec![p.path.clone(), p.problem.clone()],
        });
    }
    let mut seen = HashMap::new();
    findings.into_iter().map(|f| result(f, &mut seen)).collect()
}

fn result(finding: Finding, seen: &mut HashMap<String, usize>) -> Value {
    let index = RULES.iter().position(|r| r.id == finding.rule).expect("every finding names a listed rule");
    let locations: Vec<Value> = finding
        .locations
        .into_iter()
        .map(|(file, line, column)| {
            let mut physical = json!({ "artifactLocation": { "uri": file, "uriBaseId": "%SRCROOT%" } });
            if let Some(line) = line.filter(|l| *l > 0) {
                let mut region = json!({ "startLine": line });
                if let Some(column) = column.filter(|c| *c > 0) {
                    region["startColumn"] = column.into();
                }
                physical["region"] = region;
            }
            json!({ "physicalLocation": physical })
        })
        .collect();
    json!({
        "ruleId": finding.rule,
        "ruleIndex": index,
        "level": RULES[index].level,
        "message": { "text": finding.message },
        "locations": locations,
        "partialFingerprints": { "mark1/v1": fingerprint(finding.rule, &finding.identity, seen) },
        "properties": finding.properties,
    })
}

/// A hash of what the finding is, not where: the line is left out so a result keeps its
/// identity when code above it moves. Identical findings (the same call twice in one
/// function) are told apart by their order of occurrence.
fn fingerprint(rule: &str, identity: &[String], seen: &mut HashMap<String, usize>) -> String {
    let key = format!("{rule}\u{0}{}", identity.join("\u{0}"));
    let occurrence = seen.entry(key.clone()).or_default();
    *occurrence += 1;
    let digest = Sha256::digest(format!("{key}\u{0}{occurrence}"));
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The finding's own fields, less the ones the location already carries.
fn properties(finding: &impl serde::Serialize) -> Value {
    let mut map = match serde_json::to_value(finding) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    for key in ["file", "path", "line", "column", "message"] {
        map.remove(key);
    }
    // The report's scores are f32; widened to f64 they would read 0.8999999761581421.
    for value in map.values_mut() {
        if let Some(score) = value.as_f64().filter(|_| value.is_f64()) {
            *value = format!("{}", score as f32).parse::<f64>().map_or(Value::Null, Value::from);
        }
    }
    Value::Object(map)
}

/// The line of a package's declaration in a manifest, where the manifest reader knew it.
fn declared_line(analysis: &RepositoryAnalysis, manifest: &str, name: &str) -> Option<usize> {
    let manifest = analysis.dependencies.manifests.iter().find(|m| m.path == manifest)?;
    manifest.declared.iter().find(|d| d.name == name)?.line
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::scan::format::tests::sample;

    fn results(log: &Value) -> &Vec<Value> {
        log["runs"][0]["results"].as_array().unwrap()
    }

    #[test]
    fn every_result_points_at_its_rule_with_its_level() {
        let log = log(&sample());
        let rules = log["runs"][0]["tool"]["driver"]["rules"].as_array().unwrap();
        let results = results(&log);
        assert_eq!(results.len(), 4 + 3 + 2 + 2 + 3 + 1);
        for r in results {
            let rule = &rules[r["ruleIndex"].as_u64().unwrap() as usize];
            assert_eq!(rule["id"], r["ruleId"]);
            assert_eq!(rule["defaultConfiguration"]["level"], r["level"]);
            let expected = if r["ruleId"].as_str().unwrap().ends_with("-dependency")
                || r["ruleId"] == "mark1/parse-error"
            {
                "warning"
            } else {
                "note"
            };
            assert_eq!(r["level"], expected, "{r}");
        }
        let ids: HashSet<&str> = results.iter().map(|r| r["ruleId"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), RULES.len(), "the sample exercises every rule");
    }

    #[test]
    fn results_say_what_and_where_with_relative_uris() {
        let log = log(&sample());
        let results = results(&log);
        let first = &results[0];
        assert_eq!(first["message"]["text"], "openai chat call with model gpt-4o");
        assert_eq!(first["properties"]["model_source"], "literal");
        assert_eq!(first["properties"]["confidence"], json!(0.9));
        let region = &first["locations"][0]["physicalLocation"]["region"];
        assert_eq!((region["startLine"].as_u64(), region["startColumn"].as_u64()), (Some(12), Some(5)));
        for r in results {
            for location in r["locations"].as_array().unwrap() {
                let artifact = &location["physicalLocation"]["artifactLocation"];
                assert_eq!(artifact["uriBaseId"], "%SRCROOT%");
                let uri = artifact["uri"].as_str().unwrap();
                assert!(!uri.starts_with('/') && !uri.contains(':'), "{uri} is not relative");
            }
        }
        let unused =
            results.iter().find(|r| r["message"]["text"].as_str().unwrap().contains("left-pad")).unwrap();
        let manifest = &unused["locations"][0]["physicalLocation"];
        assert_eq!(manifest["artifactLocation"]["uri"], "package.json");
        assert_eq!(manifest["region"]["startLine"], 6);
    }

    #[test]
    fn fingerprints_are_distinct_and_survive_moved_lines() {
        let prints = |analysis| -> Vec<String> {
            results(&log(&analysis))
                .iter()
                .map(|r| r["partialFingerprints"]["mark1/v1"].as_str().unwrap().into())
                .collect()
        };
        let before = prints(sample());
        assert_eq!(before.iter().collect::<HashSet<_>>().len(), before.len(), "{before:?}");
        assert!(before.iter().all(|p| p.len() == 64 && p.chars().all(|c| c.is_ascii_hexdigit())));
        let mut moved = sample();
        for call in &mut moved.llm_calls {
            call.line += 10;
        }
        moved.agents[0].line += 3;
        assert_eq!(prints(moved), before);
        let mut renamed = sample();
        renamed.llm_calls[0].model = Some("gpt-4o-mini".into());
        assert_ne!(prints(renamed)[0], before[0]);
    }

    #[test]
    fn the_log_validates_against_the_official_schema() {
        let schema: Value =
            serde_json::from_str(include_str!("../../../tests/fixtures/schemas/sarif-2.1.0-rtm.5.json"))
                .unwrap();
        let validator = jsonschema::validator_for(&schema).expect("the SARIF schema compiles");
        let instance = log(&sample());
        let errors: Vec<String> =
            validator.iter_errors(&instance).map(|e| format!("{e} at {}", e.instance_path())).collect();
        assert!(errors.is_empty(), "{errors:#?}");
        let mut broken = instance.clone();
        broken["runs"][0]["results"][0]["level"] = json!("fatal");
        assert!(!validator.is_valid(&broken), "the schema check can fail");
    }
}
