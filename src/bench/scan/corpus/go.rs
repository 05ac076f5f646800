//! Go files: a package clause, grouped imports, constants, structs with tags, methods
//! and functions taking a context, openai-go calls.

use std::fmt::Write;

use super::{pascal, Gen};

pub(super) fn source(g: &mut Gen, size: usize) -> String {
    let mut out = String::with_capacity(size + 1024);
    let package = g.noun();
    let openai = g.chance(0.4);
    writeln!(out, "// Package {package}: {}.\npackage {package}\n", g.sentence()).unwrap();
    out.push_str("import (\n\t\"context\"\n\t\"fmt\"\n\t\"strings\"\n");
    if openai {
        out.push_str("\n\t\"github.com/openai/openai-go\"\n");
    }
    out.push_str(")\n");
    for _ in 0..g.range(1..4) {
        writeln!(out, "\nconst {}{} = {}", pascal(g.noun()), pascal(g.noun()), g.range(1..5000)).unwrap();
    }
    while out.len() < size {
        match g.range(0..10) {
            0..2 => structure(g, &mut out),
            2 if openai => llm_function(g, &mut out),
            _ => function(g, &mut out, None),
        }
    }
    out
}

fn structure(g: &mut Gen, out: &mut String) {
    let name = g.pascal();
    writeln!(out, "\n// {name}: {}.\ntype {name} struct {{", g.sentence()).unwrap();
    for _ in 0..g.range(2..6) {
        let field = g.noun();
        let ty = *g.pick(&["string", "int", "[]string", "map[string]float64", "bool"]);
        writeln!(out, "\t{} {ty} `json:\"{field}\"`", pascal(field)).unwrap();
    }
    out.push_str("}\n");
    for _ in 0..g.range(1..3) {
        function(g, out, Some(&name));
    }
}

fn function(g: &mut Gen, out: &mut String, receiver: Option<&str>) {
    let mut names: Vec<&str> = (0..g.range(1..4)).map(|_| g.noun()).collect();
    names.sort_unstable();
    names.dedup();
    let params: Vec<String> = names
        .iter()
        .map(|n| format!("{n} {}", g.pick(&["[]string", "string", "int", "map[string]any"])))
        .collect();
    let receiver = receiver.map(|r| format!("(s *{r}) ")).unwrap_or_default();
    writeln!(
        out,
        "\n// {}.\nfunc {receiver}{}(ctx context.Context, {}) (map[string]any, error) {{",
        g.sentence(),
        pascal(&g.camel_function()),
        params.join(", ")
    )
    .unwrap();
    let mut vars: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    block(g, out, 1, 0, &mut vars);
    writeln!(out, "\treturn map[string]any{{\"{}\": {}}}, nil\n}}", g.noun(), expr(g, &vars)).unwrap();
}

fn llm_function(g: &mut Gen, out: &mut String) {
    let model = *g.pick(&["ChatModelGPT4o", "ChatModelGPT4oMini", "ChatModelO3Mini"]);
    write!(
        out,
        r#"
// {}.
func {}(ctx context.Context, prompt string) (string, error) {{
	client := openai.NewClient()
	completion, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{{
		Messages: openai.F([]openai.ChatCompletionMessageParamUnion{{
			openai.UserMessage(prompt),
		}}),
		Model: openai.F(openai.{model}),
	}})
	if err != nil {{
		return "", fmt.Errorf("completion: %w", err)
	}}
	return strings.TrimSpace(completion.Choices[0].Message.Content), nil
}}
"#,
        g.sentence(),
        pascal(&g.camel_function()),
    )
    .unwrap();
}

fn block(g: &mut Gen, out: &mut String, indent: usize, depth: usize, vars: &mut Vec<String>) {
    let pad = "\t".repeat(indent);
    for _ in 0..g.range(2..6) {
        let choice = if depth >= 2 { g.range(0..3) } else { g.range(0..7) };
        match choice {
            0 | 1 => {
                let name = format!("{}{}", g.noun(), g.range(0..100));
                writeln!(out, "{pad}{name} := {}", expr(g, vars)).unwrap();
                vars.push(name);
            }
            2 => writeln!(out, "{pad}fmt.Printf(\"{}: %v\\n\", {})", g.sentence(), g.pick(vars)).unwrap(),
            3 => {
                writeln!(out, "{pad}if len({}) > {} && ctx.Err() == nil {{", g.pick(vars), g.range(0..10))
                    .unwrap();
                block(g, out, indent + 1, depth + 1, vars);
                if g.chance(0.5) {
                    writeln!(out, "{pad}}} else {{").unwrap();
                    block(g, out, indent + 1, depth + 1, vars);
                }
                writeln!(out, "{pad}}}").unwrap();
            }
            4 => {
                let item = g.noun();
                writeln!(out, "{pad}for _, {item} := range {} {{", g.pick(vars)).unwrap();
                vars.push(item.to_owned());
                block(g, out, indent + 1, depth + 1, vars);
                vars.pop();
                writeln!(out, "{pad}}}").unwrap();
            }
            5 => {
                writeln!(
                    out,
                    "{pad}switch {{\n{pad}case len({}) == 0:\n{pad}\treturn nil, nil",
                    g.pick(vars)
                )
                .unwrap();
                writeln!(out, "{pad}default:").unwrap();
                block(g, out, indent + 1, depth + 1, vars);
                writeln!(out, "{pad}}}").unwrap();
            }
            _ => writeln!(
                out,
                "{pad}if _, err := {}(ctx, {}); err != nil {{\n{pad}\treturn nil, err\n{pad}}}",
                pascal(&g.camel_function()),
                g.pick(vars)
            )
            .unwrap(),
        }
    }
}

fn expr(g: &mut Gen, vars: &[String]) -> String {
    let var = g.pick(vars).clone();
    match g.range(0..6) {
        0 => format!("len({var}) + {}", g.range(1..100)),
        1 => format!("fmt.Sprintf(\"{}-%v\", {var})", g.noun()),
        2 => format!("strings.TrimSpace(fmt.Sprint({var}))"),
        3 => format!("map[string]any{{\"{}\": {var}}}", g.noun()),
        4 => format!("[]string{{\"{}\", fmt.Sprint({var})}}", g.noun()),
        _ => format!("{}(ctx, {var})", pascal(&g.camel_function())),
    }
}
