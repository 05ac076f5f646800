//! Agents: calls that construct one (`Agent(role=…)`, `create_react_agent(model, tools)`)
//! and functions an agent decorator marks (CrewAI's `@agent` methods), with their name,
//! role, goal, instructions, model, tools and handoffs.

use std::collections::HashMap;

use super::{argument, literal_argument, short};
use crate::scan::facts::{Call, Expr, Function, Pos};
use crate::scan::report::{AgentFinding, LlmCall, ToolFinding};
use crate::scan::resolve::{Resolver, Symbol};
use crate::scan::rules::{AgentRule, Rules};

use super::crew::{config_key, AgentConfig};

const CONSTRUCTED: f32 = 0.95;
const DECORATED: f32 = 0.9;

/// What agents need from the findings made before them.
pub struct Known<'a> {
    pub llm_calls: &'a [LlmCall],
    pub tools: &'a [ToolFinding],
    /// CrewBase agents' YAML configs, by agent key.
    pub crew_configs: &'a HashMap<String, AgentConfig>,
}

pub fn agents(file: &str, resolver: &Resolver<'_>, rules: &Rules, known: &Known<'_>) -> Vec<AgentFinding> {
    let facts = resolver.facts();
    let decorated: HashMap<&str, (&Function, &AgentRule)> = facts
        .functions
        .iter()
        .filter_map(|f| Some((f.name.as_str(), (f, agent_decorator(f, resolver, rules)?))))
        .collect();
    let mut out: Vec<AgentFinding> = Vec::new();
    // Each agent's variable, for handoffs given by variable.
    let mut by_variable: HashMap<&str, usize> = HashMap::new();
    let mut handoff_exprs: Vec<Option<&Expr>> = Vec::new();
    let mut named_functions = Vec::new();
    for call in &facts.calls {
        let Some(rule) = call_rule(call, resolver, rules) else { continue };
        // `AgentExecutor(agent=agent, tools=tools)` runs an agent found already.
        let wrapped = argument(call, &rule.wraps).and_then(|a| match a {
            Expr::Name(variable) => by_variable.get(variable.as_str()).copied(),
            _ => None,
        });
        if let Some(agent) = wrapped {
            if out[agent].tools.is_empty() {
                out[agent].tools = argument(call, &rule.tools)
                    .map(|t| tool_names(t, call, resolver, known))
                    .unwrap_or_default();
            }
            if let Some(variable) = resolver.bound_name(call.pos) {
                by_variable.insert(variable, agent);
            }
            continue;
        }
        // Inside an `@agent` method the method names the agent.
        let method = call.function.as_deref().and_then(|f| decorated.get(f));
        if let Some((function, _)) = method {
            named_functions.push(function.name.as_str());
        }
        let name = literal_argument(resolver, call, &rule.name)
            .or_else(|| method.map(|(f, _)| f.short_name.clone()))
            .or_else(|| resolver.bound_name(call.pos).map(|v| short(v).to_owned()))
            .unwrap_or_else(|| rule.framework.clone());
        if let Some(variable) = resolver.bound_name(call.pos) {
            by_variable.insert(variable, out.len());
        }
        handoff_exprs.push(argument(call, &rule.handoffs));
        let config =
            call.arg(Some("config"), None).and_then(config_key).and_then(|k| known.crew_configs.get(k));
        let config = config.cloned().unwrap_or_default();
        out.push(AgentFinding {
            kind: "agent".into(),
            framework: rule.framework.clone(),
            name,
            role: literal_argument(resolver, call, &rule.role).or(config.role),
            goal: literal_argument(resolver, call, &rule.goal).or(config.goal),
            instructions: literal_argument(resolver, call, &rule.instructions).or(config.backstory),
            model: argument(call, &rule.model).and_then(|m| model(m, call, resolver, known)).or(config.llm),
            tools: argument(call, &rule.tools)
                .map(|t| tool_names(t, call, resolver, known))
                .unwrap_or_default(),
            handoffs: Vec::new(),
            guardrails: super::guardrails::guardrails(call, rule, resolver, rules),
            symbol: resolver.call_symbol(call).map(|s| s.display()).unwrap_or_default(),
            file: file.to_owned(),
            line: call.pos.line,
            column: call.pos.column,
            confidence: CONSTRUCTED,
        });
    }
    let names: Vec<String> = out.iter().map(|a| a.name.clone()).collect();
    for (agent, handoffs) in out.iter_mut().zip(handoff_exprs) {
        agent.handoffs = handoffs.map(|h| members(h, &by_variable, &names)).unwrap_or_default();
    }
    // An `@agent` method whose agent the scanner did not see constructed.
    for (function, rule) in decorated.values() {
        if !named_functions.contains(&function.name.as_str()) {
            let config = known.crew_configs.get(&function.short_name).cloned().unwrap_or_default();
            out.push(AgentFinding {
                kind: "agent".into(),
                framework: rule.framework.clone(),
                name: function.short_name.clone(),
                role: config.role,
                goal: config.goal,
                instructions: config.backstory.or_else(|| function.doc.clone()),
                model: config.llm,
                tools: Vec::new(),
                handoffs: Vec::new(),
                guardrails: Vec::new(),
                symbol: function.name.clone(),
                file: file.to_owned(),
                line: function.pos.line,
                column: function.pos.column,
                confidence: DECORATED,
            });
        }
    }
    out.sort_by_key(|a| (a.line, a.column));
    out
}

fn agent_decorator<'r>(
    function: &Function,
    resolver: &Resolver<'_>,
    rules: &'r Rules,
) -> Option<&'r AgentRule> {
    function.decorators.iter().find_map(|d| {
        match super::tools::decorator_symbol(d, function.pos, resolver)? {
            Symbol::Path { path, .. } => rules.agents.agents_in(rules.agents.decorators(&path)).next(),
            Symbol::Instance { .. } => None,
        }
    })
}

fn call_rule<'r>(call: &Call, resolver: &Resolver<'_>, rules: &'r Rules) -> Option<&'r AgentRule> {
    match resolver.call_symbol(call)? {
        Symbol::Path { path, .. } => rules.agents.agents_in(rules.agents.calls(path)).next(),
        Symbol::Instance { .. } => None,
    }
}

/// The model an agent is given: a literal, or the model of the LLM object it is passed
/// (constructed in place or bound to a variable).
fn model(expr: &Expr, call: &Call, resolver: &Resolver<'_>, known: &Known<'_>) -> Option<String> {
    if let Some(model) = resolver.literal(expr, call.function.as_deref(), call.pos) {
        return Some(model);
    }
    let site = made_at(expr, call, resolver)?;
    known
        .llm_calls
        .iter()
        .find(|c| (c.line, c.column) == (site.line, site.column))
        .and_then(|c| c.model.clone())
}

/// Where the object `expr` stands for was made: a call in place, or the call a
/// variable is bound to.
fn made_at(expr: &Expr, call: &Call, resolver: &Resolver<'_>) -> Option<Pos> {
    match expr {
        Expr::Call(made) => Some(made.pos),
        Expr::Name(name) => match &resolver.binding(name, call.function.as_deref(), call.pos)?.value {
            Expr::Call(made) => Some(made.pos),
            _ => None,
        },
        _ => None,
    }
}

/// The names of the tools in an agent's tool list.
fn tool_names(expr: &Expr, call: &Call, resolver: &Resolver<'_>, known: &Known<'_>) -> Vec<String> {
    list_items(expr, call, resolver)
        .iter()
        .filter_map(|item| {
            // A decorated function or tool class of this file (passed, or instantiated in
            // place): the tool's declared name.
            let implementation = match item {
                Expr::Name(name) => Some(name.clone()),
                Expr::Call(made) => callee_name(made),
                _ => None,
            };
            if let Some(implementation) = implementation {
                let declared = known
                    .tools
                    .iter()
                    .find(|t| t.function.as_deref().is_some_and(|f| short(f) == implementation));
                if let Some(tool) = declared {
                    return Some(tool.name.clone());
                }
            }
            if let Some(site) = made_at(item, call, resolver) {
                if let Some(tool) =
                    known.tools.iter().find(|t| (t.line, t.column) == (site.line, site.column))
                {
                    return Some(tool.name.clone());
                }
            }
            match item {
                Expr::Str(s) => Some(s.clone()),
                Expr::Name(name) => {
                    match resolver.binding(name, call.function.as_deref(), call.pos).map(|b| &b.value) {
                        // `search = SerperDevTool()`: the tool's class.
                        Some(Expr::Call(made)) => callee_name(made),
                        _ => Some(short(name).to_owned()),
                    }
                }
                Expr::Call(made) => callee_name(made),
                _ => None,
            }
        })
        .collect()
}

/// The items of a list an agent is given (tools, guardrails): a list in place, the list
/// a variable holds (`tools = [search, calc]` … `tools=tools`), else the one value.
pub(super) fn list_items<'e>(expr: &'e Expr, call: &Call, resolver: &Resolver<'e>) -> &'e [Expr] {
    match expr {
        Expr::List(items) => items.as_slice(),
        Expr::Name(name) => {
            match resolver.binding(name, call.function.as_deref(), call.pos).map(|b| &b.value) {
                Some(Expr::List(items)) => items.as_slice(),
                _ => std::slice::from_ref(expr),
            }
        }
        other => std::slice::from_ref(other),
    }
}

pub(super) fn callee_name(call: &Call) -> Option<String> {
    match &call.callee {
        Expr::Name(name) => Some(short(name).to_owned()),
        Expr::Member(_, path) => Some(short(path).to_owned()),
        _ => None,
    }
}

/// Agent names from a list of agent variables (or of literal names).
pub(crate) fn members(expr: &Expr, by_variable: &HashMap<&str, usize>, names: &[String]) -> Vec<String> {
    let items = match expr {
        Expr::List(items) => items.as_slice(),
        other => std::slice::from_ref(other),
    };
    items
        .iter()
        .filter_map(|item| match item {
            Expr::Name(variable) => Some(
                by_variable
                    .get(variable.as_str())
                    .map_or_else(|| short(variable).to_owned(), |&i| names[i].clone()),
            ),
            Expr::Str(name) => Some(name.clone()),
            // `self.researcher()` in a CrewBase crew: the method names the agent.
            Expr::Call(call) => match &call.callee {
                Expr::Name(method) => method.strip_prefix("self.").map(str::to_owned),
                _ => None,
            },
            _ => None,
        })
        .collect()
}
