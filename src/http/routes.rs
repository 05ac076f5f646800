//! Handlers, one module per resource.

pub mod admin;
pub mod agents;
pub mod events;
pub mod runs;
pub mod system;
pub mod tasks;
pub mod workflows;
