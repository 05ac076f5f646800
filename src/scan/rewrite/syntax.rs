//! Byte-range edits on a syntax tree: finding the nodes the facts were lowered from,
//! reading and writing string literals, and adding items to an argument list or an
//! object literal in the layout it already has.

use std::collections::HashMap;

use tree_sitter::{Node, Point, Tree};

use crate::scan::facts::{Call, Expr, Pos};

/// Replace `start..end` with `text` (an insertion when the range is empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Edit {
    pub start: usize,
    pub end: usize,
    pub text: String,
}

impl Edit {
    pub fn replace(node: Node<'_>, text: impl Into<String>) -> Self {
        Self { start: node.start_byte(), end: node.end_byte(), text: text.into() }
    }

    pub fn insert(at: usize, text: impl Into<String>) -> Self {
        Self { start: at, end: at, text: text.into() }
    }
}

/// `src` with `edits` applied. Insertions at one offset keep the order they were planned
/// in; an edit planned twice (a constant shared by two call sites) is applied once.
pub(super) fn apply(src: &str, mut edits: Vec<Edit>) -> String {
    edits.sort_by_key(|e| (e.start, e.end));
    edits.dedup();
    let mut out = String::with_capacity(src.len() + edits.iter().map(|e| e.text.len()).sum::<usize>());
    let mut at = 0;
    for edit in edits {
        // The planner edits disjoint argument nodes; should two ever overlap, the first
        // one wins rather than splicing text into the middle of another edit.
        if edit.start < at {
            continue;
        }
        out.push_str(&src[at..edit.start]);
        out.push_str(&edit.text);
        at = edit.end;
    }
    out.push_str(&src[at..]);
    out
}

/// Syntax errors in a tree: error nodes and nodes the parser had to invent.
pub(super) fn syntax_errors(tree: &Tree) -> usize {
    let root = tree.root_node();
    if !root.has_error() {
        return 0;
    }
    let mut count = 0;
    let mut stack = vec![root];
    while let Some(node) = stack.pop() {
        if node.is_error() || node.is_missing() {
            count += 1;
        } else if node.has_error() {
            let mut cursor = node.walk();
            stack.extend(node.children(&mut cursor));
        }
    }
    count
}

/// The call nodes of a tree by the key [`call_key`] gives their facts. Calls that start
/// at the same byte (`OpenAI().chat.completions.create(…)` and its inner `OpenAI()`)
/// are told apart by how many calls their callee holds at that byte.
pub(super) fn call_nodes(tree: &Tree) -> HashMap<(Pos, usize), Node<'_>> {
    let mut nodes = HashMap::new();
    let mut stack = vec![tree.root_node()];
    while let Some(node) = stack.pop() {
        if is_call(node) {
            nodes.insert((pos(node), leading_calls(node)), node);
        }
        let mut cursor = node.walk();
        stack.extend(node.named_children(&mut cursor));
    }
    nodes
}

/// The key of a call's node in [`call_nodes`].
pub(super) fn call_key(call: &Call) -> (Pos, usize) {
    fn calls_in(expr: &Expr) -> usize {
        match expr {
            Expr::Call(call) => 1 + calls_in(&call.callee),
            Expr::Member(base, _) | Expr::Subscript(base, _) => calls_in(base),
            _ => 0,
        }
    }
    (call.pos, calls_in(&call.callee))
}

fn is_call(node: Node<'_>) -> bool {
    matches!(node.kind(), "call" | "call_expression" | "new_expression")
}

/// Calls below `node` that start where it starts: they lie on its chain of first children.
fn leading_calls(node: Node<'_>) -> usize {
    let mut count = 0;
    let mut child = node.child(0);
    while let Some(c) = child.filter(|c| c.start_byte() == node.start_byte()) {
        count += usize::from(is_call(c));
        child = c.child(0);
    }
    count
}

pub(super) fn pos(node: Node<'_>) -> Pos {
    let point = node.start_position();
    Pos { line: point.row + 1, column: point.column + 1 }
}

/// The value node of the assignment, declaration or field a binding at `at` was lowered from.
pub(super) fn binding_value(tree: &Tree, at: Pos) -> Option<Node<'_>> {
    let point = Point { row: at.line - 1, column: at.column - 1 };
    let mut node = tree.root_node().descendant_for_point_range(point, point)?;
    loop {
        if node.start_position() != point {
            return None;
        }
        if matches!(
            node.kind(),
            "assignment"
                | "variable_declarator"
                | "assignment_expression"
                | "field_definition"
                | "public_field_definition"
                | "enum_assignment"
        ) {
            return node.child_by_field_name("right").or_else(|| node.child_by_field_name("value"));
        }
        node = node.parent()?;
    }
}

/// The text of a string literal without interpolation, escapes left as written; `None`
/// for anything else (f-strings, templates with holes, byte strings, concatenations).
pub(super) fn string_value<'s>(node: Node<'_>, src: &'s str) -> Option<&'s str> {
    let text = &src[node.byte_range()];
    let mut cursor = node.walk();
    let has_holes = node
        .named_children(&mut cursor)
        .any(|c| matches!(c.kind(), "interpolation" | "template_substitution"));
    if has_holes {
        return None;
    }
    match node.kind() {
        // Python: a prefix (r, u) is fine, f and b are not plain text.
        "string" if text.starts_with(['"', '\'', 'r', 'R', 'u', 'U']) => {
            let body = text.trim_start_matches(['r', 'R', 'u', 'U']);
            let quote = if body.starts_with("\"\"\"") || body.starts_with("'''") { 3 } else { 1 };
            body.get(quote..body.len().checked_sub(quote)?)
        }
        "template_string" => text.get(1..text.len().checked_sub(1)?),
        _ => None,
    }
}

/// `value` as a string literal, in the quotes of `like` (a literal it replaces) when those
/// are single quotes, else in double quotes.
pub(super) fn quote(value: &str, like: Option<&str>) -> String {
    let q = if like.is_some_and(|l| l.starts_with('\'')) { '\'' } else { '"' };
    let mut out = String::with_capacity(value.len() + 2);
    out.push(q);
    for c in value.chars() {
        if c == q || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push(q);
    out
}

/// The items of an argument list or object literal: its named children but comments.
pub(super) fn items<'t>(container: Node<'t>) -> Vec<Node<'t>> {
    let mut cursor = container.walk();
    container.named_children(&mut cursor).filter(|c| c.kind() != "comment").collect()
}

/// Edits adding `new` after the last item of `container` (`(…)` or `{…}`), in its layout:
/// one item per line at the last item's indentation when the items are laid out over
/// lines, keeping a trailing comma where there was one, never moving a comment.
/// `pad` puts spaces inside an empty container (`{ a }` rather than `(a)`).
pub(super) fn append(container: Node<'_>, new: &[String], src: &str, pad: bool) -> Vec<Edit> {
    if new.is_empty() {
        return Vec::new();
    }
    let items = items(container);
    let Some(last) = items.last() else {
        let open = container.child(0).map_or(container.start_byte(), |o| o.end_byte());
        let body = new.join(", ");
        return vec![Edit::insert(open, if pad { format!(" {body} ") } else { body })];
    };
    let mut cursor = container.walk();
    let comma = container
        .children(&mut cursor)
        .find(|c| c.kind() == "," && c.start_byte() >= last.end_byte())
        .map(|c| c.end_byte());
    let multiline = last.start_position().row != container.start_position().row;
    if !multiline {
        return vec![match comma {
            Some(after) => Edit::insert(after, format!(" {},", new.join(", "))),
            None => Edit::insert(last.end_byte(), format!(", {}", new.join(", "))),
        }];
    }
    let indent = indentation(src, last.start_byte());
    let line_end = comma.unwrap_or(last.end_byte());
    // A comment closing the last item's line stays on that line.
    let mut cursor = container.walk();
    let anchor = container
        .named_children(&mut cursor)
        .filter(|c| c.kind() == "comment" && c.start_byte() >= line_end)
        .find(|c| c.start_position().row == last.end_position().row)
        .map_or(line_end, |c| c.end_byte());
    let lines: Vec<String> = new.iter().map(|item| format!("\n{indent}{item}")).collect();
    match comma {
        Some(_) => vec![Edit::insert(anchor, lines.iter().map(|l| format!("{l},")).collect::<String>())],
        None if anchor == last.end_byte() => vec![Edit::insert(anchor, format!(",{}", lines.join(",")))],
        None => vec![Edit::insert(last.end_byte(), ","), Edit::insert(anchor, lines.join(","))],
    }
}

/// The whitespace that opens the line holding byte `at`.
fn indentation(src: &str, at: usize) -> &str {
    let start = src[..at].rfind('\n').map_or(0, |i| i + 1);
    let line = &src[start..];
    &line[..line.len() - line.trim_start_matches([' ', '\t']).len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_keeps_insert_order_and_drops_duplicates() {
        let edits = vec![
            Edit::insert(1, "b"),
            Edit { start: 2, end: 3, text: "X".into() },
            Edit::insert(1, "c"),
            Edit { start: 2, end: 3, text: "X".into() },
        ];
        assert_eq!(apply("a__d", edits), "abc_Xd");
    }

    #[test]
    fn quote_follows_single_quotes_and_escapes() {
        assert_eq!(quote("it's", Some("'x'")), "'it\\'s'");
        assert_eq!(quote("a\"b", None), "\"a\\\"b\"");
        assert_eq!(quote("x", Some("`x`")), "\"x\"");
    }

    #[test]
    fn indentation_is_the_lines_leading_whitespace() {
        let src = "f(\n    a=1,\n)";
        assert_eq!(indentation(src, src.find('a').unwrap()), "    ");
        assert_eq!(indentation("x", 0), "");
    }
}
