//! Functions and classes: their qualified names, parameters, decorators and JSDoc.

use tree_sitter::Node;

use super::expr::expr;
use super::scope::{class_name, enclosing_classes, enclosing_function, function_name};
use crate::scan::extract::{clean_doc, named_children, pos, Source};
use crate::scan::facts::{Class, Expr, Function, Param};

/// A named function; `None` for an anonymous one (a callback is part of its caller).
pub(super) fn function(node: Node<'_>, src: Source<'_>) -> Option<Function> {
    let short_name = function_name(node, src)?;
    let name = match enclosing_function(node, src).or_else(|| enclosing_classes(node, src)) {
        Some(outer) => format!("{outer}.{short_name}"),
        None => short_name.clone(),
    };
    Some(Function {
        name,
        short_name,
        params: params(node, src),
        decorators: decorators(node, src),
        doc: doc(node, src),
        pos: pos(node),
    })
}

/// A named class; `None` for an anonymous class expression.
pub(super) fn class(node: Node<'_>, src: Source<'_>) -> Option<Class> {
    let short = class_name(node, src)?;
    let name = match enclosing_classes(node, src) {
        Some(outer) => format!("{outer}.{short}"),
        None => short,
    };
    let mut bases = Vec::new();
    for heritage in named_children(node).filter(|n| src.kind(*n) == "class_heritage") {
        for part in named_children(heritage) {
            match src.kind(part) {
                // TypeScript: `extends B` is a clause of its own; `implements I` names
                // interfaces, which are types and not bases.
                "extends_clause" => {
                    let mut cursor = part.walk();
                    bases.extend(part.children_by_field_name("value", &mut cursor).map(|v| expr(v, src)));
                }
                "implements_clause" | "comment" => {}
                _ => bases.push(expr(part, src)),
            }
        }
    }
    Some(Class { name, bases, decorators: decorators(node, src), doc: doc(node, src), pos: pos(node) })
}

fn params(node: Node<'_>, src: Source<'_>) -> Vec<Param> {
    // `x => …`: one bare parameter.
    if let Some(single) = src.field(node, "parameter") {
        return vec![Param { name: src.text(single).to_owned(), ty: None, default: None }];
    }
    let Some(list) = src.field(node, "parameters") else { return Vec::new() };
    named_children(list).filter_map(|p| param(p, src)).collect()
}

fn param(node: Node<'_>, src: Source<'_>) -> Option<Param> {
    // TypeScript wraps each parameter with its type and default; JavaScript has the pattern.
    let (pattern, ty, default) = match src.kind(node) {
        "required_parameter" | "optional_parameter" => (
            src.field(node, "pattern")?,
            src.field(node, "type").and_then(|t| t.named_child(0)).map(|t| src.text(t).to_owned()),
            src.field(node, "value"),
        ),
        "assignment_pattern" => (src.field(node, "left")?, None, src.field(node, "right")),
        _ => (node, None, None),
    };
    let name = match src.kind(pattern) {
        "identifier" => src.text(pattern).to_owned(),
        // A destructured parameter is named by its pattern, `{ city }`, so it keeps its place.
        "object_pattern" | "array_pattern" => {
            src.text(pattern).split_whitespace().collect::<Vec<_>>().join(" ")
        }
        // `this: T` types the receiver and `...rest` is no one argument: like Python's
        // `self` and `*args`. Comments are no parameters.
        _ => return None,
    };
    Some(Param { name, ty, default: default.map(|d| expr(d, src)) })
}

/// A class's or method's decorators, outermost first: names or calls.
fn decorators(node: Node<'_>, src: Source<'_>) -> Vec<Expr> {
    // TypeScript puts a method's decorators before it in the class body, and both
    // grammars put those of `@Dec export class C` before the class in the `export`.
    let mut before = Vec::new();
    let mut previous = node.prev_named_sibling();
    while let Some(p) = previous.filter(|p| matches!(src.kind(*p), "decorator" | "comment")) {
        if src.kind(p) == "decorator" {
            before.push(p);
        }
        previous = p.prev_named_sibling();
    }
    let mut cursor = node.walk();
    let own = node.children_by_field_name("decorator", &mut cursor);
    before.into_iter().rev().chain(own).filter_map(|d| d.named_child(0)).map(|e| expr(e, src)).collect()
}

/// The `/** … */` comment right above a definition (or above its `export`, its `const`
/// or its decorators), without the comment markers.
fn doc(node: Node<'_>, src: Source<'_>) -> Option<String> {
    let mut anchor = node;
    if let Some(parent) = src.parent(node) {
        match src.kind(parent) {
            "variable_declarator" => anchor = src.parent(parent).unwrap_or(parent),
            "pair" | "field_definition" | "public_field_definition" => anchor = parent,
            _ => {}
        }
    }
    if let Some(export) = src.parent(anchor).filter(|p| src.kind(*p) == "export_statement") {
        anchor = export;
    }
    let mut previous = anchor.prev_sibling();
    while let Some(decorator) = previous.filter(|p| src.kind(*p) == "decorator") {
        anchor = decorator;
        previous = decorator.prev_sibling();
    }
    let comment = previous.filter(|c| src.kind(*c) == "comment")?;
    // A comment with a blank line after it is about something else (a file header).
    if anchor.start_position().row > comment.end_position().row + 1 {
        return None;
    }
    let text = src.text(comment).strip_prefix("/**")?.strip_suffix("*/")?;
    let lines: Vec<&str> = text
        .lines()
        .map(|line| {
            let line = line.trim();
            line.strip_prefix('*').unwrap_or(line)
        })
        .collect();
    Some(clean_doc(&lines.join("\n")))
}
