//! Implementations of the `AgentRuntime` port.
//!
//! - [`process`]: agents as sandboxed child processes speaking the process protocol;
//! - [`llm`]: declarative agents running a tool-calling loop through the model router.

pub mod llm;
pub mod process;

pub use llm::{LlmRuntime, McpServers};
pub use process::{ProcessRuntime, ProcessWorker, SandboxError, SandboxPolicy};
