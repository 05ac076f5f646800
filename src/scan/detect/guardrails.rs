//! Guardrails an agent runs (OpenAI Agents SDK): the items of the lists its rule names
//! (`input_guardrails=[…]`, `output_guardrails=[…]`), each named through the
//! `[[guardrail]]` rules — a function a guardrail decorator marks, or a guardrail
//! construction — else after the variable or call that gives it.

use super::agents::{callee_name, list_items};
use super::{argument, literal_argument, short, tools::decorator_symbol};
use crate::scan::facts::{Call, Expr};
use crate::scan::report::{Guardrail, GuardrailKind};
use crate::scan::resolve::{Resolver, Symbol};
use crate::scan::rules::{AgentRule, ArgRef, GuardrailRule, Rules};

/// The guardrails the agent constructed by `call` is given, input ones first.
pub(super) fn guardrails<'f>(
    call: &'f Call,
    rule: &AgentRule,
    resolver: &Resolver<'f>,
    rules: &Rules,
) -> Vec<Guardrail> {
    let slots =
        [(GuardrailKind::Input, &rule.input_guardrails), (GuardrailKind::Output, &rule.output_guardrails)];
    let mut out = Vec::new();
    for (kind, at) in slots {
        let Some(list) = argument(call, at) else { continue };
        for item in list_items(list, call, resolver) {
            let named = name(item, call, rule, resolver, rules);
            out.extend(named.map(|name| Guardrail { name, kind }));
        }
    }
    out
}

/// A guardrail's name: declared where the rules say, else its function's, else the
/// variable's or factory's.
fn name<'f>(
    item: &'f Expr,
    call: &'f Call,
    agent: &AgentRule,
    resolver: &Resolver<'f>,
    rules: &Rules,
) -> Option<String> {
    match item {
        Expr::Name(variable) => Some(
            decorated(variable, resolver, rules)
                .or_else(|| match &resolver.binding(variable, call.function.as_deref(), call.pos)?.value {
                    Expr::Call(made) => constructed(made, resolver, rules),
                    Expr::Object(fields) => object_name(fields, call, agent, resolver, rules),
                    _ => None,
                })
                .unwrap_or_else(|| short(variable).to_owned()),
        ),
        Expr::Call(made) => constructed(made, resolver, rules).or_else(|| callee_name(made)),
        Expr::Object(fields) => object_name(fields, call, agent, resolver, rules),
        Expr::Str(name) => Some(name.clone()),
        _ => None,
    }
}

/// The name of the file's function `function` if a guardrail decorator marks it.
fn decorated<'f>(function: &str, resolver: &Resolver<'f>, rules: &Rules) -> Option<String> {
    let function = resolver.function(function)?;
    function.decorators.iter().find_map(|decorator| {
        let rule = guardrail_rule(decorator_symbol(decorator, function.pos, resolver)?, rules, true)?;
        let declared = match decorator {
            Expr::Call(with_args) => literal_argument(resolver, with_args, &rule.name),
            _ => None,
        };
        Some(declared.unwrap_or_else(|| function.short_name.clone()))
    })
}

/// The name a guardrail construction (`InputGuardrail(guardrail_function=f)`) gives.
fn constructed<'f>(made: &'f Call, resolver: &Resolver<'f>, rules: &Rules) -> Option<String> {
    // A call nested in an argument is not one of the file's call facts: resolve its callee.
    let symbol = resolver.symbol(&made.callee, made.function.as_deref(), made.pos)?;
    let rule = guardrail_rule(symbol, rules, false)?;
    literal_argument(resolver, made, &rule.name).or_else(|| match argument(made, &rule.function)? {
        Expr::Name(function) => Some(short(function).to_owned()),
        _ => None,
    })
}

/// The name a guardrail object (`{ name: "…", execute }`, JavaScript) declares, at the
/// keys the guardrail rules of the agent's framework name.
fn object_name<'f>(
    fields: &'f [(String, Expr)],
    call: &'f Call,
    agent: &AgentRule,
    resolver: &Resolver<'f>,
    rules: &Rules,
) -> Option<String> {
    let keys = rules.agents.guardrails.iter().filter(|g| g.framework == agent.framework);
    keys.flat_map(|g| &g.name).find_map(|key| {
        let ArgRef::Name(key) = key else { return None };
        let (_, value) = fields.iter().find(|(k, _)| k == key)?;
        resolver.literal(value, call.function.as_deref(), call.pos)
    })
}

fn guardrail_rule<'r>(symbol: Symbol<'_>, rules: &'r Rules, decorator: bool) -> Option<&'r GuardrailRule> {
    let Symbol::Path { path, .. } = symbol else { return None };
    let agents = &rules.agents;
    if decorator {
        agents.guardrails_in(agents.decorators(&path)).next()
    } else {
        agents.guardrails_in(agents.calls(&path)).next()
    }
}
