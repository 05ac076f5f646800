//! From source text to [`FileFacts`]: parse with the language's tree-sitter grammar (one
//! parser per thread, reused), run the language's `.scm` query to find the nodes worth
//! lowering, and lower each with the language's extractor.

mod go;
mod javascript;
mod python;
mod rust;

use std::cell::RefCell;
use std::collections::HashMap;

use streaming_iterator::StreamingIterator;
use tree_sitter::{Node, Parser, Query, QueryCursor, Tree};

use super::facts::{FileFacts, Pos};
use super::report::Language;

/// A grammar and its compiled query; built once per process.
struct Grammar {
    language: tree_sitter::Language,
    query: Query,
}

fn grammar(language: Language) -> Option<&'static Grammar> {
    use std::sync::LazyLock;
    fn build(language: tree_sitter::Language, source: &str) -> Grammar {
        // The queries are part of the source tree; one that does not compile is a bug
        // caught by every test that parses.
        let query = Query::new(&language, source).expect("scanner query compiles");
        Grammar { language, query }
    }
    static PYTHON: LazyLock<Grammar> =
        LazyLock::new(|| build(tree_sitter_python::LANGUAGE.into(), include_str!("queries/python.scm")));
    static RUST: LazyLock<Grammar> =
        LazyLock::new(|| build(tree_sitter_rust::LANGUAGE.into(), include_str!("queries/rust.scm")));
    static GO: LazyLock<Grammar> =
        LazyLock::new(|| build(tree_sitter_go::LANGUAGE.into(), include_str!("queries/go.scm")));
    static JAVASCRIPT: LazyLock<Grammar> = LazyLock::new(|| {
        build(tree_sitter_javascript::LANGUAGE.into(), include_str!("queries/javascript.scm"))
    });
    static TYPESCRIPT: LazyLock<Grammar> = LazyLock::new(|| {
        build(tree_sitter_typescript::LANGUAGE_TYPESCRIPT.into(), include_str!("queries/typescript.scm"))
    });
    // TSX is TypeScript plus JSX: the same node kinds, so the same query.
    static TSX: LazyLock<Grammar> = LazyLock::new(|| {
        build(tree_sitter_typescript::LANGUAGE_TSX.into(), include_str!("queries/typescript.scm"))
    });
    match language {
        Language::Python | Language::Notebook => Some(&PYTHON),
        Language::Rust => Some(&RUST),
        Language::Go => Some(&GO),
        Language::Javascript => Some(&JAVASCRIPT),
        Language::Typescript => Some(&TYPESCRIPT),
        Language::Tsx => Some(&TSX),
        _ => None,
    }
}

thread_local! {
    /// tree-sitter parsers are not shareable across threads; each rayon worker keeps
    /// one per language and reuses it for every file it parses.
    static PARSERS: RefCell<HashMap<Language, Parser>> = RefCell::new(HashMap::new());
}

/// Parses `source`; `None` when the language has no grammar.
pub fn parse(language: Language, source: &str) -> Option<Tree> {
    let grammar = grammar(language)?;
    PARSERS.with(|parsers| {
        let mut parsers = parsers.borrow_mut();
        let parser = parsers.entry(language).or_insert_with(|| {
            let mut parser = Parser::new();
            parser.set_language(&grammar.language).expect("grammar is compatible with tree-sitter");
            parser
        });
        parser.parse(source, None)
    })
}

/// Parses and lowers one file (the extractors' tests). `None` when the language is not parsed.
#[cfg(test)]
pub fn extract(language: Language, source: &str) -> Option<FileFacts> {
    let tree = parse(language, source)?;
    Some(facts(language, &tree, source))
}

/// Lowers a parsed file to its facts.
pub fn facts(language: Language, tree: &Tree, source: &str) -> FileFacts {
    let mut facts = FileFacts::default();
    let Some(grammar) = grammar(language) else { return facts };
    let mut cursor = QueryCursor::new();
    let names = grammar.query.capture_names();
    let mut matches = cursor.matches(&grammar.query, tree.root_node(), source.as_bytes());
    let parents = parent_links(tree);
    let src = Source { text: source, parents: &parents };
    while let Some(found) = matches.next() {
        for capture in found.captures {
            let kind = names[capture.index as usize];
            match language {
                Language::Python | Language::Notebook => python::lower(kind, capture.node, src, &mut facts),
                Language::Rust => rust::lower(kind, capture.node, src, &mut facts),
                Language::Go => go::lower(kind, capture.node, src, &mut facts),
                Language::Javascript | Language::Typescript | Language::Tsx => {
                    javascript::lower(kind, capture.node, src, &mut facts)
                }
                _ => {}
            }
        }
    }
    count_errors(tree.root_node(), &mut facts);
    facts
}

/// The source text and its tree's parent links, with helpers for the nodes of the tree.
#[derive(Clone, Copy)]
pub(crate) struct Source<'a> {
    text: &'a str,
    parents: &'a Parents<'a>,
}

impl<'a> Source<'a> {
    pub fn text(self, node: Node<'_>) -> &'a str {
        &self.text[node.byte_range()]
    }

    /// The node's parent. tree-sitter finds a parent by descending from the root, so
    /// walking up from every call to its enclosing function cost depth² per call (a
    /// quarter of the scan's time in `mark1 bench scan`); the links are recorded once
    /// per file instead.
    pub fn parent(self, node: Node<'_>) -> Option<Node<'a>> {
        self.parents.get(&node.id()).copied()
    }
}

/// Node id → parent. Ids are addresses: foldhash, not SipHash (no untrusted keys here).
type Parents<'a> = HashMap<usize, Node<'a>, foldhash::fast::RandomState>;

/// Every node's parent, from one walk of the tree with a cursor (which keeps its path,
/// so each step is constant time).
fn parent_links(tree: &Tree) -> Parents<'_> {
    let mut parents = Parents::default();
    let mut cursor = tree.walk();
    // The ancestors of the cursor's node, innermost last.
    let mut path: Vec<Node<'_>> = Vec::new();
    loop {
        let node = cursor.node();
        if let Some(&parent) = path.last() {
            parents.insert(node.id(), parent);
        }
        if cursor.goto_first_child() {
            path.push(node);
            continue;
        }
        loop {
            if cursor.goto_next_sibling() {
                break;
            }
            if !cursor.goto_parent() {
                return parents;
            }
            path.pop();
        }
    }
}

pub(crate) fn pos(node: Node<'_>) -> Pos {
    let point = node.start_position();
    Pos { line: point.row + 1, column: point.column + 1 }
}

/// A doc comment's text without its indentation, trailing blank lines or surrounding space.
pub(crate) fn clean_doc(doc: &str) -> String {
    doc.lines().map(str::trim).collect::<Vec<_>>().join("\n").trim().to_owned()
}

/// The value of an escape sequence Python and JavaScript strings share; others stay as written.
pub(crate) fn unescape(seq: &str) -> &str {
    match seq {
        "\\n" => "\n",
        "\\t" => "\t",
        "\\\"" => "\"",
        "\\'" => "'",
        "\\\\" => "\\",
        other => other,
    }
}

/// Counts syntax errors (error and missing nodes) and keeps the first one's position.
fn count_errors(root: Node<'_>, facts: &mut FileFacts) {
    if !root.has_error() {
        return;
    }
    let mut cursor = root.walk();
    let mut stack = vec![root];
    while let Some(node) = stack.pop() {
        if node.is_error() || node.is_missing() {
            facts.syntax_errors += 1;
            let at = pos(node);
            if facts.first_error.is_none_or(|first| at < first) {
                facts.first_error = Some(at);
            }
            continue;
        }
        if node.has_error() {
            stack.extend(node.children(&mut cursor));
        }
    }
}
