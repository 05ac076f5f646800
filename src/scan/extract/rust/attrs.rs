//! Rust attributes, doc comments and macro arguments. Attribute and macro arguments are
//! token trees, not expressions, so they are read as comma-separated `key = value` pairs
//! and plain values: `#[tool(description = "Adds")]` becomes the decorator call
//! `tool(description="Adds")`, `vec!["a", "b"]` a list.

use tree_sitter::Node;

use super::{enclosing_function, expr, path, Source};
use crate::scan::extract::pos;
use crate::scan::extract::{clean_doc, named_children};
use crate::scan::facts::{Call, Expr};

/// The outer attributes (as decorators) and the doc comment (`///`, `/** */`,
/// `#[doc = "…"]`) written above an item.
pub(super) fn outer(node: Node<'_>, src: Source<'_>) -> (Vec<Expr>, Option<String>) {
    let mut decorators = Vec::new();
    let mut doc = Vec::new();
    let mut current = node.prev_sibling();
    while let Some(n) = current {
        match src.kind(n) {
            "attribute_item" => match n.named_child(0).map(|a| attribute(a, src)) {
                Some(Attribute::Doc(line)) => doc.push(line),
                Some(Attribute::Decorator(decorator)) => decorators.push(decorator),
                None => {}
            },
            "line_comment" | "block_comment" => doc.extend(doc_comment(src.text(n))),
            _ => break,
        }
        current = n.prev_sibling();
    }
    decorators.reverse();
    doc.reverse();
    let doc = clean_doc(&doc.join("\n"));
    (decorators, (!doc.is_empty()).then_some(doc))
}

enum Attribute {
    Doc(String),
    Decorator(Expr),
}

/// `#[name]` → `Name`, `#[a::name(args…)]` → a call of `a.name`, `#[doc = "…"]` → doc.
fn attribute(node: Node<'_>, src: Source<'_>) -> Attribute {
    let name = node.named_child(0).map(|n| path(n, src)).unwrap_or_default();
    if name == "doc" {
        if let Some(Expr::Str(line)) = src.field(node, "value").map(|v| expr(v, src)) {
            return Attribute::Doc(line);
        }
    }
    let Some(tree) = src.field(node, "arguments") else {
        return Attribute::Decorator(Expr::Name(name));
    };
    let (args, kwargs) = arguments(tree, src);
    let function = enclosing_function(node, src);
    let call = Call::new(Expr::Name(name), args, kwargs, pos(node), function);
    Attribute::Decorator(Expr::Call(Box::new(call)))
}

/// The text of a doc comment without its markers; `None` for a plain comment.
fn doc_comment(text: &str) -> Option<String> {
    // A line comment's node holds its line break.
    if let Some(line) = text.strip_prefix("///").filter(|rest| !rest.starts_with('/')) {
        return Some(line.trim_end().to_owned());
    }
    let block = text.strip_prefix("/**").filter(|rest| !rest.starts_with('*'))?;
    let block = block.strip_suffix("*/").unwrap_or(block);
    Some(block.lines().map(|l| l.trim_start().strip_prefix('*').unwrap_or(l)).collect::<Vec<_>>().join("\n"))
}

/// `vec![a, b]` is the list of its elements; other macros are not followed.
pub(super) fn vec_macro(node: Node<'_>, src: Source<'_>) -> Expr {
    let is_vec = src.field(node, "macro").is_some_and(|m| src.text(m) == "vec");
    let tree = named_children(node).find(|n| src.kind(*n) == "token_tree");
    match tree {
        Some(tree) if is_vec => Expr::List(arguments(tree, src).0),
        _ => Expr::Other,
    }
}

/// A token tree's comma-separated items: positional values and `key = value` pairs.
fn arguments(tree: Node<'_>, src: Source<'_>) -> (Vec<Expr>, Vec<(String, Expr)>) {
    let mut cursor = tree.walk();
    let tokens: Vec<Node<'_>> = tree
        .children(&mut cursor)
        .filter(|t| !matches!(src.kind(*t), "line_comment" | "block_comment"))
        .collect();
    // The first and last tokens are the tree's delimiters.
    let inner = tokens.get(1..tokens.len().saturating_sub(1)).unwrap_or_default();
    let mut args = Vec::new();
    let mut kwargs = Vec::new();
    for item in inner.split(|t| src.kind(*t) == ",") {
        match item {
            [] => {}
            [key, eq, value @ ..] if src.kind(*key) == "identifier" && src.kind(*eq) == "=" => {
                kwargs.push((src.text(*key).to_owned(), value_of(value, src)));
            }
            _ => args.push(value_of(item, src)),
        }
    }
    (args, kwargs)
}

/// The value a run of tokens spells: a literal, a path, or a call `path(…)`.
fn value_of(tokens: &[Node<'_>], src: Source<'_>) -> Expr {
    match tokens {
        [one] if is_literal(src.kind(*one)) || src.kind(*one) == "identifier" => expr(*one, src),
        [minus, number] if src.kind(*minus) == "-" && is_literal(src.kind(*number)) => {
            match expr(*number, src) {
                Expr::Num(n) => Expr::Num(format!("-{n}")),
                _ => Expr::Other,
            }
        }
        [callee @ .., tree] if src.kind(*tree) == "token_tree" => match token_path(callee, src) {
            Some(name) => {
                let (args, kwargs) = arguments(*tree, src);
                let call = Call::new(Expr::Name(name), args, kwargs, pos(*tree), None);
                Expr::Call(Box::new(call))
            }
            None => Expr::Other,
        },
        _ => token_path(tokens, src).map_or(Expr::Other, Expr::Name),
    }
}

fn is_literal(kind: &str) -> bool {
    matches!(
        kind,
        "string_literal" | "raw_string_literal" | "integer_literal" | "float_literal" | "boolean_literal"
    )
}

/// `a::b::c` spelled as tokens, dotted; `None` for anything else.
fn token_path(tokens: &[Node<'_>], src: Source<'_>) -> Option<String> {
    let mut segments = Vec::new();
    for token in tokens {
        match src.kind(*token) {
            "::" => {}
            "identifier" | "self" | "crate" | "super" => segments.push(src.text(*token)),
            _ => return None,
        }
    }
    (!segments.is_empty()).then(|| segments.join("."))
}
