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
    spawn_instrumented, ActorSnapshot, ActorStats, Addr, Backoff, ChildSpec, Intensity, Restart, StartCtx,
    Strategy, Supervisor, SupervisorArgs, SupervisorEvent, SupervisorMsg, SupervisorObserver,
};
use parking_lot::RwLock;
use ractor::concurrency::JoinHandle;
use ractor::{ActorCell, ActorRef, SpawnErr};
use serde_json::json;

use crate::agents::{AgentCatalog, AgentDefinition, PoolDefaults, PoolStarter};
use crate::audit::{Audit, AuditArgs, AuditMsg};
use crate::domain::model::{ProviderSettings, RouterSettings};
use crate::domain::EventKind;
use crate::events::{EventBus, Events, EventsArgs, EventsMsg};
use crate::health::{Health, HealthArgs, SharedHealth};
use crate::metrics::{ModelMetrics, TaskMetrics};
use crate::models::budget::BudgetBook;
use crate::models::provider::{Provider, ProviderArgs};
use crate::models::router::UsageSink;
use crate::models::stats::ProviderStats;
use crate::models::{ModelRouter, ProviderEntry, Router, RouterArgs};
use crate::orchestrator::{Orchestrator, OrchestratorArgs, OrchestratorMsg};
use crate::ports::{Clock, EventSink, ModelProvider, Scanner, Store, Write};
use crate::retention::{Retention, RetentionArgs};
use crate::scans::ScanEnv;
use crate::store_writer::{Retry, StoreWriter, StoreWriterArgs, StoreWriterMsg, StoreWriterStats};
use crate::workflows::{Engine, EngineArgs, EngineMsg, RunDirectory};

/// Settings of the actor tree, filled from the node's configuration.
#[derive(Clone, Debug)]
pub struct NodeSettings {
    pub batch_max: usize,
    pub flush_delay: Duration,
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

fn lookup<M: Send + 'static>(name: &str) -> Option<ActorRef<M>> {
    ractor::registry::where_is(name).map(ActorRef::from)
}

/// A counting address of a registered actor whose slot hangs under `root`.
fn addr_of<M: ractor::Message>(root: &Arc<ActorStats>, name: &str) -> Option<Addr<M>> {
    Some(Addr::new(lookup(name)?, root.find(name)?))
}

fn spawned<M>(
    result: Result<(mark1_supervisors::Addr<M>, JoinHandle<()>), SpawnErr>,
) -> Result<ActorCell, SpawnErr>
where
    M: ractor::Message,
{
    result.map(|(addr, _)| addr.actor().get_cell())
}

/// The workflow engine, first child of `workflows`; runs join it there as they start.
#[allow(clippy::too_many_arguments)]
fn workflow_engine(
    node: &str,
    root_stats: &Arc<ActorStats>,
    store: &Arc<dyn Store>,
    clock: &Arc<dyn Clock>,
    events: &Arc<EventBus>,
    catalog: &Arc<AgentCatalog>,
    directory: &Arc<RunDirectory>,
    settings: &NodeSettings,
) -> ChildSpec {
    let (node, root_stats, store, clock, bus, catalog, directory, lease_ttl) = (
        node.to_string(),
        root_stats.clone(),
        store.clone(),
        clock.clone(),
        events.clone(),
        catalog.clone(),
        directory.clone(),
        settings.lease_ttl,
    );
    ChildSpec::new("engine", move |ctx: StartCtx| {
        let writer = addr_of::<StoreWriterMsg>(&root_stats, &actor_name(&node, "store_writer"));
        let orchestrator: Arc<dyn Fn() -> Option<Addr<OrchestratorMsg>> + Send + Sync> = {
            let (root_stats, name) = (root_stats.clone(), actor_name(&node, "orchestrator"));
            Arc::new(move || addr_of(&root_stats, &name))
        };
        let engine: Arc<dyn Fn() -> Option<Addr<EngineMsg>> + Send + Sync> = {
            let (root_stats, name) = (root_stats.clone(), actor_name(&node, "workflows/engine"));
            Arc::new(move || addr_of(&root_stats, &name))
        };
        let args = writer.map(|writer| {
            EngineArgs::new(
                node.clone(),
                store.clone(),
                writer,
                orchestrator,
                engine,
                bus.clone(),
                clock.clone(),
                catalog.clone(),
                ModelRouter::new(actor_name(&node, "models/router")),
                directory.clone(),
                ActorRef::from(ctx.supervisor.clone()),
                lease_ttl,
                ctx.stats.clone(),
            )
        });
        async move {
            let args =
                args.ok_or_else(|| SpawnErr::StartupFailed("the store writer is not running".into()))?;
            spawned(spawn_instrumented(ctx.name, Engine, args, ctx.stats, Some(ctx.supervisor)).await)
        }
    })
    .registered(true)
}

/// A child that is itself a [`Supervisor`], with its own slot as its stats.
fn supervisor_child(
    id: &str,
    make: impl Fn(Arc<ActorStats>) -> SupervisorArgs + Send + Sync + 'static,
) -> ChildSpec {
    let make = Arc::new(make);
    ChildSpec::new(id, move |ctx: StartCtx| {
        let args = make(ctx.stats.clone());
        async move {
            spawned(spawn_instrumented(ctx.name, Supervisor, args, ctx.stats, Some(ctx.supervisor)).await)
        }
    })
    .registered(true)
}

/// A one-for-one core supervisor with the node's intensity and backoff.
fn one_for_one(
    settings: &NodeSettings,
    stats: Arc<ActorStats>,
    children: Vec<ChildSpec>,
    observer: SupervisorObserver,
) -> SupervisorArgs {
    SupervisorArgs {
        strategy: Strategy::OneForOne,
        intensity: settings.intensity,
        backoff: settings.backoff,
        children,
        max_children: None,
        stats,
        observer: Some(observer),
    }
}

/// Emits `actor.restarted` for every restart a core supervisor makes.
fn restart_events(events: Arc<EventBus>) -> SupervisorObserver {
    Arc::new(move |event| {
        if let SupervisorEvent::ChildRestarted { supervisor, child, cause, reason } = event {
            let data = json!({"supervisor": supervisor, "cause": cause, "reason": reason});
            events.emit(EventKind::ActorRestarted, crate::DEFAULT_NAMESPACE, child, data);
        }
    })
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
        let s = settings.clone();
        let node = name.clone();

        let mut children = Vec::new();
        {
            let (store, stats) = (store.clone(), writer_stats.clone());
            children.push(
                ChildSpec::actor("store_writer", move || {
                    let args = StoreWriterArgs {
                        store: store.clone(),
                        batch_max: s.batch_max,
                        flush_delay: s.flush_delay,
                        queue_limit: s.store_queue_limit,
                        stats: stats.clone(),
                    };
                    (StoreWriter, args)
                })
                .registered(true),
            );
        }
        {
            let (store, clock, chain, queue_limit) =
                (store.clone(), clock.clone(), name.clone(), settings.audit_queue_limit);
            children.push(
                ChildSpec::actor("audit", move || {
                    let args = AuditArgs {
                        chain: chain.clone(),
                        store: store.clone(),
                        clock: clock.clone(),
                        queue_limit,
                    };
                    (Audit, args)
                })
                .registered(true),
            );
        }
        {
            let (bus, store) = (events.clone(), store.clone());
            children.push(
                ChildSpec::actor("events", move || {
                    (Events, EventsArgs { bus: bus.clone(), store: store.clone() })
                })
                .registered(true),
            );
        }
        // Stats and budgets outlive the actors' restarts: a restarted provider keeps its
        // breaker, and metrics keep reading the same budgets.
        let entries: Vec<(ProviderEntry, Arc<dyn ModelProvider>)> = providers
            .iter()
            .map(|p| {
                let stats = Arc::new(ProviderStats::new(settings.models.breaker));
                let actor = actor_name(&node, &format!("models/provider:{}", p.settings.name));
                (ProviderEntry { settings: p.settings.clone(), stats, actor }, p.adapter.clone())
            })
            .collect();
        let model_providers: Vec<ProviderEntry> = entries.iter().map(|(e, _)| e.clone()).collect();
        let budgets = BudgetBook::from_settings(&settings.models);
        {
            // Usage records are background writes kept until they commit: budgets are
            // restored from them after a restart.
            let writer = actor_name(&node, "store_writer");
            let usage_sink: UsageSink = Arc::new(move |record| {
                if let Some(writer) = lookup::<StoreWriterMsg>(&writer) {
                    let writes = vec![Write::PutUsage(Box::new(record))];
                    let _ = writer.send_message(StoreWriterMsg::Write {
                        writes,
                        ack: None,
                        retry: Retry::UntilCommitted,
                    });
                }
            });
            let (settings, bus, store, budgets) =
                (settings.clone(), events.clone(), store.clone(), budgets.clone());
            children.push(supervisor_child("models", move |stats| {
                let mut children: Vec<ChildSpec> = entries
                    .iter()
                    .map(|(entry, adapter)| {
                        let (stats, adapter) = (entry.stats.clone(), adapter.clone());
                        let max_in_flight = entry.settings.max_in_flight;
                        let id = format!("provider:{}", entry.settings.name);
                        ChildSpec::actor(&id, move || {
                            let args = ProviderArgs {
                                adapter: adapter.clone(),
                                stats: stats.clone(),
                                max_in_flight,
                            };
                            (Provider, args)
                        })
                        .registered(true)
                    })
                    .collect();
                let (router_settings, providers) =
                    (settings.models.clone(), entries.iter().map(|(e, _)| e.clone()).collect::<Vec<_>>());
                let (usage_sink, store, budgets, metrics) =
                    (usage_sink.clone(), store.clone(), budgets.clone(), model_metrics.clone());
                children.push(
                    ChildSpec::actor("router", move || {
                        let args = RouterArgs {
                            settings: router_settings.clone(),
                            providers: providers.clone(),
                            usage: Some(usage_sink.clone()),
                            store: Some(store.clone()),
                            budgets: budgets.clone(),
                            metrics: metrics.clone(),
                        };
                        (Router, args)
                    })
                    .registered(true),
                );
                one_for_one(&settings, stats, children, restart_events(bus.clone()))
            }));
        }
        {
            let (settings, node) = (settings.clone(), node.clone());
            children.push(supervisor_child("agents", move |stats| {
                let node = node.clone();
                // A pool that stops for good tells the orchestrator its agent failed.
                let observer: SupervisorObserver = Arc::new(move |event| {
                    if let SupervisorEvent::ChildExited { child, reason, .. } = event {
                        let key = child.rsplit_once("pool:").map(|(_, k)| k.to_string()).unwrap_or(child);
                        if let Some(o) = lookup::<OrchestratorMsg>(&actor_name(&node, "orchestrator")) {
                            let _ = o.send_message(OrchestratorMsg::AgentExited { key, reason });
                        }
                    }
                });
                one_for_one(&settings, stats, Vec::new(), observer)
            }));
        }
        {
            let node_name = name.clone();
            let (node, root_stats, store, store_clock, bus, metrics, catalog, settings) = (
                node.clone(),
                stats.clone(),
                store.clone(),
                clock.clone(),
                events.clone(),
                metrics.clone(),
                catalog.clone(),
                settings.clone(),
            );
            children.push(
                ChildSpec::new("orchestrator", move |ctx: StartCtx| {
                    // Dependencies started before this one (rest-for-one order).
                    let agents = lookup::<SupervisorMsg>(&actor_name(&node, "agents"));
                    let agents_stats = root_stats.find(&actor_name(&node, "agents"));
                    let writer = addr_of::<StoreWriterMsg>(&root_stats, &actor_name(&node, "store_writer"));
                    let sink: Arc<dyn EventSink> = bus.clone();
                    let stats = ctx.stats.clone();
                    let args =
                        agents.zip(agents_stats).zip(writer).map(|((agents, agents_stats), store_writer)| {
                            OrchestratorArgs {
                                agents,
                                catalog: catalog.clone(),
                                pools: PoolStarter {
                                    defaults: settings.pools.clone(),
                                    events: sink.clone(),
                                    timeout: settings.control_timeout,
                                    agents_stats,
                                },
                                store_writer,
                                stats,
                                store: store.clone(),
                                events: sink,
                                clock: store_clock.clone(),
                                metrics: metrics.clone(),
                                max_in_flight: settings.max_in_flight,
                                quotas: settings.quotas.clone(),
                                retain_finished: settings.retain_finished,
                                node: node_name.clone(),
                                lease_ttl: settings.lease_ttl,
                            }
                        });
                    async move {
                        let args = args.ok_or_else(|| {
                            SpawnErr::StartupFailed(
                                "the agents supervisor or the store writer is not running".into(),
                            )
                        })?;
                        spawned(
                            spawn_instrumented(ctx.name, Orchestrator, args, ctx.stats, Some(ctx.supervisor))
                                .await,
                        )
                    }
                })
                .registered(true),
            );
        }
        {
            let engine =
                workflow_engine(&name, &stats, &store, &clock, &events, &catalog, &directory, &settings);
            let (settings, bus) = (settings.clone(), events.clone());
            children.push(supervisor_child("workflows", move |stats| {
                one_for_one(&settings, stats, vec![engine.clone()], restart_events(bus.clone()))
            }));
        }
        {
            // Jobs are temporary children: a crashed one is recorded failed, never rerun.
            let (settings, bus) = (settings.clone(), events.clone());
            children.push(supervisor_child("scans", move |stats| {
                let mut args = one_for_one(&settings, stats, Vec::new(), restart_events(bus.clone()));
                args.max_children = Some(settings.scan_queue_limit.max(1));
                args
            }));
        }
        {
            let (node, root_stats, store, clock, interval, report, writer_stats) = (
                node.clone(),
                stats.clone(),
                store.clone(),
                clock.clone(),
                settings.health_interval,
                health.clone(),
                writer_stats.clone(),
            );
            children.push(
                ChildSpec::actor("health", move || {
                    let (node, root_stats) = (node.clone(), root_stats.clone());
                    let args = HealthArgs {
                        store: store.clone(),
                        orchestrator: Arc::new(move || {
                            addr_of(&root_stats, &actor_name(&node, "orchestrator"))
                        }),
                        clock: clock.clone(),
                        interval,
                        report: report.clone(),
                        writer: writer_stats.clone(),
                        providers: providers.iter().map(|p| p.adapter.clone()).collect(),
                    };
                    (Health, args)
                })
                .registered(true),
            );
        }
        {
            let (store, clock, settings) = (store.clone(), clock.clone(), settings.clone());
            children.push(ChildSpec::actor("retention", move || {
                let args = RetentionArgs {
                    store: store.clone(),
                    clock: clock.clone(),
                    keep: settings.retention,
                    interval: settings.prune_interval,
                    batch: settings.prune_batch,
                };
                (Retention, args)
            }));
        }
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
