//! The `EventSink` port: where domain events go.

use serde_json::Value;

use crate::domain::EventKind;

/// Receives domain events. Implementations assign `seq` and `time` and must not block:
/// they are called on hot paths (every task transition).
pub trait EventSink: Send + Sync + 'static {
    fn emit(&self, kind: EventKind, namespace: &str, subject: String, data: Value);
}
