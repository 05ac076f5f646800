//! Domain events: the [`EventBus`] every component publishes to, and the `events` actor
//! that serves subscriptions and history.
//!
//! Publishing is the hot path (three events per task), so it does not go through a
//! mailbox: the bus assigns `seq`, appends to a bounded ring and hands the event to a
//! `tokio::sync::broadcast` channel, whose own bounded ring gives every subscriber a
//! bounded buffer (a subscriber that falls behind learns it lagged). The actor owns the
//! subscription side: resuming from a cursor, filters, counts.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::Mutex;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde_json::Value;
use tokio::sync::broadcast;

use crate::domain::{Event, EventKind};
use crate::ports::{Clock, EventSink};

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
        Ok(ring.iter().filter(|e| e.seq > after).take(limit).cloned().collect())
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.live.subscribe()
    }
}

impl EventSink for EventBus {
    fn emit(&self, kind: EventKind, namespace: &str, subject: String, data: Value) -> Arc<Event> {
        self.emit_at(self.clock.now(), kind, namespace, subject, data)
    }

    fn emit_at(
        &self,
        time: SystemTime,
        kind: EventKind,
        namespace: &str,
        subject: String,
        data: Value,
    ) -> Arc<Event> {
        let mut ring = self.ring.lock();
        // seq is taken under the ring lock so the ring stays in seq order.
        let seq = self.seq.fetch_add(1, Relaxed) + 1;
        let event = Arc::new(Event { seq, time, kind, namespace: namespace.to_string(), subject, data });
        if ring.len() == self.capacity {
            ring.pop_front();
        }
        ring.push_back(event.clone());
        drop(ring);
        // No receivers is not an error: nobody is listening.
        let _ = self.live.send(event.clone());
        event
    }
}

/// Which events a subscriber wants. Empty lists match everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventFilter {
    pub kinds: Vec<EventKind>,
    pub namespaces: Vec<String>,
    pub subjects: Vec<String>,
}

impl EventFilter {
    pub fn matches(&self, event: &Event) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&event.kind))
            && (self.namespaces.is_empty() || self.namespaces.iter().any(|n| n == &event.namespace))
            && (self.subjects.is_empty() || self.subjects.iter().any(|s| s == &event.subject))
    }
}

/// A live subscription: the stored backlog after the cursor, then the live stream.
pub struct Subscription {
    pub backlog: Vec<Arc<Event>>,
    pub live: broadcast::Receiver<Arc<Event>>,
    pub filter: EventFilter,
}

impl Subscription {
    /// Next matching event, in order, backlog first. `Err(missed)` when the subscriber
    /// fell behind the bounded buffer and lost events: it must resubscribe from its cursor.
    pub async fn next(&mut self, last_seen: &mut u64) -> Result<Option<Arc<Event>>, u64> {
        while !self.backlog.is_empty() {
            let event = self.backlog.remove(0);
            *last_seen = event.seq;
            if self.filter.matches(&event) {
                return Ok(Some(event));
            }
        }
        loop {
            match self.live.recv().await {
                // Events already delivered from the backlog come again on the live side.
                Ok(event) if event.seq <= *last_seen => continue,
                Ok(event) => {
                    *last_seen = event.seq;
                    if self.filter.matches(&event) {
                        return Ok(Some(event));
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => return Err(missed),
                Err(broadcast::error::RecvError::Closed) => return Ok(None),
            }
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventsError {
    /// The cursor is older than the oldest event kept.
    #[error("cursor {after} expired: the oldest event kept is {oldest}")]
    CursorExpired { after: u64, oldest: u64 },
}

pub enum EventsMsg {
    /// Subscribes from `after` (None: only new events).
    Subscribe {
        filter: EventFilter,
        after: Option<u64>,
        reply: RpcReplyPort<Result<Subscription, EventsError>>,
    },
    /// Recent events after a cursor, for listing.
    List {
        filter: EventFilter,
        after: u64,
        limit: usize,
        reply: RpcReplyPort<Result<Vec<Arc<Event>>, EventsError>>,
    },
}

/// The `events` actor: serves subscriptions and history over the node's [`EventBus`].
pub struct Events;

pub struct EventsArgs {
    pub bus: Arc<EventBus>,
}

impl Actor for Events {
    type Msg = EventsMsg;
    type State = Arc<EventBus>;
    type Arguments = EventsArgs;

    async fn pre_start(
        &self,
        _: ActorRef<EventsMsg>,
        args: EventsArgs,
    ) -> Result<Arc<EventBus>, ActorProcessingErr> {
        Ok(args.bus)
    }

    async fn handle(
        &self,
        _: ActorRef<EventsMsg>,
        msg: EventsMsg,
        bus: &mut Arc<EventBus>,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            EventsMsg::Subscribe { filter, after, reply } => {
                // Subscribe to the live stream first, then read the backlog, so no event
                // falls between the two; duplicates are skipped by seq.
                let live = bus.subscribe();
                let result = match after {
                    None => Ok(Subscription { backlog: Vec::new(), live, filter }),
                    Some(after) => bus
                        .since(after, usize::MAX)
                        .map(|backlog| Subscription { backlog, live, filter })
                        .map_err(|oldest| EventsError::CursorExpired { after, oldest }),
                };
                let _ = reply.send(result);
            }
            EventsMsg::List { filter, after, limit, reply } => {
                let result = bus
                    .since(after, usize::MAX)
                    .map(|events| events.into_iter().filter(|e| filter.matches(e)).take(limit).collect())
                    .map_err(|oldest| EventsError::CursorExpired { after, oldest });
                let _ = reply.send(result);
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
            bus.emit(EventKind::TaskQueued, "default", format!("t{i}"), json!(null));
        }
        assert_eq!(bus.last_seq(), 5);
        let kept: Vec<u64> = bus.since(2, 10).unwrap().iter().map(|e| e.seq).collect();
        assert_eq!(kept, vec![3, 4, 5]);
        assert_eq!(bus.since(1, 10).unwrap_err(), 3, "cursor 1 is older than the ring");
        assert!(bus.since(5, 10).unwrap().is_empty());
    }

    #[tokio::test]
    async fn subscription_resumes_backlog_then_live_without_duplicates() {
        let bus = bus(16);
        bus.emit(EventKind::TaskQueued, "a", "t1".into(), json!(1));
        bus.emit(EventKind::TaskQueued, "b", "t2".into(), json!(2));
        let (events, _) = Actor::spawn(None, Events, EventsArgs { bus: bus.clone() }).await.unwrap();
        let filter = EventFilter { namespaces: vec!["a".into()], ..Default::default() };
        let mut sub = ractor::call!(events, |r| EventsMsg::Subscribe { filter, after: Some(0), reply: r })
            .unwrap()
            .unwrap();
        bus.emit(EventKind::TaskSucceeded, "a", "t1".into(), json!(3));
        let mut last = 0;
        let first = sub.next(&mut last).await.unwrap().unwrap();
        assert_eq!((first.seq, first.subject.as_str()), (1, "t1"));
        let second = sub.next(&mut last).await.unwrap().unwrap();
        assert_eq!((second.seq, second.kind), (3, EventKind::TaskSucceeded));
        events.stop(None);
    }

    #[tokio::test]
    async fn slow_subscriber_learns_it_lagged() {
        let bus = bus(2);
        let mut sub = Subscription { backlog: vec![], live: bus.subscribe(), filter: EventFilter::default() };
        for i in 0..5 {
            bus.emit(EventKind::TaskQueued, "a", format!("t{i}"), json!(null));
        }
        let mut last = 0;
        assert!(sub.next(&mut last).await.is_err());
    }
}
