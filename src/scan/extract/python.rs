//! Python: lowers the nodes `queries/python.scm` captures to facts.

use tree_sitter::Node;

use super::{clean_doc, named_children, plain_path, pos, unescape, Source};
use crate::scan::facts::{Binding, Call, Class, Expr, FileFacts, Function, Import, Param};

pub(super) fn lower(capture: &str, node: Node<'_>, src: Source<'_>, facts: &mut FileFacts) {
    match capture {
        "import" => imports(node, src, &mut facts.imports),
        "call" => facts.calls.push(call(node, src)),
        "assign" => assignment(node, src, facts),
        "function" => facts.functions.push(function(node, src)),
        "class" => facts.classes.push(class(node, src)),
        _ => {}
    }
}

fn imports(node: Node<'_>, src: Source<'_>, out: &mut Vec<Import>) {
    let at = pos(node);
    let mut cursor = node.walk();
    if src.kind(node) == "import_statement" {
        // `import a.b.c` binds `a`; `import a.b as c` binds `c` to `a.b`.
        for name in node.children_by_field_name("name", &mut cursor) {
            let (module, alias) = aliased(name, src);
            let local = alias.unwrap_or_else(|| module.split('.').next().unwrap_or(&module).to_owned());
            let fqn = if src.kind(name) == "aliased_import" { module.clone() } else { local.clone() };
            out.push(Import { local, fqn, module, pos: at });
        }
        return;
    }
    let Some(module) = src.field(node, "module_name") else { return };
    let module = src.text(module).to_owned();
    let names: Vec<Node<'_>> = node.children_by_field_name("name", &mut cursor).collect();
    if names.is_empty() {
        // `from m import *`: names from `m` may appear unqualified.
        out.push(Import { local: "*".into(), fqn: format!("{module}.*"), module, pos: at });
        return;
    }
    for name in names {
        let (imported, alias) = aliased(name, src);
        let local = alias.unwrap_or_else(|| imported.clone());
        let fqn = if module.ends_with('.') {
            format!("{module}{imported}")
        } else {
            format!("{module}.{imported}")
        };
        out.push(Import { local, fqn, module: module.clone(), pos: at });
    }
}

/// `a.b` or `a.b as c`: the dotted name and the alias.
fn aliased(node: Node<'_>, src: Source<'_>) -> (String, Option<String>) {
    if src.kind(node) == "aliased_import" {
        let name = src.field(node, "name").map(|n| src.text(n).to_owned()).unwrap_or_default();
        let alias = src.field(node, "alias").map(|n| src.text(n).to_owned());
        (name, alias)
    } else {
        (src.text(node).to_owned(), None)
    }
}

fn call(node: Node<'_>, src: Source<'_>) -> Call {
    let callee = src.field(node, "function").map_or(Expr::Other, |f| expr(f, src));
    let mut args = Vec::new();
    let mut kwargs = Vec::new();
    let mut spread = false;
    if let Some(list) = src.field(node, "arguments") {
        for arg in named_children(list) {
            match src.kind(arg) {
                "keyword_argument" => {
                    let name = src.field(arg, "name").map(|n| src.text(n).to_owned());
                    let value = src.field(arg, "value").map_or(Expr::Other, |v| expr(v, src));
                    if let Some(name) = name {
                        kwargs.push((name, value));
                    }
                }
                "list_splat" | "dictionary_splat" => spread = true,
                "comment" => {}
                _ => args.push(expr(arg, src)),
            }
        }
    }
    Call { spread, ..Call::new(callee, args, kwargs, pos(node), enclosing_function(node, src)) }
}

fn assignment(node: Node<'_>, src: Source<'_>, facts: &mut FileFacts) {
    let (Some(left), Some(right)) = (src.field(node, "left"), src.field(node, "right")) else {
        return;
    };
    if !matches!(src.kind(left), "identifier" | "attribute") {
        return;
    }
    let mut name = src.text(left).to_owned();
    let function = enclosing_function(node, src);
    if function.is_none() {
        // A class attribute (an enum member, a tool's `name = "…"`) is bound as `Class.attr`.
        if let Some(class) = enclosing_classes(node, src) {
            name = format!("{class}.{name}");
        }
    }
    facts.bindings.push(Binding { name, value: expr(right, src), function, pos: pos(node) });
}

fn function(node: Node<'_>, src: Source<'_>) -> Function {
    let short_name = src.field(node, "name").map(|n| src.text(n).to_owned()).unwrap_or_default();
    let name = match enclosing_function(node, src).or_else(|| enclosing_classes(node, src)) {
        Some(outer) => format!("{outer}.{short_name}"),
        None => short_name.clone(),
    };
    let params = src.field(node, "parameters").map(|p| params(p, src)).unwrap_or_default();
    let doc = src.field(node, "body").and_then(|body| docstring(body, src));
    Function { name, short_name, params, decorators: decorators(node, src), doc, pos: pos(node) }
}

fn params(node: Node<'_>, src: Source<'_>) -> Vec<Param> {
    let mut out = Vec::new();
    for param in named_children(node) {
        let text = |field: &str| src.field(param, field).map(|n| src.text(n).to_owned());
        let (name, ty, default) = match src.kind(param) {
            "identifier" => (Some(src.text(param).to_owned()), None, None),
            "typed_parameter" => {
                let name = param
                    .named_child(0)
                    .filter(|n| src.kind(*n) == "identifier")
                    .map(|n| src.text(n).to_owned());
                (name, text("type"), None)
            }
            "default_parameter" | "typed_default_parameter" => {
                (text("name"), text("type"), src.field(param, "value").map(|v| expr(v, src)))
            }
            _ => (None, None, None),
        };
        if let Some(name) = name.filter(|n| n != "self" && n != "cls") {
            out.push(Param { name, ty, default });
        }
    }
    out
}

fn class(node: Node<'_>, src: Source<'_>) -> Class {
    let short = src.field(node, "name").map(|n| src.text(n).to_owned()).unwrap_or_default();
    let name = match enclosing_classes(node, src) {
        Some(outer) => format!("{outer}.{short}"),
        None => short,
    };
    let mut bases = Vec::new();
    if let Some(list) = src.field(node, "superclasses") {
        bases = named_children(list)
            .filter(|n| src.kind(*n) != "keyword_argument")
            .map(|n| expr(n, src))
            .collect();
    }
    let doc = src.field(node, "body").and_then(|body| docstring(body, src));
    Class { name, bases, decorators: decorators(node, src), doc, pos: pos(node) }
}

/// The decorators of a decorated function or class: names or calls.
fn decorators(node: Node<'_>, src: Source<'_>) -> Vec<Expr> {
    let Some(parent) = src.parent(node).filter(|p| src.kind(*p) == "decorated_definition") else {
        return Vec::new();
    };
    named_children(parent)
        .filter(|n| src.kind(*n) == "decorator")
        .filter_map(|d| d.named_child(0))
        .map(|e| expr(e, src))
        .collect()
}

fn docstring(body: Node<'_>, src: Source<'_>) -> Option<String> {
    let first = body.named_child(0).filter(|n| src.kind(*n) == "expression_statement")?;
    match expr(first.named_child(0)?, src) {
        Expr::Str(doc) => Some(clean_doc(&doc)),
        _ => None,
    }
}

/// The qualified name of the innermost function around `node`: `Class.method`, `outer.inner`.
fn enclosing_function(node: Node<'_>, src: Source<'_>) -> Option<String> {
    let mut names = Vec::new();
    let mut in_function = false;
    for n in src.ancestors(node) {
        let kind = src.kind(n);
        if matches!(kind, "function_definition" | "class_definition") {
            in_function |= kind == "function_definition";
            if let Some(name) = src.field(n, "name") {
                names.push(src.text(name));
            }
        }
    }
    in_function.then(|| names.iter().rev().copied().collect::<Vec<_>>().join("."))
}

/// The qualified name of the classes around `node` (outside any function).
fn enclosing_classes(node: Node<'_>, src: Source<'_>) -> Option<String> {
    let mut names = Vec::new();
    for n in src.ancestors(node) {
        match src.kind(n) {
            "class_definition" => names.extend(src.field(n, "name").map(|name| src.text(name))),
            "function_definition" => return None,
            _ => {}
        }
    }
    (!names.is_empty()).then(|| names.iter().rev().copied().collect::<Vec<_>>().join("."))
}

/// Lowers an expression as far as the scanner follows one.
fn expr(node: Node<'_>, src: Source<'_>) -> Expr {
    match src.kind(node) {
        "string" => string(node, src).map_or(Expr::Other, Expr::Str),
        "concatenated_string" => {
            let parts: Option<Vec<String>> = named_children(node).map(|s| string(s, src)).collect();
            parts.map_or(Expr::Other, |p| Expr::Str(p.concat()))
        }
        "integer" | "float" => Expr::Num(src.text(node).to_owned()),
        "true" => Expr::Bool(true),
        "false" => Expr::Bool(false),
        "identifier" => Expr::Name(src.text(node).to_owned()),
        "attribute" => {
            if let Some(path) = plain_path(src.text(node)) {
                return path;
            }
            let object = src.field(node, "object").map_or(Expr::Other, |o| expr(o, src));
            let attr = src.field(node, "attribute").map(|a| src.text(a)).unwrap_or_default();
            object.member(attr)
        }
        "call" => Expr::Call(Box::new(call(node, src))),
        "subscript" => {
            let value = src.field(node, "value").map_or(Expr::Other, |v| expr(v, src));
            let index = src.field(node, "subscript").map_or(Expr::Other, |s| expr(s, src));
            Expr::Subscript(Box::new(value), Box::new(index))
        }
        "dictionary" => {
            let pairs = named_children(node)
                .filter(|p| src.kind(*p) == "pair")
                .filter_map(|p| {
                    let key = match expr(src.field(p, "key")?, src) {
                        Expr::Str(k) | Expr::Name(k) => k,
                        _ => return None,
                    };
                    Some((key, expr(src.field(p, "value")?, src)))
                })
                .collect();
            Expr::Object(pairs)
        }
        "list" | "tuple" | "set" => Expr::List(
            named_children(node).filter(|n| src.kind(*n) != "comment").map(|n| expr(n, src)).collect(),
        ),
        "boolean_operator" if src.field(node, "operator").is_some_and(|o| src.kind(o) == "or") => {
            fallback(node, src)
        }
        // `a if cond else b`: the first alternative, falling back to the second.
        "conditional_expression" => match (node.named_child(0), node.named_child(2)) {
            (Some(a), Some(b)) => Expr::Fallback(Box::new(expr(a, src)), Box::new(expr(b, src))),
            _ => Expr::Other,
        },
        "parenthesized_expression" | "await" => node.named_child(0).map_or(Expr::Other, |n| expr(n, src)),
        "lambda" => Expr::Lambda,
        _ => Expr::Other,
    }
}

fn fallback(node: Node<'_>, src: Source<'_>) -> Expr {
    match (src.field(node, "left"), src.field(node, "right")) {
        (Some(a), Some(b)) => Expr::Fallback(Box::new(expr(a, src)), Box::new(expr(b, src))),
        _ => Expr::Other,
    }
}

/// A string literal's value; `None` for an f-string with holes.
fn string(node: Node<'_>, src: Source<'_>) -> Option<String> {
    let mut out = String::new();
    for part in named_children(node) {
        match src.kind(part) {
            "string_content" => out.push_str(src.text(part)),
            "escape_sequence" => out.push_str(unescape(src.text(part))),
            "interpolation" => return None,
            _ => {}
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use crate::scan::extract::extract;
    use crate::scan::facts::{Expr, FileFacts};
    use crate::scan::report::Language;

    fn facts(source: &str) -> FileFacts {
        extract(Language::Python, source).unwrap()
    }

    #[test]
    fn imports_bind_local_names_to_qualified_ones() {
        let f = facts("import os\nimport a.b.c\nimport x.y as z\nfrom m.n import A, B as C\nfrom . import util\nfrom p import *\n");
        let pairs: Vec<(&str, &str)> = f.imports.iter().map(|i| (i.local.as_str(), i.fqn.as_str())).collect();
        assert_eq!(
            pairs,
            [
                ("os", "os"),
                ("a", "a"),
                ("z", "x.y"),
                ("A", "m.n.A"),
                ("C", "m.n.B"),
                ("util", ".util"),
                ("*", "p.*")
            ]
        );
        assert_eq!(f.imports[1].module, "a.b.c");
    }

    #[test]
    fn calls_keep_callee_arguments_and_enclosing_function() {
        let f = facts(
            "class Bot:\n    def run(self, q):\n        return self.client.chat.completions.create(model=MODEL, messages=[q])\n",
        );
        let call = &f.calls[0];
        assert_eq!(call.callee, Expr::Name("self.client.chat.completions.create".into()));
        assert_eq!(call.kwargs[0], ("model".into(), Expr::Name("MODEL".into())));
        assert_eq!(call.function.as_deref(), Some("Bot.run"));
        assert_eq!((call.pos.line, call.pos.column), (3, 16));
        assert_eq!(f.functions[0].name, "Bot.run");
        assert_eq!(f.functions[0].params[0].name, "q");
    }

    #[test]
    fn comments_and_strings_hold_no_calls() {
        let f = facts("# client.chat.completions.create(model='gpt-4')\nx = \"OpenAI(model='gpt-4')\"\n");
        assert!(f.calls.is_empty());
    }

    #[test]
    fn bindings_cover_constants_class_attributes_and_env_fallbacks() {
        let f = facts(
            "MODEL = os.getenv('M', 'gpt-4o') or 'x'\nclass Models(Enum):\n    FAST = 'gpt-4o-mini'\n\
             class T(BaseTool):\n    name: str = \"search\"\n",
        );
        let names: Vec<&str> = f.bindings.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["MODEL", "Models.FAST", "T.name"]);
        assert!(matches!(&f.bindings[0].value, Expr::Fallback(a, _) if matches!(**a, Expr::Call(_))));
        assert_eq!(f.bindings[1].value, Expr::Str("gpt-4o-mini".into()));
    }

    #[test]
    fn decorators_docstrings_and_params() {
        let f = facts(
            "@tool(\"web_search\")\ndef search(query: str, limit: int = 5) -> str:\n    \"\"\"Searches the web.\n\n    Returns text.\n    \"\"\"\n",
        );
        let func = &f.functions[0];
        assert!(matches!(&func.decorators[0], Expr::Call(c) if c.callee == Expr::Name("tool".into())));
        assert_eq!(func.doc.as_deref(), Some("Searches the web.\n\nReturns text."));
        assert_eq!(func.params[0].ty.as_deref(), Some("str"));
        assert_eq!(func.params[1].default, Some(Expr::Num("5".into())));
    }

    #[test]
    fn syntax_errors_are_counted_not_fatal() {
        let f = facts("def broken(:\n    pass\nclient.chat.completions.create(model='gpt-4')\n");
        assert!(f.syntax_errors > 0);
        assert_eq!(f.first_error.unwrap().line, 1);
    }
}
