//! Implementations of the `AgentRuntime` port.
