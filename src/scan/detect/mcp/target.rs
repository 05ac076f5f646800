//! The server an MCP client starts or connects to, from the transport it makes: a
//! command line (`StdioServerParameters(command="python", args=["server.py"])`,
//! `exec.Command("npx", "-y", pkg)`, `Command::new("npx").arg("-y")`) or a URL
//! (`new URL("http://…")`). Only the literal part is reported: a command line stops at
//! its first word the code computes.

use crate::scan::detect::agents::list_items;
use crate::scan::detect::argument;
use crate::scan::facts::{Call, Expr};
use crate::scan::resolve::{Resolver, Symbol};
use crate::scan::rules::{Rules, TransportRule};

/// How many variables `words` follows; a cycle (`a = b`, `b = a`) ends here.
const MAX_DEPTH: usize = 8;

/// The first target a client transport of the file names.
pub(super) fn target(resolver: &Resolver<'_>, rules: &Rules) -> Option<String> {
    resolver.facts().calls.iter().find_map(|call| {
        let Some(Symbol::Path { path, .. }) = resolver.call_symbol(call) else { return None };
        rules.agents.transports_in(rules.agents.calls(path)).find_map(|rule| named(rule, call, resolver))
    })
}

/// The command line or URL `call` gives where `rule` says.
fn named<'f>(rule: &TransportRule, call: &'f Call, resolver: &Resolver<'f>) -> Option<String> {
    let (mut words, complete) = spell(argument(call, &rule.target)?, call, resolver, MAX_DEPTH);
    if words.is_empty() {
        return None;
    }
    if !complete {
        return Some(words.join(" "));
    }
    let mut rest: Vec<&Expr> = argument(call, &rule.target_args)
        .map(|a| list_items(a, call, resolver).iter().collect())
        .unwrap_or_default();
    rest.extend(rule.target_rest.and_then(|from| call.args.get(from..)).unwrap_or_default());
    words.extend(rest.into_iter().map_while(|arg| resolver.literal(arg, call.function.as_deref(), call.pos)));
    Some(words.join(" "))
}

/// The literal words `expr` spells, up to the first it does not — a literal, a list of
/// them, a call (`exec.Command("npx", "-y")`, `new URL("…")`) after the calls it is
/// chained on (`Command::new("npx").arg("-y")`), or a variable holding one of these —
/// and whether they are all of them (no word was computed).
fn spell<'f>(expr: &'f Expr, at: &'f Call, resolver: &Resolver<'f>, depth: usize) -> (Vec<String>, bool) {
    if let Some(literal) = resolver.literal(expr, at.function.as_deref(), at.pos) {
        return (vec![literal], true);
    }
    match expr {
        Expr::Name(name) if depth > 0 => match resolver.binding(name, at.function.as_deref(), at.pos) {
            Some(binding) => spell(&binding.value, at, resolver, depth - 1),
            None => (Vec::new(), false),
        },
        Expr::List(items) => literal_prefix(items, at, resolver),
        Expr::Call(call) => {
            let (mut out, complete) = match &call.callee {
                Expr::Member(base, _) => spell(base, at, resolver, depth),
                _ => (Vec::new(), true),
            };
            if !complete {
                return (out, false);
            }
            let (args, complete) = literal_prefix(&call.args, at, resolver);
            out.extend(args);
            (out, complete)
        }
        _ => (Vec::new(), false),
    }
}

fn literal_prefix<'f>(items: &'f [Expr], at: &'f Call, resolver: &Resolver<'f>) -> (Vec<String>, bool) {
    let words: Vec<String> =
        items.iter().map_while(|item| resolver.literal(item, at.function.as_deref(), at.pos)).collect();
    let complete = words.len() == items.len();
    (words, complete)
}

#[cfg(test)]
mod tests {
    use super::target;
    use crate::scan::extract::extract;
    use crate::scan::report::Language;
    use crate::scan::resolve::Resolver;
    use crate::scan::rules::Rules;

    fn target_of(language: Language, source: &str) -> Option<String> {
        let facts = extract(language, source).expect("the source parses");
        let rules = Rules::built_in();
        target(&Resolver::new(&facts, rules, language == Language::Rust), rules)
    }

    #[test]
    fn a_command_line_stops_at_its_first_computed_word() {
        let python = "from mcp import StdioServerParameters\n\ndef run(script):\n    \
                      p = StdioServerParameters(command=\"uv\", args=[\"run\", script, \"--verbose\"])\n";
        assert_eq!(target_of(Language::Python, python).as_deref(), Some("uv run"));
        let rust = "use rmcp::transport::TokioChildProcess;\nuse tokio::process::Command;\n\
                    fn f(pkg: &str) { let t = TokioChildProcess::new(Command::new(\"npx\").arg(\"-y\").arg(pkg).arg(\"x\")); }\n";
        assert_eq!(target_of(Language::Rust, rust).as_deref(), Some("npx -y"));
    }

    #[test]
    fn a_computed_command_is_no_target() {
        let go = "package main\n\nimport (\n\t\"os/exec\"\n\t\"github.com/modelcontextprotocol/go-sdk/mcp\"\n)\n\n\
                  func f(args []string) {\n\tt := &mcp.CommandTransport{Command: exec.Command(args[0], \"-v\")}\n}\n";
        assert_eq!(target_of(Language::Go, go), None);
    }

    #[test]
    fn variables_are_followed_to_the_call_that_spells_the_command() {
        let go = "package main\n\nimport (\n\t\"os/exec\"\n\t\"github.com/modelcontextprotocol/go-sdk/mcp\"\n)\n\n\
                  func f() {\n\tcmd := exec.Command(\"myserver\", \"--stdio\")\n\t\
                  t := &mcp.CommandTransport{Command: cmd}\n}\n";
        assert_eq!(target_of(Language::Go, go).as_deref(), Some("myserver --stdio"));
    }
}
