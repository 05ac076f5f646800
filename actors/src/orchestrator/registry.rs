//! The orchestrator's view of the agents: their pools, load, latency and success rate,
//! and the selection of an agent for a task.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use foldhash::fast::RandomState;
use mark1_supervisors::{Addr, PoolLoad, PoolMsg};
use serde::Serialize;
use serde_json::{json, Value};

use super::TaskError;
use crate::agent_instance::AgentJob;
use crate::domain::{AgentSpec, Target};

/// Weight of the newest sample in the latency average.
const EWMA_ALPHA: f64 = 0.2;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "reason")]
pub enum AgentHealth {
    Ready,
    /// Its pool exceeded its restart intensity or could not start.
    Failed(String),
}

pub struct AgentEntry {
    pub spec: Arc<AgentSpec>,
    /// `<namespace>/<name>`, made once: every attempt carries it.
    pub key: Arc<str>,
    /// Its namespace, made once: shared by its tasks' entries, events and attempts.
    pub namespace: Arc<str>,
    /// The data of its tasks' events, made once.
    pub event_data: Arc<AgentEventData>,
    /// `None` when the pool never started.
    pub pool: Option<Addr<PoolMsg<AgentJob>>>,
    pub load: Arc<PoolLoad>,
    pub health: AgentHealth,
    latency_ewma_us: f64,
    succeeded: u64,
    failed: u64,
}

/// The data of an agent's task events that is the same for every task: built once per
/// agent instead of as a JSON map per event (a map is allocated, hashed and freed).
#[derive(Debug)]
pub struct AgentEventData {
    /// `{"agent": <name>}`: `task.queued` and `task.succeeded`.
    pub agent: Arc<Value>,
    /// `{"attempt": 1, "agent": <name>}`: `task.running` of a first attempt.
    pub first_attempt: Arc<Value>,
}

impl AgentEventData {
    fn new(agent: &str) -> Self {
        AgentEventData {
            agent: Arc::new(json!({"agent": agent})),
            first_attempt: Arc::new(json!({"attempt": 1, "agent": agent})),
        }
    }
}

/// A serializable view of one agent for listings and health.
#[derive(Clone, Debug, Serialize)]
pub struct AgentStatus {
    pub namespace: String,
    pub name: String,
    pub capabilities: Vec<String>,
    pub health: AgentHealth,
    pub workers: usize,
    pub busy: usize,
    pub queued: usize,
    pub latency_ewma_us: f64,
    pub succeeded: u64,
    pub failed: u64,
}

impl AgentEntry {
    pub fn new(spec: Arc<AgentSpec>, pool: Option<Addr<PoolMsg<AgentJob>>>, load: Arc<PoolLoad>) -> Self {
        AgentEntry {
            key: spec.key().into(),
            namespace: spec.namespace.as_str().into(),
            event_data: Arc::new(AgentEventData::new(&spec.name)),
            spec,
            pool,
            load,
            health: AgentHealth::Ready,
            latency_ewma_us: 0.0,
            succeeded: 0,
            failed: 0,
        }
    }

    pub fn record(&mut self, ok: bool, elapsed: Duration) {
        let us = elapsed.as_secs_f64() * 1e6;
        self.latency_ewma_us = if self.succeeded + self.failed == 0 {
            us
        } else {
            EWMA_ALPHA * us + (1.0 - EWMA_ALPHA) * self.latency_ewma_us
        };
        if ok {
            self.succeeded += 1;
        } else {
            self.failed += 1;
        }
    }

    /// Whether the pool's queue is at its limit. Checked at intake so a submitter hears a
    /// typed overload at once; the pool's own bound stays the authority (the figures
    /// trail the pool by the messages in flight).
    pub fn queue_full(&self) -> bool {
        self.load.queued.load(Relaxed) >= self.spec.queue_limit
    }

    /// Lower is better: load per worker, then a latency term, failures and cost.
    fn score(&self) -> f64 {
        let workers = self.load.workers.load(Relaxed).max(1) as f64;
        let pending = (self.load.busy.load(Relaxed) + self.load.queued.load(Relaxed)) as f64;
        let total = (self.succeeded + self.failed) as f64;
        // Laplace-smoothed so a new agent is neither perfect nor hopeless.
        let failure_rate = (self.failed as f64 + 1.0) / (total + 2.0);
        pending / workers + self.latency_ewma_us / 1e6 + failure_rate + self.spec.cost
    }

    pub fn status(&self) -> AgentStatus {
        AgentStatus {
            namespace: self.spec.namespace.clone(),
            name: self.spec.name.clone(),
            capabilities: self.spec.capabilities.clone(),
            health: self.health.clone(),
            workers: self.load.workers.load(Relaxed),
            busy: self.load.busy.load(Relaxed),
            queued: self.load.queued.load(Relaxed),
            latency_ewma_us: self.latency_ewma_us,
            succeeded: self.succeeded,
            failed: self.failed,
        }
    }
}

/// Agents by namespace, then name. Two levels rather than one map keyed by
/// `<namespace>/<name>`, so selecting a named agent for a task builds no key text.
/// foldhash: two lookups per selection, twice per task; the names are our own.
#[derive(Default)]
pub struct AgentRegistry {
    agents: HashMap<String, HashMap<String, AgentEntry, RandomState>, RandomState>,
}

/// `<namespace>/<name>`, for the paths that are not per task (errors, removal).
pub fn agent_key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// Splits `<namespace>/<name>` (names never contain `/`).
fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or((key, ""))
}

impl AgentRegistry {
    pub fn insert(&mut self, entry: AgentEntry) {
        let spec = entry.spec.clone();
        self.agents.entry(spec.namespace.clone()).or_default().insert(spec.name.clone(), entry);
    }

    pub fn remove(&mut self, key: &str) -> Option<AgentEntry> {
        let (namespace, name) = split_key(key);
        let agents = self.agents.get_mut(namespace)?;
        let entry = agents.remove(name);
        if agents.is_empty() {
            self.agents.remove(namespace);
        }
        entry
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut AgentEntry> {
        let (namespace, name) = split_key(key);
        self.agents.get_mut(namespace)?.get_mut(name)
    }

    pub fn contains(&self, key: &str) -> bool {
        let (namespace, name) = split_key(key);
        self.agents.get(namespace).is_some_and(|a| a.contains_key(name))
    }

    pub fn statuses(&self) -> Vec<AgentStatus> {
        let mut all: Vec<_> = self.agents.values().flat_map(|a| a.values()).map(AgentEntry::status).collect();
        all.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        all
    }

    /// Picks the agent for a task: the named one, or among those with every wanted
    /// capability, the healthy one with the best score.
    pub fn select(&self, namespace: &str, target: &Target) -> Result<&AgentEntry, TaskError> {
        let agents = self.agents.get(namespace);
        match target {
            Target::Agent(name) => {
                let entry = agents.and_then(|a| a.get(name)).ok_or_else(|| TaskError::UnknownAgent {
                    namespace: namespace.into(),
                    name: name.clone(),
                })?;
                match &entry.health {
                    AgentHealth::Ready => Ok(entry),
                    AgentHealth::Failed(reason) => {
                        Err(TaskError::AgentFailed { agent: entry.spec.key(), reason: reason.clone() })
                    }
                }
            }
            Target::Capabilities(wanted) => {
                let mut capable = agents
                    .into_iter()
                    .flat_map(|a| a.values())
                    .filter(|e| e.spec.has_capabilities(wanted))
                    .peekable();
                if capable.peek().is_none() {
                    return Err(TaskError::NoCapableAgent {
                        namespace: namespace.into(),
                        capabilities: wanted.clone(),
                    });
                }
                capable
                    .filter(|e| e.health == AgentHealth::Ready)
                    .min_by(|a, b| a.score().total_cmp(&b.score()))
                    .ok_or_else(|| TaskError::AgentFailed {
                        agent: format!("every agent with {wanted:?}"),
                        reason: "all capable agents have failed".into(),
                    })
            }
        }
    }
}
