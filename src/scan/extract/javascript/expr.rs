//! JavaScript and TypeScript expressions and call sites, lowered to [`Expr`] and [`Call`].

use tree_sitter::Node;

use super::scope::enclosing_function;
use crate::scan::extract::{named_children, plain_path, pos, unescape, Source};
use crate::scan::facts::{Call, Expr};

/// Lowers an expression as far as the scanner follows one.
pub(super) fn expr(node: Node<'_>, src: Source<'_>) -> Expr {
    let field = |name: &str| src.field(node, name).map_or(Expr::Other, |n| expr(n, src));
    match src.kind(node) {
        "string" | "template_string" => string(node, src).map_or(Expr::Other, Expr::Str),
        "number" => Expr::Num(src.text(node).to_owned()),
        "true" => Expr::Bool(true),
        "false" => Expr::Bool(false),
        // `import.meta` is syntax, not a member of a name, but reads as one: `import.meta.env`.
        "identifier" | "this" | "super" | "meta_property" => Expr::Name(src.text(node).to_owned()),
        // `a?.b` is the same path as `a.b`: the fields skip the optional chain.
        "member_expression" => {
            if let Some(path) = plain_path(src.text(node)) {
                return path;
            }
            let property = src.field(node, "property").map(|p| src.text(p)).unwrap_or_default();
            field("object").member(property)
        }
        "call_expression" | "new_expression" => {
            call(node, src).map_or(Expr::Other, |c| Expr::Call(Box::new(c)))
        }
        "subscript_expression" => Expr::Subscript(Box::new(field("object")), Box::new(field("index"))),
        "object" => object(node, src),
        "array" => Expr::List(
            named_children(node)
                .filter(|n| !matches!(src.kind(*n), "comment" | "spread_element"))
                .map(|n| expr(n, src))
                .collect(),
        ),
        "binary_expression"
            if src.field(node, "operator").is_some_and(|o| matches!(src.kind(o), "??" | "||")) =>
        {
            Expr::Fallback(Box::new(field("left")), Box::new(field("right")))
        }
        // `c ? a : b`: the first alternative, falling back to the second.
        "ternary_expression" => {
            Expr::Fallback(Box::new(field("consequence")), Box::new(field("alternative")))
        }
        "arrow_function" | "function_expression" | "generator_function" => Expr::Lambda,
        // Wrappers that leave the value as it is: grouping, awaiting, and TypeScript's
        // assertions (`x as T`, `x satisfies T`, `x!`, `<T>x`).
        "parenthesized_expression"
        | "await_expression"
        | "as_expression"
        | "satisfies_expression"
        | "non_null_expression"
        | "type_assertion" => {
            let inner = named_children(node).find(|n| !matches!(src.kind(*n), "comment" | "type_arguments"));
            inner.map_or(Expr::Other, |n| expr(n, src))
        }
        _ => Expr::Other,
    }
}

/// A call or construction. `None` for a tagged template (`sql\`…\``), which the grammar
/// calls a call but which passes no arguments the rules could read.
pub(super) fn call(node: Node<'_>, src: Source<'_>) -> Option<Call> {
    let is_new = src.kind(node) == "new_expression";
    let callee = src.field(node, if is_new { "constructor" } else { "function" })?;
    let arguments = src.field(node, "arguments");
    if arguments.is_some_and(|a| src.kind(a) == "template_string") {
        return None;
    }
    let mut args = Vec::new();
    let mut spread = false;
    if let Some(list) = arguments {
        spread = named_children(list).any(|a| src.kind(a) == "spread_element");
        args = named_children(list)
            .filter(|a| !matches!(src.kind(*a), "comment" | "spread_element"))
            .map(|a| expr(a, src))
            .collect();
    }
    Some(Call {
        callee: expr(callee, src),
        args,
        spread,
        kwargs: Vec::new(),
        is_new,
        pos: pos(node),
        function: enclosing_function(node, src),
    })
}

/// An object literal's keyed values; spreads and computed keys are not followed.
fn object(node: Node<'_>, src: Source<'_>) -> Expr {
    let fields = named_children(node)
        .filter_map(|p| match src.kind(p) {
            "pair" => Some((key(src.field(p, "key")?, src)?, expr(src.field(p, "value")?, src))),
            "shorthand_property_identifier" => {
                let name = src.text(p).to_owned();
                Some((name.clone(), Expr::Name(name)))
            }
            // `{ execute() {…} }`: a function value under its key.
            "method_definition" => Some((key(src.field(p, "name")?, src)?, Expr::Lambda)),
            _ => None,
        })
        .collect();
    Expr::Object(fields)
}

/// A property key or imported name as a string: `a`, `"a-b"`, `0`, `#private`; `None`
/// for a computed key (`[k]`).
pub(super) fn key(node: Node<'_>, src: Source<'_>) -> Option<String> {
    match src.kind(node) {
        "string" => string(node, src),
        "computed_property_name" => None,
        _ => Some(src.text(node).to_owned()),
    }
}

/// A string or template literal's value; `None` for a template with `${…}` holes.
pub(super) fn string(node: Node<'_>, src: Source<'_>) -> Option<String> {
    let mut out = String::new();
    for part in named_children(node) {
        match src.kind(part) {
            "string_fragment" | "html_character_reference" => out.push_str(src.text(part)),
            "escape_sequence" => match src.text(part) {
                "\\`" => out.push('`'),
                seq => out.push_str(unescape(seq)),
            },
            "template_substitution" => return None,
            _ => {}
        }
    }
    Some(out)
}
