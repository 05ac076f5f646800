//! Rust: lowers the nodes `queries/rust.scm` captures to facts. Paths are written with
//! `.` (`std::env::var` → `std.env.var`) and generic arguments are dropped, so
//! `Vec::<T>::new` and `Vec::new` name the same thing.

mod attrs;
mod literal;

use tree_sitter::Node;

use literal::{converted_literal, string};

use super::{named_children, pos, Source};
use crate::scan::facts::{Binding, Call, Class, Expr, FileFacts, Function, Import, Param};

pub(super) fn lower(capture: &str, node: Node<'_>, src: Source<'_>, facts: &mut FileFacts) {
    match capture {
        "import" => imports(node, src, &mut facts.imports),
        // `"gpt-4o".into()` lowers to the literal itself, so it is no call site either.
        "call" if converted_literal(node, src).is_none() => facts.calls.push(call(node, src)),
        "construct" => facts.calls.push(construction(node, src)),
        "bind" => binding(node, src, facts),
        "function" => facts.functions.push(function(node, src)),
        "class" => facts.classes.push(class(node, src)),
        _ => {}
    }
}

fn imports(node: Node<'_>, src: Source<'_>, out: &mut Vec<Import>) {
    let at = pos(node);
    let text = |field: &str| src.field(node, field).map(|n| src.text(n).to_owned());
    if src.kind(node) == "extern_crate_declaration" {
        let Some(name) = text("name") else { return };
        let local = text("alias").unwrap_or_else(|| name.clone());
        out.push(Import { local, fqn: name.clone(), module: name, pos: at });
        return;
    }
    let mut found = Vec::new();
    if let Some(tree) = src.field(node, "argument") {
        use_tree(tree, "", src, &mut found);
    }
    for (local, fqn) in found {
        // The module is the path as written; a glob's is the module it empties.
        let module = fqn.strip_suffix(".*").unwrap_or(&fqn).to_owned();
        out.push(Import { local, fqn, module, pos: at });
    }
}

/// Flattens one use tree under the path `prefix` into (local name, dotted path) pairs:
/// `a::{b::{C, D as E}, self}` gives C → a.b.C, E → a.b.D and a → a.
fn use_tree(node: Node<'_>, prefix: &str, src: Source<'_>, out: &mut Vec<(String, String)>) {
    let under = |path: Node<'_>| join(prefix, &self::path(path, src));
    match src.kind(node) {
        "use_as_clause" => {
            if let (Some(path), Some(alias)) = (src.field(node, "path"), src.field(node, "alias")) {
                out.push((src.text(alias).to_owned(), under(path)));
            }
        }
        "use_wildcard" => {
            let path = node.named_child(0).map_or_else(|| prefix.to_owned(), under);
            out.push(("*".into(), join(&path, "*")));
        }
        "scoped_use_list" => {
            let path = src.field(node, "path").map_or_else(|| prefix.to_owned(), under);
            if let Some(list) = src.field(node, "list") {
                use_tree(list, &path, src, out);
            }
        }
        "use_list" => {
            for item in named_children(node) {
                use_tree(item, prefix, src, out);
            }
        }
        "identifier" | "scoped_identifier" | "self" | "crate" | "super" => {
            let path = under(node);
            // `self` in a group names the group's own module.
            let path = path.strip_suffix(".self").map_or(path.clone(), str::to_owned);
            let local = path.rsplit('.').next().unwrap_or(&path).to_owned();
            out.push((local, path));
        }
        _ => {}
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

/// A path or type as a dotted name without generic arguments or references:
/// `a::b::C<T>` → `a.b.C`, `&mut Foo` → `Foo`.
fn path(node: Node<'_>, src: Source<'_>) -> String {
    let field = |name: &str| src.field(node, name);
    match src.kind(node) {
        "scoped_identifier" | "scoped_type_identifier" => {
            let name = field("name").map(|n| src.text(n)).unwrap_or_default();
            match field("path") {
                Some(prefix) => join(&path(prefix, src), name),
                None => name.to_owned(),
            }
        }
        "generic_type" | "generic_type_with_turbofish" | "reference_type" | "pointer_type" => {
            field("type").map(|t| path(t, src)).unwrap_or_default()
        }
        "generic_function" => field("function").map(|f| path(f, src)).unwrap_or_default(),
        _ => src.text(node).replace("::", "."),
    }
}

fn call(node: Node<'_>, src: Source<'_>) -> Call {
    let callee = src.field(node, "function").map_or(Expr::Other, |f| expr(f, src));
    let args = src.field(node, "arguments").map(|a| elements(a, src)).unwrap_or_default();
    Call::new(callee, args, Vec::new(), pos(node), enclosing_function(node, src))
}

/// A struct literal `T { field: value, shorthand, ..base }` is a construction of `T`
/// with its fields as keyword arguments; the base (`..Default::default()`) is left out.
fn construction(node: Node<'_>, src: Source<'_>) -> Call {
    let callee = src.field(node, "name").map_or(Expr::Other, |n| Expr::Name(path(n, src)));
    let mut kwargs = Vec::new();
    if let Some(body) = src.field(node, "body") {
        for field in named_children(body) {
            match src.kind(field) {
                "field_initializer" => {
                    let name = src.field(field, "field").map(|n| src.text(n).to_owned());
                    let value = src.field(field, "value").map_or(Expr::Other, |v| expr(v, src));
                    kwargs.extend(name.map(|name| (name, value)));
                }
                "shorthand_field_initializer" => {
                    let name = named_children(field).find(|n| src.kind(*n) == "identifier");
                    kwargs.extend(name.map(|n| (src.text(n).to_owned(), Expr::Name(src.text(n).to_owned()))));
                }
                _ => {}
            }
        }
    }
    Call::new(callee, Vec::new(), kwargs, pos(node), enclosing_function(node, src))
}

/// `let name = value;` (a plain identifier pattern), `const`/`static NAME: T = value;`.
/// Associated consts outside any fn are bound as `Type.NAME`.
fn binding(node: Node<'_>, src: Source<'_>, facts: &mut FileFacts) {
    let name_field = if src.kind(node) == "let_declaration" { "pattern" } else { "name" };
    let Some(name) = src.field(node, name_field).filter(|n| src.kind(*n) == "identifier") else {
        return;
    };
    let Some(value) = src.field(node, "value") else { return };
    let (scope, in_fn) = scope(node, src);
    let name = if in_fn { src.text(name).to_owned() } else { join(&scope.join("."), src.text(name)) };
    let function = in_fn.then(|| scope.join("."));
    facts.bindings.push(Binding { name, value: expr(value, src), function, pos: pos(node) });
}

fn function(node: Node<'_>, src: Source<'_>) -> Function {
    let short_name = src.field(node, "name").map(|n| src.text(n).to_owned()).unwrap_or_default();
    let name = join(&scope(node, src).0.join("."), &short_name);
    let params = src.field(node, "parameters").map(|p| params(p, src)).unwrap_or_default();
    let (decorators, doc) = attrs::outer(node, src);
    Function { name, short_name, params, decorators, doc, pos: pos(node) }
}

fn params(node: Node<'_>, src: Source<'_>) -> Vec<Param> {
    named_children(node)
        .filter(|p| src.kind(*p) == "parameter")
        .filter_map(|p| {
            let pattern = src.field(p, "pattern").filter(|n| src.kind(*n) != "self")?;
            let ty = src.field(p, "type").map(|t| src.text(t).to_owned());
            Some(Param { name: src.text(pattern).to_owned(), ty, default: None })
        })
        .collect()
}

/// An `impl` block is a class named by its self type, with the trait it implements as
/// its base; a `struct` or `enum` is a class by its own name.
fn class(node: Node<'_>, src: Source<'_>) -> Class {
    let field = |name: &str| src.field(node, name);
    let (decorators, doc) = attrs::outer(node, src);
    let (name, bases) = if src.kind(node) == "impl_item" {
        let bases = field("trait").map(|t| Expr::Name(path(t, src))).into_iter().collect();
        (field("type").map(|t| path(t, src)).unwrap_or_default(), bases)
    } else {
        (field("name").map(|n| src.text(n).to_owned()).unwrap_or_default(), Vec::new())
    };
    Class { name, bases, decorators, doc, pos: pos(node) }
}

/// The names around `node`, outermost first — enclosing fns, `impl` self types and
/// traits — and whether any of them is a fn.
fn scope(node: Node<'_>, src: Source<'_>) -> (Vec<String>, bool) {
    let mut names = Vec::new();
    let mut in_fn = false;
    for n in src.ancestors(node) {
        match src.kind(n) {
            "function_item" | "trait_item" => {
                in_fn |= src.kind(n) == "function_item";
                names.extend(src.field(n, "name").map(|name| src.text(name).to_owned()));
            }
            "impl_item" => names.extend(src.field(n, "type").map(|t| path(t, src))),
            _ => {}
        }
    }
    names.reverse();
    (names, in_fn)
}

/// The qualified name of the innermost fn around `node`: `Type.method`, `outer.inner`.
fn enclosing_function(node: Node<'_>, src: Source<'_>) -> Option<String> {
    let (names, in_fn) = scope(node, src);
    in_fn.then(|| names.join("."))
}

/// Lowers an expression as far as the scanner follows one.
fn expr(node: Node<'_>, src: Source<'_>) -> Expr {
    let inner = |field: &str| src.field(node, field).map_or(Expr::Other, |n| expr(n, src));
    match src.kind(node) {
        "string_literal" => Expr::Str(string(node, src)),
        "raw_string_literal" => {
            Expr::Str(node.named_child(0).map(|c| src.text(c)).unwrap_or_default().into())
        }
        "integer_literal" | "float_literal" => Expr::Num(src.text(node).to_owned()),
        "boolean_literal" => Expr::Bool(src.text(node) == "true"),
        "identifier" | "self" | "scoped_identifier" => Expr::Name(path(node, src)),
        "generic_function" => inner("function"),
        "field_expression" => {
            let field = src.field(node, "field").map(|f| src.text(f)).unwrap_or_default();
            inner("value").member(field)
        }
        "call_expression" => match converted_literal(node, src) {
            Some(literal) => Expr::Str(literal),
            None => Expr::Call(Box::new(call(node, src))),
        },
        "struct_expression" => Expr::Call(Box::new(construction(node, src))),
        "index_expression" => match (node.named_child(0), node.named_child(1)) {
            (Some(value), Some(index)) => {
                Expr::Subscript(Box::new(expr(value, src)), Box::new(expr(index, src)))
            }
            _ => Expr::Other,
        },
        "array_expression" if src.field(node, "length").is_none() => Expr::List(elements(node, src)),
        "tuple_expression" => Expr::List(elements(node, src)),
        "macro_invocation" => attrs::vec_macro(node, src),
        "reference_expression" => inner("value"),
        "type_cast_expression" => inner("value"),
        "try_expression" | "await_expression" | "parenthesized_expression" => {
            node.named_child(0).map_or(Expr::Other, |n| expr(n, src))
        }
        "unary_expression" => {
            let operand = node.named_child(0).map_or(Expr::Other, |n| expr(n, src));
            match (node.child(0).map(|op| src.kind(op)), operand) {
                (Some("*"), operand) => operand,
                (Some("-"), Expr::Num(n)) => Expr::Num(format!("-{n}")),
                _ => Expr::Other,
            }
        }
        "closure_expression" => Expr::Lambda,
        _ => Expr::Other,
    }
}

/// The lowered elements of an argument list, array or tuple, without comments or attributes.
fn elements(node: Node<'_>, src: Source<'_>) -> Vec<Expr> {
    named_children(node)
        .filter(|n| !matches!(src.kind(*n), "line_comment" | "block_comment" | "attribute_item"))
        .map(|n| expr(n, src))
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::scan::extract::extract;
    use crate::scan::facts::{Call, Expr, FileFacts};
    use crate::scan::report::Language;

    fn facts(source: &str) -> FileFacts {
        extract(Language::Rust, source).unwrap()
    }

    fn name(n: &str) -> Expr {
        Expr::Name(n.into())
    }

    fn str(s: &str) -> Expr {
        Expr::Str(s.into())
    }

    /// The call fact whose callee is `callee`.
    fn call<'f>(f: &'f FileFacts, callee: &Expr) -> &'f Call {
        f.calls.iter().find(|c| &c.callee == callee).unwrap_or_else(|| panic!("no call of {callee:?}"))
    }

    #[test]
    fn every_use_form_binds_local_names_to_dotted_paths() {
        let f = facts(
            "use a::b::C;\nuse a::b::{C2, D as E, self};\nuse a::b2;\nuse a::b3::*;\n\
             use a::{b::{F, G}, e};\nextern crate x;\nextern crate y as z;\npub use crate::m::N;\n",
        );
        let pairs: Vec<(&str, &str)> = f.imports.iter().map(|i| (i.local.as_str(), i.fqn.as_str())).collect();
        assert_eq!(
            pairs,
            [
                ("C", "a.b.C"),
                ("C2", "a.b.C2"),
                ("E", "a.b.D"),
                ("b", "a.b"),
                ("b2", "a.b2"),
                ("*", "a.b3.*"),
                ("F", "a.b.F"),
                ("G", "a.b.G"),
                ("e", "a.e"),
                ("x", "x"),
                ("z", "y"),
                ("N", "crate.m.N"),
            ]
        );
        assert_eq!(f.imports[0].module, "a.b.C");
        assert_eq!(f.imports[5].module, "a.b3");
    }

    #[test]
    fn builder_chains_are_calls_on_calls() {
        let f = facts("fn main() {\n    let args = Args::default().model(\"gpt-4o\").build();\n}\n");
        let default = Expr::Call(Box::new(call(&f, &name("Args.default")).clone()));
        let model = call(&f, &Expr::Member(Box::new(default), "model".into()));
        assert_eq!(model.args, [str("gpt-4o")]);
        assert_eq!(model.function.as_deref(), Some("main"));
        let build = Expr::Member(Box::new(Expr::Call(Box::new(model.clone()))), "build".into());
        assert_eq!(f.calls.len(), 3);
        assert!(matches!(&f.bindings[0].value, Expr::Call(c) if c.callee == build));
    }

    #[test]
    fn paths_and_methods_on_names_are_dotted_and_generics_dropped() {
        let f = facts(
            "impl Bot {\n    async fn run(&self) {\n        let v = Vec::<u8>::new();\n        \
             self.client.chat(&req).await?;\n        println!(\"{}\", x.y());\n    }\n}\n\
             impl<T> Wrapper<T> {\n    fn get(&self) {}\n}\n",
        );
        let callees: Vec<&Expr> = f.calls.iter().map(|c| &c.callee).collect();
        assert_eq!(callees, [&name("Vec.new"), &name("self.client.chat")]);
        assert_eq!(f.calls[1].args, [name("req")]);
        assert_eq!(f.calls[1].function.as_deref(), Some("Bot.run"));
        assert_eq!(f.functions[1].name, "Wrapper.get");
    }

    #[test]
    fn struct_literals_construct_with_fields_as_kwargs() {
        let f = facts(
            "fn f(model: String) {\n    let req = CreateChatCompletionRequest {\n        \
             model: \"gpt-4o\".into(),\n        temperature: 0.2,\n        stream,\n        \
             ..Default::default()\n    };\n}\n",
        );
        let built = call(&f, &name("CreateChatCompletionRequest"));
        let kwargs = [
            ("model".into(), str("gpt-4o")),
            ("temperature".into(), Expr::Num("0.2".into())),
            ("stream".into(), name("stream")),
        ];
        assert_eq!(built.kwargs, kwargs);
        assert_eq!(f.bindings[0].value, Expr::Call(Box::new(built.clone())));
        // `..Default::default()` is its own call; `"gpt-4o".into()` is the literal, no call.
        assert_eq!(f.calls.len(), 2);
        call(&f, &name("Default.default"));
    }

    #[test]
    fn literals_survive_conversions_and_env_fallbacks_lower_to_calls() {
        let f = facts(
            "const MODEL: &str = \"gpt-4o\";\nstatic RAW: &str = r#\"a \"b\"\"#;\nfn main() {\n    \
             let mut m = std::env::var(\"MODEL\").unwrap_or(\"llama3\".into());\n    \
             let s = String::from(\"x\\n\");\n    let o = \"y\".to_owned();\n    \
             let v = vec![\"a\", 1];\n    let (a, b) = (1, 2);\n}\n",
        );
        let names: Vec<&str> = f.bindings.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["MODEL", "RAW", "m", "s", "o", "v"]);
        assert_eq!(f.bindings[0].value, str("gpt-4o"));
        assert_eq!(f.bindings[0].function, None);
        assert_eq!(f.bindings[1].value, str("a \"b\""));
        let Expr::Call(fallback) = &f.bindings[2].value else { panic!("{:?}", f.bindings[2].value) };
        let Expr::Member(var, method) = &fallback.callee else { panic!("{:?}", fallback.callee) };
        assert!(
            matches!(&**var, Expr::Call(c) if c.callee == name("std.env.var") && c.args == [str("MODEL")])
        );
        assert_eq!(method, "unwrap_or");
        assert_eq!(fallback.args, [str("llama3")]);
        assert_eq!(f.bindings[2].function.as_deref(), Some("main"));
        assert_eq!(f.bindings[3].value, str("x\n"));
        assert_eq!(f.bindings[4].value, str("y"));
        assert_eq!(f.bindings[5].value, Expr::List(vec![str("a"), Expr::Num("1".into())]));
    }

    #[test]
    fn tool_methods_carry_attribute_calls_docs_and_params() {
        let f = facts(
            "/// A calculator.\n#[doc = \"Adds.\"]\n#[derive(Debug, Clone)]\npub struct Calculator;\n\n#[tool_router]\n\
             impl Calculator {\n    const NAME: &str = \"calc\";\n\n    /// Adds two numbers.\n    \
             /// Returns the sum.\n    #[tool(description = \"Adds\")]\n    \
             fn add(&self, a: i32, mut b: i32) -> i32 {\n        fn helper() {}\n        a + b\n    }\n\n    \
             #[rmcp::tool(name = \"sub\", \"x\", r = -1)]\n    fn sub(&self) {}\n}\n\n\
             #[tool_handler]\nimpl rmcp::ServerHandler for Calculator {}\n",
        );
        let add = f.functions.iter().find(|func| func.name == "Calculator.add").unwrap();
        let Expr::Call(tool) = &add.decorators[0] else { panic!("{:?}", add.decorators) };
        assert_eq!(tool.callee, name("tool"));
        assert_eq!(tool.kwargs, [("description".into(), str("Adds"))]);
        assert_eq!(add.doc.as_deref(), Some("Adds two numbers.\nReturns the sum."));
        let params: Vec<(&str, Option<&str>)> =
            add.params.iter().map(|p| (p.name.as_str(), p.ty.as_deref())).collect();
        assert_eq!(params, [("a", Some("i32")), ("b", Some("i32"))]);
        assert!(f.functions.iter().any(|func| func.name == "Calculator.add.helper"));
        let sub = f.functions.iter().find(|func| func.name == "Calculator.sub").unwrap();
        let Expr::Call(tool) = &sub.decorators[0] else { panic!("{:?}", sub.decorators) };
        assert_eq!(tool.callee, name("rmcp.tool"));
        assert_eq!(tool.args, [str("x")]);
        assert_eq!(tool.kwargs, [("name".into(), str("sub")), ("r".into(), Expr::Num("-1".into()))]);
        assert_eq!(f.bindings[0].name, "Calculator.NAME");

        let classes: Vec<(&str, &[Expr], &[Expr])> =
            f.classes.iter().map(|c| (c.name.as_str(), &c.bases[..], &c.decorators[..])).collect();
        assert_eq!(classes[0].0, "Calculator");
        let derive = |c: &Call| c.callee == name("derive") && c.args == [name("Debug"), name("Clone")];
        assert!(matches!(&classes[0].2[0], Expr::Call(c) if derive(c)));
        assert_eq!(f.classes[0].doc.as_deref(), Some("A calculator.\nAdds."));
        assert_eq!(classes[1], ("Calculator", &[][..], &[name("tool_router")][..]));
        assert_eq!(
            classes[2],
            ("Calculator", &[name("rmcp.ServerHandler")][..], &[name("tool_handler")][..])
        );
    }

    #[test]
    fn comments_and_macros_hold_no_calls() {
        let f =
            facts("// client.chat(\"gpt-4\")\n/* x.y() */\nfn f() { println!(\"{}\", client.chat()); }\n");
        assert!(f.calls.is_empty());
    }

    #[test]
    fn syntax_errors_are_counted_not_fatal() {
        let f = facts("fn ok() {}\nfn broken( {\nlet x = ;\n");
        assert!(f.syntax_errors > 0);
        assert_eq!(f.first_error.unwrap().line, 2);
        assert_eq!(f.functions[0].name, "ok");
    }
}
