//! The `Store` port: reads, plus `write_batch` that applies many writes in one
//! transaction. The `store_writer` actor groups callers' writes into those batches.

use std::collections::{BTreeMap, HashMap, VecDeque};

use parking_lot::Mutex;

use crate::domain::{AgentSpec, Event, TaskId, TaskRecord};

/// One change to durable state.
#[derive(Clone, Debug, PartialEq)]
pub enum Write {
    /// Inserts or replaces a task record.
    PutTask(Box<TaskRecord>),
    AppendEvent(Box<Event>),
    PutAgent(Box<AgentSpec>),
    RemoveAgent {
        namespace: String,
        name: String,
    },
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or refused the work; callers may retry later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The write breaks a constraint (a duplicate key, a schema mismatch).
    #[error("store rejected the write: {0}")]
    Rejected(String),
}

#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Applies every write in one transaction: all or nothing.
    async fn write_batch(&self, writes: Vec<Write>) -> Result<(), StoreError>;
    async fn task(&self, id: TaskId) -> Result<Option<TaskRecord>, StoreError>;
    async fn agents(&self) -> Result<Vec<AgentSpec>, StoreError>;
    /// Cheap reachability check for health and readiness.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// A store in memory: the backend of unit tests, of benches that measure the runtime
/// without a database, and of nodes run without one. It keeps the most recent
/// `retain` tasks and events (ids are time-ordered, so the oldest go first), so a
/// long-running node does not grow without limit.
pub struct MemoryStore {
    inner: Mutex<MemoryTables>,
    retain: usize,
}

#[derive(Default)]
struct MemoryTables {
    tasks: BTreeMap<TaskId, TaskRecord>,
    events: VecDeque<Event>,
    agents: HashMap<(String, String), AgentSpec>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::with_retention(100_000)
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps at most `retain` tasks and `retain` events.
    pub fn with_retention(retain: usize) -> Self {
        MemoryStore { inner: Mutex::new(MemoryTables::default()), retain: retain.max(1) }
    }

    pub fn events(&self) -> Vec<Event> {
        self.inner.lock().events.iter().cloned().collect()
    }
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    async fn write_batch(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let mut t = self.inner.lock();
        for write in writes {
            match write {
                Write::PutTask(task) => {
                    t.tasks.insert(task.id, *task);
                }
                Write::AppendEvent(event) => t.events.push_back(*event),
                Write::PutAgent(spec) => {
                    t.agents.insert((spec.namespace.clone(), spec.name.clone()), *spec);
                }
                Write::RemoveAgent { namespace, name } => {
                    t.agents.remove(&(namespace, name));
                }
            }
        }
        while t.tasks.len() > self.retain {
            t.tasks.pop_first();
        }
        while t.events.len() > self.retain {
            t.events.pop_front();
        }
        Ok(())
    }

    async fn task(&self, id: TaskId) -> Result<Option<TaskRecord>, StoreError> {
        Ok(self.inner.lock().tasks.get(&id).cloned())
    }

    async fn agents(&self) -> Result<Vec<AgentSpec>, StoreError> {
        Ok(self.inner.lock().agents.values().cloned().collect())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
