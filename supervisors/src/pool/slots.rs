//! The shared counters between the pool and its leases, and worker selection.
//!
//! Lost wakeups: the pool queues a job when it saw every worker at capacity, and a lease
//! nudges the pool only when it sees jobs queued. Each side writes its own counter and
//! then reads the other's, both `SeqCst`:
//!   pool:  `queued += 1`      then re-check every worker's `in_flight`
//!   lease: `in_flight -= 1`   then read `queued`
//! In any interleaving at least one side sees the other's write, so either the pool
//! finds the freed worker on its re-check or the lease sends `WorkerFree`. The same
//! pairing holds for `draining` against `busy`.
//!
//! Dead workers: when a worker dies, the pool sets [`DEAD`] on its incarnation's counter
//! and takes the in-flight count out of `busy` in the same atomic step. A lease of that
//! incarnation dropped later sees the bit and leaves `busy` alone, so a lease held by a
//! dead worker's leftover task can never leave a count stuck or make one underflow. The
//! next incarnation gets a fresh counter.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

use super::{Lease, PoolLoad, Routing};

/// Set on a dead incarnation's `in_flight`.
pub(super) const DEAD: usize = 1 << (usize::BITS - 1);

pub(super) struct PoolShared {
    pub(super) load: Arc<PoolLoad>,
    pub(super) draining: AtomicBool,
    /// Casts `WorkerFree` to the pool (the pool's message type is generic, a lease is not).
    pub(super) wake: Box<dyn Fn() + Send + Sync>,
}

/// One worker incarnation's counter, shared with the leases it was given.
pub(crate) struct SlotShared {
    pub(super) in_flight: AtomicUsize,
    pub(super) pool: Arc<PoolShared>,
}

impl SlotShared {
    pub(super) fn new(pool: Arc<PoolShared>) -> Arc<SlotShared> {
        Arc::new(SlotShared { in_flight: AtomicUsize::new(0), pool })
    }

    /// Jobs in flight on a live incarnation.
    #[inline]
    pub(super) fn load(&self) -> usize {
        self.in_flight.load(SeqCst) & !DEAD
    }

    /// Marks the incarnation dead and removes its in-flight jobs from `busy`.
    pub(super) fn retire(&self) {
        let prev = self.in_flight.fetch_or(DEAD, SeqCst);
        if prev & DEAD == 0 {
            self.pool.load.busy.fetch_sub(prev, SeqCst);
        }
    }
}

impl Lease {
    pub(super) fn new(slot: Arc<SlotShared>) -> Lease {
        Lease { slot }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let prev = self.slot.in_flight.fetch_sub(1, SeqCst);
        if prev & DEAD != 0 {
            return;
        }
        let pool = &self.slot.pool;
        pool.load.busy.fetch_sub(1, SeqCst);
        if pool.load.queued.load(SeqCst) > 0 || pool.draining.load(SeqCst) {
            (pool.wake)();
        }
    }
}

/// Picks a worker with spare capacity. `load(i)` is worker `i`'s jobs in flight, or
/// `None` when slot `i` has no live worker.
#[derive(Clone)]
pub(super) struct Router {
    routing: Routing,
    cursor: usize,
    rng: u64,
}

impl Router {
    pub(super) fn new(routing: Routing) -> Router {
        Router { routing, cursor: 0, rng: rand::random::<u64>() | 1 }
    }

    /// xorshift64*: no thread-local lookup on the hot path.
    fn next(&mut self) -> u64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// The two distinct candidates of power-of-two-choices (the same one twice when n = 1).
    pub(super) fn pair(&mut self, n: usize) -> (usize, usize) {
        let a = (self.next() % n as u64) as usize;
        if n == 1 {
            return (a, a);
        }
        let mut b = (self.next() % (n as u64 - 1)) as usize;
        if b >= a {
            b += 1;
        }
        (a, b)
    }

    pub(super) fn pick(
        &mut self,
        n: usize,
        cap: usize,
        load: impl Fn(usize) -> Option<usize>,
    ) -> Option<usize> {
        if n == 0 {
            return None;
        }
        match self.routing {
            Routing::RoundRobin => {
                for k in 0..n {
                    let i = (self.cursor + k) % n;
                    if load(i).is_some_and(|l| l < cap) {
                        self.cursor = i + 1;
                        return Some(i);
                    }
                }
                None
            }
            Routing::LeastLoaded => least_loaded(n, cap, &load),
            Routing::PowerOfTwo => {
                let (a, b) = self.pair(n);
                let free = |i: usize| load(i).filter(|&l| l < cap).map(|l| (l, i));
                match (free(a), free(b)) {
                    (Some(x), Some(y)) => Some(x.min(y).1),
                    (Some((_, i)), None) | (None, Some((_, i))) => Some(i),
                    // Both candidates full or dead: never queue while another worker is free.
                    (None, None) => least_loaded(n, cap, &load),
                }
            }
        }
    }
}

fn least_loaded(n: usize, cap: usize, load: &impl Fn(usize) -> Option<usize>) -> Option<usize> {
    let mut best: Option<(usize, usize)> = None;
    for i in 0..n {
        if let Some(l) = load(i).filter(|&l| l < cap) {
            if l == 0 {
                return Some(i);
            }
            if best.is_none_or(|(bl, _)| l < bl) {
                best = Some((l, i));
            }
        }
    }
    best.map(|(_, i)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_cycles_and_skips_full_or_dead() {
        let mut r = Router::new(Routing::RoundRobin);
        let picks: Vec<_> = (0..6).map(|_| r.pick(3, 1, |_| Some(0)).unwrap()).collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2]);
        let loads = [Some(1), None, Some(0)];
        assert_eq!(r.pick(3, 1, |i| loads[i]), Some(2));
        assert_eq!(r.pick(3, 1, |i| [Some(1), None, Some(1)][i]), None);
    }

    #[test]
    fn least_loaded_prefers_idle() {
        let mut r = Router::new(Routing::LeastLoaded);
        assert_eq!(r.pick(4, 5, |i| [Some(3), Some(1), None, Some(2)][i]), Some(1));
        assert_eq!(r.pick(4, 5, |i| [Some(3), Some(1), Some(0), Some(2)][i]), Some(2));
        assert_eq!(r.pick(2, 1, |_| Some(1)), None);
    }

    #[test]
    fn power_of_two_never_picks_busy_over_idle_in_its_pair() {
        let mut r = Router::new(Routing::PowerOfTwo);
        for round in 0..2_000usize {
            let loads: Vec<Option<usize>> = (0..5).map(|i| Some((i * 7 + round) % 3)).collect();
            let (a, b) = r.clone().pair(5);
            let picked = r.pick(5, 10, |i| loads[i]).unwrap();
            assert!(picked == a || picked == b);
            assert_eq!(loads[picked], loads[a].min(loads[b]), "round {round}: picked the busier of the pair");
        }
        // Both of the pair full: falls back to any free worker.
        let mut r = Router::new(Routing::PowerOfTwo);
        for _ in 0..100 {
            assert_eq!(r.pick(3, 1, |i| [Some(1), Some(0), Some(1)][i]), Some(1));
        }
    }
}
