//! Bounded waits (`POST /v1/tasks?wait=30s`): their deadlines grouped into 10 ms slots,
//! with one timer per slot rather than one per waiter, so a wait costs a set insertion.
//! A task that finishes early takes its id out again, and a slot left empty cancels its
//! timer: a long wait on a quick task leaves nothing sleeping.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use tokio::task::AbortHandle;

use super::tasks::Waiter;
use crate::domain::TaskId;

/// How finely deadlines are kept: a bounded wait ends up to this much after its bound.
const SLOT: Duration = Duration::from_millis(10);

#[derive(Default)]
struct Slot {
    ids: HashSet<TaskId>,
    timer: Option<AbortHandle>,
}

pub struct WaitSlots {
    epoch: Instant,
    slots: BTreeMap<u64, Slot>,
}

impl WaitSlots {
    pub fn new() -> Self {
        WaitSlots { epoch: Instant::now(), slots: BTreeMap::new() }
    }

    /// Files a wait of task `id` ending at `until`: its slot, and when the slot is new,
    /// how long until its timer should fire (then hand the timer to [`Self::timer`]).
    pub fn add(&mut self, id: TaskId, until: Instant) -> (u64, Option<Duration>) {
        let since = until.saturating_duration_since(self.epoch);
        let slot = since.as_nanos().div_ceil(SLOT.as_nanos()) as u64;
        let entry = self.slots.entry(slot).or_default();
        let new = entry.ids.is_empty();
        entry.ids.insert(id);
        // In nanoseconds: `SLOT * u32` would wrap after 497 days of uptime.
        let fires_at = self.epoch + Duration::from_nanos(slot * SLOT.as_nanos() as u64);
        (slot, new.then(|| fires_at.saturating_duration_since(Instant::now())))
    }

    /// The timer of a new slot, cancelled if the slot empties before it fires.
    pub fn timer(&mut self, slot: u64, timer: AbortHandle) {
        match self.slots.get_mut(&slot) {
            Some(entry) => entry.timer = Some(timer),
            None => timer.abort(),
        }
    }

    /// Task `id` finished and is answering `waiters`: their waits need no timer any more.
    pub fn unfile(&mut self, id: TaskId, waiters: &[Waiter]) {
        for slot in waiters.iter().filter_map(|w| w.slot) {
            let Some(entry) = self.slots.get_mut(&slot) else { continue };
            entry.ids.remove(&id);
            if entry.ids.is_empty() {
                if let Some(timer) = self.slots.remove(&slot).and_then(|e| e.timer) {
                    timer.abort();
                }
            }
        }
    }

    /// The tasks whose waits end with `slot` (its timer fired).
    pub fn take(&mut self, slot: u64) -> HashSet<TaskId> {
        self.slots.remove(&slot).map(|e| e.ids).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orchestrator::WaitReply;

    fn waiter(slot: u64) -> Waiter {
        let (tx, _rx) = tokio::sync::oneshot::channel();
        Waiter { reply: WaitReply::Port(tx.into()), until: None, slot: Some(slot) }
    }

    #[tokio::test]
    async fn waits_share_a_timer_per_slot_and_an_emptied_slot_cancels_it() {
        let mut slots = WaitSlots::new();
        let (a, b) = (TaskId::new(), TaskId::new());
        let until = Instant::now() + Duration::from_secs(5);
        let (slot, timer) = slots.add(a, until);
        let delay = timer.expect("a new slot needs a timer");
        assert!(
            delay >= Duration::from_secs(5) - SLOT && delay <= Duration::from_secs(5) + SLOT,
            "{delay:?}"
        );
        assert_eq!(slots.add(b, until), (slot, None), "the same slot shares the timer");
        let sleeping = tokio::spawn(tokio::time::sleep(Duration::from_secs(60)));
        slots.timer(slot, sleeping.abort_handle());
        slots.unfile(a, &[waiter(slot)]);
        assert!(!sleeping.is_finished(), "b still waits on the slot");
        slots.unfile(b, &[waiter(slot)]);
        assert!(sleeping.await.unwrap_err().is_cancelled(), "the emptied slot cancelled its timer");
        assert!(slots.take(slot).is_empty());
        let (slot, _) = slots.add(a, until);
        assert_eq!(slots.take(slot), HashSet::from([a]));
    }
}
