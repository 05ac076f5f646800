//! Integration tests of whole nodes through the public API. One test binary with
//! modules: linking many test binaries is slow on two cores (DESIGN §12).

mod support;

mod agents;
mod cli;
mod crash;
mod durability;
mod http;
mod llm_agents;
mod process;
mod scan;
mod store;
mod tasks;
mod workflow_crash;
mod workflow_examples;
mod workflow_plan;
mod workflows;
