//! The `agents` supervisor's side of the domain: agent definitions, the node's catalog
//! of them, and how one agent's pool (a balanced pool of agent instances) is started
//! under the `agents` supervisor and stopped again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use mark1_supervisors::{
    spawn_instrumented, Backoff, ChildSpec, Intensity, Pool, PoolArgs, PoolLoad, PoolMsg, Restart, Routing,
    StartCtx, SupervisorEvent, SupervisorMsg, SupervisorObserver,
};
use parking_lot::RwLock;
use ractor::{ActorRef, SpawnErr};
use serde_json::json;

use crate::agent_instance::{AgentInstance, AgentInstanceArgs, AgentInstanceMsg, AgentJob};
use crate::domain::{AgentSpec, EventKind};
use crate::orchestrator::AgentEntry;
use crate::ports::{AgentRuntime, EventSink};

/// An agent the node runs: its spec and the runtime that starts its instances.
#[derive(Clone)]
pub struct AgentDefinition {
    pub spec: Arc<AgentSpec>,
    pub runtime: Arc<dyn AgentRuntime>,
    /// The pool's load figures, shared with selection; kept across pool restarts.
    pub load: Arc<PoolLoad>,
}

impl AgentDefinition {
    pub fn new(spec: AgentSpec, runtime: Arc<dyn AgentRuntime>) -> Self {
        AgentDefinition { spec: Arc::new(spec), runtime, load: Arc::new(PoolLoad::default()) }
    }
}

/// Every agent definition of the node, by `<namespace>/<name>`. It outlives the
/// orchestrator, so a restarted orchestrator brings every agent back.
#[derive(Default)]
pub struct AgentCatalog {
    definitions: RwLock<BTreeMap<String, AgentDefinition>>,
}

impl AgentCatalog {
    /// Adds a definition; `false` when one with the same key exists.
    pub fn insert(&self, definition: AgentDefinition) -> bool {
        let mut all = self.definitions.write();
        let key = definition.spec.key();
        if all.contains_key(&key) {
            return false;
        }
        all.insert(key, definition);
        true
    }

    pub fn remove(&self, key: &str) -> Option<AgentDefinition> {
        self.definitions.write().remove(key)
    }

    pub fn all(&self) -> Vec<AgentDefinition> {
        self.definitions.read().values().cloned().collect()
    }
}

/// Pool settings shared by every agent of a node.
#[derive(Clone, Debug)]
pub struct PoolDefaults {
    pub routing: Routing,
    pub idle_timeout: Duration,
    pub intensity: Intensity,
    pub backoff: Backoff,
}

impl Default for PoolDefaults {
    fn default() -> Self {
        PoolDefaults {
            routing: Routing::LeastLoaded,
            idle_timeout: Duration::from_secs(30),
            intensity: Intensity { max_restarts: 5, window: Duration::from_secs(10) },
            backoff: Backoff::default(),
        }
    }
}

/// Starts and stops agent pools under the `agents` supervisor.
#[derive(Clone)]
pub struct PoolStarter {
    pub defaults: PoolDefaults,
    pub events: Arc<dyn EventSink>,
    /// How long a start or a drain may take before it is reported as failed.
    pub timeout: Duration,
    /// The `agents` supervisor's slot, under which every pool's slot hangs.
    pub agents_stats: Arc<mark1_supervisors::ActorStats>,
}

fn pool_id(spec: &AgentSpec) -> String {
    format!("pool:{}/{}", spec.namespace, spec.name)
}

impl PoolStarter {
    /// Starts the agent's pool (or finds it running) and returns its registry entry.
    pub async fn start(
        &self,
        agents: &ActorRef<SupervisorMsg>,
        definition: &AgentDefinition,
    ) -> Result<AgentEntry, String> {
        let child = self.child_spec(definition);
        let started = agents.call(|reply| SupervisorMsg::StartChild(child, reply), Some(self.timeout)).await;
        let cell = match started {
            Ok(ractor::rpc::CallResult::Success(Ok(cell))) => cell,
            Ok(ractor::rpc::CallResult::Success(Err(
                mark1_supervisors::SupervisorError::DuplicateChild(_),
            ))) => {
                // Still running from before the orchestrator restarted.
                let children =
                    ractor::call_t!(agents, SupervisorMsg::Children, self.timeout.as_millis() as u64)
                        .map_err(|e| e.to_string())?;
                let id = pool_id(&definition.spec);
                children
                    .into_iter()
                    .find(|(child, _)| *child == id)
                    .and_then(|(_, cell)| cell)
                    .ok_or_else(|| format!("pool {id} is registered but not running"))?
            }
            Ok(ractor::rpc::CallResult::Success(Err(e))) => return Err(e.to_string()),
            Ok(ractor::rpc::CallResult::Timeout) => return Err("the pool did not start in time".into()),
            Ok(ractor::rpc::CallResult::SenderError) | Err(_) => {
                return Err("the agents supervisor is not running".into())
            }
        };
        // The pool's slot in the tree counts what the orchestrator sends it.
        let stats = cell
            .get_name()
            .and_then(|name| self.agents_stats.find(&name))
            .unwrap_or_else(|| mark1_supervisors::ActorStats::new("detached pool"));
        let pool = mark1_supervisors::Addr::new(cell.into(), stats);
        Ok(AgentEntry::new(definition.spec.clone(), Some(pool), definition.load.clone()))
    }

    /// The entry of an agent whose pool is not running.
    pub fn detached_entry(&self, definition: &AgentDefinition) -> AgentEntry {
        AgentEntry::new(definition.spec.clone(), None, definition.load.clone())
    }

    /// Lets the pool finish what it holds, then stops it.
    pub async fn drain_and_stop(&self, agents: &ActorRef<SupervisorMsg>, entry: &AgentEntry) {
        if let Some(pool) = &entry.pool {
            let _ = pool.call(PoolMsg::Drain, Some(self.timeout)).await;
        }
        let id = pool_id(&entry.spec);
        let _ = agents.call(|reply| SupervisorMsg::StopChild(id, reply), Some(self.timeout)).await;
    }

    fn child_spec(&self, definition: &AgentDefinition) -> ChildSpec {
        let definition = definition.clone();
        let defaults = self.defaults.clone();
        let events = self.events.clone();
        // A pool that gives up is not restarted: its agent is marked failed and the
        // failure stops there (DESIGN §2), instead of taking the agents supervisor down.
        ChildSpec::new(pool_id(&definition.spec), move |ctx: StartCtx| {
            let args = pool_args(&definition, &defaults, events.clone(), ctx.stats.clone());
            async move {
                let (addr, _) = spawn_instrumented(
                    ctx.name,
                    Pool::<AgentJob, AgentInstanceMsg>::default(),
                    args,
                    ctx.stats,
                    Some(ctx.supervisor),
                )
                .await?;
                Ok::<_, SpawnErr>(addr.actor().get_cell())
            }
        })
        .restart(Restart::Temporary)
        .registered(true)
    }
}

fn pool_args(
    definition: &AgentDefinition,
    defaults: &PoolDefaults,
    events: Arc<dyn EventSink>,
    stats: Arc<mark1_supervisors::ActorStats>,
) -> PoolArgs<AgentInstanceMsg> {
    let spec = definition.spec.clone();
    let runtime = definition.runtime.clone();
    let instance_events = events.clone();
    let start_worker: mark1_supervisors::WorkerStart<AgentInstanceMsg> = Arc::new(move |ctx: StartCtx| {
        let args = AgentInstanceArgs {
            spec: spec.clone(),
            runtime: runtime.clone(),
            events: instance_events.clone(),
            stats: ctx.stats.clone(),
        };
        Box::pin(async move {
            let (addr, _) =
                spawn_instrumented(ctx.name, AgentInstance, args, ctx.stats, Some(ctx.supervisor)).await?;
            Ok(addr.actor().clone())
        })
    });
    PoolArgs {
        routing: defaults.routing,
        min: definition.spec.pool.min,
        max: definition.spec.pool.max,
        capacity_per_worker: 1,
        queue_limit: definition.spec.queue_limit,
        idle_timeout: defaults.idle_timeout,
        intensity: defaults.intensity,
        backoff: defaults.backoff,
        start_worker,
        stats,
        load: definition.load.clone(),
        observer: Some(pool_observer(definition.spec.clone(), events)),
    }
}

/// Turns a pool's supervision events into domain events.
fn pool_observer(spec: Arc<AgentSpec>, events: Arc<dyn EventSink>) -> SupervisorObserver {
    Arc::new(move |event| match event {
        SupervisorEvent::ChildRestarted { child, cause, reason, .. } => {
            let data = json!({"instance": child, "cause": cause, "reason": reason});
            events.emit(
                EventKind::AgentRestarted,
                spec.namespace.as_str().into(),
                spec.key().into(),
                data.into(),
            );
        }
        SupervisorEvent::Escalated { reason, .. } => {
            events.emit(
                EventKind::AgentFailed,
                spec.namespace.as_str().into(),
                spec.key().into(),
                json!({"reason": reason}).into(),
            );
        }
        SupervisorEvent::ChildExited { .. } => {}
    })
}
