//! Findings from resolved facts, driven by the rule tables: LLM calls first (agents
//! name their models through them), then tools (agents name their tools through
//! them), agents, MCP servers and clients, and graphs.

pub mod agents;
pub mod crew;
pub mod flow;
pub mod graph;
mod guardrails;
pub mod llm;
pub mod mcp;
pub mod tools;

use super::facts::{Call, Expr};
use super::resolve::Resolver;
use super::rules::ArgRef;

/// The first argument of `call` found at one of `at`.
pub(crate) fn argument<'c>(call: &'c Call, at: &[ArgRef]) -> Option<&'c Expr> {
    at.iter().find_map(|at| match at {
        ArgRef::Name(name) => call.arg(Some(name), None),
        ArgRef::Position(position) => call.arg(None, Some(*position)),
    })
}

/// The first argument of `call` found at one of `at` that comes to a literal.
pub(crate) fn literal_argument<'f>(resolver: &Resolver<'f>, call: &'f Call, at: &[ArgRef]) -> Option<String> {
    at.iter().find_map(|at| {
        let expr = argument(call, std::slice::from_ref(at))?;
        resolver.literal(expr, call.function.as_deref(), call.pos)
    })
}

/// The last segment of a dotted path: `crewai_tools.SerperDevTool` → `SerperDevTool`.
pub(crate) fn short(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}
