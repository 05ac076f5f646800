//! Per-actor counters kept in shared atomics, and the snapshot tree built from them.
//!
//! Each supervised slot owns one [`ActorStats`] for its whole life, across restarts, so
//! restart counts accumulate and a snapshot never has to message an actor: it only reads
//! atomics and walks the `children` lists that supervisors keep up to date.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

/// Lifecycle status of a supervised slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum Status {
    Starting = 0,
    Running = 1,
    /// Exited and waiting for its restart (backoff).
    Restarting = 2,
    Stopping = 3,
    Stopped = 4,
    /// Gave up: exceeded its restart intensity or could not start.
    Failed = 5,
}

impl Status {
    fn from_u8(v: u8) -> Status {
        match v {
            0 => Status::Starting,
            1 => Status::Running,
            2 => Status::Restarting,
            3 => Status::Stopping,
            4 => Status::Stopped,
            _ => Status::Failed,
        }
    }
}

/// Why a child was restarted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RestartCause {
    /// Panicked or returned an error from a handler.
    Failed,
    /// Its `pre_start` failed (a spawn error).
    StartFailed,
    /// Stopped itself with an abnormal reason.
    Stopped,
    /// Killed.
    Killed,
}

/// Restart counts by cause.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restarts {
    pub failed: u64,
    pub start_failed: u64,
    pub stopped: u64,
    pub killed: u64,
}

impl Restarts {
    pub fn total(&self) -> u64 {
        self.failed + self.start_failed + self.stopped + self.killed
    }
}

/// Live counters of one supervised slot (an actor and its successive incarnations).
#[derive(Debug)]
pub struct ActorStats {
    name: String,
    actor_id: AtomicU64,
    status: AtomicU8,
    sent: AtomicU64,
    handled: AtomicU64,
    busy_ns: AtomicU64,
    restarts: [AtomicU64; 4],
    children: RwLock<Vec<Arc<ActorStats>>>,
}

impl ActorStats {
    pub fn new(name: impl Into<String>) -> Arc<Self> {
        Arc::new(ActorStats {
            name: name.into(),
            actor_id: AtomicU64::new(0),
            status: AtomicU8::new(Status::Starting as u8),
            sent: AtomicU64::new(0),
            handled: AtomicU64::new(0),
            busy_ns: AtomicU64::new(0),
            restarts: Default::default(),
            children: RwLock::new(Vec::new()),
        })
    }

    /// Creates the stats of a child slot and attaches it under `self`.
    pub fn child(self: &Arc<Self>, name: impl Into<String>) -> Arc<Self> {
        let child = ActorStats::new(name);
        self.children.write().push(child.clone());
        child
    }

    /// Removes a child slot (a temporary child that exited, a worker that was shrunk).
    pub fn detach(&self, child: &Arc<ActorStats>) {
        self.children.write().retain(|c| !Arc::ptr_eq(c, child));
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn status(&self) -> Status {
        Status::from_u8(self.status.load(Relaxed))
    }

    pub fn set_status(&self, status: Status) {
        self.status.store(status as u8, Relaxed);
    }

    /// Records the ractor pid of the current incarnation.
    pub fn set_actor_id(&self, pid: u64) {
        self.actor_id.store(pid, Relaxed);
    }

    pub fn actor_id(&self) -> u64 {
        self.actor_id.load(Relaxed)
    }

    #[inline]
    pub fn on_sent(&self) {
        self.sent.fetch_add(1, Relaxed);
    }

    /// A message the actor never received (its mailbox was closed) must not count as queued.
    #[inline]
    pub fn on_send_failed(&self) {
        self.sent.fetch_sub(1, Relaxed);
    }

    #[inline]
    pub fn on_handled(&self, elapsed: Duration) {
        self.handled.fetch_add(1, Relaxed);
        self.busy_ns.fetch_add(elapsed.as_nanos() as u64, Relaxed);
    }

    pub fn record_restart(&self, cause: RestartCause) {
        self.restarts[cause as usize].fetch_add(1, Relaxed);
    }

    pub fn restarts(&self) -> Restarts {
        Restarts {
            failed: self.restarts[RestartCause::Failed as usize].load(Relaxed),
            start_failed: self.restarts[RestartCause::StartFailed as usize].load(Relaxed),
            stopped: self.restarts[RestartCause::Stopped as usize].load(Relaxed),
            killed: self.restarts[RestartCause::Killed as usize].load(Relaxed),
        }
    }

    pub fn messages_handled(&self) -> u64 {
        self.handled.load(Relaxed)
    }

    /// Time spent handling messages, all incarnations together.
    pub fn busy(&self) -> Duration {
        Duration::from_nanos(self.busy_ns.load(Relaxed))
    }

    pub fn messages_sent(&self) -> u64 {
        self.sent.load(Relaxed)
    }

    /// Messages sent through an [`crate::Addr`] and not yet handled. Messages sent
    /// around the counting layer (plain `ActorRef`s, timers) are not seen, so this is a
    /// lower bound; it saturates at zero.
    pub fn mailbox_depth(&self) -> u64 {
        self.sent.load(Relaxed).saturating_sub(self.handled.load(Relaxed))
    }

    pub fn children(&self) -> Vec<Arc<ActorStats>> {
        self.children.read().clone()
    }

    /// The slot named `name` in this subtree, to build an [`crate::Addr`] for an actor
    /// found in the registry. Names are paths (`node/agents/pool:default/echo`), so only
    /// the branch whose name is a prefix of `name` is searched, not whole pools.
    pub fn find(self: &Arc<Self>, name: &str) -> Option<Arc<ActorStats>> {
        if self.name == name {
            return Some(self.clone());
        }
        let on_path = |child: &Arc<ActorStats>| {
            name.strip_prefix(child.name.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        };
        let children = self.children.read();
        match children.iter().find(|c| on_path(c)) {
            Some(child) => child.find(name),
            // Unnamed (or differently named) intermediate slots: fall back to a full search.
            None => children.iter().find_map(|c| c.find(name)),
        }
    }

    /// A point-in-time view of this slot and everything under it, from counters only.
    pub fn snapshot(&self) -> ActorSnapshot {
        ActorSnapshot {
            name: self.name.clone(),
            actor_id: self.actor_id(),
            status: self.status(),
            restarts: self.restarts(),
            mailbox_depth: self.mailbox_depth(),
            messages_sent: self.messages_sent(),
            messages_handled: self.messages_handled(),
            busy_us: self.busy_ns.load(Relaxed) / 1_000,
            children: self.children.read().iter().map(|c| c.snapshot()).collect(),
        }
    }
}

/// A serializable view of a subtree, built from [`ActorStats`] alone.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ActorSnapshot {
    pub name: String,
    /// ractor pid of the current incarnation (0 before the first start).
    pub actor_id: u64,
    pub status: Status,
    pub restarts: Restarts,
    pub mailbox_depth: u64,
    /// Messages sent through a counting address ([`crate::Addr`]).
    pub messages_sent: u64,
    pub messages_handled: u64,
    /// Total time spent in handlers, in microseconds.
    pub busy_us: u64,
    pub children: Vec<ActorSnapshot>,
}

impl ActorSnapshot {
    /// Finds a node by its name anywhere in the subtree (depth first).
    pub fn find(&self, name: &str) -> Option<&ActorSnapshot> {
        if self.name == name {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find(name))
    }

    /// Number of nodes in the subtree, this one included.
    pub fn count(&self) -> usize {
        1 + self.children.iter().map(|c| c.count()).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_reads_counters_and_children() {
        let root = ActorStats::new("root");
        let child = root.child("root/a");
        child.on_sent();
        child.on_sent();
        child.on_handled(Duration::from_micros(5));
        child.record_restart(RestartCause::Killed);
        child.set_status(Status::Running);
        let snap = root.snapshot();
        let a = snap.find("root/a").unwrap();
        assert_eq!(a.mailbox_depth, 1);
        assert_eq!(a.messages_handled, 1);
        assert_eq!(a.busy_us, 5);
        assert_eq!(a.restarts.killed, 1);
        assert_eq!(a.status, Status::Running);
        assert_eq!(snap.count(), 2);
        assert!(Arc::ptr_eq(&root.find("root/a").unwrap(), &child));
        assert!(root.find("nope").is_none());
        root.detach(&child);
        assert_eq!(root.snapshot().count(), 1);
    }

    #[test]
    fn depth_saturates_at_zero() {
        let s = ActorStats::new("x");
        s.on_handled(Duration::ZERO);
        assert_eq!(s.mailbox_depth(), 0);
    }
}
