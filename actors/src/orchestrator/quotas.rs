//! Per-namespace quotas on shared capacity: how many tasks a namespace may have accepted
//! and unfinished (beyond it, intake refuses with a retry hint), and how many may run at
//! once (beyond it, its tasks wait their turn in order while other namespaces' tasks go
//! ahead). With no quota configured — the default — every call returns at once.

use std::collections::{HashMap, VecDeque};

use crate::domain::TaskId;

/// The limits of one namespace; 0 means no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NamespaceQuota {
    /// Tasks accepted and not finished.
    pub max_in_flight: usize,
    /// Tasks handed to agent pools at once.
    pub max_running: usize,
}

impl NamespaceQuota {
    fn is_unlimited(&self) -> bool {
        self.max_in_flight == 0 && self.max_running == 0
    }
}

/// Quotas for every namespace: `default` unless `namespaces` names it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QuotaSettings {
    pub default: NamespaceQuota,
    pub namespaces: HashMap<String, NamespaceQuota>,
}

#[derive(Default)]
struct Usage {
    in_flight: usize,
    running: usize,
    /// Tasks waiting for a run slot, in the order they asked.
    waiting: VecDeque<TaskId>,
}

pub struct Quotas {
    settings: QuotaSettings,
    /// False when no namespace has a limit: the hot path skips the map entirely.
    enabled: bool,
    usage: HashMap<String, Usage>,
}

impl Quotas {
    pub fn new(settings: QuotaSettings) -> Self {
        let enabled =
            !settings.default.is_unlimited() || settings.namespaces.values().any(|q| !q.is_unlimited());
        Quotas { settings, enabled, usage: HashMap::new() }
    }

    /// Whether any namespace has a limit; callers skip quota bookkeeping otherwise.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    fn quota(&self, namespace: &str) -> NamespaceQuota {
        self.settings.namespaces.get(namespace).copied().unwrap_or(self.settings.default)
    }

    fn usage(&mut self, namespace: &str) -> &mut Usage {
        if !self.usage.contains_key(namespace) {
            self.usage.insert(namespace.to_string(), Usage::default());
        }
        self.usage.get_mut(namespace).expect("just inserted")
    }

    /// Counts a new task against its namespace, or returns the limit it would exceed.
    pub fn admit(&mut self, namespace: &str) -> Result<(), usize> {
        if !self.enabled {
            return Ok(());
        }
        let limit = self.quota(namespace).max_in_flight;
        let usage = self.usage(namespace);
        if limit > 0 && usage.in_flight >= limit {
            return Err(limit);
        }
        usage.in_flight += 1;
        Ok(())
    }

    /// Counts a task taken over after a crash: it was accepted once, so it is never refused.
    pub fn readmit(&mut self, namespace: &str) {
        if self.enabled {
            self.usage(namespace).in_flight += 1;
        }
    }

    /// Takes a run slot for `id`, or queues it for the next free one.
    pub fn try_run(&mut self, namespace: &str, id: TaskId) -> bool {
        if !self.enabled {
            return true;
        }
        let limit = self.quota(namespace).max_running;
        let usage = self.usage(namespace);
        if limit > 0 && usage.running >= limit {
            if !usage.waiting.contains(&id) {
                usage.waiting.push_back(id);
            }
            return false;
        }
        usage.running += 1;
        true
    }

    /// Gives back a run slot.
    pub fn release(&mut self, namespace: &str) {
        if self.enabled {
            let usage = self.usage(namespace);
            usage.running = usage.running.saturating_sub(1);
        }
    }

    /// The task left: it no longer counts, and no longer waits.
    pub fn finished(&mut self, namespace: &str, id: TaskId) {
        if !self.enabled {
            return;
        }
        let usage = self.usage(namespace);
        usage.in_flight = usage.in_flight.saturating_sub(1);
        usage.waiting.retain(|w| *w != id);
        if usage.in_flight == 0 && usage.running == 0 {
            self.usage.remove(namespace);
        }
    }

    /// The next waiting task of `namespace` when a run slot is free for it.
    pub fn next_waiting(&mut self, namespace: &str) -> Option<TaskId> {
        if !self.enabled {
            return None;
        }
        let limit = self.quota(namespace).max_running;
        let usage = self.usage.get_mut(namespace)?;
        if limit > 0 && usage.running >= limit {
            return None;
        }
        usage.waiting.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quotas(max_in_flight: usize, max_running: usize) -> Quotas {
        let mut namespaces = HashMap::new();
        namespaces.insert("team-a".to_string(), NamespaceQuota { max_in_flight, max_running });
        Quotas::new(QuotaSettings { default: NamespaceQuota::default(), namespaces })
    }

    #[test]
    fn in_flight_is_capped_per_namespace_and_freed_when_tasks_finish() {
        let mut q = quotas(2, 0);
        let (a, b) = (TaskId::new(), TaskId::new());
        assert_eq!(q.admit("team-a"), Ok(()));
        assert_eq!(q.admit("team-a"), Ok(()));
        assert_eq!(q.admit("team-a"), Err(2));
        assert_eq!(q.admit("team-b"), Ok(()), "other namespaces are not limited");
        q.finished("team-a", a);
        assert_eq!(q.admit("team-a"), Ok(()));
        q.readmit("team-a");
        assert_eq!(q.admit("team-a"), Err(2), "a task taken over after a crash counts too");
        q.finished("team-a", b);
        q.finished("team-a", a);
        assert_eq!(q.admit("team-a"), Ok(()));
    }

    #[test]
    fn running_is_capped_and_waiting_tasks_go_in_order() {
        let mut q = quotas(0, 1);
        let (a, b, c) = (TaskId::new(), TaskId::new(), TaskId::new());
        for _ in [a, b, c] {
            q.admit("team-a").unwrap();
        }
        assert!(q.try_run("team-a", a));
        assert!(!q.try_run("team-a", b));
        assert!(!q.try_run("team-a", c));
        assert_eq!(q.next_waiting("team-a"), None, "no slot yet");
        q.finished("team-a", b);
        q.release("team-a");
        assert_eq!(q.next_waiting("team-a"), Some(c), "a task that left no longer waits");
        assert!(q.try_run("team-a", c));
    }

    #[test]
    fn without_quotas_nothing_is_tracked() {
        let mut q = Quotas::new(QuotaSettings::default());
        for _ in 0..10 {
            assert!(q.admit("x").is_ok() && q.try_run("x", TaskId::new()));
        }
        assert!(q.usage.is_empty());
    }
}
