//! Domain types: plain data, no I/O.

pub mod access;
pub mod agent;
pub mod audit;
pub mod event;
pub mod task;
pub mod workflow;

pub use access::{ApiKeyRecord, KeyState, Permission, Principal, Role};
pub use agent::{AgentSpec, PoolSpec, ProcessSpec, ResourceLimits, RetryPolicy, RuntimeSpec};
pub use audit::{AuditEntry, AuditHead, AuditOutcome, AuditRecord, ChainBreak, VerifiedChain};
pub use event::{Event, EventKind};
pub use task::{Target, TaskId, TaskRecord, TaskRequest, TaskState};

/// Validates a name of an agent, provider or namespace: `[a-z][a-z0-9_-]*`.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z')) && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_' | '-'))
}

#[cfg(test)]
mod tests {
    #[test]
    fn names() {
        assert!(super::valid_name("echo"));
        assert!(super::valid_name("code-review_2"));
        assert!(!super::valid_name("Echo"));
        assert!(!super::valid_name("2fast"));
        assert!(!super::valid_name(""));
        assert!(!super::valid_name("a b"));
    }
}
