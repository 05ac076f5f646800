//! Metric names of the actors, defined in one place and registered per node (each
//! node has its own registry, so several nodes can run in one process).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

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
