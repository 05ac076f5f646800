//! Ports: the traits the actors call out through. `src/` (crate `mark1`) implements
//! them with real databases, processes and model servers; this crate holds in-memory
//! implementations used by unit tests and benches.

pub mod agent;
pub mod clock;
pub mod events;
pub mod model;
pub mod scanner;
pub mod store;

pub use agent::{Agent, AgentError, AgentRuntime, AgentWorker, NativeRuntime, Progress, TaskContext};
pub use clock::{Clock, SystemClock};
pub use events::EventSink;
pub use model::{ChatMessage, ChatRequest, ChatResponse, ModelError, ModelInfo, ModelProvider};
pub use scanner::{ScanOutcome, ScanProgress, Scanner};
pub use store::{
    AttemptRecord, MemoryStore, NodeStart, RunQuery, ScanQuery, Store, StoreError, TaskQuery,
    UnknownUsageGroup, UsageGroup, UsageQuery, UsageRow, UsageTotal, Write,
};
