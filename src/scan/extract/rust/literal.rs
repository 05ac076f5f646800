//! Rust string literals: their values with escapes resolved, and the conversions
//! (`"x".into()`, `String::from("x")`) through which a literal stays a literal.

use tree_sitter::Node;

use super::{expr, path, Source};
use crate::scan::extract::named_children;
use crate::scan::facts::Expr;

/// `"x".into()`, `"x".to_string()`, `"x".to_owned()`, `"x".into_string()` and
/// `String::from("x")` are the literal `x`: a literal stays a literal through them.
pub(super) fn converted_literal(node: Node<'_>, src: Source<'_>) -> Option<String> {
    let function = src.field(node, "function")?;
    let args = src.field(node, "arguments")?;
    let args: Vec<Node<'_>> = named_children(args).collect();
    let literal = match (src.kind(function), args.as_slice()) {
        ("field_expression", []) => {
            let method = src.field(function, "field").map(|f| src.text(f));
            if !matches!(method, Some("into" | "to_string" | "to_owned" | "into_string")) {
                return None;
            }
            src.field(function, "value")?
        }
        ("scoped_identifier", [arg]) if path(function, src) == "String.from" => *arg,
        _ => return None,
    };
    match expr(literal, src) {
        Expr::Str(s) => Some(s),
        _ => None,
    }
}

/// A string literal's value, escapes resolved.
pub(super) fn string(node: Node<'_>, src: Source<'_>) -> String {
    let mut out = String::new();
    // After a `\` line continuation Rust drops the next line's leading whitespace.
    let mut continued = false;
    for part in named_children(node) {
        match src.kind(part) {
            "string_content" if continued => out.push_str(src.text(part).trim_start()),
            "string_content" => out.push_str(src.text(part)),
            "escape_sequence" => {
                let seq = src.text(part);
                continued = seq.starts_with("\\\n") || seq.starts_with("\\\r");
                if !continued {
                    out.push_str(&unescape(seq));
                }
                continue;
            }
            _ => {}
        }
        continued = false;
    }
    out
}

fn unescape(seq: &str) -> String {
    let code = |hex: &str| u32::from_str_radix(hex, 16).ok().and_then(char::from_u32);
    let decoded = match seq {
        "\\n" => Some('\n'),
        "\\t" => Some('\t'),
        "\\r" => Some('\r'),
        "\\0" => Some('\0'),
        "\\\\" => Some('\\'),
        "\\\"" => Some('"'),
        "\\'" => Some('\''),
        _ => seq
            .strip_prefix("\\u{")
            .and_then(|s| s.strip_suffix('}'))
            .or_else(|| seq.strip_prefix("\\x"))
            .and_then(code),
    };
    decoded.map_or_else(|| seq.to_owned(), String::from)
}
