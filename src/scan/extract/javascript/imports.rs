//! Imports: ES module `import` statements, `export … from`, TypeScript's `import x =
//! require(…)`, CommonJS `require` and dynamic `import(…)`. A name bound to a module's
//! default export is `m.default`; a module loaded without a name is an import with an
//! empty local name, so it still counts as a dependency.

use tree_sitter::Node;

use super::expr::{key, string};
use crate::scan::extract::{named_children, pos, Source};
use crate::scan::facts::Import;

pub(super) fn imports(node: Node<'_>, src: Source<'_>, out: &mut Vec<Import>) {
    let at = pos(node);
    let clauses: Vec<Node<'_>> = named_children(node).collect();
    // TypeScript's `import x = require("m")` is CommonJS: bound as `const x = require("m")` is.
    if let Some(clause) = clauses.iter().find(|n| src.kind(**n) == "import_require_clause") {
        let module = src.field(*clause, "source").and_then(|s| string(s, src));
        if let (Some(module), Some(local)) = (module, clause.named_child(0)) {
            let fqn = format!("{module}.default");
            out.push(Import { local: src.text(local).to_owned(), fqn, module, pos: at });
        }
        return;
    }
    let Some(module) = src.field(node, "source").and_then(|s| string(s, src)) else { return };
    let Some(clause) = clauses.iter().find(|n| src.kind(**n) == "import_clause") else {
        // `import "m"` runs `m` for its effects: no name, still a dependency.
        out.push(Import { local: String::new(), fqn: module.clone(), module, pos: at });
        return;
    };
    let mut bind = |local: &str, fqn: String| {
        out.push(Import { local: local.to_owned(), fqn, module: module.clone(), pos: at });
    };
    for part in named_children(*clause) {
        match src.kind(part) {
            "identifier" => bind(src.text(part), format!("{module}.default")),
            "namespace_import" => {
                if let Some(local) = part.named_child(0) {
                    bind(src.text(local), module.clone());
                }
            }
            "named_imports" => {
                for spec in named_children(part).filter(|s| src.kind(*s) == "import_specifier") {
                    let Some(name) = src.field(spec, "name").and_then(|n| key(n, src)) else {
                        continue;
                    };
                    let local = src.field(spec, "alias").map_or(name.as_str(), |a| src.text(a));
                    bind(local, format!("{module}.{name}"));
                }
            }
            _ => {}
        }
    }
}

/// `export … from "m"`: binds nothing in this file but depends on `m`.
pub(super) fn reexport(node: Node<'_>, src: Source<'_>) -> Option<Import> {
    let module = string(src.field(node, "source")?, src)?;
    Some(Import { local: String::new(), fqn: module.clone(), module, pos: pos(node) })
}

/// The module a call loads without binding a name: `import("m")`, or `require("m")`
/// when no declaration binds it (those are [`require_imports`]).
pub(super) fn loaded_module(node: Node<'_>, src: Source<'_>) -> Option<Import> {
    let loads = is_dynamic_import(node, src) || (is_require(node, src) && !bound_require(node, src));
    let module = string_argument(node, src).filter(|_| loads)?;
    Some(Import { local: String::new(), fqn: module.clone(), module, pos: pos(node) })
}

pub(super) fn is_dynamic_import(node: Node<'_>, src: Source<'_>) -> bool {
    src.field(node, "function").is_some_and(|f| src.kind(f) == "import")
}

fn is_require(node: Node<'_>, src: Source<'_>) -> bool {
    src.kind(node) == "call_expression"
        && src
            .field(node, "function")
            .is_some_and(|f| src.kind(f) == "identifier" && src.text(f) == "require")
}

/// A call's first argument when it is a plain string: the module of `require("m")`.
fn string_argument(node: Node<'_>, src: Source<'_>) -> Option<String> {
    let first = src.field(node, "arguments")?.named_child(0)?;
    (src.kind(first) == "string").then(|| string(first, src)).flatten()
}

/// Whether the `require` call `node` is the value of a declaration that binds it as imports.
fn bound_require(node: Node<'_>, src: Source<'_>) -> bool {
    let mut top = node;
    while let Some(parent) = top.parent().filter(|p| src.kind(*p) == "member_expression") {
        top = parent;
    }
    top.parent()
        .filter(|p| src.kind(*p) == "variable_declarator")
        .is_some_and(|d| !require_imports(d, src).is_empty())
}

/// The imports a CommonJS declaration binds: `const X = require("m")` gives `X` →
/// `m.default` (`module.exports`, as a default import sees it); `const { A, B: C } =
/// require("m")` gives `A` → `m.A` and `C` → `m.B`; `const F = require("m").Foo` gives
/// `F` → `m.Foo`.
pub(super) fn require_imports(declarator: Node<'_>, src: Source<'_>) -> Vec<Import> {
    let (Some(name), Some(mut value)) = (src.field(declarator, "name"), src.field(declarator, "value"))
    else {
        return Vec::new();
    };
    let mut path = Vec::new();
    while src.kind(value) == "member_expression" {
        path.extend(src.field(value, "property").map(|p| src.text(p)));
        let Some(object) = src.field(value, "object") else { return Vec::new() };
        value = object;
    }
    let Some(module) = string_argument(value, src).filter(|_| is_require(value, src)) else {
        return Vec::new();
    };
    path.push(&module);
    path.reverse();
    let base = path.join(".");
    let at = pos(declarator);
    let import =
        |local: &str, fqn: String| Import { local: local.to_owned(), fqn, module: module.clone(), pos: at };
    match src.kind(name) {
        "identifier" if path.len() == 1 => vec![import(src.text(name), format!("{module}.default"))],
        "identifier" => vec![import(src.text(name), base)],
        "object_pattern" => {
            named_children(name)
                .filter_map(|entry| {
                    let (imported, local) = match src.kind(entry) {
                        "shorthand_property_identifier_pattern" => (src.text(entry).to_owned(), entry),
                        // `{ A = fallback }`
                        "object_assignment_pattern" => {
                            let left = src.field(entry, "left")?;
                            (src.text(left).to_owned(), left)
                        }
                        // `{ B: C }`, `{ B: C = fallback }`
                        "pair_pattern" => {
                            let value = src.field(entry, "value")?;
                            let local = src.field(value, "left").unwrap_or(value);
                            (key(src.field(entry, "key")?, src)?, local)
                        }
                        _ => return None,
                    };
                    (src.kind(local) == "identifier"
                        || src.kind(local) == "shorthand_property_identifier_pattern")
                        .then(|| import(src.text(local), format!("{base}.{imported}")))
                })
                .collect()
        }
        _ => Vec::new(),
    }
}
