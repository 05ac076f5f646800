//! Go composite literals: `pkg.T{Field: v}` constructs `T` (a call with keyword
//! arguments); a slice or map literal is the list or object it spells.

use tree_sitter::Node;

use super::{enclosing_function, expr, type_name, Source};
use crate::scan::extract::{named_children, pos};
use crate::scan::facts::{Call, Expr};

/// A composite literal of a named type (`T{…}`, `pkg.T{…}`, `T[int]{…}`, also under `&`)
/// constructs it: keyed fields are keyword arguments, unkeyed elements positional.
/// Slices, maps and anonymous structs construct nothing.
pub(super) fn construction(node: Node<'_>, src: Source<'_>) -> Option<Call> {
    let ty = src
        .field(node, "type")
        .filter(|t| matches!(src.kind(*t), "type_identifier" | "qualified_type" | "generic_type"))?;
    let (args, kwargs) = src.field(node, "body").map(|b| elements(b, src)).unwrap_or_default();
    let function = enclosing_function(node, src);
    Some(Call::new(Expr::Name(type_name(ty, src)), args, kwargs, pos(node), function))
}

/// A composite literal's value: a construction, or the list or object it spells.
pub(super) fn composite(node: Node<'_>, src: Source<'_>) -> Expr {
    if let Some(call) = construction(node, src) {
        return Expr::Call(Box::new(call));
    }
    let Some(body) = src.field(node, "body") else { return Expr::Other };
    match src.field(node, "type").map(|t| src.kind(t)) {
        Some("map_type" | "struct_type") => Expr::Object(elements(body, src).1),
        Some("slice_type" | "array_type" | "implicit_length_array_type") => Expr::List(elements(body, src).0),
        _ => untyped(body, src),
    }
}

/// A literal whose type is elided (`{Role: "user"}` inside a slice): keyed elements make
/// an object, unkeyed ones a list.
fn untyped(body: Node<'_>, src: Source<'_>) -> Expr {
    match elements(body, src) {
        (args, kwargs) if args.is_empty() && !kwargs.is_empty() => Expr::Object(kwargs),
        (args, kwargs) if kwargs.is_empty() => Expr::List(args),
        _ => Expr::Other,
    }
}

/// A literal value's elements: the unkeyed ones and the keyed ones.
fn elements(body: Node<'_>, src: Source<'_>) -> (Vec<Expr>, Vec<(String, Expr)>) {
    let element = |node: Node<'_>| match node.named_child(0) {
        Some(value) if src.kind(value) == "literal_value" => untyped(value, src),
        Some(value) => expr(value, src),
        None => Expr::Other,
    };
    let mut args = Vec::new();
    let mut kwargs = Vec::new();
    for child in named_children(body) {
        match src.kind(child) {
            "keyed_element" => {
                let key = src.field(child, "key").and_then(|k| k.named_child(0));
                let key = key.map(|k| match expr(k, src) {
                    Expr::Str(key) | Expr::Name(key) => key,
                    _ => src.text(k).to_owned(),
                });
                let value = src.field(child, "value").map_or(Expr::Other, element);
                kwargs.extend(key.map(|key| (key, value)));
            }
            "literal_element" => args.push(element(child)),
            _ => {}
        }
    }
    (args, kwargs)
}
