//! JavaScript, TypeScript and TSX: lowers the nodes `queries/javascript.scm` and
//! `queries/typescript.scm` capture to facts. The grammars share their node kinds; the
//! few that only TypeScript has (enums, type assertions, `import x = require(…)`) are
//! matched beside the shared ones.

mod definitions;
mod expr;
mod imports;
mod scope;

use tree_sitter::Node;

use super::{pos, Source};
use crate::scan::facts::{Binding, Expr, FileFacts};
use expr::{expr, key};
use scope::{enclosing_classes, enclosing_function};

pub(super) fn lower(capture: &str, node: Node<'_>, src: Source<'_>, facts: &mut FileFacts) {
    match capture {
        "import" => imports::imports(node, src, &mut facts.imports),
        "reexport" => facts.imports.extend(imports::reexport(node, src)),
        "call" => call_site(node, src, facts),
        "declare" => declaration(node, src, facts),
        "assign" => assignment(node, src, facts),
        "field" => field(node, src, facts),
        "function" => facts.functions.extend(definitions::function(node, src)),
        "class" => facts.classes.extend(definitions::class(node, src)),
        _ => {}
    }
}

/// A call, or a module loaded by it.
fn call_site(node: Node<'_>, src: Source<'_>, facts: &mut FileFacts) {
    facts.imports.extend(imports::loaded_module(node, src));
    // `import("m")` is syntax that loads a module, not a call of anything.
    if !imports::is_dynamic_import(node, src) {
        facts.calls.extend(expr::call(node, src));
    }
}

/// `const name = value` (and `let`, `var`): a binding, or imports when the value is a `require`.
fn declaration(node: Node<'_>, src: Source<'_>, facts: &mut FileFacts) {
    let imports = imports::require_imports(node, src);
    if !imports.is_empty() {
        facts.imports.extend(imports);
        return;
    }
    let (Some(name), Some(value)) = (src.field(node, "name"), src.field(node, "value")) else {
        return;
    };
    // Other destructuring takes values apart that the scanner does not follow.
    if src.kind(name) == "identifier" {
        let function = enclosing_function(node, src);
        facts.bindings.push(Binding {
            name: src.text(name).to_owned(),
            value: expr(value, src),
            function,
            pos: pos(node),
        });
    }
}

/// `name = value`, `this.client = value`, `module.exports = value`.
fn assignment(node: Node<'_>, src: Source<'_>, facts: &mut FileFacts) {
    let (Some(left), Some(right)) = (src.field(node, "left"), src.field(node, "right")) else {
        return;
    };
    if let Expr::Name(name) = expr(left, src) {
        let function = enclosing_function(node, src);
        facts.bindings.push(Binding { name, value: expr(right, src), function, pos: pos(node) });
    }
}

/// A class field (`model = "x"`, `static model = "x"`) or a TypeScript enum member
/// (`A = "x"`), bound as `Class.model` and `Enum.A` like Python's class attributes.
fn field(node: Node<'_>, src: Source<'_>, facts: &mut FileFacts) {
    // JavaScript names a class field's key `property`; TypeScript and enum members `name`.
    let name = src.field(node, "name").or_else(|| src.field(node, "property"));
    let (Some(mut name), Some(value)) = (name.and_then(|n| key(n, src)), src.field(node, "value")) else {
        return;
    };
    let function = enclosing_function(node, src);
    if function.is_none() {
        if let Some(class) = enclosing_classes(node, src) {
            name = format!("{class}.{name}");
        }
    }
    facts.bindings.push(Binding { name, value: expr(value, src), function, pos: pos(node) });
}

#[cfg(test)]
mod tests {
    use crate::scan::extract::extract;
    use crate::scan::facts::{Call, Expr, FileFacts};
    use crate::scan::report::Language;

    fn facts(language: Language, source: &str) -> FileFacts {
        extract(language, source).unwrap()
    }

    fn imports(f: &FileFacts) -> Vec<(&str, &str, &str)> {
        f.imports.iter().map(|i| (i.local.as_str(), i.fqn.as_str(), i.module.as_str())).collect()
    }

    fn name(n: &str) -> Expr {
        Expr::Name(n.into())
    }

    fn str(s: &str) -> Expr {
        Expr::Str(s.into())
    }

    fn call_to<'a>(f: &'a FileFacts, callee: &str) -> &'a Call {
        f.calls.iter().find(|c| c.callee == name(callee)).unwrap_or_else(|| panic!("no call to {callee}"))
    }

    #[test]
    fn es_module_imports_bind_local_names_to_qualified_ones() {
        let f = facts(
            Language::Typescript,
            "import OpenAI from \"openai\";\nimport * as ai from 'ai';\nimport { A, B as C } from \"@scope/m\";\n\
             import D, { E } from \"n\";\nimport \"dotenv/config\";\nimport type { T } from \"types\";\n\
             import x = require(\"legacy\");\nexport * from \"./tools\";\nexport { F } from \"./f\";\n\
             const lazy = await import(\"lazy\");\n",
        );
        assert_eq!(
            imports(&f),
            [
                ("OpenAI", "openai.default", "openai"),
                ("ai", "ai", "ai"),
                ("A", "@scope/m.A", "@scope/m"),
                ("C", "@scope/m.B", "@scope/m"),
                ("D", "n.default", "n"),
                ("E", "n.E", "n"),
                ("", "dotenv/config", "dotenv/config"),
                ("T", "types.T", "types"),
                ("x", "legacy.default", "legacy"),
                ("", "./tools", "./tools"),
                ("", "./f", "./f"),
                ("", "lazy", "lazy"),
            ]
        );
        // `import(…)` loads a module; it is not a call the rules should see.
        assert!(f.calls.is_empty());
        assert_eq!((f.imports[2].pos.line, f.imports[2].pos.column), (3, 1));
    }

    #[test]
    fn commonjs_requires_are_imports() {
        let f = facts(
            Language::Javascript,
            "const OpenAI = require(\"openai\");\nconst { A, B: C, D = 1 } = require('m');\n\
             const Foo = require(\"p\").sub.Foo;\nrequire(\"side-effect\");\n",
        );
        assert_eq!(
            imports(&f),
            [
                ("OpenAI", "openai.default", "openai"),
                ("A", "m.A", "m"),
                ("C", "m.B", "m"),
                ("D", "m.D", "m"),
                ("Foo", "p.sub.Foo", "p"),
                ("", "side-effect", "side-effect"),
            ]
        );
        // A bound `require` is an import, not also a binding.
        assert!(f.bindings.is_empty());
        assert_eq!(f.calls.len(), 4);
    }

    #[test]
    fn calls_keep_callee_arguments_and_enclosing_function() {
        let f = facts(
            Language::Typescript,
            "class Bot {\n  async run(messages) {\n    return await this.client.chat.completions.create({ model: MODEL, messages });\n  }\n}\n\
             export const ask = async (q: string) => {\n  const client = new OpenAI({ apiKey });\n  \
             return client.chat.completions.create({ model: MODEL, messages: [q], ...rest });\n};\n\
             getClient()?.models.list(1);\n",
        );
        let method = call_to(&f, "this.client.chat.completions.create");
        assert_eq!(method.function.as_deref(), Some("Bot.run"));
        assert_eq!((method.pos.line, method.pos.column), (3, 18));
        let fields =
            Expr::Object(vec![("model".into(), name("MODEL")), ("messages".into(), name("messages"))]);
        assert_eq!(method.args, [fields]);
        assert!(method.kwargs.is_empty());

        let new = call_to(&f, "OpenAI");
        assert!(new.is_new);
        assert_eq!(new.args, [Expr::Object(vec![("apiKey".into(), name("apiKey"))])]);
        assert_eq!(new.function.as_deref(), Some("ask"));
        let arrow = call_to(&f, "client.chat.completions.create");
        assert_eq!(arrow.function.as_deref(), Some("ask"));
        // The spread is skipped, the array kept.
        assert_eq!(arrow.arg(Some("messages"), None), Some(&Expr::List(vec![name("q")])));

        let chained = f.calls.iter().find(|c| matches!(&c.callee, Expr::Member(..))).unwrap();
        assert!(matches!(&chained.callee, Expr::Member(base, path)
            if path == "models.list" && matches!(&**base, Expr::Call(c) if c.callee == name("getClient"))));
        assert_eq!(chained.function, None);
    }

    #[test]
    fn tool_registration_keeps_string_object_and_callback() {
        let f = facts(
            Language::Typescript,
            "server.registerTool(\"get_weather\", {\n  description: \"Gets \\\"weather\\\"\\n\",\n  \
             inputSchema: { city: z.string() },\n}, async ({ city }) => {\n  return fetchWeather(city);\n});\n",
        );
        let register = call_to(&f, "server.registerTool");
        let [Expr::Str(tool), Expr::Object(options), Expr::Lambda] = register.args.as_slice() else {
            panic!("unexpected args {:?}", register.args)
        };
        assert_eq!(tool, "get_weather");
        assert_eq!(options[0], ("description".into(), str("Gets \"weather\"\n")));
        assert!(matches!(&options[1].1, Expr::Object(schema)
            if matches!(&schema[0].1, Expr::Call(c) if c.callee == name("z.string"))));
        // An anonymous callback is part of its caller: here, the module.
        assert_eq!(call_to(&f, "fetchWeather").function, None);
        assert!(f.functions.is_empty());
    }

    #[test]
    fn comments_strings_and_templates_hold_no_calls() {
        let f = facts(
            Language::Javascript,
            "// client.chat.completions.create({ model: 'gpt-4' })\n/* new OpenAI() */\n\
             const s = \"OpenAI({ model: 'gpt-4' })\";\nconst t = `new OpenAI(${x})`;\nconst u = sql`select now()`;\n",
        );
        assert!(f.calls.is_empty(), "{:?}", f.calls);
        assert_eq!(f.bindings[0].value, str("OpenAI({ model: 'gpt-4' })"));
        assert_eq!(f.bindings[1].value, Expr::Other);
    }

    #[test]
    fn expressions_lower_to_facts() {
        let f = facts(
            Language::Typescript,
            "const MODEL = process.env.MODEL ?? \"gpt-4o\";\nconst B = opts?.model || `gpt-4o-mini`;\n\
             const C = fast ? 'a' : 'b';\nconst D = (config.models as Models)!.chat;\nconst E = env[\"KEY\"];\n\
             const F = { model, temperature: 0.2, stream: true, run() {} } satisfies Options;\n\
             const G = <string>raw;\nconst H = 'it\\'s';\n",
        );
        let values: Vec<(&str, &Expr)> = f.bindings.iter().map(|b| (b.name.as_str(), &b.value)).collect();
        let fallback = |a, b| Expr::Fallback(Box::new(a), Box::new(b));
        assert_eq!(values[0], ("MODEL", &fallback(name("process.env.MODEL"), str("gpt-4o"))));
        assert_eq!(values[1].1, &fallback(name("opts.model"), str("gpt-4o-mini")));
        assert_eq!(values[2].1, &fallback(str("a"), str("b")));
        assert_eq!(values[3].1, &name("config.models.chat"));
        assert_eq!(values[4].1, &Expr::Subscript(Box::new(name("env")), Box::new(str("KEY"))));
        assert_eq!(
            values[5].1,
            &Expr::Object(vec![
                ("model".into(), name("model")),
                ("temperature".into(), Expr::Num("0.2".into())),
                ("stream".into(), Expr::Bool(true)),
                ("run".into(), Expr::Lambda),
            ])
        );
        assert_eq!(values[6].1, &name("raw"));
        assert_eq!(values[7].1, &str("it's"));
        assert!(f.bindings.iter().all(|b| b.function.is_none()));
    }

    #[test]
    fn bindings_cover_assignments_class_fields_and_enums() {
        let f = facts(
            Language::Typescript,
            "class Agent extends Base {\n  model = \"gpt-4o\";\n  static provider: string = 'openai';\n  \
             constructor() {\n    super();\n    this.client = new OpenAI();\n    let local = 1;\n  }\n}\n\
             enum Models { Fast = \"gpt-4o-mini\", Slow = \"o1\", Auto }\nmodule.exports = { Agent };\n",
        );
        let bound: Vec<(&str, Option<&str>)> =
            f.bindings.iter().map(|b| (b.name.as_str(), b.function.as_deref())).collect();
        assert_eq!(
            bound,
            [
                ("Agent.model", None),
                ("Agent.provider", None),
                ("this.client", Some("Agent.constructor")),
                ("local", Some("Agent.constructor")),
                ("Models.Fast", None),
                ("Models.Slow", None),
                ("module.exports", None),
            ]
        );
        assert_eq!(f.bindings[1].value, str("openai"));
        assert!(matches!(&f.bindings[2].value, Expr::Call(c) if c.is_new));
        assert_eq!(f.bindings[4].value, str("gpt-4o-mini"));
        assert_eq!(f.classes[0].bases, [name("Base")]);
    }

    #[test]
    fn javascript_class_fields_and_nested_functions() {
        let f = facts(
            Language::Javascript,
            "class Tool extends mixin(Base) {\n  static name = \"search\";\n  handle = async (input) => this.run(input);\n  @tool(\"x\") m() { return step(); }\n}\n\
             function outer(a, b = 2, { c }, ...rest) {\n  function inner() { return call(); }\n}\n\
             const tools = { search: function () { go(); } };\n",
        );
        let names: Vec<&str> = f.functions.iter().map(|func| func.name.as_str()).collect();
        assert_eq!(names, ["Tool.handle", "Tool.m", "outer", "outer.inner", "search"]);
        assert_eq!(f.bindings[0].name, "Tool.name");
        assert_eq!(call_to(&f, "this.run").function.as_deref(), Some("Tool.handle"));
        assert_eq!(call_to(&f, "step").function.as_deref(), Some("Tool.m"));
        // A decorator is applied where the class is defined, not inside the method.
        assert_eq!(call_to(&f, "tool").function, None);
        assert_eq!(call_to(&f, "call").function.as_deref(), Some("outer.inner"));
        assert_eq!(call_to(&f, "go").function.as_deref(), Some("search"));
        let params: Vec<&str> = f.functions[2].params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(params, ["a", "b", "{ c }"]);
        assert_eq!(f.functions[2].params[1].default, Some(Expr::Num("2".into())));
        assert!(matches!(&f.classes[0].bases[0], Expr::Call(c) if c.callee == name("mixin")));
    }

    #[test]
    fn decorators_jsdoc_and_typed_params() {
        let f = facts(
            Language::Typescript,
            "/**\n * Weather tools.\n */\n@Injectable()\nexport class WeatherTools {\n  /**\n   * Gets the weather.\n   *\n   * Returns text.\n   */\n  \
             @Tool({ name: \"get_weather\" })\n  @Cached\n  async get(this: WeatherTools, city: string, days?: number, unit = \"c\") {}\n}\n\
             /** Says hi. */\nexport function* greet(name: string): Generator<string> {}\n\
             // not a doc\nexport const plain = () => 1;\n/** Header. */\n\nfunction far() {}\n",
        );
        let class = &f.classes[0];
        assert_eq!(class.doc.as_deref(), Some("Weather tools."));
        assert!(matches!(&class.decorators[..], [Expr::Call(c)] if c.callee == name("Injectable")));
        let get = &f.functions[0];
        assert_eq!(get.name, "WeatherTools.get");
        assert_eq!(get.doc.as_deref(), Some("Gets the weather.\n\nReturns text."));
        assert!(matches!(&get.decorators[..], [Expr::Call(c), Expr::Name(n)]
            if c.callee == name("Tool") && n == "Cached" && c.arg(Some("name"), None) == Some(&str("get_weather"))));
        let params: Vec<(&str, Option<&str>)> =
            get.params.iter().map(|p| (p.name.as_str(), p.ty.as_deref())).collect();
        assert_eq!(params, [("city", Some("string")), ("days", Some("number")), ("unit", None)]);
        assert_eq!(get.params[2].default, Some(str("c")));
        assert_eq!(call_to(&f, "Tool").function, None);
        assert_eq!(f.functions[1].name, "greet");
        assert_eq!(f.functions[1].doc.as_deref(), Some("Says hi."));
        assert_eq!(f.functions[2].name, "plain");
        assert_eq!(f.functions[2].doc, None);
        assert_eq!(f.functions[3].doc, None);
    }

    #[test]
    fn tsx_and_jsx_parse_and_find_their_calls() {
        let source = "export const App = () => {\n  const [q] = useState(\"\");\n  \
                      return <button onClick={() => client.send({ q })}>{items.map((i) => <p>{i}</p>)}</button>;\n};\n";
        for language in [Language::Tsx, Language::Javascript] {
            let f = facts(language, source);
            assert_eq!(f.syntax_errors, 0, "{language:?}");
            let callees: Vec<&Expr> = f.calls.iter().map(|c| &c.callee).collect();
            assert_eq!(
                callees,
                [&name("useState"), &name("client.send"), &name("items.map")],
                "{language:?}"
            );
            assert!(f.calls.iter().all(|c| c.function.as_deref() == Some("App")));
        }
    }

    #[test]
    fn syntax_errors_are_counted_not_fatal() {
        let f = facts(
            Language::Typescript,
            "function broken( {\n\nclient.chat.completions.create({ model: 'gpt-4' });\n",
        );
        assert!(f.syntax_errors > 0);
        assert_eq!(f.first_error.unwrap().line, 1);
    }
}
