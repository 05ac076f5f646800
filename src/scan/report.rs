//! `RepositoryAnalysis`: what one scan found, as versioned JSON. The shape is a
//! contract (`mark1 scan --schema` prints its JSON Schema): fields are added, never
//! renamed or removed, within one `schema_version`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The version of the report's shape; bumped only for a change that breaks readers.
pub const SCHEMA_VERSION: &str = "1.0";

/// Everything one scan of a repository found.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RepositoryAnalysis {
    /// The version of this shape (`1.0`).
    pub schema_version: String,
    /// The tool that wrote the report.
    pub tool: ToolInfo,
    /// The scanned directory, as given.
    pub root: String,
    pub summary: Summary,
    /// Every file the walk kept, with its language and kind, sorted by path.
    pub files: Vec<FileEntry>,
    /// Files that could not be read or parsed: reported, never fatal.
    pub problems: Vec<FileProblem>,
    pub dependencies: Dependencies,
    pub llm_calls: Vec<LlmCall>,
    pub agents: Vec<AgentFinding>,
    pub tools: Vec<ToolFinding>,
    /// Graphs between agents (LangGraph, handoffs, crews) where the code states one.
    pub graphs: Vec<AgentGraph>,
    pub mcp: Vec<McpFinding>,
    /// Agent and LLM frameworks the code uses, with how many files use each.
    pub frameworks: Vec<FrameworkUse>,
    /// The repository's README: its title and first paragraph.
    pub readme: Option<ReadmeSummary>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ToolInfo {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct Summary {
    pub files: usize,
    /// Files parsed with tree-sitter (the source languages).
    pub parsed_files: usize,
    /// Bytes of the files actually parsed.
    pub parsed_bytes: u64,
    pub by_language: BTreeMap<String, usize>,
    pub by_kind: BTreeMap<String, usize>,
    pub llm_calls: usize,
    pub agents: usize,
    pub tools: usize,
    pub mcp: usize,
    pub problems: usize,
}

/// Languages the walk recognises; the first five are parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Language {
    Python,
    Javascript,
    Typescript,
    Tsx,
    Rust,
    Go,
    Toml,
    Yaml,
    Json,
    Notebook,
    Markdown,
    Text,
}

impl Language {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Python => "python",
            Self::Javascript => "javascript",
            Self::Typescript => "typescript",
            Self::Tsx => "tsx",
            Self::Rust => "rust",
            Self::Go => "go",
            Self::Toml => "toml",
            Self::Yaml => "yaml",
            Self::Json => "json",
            Self::Notebook => "notebook",
            Self::Markdown => "markdown",
            Self::Text => "text",
        }
    }

    /// Whether tree-sitter parses this language.
    pub fn is_parsed(self) -> bool {
        matches!(self, Self::Python | Self::Javascript | Self::Typescript | Self::Tsx | Self::Rust | Self::Go)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    Source,
    Test,
    Config,
    Docs,
    Notebook,
}

impl FileKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Source => "source",
            Self::Test => "test",
            Self::Config => "config",
            Self::Docs => "docs",
            Self::Notebook => "notebook",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct FileEntry {
    /// Relative to the root, with `/` separators.
    pub path: String,
    pub language: Language,
    pub kind: FileKind,
    pub bytes: u64,
    /// A dependency manifest (requirements, pyproject, package.json, Cargo.toml, go.mod…).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub manifest: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct FileProblem {
    pub path: String,
    /// `unreadable`, `not_utf8`, `syntax_errors` or `manifest`.
    pub problem: String,
    pub message: String,
    /// 1-based line of the first error, where known.
    pub line: Option<usize>,
}

/// Where a finding is: a file and a 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Location {
    pub file: String,
    pub line: usize,
    pub column: usize,
}

/// How a model was given at a call site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ModelSource {
    /// A string literal at the site, or one the site's variable or constant holds.
    Literal,
    /// Known only at run time: an environment variable (with its default, if any), a
    /// function parameter, or an expression the scanner does not follow.
    Dynamic,
    /// Not given: the library's default model applies.
    Default,
}

/// What a request asks the model for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallKind {
    /// A client or model object constructed with a model.
    Client,
    Chat,
    Completion,
    Embedding,
    Image,
    Audio,
    /// A structured or agent run through a framework (e.g. `Runner.run`).
    Agent,
}

/// One site where an LLM client or model object is constructed with a model, or a
/// request is made.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct LlmCall {
    /// Always `llm_call`.
    pub kind: String,
    /// From the documented list (docs/scanner.md): openai, azure_openai, anthropic, …
    pub provider: String,
    /// The model's name: the literal, or the default of a dynamic one where known.
    pub model: Option<String>,
    pub model_source: ModelSource,
    /// For a dynamic model: where it comes from (`env:NAME`, `param:NAME`, `spread` for
    /// arguments passed on as `**kwargs` / `...options`, `expr`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_origin: Option<String>,
    pub call_kind: CallKind,
    /// The framework wrapper the call goes through (langchain, llama_index, …), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framework: Option<String>,
    /// The fully qualified symbol the site resolved to.
    pub symbol: String,
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// The enclosing function or method, if any.
    pub function: Option<String>,
    /// 0..1: how sure the scanner is that this is an LLM call of this provider.
    pub confidence: f32,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct AgentFinding {
    /// Always `agent`.
    pub kind: String,
    pub framework: String,
    /// The agent's name: its declared name or role, else the variable or class it is bound to.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// The model it uses, where the code states it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Names of its tools.
    pub tools: Vec<String>,
    /// Agents it hands off to or delegates to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub handoffs: Vec<String>,
    /// Checks run on its input or its final output (OpenAI Agents SDK guardrails).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guardrails: Vec<Guardrail>,
    pub symbol: String,
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub confidence: f32,
}

/// A guardrail an agent runs: a check that can stop the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Guardrail {
    /// Its declared name, else the function that implements it.
    pub name: String,
    pub kind: GuardrailKind,
}

/// What a guardrail checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GuardrailKind {
    /// The input the agent is given.
    Input,
    /// The agent's final output.
    Output,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ToolFinding {
    /// Always `tool`.
    pub kind: String,
    pub framework: String,
    pub name: String,
    pub description: Option<String>,
    pub parameters: Vec<ToolParameter>,
    /// The function or class that implements it.
    pub function: Option<String>,
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub confidence: f32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ToolParameter {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: Option<String>,
    pub required: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct AgentGraph {
    pub framework: String,
    /// The variable the graph is bound to.
    pub name: String,
    pub nodes: Vec<String>,
    pub edges: Vec<GraphEdge>,
    pub file: String,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GraphEdge {
    pub from: String,
    pub to: String,
    pub conditional: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct McpFinding {
    /// `mcp_server` or `mcp_client`.
    pub kind: String,
    pub language: Language,
    pub name: Option<String>,
    /// `stdio`, `sse`, `streamable_http`, where the code states it.
    pub transport: Option<String>,
    /// The server a client starts or connects to: its command line (the literal part)
    /// or URL, where the code states it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Names of the tools a server registers.
    pub tools: Vec<String>,
    pub symbol: String,
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub confidence: f32,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct FrameworkUse {
    pub name: String,
    pub files: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ReadmeSummary {
    pub path: String,
    pub title: Option<String>,
    pub summary: Option<String>,
}

/// Declared and imported packages, and how the two disagree.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct Dependencies {
    pub manifests: Vec<Manifest>,
    pub packages: Vec<Package>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Ecosystem {
    Pypi,
    Npm,
    Cargo,
    Go,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Manifest {
    pub path: String,
    pub ecosystem: Ecosystem,
    /// `requirements`, `pyproject`, `poetry`, `setup_cfg`, `package_json`, `cargo`, `go_mod`.
    pub format: String,
    /// The package the manifest defines itself (`[project] name`, `[package] name`,
    /// package.json's `name`, go.mod's `module`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub declared: Vec<DeclaredDependency>,
    /// Entries that could not be read (a requirement line PEP 508 rejects); the file's
    /// other entries still count. Moved to the report's `problems`, not serialized here.
    #[serde(skip)]
    pub problems: Vec<FileProblem>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct DeclaredDependency {
    /// Normalised name (PEP 503 for Python).
    pub name: String,
    /// The version requirement as written.
    pub requirement: Option<String>,
    /// A development, test or optional dependency.
    pub dev: bool,
    pub line: Option<usize>,
    /// The name code imports it by, where the manifest renames it (Cargo's `package =`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// Required only by other dependencies (go.mod's `// indirect`): never unused.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub indirect: bool,
}

/// How a package's declaration and its imports agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PackageStatus {
    /// Declared and imported; or declared for use without imports (a dev dependency, a
    /// server, CLI tool, plugin or type stubs, an indirect Go requirement), in which case
    /// `imported_in` is empty.
    Used,
    /// Declared, never imported.
    Unused,
    /// Imported, declared nowhere.
    Shadow,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Package {
    pub name: String,
    pub ecosystem: Ecosystem,
    pub status: PackageStatus,
    pub declared_in: Vec<String>,
    /// Files importing it (first few).
    pub imported_in: Vec<String>,
    /// The modules imported that map to it.
    pub modules: Vec<String>,
    /// Every declaration of it is a development, test or optional one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dev: bool,
}
