//! MCP servers and clients: the calls that make one (`FastMCP("weather")`,
//! `new McpServer({…})`, `server.NewMCPServer(…)`, `ClientSession(…)`) and the impl
//! blocks rmcp's attributes make a server, with the transport the file sets up, the
//! server a client starts or connects to, and the tools a server registers.

mod target;

use super::{argument, literal_argument, short, tools::decorator_symbol};
use crate::scan::facts::{Call, Expr};
use crate::scan::report::{Language, McpFinding, ToolFinding};
use crate::scan::resolve::{Resolver, Symbol};
use crate::scan::rules::{McpRule, Rules, Site, TransportRule};

const CONFIDENCE: f32 = 0.95;

pub fn mcp(
    file: &str,
    language: Language,
    resolver: &Resolver<'_>,
    rules: &Rules,
    tools: &[ToolFinding],
) -> Vec<McpFinding> {
    let facts = resolver.facts();
    let transport = transport(resolver, rules);
    let target = target::target(resolver, rules);
    let tool_names: Vec<String> =
        tools.iter().filter(|t| t.framework == "mcp").map(|t| t.name.clone()).collect();
    let mut out = Vec::new();
    // A client is opened in steps (`stdio_client(…)`, then `ClientSession(…)` on its
    // streams): one connection per function.
    let mut client_functions = Vec::new();
    for call in &facts.calls {
        let Some(Symbol::Path { path, .. }) = resolver.call_symbol(call) else {
            continue;
        };
        for site in rules.agents.calls(path) {
            let Site::Mcp(i) = site else { continue };
            let rule = &rules.agents.mcp[i];
            let server = rule.kind == "mcp_server";
            if !server {
                if client_functions.contains(&call.function) {
                    continue;
                }
                client_functions.push(call.function.clone());
            }
            out.push(McpFinding {
                kind: rule.kind.clone(),
                language,
                name: declared_name(rule, call, resolver).or_else(|| {
                    rule.name_from_variable
                        .then(|| resolver.bound_name(call.pos).map(str::to_owned))
                        .flatten()
                }),
                transport: transport.clone(),
                // A server is the target, not a client of one.
                target: if server { None } else { target.clone() },
                tools: if server { tool_names.clone() } else { Vec::new() },
                symbol: path.clone(),
                file: file.to_owned(),
                line: call.pos.line,
                column: call.pos.column,
                confidence: CONFIDENCE,
            });
        }
    }
    // rmcp: `#[tool_router] impl Calculator` (and `#[tool_handler]` on the same type) is one server.
    for class in &facts.classes {
        let serves = class.decorators.iter().any(|d| match decorator_symbol(d, class.pos, resolver) {
            Some(Symbol::Path { path, .. }) => {
                rules.agents.decorators(&path).any(|s| matches!(s, Site::Mcp(_)))
            }
            _ => false,
        });
        let name = short(&class.name).to_owned();
        if serves && !out.iter().any(|m| m.name.as_deref() == Some(name.as_str())) {
            out.push(McpFinding {
                kind: "mcp_server".into(),
                language,
                name: Some(name),
                transport: transport.clone(),
                target: None,
                tools: tool_names.clone(),
                symbol: class.name.clone(),
                file: file.to_owned(),
                line: class.pos.line,
                column: class.pos.column,
                confidence: CONFIDENCE,
            });
        }
    }
    out
}

/// The name the code gives the server or client: an argument of the call, or of the
/// construction the rule's `name_in` says the call is given (in place or by variable).
fn declared_name<'f>(rule: &McpRule, call: &'f Call, resolver: &Resolver<'f>) -> Option<String> {
    if rule.name_in.is_empty() {
        return literal_argument(resolver, call, &rule.name);
    }
    let holder = match argument(call, &rule.name_in)? {
        Expr::Call(holder) => holder,
        Expr::Name(variable) => {
            match &resolver.binding(variable, call.function.as_deref(), call.pos)?.value {
                Expr::Call(holder) => holder,
                _ => return None,
            }
        }
        _ => return None,
    };
    literal_argument(resolver, holder, &rule.name)
}

/// The transport the file sets up: the first transport it makes, or names at a run call.
fn transport(resolver: &Resolver<'_>, rules: &Rules) -> Option<String> {
    resolver.facts().calls.iter().find_map(|call| {
        let symbol = resolver.call_symbol(call)?;
        match symbol {
            Symbol::Path { path, .. } => rules
                .agents
                .transports_in(rules.agents.calls(path))
                .find_map(|rule| named(rule, call, resolver)),
            Symbol::Instance { class, rest, .. } => rules
                .agents
                .transports_in(rules.agents.classes(class))
                .filter(|rule| rule.methods.iter().any(|m| m == short(rest)))
                .find_map(|rule| named(rule, call, resolver)),
        }
    })
}

fn named(rule: &TransportRule, call: &Call, resolver: &Resolver<'_>) -> Option<String> {
    if rule.transport != "argument" {
        return Some(rule.transport.clone());
    }
    literal_argument(resolver, call, &rule.arg).or_else(|| rule.default.clone()).map(|t| t.replace('-', "_"))
}
