//! Rust modules: `use` lists, constants, structs with derives and impl blocks, enums,
//! functions returning `Result` with if/for/match bodies, async-openai calls.

use std::fmt::Write;

use super::{pascal, Gen, OPENAI_MODELS};

pub(super) fn source(g: &mut Gen, size: usize) -> String {
    let mut out = String::with_capacity(size + 1024);
    writeln!(out, "//! {}.\n\nuse std::collections::HashMap;\nuse std::fmt::Write as _;", g.sentence())
        .unwrap();
    let openai = g.chance(0.4);
    if openai {
        out.push_str(
            "use async_openai::types::{ChatCompletionRequestUserMessageArgs, CreateChatCompletionRequestArgs};\nuse async_openai::Client;\n",
        );
    }
    for _ in 0..g.range(1..4) {
        writeln!(out, "\nconst {}: usize = {};", g.snake().to_ascii_uppercase(), g.range(1..5000)).unwrap();
    }
    while out.len() < size {
        match g.range(0..10) {
            0..2 => structure(g, &mut out),
            2 => enumeration(g, &mut out),
            3 if openai => llm_function(g, &mut out),
            _ => function(g, &mut out, ""),
        }
    }
    out
}

fn structure(g: &mut Gen, out: &mut String) {
    let name = g.pascal();
    writeln!(out, "\n/// {}.\n#[derive(Debug, Clone, Default)]\npub struct {name} {{", g.sentence()).unwrap();
    for _ in 0..g.range(2..6) {
        let ty = *g.pick(&["String", "usize", "Vec<String>", "Option<u64>", "HashMap<String, f64>"]);
        writeln!(out, "    pub {}: {ty},", g.snake()).unwrap();
    }
    writeln!(out, "}}\n\nimpl {name} {{").unwrap();
    for _ in 0..g.range(1..4) {
        function(g, out, "    ");
    }
    out.push_str("}\n");
}

fn enumeration(g: &mut Gen, out: &mut String) {
    writeln!(out, "\n#[derive(Debug, Clone, PartialEq)]\npub enum {} {{", g.pascal()).unwrap();
    for _ in 0..g.range(2..6) {
        match g.range(0..3) {
            0 => writeln!(out, "    {},", pascal(g.noun())),
            1 => writeln!(out, "    {}(String),", pascal(g.noun())),
            _ => writeln!(out, "    {} {{ id: u64, {}: Vec<String> }},", pascal(g.noun()), g.noun()),
        }
        .unwrap();
    }
    out.push_str("}\n");
}

fn function(g: &mut Gen, out: &mut String, pad: &str) {
    let mut names: Vec<&str> = (0..g.range(1..4)).map(|_| g.noun()).collect();
    names.sort_unstable();
    names.dedup();
    let params: Vec<String> = names
        .iter()
        .map(|name| format!("{name}: {}", g.pick(&["&[String]", "&str", "usize", "&HashMap<String, f64>"])))
        .collect();
    let receiver = if pad.is_empty() { "" } else { "&self, " };
    writeln!(
        out,
        "\n{pad}/// {}.\n{pad}pub fn {}({receiver}{}) -> Result<usize, Box<dyn std::error::Error>> {{",
        g.sentence(),
        g.function(),
        params.join(", ")
    )
    .unwrap();
    let mut vars: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    block(g, out, &format!("{pad}    "), 0, &mut vars);
    writeln!(out, "{pad}    Ok({}.len())\n{pad}}}", g.pick(&vars)).unwrap();
}

fn llm_function(g: &mut Gen, out: &mut String) {
    write!(
        out,
        r#"
/// {}.
pub async fn {}(prompt: &str) -> Result<String, Box<dyn std::error::Error>> {{
    let client = Client::new();
    let request = CreateChatCompletionRequestArgs::default()
        .model("{}")
        .max_tokens(512u32)
        .messages([ChatCompletionRequestUserMessageArgs::default().content(prompt).build()?.into()])
        .build()?;
    let response = client.chat().create(request).await?;
    let mut text = String::new();
    for choice in response.choices {{
        if let Some(content) = choice.message.content {{
            write!(text, "{{content}}")?;
        }}
    }}
    Ok(text)
}}
"#,
        g.sentence(),
        g.function(),
        g.pick(OPENAI_MODELS)
    )
    .unwrap();
}

fn block(g: &mut Gen, out: &mut String, pad: &str, depth: usize, vars: &mut Vec<String>) {
    for _ in 0..g.range(2..6) {
        let choice = if depth >= 2 { g.range(0..3) } else { g.range(0..7) };
        let inner = format!("{pad}    ");
        match choice {
            0 | 1 => {
                let name = format!("{}_{}", g.noun(), g.range(0..100));
                writeln!(out, "{pad}let {name} = {};", expr(g, vars)).unwrap();
                vars.push(name);
            }
            2 => {
                writeln!(out, "{pad}tracing::debug!({} = ?{}, \"{}\");", g.noun(), g.pick(vars), g.sentence())
                    .unwrap()
            }
            3 => {
                writeln!(
                    out,
                    "{pad}if !{}.is_empty() && {}.len() > {} {{",
                    g.pick(vars),
                    g.pick(vars),
                    g.range(0..10)
                )
                .unwrap();
                block(g, out, &inner, depth + 1, vars);
                if g.chance(0.5) {
                    writeln!(out, "{pad}}} else {{").unwrap();
                    block(g, out, &inner, depth + 1, vars);
                }
                writeln!(out, "{pad}}}").unwrap();
            }
            4 => {
                let item = g.noun();
                writeln!(out, "{pad}for {item} in {}.iter() {{", g.pick(vars)).unwrap();
                vars.push(item.to_owned());
                block(g, out, &inner, depth + 1, vars);
                vars.pop();
                writeln!(out, "{pad}}}").unwrap();
            }
            5 => {
                writeln!(out, "{pad}match {}.len() {{\n{inner}0 => return Ok(0),", g.pick(vars)).unwrap();
                writeln!(out, "{inner}n if n > {} => {{", g.range(2..50)).unwrap();
                block(g, out, &format!("{inner}    "), depth + 1, vars);
                writeln!(out, "{inner}}}\n{inner}_ => {{}}\n{pad}}}").unwrap();
            }
            _ => writeln!(out, "{pad}let _ = {}(&{})?;", g.function(), g.pick(vars)).unwrap(),
        }
    }
}

fn expr(g: &mut Gen, vars: &[String]) -> String {
    let var = g.pick(vars).clone();
    match g.range(0..7) {
        0 => format!("{var}.len() + {}", g.range(1..100)),
        1 => format!("format!(\"{}-{{:?}}\", {var})", g.noun()),
        2 => format!("{var}.iter().filter(|x| !x.is_empty()).count()"),
        3 => format!("{var}.to_owned()"),
        4 => format!("{}(&{var})?", g.function()),
        5 => "HashMap::<String, usize>::new()".to_owned(),
        _ => format!("if {var}.is_empty() {{ 0 }} else {{ {} }}", g.range(1..10)),
    }
}
