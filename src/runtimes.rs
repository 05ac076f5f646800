//! Implementations of the `AgentRuntime` port.
//!
//! - [`process`]: agents as sandboxed child processes speaking the process protocol.

pub mod process;

pub use process::{ProcessRuntime, ProcessWorker, SandboxError, SandboxPolicy};
