//! Domain types: plain data, no I/O.

/// Declares a time-ordered id: a UUID v7 newtype, so ids sort by creation time, shown and
/// parsed as the UUID's text.
macro_rules! time_ordered_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub uuid::Uuid);

        impl $name {
            pub fn new() -> Self {
                $name(uuid::Uuid::now_v7())
            }

            /// The id as shared text (an event's subject): one allocation, where
            /// `to_string().into()` makes two.
            pub fn text(&self) -> std::sync::Arc<str> {
                let mut buffer = uuid::Uuid::encode_buffer();
                std::sync::Arc::from(&*self.0.hyphenated().encode_lower(&mut buffer))
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                uuid::Uuid::parse_str(s).map($name)
            }
        }
    };
}
pub(crate) use time_ordered_id;

pub mod access;
pub mod agent;
pub mod audit;
pub mod event;
pub mod model;
pub mod scan;
pub mod task;
pub mod workflow;

pub use access::{ApiKeyRecord, KeyState, Permission, Principal, Role};
pub use agent::{
    AgentSpec, LlmSpec, PoolSpec, ProcessSpec, ResourceLimits, RetryPolicy, RuntimeSpec, ToolDef,
};
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

    #[test]
    fn an_id_as_text_is_its_display() {
        let id = super::TaskId::new();
        assert_eq!(*id.text(), *id.to_string());
    }
}
