//! The specs of the root's children, one builder per core actor, in start order.
//!
//! Each spec builds fresh arguments for every (re)start. Children find what started
//! before them (rest-for-one order) by registered name, so a restarted dependency is
//! picked up by whatever restarts after it.

use std::sync::Arc;

use mark1_supervisors::{
    spawn_instrumented, ActorStats, Addr, ChildSpec, StartCtx, Strategy, Supervisor, SupervisorArgs,
    SupervisorEvent, SupervisorMsg, SupervisorObserver,
};
use ractor::concurrency::JoinHandle;
use ractor::{ActorCell, ActorRef, SpawnErr};
use serde_json::json;

use super::{actor_name, NodeSettings, ProviderSpec};
use crate::agents::{AgentCatalog, PoolStarter};
use crate::audit::{Audit, AuditArgs};
use crate::domain::EventKind;
use crate::events::{EventBus, Events, EventsArgs};
use crate::health::{Health, HealthArgs, SharedHealth};
use crate::metrics::{ModelMetrics, TaskMetrics};
use crate::models::budget::BudgetBook;
use crate::models::provider::{Provider, ProviderArgs};
use crate::models::router::UsageSink;
use crate::models::{ModelRouter, ProviderEntry, Router, RouterArgs};
use crate::orchestrator::{Orchestrator, OrchestratorArgs, OrchestratorMsg};
use crate::ports::{Clock, EventSink, ModelProvider, Store, Write};
use crate::retention::{Retention, RetentionArgs};
use crate::store_writer::{Retry, StoreWriter, StoreWriterArgs, StoreWriterMsg, StoreWriterStats};
use crate::workflows::{Engine, EngineArgs, EngineMsg, RunDirectory};

/// What the children are built from: the parts every incarnation of them shares.
#[derive(Clone)]
pub(super) struct Wiring {
    pub node: String,
    /// The root's slot; every actor's slot hangs under it.
    pub stats: Arc<ActorStats>,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub events: Arc<EventBus>,
    pub catalog: Arc<AgentCatalog>,
    pub directory: Arc<RunDirectory>,
    pub settings: NodeSettings,
    pub metrics: Arc<TaskMetrics>,
    pub writer_stats: Arc<StoreWriterStats>,
    pub health: SharedHealth,
}

/// The model providers' entries (with stats that outlive their actors) and adapters.
pub(super) type Providers = Vec<(ProviderEntry, Arc<dyn ModelProvider>)>;

pub(super) fn lookup<M: Send + 'static>(name: &str) -> Option<ActorRef<M>> {
    ractor::registry::where_is(name).map(ActorRef::from)
}

/// A counting address of a registered actor whose slot hangs under `root`.
pub(super) fn addr_of<M: ractor::Message>(root: &Arc<ActorStats>, name: &str) -> Option<Addr<M>> {
    Some(Addr::new(lookup(name)?, root.find(name)?))
}

/// Finds the registered actor `name` whenever asked (it may be restarting).
type Finder<M> = Arc<dyn Fn() -> Option<Addr<M>> + Send + Sync>;

fn finder<M: ractor::Message>(root: &Arc<ActorStats>, name: String) -> Finder<M> {
    let root = root.clone();
    Arc::new(move || addr_of(&root, &name))
}

fn spawned<M>(
    result: Result<(mark1_supervisors::Addr<M>, JoinHandle<()>), SpawnErr>,
) -> Result<ActorCell, SpawnErr>
where
    M: ractor::Message,
{
    result.map(|(addr, _)| addr.actor().get_cell())
}

pub(super) fn store_writer(w: &Wiring) -> ChildSpec {
    let (store, stats, s) = (w.store.clone(), w.writer_stats.clone(), w.settings.clone());
    ChildSpec::actor("store_writer", move || {
        let args = StoreWriterArgs {
            store: store.clone(),
            batch_max: s.batch_max,
            flush_delay: s.flush_delay,
            lazy_delay: s.lazy_delay,
            queue_limit: s.store_queue_limit,
            stats: stats.clone(),
        };
        (StoreWriter, args)
    })
    .registered(true)
}

pub(super) fn audit(w: &Wiring) -> ChildSpec {
    let (store, clock, chain, queue_limit) =
        (w.store.clone(), w.clock.clone(), w.node.clone(), w.settings.audit_queue_limit);
    ChildSpec::actor("audit", move || {
        let args =
            AuditArgs { chain: chain.clone(), store: store.clone(), clock: clock.clone(), queue_limit };
        (Audit, args)
    })
    .registered(true)
}

pub(super) fn events(w: &Wiring) -> ChildSpec {
    let (bus, store) = (w.events.clone(), w.store.clone());
    ChildSpec::actor("events", move || (Events, EventsArgs { bus: bus.clone(), store: store.clone() }))
        .registered(true)
}

/// `models`: one actor per provider, then the router.
pub(super) fn models(
    w: &Wiring,
    entries: Providers,
    budgets: BudgetBook,
    model_metrics: Arc<ModelMetrics>,
) -> ChildSpec {
    // Usage records are background writes kept until they commit: budgets are
    // restored from them after a restart.
    let writer = actor_name(&w.node, "store_writer");
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
    let (settings, bus, store) = (w.settings.clone(), w.events.clone(), w.store.clone());
    supervisor_child("models", move |stats| {
        let mut children: Vec<ChildSpec> = entries
            .iter()
            .map(|(entry, adapter)| {
                let (stats, adapter) = (entry.stats.clone(), adapter.clone());
                let max_in_flight = entry.settings.max_in_flight;
                let id = format!("provider:{}", entry.settings.name);
                ChildSpec::actor(&id, move || {
                    let args = ProviderArgs { adapter: adapter.clone(), stats: stats.clone(), max_in_flight };
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
    })
}

/// `agents`: one pool per agent definition, started by the orchestrator.
pub(super) fn agents(w: &Wiring) -> ChildSpec {
    let (settings, node) = (w.settings.clone(), w.node.clone());
    supervisor_child("agents", move |stats| {
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
    })
}

pub(super) fn orchestrator(w: &Wiring) -> ChildSpec {
    let w = w.clone();
    ChildSpec::new("orchestrator", move |ctx: StartCtx| {
        // Dependencies started before this one (rest-for-one order).
        let agents = lookup::<SupervisorMsg>(&actor_name(&w.node, "agents"));
        let agents_stats = w.stats.find(&actor_name(&w.node, "agents"));
        let writer = addr_of::<StoreWriterMsg>(&w.stats, &actor_name(&w.node, "store_writer"));
        let sink: Arc<dyn EventSink> = w.events.clone();
        let (stats, settings) = (ctx.stats.clone(), &w.settings);
        let args = agents.zip(agents_stats).zip(writer).map(|((agents, agents_stats), store_writer)| {
            OrchestratorArgs {
                agents,
                catalog: w.catalog.clone(),
                pools: PoolStarter {
                    defaults: settings.pools.clone(),
                    events: sink.clone(),
                    timeout: settings.control_timeout,
                    agents_stats,
                },
                store_writer,
                stats,
                store: w.store.clone(),
                events: sink,
                clock: w.clock.clone(),
                metrics: w.metrics.clone(),
                max_in_flight: settings.max_in_flight,
                quotas: settings.quotas.clone(),
                retain_finished: settings.retain_finished,
                node: w.node.clone(),
                lease_ttl: settings.lease_ttl,
            }
        });
        async move {
            let args = args.ok_or_else(|| {
                SpawnErr::StartupFailed("the agents supervisor or the store writer is not running".into())
            })?;
            spawned(spawn_instrumented(ctx.name, Orchestrator, args, ctx.stats, Some(ctx.supervisor)).await)
        }
    })
    .registered(true)
}

/// `workflows`: the engine, then one `run:<id>` per live run.
pub(super) fn workflows(w: &Wiring) -> ChildSpec {
    let engine = workflow_engine(w);
    let (settings, bus) = (w.settings.clone(), w.events.clone());
    supervisor_child("workflows", move |stats| {
        one_for_one(&settings, stats, vec![engine.clone()], restart_events(bus.clone()))
    })
}

/// The workflow engine, first child of `workflows`; runs join it there as they start.
fn workflow_engine(w: &Wiring) -> ChildSpec {
    let w = w.clone();
    ChildSpec::new("engine", move |ctx: StartCtx| {
        let writer = addr_of::<StoreWriterMsg>(&w.stats, &actor_name(&w.node, "store_writer"));
        let args = writer.map(|writer| {
            EngineArgs::new(
                w.node.clone(),
                w.store.clone(),
                writer,
                finder::<OrchestratorMsg>(&w.stats, actor_name(&w.node, "orchestrator")),
                finder::<EngineMsg>(&w.stats, actor_name(&w.node, "workflows/engine")),
                w.events.clone(),
                w.clock.clone(),
                w.catalog.clone(),
                ModelRouter::new(actor_name(&w.node, "models/router")),
                w.directory.clone(),
                ActorRef::from(ctx.supervisor.clone()),
                w.settings.lease_ttl,
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

/// `scans`: jobs are temporary children, so a crashed one is recorded failed, never rerun.
pub(super) fn scans(w: &Wiring) -> ChildSpec {
    let (settings, bus) = (w.settings.clone(), w.events.clone());
    supervisor_child("scans", move |stats| {
        let mut args = one_for_one(&settings, stats, Vec::new(), restart_events(bus.clone()));
        args.max_children = Some(settings.scan_queue_limit.max(1));
        args
    })
}

pub(super) fn health(w: &Wiring, providers: &[ProviderSpec]) -> ChildSpec {
    let w = w.clone();
    let adapters: Vec<Arc<dyn ModelProvider>> = providers.iter().map(|p| p.adapter.clone()).collect();
    ChildSpec::actor("health", move || {
        let args = HealthArgs {
            store: w.store.clone(),
            orchestrator: finder(&w.stats, actor_name(&w.node, "orchestrator")),
            clock: w.clock.clone(),
            interval: w.settings.health_interval,
            report: w.health.clone(),
            writer: w.writer_stats.clone(),
            providers: adapters.clone(),
        };
        (Health, args)
    })
    .registered(true)
}

pub(super) fn retention(w: &Wiring) -> ChildSpec {
    let (store, clock, settings) = (w.store.clone(), w.clock.clone(), w.settings.clone());
    ChildSpec::actor("retention", move || {
        let args = RetentionArgs {
            store: store.clone(),
            clock: clock.clone(),
            keep: settings.retention,
            interval: settings.prune_interval,
            batch: settings.prune_batch,
        };
        (Retention, args)
    })
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
pub(super) fn restart_events(events: Arc<EventBus>) -> SupervisorObserver {
    Arc::new(move |event| {
        if let SupervisorEvent::ChildRestarted { supervisor, child, cause, reason } = event {
            let data = json!({"supervisor": supervisor, "cause": cause, "reason": reason});
            events.emit(
                EventKind::ActorRestarted,
                crate::DEFAULT_NAMESPACE.into(),
                child.into(),
                data.into(),
            );
        }
    })
}
