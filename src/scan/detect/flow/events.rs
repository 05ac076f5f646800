//! Flows chained by event types (LlamaIndex workflows): a step takes the events its
//! parameters are annotated with and makes the events it constructs (returned or sent),
//! so it leads to every step taking one of those; a start event's takers follow
//! `__start__`, a stop event's makers lead to `__end__`.

use std::collections::HashSet;

use crate::scan::detect::{graph::add_edge, graph::add_node, tools::decorator_symbol};
use crate::scan::facts::Function;
use crate::scan::report::AgentGraph;
use crate::scan::resolve::{Resolver, Symbol};
use crate::scan::rules::FlowRule;

/// One step: its name, the event types it takes and those it makes.
struct Step {
    name: String,
    takes: HashSet<String>,
    makes: HashSet<String>,
}

/// Adds the class's steps among `methods`, and the edges their events make, to `graph`.
pub(super) fn chain(graph: &mut AgentGraph, methods: &[&Function], rule: &FlowRule, resolver: &Resolver<'_>) {
    let steps: Vec<Step> = methods
        .iter()
        .filter(|m| is_step(m, rule, resolver))
        .map(|m| Step { name: m.short_name.clone(), takes: takes(m, resolver), makes: makes(m, resolver) })
        .collect();
    for step in &steps {
        add_node(graph, step.name.clone());
        if rule.start_events.iter().any(|e| step.takes.contains(e)) {
            add_edge(graph, "__start__".into(), step.name.clone(), false);
        }
    }
    for from in &steps {
        for to in steps.iter().filter(|to| !from.makes.is_disjoint(&to.takes)) {
            add_edge(graph, from.name.clone(), to.name.clone(), false);
        }
        if rule.stop_events.iter().any(|e| from.makes.contains(e)) {
            add_edge(graph, from.name.clone(), "__end__".into(), false);
        }
    }
}

fn is_step(method: &Function, rule: &FlowRule, resolver: &Resolver<'_>) -> bool {
    method.decorators.iter().any(|d| {
        matches!(decorator_symbol(d, method.pos, resolver), Some(Symbol::Path { path, .. }) if rule.steps.contains(&path))
    })
}

/// The types a step's parameters are annotated with, each member of a union
/// (`JokeEvent | CritiqueEvent`, `Union[A, B]`) on its own, qualified.
fn takes(method: &Function, resolver: &Resolver<'_>) -> HashSet<String> {
    let types = method.params.iter().filter_map(|p| p.ty.as_deref());
    types
        .flat_map(|ty| ty.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.')))
        .filter(|name| !name.is_empty())
        .filter_map(|name| resolver.type_path(name, method.pos))
        .collect()
}

/// The types a step constructs.
fn makes(method: &Function, resolver: &Resolver<'_>) -> HashSet<String> {
    let calls = resolver.facts().calls.iter().filter(|c| c.function.as_deref() == Some(method.name.as_str()));
    calls
        .filter_map(|call| match resolver.call_symbol(call)? {
            Symbol::Path { path, .. } => Some(path.clone()),
            Symbol::Instance { .. } => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::scan::extract::extract;
    use crate::scan::report::Language;
    use crate::scan::resolve::Resolver;
    use crate::scan::rules::Rules;

    #[test]
    fn a_union_annotation_takes_each_event_and_unmarked_methods_are_no_steps() {
        let source = "from llama_index.core.workflow import Event, StartEvent, StopEvent, Workflow, step\n\n\
                      class A(Event):\n    pass\n\nclass B(Event):\n    pass\n\n\
                      class W(Workflow):\n    @step\n    async def first(self, ev: StartEvent) -> A:\n        return A()\n\n    \
                      @step\n    async def second(self, ev: A | B) -> StopEvent:\n        return StopEvent(result=1)\n\n    \
                      def helper(self, ev: A) -> B:\n        return B()\n";
        let facts = extract(Language::Python, source).unwrap();
        let rules = Rules::built_in();
        let graphs = super::super::flows("w.py", &Resolver::new(&facts, rules, false), rules);
        let edges: Vec<(&str, &str)> =
            graphs[0].edges.iter().map(|e| (e.from.as_str(), e.to.as_str())).collect();
        assert_eq!(edges, [("__start__", "first"), ("first", "second"), ("second", "__end__")]);
        assert_eq!(graphs[0].nodes, ["first", "second"]);
    }
}
