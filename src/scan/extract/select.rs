//! Running a language's `.scm` query in the scanner's one walk of the tree.
//!
//! The queries select nodes (`(call) @call`), and the extractors need each selected
//! node's ancestors (the function or class around a call). tree-sitter's query cursor
//! walks the tree once and finds a node's parent by descending from the root again, so
//! matching and ancestry cost two walks and a map of every node's parent — more than the
//! lowering itself in `mark1 bench scan`. Here the walk is ours: it keeps the path from
//! the root, and the query's patterns are indexed by the node kind at their root. A
//! pattern that is that kind alone matches every node of the kind; a pattern with more
//! structure (`(export_statement source: (string))`) is checked by tree-sitter's query
//! engine at that one node. Either way the `.scm` text, compiled by tree-sitter, is the
//! only statement of what is selected.

use std::collections::HashMap;

use streaming_iterator::StreamingIterator;
use tree_sitter::{Language, Node, Query, QueryCursor, Tree};

use super::named_children;

/// A compiled query with its patterns indexed by root node kind.
pub(super) struct Selection {
    query: Query,
    /// Per node kind id: the patterns rooted at that kind, in pattern order.
    by_kind: Vec<Vec<Pattern>>,
}

#[derive(Clone, Copy)]
struct Pattern {
    index: usize,
    capture: u32,
    /// Whether the pattern is more than its root kind (fields, children, alternatives).
    structured: bool,
}

impl Selection {
    /// Compiles `source` for `language`. Every pattern must capture the node at its root,
    /// written `(kind …) @name`; anything else is a bug in the query, reported by name.
    pub fn new(language: &Language, source: &str) -> Result<Selection, String> {
        let query = Query::new(language, source).map_err(|e| format!("the query does not compile: {e}"))?;
        let mut ids: HashMap<&str, Vec<u16>> = HashMap::new();
        for id in 0..language.node_kind_count() as u16 {
            if let Some(kind) = language.node_kind_for_id(id).filter(|_| language.node_kind_is_named(id)) {
                ids.entry(kind).or_default().push(id);
            }
        }
        let mut by_kind = vec![Vec::new(); language.node_kind_count()];
        for index in 0..query.pattern_count() {
            let text = source[query.start_byte_for_pattern(index)..query.end_byte_for_pattern(index)].trim();
            let (kind, capture, structured) =
                rooted(text).ok_or_else(|| format!("pattern {text:?}: write it as `(kind …) @name`"))?;
            let capture = query
                .capture_index_for_name(capture)
                .ok_or_else(|| format!("pattern {text:?}: unknown capture @{capture}"))?;
            let kind_ids = ids.get(kind).ok_or_else(|| format!("pattern {text:?}: no node kind {kind}"))?;
            for &id in kind_ids {
                by_kind[id as usize].push(Pattern { index, capture, structured });
            }
        }
        Ok(Selection { query, by_kind })
    }

    pub fn capture_name(&self, capture: u32) -> &str {
        self.query.capture_names()[capture as usize]
    }

    /// Walks `tree`'s named nodes in document order and calls `visit` with each selected
    /// node, its capture's index and the node's ancestors (the root first, the parent last).
    /// The walk reads children as [`named_children`] does: it takes about half the time
    /// of a `TreeCursor` walk of every node.
    pub fn walk<'t>(&self, tree: &'t Tree, text: &str, mut visit: impl FnMut(u32, Node<'t>, &[Node<'t>])) {
        // Made at the first structured pattern; most files' walks need none.
        let mut engine: Option<QueryCursor> = None;
        // Nodes still to visit with their depth, the next one last.
        let mut pending: Vec<(Node<'t>, usize)> = vec![(tree.root_node(), 0)];
        let mut path: Vec<Node<'t>> = Vec::new();
        while let Some((node, depth)) = pending.pop() {
            path.truncate(depth);
            for pattern in self.by_kind.get(node.kind_id() as usize).into_iter().flatten() {
                if !pattern.structured
                    || self.matches_at(engine.get_or_insert_with(at_node_only), *pattern, node, text)
                {
                    visit(pattern.capture, node, &path);
                }
            }
            let first = pending.len();
            pending.extend(named_children(node).rev().map(|child| (child, depth + 1)));
            if pending.len() > first {
                path.push(node);
            }
        }
    }

    fn matches_at(&self, engine: &mut QueryCursor, pattern: Pattern, node: Node<'_>, text: &str) -> bool {
        let mut matches = engine.matches(&self.query, node, text.as_bytes());
        while let Some(found) = matches.next() {
            if found.pattern_index == pattern.index && found.captures.iter().any(|c| c.node == node) {
                return true;
            }
        }
        false
    }
}

/// A query cursor whose patterns match only at the node it is run on, never below it.
fn at_node_only() -> QueryCursor {
    let mut engine = QueryCursor::new();
    engine.set_max_start_depth(Some(0));
    engine
}

/// `(kind …) @name` → (kind, name, whether anything stands between the two).
fn rooted(pattern: &str) -> Option<(&str, &str, bool)> {
    let (body, capture) = pattern.rsplit_once('@')?;
    let body = body.trim().strip_prefix('(')?.strip_suffix(')')?;
    let kind_end = body.find(|c: char| c.is_whitespace()).unwrap_or(body.len());
    let kind = &body[..kind_end];
    let capture = capture.trim();
    let plain = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '.');
    (plain(kind) && plain(capture)).then_some((kind, capture, kind_end < body.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn python() -> Language {
        tree_sitter_python::LANGUAGE.into()
    }

    fn selected(selection: &Selection, source: &str) -> Vec<(String, String, usize)> {
        let mut parser = tree_sitter::Parser::new();
        parser.set_language(&python()).unwrap();
        let tree = parser.parse(source, None).unwrap();
        let mut out = Vec::new();
        selection.walk(&tree, source, |capture, node, path| {
            let name = selection.capture_name(capture).to_owned();
            out.push((name, source[node.byte_range()].to_owned(), path.len()));
        });
        out
    }

    #[test]
    fn plain_and_structured_patterns_select_what_the_query_engine_would() {
        let selection = Selection::new(
            &python(),
            "; calls, and keyword arguments named by an identifier\n(call) @call\n\
             (keyword_argument name: (identifier) value: (string)) @kw\n",
        )
        .unwrap();
        let found = selected(&selection, "f(a=g(1), b=\"x\")\n");
        let texts: Vec<(&str, &str)> = found.iter().map(|(c, t, _)| (c.as_str(), t.as_str())).collect();
        assert_eq!(texts, [("call", "f(a=g(1), b=\"x\")"), ("call", "g(1)"), ("kw", "b=\"x\"")]);
        // module > expression_statement > call > argument_list > keyword_argument > call
        assert_eq!(found[1].2, 5);
    }

    #[test]
    fn wide_nodes_are_walked_in_order_like_narrow_ones() {
        let selection = Selection::new(&python(), "(call) @call\n").unwrap();
        // 100 statements under the module (wide) and 40 arguments under one call.
        let source: String = (0..100).map(|i| format!("f{i}()\n")).collect::<String>()
            + &format!("g({})\n", (0..40).map(|i| format!("h{i}()")).collect::<Vec<_>>().join(", "));
        let found = selected(&selection, &source);
        let expected: Vec<String> = (0..100)
            .map(|i| format!("f{i}()"))
            .chain(std::iter::once(source.lines().last().unwrap().to_owned()))
            .chain((0..40).map(|i| format!("h{i}()")))
            .collect();
        let texts: Vec<&String> = found.iter().map(|(_, t, _)| t).collect();
        assert_eq!(texts, expected.iter().collect::<Vec<_>>());
        // module > expression_statement > call > argument_list > call
        assert_eq!(found.last().unwrap().2, 4);
    }

    /// The walk visits named nodes only; that finds every selected node only while no
    /// anonymous node has children in the grammars the scanner ships.
    #[test]
    fn no_shipped_grammar_gives_an_anonymous_node_children() {
        for (grammar, node_types) in [
            ("python", tree_sitter_python::NODE_TYPES),
            ("javascript", tree_sitter_javascript::NODE_TYPES),
            ("typescript", tree_sitter_typescript::TYPESCRIPT_NODE_TYPES),
            ("tsx", tree_sitter_typescript::TSX_NODE_TYPES),
            ("rust", tree_sitter_rust::NODE_TYPES),
            ("go", tree_sitter_go::NODE_TYPES),
        ] {
            let kinds: Vec<serde_json::Value> = serde_json::from_str(node_types).unwrap();
            for kind in &kinds {
                let has_children = ["children", "fields"]
                    .iter()
                    .any(|key| kind.get(key).is_some_and(|v| v.as_object().is_some_and(|o| !o.is_empty())));
                assert!(kind["named"].as_bool().unwrap() || !has_children, "{grammar}: {kind}");
            }
        }
    }

    #[test]
    fn patterns_that_capture_below_their_root_are_refused_by_name() {
        let err = Selection::new(&python(), "(call function: (identifier) @name)").err().unwrap();
        assert!(err.contains("(kind …) @name"), "{err}");
        let err = Selection::new(&python(), "(no_such_kind) @x").err().unwrap();
        assert!(err.contains("does not compile"), "{err}");
    }
}
