//! `mark1 rewrite`: a codemod pointing OpenAI-style clients at a local Ollama or at
//! Mark-1's OpenAI-compatible gateway.
//!
//! Each Python, JavaScript, TypeScript and TSX file is parsed and resolved the way the
//! scanner does it; the client constructions the resolver names (aliases included) get
//! their base URL and API key set ([`clients`]), and the detected call sites on those
//! clients get their model literal replaced when a model is given ([`models`]). Edits
//! are byte ranges of argument nodes, so the rest of the file keeps its formatting.
//! Every changed file is parsed again, and none is written when one would parse worse
//! than before.

mod clients;
mod models;
mod syntax;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;
use tree_sitter::{Node, Tree};

use super::facts::Pos;
use super::report::Language;
use super::resolve::{Resolver, Symbol};
use super::walk::{self, MAX_PARSED_BYTES};
use super::{detect, extract, Rules};
use syntax::{append, Edit};

/// Where the clients are pointed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A local Ollama's OpenAI-compatible API; it ignores the API key but the SDKs want one.
    Ollama,
    /// A Mark-1 node's gateway (`/openai/v1`, src/http/gateway/openai.rs), at the
    /// default `server.listen`, with a Mark-1 API key from the environment.
    Mark1,
}

impl Target {
    pub fn default_base_url(self) -> &'static str {
        match self {
            Self::Ollama => "http://localhost:11434/v1",
            Self::Mark1 => "http://127.0.0.1:8080/openai/v1",
        }
    }
}

/// The environment variable the `mark1` target's clients read their API key from.
pub const API_KEY_VAR: &str = "MARK1_API_KEY";

#[derive(Debug, Clone)]
pub struct Options {
    pub target: Target,
    pub base_url: String,
    /// Replaces the model literals of the rewritten call sites.
    pub model: Option<String>,
}

impl Options {
    pub fn new(target: Target) -> Self {
        Self { target, base_url: target.default_base_url().to_owned(), model: None }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    BaseUrl,
    ApiKey,
    Model,
    /// `import os`, for the `mark1` target's `os.environ.get(…)` in Python.
    Import,
}

/// One change: the text it replaced (`None` for an insertion) and the text it put there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub line: usize,
    pub kind: ChangeKind,
    pub before: Option<String>,
    pub after: String,
}

/// Something the codemod found and left alone, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub path: String,
    /// `None` when the whole file was skipped.
    pub line: Option<usize>,
    pub reason: String,
}

/// A file the rewrite changes.
#[derive(Debug, Clone, Serialize)]
pub struct FileRewrite {
    /// Relative to the rewritten root, `/`-separated.
    pub path: String,
    #[serde(skip)]
    pub file: PathBuf,
    #[serde(skip)]
    pub language: Language,
    #[serde(skip)]
    pub before: String,
    #[serde(skip)]
    pub after: String,
    pub changes: Vec<Change>,
}

impl FileRewrite {
    /// A unified diff, headed `a/PATH` and `b/PATH` like git's.
    pub fn diff(&self) -> String {
        similar::TextDiff::from_lines(&self.before, &self.after)
            .unified_diff()
            .context_radius(3)
            .header(&format!("a/{}", self.path), &format!("b/{}", self.path))
            .to_string()
    }
}

/// Every change the rewrite of a tree makes, not yet written.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub files: Vec<FileRewrite>,
    pub skipped: Vec<Skipped>,
}

#[derive(Debug, thiserror::Error)]
pub enum RewriteError {
    #[error("cannot read {path}: {source}")]
    Root { path: String, source: std::io::Error },
    #[error("refusing to write: the rewritten {} would not parse; no file was written", .files.join(", "))]
    WouldNotParse { files: Vec<String> },
    #[error("{path} changed while it was being rewritten; no file was written")]
    Changed { path: String },
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: std::io::Error },
}

/// Plans the rewrite of `root` (a directory or one file); writes nothing.
pub fn rewrite(root: &Path, options: &Options, rules: &Rules) -> Result<Plan, RewriteError> {
    let files =
        walk::walk(root).map_err(|source| RewriteError::Root { path: root.display().to_string(), source })?;
    let mut plan = Plan { files: Vec::new(), skipped: Vec::new() };
    let supported = |l: Language| {
        matches!(l, Language::Python | Language::Javascript | Language::Typescript | Language::Tsx)
    };
    for file in files.into_iter().filter(|f| supported(f.language) && f.bytes <= MAX_PARSED_BYTES) {
        let skip = |reason: String| Skipped { path: file.rel.clone(), line: None, reason };
        let text = match std::fs::read(&file.path).map(String::from_utf8) {
            Ok(Ok(text)) => text,
            Ok(Err(_)) => {
                plan.skipped.push(skip("not UTF-8 text".into()));
                continue;
            }
            Err(e) => {
                plan.skipped.push(skip(format!("unreadable: {e}")));
                continue;
            }
        };
        let planned = plan_source(&file.rel, file.language, &text, options, rules);
        plan.skipped.extend(planned.skipped.into_iter().map(|(line, reason)| Skipped {
            path: file.rel.clone(),
            line: Some(line),
            reason,
        }));
        if planned.text != text {
            plan.files.push(FileRewrite {
                path: file.rel,
                file: file.path,
                language: file.language,
                before: text,
                after: planned.text,
                changes: planned.changes,
            });
        }
    }
    Ok(plan)
}

impl Plan {
    /// Every rewritten file parses with no more syntax errors than before.
    pub fn check(&self) -> Result<(), RewriteError> {
        let files: Vec<String> = self
            .files
            .iter()
            .filter(|f| !parses_as_well(f.language, &f.before, &f.after))
            .map(|f| f.path.clone())
            .collect();
        if files.is_empty() {
            Ok(())
        } else {
            Err(RewriteError::WouldNotParse { files })
        }
    }

    /// Writes every file, or none: the plan is checked first, the new texts are staged
    /// beside their files, and they replace the files only when all are staged and no
    /// file changed since it was read.
    pub fn write(&self) -> Result<(), RewriteError> {
        self.check()?;
        let write_error = |path: &str| {
            let path = path.to_owned();
            move |source| RewriteError::Write { path, source }
        };
        let mut staged = Vec::with_capacity(self.files.len());
        for file in &self.files {
            let dir = file.file.parent().unwrap_or(Path::new("."));
            let mut temp = tempfile::NamedTempFile::new_in(dir).map_err(write_error(&file.path))?;
            temp.write_all(file.after.as_bytes()).map_err(write_error(&file.path))?;
            // The staged file replaces the original: it keeps the original's mode.
            let permissions = std::fs::metadata(&file.file).map_err(write_error(&file.path))?.permissions();
            std::fs::set_permissions(temp.path(), permissions).map_err(write_error(&file.path))?;
            staged.push(temp);
        }
        for file in &self.files {
            if std::fs::read_to_string(&file.file).ok().as_deref() != Some(file.before.as_str()) {
                return Err(RewriteError::Changed { path: file.path.clone() });
            }
        }
        for (file, temp) in self.files.iter().zip(staged) {
            temp.persist(&file.file)
                .map_err(|e| RewriteError::Write { path: file.path.clone(), source: e.error })?;
        }
        Ok(())
    }
}

/// Whether `after` parses with no more syntax errors than `before`; the edits only
/// touch arguments, so a new error is one they made.
fn parses_as_well(language: Language, before: &str, after: &str) -> bool {
    let errors = |text: &str| extract::parse(language, text).map(|tree| syntax::syntax_errors(&tree));
    match (errors(before), errors(after)) {
        (Some(before), Some(after)) => after <= before,
        _ => false,
    }
}

/// What planning one file gives: its new text, the changes, and what was left (by line).
#[derive(Debug)]
struct PlannedSource {
    text: String,
    changes: Vec<Change>,
    skipped: Vec<(usize, String)>,
}

/// The edits of one file as they are planned.
struct FilePlan<'s> {
    src: &'s str,
    language: Language,
    options: &'s Options,
    edits: Vec<Edit>,
    changes: Vec<Change>,
    skipped: Vec<(usize, String)>,
    /// A Python API key now reads `os.environ`.
    needs_os: bool,
}

impl<'s> FilePlan<'s> {
    /// The API key expression for the target, in this file's language.
    fn api_key(&self) -> String {
        match (self.options.target, self.language) {
            (Target::Ollama, _) => "\"ollama\"".to_owned(),
            (Target::Mark1, Language::Python) => format!("os.environ.get(\"{API_KEY_VAR}\")"),
            (Target::Mark1, _) => format!("process.env.{API_KEY_VAR}"),
        }
    }

    fn record(&mut self, line: usize, kind: ChangeKind, before: Option<String>, after: String) {
        if kind == ChangeKind::ApiKey
            && self.language == Language::Python
            && self.options.target == Target::Mark1
        {
            self.needs_os = true;
        }
        self.changes.push(Change { line, kind, before, after });
    }

    fn replace(&mut self, node: Node<'_>, text: impl Into<String>, kind: ChangeKind) {
        let text = text.into();
        let before = self.src[node.byte_range()].to_owned();
        self.record(syntax::pos(node).line, kind, Some(before), text.clone());
        self.edits.push(Edit::replace(node, text));
    }

    /// Adds `new` items (with their kinds) after the last item of `container`.
    fn append(&mut self, container: Node<'_>, new: Vec<(ChangeKind, String)>, line: usize, pad: bool) {
        let texts: Vec<String> = new.iter().map(|(_, text)| text.clone()).collect();
        let edits = append(container, &texts, self.src, pad);
        self.record_inserts(edits, line, new);
    }

    fn record_inserts(&mut self, edits: Vec<Edit>, line: usize, new: Vec<(ChangeKind, String)>) {
        self.edits.extend(edits);
        for (kind, text) in new {
            self.record(line, kind, None, text);
        }
    }

    fn skip(&mut self, line: usize, reason: impl Into<String>) {
        self.skipped.push((line, reason.into()));
    }

    /// `import os` at the top of the imports, after any `from __future__` import.
    fn import_os(&mut self, tree: &Tree) {
        let root = tree.root_node();
        let mut cursor = root.walk();
        let mut after_future = None;
        let mut first = true;
        for child in root.named_children(&mut cursor) {
            let docstring = first
                && child.kind() == "expression_statement"
                && child.named_child(0).is_some_and(|s| s.kind() == "string");
            first = false;
            match child.kind() {
                "comment" => continue,
                "future_import_statement" => after_future = Some(child),
                _ if docstring => continue,
                _ => {
                    let (edit, line) = match after_future {
                        Some(future) => {
                            (Edit::insert(future.end_byte(), "\nimport os"), syntax::pos(future).line + 1)
                        }
                        None => (Edit::insert(child.start_byte(), "import os\n"), syntax::pos(child).line),
                    };
                    self.record_inserts(vec![edit], line, vec![(ChangeKind::Import, "import os".into())]);
                    return;
                }
            }
        }
    }

    fn finish(mut self) -> PlannedSource {
        self.changes.sort_by_key(|c| c.line);
        self.changes.dedup();
        self.skipped.sort();
        self.skipped.dedup();
        PlannedSource {
            text: syntax::apply(self.src, self.edits),
            changes: self.changes,
            skipped: self.skipped,
        }
    }
}

/// Plans the rewrite of one source file.
fn plan_source(rel: &str, language: Language, src: &str, options: &Options, rules: &Rules) -> PlannedSource {
    let mut plan = FilePlan {
        src,
        language,
        options,
        edits: Vec::new(),
        changes: Vec::new(),
        skipped: Vec::new(),
        needs_os: false,
    };
    let Some(tree) = extract::parse(language, src) else { return plan.finish() };
    let facts = extract::facts(language, &tree, src);
    let resolver = Resolver::new(&facts, rules, false);
    let sites: HashMap<(Pos, String), String> = detect::llm::llm_calls(rel, &resolver, rules)
        .into_iter()
        .map(|site| ((Pos { line: site.line, column: site.column }, site.symbol), site.provider))
        .collect();
    let nodes = syntax::call_nodes(&tree);
    for call in &facts.calls {
        let Some(node) = nodes.get(&syntax::call_key(call)).copied() else { continue };
        let Some(symbol) = resolver.symbol(&call.callee, call.function.as_deref(), call.pos) else {
            continue;
        };
        let class = match &symbol {
            Symbol::Path { path, .. } => path,
            Symbol::Instance { class, .. } => class,
        };
        let client = clients::client(class, language);
        if let (Some(client), Symbol::Path { .. }) = (client, &symbol) {
            clients::rewrite(&mut plan, node, client);
        }
        let Some(provider) = sites.get(&(call.pos, symbol.display())) else { continue };
        let line = call.pos.line;
        match &symbol {
            _ if client.is_some() => models::rewrite(&mut plan, call, node, &resolver, &tree),
            Symbol::Path { path, .. } if language == Language::Python && path.starts_with("openai.") => {
                let reason = format!(
                    "a module-level openai call (`{path}`): not rewritable; \
                     construct an openai.OpenAI(...) client and call it instead"
                );
                plan.skip(line, reason)
            }
            _ if provider == "openai" => plan.skip(
                line,
                format!(
                    "an OpenAI call through `{}`, a client this codemod does not rewrite",
                    symbol.display()
                ),
            ),
            _ => {}
        }
    }
    let imports_os = facts.imports.iter().any(|i| i.local == "os" && i.fqn == "os");
    if plan.needs_os && !imports_os {
        plan.import_os(&tree);
    }
    plan.finish()
}
