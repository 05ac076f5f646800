//! Reading events after a cursor: the store's pages while the cursor is older than the
//! ring, then the ring, then (for a [`Subscription`]) the live stream — in seq order,
//! without gaps or duplicates.
//!
//! Only durable tasks' and runtime-registered agents' events are stored (DESIGN §13.4);
//! the part of a resumption older than the ring yields those, and events that lived only
//! in the ring and left it are gone. A cursor is expired only when it is older than both
//! the store's oldest event and the ring's: retention pruned what followed it.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::broadcast;

use super::{EventBus, EventFilter, EventsError};
use crate::domain::Event;
use crate::ports::Store;

/// Events read from the store or the ring at a time.
const BATCH: usize = 1000;
/// Events a listing examines before it answers with what it found and a cursor, so a
/// narrow filter over a long history costs bounded work per request.
const SCAN_BUDGET: usize = 10 * BATCH;

/// A cursor over the events kept: stored ones first, then the ring's.
pub struct Replay {
    bus: Arc<EventBus>,
    store: Arc<dyn Store>,
    /// The seq of the last event read (the cursor at first).
    last: u64,
    /// Whether the cursor was compared with what is kept.
    checked: bool,
}

/// One page of a listing.
#[derive(Debug)]
pub struct EventPage {
    pub events: Vec<Arc<Event>>,
    /// The cursor to continue from when more events may follow; `None` once the listing
    /// reached the newest event.
    pub next: Option<u64>,
}

impl Replay {
    /// A cursor after `after`; 0 reads everything still kept and never expires.
    pub fn new(bus: Arc<EventBus>, store: Arc<dyn Store>, after: u64) -> Self {
        Replay { bus, store, last: after, checked: after == 0 }
    }

    /// The next events after the cursor, oldest first, at most `max`; empty once the
    /// cursor is at the newest event published.
    pub async fn next_batch(&mut self, max: usize) -> Result<Vec<Arc<Event>>, EventsError> {
        loop {
            let ring_oldest = match self.bus.since(self.last, max) {
                Ok(events) => {
                    self.checked = true;
                    if let Some(e) = events.last() {
                        self.last = e.seq;
                    }
                    return Ok(events);
                }
                Err(oldest) => oldest,
            };
            if !self.checked {
                let stored_oldest = self.store.events_after(0, 1).await?.first().map(|e| e.seq);
                let oldest = stored_oldest.map_or(ring_oldest, |s| s.min(ring_oldest));
                if self.last + 1 < oldest {
                    return Err(EventsError::CursorExpired { after: self.last, oldest });
                }
                self.checked = true;
            }
            // Stored events the ring also holds come from the ring, after this.
            let page: Vec<Arc<Event>> = self
                .store
                .events_after(self.last, max)
                .await?
                .into_iter()
                .take_while(|e| e.seq < ring_oldest)
                .map(Arc::new)
                .collect();
            match page.last() {
                Some(e) => {
                    self.last = e.seq;
                    return Ok(page);
                }
                // Nothing stored before the ring: what lay between lived only in the ring.
                None => self.last = self.last.max(ring_oldest - 1),
            }
        }
    }

    /// Up to `limit` events matching `filter`, examining at most [`SCAN_BUDGET`] events.
    pub async fn page(&mut self, filter: &EventFilter, limit: usize) -> Result<EventPage, EventsError> {
        let mut events = Vec::new();
        let mut scanned = 0;
        loop {
            let batch = self.next_batch(BATCH).await?;
            if batch.is_empty() {
                return Ok(EventPage { events, next: None });
            }
            scanned += batch.len();
            for event in batch {
                if filter.matches(&event) {
                    let seq = event.seq;
                    events.push(event);
                    if events.len() >= limit {
                        return Ok(EventPage { events, next: Some(seq) });
                    }
                }
            }
            if scanned >= SCAN_BUDGET {
                return Ok(EventPage { events, next: Some(self.last) });
            }
        }
    }
}

/// A subscription: the events after its cursor ([`Replay`]), then the live stream.
pub struct Subscription {
    replay: Replay,
    pending: VecDeque<Arc<Event>>,
    live: broadcast::Receiver<Arc<Event>>,
    /// Reading the live stream (otherwise catching up through `replay`).
    live_now: bool,
    filter: EventFilter,
}

impl Subscription {
    /// From `after`, or (None) from the next event published.
    pub(super) fn new(
        bus: Arc<EventBus>,
        store: Arc<dyn Store>,
        filter: EventFilter,
        after: Option<u64>,
    ) -> Self {
        // The live receiver exists before the catch-up reads the ring, so no event falls
        // between the two; the ones seen twice are skipped by seq.
        let (now, live) = bus.subscribe();
        let replay = Replay::new(bus, store, after.unwrap_or(now));
        Subscription { replay, pending: VecDeque::new(), live, live_now: after.is_none(), filter }
    }

    /// The next matching event, in seq order; `Ok(None)` once the bus is gone. A
    /// subscriber that falls behind the live buffer catches up from the ring (or the
    /// store) again; only an expired cursor or a failing store ends it.
    pub async fn next(&mut self) -> Result<Option<Arc<Event>>, EventsError> {
        loop {
            while let Some(event) = self.pending.pop_front() {
                if self.filter.matches(&event) {
                    return Ok(Some(event));
                }
            }
            if !self.live_now {
                let batch = self.replay.next_batch(BATCH).await?;
                self.live_now = batch.is_empty();
                self.pending.extend(batch);
                continue;
            }
            match self.live.recv().await {
                Ok(event) if event.seq <= self.replay.last => {}
                Ok(event) => {
                    self.replay.last = event.seq;
                    if self.filter.matches(&event) {
                        return Ok(Some(event));
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => self.live_now = false,
                Err(broadcast::error::RecvError::Closed) => return Ok(None),
            }
        }
    }

    /// Whether everything published so far has been handed out: the subscriber is
    /// reading the live stream, not catching up.
    pub fn caught_up(&self) -> bool {
        self.live_now && self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::EventKind;
    use crate::events::{Events, EventsArgs, EventsMsg};
    use crate::ports::{EventSink, MemoryStore, SystemClock, Write};
    use ractor::Actor;
    use serde_json::json;

    /// A bus of `capacity` holding events 1..=`emitted`, and a store holding those of
    /// `stored` (the durable ones, or what retention left).
    async fn history(
        capacity: usize,
        emitted: u64,
        stored: impl Fn(u64) -> bool,
    ) -> (Arc<EventBus>, Arc<MemoryStore>) {
        let bus = EventBus::new(capacity, Arc::new(SystemClock));
        let store = Arc::new(MemoryStore::new());
        for seq in 1..=emitted {
            let event = bus.emit(
                EventKind::TaskQueued,
                if seq.is_multiple_of(3) { "b" } else { "a" }.into(),
                format!("t{seq}").into(),
                json!(null).into(),
            );
            if stored(seq) {
                store.write_batch(&[Write::AppendEvent(event)]).await.unwrap();
            }
        }
        (bus, store)
    }

    async fn drain(sub: &mut Subscription, n: usize) -> Vec<u64> {
        let mut seqs = Vec::new();
        for _ in 0..n {
            let next = tokio::time::timeout(std::time::Duration::from_secs(5), sub.next()).await;
            seqs.push(next.unwrap().unwrap().unwrap().seq);
        }
        seqs
    }

    #[tokio::test]
    async fn a_subscription_resumes_from_the_store_then_the_ring_then_live() {
        // The ring keeps 9..=12; events 4 and 6 were never stored (not durable).
        let (bus, store) = history(4, 12, |seq| seq <= 10 && seq != 4 && seq != 6).await;
        let (events, handle) =
            Actor::spawn(None, Events, EventsArgs { bus: bus.clone(), store: store.clone() }).await.unwrap();
        let mut sub = ractor::call!(events, |r| EventsMsg::Subscribe {
            filter: EventFilter::default(),
            after: Some(2),
            reply: r
        })
        .unwrap();
        assert!(!sub.caught_up());
        assert_eq!(
            drain(&mut sub, 8).await,
            vec![3, 5, 7, 8, 9, 10, 11, 12],
            "stored, then the ring; 10 once"
        );
        bus.emit(EventKind::TaskSucceeded, "a".into(), "t1".into(), json!(null).into());
        assert_eq!(drain(&mut sub, 1).await, vec![13]);
        let nothing_more = tokio::time::timeout(std::time::Duration::from_millis(20), sub.next()).await;
        assert!(nothing_more.is_err() && sub.caught_up(), "reading the live stream now");
        bus.emit(EventKind::TaskSucceeded, "a".into(), "t2".into(), json!(null).into());
        assert_eq!(drain(&mut sub, 1).await, vec![14]);
        events.stop(None);
        handle.await.unwrap();
    }

    #[tokio::test]
    async fn only_a_cursor_older_than_the_store_and_the_ring_expires() {
        // Retention left 5..=10 in the store; the ring keeps 9..=12.
        let (bus, store) = history(4, 12, |seq| (5..=10).contains(&seq)).await;
        let replay = |after| Replay::new(bus.clone(), store.clone(), after);
        assert_eq!(
            replay(3).next_batch(10).await.unwrap_err(),
            EventsError::CursorExpired { after: 3, oldest: 5 }
        );
        let resumed: Vec<u64> = replay(4).next_batch(10).await.unwrap().iter().map(|e| e.seq).collect();
        assert_eq!(resumed, vec![5, 6, 7, 8]);
        let everything: Vec<u64> = replay(0).next_batch(100).await.unwrap().iter().map(|e| e.seq).collect();
        assert_eq!(everything, vec![5, 6, 7, 8], "0 reads what is kept and never expires");
        // Nothing stored at all (a store pruned empty): the ring decides.
        let (bus, store) = history(4, 12, |_| false).await;
        let mut old = Replay::new(bus.clone(), store.clone(), 7);
        assert_eq!(old.next_batch(10).await.unwrap_err(), EventsError::CursorExpired { after: 7, oldest: 9 });
        let ring: Vec<u64> =
            Replay::new(bus, store, 8).next_batch(10).await.unwrap().iter().map(|e| e.seq).collect();
        assert_eq!(ring, vec![9, 10, 11, 12]);
    }

    #[tokio::test]
    async fn a_listing_pages_through_store_and_ring_with_a_filter() {
        let (bus, store) = history(4, 12, |seq| seq <= 10).await;
        let (events, handle) = Actor::spawn(None, Events, EventsArgs { bus, store }).await.unwrap();
        let filter = EventFilter { namespaces: vec!["a".into()], ..Default::default() };
        let mut seen = Vec::new();
        let mut after = 0;
        loop {
            let filter = filter.clone();
            let page = ractor::call!(events, |r| EventsMsg::List { filter, after, limit: 3, reply: r })
                .unwrap()
                .unwrap();
            seen.extend(page.events.iter().map(|e| e.seq));
            match page.next {
                Some(next) => after = next,
                None => break,
            }
        }
        assert_eq!(seen, vec![1, 2, 4, 5, 7, 8, 10, 11]);
        events.stop(None);
        handle.await.unwrap();
    }

    #[tokio::test]
    async fn a_lagging_subscriber_catches_up_from_the_store() {
        let (bus, store) = history(2, 0, |_| true).await;
        let (events, handle) =
            Actor::spawn(None, Events, EventsArgs { bus: bus.clone(), store: store.clone() }).await.unwrap();
        let mut sub = ractor::call!(events, |r| EventsMsg::Subscribe {
            filter: EventFilter::default(),
            after: None,
            reply: r
        })
        .unwrap();
        for i in 0..5 {
            let event =
                bus.emit(EventKind::TaskQueued, "a".into(), format!("t{i}").into(), json!(null).into());
            store.write_batch(&[Write::AppendEvent(event)]).await.unwrap();
        }
        assert_eq!(drain(&mut sub, 5).await, vec![1, 2, 3, 4, 5], "the live buffer of 2 lagged");
        events.stop(None);
        handle.await.unwrap();
    }
}
