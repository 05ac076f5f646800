//! The node's actor tree (DESIGN §2), started as one rest-for-one supervisor:
//!
//! ```text
//! <node>               root supervisor, rest-for-one
//! ├── store_writer     group commit over the Store port
//! ├── audit            appends audit records to the node's hash chain (chain `<node>`)
//! ├── events           subscriptions and history over the EventBus
//! ├── models           supervisor: provider:<name> (one per provider), router
//! ├── agents           supervisor of one pool per agent definition
//! ├── orchestrator     intake, selection, dispatch, retries, deadlines, lease, recovery
//! ├── workflows        supervisor: the workflow engine, then one `run:<id>` per live run
//! ├── scans            supervisor: one `scan:<id>` per scan job (when the node has a scanner)
//! ├── health           probes; keeps the latest report readable without messaging
//! └── retention        prunes finished tasks and old events in small batches
//! ```
//!
//! Rest-for-one in this order means a restarted actor takes down and restarts only what
//! was started after it, i.e. what depends on it, and those pick up fresh references
//! when they start. The orchestrator restores every agent from the catalog.

use std::sync::Arc;
use std::time::Duration;

use mark1_supervisors::{
    spawn_instrumented, ActorSnapshot, ActorStats, Addr, Backoff, Intensity, Restart, Strategy, Supervisor,
    SupervisorArgs, SupervisorMsg,
};
use parking_lot::RwLock;
use ractor::{ActorRef, SpawnErr};

use crate::agents::{AgentCatalog, AgentDefinition, PoolDefaults};
use crate::audit::AuditMsg;
use crate::domain::model::{ProviderSettings, RouterSettings};
use crate::events::{EventBus, EventsMsg};
use crate::health::SharedHealth;
use crate::metrics::{ModelMetrics, TaskMetrics};
use crate::models::budget::BudgetBook;
use crate::models::stats::ProviderStats;
use crate::models::{ModelRouter, ProviderEntry};
use crate::orchestrator::OrchestratorMsg;
use crate::ports::{Clock, ModelProvider, Scanner, Store};
use crate::scans::ScanEnv;
use crate::store_writer::StoreWriterStats;
use crate::workflows::{EngineMsg, RunDirectory};

mod children;

use children::{addr_of, lookup, restart_events, Providers, Wiring};

/// Settings of the actor tree, filled from the node's configuration.
#[derive(Clone, Debug)]
pub struct NodeSettings {
    pub batch_max: usize,
    pub flush_delay: Duration,
    /// How long the rows of non-durable tasks gather before they commit on their own.
    pub lazy_delay: Duration,
    pub store_queue_limit: usize,
    /// Audit entries waiting for the store before callers are refused.
    pub audit_queue_limit: usize,
    pub max_in_flight: usize,
    /// Per-namespace limits on tasks in flight and running.
    pub quotas: crate::orchestrator::quotas::QuotaSettings,
    pub retain_finished: usize,
    pub event_capacity: usize,
    pub pools: PoolDefaults,
    /// Restart intensity of the core supervisors; exceeding it at the root stops the node.
    pub intensity: Intensity,
    pub backoff: Backoff,
    pub health_interval: Duration,
    /// How long a node start's lease lasts without a heartbeat; others may then claim
    /// its unfinished tasks. Renewed every third of it.
    pub lease_ttl: Duration,
    /// Finished tasks and runs, events and model usage records older than this are pruned.
    pub retention: Duration,
    pub prune_interval: Duration,
    /// Rows deleted per store call while pruning.
    pub prune_batch: usize,
    /// Upper bound on internal control calls (starting a pool, a drain).
    pub control_timeout: Duration,
    pub models: RouterSettings,
    /// Scan jobs accepted and unfinished at most (running or waiting for a slot).
    pub scan_queue_limit: usize,
}

impl Default for NodeSettings {
    fn default() -> Self {
        NodeSettings {
            batch_max: 512,
            flush_delay: Duration::ZERO,
            lazy_delay: Duration::ZERO,
            store_queue_limit: 65_536,
            audit_queue_limit: 4096,
            max_in_flight: 100_000,
            quotas: Default::default(),
            retain_finished: 10_000,
            event_capacity: 65_536,
            pools: PoolDefaults::default(),
            intensity: Intensity { max_restarts: 10, window: Duration::from_secs(10) },
            backoff: Backoff { initial: Duration::from_millis(5), ..Backoff::default() },
            health_interval: Duration::from_secs(5),
            lease_ttl: Duration::from_secs(30),
            retention: Duration::from_secs(7 * 24 * 3600),
            prune_interval: Duration::from_secs(60),
            prune_batch: 1000,
            models: RouterSettings::default(),
            control_timeout: Duration::from_secs(30),
            scan_queue_limit: 64,
        }
    }
}

/// A model provider of the node: its adapter and how the router treats it.
#[derive(Clone)]
pub struct ProviderSpec {
    pub settings: ProviderSettings,
    pub adapter: Arc<dyn ModelProvider>,
}

/// Everything the tree needs from outside.
pub struct NodeParts {
    pub name: String,
    pub store: Arc<dyn Store>,
    pub providers: Vec<ProviderSpec>,
    pub clock: Arc<dyn Clock>,
    pub agents: Vec<AgentDefinition>,
    pub settings: NodeSettings,
    pub metrics: Arc<TaskMetrics>,
    pub model_metrics: Arc<ModelMetrics>,
    pub health: SharedHealth,
    /// Runs scan jobs; `None`: the node takes no scans.
    pub scanner: Option<Arc<dyn Scanner>>,
}

/// A running tree, and what the embedding API reads from it.
pub struct NodeTree {
    pub name: String,
    pub root: ActorRef<SupervisorMsg>,
    /// Turns true once the root supervisor has stopped, for any reason.
    finished: tokio::sync::watch::Receiver<bool>,
    pub stats: Arc<ActorStats>,
    pub events: Arc<EventBus>,
    pub metrics: Arc<TaskMetrics>,
    pub store_writer_stats: Arc<StoreWriterStats>,
    /// Every agent definition and its pool's load figures.
    pub catalog: Arc<AgentCatalog>,
    pub health: SharedHealth,
    /// The node's store, for reads that need no actor (keys, task listings, the audit log).
    pub store: Arc<dyn Store>,
    orchestrator: RwLock<Option<Addr<OrchestratorMsg>>>,
    /// The actors of live workflow runs.
    pub runs: Arc<RunDirectory>,
    /// The model router (found by name, so it outlives the router's restarts).
    pub models: ModelRouter,
    /// The model providers with their stats, which outlive the actors' restarts.
    pub providers: Vec<ProviderEntry>,
    /// The router's budgets, readable without messaging it.
    pub budgets: BudgetBook,
    scanner: Option<Arc<dyn Scanner>>,
    clock: Arc<dyn Clock>,
}

/// Registry name of a core actor of node `node`.
pub fn actor_name(node: &str, id: &str) -> String {
    format!("{node}/{id}")
}

impl NodeTree {
    pub async fn start(parts: NodeParts) -> Result<NodeTree, SpawnErr> {
        let NodeParts {
            name,
            store,
            providers,
            clock,
            agents,
            settings,
            metrics,
            model_metrics,
            health,
            scanner,
        } = parts;
        let events = EventBus::new(settings.event_capacity, clock.clone());
        // The event sequence continues from what the store holds.
        let last_seq = store
            .last_event_seq()
            .await
            .map_err(|e| SpawnErr::StartupFailed(format!("cannot read the stored events: {e}").into()))?;
        events.continue_from(last_seq);
        let catalog = Arc::new(AgentCatalog::default());
        let directory = Arc::new(RunDirectory::default());
        for definition in agents {
            if !catalog.insert(definition.clone()) {
                tracing::warn!(agent = %definition.spec.key(), "agent defined twice; the first definition is kept");
            }
        }
        let writer_stats = Arc::new(StoreWriterStats::default());
        // The root's slot; every actor's slot hangs under it, so the tree and the
        // counting addresses (`Addr`) are found from here.
        let stats = ActorStats::new(name.clone());
        // Stats and budgets outlive the actors' restarts: a restarted provider keeps its
        // breaker, and metrics keep reading the same budgets.
        let entries: Providers = providers
            .iter()
            .map(|p| {
                let stats = Arc::new(ProviderStats::new(settings.models.breaker));
                let actor = actor_name(&name, &format!("models/provider:{}", p.settings.name));
                (ProviderEntry { settings: p.settings.clone(), stats, actor }, p.adapter.clone())
            })
            .collect();
        let model_providers: Vec<ProviderEntry> = entries.iter().map(|(e, _)| e.clone()).collect();
        let budgets = BudgetBook::from_settings(&settings.models);

        let wiring = Wiring {
            node: name.clone(),
            stats: stats.clone(),
            store: store.clone(),
            clock: clock.clone(),
            events: events.clone(),
            catalog: catalog.clone(),
            directory: directory.clone(),
            settings: settings.clone(),
            metrics: metrics.clone(),
            writer_stats: writer_stats.clone(),
            health: health.clone(),
        };
        let mut children = vec![
            children::store_writer(&wiring),
            children::audit(&wiring),
            children::events(&wiring),
            children::models(&wiring, entries, budgets.clone(), model_metrics),
            children::agents(&wiring),
            children::orchestrator(&wiring),
            children::workflows(&wiring),
            children::scans(&wiring),
            children::health(&wiring, &providers),
            children::retention(&wiring),
        ];
        for child in &mut children {
            child.restart = Restart::Permanent;
        }

        let root_args = SupervisorArgs {
            strategy: Strategy::RestForOne,
            intensity: settings.intensity,
            backoff: settings.backoff,
            children,
            max_children: None,
            stats: stats.clone(),
            observer: Some(restart_events(events.clone())),
        };
        let (root, handle) =
            spawn_instrumented(Some(name.clone()), Supervisor, root_args, stats.clone(), None).await?;
        let (done, finished) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            let _ = handle.await;
            let _ = done.send(true);
        });
        Ok(NodeTree {
            models: ModelRouter::new(actor_name(&name, "models/router")),
            name,
            root: root.actor().clone(),
            finished,
            stats,
            events,
            metrics,
            store_writer_stats: writer_stats,
            catalog,
            health,
            store,
            orchestrator: RwLock::new(None),
            runs: directory,
            providers: model_providers,
            budgets,
            scanner,
            clock,
        })
    }

    /// The orchestrator's current incarnation (re-resolved after a restart).
    pub fn orchestrator(&self) -> Option<Addr<OrchestratorMsg>> {
        // Every submission passes here: a shared read on the hot path, a registry
        // lookup only after the orchestrator was replaced.
        if let Some(o) = self.orchestrator.read().as_ref() {
            if o.actor().get_status() == ractor::ActorStatus::Running {
                return Some(o.clone());
            }
        }
        let fresh = addr_of(&self.stats, &actor_name(&self.name, "orchestrator"));
        self.orchestrator.write().clone_from(&fresh);
        fresh
    }

    /// The workflow engine's current incarnation.
    pub fn workflow_engine(&self) -> Option<Addr<EngineMsg>> {
        addr_of(&self.stats, &actor_name(&self.name, "workflows/engine"))
    }

    /// What a scan job needs; `None` when the node has no scanner or the `scans`
    /// supervisor or the store writer is not running.
    pub fn scans(&self) -> Option<ScanEnv> {
        Some(ScanEnv {
            scanner: self.scanner.clone()?,
            writer: addr_of(&self.stats, &actor_name(&self.name, "store_writer"))?,
            events: self.events.clone(),
            clock: self.clock.clone(),
            supervisor: lookup(&actor_name(&self.name, "scans"))?,
        })
    }

    /// Whether the node takes scans.
    pub fn has_scanner(&self) -> bool {
        self.scanner.is_some()
    }

    pub fn events_actor(&self) -> Option<ActorRef<EventsMsg>> {
        lookup(&actor_name(&self.name, "events"))
    }

    pub fn audit_actor(&self) -> Option<ActorRef<AuditMsg>> {
        lookup(&actor_name(&self.name, "audit"))
    }

    /// The live tree, from counters only.
    pub fn snapshot(&self) -> ActorSnapshot {
        self.stats.snapshot()
    }

    /// Whether the root is still running (it stops when a core actor escalates).
    pub fn is_running(&self) -> bool {
        self.root.get_status() == ractor::ActorStatus::Running
    }

    /// Resolves once the root supervisor has stopped (at once if it already has).
    pub async fn finished(&self) {
        let mut finished = self.finished.clone();
        let _ = finished.wait_for(|done| *done).await;
    }
}
