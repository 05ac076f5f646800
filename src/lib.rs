//! Mark-1: an orchestrator for AI agents, built as an actor-model runtime.
//!
//! The actor system embeds in any Rust program through [`Node`]:
//! `Node::builder() … .build().await?.start().await?` gives a [`NodeHandle`] to submit
//! tasks, wait for them, inspect the live actor tree and shut down in order.
//!
//! | module | what it holds |
//! |---|---|
//! | [`auth`] | credentials: API keys |
//! | [`config`] | layered configuration: defaults → `config.toml` → `MARK1_…` env → flags |
//! | [`http`] | the HTTP edge: REST, authentication, RBAC, problem+json errors |
//! | [`node`] | the embedding API: builder, handle, ordered shutdown |
//! | [`runtimes`] | `AgentRuntime` implementations: process agents and their sandbox |
//! | [`scan`] | the codebase scanner: agents, tools, LLM calls and dependencies of a repository |
//! | [`store`] | the durable `Store`: SQLite and PostgreSQL through sqlx, migrations |
//! | [`cli`] | the `mark1` command line |
//! | [`bench`] | `mark1 bench …`: in-process benchmarks with same-run baselines |

pub mod auth;
pub mod bench;
pub mod cli;
pub mod config;
pub mod http;
pub mod metrics;
pub mod models;
pub mod node;
pub mod runtimes;
pub mod scan;
pub mod store;
pub mod telemetry;

pub use config::Config;
pub use mark1_actors::domain::{AgentSpec, ProcessSpec, TaskId, TaskRecord, TaskRequest, TaskState};
pub use mark1_actors::orchestrator::TaskError;
pub use mark1_actors::ports::{Agent, AgentError, TaskContext};
/// Workflow definitions, runs, and the requests and changes the embedding API takes.
pub mod workflows {
    pub use mark1_actors::domain::workflow::*;
    pub use mark1_actors::ports::RunQuery;
    pub use mark1_actors::workflows::{PlanError, RunChange, RunView, StartRun, WorkflowError};
}
pub use mark1_supervisors::ActorSnapshot;
pub use node::{Node, NodeBuilder, NodeError, NodeHandle, ShutdownReport};
