//! The `EventSink` port: where domain events go.

use std::sync::Arc;

use serde_json::Value;

use crate::domain::{Event, EventKind};

/// Receives domain events. Implementations assign `seq` and `time` and must not block:
/// they are called on hot paths (every task transition). The event comes back so the
/// caller can store it in the same commit as the change it reports.
pub trait EventSink: Send + Sync + 'static {
    fn emit(&self, kind: EventKind, namespace: &str, subject: String, data: Value) -> Arc<Event>;
}
