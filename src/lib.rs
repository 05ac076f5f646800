//! Mark-1: an orchestrator for AI agents, built as an actor-model runtime.

pub mod config;
pub mod runtimes;
