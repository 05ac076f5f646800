//! Metric names of the actors, defined in one place (the HTTP edge's are in the
//! `mark1` crate's `metrics` module) and registered per node (each
//! node has its own registry, so several nodes can run in one process). Model calls'
//! are in `metrics/models.rs`.

mod models;

pub use models::{ModelCollector, ModelMetrics, ModelSeries};

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use mark1_supervisors::{ActorStats, PoolLoad, Restarts};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::agents::AgentCatalog;
use crate::domain::TaskState;

/// Task metrics. Label sets are resolved once here, so the hot path only bumps atomics.
pub struct TaskMetrics {
    pub submitted: Counter,
    pub rejected: Counter,
    pub retried: Counter,
    pub in_flight: Gauge,
    finished: [Counter; 4],
    /// From acceptance to the final state, in seconds.
    pub duration: Histogram,
}

impl TaskMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let submitted = Counter::default();
        let rejected = Counter::default();
        let retried = Counter::default();
        let in_flight = Gauge::default();
        let finished_family = Family::<Vec<(String, String)>, Counter>::default();
        let duration = Histogram::new(exponential_buckets(0.000_01, 4.0, 12));
        registry.register("mark1_tasks_submitted", "Tasks accepted", submitted.clone());
        registry.register(
            "mark1_tasks_rejected",
            "Submissions refused (overload, unknown target)",
            rejected.clone(),
        );
        registry.register(
            "mark1_tasks_retried",
            "Attempts retried after a retryable failure",
            retried.clone(),
        );
        registry.register("mark1_tasks_in_flight", "Tasks accepted and not yet finished", in_flight.clone());
        registry.register("mark1_tasks_finished", "Tasks by final state", finished_family.clone());
        registry.register("mark1_task_duration_seconds", "Acceptance to final state", duration.clone());
        let state =
            |s: TaskState| finished_family.get_or_create(&vec![("state".into(), s.as_str().into())]).clone();
        let finished = [
            state(TaskState::Succeeded),
            state(TaskState::Failed),
            state(TaskState::Cancelled),
            state(TaskState::TimedOut),
        ];
        TaskMetrics { submitted, rejected, retried, in_flight, finished, duration }
    }

    pub fn finished(&self, state: TaskState) {
        let i = match state {
            TaskState::Succeeded => 0,
            TaskState::Failed => 1,
            TaskState::Cancelled => 2,
            TaskState::TimedOut => 3,
            TaskState::Queued | TaskState::Running => return,
        };
        self.finished[i].inc();
    }

    pub fn finished_total(&self) -> u64 {
        self.finished.iter().map(|c| c.get()).sum()
    }
}

/// Commit latency and batch size of the store writer: observed once per batch, off the
/// per-task path.
#[derive(Clone, Debug)]
pub struct CommitMetrics {
    /// One `write_batch`, in seconds.
    pub duration: Histogram,
    /// Writes in one batch.
    pub writes: Histogram,
}

impl Default for CommitMetrics {
    fn default() -> Self {
        CommitMetrics {
            duration: Histogram::new(exponential_buckets(0.000_05, 2.0, 14)),
            writes: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
        }
    }
}

impl CommitMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "mark1_store_commit_duration_seconds",
            "Time of one store commit (a batch of writes)",
            self.duration.clone(),
        );
        registry.register("mark1_store_commit_writes", "Writes per store commit", self.writes.clone());
    }
}

/// Restarts by cause, mailbox depth and messages handled per core actor and per pool,
/// and each pool's load, computed at scrape time from the supervisors' counters
/// ([`ActorStats`]) and the pools' load figures: the hot path pays nothing for them, and
/// no series is ever per instance.
pub struct TreeCollector {
    root: Arc<ActorStats>,
    catalog: Arc<AgentCatalog>,
}

impl TreeCollector {
    pub fn new(root: Arc<ActorStats>, catalog: Arc<AgentCatalog>) -> Self {
        TreeCollector { root, catalog }
    }

    /// Core actors (the root's children) and pools (the `agents` supervisor's children),
    /// named relative to the node, with the restarts of a pool's workers added to its own.
    fn slots(&self) -> Vec<(String, Arc<ActorStats>, Restarts)> {
        let prefix = format!("{}/", self.root.name());
        let relative = |s: &ActorStats| s.name().strip_prefix(&prefix).unwrap_or(s.name()).to_string();
        let mut out = Vec::new();
        for core in self.root.children() {
            let pools = if relative(&core) == "agents" { core.children() } else { Vec::new() };
            out.push((relative(&core), core.clone(), core.restarts()));
            for pool in pools {
                let restarts = pool.children().iter().fold(pool.restarts(), |sum, w| add(sum, w.restarts()));
                out.push((relative(&pool), pool, restarts));
            }
        }
        out
    }
}

fn add(a: Restarts, b: Restarts) -> Restarts {
    Restarts {
        failed: a.failed + b.failed,
        start_failed: a.start_failed + b.start_failed,
        stopped: a.stopped + b.stopped,
        killed: a.killed + b.killed,
    }
}

impl std::fmt::Debug for TreeCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TreeCollector").field("root", &self.root.name()).finish()
    }
}

impl Collector for TreeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let slots = self.slots();
        let mut family = encoder.encode_descriptor(
            "mark1_actor_mailbox_depth",
            "Messages sent to a core actor or pool and not yet handled",
            None,
            MetricType::Gauge,
        )?;
        for (actor, stats, _) in &slots {
            let depth = i64::try_from(stats.mailbox_depth()).unwrap_or(i64::MAX);
            ConstGauge::new(depth).encode(family.encode_family(&[("actor", actor.as_str())])?)?;
        }
        let mut family = encoder.encode_descriptor(
            "mark1_actor_messages_handled",
            "Messages handled by a core actor or pool",
            None,
            MetricType::Counter,
        )?;
        for (actor, stats, _) in &slots {
            let handled = ConstCounter::new(stats.messages_handled());
            handled.encode(family.encode_family(&[("actor", actor.as_str())])?)?;
        }
        let mut family = encoder.encode_descriptor(
            "mark1_actor_restarts",
            "Restarts of a core actor, or of a pool and its workers, by cause",
            None,
            MetricType::Counter,
        )?;
        for (actor, _, r) in &slots {
            for (cause, n) in [
                ("failed", r.failed),
                ("start_failed", r.start_failed),
                ("stopped", r.stopped),
                ("killed", r.killed),
            ] {
                ConstCounter::new(n)
                    .encode(family.encode_family(&[("actor", actor.as_str()), ("cause", cause)])?)?;
            }
        }
        let pools = self.catalog.all();
        for (name, help, read) in [
            (
                "mark1_pool_queue_length",
                "Jobs waiting in an agent's pool",
                pool_queued as fn(&PoolLoad) -> usize,
            ),
            ("mark1_pool_workers", "Workers of an agent's pool", pool_workers),
            ("mark1_pool_busy", "Busy workers of an agent's pool", pool_busy),
        ] {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for definition in &pools {
                let value = i64::try_from(read(&definition.load)).unwrap_or(i64::MAX);
                let agent = definition.spec.key();
                ConstGauge::new(value).encode(family.encode_family(&[("agent", agent.as_str())])?)?;
            }
        }
        Ok(())
    }
}

fn pool_queued(load: &PoolLoad) -> usize {
    load.queued.load(Relaxed)
}

fn pool_workers(load: &PoolLoad) -> usize {
    load.workers.load(Relaxed)
}

fn pool_busy(load: &PoolLoad) -> usize {
    load.busy.load(Relaxed)
}
