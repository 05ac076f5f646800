//! The orchestrator's view of the agents: their pools, load, latency and success rate,
//! and the selection of an agent for a task.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use mark1_supervisors::{Addr, PoolLoad, PoolMsg};
use serde::Serialize;

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
    /// `None` when the pool never started.
    pub pool: Option<Addr<PoolMsg<AgentJob>>>,
    pub load: Arc<PoolLoad>,
    pub health: AgentHealth,
    latency_ewma_us: f64,
    succeeded: u64,
    failed: u64,
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

/// Agents by `<namespace>/<name>`.
#[derive(Default)]
pub struct AgentRegistry {
    agents: HashMap<String, AgentEntry>,
}

pub fn agent_key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

impl AgentRegistry {
    pub fn insert(&mut self, entry: AgentEntry) {
        self.agents.insert(entry.spec.key(), entry);
    }

    pub fn remove(&mut self, key: &str) -> Option<AgentEntry> {
        self.agents.remove(key)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut AgentEntry> {
        self.agents.get_mut(key)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.agents.contains_key(key)
    }

    pub fn statuses(&self) -> Vec<AgentStatus> {
        let mut all: Vec<_> = self.agents.values().map(AgentEntry::status).collect();
        all.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        all
    }

    /// Picks the agent for a task: the named one, or among those with every wanted
    /// capability, the healthy one with the best score. Returns its key.
    pub fn select(&self, namespace: &str, target: &Target) -> Result<&AgentEntry, TaskError> {
        match target {
            Target::Agent(name) => {
                let entry = self.agents.get(&agent_key(namespace, name)).ok_or_else(|| {
                    TaskError::UnknownAgent { namespace: namespace.into(), name: name.clone() }
                })?;
                match &entry.health {
                    AgentHealth::Ready => Ok(entry),
                    AgentHealth::Failed(reason) => {
                        Err(TaskError::AgentFailed { agent: entry.spec.key(), reason: reason.clone() })
                    }
                }
            }
            Target::Capabilities(wanted) => {
                let mut capable = self
                    .agents
                    .values()
                    .filter(|e| e.spec.namespace == namespace && e.spec.has_capabilities(wanted))
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
