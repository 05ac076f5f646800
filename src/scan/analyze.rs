//! One file, start to end: read, parse, lower to facts, resolve, match the rules. The
//! syntax tree and the facts are dropped when the file is done, so memory holds one
//! file per worker plus the findings.

use std::time::{Duration, Instant};

use super::detect;
use super::extract;
use super::notebook;
use super::report::{AgentFinding, AgentGraph, FileProblem, Language, LlmCall, McpFinding, ToolFinding};
use super::resolve::Resolver;
use super::rules::Rules;
use super::walk::{WalkedFile, MAX_PARSED_BYTES};

/// What one file contributed.
#[derive(Debug, Default)]
pub struct FileAnalysis {
    pub llm_calls: Vec<LlmCall>,
    pub agents: Vec<AgentFinding>,
    pub tools: Vec<ToolFinding>,
    pub graphs: Vec<AgentGraph>,
    pub mcp: Vec<McpFinding>,
    /// Modules the file imports, as written.
    pub imports: Vec<String>,
    pub problem: Option<FileProblem>,
    /// Bytes handed to tree-sitter (0 when the file was not parsed).
    pub parsed_bytes: u64,
    pub parse_time: Duration,
    pub match_time: Duration,
}

/// Analyzes a source file or notebook; other files contribute nothing here.
pub fn analyze(file: &WalkedFile, rules: &Rules) -> FileAnalysis {
    let mut out = FileAnalysis::default();
    if !(file.language.is_parsed() || file.language == Language::Notebook) || file.bytes > MAX_PARSED_BYTES {
        return out;
    }
    let problem = |problem: &str, message: String| FileProblem {
        path: file.rel.clone(),
        problem: problem.into(),
        message,
        line: None,
    };
    let bytes = match std::fs::read(&file.path) {
        Ok(bytes) => bytes,
        Err(e) => {
            out.problem = Some(problem("unreadable", e.to_string()));
            return out;
        }
    };
    let Ok(text) = String::from_utf8(bytes) else {
        out.problem = Some(problem("not_utf8", "the file is not UTF-8 text".into()));
        return out;
    };
    let source = match file.language {
        Language::Notebook => match notebook::code(&text) {
            Ok(code) => code,
            Err(e) => {
                out.problem = Some(problem("syntax_errors", format!("not a notebook: {e}")));
                return out;
            }
        },
        _ => text,
    };
    let started = Instant::now();
    let Some(tree) = extract::parse(file.language, &source) else { return out };
    out.parse_time = started.elapsed();
    out.parsed_bytes = source.len() as u64;

    let started = Instant::now();
    let facts = extract::facts(file.language, &tree, &source);
    drop(tree);
    if facts.syntax_errors > 0 {
        out.problem = Some(FileProblem {
            path: file.rel.clone(),
            problem: "syntax_errors".into(),
            message: format!(
                "{} syntax error(s); findings come from the parts that parse",
                facts.syntax_errors
            ),
            line: facts.first_error.map(|p| p.line),
        });
    }
    // Rust writes crate paths in full (`async_openai::Client::new()`) without a `use`.
    let resolver = Resolver::new(&facts, rules, file.language == Language::Rust);
    out.llm_calls = detect::llm::llm_calls(&file.rel, &resolver, rules);
    out.tools = detect::tools::tools(&file.rel, &resolver, rules);
    let crew_configs = match file.path.parent() {
        Some(dir) => detect::crew::agent_configs(dir, &resolver),
        None => Default::default(),
    };
    let known =
        detect::agents::Known { llm_calls: &out.llm_calls, tools: &out.tools, crew_configs: &crew_configs };
    out.agents = detect::agents::agents(&file.rel, &resolver, rules, &known);
    out.mcp = detect::mcp::mcp(&file.rel, file.language, &resolver, rules, &out.tools);
    out.graphs = detect::graph::graphs(&file.rel, &resolver, rules, &out.agents);
    out.imports = facts.imports.iter().map(|i| i.module.clone()).collect();
    out.match_time = started.elapsed();
    out
}
