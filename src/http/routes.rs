//! Handlers, one module per resource.

pub mod admin;
pub mod agents;
pub mod system;
pub mod tasks;
