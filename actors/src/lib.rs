//! Mark-1's domain: the actors of a node, their typed messages, the domain types and
//! the ports they call out through. No I/O lives here beyond the in-memory ports.

pub mod domain;
pub mod ports;

/// The namespace of work that names none.
pub const DEFAULT_NAMESPACE: &str = "default";

pub mod agent_instance;
pub mod agents;
pub mod audit;
pub mod events;
pub mod health;
pub mod metrics;
pub mod models;
pub mod node;
pub mod orchestrator;
pub mod retention;
pub mod scans;
pub mod store_writer;
pub mod testing;
pub mod workflows;
