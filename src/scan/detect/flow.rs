//! Event-driven flows, as a graph of a class's methods: CrewAI Flows, whose `@start()`
//! methods begin and whose `@listen(step)` / `@router(step)` methods follow other steps,
//! and LlamaIndex workflows, whose `@step` methods follow the steps making the event they
//! take (`events`).

mod events;

use super::{short, tools::decorator_symbol};
use crate::scan::facts::{Class, Expr, Function};
use crate::scan::report::AgentGraph;
use crate::scan::resolve::{Resolver, Symbol};
use crate::scan::rules::{FlowRule, Rules};

pub fn flows(file: &str, resolver: &Resolver<'_>, rules: &Rules) -> Vec<AgentGraph> {
    let facts = resolver.facts();
    let mut out = Vec::new();
    for class in &facts.classes {
        let Some(rule) = flow_rule(class, resolver, rules) else { continue };
        let mut graph = AgentGraph {
            framework: rule.framework.clone(),
            name: short(&class.name).to_owned(),
            nodes: Vec::new(),
            edges: Vec::new(),
            file: file.to_owned(),
            line: class.pos.line,
        };
        let prefix = format!("{}.", class.name);
        let methods: Vec<&Function> = facts
            .functions
            .iter()
            .filter(|f| f.name.strip_prefix(&prefix).is_some_and(|m| !m.contains('.')))
            .collect();
        if !rule.steps.is_empty() {
            events::chain(&mut graph, &methods, rule, resolver);
            out.push(graph);
            continue;
        }
        for method in methods {
            for decorator in &method.decorators {
                let Some(Symbol::Path { path, .. }) = decorator_symbol(decorator, method.pos, resolver)
                else {
                    continue;
                };
                if rule.start.contains(&path) {
                    super::graph::add_edge(&mut graph, "__start__".into(), method.short_name.clone(), false);
                } else if rule.listen.contains(&path) {
                    let Expr::Call(call) = decorator else { continue };
                    for step in call.args.iter().flat_map(|a| steps(a, rule, resolver)) {
                        super::graph::add_edge(&mut graph, step, method.short_name.clone(), false);
                    }
                }
            }
        }
        out.push(graph);
    }
    out
}

fn flow_rule<'r>(class: &Class, resolver: &Resolver<'_>, rules: &'r Rules) -> Option<&'r FlowRule> {
    class.bases.iter().find_map(|base| {
        // `Flow[State]`: the generic's base.
        let base = match base {
            Expr::Subscript(inner, _) => inner,
            other => other,
        };
        match resolver.symbol(base, None, class.pos)? {
            Symbol::Path { path, .. } => rules.agents.flows_in(rules.agents.bases(&path)).next(),
            Symbol::Instance { .. } => None,
        }
    })
}

/// The steps a listen argument names: a method, a method's name or router label, or a
/// combination of them.
fn steps(arg: &Expr, rule: &FlowRule, resolver: &Resolver<'_>) -> Vec<String> {
    match arg {
        Expr::Str(label) => vec![label.clone()],
        Expr::Name(method) => vec![short(method).to_owned()],
        Expr::Call(call) => match resolver.symbol(&call.callee, None, call.pos) {
            Some(Symbol::Path { path, .. }) if rule.combinators.contains(&path) => {
                call.args.iter().flat_map(|a| steps(a, rule, resolver)).collect()
            }
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}
