//! JavaScript, TypeScript and TSX modules: ES imports, SDK clients, exported (async)
//! functions and classes; TypeScript adds interfaces and annotations, TSX components.

use std::fmt::Write;

use super::{Gen, ANTHROPIC_MODELS, OPENAI_MODELS};

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Js,
    Ts,
    Tsx,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Client {
    None,
    OpenAi,
    Anthropic,
}

pub(super) fn source(g: &mut Gen, size: usize, dialect: Dialect) -> String {
    let mut out = String::with_capacity(size + 1024);
    writeln!(out, "/**\n * {}.\n */", g.sentence()).unwrap();
    if dialect == Dialect::Tsx {
        out.push_str("import { useState } from \"react\";\n");
    }
    out.push_str("import { readFile } from \"node:fs/promises\";\n");
    let client = match g.range(0..10) {
        0..4 => Client::OpenAi,
        4..6 => Client::Anthropic,
        _ => Client::None,
    };
    match client {
        Client::OpenAi => out.push_str("import OpenAI from \"openai\";\n\nconst client = new OpenAI();\n"),
        Client::Anthropic => out
            .push_str("import Anthropic from \"@anthropic-ai/sdk\";\n\nconst anthropic = new Anthropic();\n"),
        Client::None => {}
    }
    for _ in 0..g.range(1..4) {
        writeln!(out, "const {} = {};", g.snake().to_ascii_uppercase(), g.range(1..5000)).unwrap();
    }
    while out.len() < size {
        match g.range(0..10) {
            0..2 if dialect != Dialect::Js => interface(g, &mut out),
            2..4 if dialect == Dialect::Tsx => component(g, &mut out),
            4..6 => class(g, &mut out, dialect, client),
            _ => function(g, &mut out, dialect, client, false),
        }
    }
    out
}

fn typed(dialect: Dialect, annotation: &str) -> String {
    if dialect == Dialect::Js {
        String::new()
    } else {
        format!(": {annotation}")
    }
}

fn params(g: &mut Gen, dialect: Dialect) -> Vec<String> {
    let mut names: Vec<&str> = (0..g.range(1..4)).map(|_| g.noun()).collect();
    names.sort_unstable();
    names.dedup();
    names
        .into_iter()
        .map(|name| {
            let ty = *g.pick(&["string", "number", "string[]", "Record<string, unknown>", "unknown[]"]);
            format!("{name}{}", typed(dialect, ty))
        })
        .collect()
}

fn function(g: &mut Gen, out: &mut String, dialect: Dialect, client: Client, method: bool) {
    let params = params(g, dialect);
    let mut vars: Vec<String> = params.iter().map(|p| p.split(':').next().unwrap_or(p).to_owned()).collect();
    let asynchronous = client != Client::None || g.chance(0.2);
    let returns = if asynchronous { "Promise<Record<string, unknown>>" } else { "Record<string, unknown>" };
    let keyword = match (method, asynchronous) {
        (true, true) => "  async ",
        (true, false) => "  ",
        (false, true) => "\nexport async function ",
        (false, false) => "\nexport function ",
    };
    let indent = if method { 2 } else { 1 };
    writeln!(out, "{keyword}{}({}){} {{", g.camel_function(), params.join(", "), typed(dialect, returns))
        .unwrap();
    // `await` belongs in async functions only.
    let client = if asynchronous { client } else { Client::None };
    block(g, out, indent, 0, &mut vars, client);
    let pad = "  ".repeat(indent);
    writeln!(out, "{pad}return {{ {}: {}, at: Date.now() }};\n{}}}", g.noun(), expr(g, &vars), &pad[2..])
        .unwrap();
}

fn class(g: &mut Gen, out: &mut String, dialect: Dialect, client: Client) {
    let field = g.noun();
    writeln!(out, "\nexport class {} {{", g.pascal()).unwrap();
    if dialect != Dialect::Js {
        writeln!(out, "  private readonly {field}: string;").unwrap();
    }
    writeln!(out, "  constructor({field}{}) {{\n    this.{field} = {field};\n  }}", typed(dialect, "string"))
        .unwrap();
    for _ in 0..g.range(1..4) {
        function(g, out, dialect, client, true);
    }
    out.push_str("}\n");
}

fn interface(g: &mut Gen, out: &mut String) {
    writeln!(out, "\nexport interface {} {{", g.pascal()).unwrap();
    for _ in 0..g.range(2..6) {
        let ty = *g.pick(&["string", "number", "boolean", "string[]", "Date | null"]);
        writeln!(out, "  {}{}: {ty};", g.noun(), if g.chance(0.3) { "?" } else { "" }).unwrap();
    }
    out.push_str("}\n");
}

fn component(g: &mut Gen, out: &mut String) {
    let (name, css, item) = (g.pascal(), g.noun(), g.noun());
    write!(
        out,
        r#"
export function {name}({{ items, title }}: {{ items: Array<{{ id: string; {item}: string }}>; title: string }}) {{
  const [open, setOpen] = useState(false);
  return (
    <section className="{css}">
      <h2 onClick={{() => setOpen(!open)}}>{{title}}</h2>
      {{open && (
        <ul>
          {{items.map((entry) => (
            <li key={{entry.id}}>{{entry.{item}}}</li>
          ))}}
        </ul>
      )}}
    </section>
  );
}}
"#
    )
    .unwrap();
}

fn block(g: &mut Gen, out: &mut String, indent: usize, depth: usize, vars: &mut Vec<String>, client: Client) {
    let pad = "  ".repeat(indent);
    for _ in 0..g.range(2..6) {
        let choice = if depth >= 2 { g.range(0..3) } else { g.range(0..8) };
        match choice {
            0 | 1 => {
                let name = format!("{}{}", g.noun(), g.range(0..100));
                writeln!(out, "{pad}const {name} = {};", expr(g, vars)).unwrap();
                vars.push(name);
            }
            2 => writeln!(out, "{pad}console.log(\"{}\", {});", g.sentence(), g.pick(vars)).unwrap(),
            3 => {
                writeln!(
                    out,
                    "{pad}if ({} && {}.length > {}) {{",
                    g.pick(vars),
                    g.pick(vars),
                    g.range(0..10)
                )
                .unwrap();
                block(g, out, indent + 1, depth + 1, vars, client);
                if g.chance(0.5) {
                    writeln!(out, "{pad}}} else {{").unwrap();
                    block(g, out, indent + 1, depth + 1, vars, client);
                }
                writeln!(out, "{pad}}}").unwrap();
            }
            4 => {
                let item = g.noun();
                writeln!(out, "{pad}for (const {item} of {}) {{", g.pick(vars)).unwrap();
                vars.push(item.to_owned());
                block(g, out, indent + 1, depth + 1, vars, client);
                vars.pop();
                writeln!(out, "{pad}}}").unwrap();
            }
            5 => {
                writeln!(out, "{pad}try {{").unwrap();
                block(g, out, indent + 1, depth + 1, vars, client);
                writeln!(
                    out,
                    "{pad}}} catch (err) {{\n{pad}  console.error(\"{}\", err);\n{pad}  throw err;\n{pad}}}",
                    g.sentence()
                )
                .unwrap();
            }
            _ => llm_call(g, out, &pad, vars, client),
        }
    }
}

fn llm_call(g: &mut Gen, out: &mut String, pad: &str, vars: &[String], client: Client) {
    let prompt = g.pick(vars).clone();
    match client {
        Client::OpenAi => writeln!(
            out,
            "{pad}const completion = await client.chat.completions.create({{\n{pad}  model: \"{}\",\n{pad}  messages: [{{ role: \"user\", content: String({prompt}) }}],\n{pad}}});",
            g.pick(OPENAI_MODELS)
        ),
        Client::Anthropic => writeln!(
            out,
            "{pad}const message = await anthropic.messages.create({{ model: \"{}\", max_tokens: 1024, messages: [{{ role: \"user\", content: String({prompt}) }}] }});",
            g.pick(ANTHROPIC_MODELS)
        ),
        Client::None => writeln!(out, "{pad}const serialized = JSON.stringify({prompt});"),
    }
    .unwrap();
}

fn expr(g: &mut Gen, vars: &[String]) -> String {
    let var = g.pick(vars).clone();
    match g.range(0..8) {
        0 => format!("{var}?.{} ?? {}", g.noun(), g.range(0..10)),
        1 => format!("{var}.length + {}", g.range(1..100)),
        2 => format!("[...{var}].filter((item) => Boolean(item))"),
        3 => format!("{{ {}: {var}, {}: \"{}\" }}", g.noun(), g.noun(), g.sentence()),
        4 => format!("`{}-${{{var}}}`", g.noun()),
        5 => format!("{}({var})", g.camel_function()),
        6 => format!("JSON.stringify({var})"),
        _ => format!("{var} ? {var} : {}", g.range(0..10)),
    }
}
