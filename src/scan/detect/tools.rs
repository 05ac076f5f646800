//! Tools: functions a tool decorator marks (`@tool("search")`, `@mcp.tool()`,
//! `#[tool]`), classes on a tool base class, and calls that make or register one
//! (`StructuredTool.from_function`, `server.registerTool`, `mcp.NewTool`).

use super::{argument, literal_argument, short};
use crate::scan::facts::{Call, Class, Expr, Function, Pos};
use crate::scan::report::{ToolFinding, ToolParameter};
use crate::scan::resolve::{Resolver, Symbol};
use crate::scan::rules::{Rules, ToolRule};

/// Decorated functions and tool classes are certain; calls matched by symbol nearly so.
const DECLARED: f32 = 0.95;
const REGISTERED: f32 = 0.9;

pub fn tools(file: &str, resolver: &Resolver<'_>, rules: &Rules) -> Vec<ToolFinding> {
    let facts = resolver.facts();
    let mut out = Vec::new();
    for function in &facts.functions {
        for decorator in &function.decorators {
            if let Some(rule) = decorator_rule(decorator, function.pos, resolver, rules) {
                out.push(decorated(file, function, decorator, rule, resolver));
            }
        }
    }
    for class in &facts.classes {
        if let Some(rule) = base_rule(class, resolver, rules) {
            out.push(tool_class(file, class, rule, resolver));
        }
    }
    for call in &facts.calls {
        if let Some(rule) = call_rule(call, resolver, rules) {
            out.extend(made(file, call, rule, resolver));
        }
    }
    out
}

/// What a decorator (a name, or a call of one) resolves to, with its call if called.
pub(crate) fn decorator_symbol<'f>(
    decorator: &'f Expr,
    at: Pos,
    resolver: &Resolver<'f>,
) -> Option<Symbol<'f>> {
    match decorator {
        Expr::Call(call) => resolver.symbol(&call.callee, None, call.pos),
        other => resolver.symbol(other, None, at),
    }
}

fn decorator_rule<'r>(
    decorator: &Expr,
    at: Pos,
    resolver: &Resolver<'_>,
    rules: &'r Rules,
) -> Option<&'r ToolRule> {
    match decorator_symbol(decorator, at, resolver)? {
        Symbol::Path { path, .. } => rules.agents.tools_in(rules.agents.decorators(&path)).next(),
        Symbol::Instance { class, rest, .. } => rules
            .agents
            .tools_in(rules.agents.classes(&class))
            .find(|tool| tool.decorator_methods.contains(&rest)),
    }
}

fn decorated(
    file: &str,
    function: &Function,
    decorator: &Expr,
    rule: &ToolRule,
    resolver: &Resolver<'_>,
) -> ToolFinding {
    let call = match decorator {
        Expr::Call(call) => Some(&**call),
        _ => None,
    };
    let stated = |at| call.and_then(|c| literal_argument(resolver, c, at));
    ToolFinding {
        kind: "tool".into(),
        framework: rule.framework.clone(),
        name: stated(&rule.name).unwrap_or_else(|| function.short_name.clone()),
        description: stated(&rule.description).or_else(|| function.doc.as_deref().map(summary)),
        parameters: parameters(function),
        function: Some(function.name.clone()),
        file: file.to_owned(),
        line: function.pos.line,
        column: function.pos.column,
        confidence: DECLARED,
    }
}

fn parameters(function: &Function) -> Vec<ToolParameter> {
    function
        .params
        .iter()
        // Framework-injected context parameters are not the tool's inputs.
        .filter(|p| !matches!(p.name.as_str(), "ctx" | "context" | "run_context" | "wrapper"))
        .map(|p| ToolParameter { name: p.name.clone(), ty: p.ty.clone(), required: p.default.is_none() })
        .collect()
}

fn base_rule<'r>(class: &Class, resolver: &Resolver<'_>, rules: &'r Rules) -> Option<&'r ToolRule> {
    class.bases.iter().find_map(|base| match resolver.symbol(base, None, class.pos)? {
        Symbol::Path { path, .. } => rules.agents.tools_in(rules.agents.bases(&path)).next(),
        Symbol::Instance { .. } => None,
    })
}

/// A class-based tool: its `name` and `description` class attributes, else its name and doc.
fn tool_class(file: &str, class: &Class, rule: &ToolRule, resolver: &Resolver<'_>) -> ToolFinding {
    let end = Pos { line: usize::MAX, column: 0 };
    let attribute = |attr: &str| {
        let binding = resolver.binding(&format!("{}.{attr}", class.name), None, end)?;
        resolver.literal(&binding.value, None, binding.pos)
    };
    let run = ["_run", "run", "forward", "call", "__call__"]
        .iter()
        .find_map(|m| resolver.function(&format!("{}.{m}", class.name)));
    ToolFinding {
        kind: "tool".into(),
        framework: rule.framework.clone(),
        name: attribute("name").unwrap_or_else(|| short(&class.name).to_owned()),
        description: attribute("description").or_else(|| class.doc.as_deref().map(summary)),
        parameters: run.map(parameters).unwrap_or_default(),
        function: Some(class.name.clone()),
        file: file.to_owned(),
        line: class.pos.line,
        column: class.pos.column,
        confidence: DECLARED,
    }
}

fn call_rule<'r>(call: &Call, resolver: &Resolver<'_>, rules: &'r Rules) -> Option<&'r ToolRule> {
    match resolver.call_symbol(call)? {
        Symbol::Path { path, .. } => rules.agents.tools_in(rules.agents.calls(path)).next(),
        Symbol::Instance { class, rest, .. } => rules
            .agents
            .tools_in(rules.agents.classes(class))
            .find(|tool| tool.methods.iter().any(|m| m == short(rest))),
    }
}

/// A tool made or registered by a call; its implementing function, when passed by
/// name, gives the name, description and parameters the call does not state.
fn made(file: &str, call: &Call, rule: &ToolRule, resolver: &Resolver<'_>) -> Option<ToolFinding> {
    let implementation = argument(call, &rule.function).and_then(|f| match f {
        Expr::Name(name) => {
            resolver.facts().functions.iter().find(|func| func.short_name == *name || func.name == *name)
        }
        _ => None,
    });
    let name = literal_argument(resolver, call, &rule.name)
        .or_else(|| implementation.map(|f| f.short_name.clone()))?;
    let description = literal_argument(resolver, call, &rule.description)
        .or_else(|| option_description(call, rule, resolver))
        .or_else(|| implementation.and_then(|f| f.doc.as_deref().map(summary)));
    Some(ToolFinding {
        kind: "tool".into(),
        framework: rule.framework.clone(),
        name,
        description,
        parameters: implementation.map(parameters).unwrap_or_default(),
        function: implementation.map(|f| f.name.clone()).or_else(|| call.function.clone()),
        file: file.to_owned(),
        line: call.pos.line,
        column: call.pos.column,
        confidence: REGISTERED,
    })
}

/// mcp-go's `mcp.WithDescription("…")` among a tool's options.
fn option_description(call: &Call, rule: &ToolRule, resolver: &Resolver<'_>) -> Option<String> {
    call.args.iter().find_map(|arg| {
        let Expr::Call(option) = arg else { return None };
        match resolver.symbol(&option.callee, option.function.as_deref(), option.pos)? {
            Symbol::Path { path, .. } if rule.description_option.contains(&path) => {
                resolver.literal(option.args.first()?, option.function.as_deref(), option.pos)
            }
            _ => None,
        }
    })
}

/// A docstring as a tool description: the text before its argument and return sections
/// (Google, NumPy and Sphinx styles), which describe parameters, not the tool.
fn summary(doc: &str) -> String {
    const SECTIONS: &[&str] = &[
        "Args:",
        "Arguments:",
        "Parameters:",
        "Params:",
        "Returns:",
        "Raises:",
        "Parameters\n--",
        "Returns\n--",
        ":param",
        "@param",
    ];
    let end = SECTIONS.iter().filter_map(|s| doc.find(s)).min().unwrap_or(doc.len());
    doc[..end].trim().to_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn descriptions_stop_before_argument_sections() {
        assert_eq!(super::summary("Returns the time.\n\nArgs:\nzone: a zone."), "Returns the time.");
        assert_eq!(super::summary("Adds.\n:param a: first"), "Adds.");
        assert_eq!(super::summary("Plain."), "Plain.");
    }
}
