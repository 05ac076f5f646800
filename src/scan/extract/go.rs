//! Go: lowers the nodes `queries/go.scm` captures to facts. A composite literal of a
//! named type (`openai.ChatCompletionRequest{Model: …}`) is a construction of that type;
//! methods are qualified by their receiver type (`Client.Chat`).

mod composite;

use tree_sitter::Node;

use composite::{composite, construction};

use super::clean_doc;
use super::{named_children, pos, Source};
use crate::scan::facts::{Binding, Call, Class, Expr, FileFacts, Function, Import, Param};

pub(super) fn lower(capture: &str, node: Node<'_>, src: Source<'_>, facts: &mut FileFacts) {
    match capture {
        "import" => facts.imports.extend(import(node, src)),
        "call" => facts.calls.push(call(node, src)),
        "construct" => facts.calls.extend(construction(node, src)),
        "bind" => bindings(node, src, facts),
        "function" => facts.functions.push(function(node, src)),
        "class" => facts.classes.push(class(node, src)),
        _ => {}
    }
}

/// `import "a/b"` binds the package name; `import x "a/b"` binds `x`; `import _ "a/b"` is
/// a dependency only (local ""); `import . "a/b"` brings its names in unqualified.
fn import(node: Node<'_>, src: Source<'_>) -> Option<Import> {
    let path = src.field(node, "path").and_then(|p| string(p, src))?;
    let alias = src.field(node, "name");
    let (local, fqn) = match alias.map(|a| src.kind(a)) {
        Some("dot") => ("*".to_owned(), format!("{path}.*")),
        Some("blank_identifier") => (String::new(), path.clone()),
        Some(_) => (alias.map(|a| src.text(a).to_owned()).unwrap_or_default(), path.clone()),
        None => (package_name(&path), path.clone()),
    };
    Some(Import { local, fqn, module: path, pos: pos(node) })
}

/// The name an unaliased import goes by, as Go's own tools assume it when they cannot
/// read the package: the last path element (the one before it when that is a major
/// version, `v2`), without a `go-` prefix or `-go` suffix, cut at the first character
/// an identifier cannot hold: `github.com/sashabaranov/go-openai` → `openai`,
/// `github.com/anthropics/anthropic-sdk-go` → `anthropic`, `gopkg.in/yaml.v3` → `yaml`.
fn package_name(path: &str) -> String {
    let mut elements = path.rsplit('/');
    let last = elements.next().unwrap_or(path);
    let is_version =
        last.strip_prefix('v').is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    let base = match elements.next() {
        Some(before) if is_version => before,
        _ => last,
    };
    let base = base.strip_prefix("go-").unwrap_or(base);
    let base = base.strip_suffix("-go").unwrap_or(base);
    base.split(|c: char| !(c.is_alphanumeric() || c == '_')).next().unwrap_or_default().to_owned()
}

fn call(node: Node<'_>, src: Source<'_>) -> Call {
    let field = |name: &str| src.field(node, name);
    if src.kind(node) == "type_conversion_expression" {
        // `F[T](x)` reads as a conversion to the generic type `F[T]`; Go's syntax cannot
        // tell the two apart, and the scanner follows it as the call of `F`.
        let callee = field("type").map_or(Expr::Other, |t| Expr::Name(type_name(t, src)));
        let args = field("operand").map(|o| expr(o, src)).into_iter().collect();
        let function = enclosing_function(node, src);
        return Call::new(callee, args, Vec::new(), pos(node), function);
    }
    let callee = match field("function") {
        // `F[T](…)` instantiates a generic function; the type arguments are dropped. (A
        // call through an indexed slice of funcs, `handlers[i](…)`, reads the same.)
        Some(f) if src.kind(f) == "index_expression" => {
            src.field(f, "operand").map_or(Expr::Other, |o| expr(o, src))
        }
        Some(f) if src.kind(f) == "type_instantiation_expression" => {
            src.field(f, "type").map_or(Expr::Other, |t| Expr::Name(type_name(t, src)))
        }
        Some(f) => expr(f, src),
        None => Expr::Other,
    };
    let mut args = Vec::new();
    if let Some(list) = field("arguments") {
        for arg in named_children(list).filter(|a| src.kind(*a) != "comment") {
            // `xs...` spreads xs.
            let arg =
                if src.kind(arg) == "variadic_argument" { arg.named_child(0).unwrap_or(arg) } else { arg };
            args.push(expr(arg, src));
        }
    }
    Call::new(callee, args, Vec::new(), pos(node), enclosing_function(node, src))
}

/// `x := v`, `x = v`, `s.f = v`, `var x T = v`, `const X = v`. Several names bind only
/// when each has its own value: in `a, b := f()` the values are f's results, which the
/// scanner does not follow. Specs without a value (`iota` continuations) bind nothing.
fn bindings(node: Node<'_>, src: Source<'_>, facts: &mut FileFacts) {
    let list = |field: &str| -> Vec<Node<'_>> {
        let Some(list) = src.field(node, field) else { return Vec::new() };
        named_children(list).filter(|n| src.kind(*n) != "comment").collect()
    };
    let (names, values) = match src.kind(node) {
        "assignment_statement" if src.field(node, "operator").is_some_and(|o| src.kind(o) != "=") => {
            return;
        }
        "short_var_declaration" | "assignment_statement" => (list("left"), list("right")),
        _ => {
            let mut cursor = node.walk();
            let names =
                node.children_by_field_name("name", &mut cursor).filter(|n| src.kind(*n) == "identifier");
            (names.collect(), list("value"))
        }
    };
    let function = enclosing_function(node, src);
    // `client, err := genai.NewClient(ctx, cfg)`: Go returns the value first and the
    // error last, so the first name is what the call made.
    let names = match (names.len(), values.as_slice()) {
        (n, [value]) if n > 1 && src.kind(*value) == "call_expression" => names[..1].to_vec(),
        (n, _) if n == values.len() => names,
        _ => return,
    };
    for (name, value) in names.into_iter().zip(values) {
        let Expr::Name(name) = expr(name, src) else { continue };
        if name != "_" {
            let value = expr(value, src);
            facts.bindings.push(Binding { name, value, function: function.clone(), pos: pos(node) });
        }
    }
}

fn function(node: Node<'_>, src: Source<'_>) -> Function {
    let short_name = src.field(node, "name").map(|n| src.text(n).to_owned()).unwrap_or_default();
    let params = src.field(node, "parameters").map(|p| params(p, src)).unwrap_or_default();
    let doc = doc(node, src);
    Function {
        name: qualified_name(node, src),
        short_name,
        params,
        decorators: Vec::new(),
        doc,
        pos: pos(node),
    }
}

/// `a, b string` declares two params of type `string`; `xs ...int` one of type `...int`.
fn params(list: Node<'_>, src: Source<'_>) -> Vec<Param> {
    let mut out = Vec::new();
    for decl in named_children(list) {
        let variadic = match src.kind(decl) {
            "parameter_declaration" => "",
            "variadic_parameter_declaration" => "...",
            _ => continue,
        };
        let ty = src.field(decl, "type").map(|t| format!("{variadic}{}", src.text(t)));
        let mut names = decl.walk();
        for name in decl.children_by_field_name("name", &mut names) {
            out.push(Param { name: src.text(name).to_owned(), ty: ty.clone(), default: None });
        }
    }
    out
}

/// `Func`, or `Type.Method` with the receiver's type (without `*` or type parameters).
fn qualified_name(decl: Node<'_>, src: Source<'_>) -> String {
    let name = src.field(decl, "name").map(|n| src.text(n)).unwrap_or_default();
    let receiver = src.field(decl, "receiver").and_then(|list| {
        let param = named_children(list).find(|p| src.kind(*p) == "parameter_declaration");
        param.and_then(|p| src.field(p, "type"))
    });
    match receiver {
        Some(ty) => format!("{}.{name}", type_name(ty, src)),
        None => name.to_owned(),
    }
}

/// The function or method declaration around `node`; `None` at package level.
fn enclosing_function(node: Node<'_>, src: Source<'_>) -> Option<String> {
    src.ancestors(node)
        .find(|n| matches!(src.kind(*n), "function_declaration" | "method_declaration"))
        .map(|n| qualified_name(n, src))
}

/// A type as a dotted name without pointers or type arguments: `*pkg.T[K]` → `pkg.T`.
fn type_name(node: Node<'_>, src: Source<'_>) -> String {
    match src.kind(node) {
        "pointer_type" => node.named_child(0).map(|t| type_name(t, src)).unwrap_or_default(),
        "generic_type" => src.field(node, "type").map(|t| type_name(t, src)).unwrap_or_default(),
        _ => src.text(node).to_owned(),
    }
}

/// `type T struct {…}` or `type T interface {…}`.
fn class(node: Node<'_>, src: Source<'_>) -> Class {
    let name = src.field(node, "name").map(|n| src.text(n).to_owned()).unwrap_or_default();
    Class { name, bases: Vec::new(), decorators: Vec::new(), doc: doc(node, src), pos: pos(node) }
}

/// The comment block directly above `node` (no blank line between), markers removed.
/// A type spec alone in its `type` declaration takes the declaration's comment.
fn doc(node: Node<'_>, src: Source<'_>) -> Option<String> {
    let mut lines = Vec::new();
    let mut below = node;
    while let Some(comment) = below.prev_sibling().filter(|c| {
        let own_line = c.prev_sibling().is_none_or(|p| p.end_position().row < c.start_position().row);
        src.kind(*c) == "comment" && own_line && c.end_position().row + 1 == below.start_position().row
    }) {
        let text = src.text(comment);
        let text = text.strip_prefix("//").unwrap_or(text);
        let text = text.strip_prefix("/*").and_then(|t| t.strip_suffix("*/")).unwrap_or(text);
        lines.push(text);
        below = comment;
    }
    if lines.is_empty() {
        return src.parent(node).filter(|p| src.kind(*p) == "type_declaration").and_then(|p| doc(p, src));
    }
    lines.reverse();
    let doc = clean_doc(&lines.join("\n"));
    (!doc.is_empty()).then_some(doc)
}

/// Lowers an expression as far as the scanner follows one.
fn expr(node: Node<'_>, src: Source<'_>) -> Expr {
    let first = || node.named_child(0).map_or(Expr::Other, |n| expr(n, src));
    match src.kind(node) {
        "interpreted_string_literal" | "raw_string_literal" => {
            string(node, src).map_or(Expr::Other, Expr::Str)
        }
        "int_literal" | "float_literal" | "imaginary_literal" => Expr::Num(src.text(node).to_owned()),
        "true" => Expr::Bool(true),
        "false" => Expr::Bool(false),
        "identifier" => Expr::Name(src.text(node).to_owned()),
        "selector_expression" => {
            let operand = src.field(node, "operand").map_or(Expr::Other, |o| expr(o, src));
            let field = src.field(node, "field").map(|f| src.text(f)).unwrap_or_default();
            operand.member(field)
        }
        "call_expression" => or_fallback(node, src).unwrap_or_else(|| Expr::Call(Box::new(call(node, src)))),
        "type_conversion_expression"
            if src.field(node, "type").is_some_and(|t| src.kind(t) == "generic_type") =>
        {
            Expr::Call(Box::new(call(node, src)))
        }
        // `[]byte("x")` converts without changing what the value is.
        "type_conversion_expression" => src.field(node, "operand").map_or(Expr::Other, |o| expr(o, src)),
        "composite_literal" => composite(node, src),
        "index_expression" => {
            let part = |field: &str| src.field(node, field).map_or(Expr::Other, |n| expr(n, src));
            Expr::Subscript(Box::new(part("operand")), Box::new(part("index")))
        }
        "unary_expression" => match (src.field(node, "operator").map(|o| src.kind(o)), first()) {
            (Some("&" | "*"), operand) => operand,
            (Some("-"), Expr::Num(n)) => Expr::Num(format!("-{n}")),
            _ => Expr::Other,
        },
        "parenthesized_expression" => first(),
        "func_literal" => Expr::Lambda,
        _ => Expr::Other,
    }
}

/// `cmp.Or(os.Getenv("M"), "gpt-4o")`, the standard library's first non-zero value:
/// each argument falls back to the next, as `a || b` does elsewhere.
fn or_fallback(node: Node<'_>, src: Source<'_>) -> Option<Expr> {
    let function = src.field(node, "function")?;
    if src.text(function) != "cmp.Or" {
        return None;
    }
    let list = src.field(node, "arguments")?;
    let args: Vec<Expr> =
        named_children(list).filter(|n| src.kind(*n) != "comment").map(|n| expr(n, src)).collect();
    args.into_iter().rev().reduce(|fallback, first| Expr::Fallback(Box::new(first), Box::new(fallback)))
}

/// A string literal's value, escapes resolved.
fn string(node: Node<'_>, src: Source<'_>) -> Option<String> {
    if src.kind(node) == "raw_string_literal" {
        return Some(src.text(node).trim_matches('`').to_owned());
    }
    let mut out = String::new();
    for part in named_children(node) {
        match src.kind(part) {
            "interpreted_string_literal_content" => out.push_str(src.text(part)),
            "escape_sequence" => out.push_str(&unescape(src.text(part))),
            _ => {}
        }
    }
    Some(out)
}

fn unescape(seq: &str) -> String {
    let simple = match seq {
        "\\n" => Some('\n'),
        "\\t" => Some('\t'),
        "\\r" => Some('\r'),
        "\\a" => Some('\x07'),
        "\\b" => Some('\x08'),
        "\\f" => Some('\x0c'),
        "\\v" => Some('\x0b'),
        "\\\\" => Some('\\'),
        "\\\"" => Some('"'),
        "\\'" => Some('\''),
        _ => None,
    };
    let coded = || {
        let (digits, radix) = match seq.get(..2)? {
            "\\x" | "\\u" | "\\U" => (&seq[2..], 16),
            _ => (&seq[1..], 8),
        };
        u32::from_str_radix(digits, radix).ok().and_then(char::from_u32)
    };
    simple.or_else(coded).map_or_else(|| seq.to_owned(), String::from)
}

#[cfg(test)]
mod tests {
    use crate::scan::extract::extract;
    use crate::scan::facts::{Call, Expr, FileFacts};
    use crate::scan::report::Language;

    fn facts(source: &str) -> FileFacts {
        extract(Language::Go, source).unwrap()
    }

    fn name(n: &str) -> Expr {
        Expr::Name(n.into())
    }

    fn str(s: &str) -> Expr {
        Expr::Str(s.into())
    }

    /// The call fact whose callee is `callee`.
    fn call<'f>(f: &'f FileFacts, callee: &str) -> &'f Call {
        f.calls.iter().find(|c| c.callee == name(callee)).unwrap_or_else(|| panic!("no call of {callee}"))
    }

    #[test]
    fn imports_bind_the_package_name_go_would_use() {
        let f = facts(
            "package main\n\nimport (\n\t\"fmt\"\n\t\"github.com/sashabaranov/go-openai\"\n\t\
             \"github.com/openai/openai-go/v2\"\n\t\"github.com/mark3labs/mcp-go/mcp\"\n\t\
             \"gopkg.in/yaml.v3\"\n\too \"github.com/ollama/ollama/api\"\n\t_ \"embed\"\n\t. \"strings\"\n)\n",
        );
        let pairs: Vec<(&str, &str)> = f.imports.iter().map(|i| (i.local.as_str(), i.fqn.as_str())).collect();
        assert_eq!(
            pairs,
            [
                ("fmt", "fmt"),
                ("openai", "github.com/sashabaranov/go-openai"),
                ("openai", "github.com/openai/openai-go/v2"),
                ("mcp", "github.com/mark3labs/mcp-go/mcp"),
                ("yaml", "gopkg.in/yaml.v3"),
                ("oo", "github.com/ollama/ollama/api"),
                ("", "embed"),
                ("*", "strings.*"),
            ]
        );
        assert_eq!(f.imports[7].module, "strings");
        assert_eq!(f.imports[1].module, "github.com/sashabaranov/go-openai");
    }

    #[test]
    fn calls_and_composite_literals_are_found_with_their_arguments() {
        let f = facts(
            "package main\n\nfunc main() {\n\tclient := openai.NewClient(os.Getenv(\"KEY\"))\n\t\
             resp, err := client.CreateChatCompletion(ctx, openai.ChatCompletionRequest{\n\t\t\
             Model: openai.GPT4o,\n\t\tMessages: []openai.ChatCompletionMessage{{Role: \"user\", Content: q}},\n\t})\n\t\
             c.Chat.Completions.New(ctx, &Params{\"a\"})\n\tx := openai.F[string](\"v\")\n\tg := openai.G[int](ctx, 2)\n}\n",
        );
        let new_client = call(&f, "openai.NewClient");
        assert!(
            matches!(&new_client.args[0], Expr::Call(c) if c.callee == name("os.Getenv") && c.args == [str("KEY")])
        );
        assert_eq!(new_client.function.as_deref(), Some("main"));
        call(&f, "os.Getenv");
        let create = call(&f, "client.CreateChatCompletion");
        let request = call(&f, "openai.ChatCompletionRequest");
        assert_eq!(create.args, [name("ctx"), Expr::Call(Box::new(request.clone()))]);
        assert_eq!(request.kwargs[0], ("Model".into(), name("openai.GPT4o")));
        let message = Expr::Object(vec![("Role".into(), str("user")), ("Content".into(), name("q"))]);
        assert_eq!(request.kwargs[1], ("Messages".into(), Expr::List(vec![message])));
        assert_eq!(
            call(&f, "c.Chat.Completions.New").args[1],
            Expr::Call(Box::new(call(&f, "Params").clone()))
        );
        assert_eq!(call(&f, "Params").args, [str("a")]);
        assert_eq!(call(&f, "openai.F").args, [str("v")]);
        assert_eq!(call(&f, "openai.G").args, [name("ctx"), Expr::Num("2".into())]);
        assert_eq!(f.calls.len(), 8);
        // `resp, err := …` binds its first name to what the call returned, and no `err`.
        let names: Vec<&str> = f.bindings.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["client", "resp", "x", "g"]);
        assert_eq!(f.bindings[1].value, Expr::Call(Box::new(create.clone())));
    }

    #[test]
    fn cmp_or_is_a_chain_of_fallbacks() {
        let f = facts(
            "package main

var m = cmp.Or(os.Getenv(\"M\"), os.Getenv(\"N\"), \"llama3\")
var k = x.Or(a, b)
",
        );
        let Expr::Fallback(first, rest) = &f.bindings[0].value else { panic!("{:?}", f.bindings[0]) };
        assert!(matches!(&**first, Expr::Call(c) if c.args == [str("M")]));
        assert!(matches!(&**rest, Expr::Fallback(_, last) if **last == str("llama3")));
        // Another package's `Or` is an ordinary call.
        assert!(matches!(&f.bindings[1].value, Expr::Call(_)));
    }

    #[test]
    fn bindings_cover_const_blocks_vars_and_assignments() {
        let f = facts(
            "package main\n\nconst (\n\tModel = \"gpt-4o\"\n\tRaw = `a\\nb`\n\tA = iota\n\tB\n)\n\n\
             var x, y = 1, \"two\\t\"\nvar z int\n\nfunc (s *Server[T]) Start() {\n\ts.model = Model\n\t\
             n += 1\n\ta, b := \"p\", 2\n}\n",
        );
        let bound: Vec<(&str, &Expr)> = f.bindings.iter().map(|b| (b.name.as_str(), &b.value)).collect();
        let (one, two) = (Expr::Num("1".into()), Expr::Num("2".into()));
        let model = name("Model");
        assert_eq!(
            bound,
            [
                ("Model", &str("gpt-4o")),
                ("Raw", &str("a\\nb")),
                ("A", &Expr::Other),
                ("x", &one),
                ("y", &str("two\t")),
                ("s.model", &model),
                ("a", &str("p")),
                ("b", &two),
            ]
        );
        assert_eq!(f.bindings[0].function, None);
        assert_eq!(f.bindings[5].function.as_deref(), Some("Server.Start"));
    }

    #[test]
    fn functions_methods_and_types_with_docs() {
        let f = facts(
            "package main\n\nx := 1 // trailing\n// Weather reports the weather.\n// It calls out.\n\
             func Weather(ctx context.Context, lat, lon float64, opts ...Option) string { return \"\" }\n\n\
             // Unrelated.\n\nfunc (c *Client) Chat() {}\n\n// Client talks to a model.\ntype Client struct{ key string }\n\n\
             type (\n\t// Tool is a tool.\n\tTool interface{ Run() }\n\tID string\n)\n",
        );
        let weather = &f.functions[0];
        assert_eq!(weather.name, "Weather");
        assert_eq!(weather.doc.as_deref(), Some("Weather reports the weather.\nIt calls out."));
        let params: Vec<(&str, Option<&str>)> =
            weather.params.iter().map(|p| (p.name.as_str(), p.ty.as_deref())).collect();
        assert_eq!(
            params,
            [
                ("ctx", Some("context.Context")),
                ("lat", Some("float64")),
                ("lon", Some("float64")),
                ("opts", Some("...Option"))
            ]
        );
        assert_eq!(
            (f.functions[1].name.as_str(), f.functions[1].short_name.as_str()),
            ("Client.Chat", "Chat")
        );
        assert_eq!(f.functions[1].doc, None);
        let classes: Vec<(&str, Option<&str>)> =
            f.classes.iter().map(|c| (c.name.as_str(), c.doc.as_deref())).collect();
        assert_eq!(
            classes,
            [("Client", Some("Client talks to a model.")), ("Tool", Some("Tool is a tool."))]
        );
    }

    #[test]
    fn mcp_tools_register_as_calls() {
        let f = facts(
            "package main\n\nfunc main() {\n\ts := server.NewMCPServer(\"weather\", \"1.0.0\")\n\t\
             tool := mcp.NewTool(\"get_weather\", mcp.WithDescription(\"Gets the weather\"))\n\t\
             s.AddTool(tool, handler)\n\ts.AddTool(mcp.NewTool(\"x\"), func(ctx context.Context) {})\n}\n",
        );
        let new_tool = call(&f, "mcp.NewTool");
        assert_eq!(new_tool.args[0], str("get_weather"));
        assert!(
            matches!(&new_tool.args[1], Expr::Call(c) if c.callee == name("mcp.WithDescription") && c.args == [str("Gets the weather")])
        );
        let add = call(&f, "s.AddTool");
        assert_eq!(add.args, [name("tool"), name("handler")]);
        let adds: Vec<&Call> = f.calls.iter().filter(|c| c.callee == name("s.AddTool")).collect();
        assert_eq!(adds[1].args[1], Expr::Lambda);
    }

    #[test]
    fn comments_and_strings_hold_no_calls() {
        let f = facts("package main\n\n// client.CreateChatCompletion(ctx, req)\n/* openai.NewClient(k) */\nvar s = \"f(x)\"\n");
        assert!(f.calls.is_empty());
    }

    #[test]
    fn syntax_errors_are_counted_not_fatal() {
        let f = facts("package main\n\nfunc ok() {}\n\nfunc broken( {\n\tx := \n}\n");
        assert!(f.syntax_errors > 0);
        assert_eq!(f.first_error.unwrap().line, 5);
        assert_eq!(f.functions[0].name, "ok");
    }
}
