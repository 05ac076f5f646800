//! Graphs between agents where the code states one: LangGraph's `StateGraph` with its
//! nodes and (conditional) edges, teams that list their members (`Crew(agents=[…])`,
//! group chats), and handoffs between agents.

use std::collections::{BTreeSet, HashMap};

use super::{argument, short};
use crate::scan::facts::{Call, Expr, Pos};
use crate::scan::report::{AgentFinding, AgentGraph, GraphEdge};
use crate::scan::resolve::{Resolver, Symbol};
use crate::scan::rules::{GraphRule, Rules};

pub fn graphs(
    file: &str,
    resolver: &Resolver<'_>,
    rules: &Rules,
    agents: &[AgentFinding],
) -> Vec<AgentGraph> {
    let facts = resolver.facts();
    let mut graphs: Vec<(Pos, &GraphRule, AgentGraph)> = Vec::new();
    let agent_names: Vec<String> = agents.iter().map(|a| a.name.clone()).collect();
    let by_variable: HashMap<&str, usize> = agents
        .iter()
        .enumerate()
        .filter_map(|(i, a)| Some((resolver.bound_name(Pos { line: a.line, column: a.column })?, i)))
        .collect();
    for call in &facts.calls {
        let Some(symbol) = resolver.call_symbol(call) else {
            continue;
        };
        match symbol {
            Symbol::Path { path, .. } => {
                let Some(rule) = rules.agents.graphs_in(rules.agents.calls(path)).next() else { continue };
                let nodes = match argument(call, &rule.members) {
                    // A CrewBase crew's `agents=self.agents`: every agent its methods make.
                    Some(Expr::Name(name)) if name == "self.agents" => agents
                        .iter()
                        .filter(|a| a.framework == rule.framework)
                        .map(|a| a.name.clone())
                        .collect(),
                    Some(members) => super::agents::members(members, &by_variable, &agent_names),
                    None => Vec::new(),
                };
                let name = resolver.bound_name(call.pos).or(call.function.as_deref()).map(short);
                let mut graph = AgentGraph {
                    framework: rule.framework.clone(),
                    name: name.map_or_else(|| rule.framework.clone(), str::to_owned),
                    nodes,
                    edges: Vec::new(),
                    file: file.to_owned(),
                    line: call.pos.line,
                };
                let root = argument(call, &rule.root).and_then(|r| root(r, &by_variable, &agent_names));
                if let Some(root) = root {
                    add_edge(&mut graph, "__start__".into(), root, false);
                }
                graphs.push((call.pos, rule, graph));
            }
            // `graph.add_node(…)` on a graph this file made.
            Symbol::Instance { rest, origin: Some(origin), .. } => {
                if let Some((_, rule, graph)) = graphs.iter_mut().find(|(pos, _, _)| *pos == origin.pos) {
                    build(graph, rule, short(rest), call, resolver);
                }
            }
            Symbol::Instance { .. } => {}
        }
    }
    let mut out: Vec<AgentGraph> = graphs.into_iter().map(|(_, _, g)| g).collect();
    out.extend(handoffs(file, agents));
    out.extend(super::flow::flows(file, resolver, rules));
    out
}

/// The member a team starts with: its name, the variable of an agent of this file, or an
/// attribute of one (`research_agent.name`).
fn root(expr: &Expr, by_variable: &HashMap<&str, usize>, names: &[String]) -> Option<String> {
    match expr {
        Expr::Str(name) => Some(name.clone()),
        Expr::Name(path) => {
            let owner = path.rsplit_once('.').map(|(owner, _)| owner);
            let agent = by_variable.get(path.as_str()).or_else(|| by_variable.get(owner?))?;
            Some(names[*agent].clone())
        }
        _ => None,
    }
}

/// Applies one builder call to the graph.
fn build(graph: &mut AgentGraph, rule: &GraphRule, method: &str, call: &Call, resolver: &Resolver<'_>) {
    let is = |names: &[String]| names.iter().any(|n| n == method);
    let node = |expr: &Expr| node_name(expr, call, resolver);
    if is(&rule.add_node) {
        if let Some(name) = call.args.first().and_then(node) {
            add_node(graph, name);
        }
    } else if is(&rule.add_edge) {
        let (Some(from), Some(to)) = (call.args.first(), call.args.get(1)) else { return };
        let sources = match from {
            Expr::List(items) => items.iter().filter_map(node).collect(),
            one => node(one).into_iter().collect::<Vec<_>>(),
        };
        if let Some(to) = node(to) {
            for from in sources {
                add_edge(graph, from, to.clone(), false);
            }
        }
    } else if is(&rule.conditional) {
        let Some(from) = call.args.first().and_then(node) else { return };
        let targets: Vec<String> = match call.arg(Some("path_map"), Some(2)) {
            Some(Expr::Object(map)) => map.iter().filter_map(|(_, v)| node(v)).collect(),
            Some(Expr::List(items)) => items.iter().filter_map(node).collect(),
            _ => Vec::new(),
        };
        for to in targets {
            add_edge(graph, from.clone(), to, true);
        }
    } else if is(&rule.entry) {
        if let Some(to) = call.args.first().and_then(node) {
            add_edge(graph, "__start__".into(), to, false);
        }
    } else if is(&rule.finish) {
        if let Some(from) = call.args.first().and_then(node) {
            add_edge(graph, from, "__end__".into(), false);
        }
    }
}

/// A node's name: a literal or constant (`START`, `END`), else the function passed.
fn node_name(expr: &Expr, call: &Call, resolver: &Resolver<'_>) -> Option<String> {
    resolver.literal(expr, call.function.as_deref(), call.pos).or_else(|| match expr {
        Expr::Name(name) => Some(short(name).to_owned()),
        _ => None,
    })
}

pub(crate) fn add_node(graph: &mut AgentGraph, name: String) {
    if !graph.nodes.contains(&name) {
        graph.nodes.push(name);
    }
}

pub(crate) fn add_edge(graph: &mut AgentGraph, from: String, to: String, conditional: bool) {
    for node in [&from, &to] {
        if !node.starts_with("__") {
            add_node(graph, node.clone());
        }
    }
    let edge = GraphEdge { from, to, conditional };
    if !graph.edges.contains(&edge) {
        graph.edges.push(edge);
    }
}

/// Agents that hand off to others (OpenAI Agents SDK, AutoGen swarms, supervisors): one
/// graph per framework in the file.
fn handoffs(file: &str, agents: &[AgentFinding]) -> Vec<AgentGraph> {
    let frameworks: BTreeSet<&str> =
        agents.iter().filter(|a| !a.handoffs.is_empty()).map(|a| a.framework.as_str()).collect();
    frameworks
        .into_iter()
        .map(|framework| {
            let mut graph = AgentGraph {
                framework: framework.to_owned(),
                name: "handoffs".into(),
                nodes: Vec::new(),
                edges: Vec::new(),
                file: file.to_owned(),
                line: agents.iter().find(|a| a.framework == framework).map_or(1, |a| a.line),
            };
            for agent in agents.iter().filter(|a| a.framework == framework) {
                for to in &agent.handoffs {
                    add_edge(&mut graph, agent.name.clone(), to.clone(), false);
                }
            }
            graph
        })
        .collect()
}
