//! The `EventSink` port: where domain events go.

use std::sync::Arc;
use std::time::SystemTime;

use serde_json::Value;

use crate::domain::{Event, EventKind};

/// Receives domain events. Implementations assign `seq` and `time` and must not block:
/// they are called on hot paths (every task transition). The event comes back so the
/// caller can store it in the same commit as the change it reports.
pub trait EventSink: Send + Sync + 'static {
    fn emit(&self, kind: EventKind, namespace: Arc<str>, subject: Arc<str>, data: Arc<Value>) -> Arc<Event>;

    /// Like [`emit`](Self::emit), at `time`: a task's transition reads the clock once for
    /// its record and its event (a clock read is tens of nanoseconds, several per task).
    /// A sink that keeps no clock of its own may ignore it.
    fn emit_at(
        &self,
        time: SystemTime,
        kind: EventKind,
        namespace: Arc<str>,
        subject: Arc<str>,
        data: Arc<Value>,
    ) -> Arc<Event> {
        let _ = time;
        self.emit(kind, namespace, subject, data)
    }
}
