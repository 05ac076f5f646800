//! The ways a [`RepositoryAnalysis`] leaves `mark1 scan`: a terminal summary, SARIF for
//! code-scanning UIs, a CycloneDX BOM for inventory tools, and the JSON Schema of the
//! report itself. Each writer reads the report only: no I/O, so each is tested on a
//! hand-made report.

mod cyclonedx;
mod sarif;
mod table;

use super::report::{LlmCall, ModelSource, RepositoryAnalysis, SCHEMA_VERSION};

/// The human summary, the CLI's default output.
pub fn table(analysis: &RepositoryAnalysis) -> String {
    table::render(analysis)
}

/// A SARIF 2.1.0 log with one run.
pub fn sarif(analysis: &RepositoryAnalysis) -> serde_json::Value {
    sarif::log(analysis)
}

/// A CycloneDX 1.6 BOM: models, agents, tools, MCP servers and packages.
pub fn cyclonedx(analysis: &RepositoryAnalysis) -> serde_json::Value {
    cyclonedx::bom(analysis)
}

/// The JSON Schema of [`RepositoryAnalysis`]. Its `$id` and title carry the
/// `schema_version`, so a reader holding a schema knows which reports it describes.
pub fn json_schema() -> serde_json::Value {
    let mut schema = schemars::schema_for!(RepositoryAnalysis);
    schema.insert("$id".into(), format!("urn:mark1:repository-analysis:{SCHEMA_VERSION}").into());
    schema.insert("title".into(), format!("mark1 RepositoryAnalysis {SCHEMA_VERSION}").into());
    schema.to_value()
}

/// How a call's model reads to a person: the name, or where it comes from when the code
/// does not state it.
fn model_label(call: &LlmCall) -> String {
    match (call.model_source, &call.model, &call.model_origin) {
        (ModelSource::Literal, Some(model), _) => model.clone(),
        (ModelSource::Dynamic, Some(model), Some(origin)) => format!("<dynamic: {origin}> {model}"),
        (ModelSource::Dynamic, None, Some(origin)) => format!("<dynamic: {origin}>"),
        (ModelSource::Default, Some(model), _) => format!("<default> {model}"),
        (ModelSource::Default, None, _) => "<default>".into(),
        (_, Some(model), None) => model.clone(),
        (_, None, _) => "<dynamic>".into(),
    }
}

/// The `snake_case` name serde gives a unit enum variant.
fn enum_name<T: serde::Serialize>(value: T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::scan::report::*;

    fn call(
        provider: &str,
        model: Option<&str>,
        source: ModelSource,
        kind: CallKind,
        at: (&str, usize),
    ) -> LlmCall {
        LlmCall {
            kind: "llm_call".into(),
            provider: provider.into(),
            model: model.map(Into::into),
            model_source: source,
            model_origin: (source == ModelSource::Dynamic).then(|| "env:CLAUDE_MODEL".into()),
            call_kind: kind,
            framework: None,
            symbol: format!("{provider}.{}", enum_name(kind)),
            file: at.0.into(),
            line: at.1,
            column: 5,
            function: Some("answer".into()),
            confidence: 0.9,
        }
    }

    fn agent(framework: &str, name: &str, model: Option<&str>, tools: &[&str], line: usize) -> AgentFinding {
        AgentFinding {
            kind: "agent".into(),
            framework: framework.into(),
            name: name.into(),
            role: None,
            goal: Some(format!("{name} the customer")),
            instructions: None,
            model: model.map(Into::into),
            tools: tools.iter().map(|t| t.to_string()).collect(),
            handoffs: vec![],
            guardrails: vec![],
            symbol: format!("agents.{name}"),
            file: "src/agents.py".into(),
            line,
            column: 1,
            confidence: 0.8,
        }
    }

    fn tool(framework: &str, name: &str, description: &str, line: usize) -> ToolFinding {
        ToolFinding {
            kind: "tool".into(),
            framework: framework.into(),
            name: name.into(),
            description: Some(description.into()),
            parameters: vec![ToolParameter {
                name: "order_id".into(),
                ty: Some("str".into()),
                required: true,
            }],
            function: Some(name.into()),
            file: "src/tools.py".into(),
            line,
            column: 1,
            confidence: 0.9,
        }
    }

    fn declared(name: &str, requirement: Option<&str>, line: usize) -> DeclaredDependency {
        DeclaredDependency {
            name: name.into(),
            requirement: requirement.map(Into::into),
            dev: false,
            line: Some(line),
            alias: None,
            indirect: false,
        }
    }

    fn manifest(
        path: &str,
        ecosystem: Ecosystem,
        format: &str,
        declared: Vec<DeclaredDependency>,
    ) -> Manifest {
        Manifest {
            path: path.into(),
            ecosystem,
            format: format.into(),
            name: None,
            declared,
            problems: Vec::new(),
        }
    }

    fn package(
        name: &str,
        ecosystem: Ecosystem,
        status: PackageStatus,
        declared_in: &[&str],
        imported_in: &[&str],
    ) -> Package {
        Package {
            name: name.into(),
            ecosystem,
            status,
            declared_in: declared_in.iter().map(|p| p.to_string()).collect(),
            imported_in: imported_in.iter().map(|p| p.to_string()).collect(),
            modules: vec![name.into()],
            dev: false,
        }
    }

    /// One report touching every section, shared by the writers' tests.
    pub(crate) fn sample() -> RepositoryAnalysis {
        use CallKind::*;
        use Ecosystem::*;
        use ModelSource::*;
        use PackageStatus::*;
        let file = |path: &str, language, kind| FileEntry {
            path: path.into(),
            language,
            kind,
            bytes: 2048,
            manifest: matches!(kind, FileKind::Config),
        };
        RepositoryAnalysis {
            schema_version: SCHEMA_VERSION.into(),
            tool: ToolInfo { name: "mark1".into(), version: "0.1.0".into() },
            root: "/home/me/support-bot/".into(),
            summary: Summary {
                files: 6,
                parsed_files: 4,
                parsed_bytes: 8192,
                by_language: BTreeMap::from([("python".into(), 4), ("json".into(), 1), ("text".into(), 1)]),
                by_kind: BTreeMap::from([("source".into(), 4), ("config".into(), 2)]),
                llm_calls: 4,
                agents: 3,
                tools: 2,
                mcp: 2,
                problems: 1,
            },
            files: vec![
                file("package.json", Language::Json, FileKind::Config),
                file("requirements.txt", Language::Text, FileKind::Config),
                file("src/agents.py", Language::Python, FileKind::Source),
                file("src/app.py", Language::Python, FileKind::Source),
                file("src/broken.py", Language::Python, FileKind::Source),
                file("src/tools.py", Language::Python, FileKind::Source),
            ],
            problems: vec![FileProblem {
                path: "src/broken.py".into(),
                problem: "syntax_errors".into(),
                message: "2 syntax errors".into(),
                line: Some(3),
            }],
            dependencies: Dependencies {
                manifests: vec![
                    manifest(
                        "requirements.txt",
                        Pypi,
                        "requirements",
                        vec![declared("openai", Some("==1.51.0"), 1), declared("requests", Some(">=2"), 2)],
                    ),
                    manifest(
                        "package.json",
                        Npm,
                        "package_json",
                        vec![
                            declared("@modelcontextprotocol/sdk", Some("1.0.3"), 5),
                            declared("left-pad", Some("^1.3.0"), 6),
                        ],
                    ),
                ],
                packages: vec![
                    package("openai", Pypi, Used, &["requirements.txt"], &["src/app.py"]),
                    package("requests", Pypi, Unused, &["requirements.txt"], &[]),
                    package("langgraph", Pypi, Shadow, &[], &["src/agents.py"]),
                    package("@modelcontextprotocol/sdk", Npm, Used, &["package.json"], &["web/server.ts"]),
                    package("left-pad", Npm, Unused, &["package.json"], &[]),
                ],
            },
            llm_calls: vec![
                call("openai", Some("gpt-4o"), Literal, Chat, ("src/app.py", 12)),
                // The same call again in the same function: its fingerprint must differ.
                call("openai", Some("gpt-4o"), Literal, Chat, ("src/app.py", 40)),
                call("anthropic", Some("claude-3-5-sonnet"), Dynamic, Client, ("src/agents.py", 5)),
                call("openai", None, Default, Embedding, ("src/app.py", 30)),
            ],
            agents: vec![
                AgentFinding {
                    handoffs: vec!["billing".into()],
                    guardrails: vec![Guardrail {
                        name: "no_refund_abuse".into(),
                        kind: GuardrailKind::Input,
                    }],
                    ..agent("openai_agents", "triage", Some("gpt-4o"), &["lookup_order", "refund"], 20)
                },
                agent("openai_agents", "billing", Some("o3-mini"), &["refund"], 30),
                agent("langgraph", "researcher", None, &[], 40),
            ],
            tools: vec![
                tool(
                    "openai_agents",
                    "lookup_order",
                    "Look up an order by its id and return its status, items, shipping address and history.",
                    8,
                ),
                tool("langchain", "refund", "Refund an order.", 20),
            ],
            graphs: vec![AgentGraph {
                framework: "langgraph".into(),
                name: "workflow".into(),
                nodes: vec!["triage".into(), "billing".into()],
                edges: vec![
                    GraphEdge { from: "triage".into(), to: "billing".into(), conditional: true },
                    GraphEdge { from: "billing".into(), to: "__end__".into(), conditional: false },
                ],
                file: "src/agents.py".into(),
                line: 50,
            }],
            mcp: vec![
                McpFinding {
                    kind: "mcp_server".into(),
                    language: Language::Python,
                    name: Some("orders".into()),
                    transport: Some("stdio".into()),
                    target: None,
                    tools: vec!["lookup_order".into()],
                    symbol: "mcp.server.fastmcp.FastMCP".into(),
                    file: "src/tools.py".into(),
                    line: 3,
                    column: 7,
                    confidence: 0.95,
                },
                McpFinding {
                    kind: "mcp_client".into(),
                    language: Language::Python,
                    name: None,
                    transport: Some("streamable_http".into()),
                    target: Some("http://localhost:8000/mcp".into()),
                    tools: vec![],
                    symbol: "mcp.ClientSession".into(),
                    file: "src/app.py".into(),
                    line: 50,
                    column: 5,
                    confidence: 0.9,
                },
            ],
            frameworks: vec![FrameworkUse { name: "openai_agents".into(), files: 2 }],
            readme: Some(ReadmeSummary {
                path: "README.md".into(),
                title: Some("Support bot".into()),
                summary: None,
            }),
        }
    }

    #[test]
    fn model_labels_say_where_an_unstated_model_comes_from() {
        let calls = sample().llm_calls;
        let labels: Vec<String> = calls.iter().map(model_label).collect();
        assert_eq!(
            labels,
            ["gpt-4o", "gpt-4o", "<dynamic: env:CLAUDE_MODEL> claude-3-5-sonnet", "<default>"]
        );
    }

    #[test]
    fn the_schema_accepts_a_report_and_names_its_version() {
        let schema = json_schema();
        assert_eq!(schema["$id"], json!(format!("urn:mark1:repository-analysis:{SCHEMA_VERSION}")));
        let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
        let instance = serde_json::to_value(sample()).unwrap();
        let errors: Vec<String> = validator.iter_errors(&instance).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn the_schema_rejects_a_wrong_type() {
        let validator = jsonschema::validator_for(&json_schema()).unwrap();
        let mut instance = serde_json::to_value(sample()).unwrap();
        instance["llm_calls"][0]["line"] = json!("twelve");
        assert!(!validator.is_valid(&instance));
        let mut instance = serde_json::to_value(sample()).unwrap();
        instance["llm_calls"][0]["model_source"] = json!("guessed");
        assert!(!validator.is_valid(&instance));
        let mut instance = serde_json::to_value(sample()).unwrap();
        instance["agents"][0]["guardrails"][0]["kind"] = json!("sideways");
        assert!(!validator.is_valid(&instance));
    }
}
