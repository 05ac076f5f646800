//! The synthetic corpus a bare `mark1 bench scan` scans: a repository-shaped tree of
//! Python, notebooks, JavaScript, TypeScript, TSX, Rust and Go, generated from a fixed
//! seed so every run (and every machine) scans the same bytes. The sources are varied
//! rather than repeated — imports, constants, functions with nested control flow,
//! classes, LLM clients and calls — because a parser's speed depends on what it parses,
//! and a corpus of copies would flatter caches. File sizes spread like a real
//! repository's: mostly a few kilobytes, some large modules, and one generated file
//! over the parse limit that the walk lists and the scanner skips.

mod go;
mod javascript;
mod python;
mod rust;

use std::io;
use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::scan::walk::MAX_PARSED_BYTES;

/// The seed of the reference corpus.
pub(super) const SEED: u64 = 0x006d_6172_6b31; // "mark1"

/// One generated file: its path relative to the corpus root, and its text.
pub(super) struct SourceFile {
    pub rel: String,
    pub text: String,
}

/// Generates about `target_bytes` of files from `seed`; the same arguments always give
/// the same files.
pub(super) fn corpus(seed: u64, target_bytes: u64) -> impl Iterator<Item = SourceFile> {
    let mut g = Gen::new(seed);
    let mut files = manifests();
    // Only a corpus big enough to dwarf it gets the file over the parse limit.
    if target_bytes > 4 * MAX_PARSED_BYTES {
        files
            .push(SourceFile { rel: "core/generated/tables_pb2.py".into(), text: python::oversized(&mut g) });
    }
    let mut written: u64 = files.iter().map(|f| f.text.len() as u64).sum();
    let mut index = 0usize;
    let generated = std::iter::from_fn(move || {
        if written >= target_bytes {
            return None;
        }
        index += 1;
        let file = g.source_file(index);
        written += file.text.len() as u64;
        Some(file)
    });
    files.into_iter().chain(generated)
}

/// Writes [`corpus`] under `dir`; returns the files and bytes written.
pub(super) fn write(dir: &Path, seed: u64, target_bytes: u64) -> io::Result<(usize, u64)> {
    let (mut files, mut bytes) = (0, 0);
    for file in corpus(seed, target_bytes) {
        let path = dir.join(&file.rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, &file.text)?;
        files += 1;
        bytes += file.text.len() as u64;
    }
    Ok((files, bytes))
}

/// The manifests and README a repository has at its root, so the dependency and README
/// stages of the pipeline have their usual input.
fn manifests() -> Vec<SourceFile> {
    let file = |rel: &str, text: &str| SourceFile { rel: rel.into(), text: text.into() };
    vec![
        file("README.md", "# Support desk agents\n\nAgents that triage, answer and summarize support tickets.\n"),
        file("requirements.txt", "openai>=1.40\nanthropic==0.34.2\nlitellm\nrequests>=2.31\npydantic>=2\n"),
        file(
            "pyproject.toml",
            "[project]\nname = \"support-desk\"\nversion = \"0.3.0\"\ndependencies = [\"openai>=1.40\", \"anthropic\"]\n",
        ),
        file(
            "web/package.json",
            "{\n  \"name\": \"support-web\",\n  \"dependencies\": {\"openai\": \"^4.56.0\", \"@anthropic-ai/sdk\": \"^0.27.0\", \"react\": \"^18.3.1\"}\n}\n",
        ),
        file(
            "Cargo.toml",
            "[package]\nname = \"desk-worker\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nasync-openai = \"0.24\"\ntokio = { version = \"1\", features = [\"full\"] }\n",
        ),
        file("go.mod", "module example.com/desk\n\ngo 1.22\n\nrequire github.com/openai/openai-go v0.1.0-alpha.20\n"),
    ]
}

const TOP_DIRS: &[&str] =
    &["services", "agents", "core", "api", "workers", "tools", "pipelines", "integrations", "web", "cli"];
const SUB_DIRS: &[&str] =
    &["handlers", "models", "clients", "utils", "jobs", "routes", "prompts", "schemas", "internal", "common"];
pub(super) const NOUNS: &[&str] = &[
    "user",
    "order",
    "invoice",
    "session",
    "token",
    "prompt",
    "message",
    "agent",
    "task",
    "queue",
    "cache",
    "report",
    "summary",
    "document",
    "chunk",
    "embedding",
    "vector",
    "index",
    "search",
    "query",
    "result",
    "config",
    "request",
    "response",
    "payload",
    "event",
    "stream",
    "batch",
    "job",
    "worker",
    "retry",
    "policy",
    "budget",
    "tool",
    "memory",
    "context",
    "history",
    "score",
    "rank",
    "filter",
    "loader",
    "record",
    "entry",
    "metric",
    "trace",
    "span",
    "limit",
    "window",
    "route",
    "account",
    "profile",
    "channel",
    "ticket",
    "reply",
    "label",
    "owner",
    "status",
    "deadline",
    "note",
    "attachment",
];
const VERBS: &[&str] = &[
    "get",
    "load",
    "fetch",
    "build",
    "parse",
    "render",
    "update",
    "create",
    "delete",
    "compute",
    "score",
    "rank",
    "summarize",
    "classify",
    "extract",
    "validate",
    "normalize",
    "merge",
    "split",
    "send",
    "handle",
    "process",
    "resolve",
    "encode",
    "decode",
    "refresh",
    "collect",
    "prepare",
];
const WORDS: &[&str] = &[
    "the",
    "ticket",
    "is",
    "routed",
    "to",
    "an",
    "agent",
    "when",
    "its",
    "priority",
    "changes",
    "and",
    "every",
    "reply",
    "keeps",
    "customer",
    "context",
    "so",
    "later",
    "steps",
    "can",
    "summarize",
    "history",
    "without",
    "reading",
    "all",
    "messages",
    "again",
    "returns",
    "none",
    "if",
    "nothing",
    "matched",
];
/// Models the generated LLM calls name, by provider style.
pub(super) const OPENAI_MODELS: &[&str] =
    &["gpt-4o", "gpt-4o-mini", "o3-mini", "gpt-4.1", "text-embedding-3-small"];
pub(super) const ANTHROPIC_MODELS: &[&str] =
    &["claude-3-5-sonnet-latest", "claude-3-5-haiku-latest", "claude-sonnet-4-20250514"];
pub(super) const LITELLM_MODELS: &[&str] =
    &["ollama/llama3", "groq/llama-3.1-70b-versatile", "mistral/mistral-large-latest"];

/// The random choices of one corpus, with the vocabulary the languages share.
pub(super) struct Gen {
    rng: StdRng,
}

impl Gen {
    fn new(seed: u64) -> Self {
        Self { rng: StdRng::seed_from_u64(seed) }
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.rng.random_range(0..items.len())]
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }

    pub fn range(&mut self, range: std::ops::Range<usize>) -> usize {
        self.rng.random_range(range)
    }

    pub fn noun(&mut self) -> &'static str {
        NOUNS[self.range(0..NOUNS.len())]
    }

    /// `ticket_reply`, `user`.
    pub fn snake(&mut self) -> String {
        if self.chance(0.5) {
            format!("{}_{}", self.noun(), self.noun())
        } else {
            self.noun().to_owned()
        }
    }

    /// `summarize_ticket`.
    pub fn function(&mut self) -> String {
        format!("{}_{}", self.pick(VERBS), self.noun())
    }

    /// `summarizeTicket`.
    pub fn camel_function(&mut self) -> String {
        format!("{}{}", self.pick(VERBS), pascal(self.noun()))
    }

    /// `TicketReply`.
    pub fn pascal(&mut self) -> String {
        format!("{}{}", pascal(self.noun()), pascal(self.noun()))
    }

    /// A lowercase sentence without a final period.
    pub fn sentence(&mut self) -> String {
        let n = self.range(4..12);
        let words: Vec<&str> = (0..n).map(|_| *self.pick(WORDS)).collect();
        let mut text = words.join(" ");
        if let Some(first) = text.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        text
    }

    /// A file's size: log-uniform between 800 bytes and 32 KB, and one file in a hundred
    /// a large module of 100–800 KB.
    fn size(&mut self) -> usize {
        if self.chance(0.01) {
            return self.range(100_000..800_000);
        }
        let (low, high) = (800f64.ln(), 32_000f64.ln());
        self.rng.random_range(low..high).exp() as usize
    }

    fn source_file(&mut self, index: usize) -> SourceFile {
        let size = self.size();
        let dir = format!("{}/{}", self.pick(TOP_DIRS), self.pick(SUB_DIRS));
        let name = format!("{}_{index}", self.snake());
        // Weights by share of files: Python leads, as in the repositories scanned most.
        let (rel, text) = match self.range(0..100) {
            0..40 if self.chance(0.15) => (format!("tests/test_{name}.py"), python::source(self, size)),
            0..40 => (format!("{dir}/{name}.py"), python::source(self, size)),
            40..44 => (format!("notebooks/{name}.ipynb"), python::notebook(self, size)),
            44..58 => (format!("{dir}/{name}.js"), javascript::source(self, size, javascript::Dialect::Js)),
            58..72 => (format!("{dir}/{name}.ts"), javascript::source(self, size, javascript::Dialect::Ts)),
            72..78 => (
                format!("web/components/{}{index}.tsx", self.pascal()),
                javascript::source(self, size, javascript::Dialect::Tsx),
            ),
            78..89 => (format!("{dir}/{name}.rs"), rust::source(self, size)),
            _ => (format!("{dir}/{name}.go"), go::source(self, size)),
        };
        SourceFile { rel, text }
    }
}

fn pascal(word: &str) -> String {
    let mut out = word.to_owned();
    if let Some(first) = out.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use tree_sitter::{Node, Parser};

    use super::*;

    fn grammar(ext: &str) -> Option<tree_sitter::Language> {
        Some(match ext {
            "py" | "ipynb" => tree_sitter_python::LANGUAGE.into(),
            "js" => tree_sitter_javascript::LANGUAGE.into(),
            "ts" => tree_sitter_typescript::LANGUAGE_TYPESCRIPT.into(),
            "tsx" => tree_sitter_typescript::LANGUAGE_TSX.into(),
            "rs" => tree_sitter_rust::LANGUAGE.into(),
            "go" => tree_sitter_go::LANGUAGE.into(),
            _ => return None,
        })
    }

    /// The first error or missing node, for a failure message that shows the line.
    fn first_error(node: Node<'_>) -> Option<Node<'_>> {
        if node.is_error() || node.is_missing() {
            return Some(node);
        }
        let mut cursor = node.walk();
        let children: Vec<Node<'_>> = node.children(&mut cursor).collect();
        children.into_iter().filter(|c| c.has_error()).find_map(first_error)
    }

    fn files(seed: u64, bytes: u64) -> Vec<(String, String)> {
        corpus(seed, bytes).map(|f| (f.rel, f.text)).collect()
    }

    #[test]
    fn a_seed_always_gives_the_same_corpus_of_about_the_size_asked() {
        let corpus = files(SEED, 300_000);
        assert_eq!(corpus, files(SEED, 300_000));
        assert_ne!(corpus, files(SEED + 1, 300_000));
        let bytes: usize = corpus.iter().map(|(_, text)| text.len()).sum();
        let last = corpus.last().map_or(0, |(_, text)| text.len());
        assert!(bytes >= 300_000 && bytes - last < 300_000, "{bytes} bytes, the last file {last}");
        let names: BTreeSet<&str> = corpus.iter().map(|(rel, _)| rel.as_str()).collect();
        assert_eq!(names.len(), corpus.len(), "every path is unique");
    }

    #[test]
    fn every_generated_source_parses_in_its_language() {
        let mut seen = BTreeSet::new();
        for file in corpus(SEED, 1_500_000) {
            let ext = file.rel.rsplit('.').next().unwrap_or_default().to_owned();
            let Some(language) = grammar(&ext) else { continue };
            let source =
                if ext == "ipynb" { crate::scan::notebook::code(&file.text).unwrap() } else { file.text };
            let mut parser = Parser::new();
            parser.set_language(&language).unwrap();
            let tree = parser.parse(&source, None).unwrap();
            if let Some(error) = first_error(tree.root_node()) {
                let row = error.start_position().row;
                panic!("{} does not parse at line {}: {:?}", file.rel, row + 1, source.lines().nth(row));
            }
            seen.insert(ext);
        }
        assert_eq!(seen, ["go", "ipynb", "js", "py", "rs", "ts", "tsx"].map(String::from).into());
    }

    #[test]
    fn the_oversized_module_is_just_over_the_parse_limit() {
        let text = python::oversized(&mut Gen::new(SEED));
        let limit = MAX_PARSED_BYTES as usize;
        assert!(text.len() > limit && text.len() < 2 * limit, "{} bytes", text.len());
        assert!(files(SEED, 300_000).iter().all(|(_, text)| text.len() < limit), "a small corpus has none");
    }
}
