//! From source text to [`FileFacts`]: parse with the language's tree-sitter grammar (one
//! parser per thread, reused), run the language's `.scm` query to find the nodes worth
//! lowering, and lower each with the language's extractor.

mod go;
mod javascript;
mod python;
mod rust;
mod select;

use std::cell::RefCell;
use std::collections::HashMap;

use tree_sitter::{Node, Parser, Tree};

use super::facts::{Expr, FileFacts, Pos};
use super::report::Language;
use select::Selection;

/// A grammar and its compiled query; built once per process.
struct Grammar {
    language: tree_sitter::Language,
    selection: Selection,
    fields: FieldIds,
    /// Kind id → name. `Node::kind` measures and checks the C string at every call.
    kinds: Vec<&'static str>,
}

/// Field name → id. tree-sitter looks a field name up by comparing it with every field
/// of the grammar in turn, which was a tenth of the lowering in `mark1 bench scan`.
type FieldIds = HashMap<&'static str, u16, foldhash::fast::FixedState>;

fn field_ids(language: &tree_sitter::Language) -> FieldIds {
    (1..=language.field_count() as u16).filter_map(|id| Some((language.field_name_for_id(id)?, id))).collect()
}

fn grammar(language: Language) -> Option<&'static Grammar> {
    use std::sync::LazyLock;
    fn build(language: tree_sitter::Language, source: &str) -> Grammar {
        // The queries are part of the source tree; one that does not compile is a bug
        // caught by every test that parses.
        let selection = Selection::new(&language, source).unwrap_or_else(|e| panic!("scanner query: {e}"));
        let kinds = (0..language.node_kind_count() as u16)
            .map(|id| language.node_kind_for_id(id).unwrap_or_default())
            .collect();
        Grammar { fields: field_ids(&language), kinds, language, selection }
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
    let selection = &grammar.selection;
    selection.walk(tree, source, |capture, node, path| {
        let kind = selection.capture_name(capture);
        let src = Source { text: source, node, path, fields: &grammar.fields, kinds: &grammar.kinds };
        match language {
            Language::Python | Language::Notebook => python::lower(kind, node, src, &mut facts),
            Language::Rust => rust::lower(kind, node, src, &mut facts),
            Language::Go => go::lower(kind, node, src, &mut facts),
            Language::Javascript | Language::Typescript | Language::Tsx => {
                javascript::lower(kind, node, src, &mut facts)
            }
            _ => {}
        }
    });
    count_errors(tree.root_node(), &mut facts);
    facts
}

/// The source text, and the node being lowered with its ancestors.
#[derive(Clone, Copy)]
pub(crate) struct Source<'a> {
    text: &'a str,
    node: Node<'a>,
    /// `node`'s ancestors, the root first.
    path: &'a [Node<'a>],
    fields: &'a FieldIds,
    kinds: &'a [&'static str],
}

impl<'a> Source<'a> {
    pub fn text(self, node: Node<'_>) -> &'a str {
        &self.text[node.byte_range()]
    }

    /// `node.kind()`, from the grammar's table.
    pub fn kind(self, node: Node<'_>) -> &'static str {
        self.kinds.get(node.kind_id() as usize).copied().unwrap_or_else(|| node.kind())
    }

    /// `node`'s child in field `name` (`Node::child_by_field_name`, with the id looked up
    /// in a map).
    pub fn field<'t>(self, node: Node<'t>, name: &str) -> Option<Node<'t>> {
        node.child_by_field_id(*self.fields.get(name)?)
    }

    /// The node's parent. For the node being lowered and its ancestors this is the walk's
    /// path; tree-sitter itself finds a parent by descending from the root, which made
    /// walking up from every call to its function cost depth² per call.
    pub fn parent<'t>(self, node: Node<'t>) -> Option<Node<'t>>
    where
        'a: 't,
    {
        if node == self.node {
            return self.path.last().copied();
        }
        match self.path.iter().rposition(|n| *n == node) {
            Some(i) => i.checked_sub(1).map(|i| self.path[i]),
            None => node.parent(),
        }
    }

    /// The nodes around `node` that the walk's path holds, innermost first: for the node
    /// being lowered and its ancestors, the path above it; for a node inside it (an
    /// argument's call) or beside it (a decorator), the innermost of the two that holds
    /// it and what is above. Nodes between are left out; the extractors look up this way
    /// for functions and classes, and lowering never descends into either.
    pub fn ancestors<'t>(self, node: Node<'t>) -> impl Iterator<Item = Node<'t>>
    where
        'a: 't,
    {
        let holds = |outer: &Node<'_>| {
            *outer != node && outer.start_byte() <= node.start_byte() && node.end_byte() <= outer.end_byte()
        };
        let (first, above) = if node == self.node {
            (None, self.path.len())
        } else if let Some(i) = self.path.iter().rposition(|n| *n == node) {
            (None, i)
        } else if holds(&self.node) {
            (Some(self.node), self.path.len())
        } else {
            (None, self.path.iter().rposition(holds).map_or(0, |i| i + 1))
        };
        first.into_iter().chain(self.path[..above].iter().rev().copied())
    }
}

/// A member path written plainly (`self.client.chat.completions.create`) as one name:
/// the same [`Expr::Name`] lowering it a member at a time builds, with one string rather
/// than one per dot. `None` when anything else is written (calls, subscripts, spaces,
/// comments, `?.`, a number first).
pub(crate) fn plain_path(text: &str) -> Option<Expr> {
    let plain = text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
        && text.split('.').all(|part| part.bytes().next().is_some_and(|b| !b.is_ascii_digit()));
    plain.then(|| Expr::Name(text.to_owned()))
}

/// `node`'s named children in order. Child `i` is read by index, which tree-sitter does
/// without a cursor's allocation and bookkeeping; as reading it scans the children before
/// it, a wide node (a module, a long list) is read with a cursor instead. Named children
/// are all the scanner looks at: in the grammars it ships no anonymous node has children
/// (a test in `select` checks each grammar's node types).
pub(crate) fn named_children<'t>(node: Node<'t>) -> impl DoubleEndedIterator<Item = Node<'t>> {
    const WIDE: usize = 32;
    let count = node.named_child_count();
    let (narrow, wide) = if count <= WIDE {
        (count, Vec::new())
    } else {
        (0, node.named_children(&mut node.walk()).collect())
    };
    (0..narrow).filter_map(move |i| node.named_child(i)).chain(wide)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_path_is_one_name_and_anything_else_is_lowered_a_member_at_a_time() {
        assert_eq!(plain_path("self.client.chat"), Some(Expr::Name("self.client.chat".into())));
        assert_eq!(plain_path("import.meta.env"), Some(Expr::Name("import.meta.env".into())));
        for written in ["a().b", "a?.b", "a .b", "1.real", "a[0].b", "this.#x", "a.\n# c\nb"] {
            assert_eq!(plain_path(written), None, "{written:?}");
        }
    }
}
