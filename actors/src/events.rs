//! Domain events: the [`EventBus`] every component publishes to, and the `events` actor
//! that serves subscriptions and history.
//!
//! Publishing is the hot path (three events per task), so it does not go through a
//! mailbox: the bus assigns `seq`, appends to a bounded ring and hands the event to a
//! `tokio::sync::broadcast` channel, whose own bounded ring gives every subscriber a
//! bounded buffer. The actor owns the subscription side: a cursor older than the ring is
//! resumed from the store's events ([`replay`]), then from the ring, then live.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::Mutex;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde_json::Value;
use tokio::sync::broadcast;

use crate::domain::{Event, EventKind};
use crate::ports::{Clock, EventSink, Store, StoreError};

mod replay;
pub use replay::{EventPage, Replay, Subscription};

/// The node's event stream: sequence numbers, a ring of recent events, live fan-out.
pub struct EventBus {
    seq: AtomicU64,
    ring: Mutex<VecDeque<Arc<Event>>>,
    capacity: usize,
    live: broadcast::Sender<Arc<Event>>,
    clock: Arc<dyn Clock>,
}

impl EventBus {
    /// `capacity` bounds both the history ring and each subscriber's buffer.
    pub fn new(capacity: usize, clock: Arc<dyn Clock>) -> Arc<Self> {
        let capacity = capacity.max(1);
        let (live, _) = broadcast::channel(capacity);
        Arc::new(EventBus {
            seq: AtomicU64::new(0),
            ring: Mutex::new(VecDeque::new()),
            capacity,
            live,
            clock,
        })
    }

    /// Continues the sequence after `seq` (the highest the store holds), before any emit.
    pub fn continue_from(&self, seq: u64) {
        self.seq.fetch_max(seq, Relaxed);
    }

    /// The last sequence number assigned (0 before the first event).
    pub fn last_seq(&self) -> u64 {
        self.seq.load(Relaxed)
    }

    /// Events with `seq > after` still in the ring, oldest first, at most `limit`.
    /// `Err(oldest)` when `after` is older than what the ring keeps.
    pub fn since(&self, after: u64, limit: usize) -> Result<Vec<Arc<Event>>, u64> {
        let ring = self.ring.lock();
        let oldest = ring.front().map(|e| e.seq).unwrap_or(self.last_seq() + 1);
        if after + 1 < oldest && after < self.last_seq() {
            return Err(oldest);
        }
        // The ring holds consecutive seqs, so the first event wanted is found by index
        // rather than by a scan (readers page through a ring of 65,536 under its lock).
        let skip = usize::try_from((after + 1).saturating_sub(oldest)).unwrap_or(usize::MAX).min(ring.len());
        Ok(ring.range(skip..).take(limit).cloned().collect())
    }

    /// A live receiver, and the seq of the last event published before it: taken under
    /// the ring lock, so no event is half published (numbered but not yet sent).
    pub fn subscribe(&self) -> (u64, broadcast::Receiver<Arc<Event>>) {
        let _ring = self.ring.lock();
        (self.last_seq(), self.live.subscribe())
    }
}

impl EventSink for EventBus {
    fn emit(&self, kind: EventKind, namespace: Arc<str>, subject: Arc<str>, data: Arc<Value>) -> Arc<Event> {
        self.emit_at(self.clock.now(), kind, namespace, subject, data)
    }

    fn emit_at(
        &self,
        time: SystemTime,
        kind: EventKind,
        namespace: Arc<str>,
        subject: Arc<str>,
        data: Arc<Value>,
    ) -> Arc<Event> {
        let mut ring = self.ring.lock();
        // seq is taken under the ring lock so the ring stays in seq order.
        let seq = self.seq.fetch_add(1, Relaxed) + 1;
        let event = Arc::new(Event { seq, time, kind, namespace, subject, data });
        if ring.len() == self.capacity {
            ring.pop_front();
        }
        ring.push_back(event.clone());
        // Sent under the ring lock, so live subscribers get events in seq order (two
        // emitters could otherwise swap theirs, and a subscriber skips what is not newer
        // than what it has seen). The broadcast takes its own lock anyway.
        // No receivers is not an error: nobody is listening.
        let _ = self.live.send(event.clone());
        drop(ring);
        event
    }
}

/// Which events a subscriber wants. Empty lists match everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventFilter {
    pub kinds: Vec<EventKind>,
    pub namespaces: Vec<String>,
    /// Task ids, agent keys (`<ns>/<agent>`), actor names.
    pub subjects: Vec<String>,
    /// Agent names: see [`agent_of`].
    pub agents: Vec<String>,
}

impl EventFilter {
    pub fn matches(&self, event: &Event) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&event.kind))
            && (self.namespaces.is_empty() || self.namespaces.iter().any(|n| **n == *event.namespace))
            && (self.subjects.is_empty() || self.subjects.iter().any(|s| **s == *event.subject))
            && (self.agents.is_empty() || agent_of(event).is_some_and(|a| self.agents.iter().any(|n| n == a)))
    }
}

/// The agent an event is about, by name within the event's namespace: `agent.*` events
/// name it in their subject (`<ns>/<agent>`); task lifecycle events carry it in
/// `data.agent` once it is known (the named target, then the agent that ran). Progress
/// data is the agent's own payload, so it is not trusted to name anyone.
pub fn agent_of(event: &Event) -> Option<&str> {
    use EventKind::*;
    match event.kind {
        AgentRegistered | AgentRemoved | AgentFailed | AgentRestarted => {
            event.subject.strip_prefix(&*event.namespace)?.strip_prefix('/')
        }
        TaskQueued | TaskRunning | TaskRetrying | TaskSucceeded | TaskFailed | TaskCancelled
        | TaskTimedOut => event.data.get("agent")?.as_str(),
        TaskProgress | ActorRestarted | ScanStarted | ScanProgress | ScanFinished | ScanFailed => None,
        // Runs name the agents of their steps in `data.agent` where one is set.
        RunStarted | RunSucceeded | RunFailed | RunCancelled | RunChanged | StepRunning | StepSucceeded
        | StepFailed | StepRetrying | StepSkipped | StepWaitingApproval | StepDecided | StepPlanned
        | StepItemRunning | StepItemSucceeded | StepItemFailed => event.data.get("agent")?.as_str(),
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EventsError {
    /// The cursor is older than the oldest event kept, in the store or in the ring.
    #[error("cursor {after} expired: the oldest event kept is {oldest}")]
    CursorExpired { after: u64, oldest: u64 },
    /// Resuming from stored events failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub enum EventsMsg {
    /// Subscribes from `after` (None: only new events). The answer holds no I/O yet: a
    /// cursor older than the ring is resumed from the store by the subscriber's own task.
    Subscribe { filter: EventFilter, after: Option<u64>, reply: RpcReplyPort<Subscription> },
    /// At most `limit` events after a cursor, for listing.
    List {
        filter: EventFilter,
        after: u64,
        limit: usize,
        reply: RpcReplyPort<Result<EventPage, EventsError>>,
    },
}

/// The `events` actor: serves subscriptions and history over the node's [`EventBus`] and
/// the events the store keeps.
pub struct Events;

pub struct EventsArgs {
    pub bus: Arc<EventBus>,
    pub store: Arc<dyn Store>,
}

impl Actor for Events {
    type Msg = EventsMsg;
    type State = EventsArgs;
    type Arguments = EventsArgs;

    async fn pre_start(
        &self,
        _: ActorRef<EventsMsg>,
        args: EventsArgs,
    ) -> Result<EventsArgs, ActorProcessingErr> {
        Ok(args)
    }

    async fn handle(
        &self,
        _: ActorRef<EventsMsg>,
        msg: EventsMsg,
        state: &mut EventsArgs,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            EventsMsg::Subscribe { filter, after, reply } => {
                let _ = reply.send(Subscription::new(state.bus.clone(), state.store.clone(), filter, after));
            }
            EventsMsg::List { filter, after, limit, reply } => {
                // Reading stored pages is SQL: it runs beside the mailbox.
                let mut replay = Replay::new(state.bus.clone(), state.store.clone(), after);
                tokio::spawn(async move {
                    let _ = reply.send(replay.page(&filter, limit).await);
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::SystemClock;
    use serde_json::json;

    fn bus(capacity: usize) -> Arc<EventBus> {
        EventBus::new(capacity, Arc::new(SystemClock))
    }

    #[test]
    fn seq_increases_and_ring_is_bounded() {
        let bus = bus(3);
        for i in 0..5 {
            bus.emit(EventKind::TaskQueued, "default".into(), format!("t{i}").into(), json!(null).into());
        }
        assert_eq!(bus.last_seq(), 5);
        let kept: Vec<u64> = bus.since(2, 10).unwrap().iter().map(|e| e.seq).collect();
        assert_eq!(kept, vec![3, 4, 5]);
        let kept: Vec<u64> = bus.since(3, 1).unwrap().iter().map(|e| e.seq).collect();
        assert_eq!(kept, vec![4]);
        assert_eq!(bus.since(1, 10).unwrap_err(), 3, "cursor 1 is older than the ring");
        assert!(bus.since(5, 10).unwrap().is_empty());
        assert!(bus.since(9, 10).unwrap().is_empty(), "a cursor from the future reads nothing");
    }

    #[test]
    fn the_agent_filter_reads_subjects_of_agent_events_and_data_of_task_events() {
        let bus = bus(8);
        let registered = bus.emit(EventKind::AgentRegistered, "a".into(), "a/echo".into(), json!({}).into());
        let ran =
            bus.emit(EventKind::TaskSucceeded, "a".into(), "t1".into(), json!({"agent": "echo"}).into());
        let other =
            bus.emit(EventKind::TaskRunning, "a".into(), "t2".into(), json!({"agent": "sleeper"}).into());
        let claims =
            bus.emit(EventKind::TaskProgress, "a".into(), "t2".into(), json!({"agent": "echo"}).into());
        let filter = EventFilter { agents: vec!["echo".into()], ..Default::default() };
        let matched: Vec<bool> =
            [&registered, &ran, &other, &claims].iter().map(|e| filter.matches(e)).collect();
        assert_eq!(matched, vec![true, true, false, false]);
    }
}
