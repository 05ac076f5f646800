//! Names of definitions and of the definitions around a node. A function counts when it
//! has a name — declared, a method, or a function value bound to a `const`, an object key
//! or a class field; an anonymous callback belongs to the function that passes it.

use tree_sitter::Node;

use super::expr::key;
use crate::scan::extract::Source;

pub(super) fn is_function(node: Node<'_>, src: Source<'_>) -> bool {
    matches!(
        src.kind(node),
        "function_declaration"
            | "generator_function_declaration"
            | "method_definition"
            | "function_expression"
            | "generator_function"
            | "arrow_function"
    )
}

/// The bare name of a function node; `None` for an anonymous one.
pub(super) fn function_name(node: Node<'_>, src: Source<'_>) -> Option<String> {
    match src.kind(node) {
        "function_declaration" | "generator_function_declaration" => {
            src.field(node, "name").map(|n| src.text(n).to_owned())
        }
        "method_definition" => key(src.field(node, "name")?, src),
        // `const f = function g() {}` is called as `f`; `g` names it only when unbound.
        _ => bound_name(node, src).or_else(|| src.field(node, "name").map(|n| src.text(n).to_owned())),
    }
}

/// The bare name of a class or enum node: its own, or for a class expression the `const`
/// it is bound to.
pub(super) fn class_name(node: Node<'_>, src: Source<'_>) -> Option<String> {
    match src.kind(node) {
        "class_declaration" | "abstract_class_declaration" | "class" | "enum_declaration" => {
            src.field(node, "name").map(|n| src.text(n).to_owned()).or_else(|| bound_name(node, src))
        }
        _ => None,
    }
}

/// The name a value is bound to: `const name = …`, `{ name: … }`, a class field `name = …`.
fn bound_name(node: Node<'_>, src: Source<'_>) -> Option<String> {
    let parent = src.parent(node)?;
    let holder = match src.kind(parent) {
        "variable_declarator" => src.field(parent, "name").filter(|n| src.kind(*n) == "identifier")?,
        "pair" => src.field(parent, "key")?,
        // JavaScript names a class field's key `property`, TypeScript `name`.
        "field_definition" | "public_field_definition" => {
            src.field(parent, "property").or_else(|| src.field(parent, "name"))?
        }
        _ => return None,
    };
    key(holder, src)
}

/// The qualified name of the innermost named function around `node`: `Class.method`,
/// `outer.inner`, `handler` for a callback passed inside `handler`.
pub(super) fn enclosing_function(node: Node<'_>, src: Source<'_>) -> Option<String> {
    let mut names = Vec::new();
    let mut in_function = false;
    for n in ancestors(node, src) {
        if is_function(n, src) {
            if let Some(name) = function_name(n, src) {
                in_function = true;
                names.push(name);
            }
        } else if let Some(name) = class_name(n, src) {
            names.push(name);
        }
    }
    in_function.then(|| qualified(names))
}

/// The qualified name of the classes (and enums) around `node`, outside any named function.
pub(super) fn enclosing_classes(node: Node<'_>, src: Source<'_>) -> Option<String> {
    let mut names = Vec::new();
    for n in ancestors(node, src) {
        if is_function(n, src) && function_name(n, src).is_some() {
            return None;
        }
        names.extend(class_name(n, src));
    }
    (!names.is_empty()).then(|| qualified(names))
}

/// The nodes around `node`, innermost first. A decorator stands outside what it decorates,
/// as in Python, though the grammars put a method's or class's decorator inside it: the
/// node after a decorator (its owner) is left out.
fn ancestors<'t>(node: Node<'t>, src: Source<'t>) -> impl Iterator<Item = Node<'t>> {
    let mut owner_next = false;
    src.ancestors(node).filter(move |n| {
        let skip = std::mem::replace(&mut owner_next, src.kind(*n) == "decorator");
        !skip && !owner_next
    })
}

/// Innermost-first names joined outermost-first.
fn qualified(mut names: Vec<String>) -> String {
    names.reverse();
    names.join(".")
}
