//! Pure supervision policy: what to restart, how often, and how long to wait.
//! No actors here, so everything is property-tested.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Which children restart when one of them exits abnormally.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Only the child that exited.
    #[default]
    OneForOne,
    /// Every child: the others are stopped (in reverse start order) and all restart in start order.
    OneForAll,
    /// The child that exited and every child started after it.
    RestForOne,
}

/// Whether a child is restarted when it exits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Restart {
    /// Always restarted, whatever the reason it exited.
    #[default]
    Permanent,
    /// Restarted only after an abnormal exit (failure, kill, or a stop with a reason
    /// other than `normal` / `shutdown`).
    Transient,
    /// Never restarted; removed from the supervisor when it exits.
    Temporary,
}

/// Restart intensity: more than `max_restarts` restarts within `window` makes the
/// supervisor give up and fail upward.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Intensity {
    pub max_restarts: u32,
    pub window: Duration,
}

impl Intensity {
    /// No limit at all (benches, tests of restart speed).
    pub const UNLIMITED: Intensity = Intensity { max_restarts: u32::MAX, window: Duration::from_secs(1) };
}

impl Default for Intensity {
    /// Erlang's default: 3 restarts in 5 seconds.
    fn default() -> Self {
        Intensity { max_restarts: 3, window: Duration::from_secs(5) }
    }
}

/// Sliding window of restart times used to enforce an [`Intensity`].
#[derive(Debug, Clone)]
pub struct RestartWindow {
    intensity: Intensity,
    restarts: VecDeque<Instant>,
}

impl RestartWindow {
    pub fn new(intensity: Intensity) -> Self {
        RestartWindow { intensity, restarts: VecDeque::new() }
    }

    /// Forgets restarts that fell out of the window ending at `now`. A restart exactly
    /// `window` old no longer counts.
    fn prune(&mut self, now: Instant) {
        while let Some(&t) = self.restarts.front() {
            if now.saturating_duration_since(t) >= self.intensity.window {
                self.restarts.pop_front();
            } else {
                break;
            }
        }
    }

    /// Records a restart at `now`. Returns `false` when this restart exceeds the
    /// intensity (more than `max_restarts` within `window`), i.e. the supervisor must escalate.
    pub fn record(&mut self, now: Instant) -> bool {
        self.prune(now);
        self.restarts.push_back(now);
        // Only "more than max" matters, so history beyond max + 1 entries is dropped:
        // memory stays bounded by the intensity, not by how fast a child crashes.
        let keep = (self.intensity.max_restarts as usize).saturating_add(1);
        while self.restarts.len() > keep {
            self.restarts.pop_front();
        }
        self.restarts.len() <= self.intensity.max_restarts as usize
    }

    /// Why a supervisor gives up: names who, the intensity and the last failure, so the
    /// cause is visible wherever the failure surfaces (agent health, logs, the parent).
    pub fn exceeded(&mut self, who: &str, now: Instant, last_failure: &str) -> String {
        let Intensity { max_restarts, window } = self.intensity;
        let recent = self.recent(now);
        format!("{who}: {recent} restarts in {window:?} exceeded intensity {max_restarts}/{window:?}; last failure: {last_failure}")
    }

    /// Restarts counted within the window ending at `now`.
    pub fn recent(&mut self, now: Instant) -> u32 {
        self.prune(now);
        self.restarts.len().min(u32::MAX as usize) as u32
    }

    pub fn intensity(&self) -> Intensity {
        self.intensity
    }
}

/// Delay before a restart: `initial * multiplier^attempt`, capped at `max`, with optional
/// jitter (uniform in `[d/2, d]`). An `initial` of zero restarts immediately.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    pub multiplier: f64,
    pub jitter: bool,
}

impl Backoff {
    /// Restart at once, every time.
    pub const IMMEDIATE: Backoff =
        Backoff { initial: Duration::ZERO, max: Duration::ZERO, multiplier: 1.0, jitter: false };

    /// Delay before restart number `attempt` (0 = first restart in the current window).
    ///
    /// A `multiplier` below 1 (or NaN) is treated as 1, so delays never shrink as
    /// attempts grow; an `initial` above `max` is capped at `max`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let d = self.base(attempt);
        if !self.jitter || d.is_zero() {
            return d;
        }
        // Jitter spreads the restarts of many children that failed together.
        let lo = d / 2;
        let span = (d - lo).as_nanos().min(u64::MAX as u128) as u64;
        lo + Duration::from_nanos(rand::random_range(0..=span))
    }

    fn base(&self, attempt: u32) -> Duration {
        if self.initial.is_zero() {
            return Duration::ZERO;
        }
        let multiplier = if self.multiplier >= 1.0 { self.multiplier } else { 1.0 };
        let exp = attempt.min(i32::MAX as u32) as i32;
        let secs = self.initial.as_secs_f64() * multiplier.powi(exp);
        if !secs.is_finite() || secs >= self.max.as_secs_f64() {
            return self.max;
        }
        Duration::from_secs_f64(secs).min(self.max)
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_secs(5),
            multiplier: 2.0,
            jitter: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn intensity(max: u32, window_ms: u64) -> Intensity {
        Intensity { max_restarts: max, window: Duration::from_millis(window_ms) }
    }

    #[test]
    fn window_allows_max_then_refuses() {
        let t0 = Instant::now();
        let mut w = RestartWindow::new(intensity(3, 5_000));
        assert!(w.record(t0));
        assert!(w.record(t0 + Duration::from_millis(1)));
        assert!(w.record(t0 + Duration::from_millis(2)));
        assert!(!w.record(t0 + Duration::from_millis(3)));
        assert!(w.record(t0 + Duration::from_millis(5_003)), "the window slid past the old restarts");
    }

    #[test]
    fn zero_max_refuses_every_restart() {
        let mut w = RestartWindow::new(intensity(0, 1_000));
        assert!(!w.record(Instant::now()));
    }

    #[test]
    fn backoff_examples() {
        let b = Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(100),
            multiplier: 2.0,
            jitter: false,
        };
        assert_eq!(b.delay(0), Duration::from_millis(10));
        assert_eq!(b.delay(1), Duration::from_millis(20));
        assert_eq!(b.delay(3), Duration::from_millis(80));
        assert_eq!(b.delay(4), Duration::from_millis(100));
        assert_eq!(b.delay(u32::MAX), Duration::from_millis(100));
        assert_eq!(Backoff::IMMEDIATE.delay(7), Duration::ZERO);
    }

    proptest! {
        /// Whatever the arrival pattern, the accepted restarts never number more than
        /// `max` in any window-long interval.
        #[test]
        fn window_never_allows_more_than_max(
            max in 0u32..6,
            window_ms in 1u64..200,
            gaps in proptest::collection::vec(0u64..100, 1..60),
        ) {
            let t0 = Instant::now();
            let mut w = RestartWindow::new(intensity(max, window_ms));
            let mut now = t0;
            let mut accepted = Vec::new();
            for g in gaps {
                now += Duration::from_millis(g);
                if w.record(now) {
                    accepted.push(now);
                }
            }
            let window = Duration::from_millis(window_ms);
            for (i, &start) in accepted.iter().enumerate() {
                let in_window = accepted[i..].iter().take_while(|&&t| t - start < window).count();
                prop_assert!(in_window <= max as usize);
            }
        }

        /// After a quiet period of one window, a restart is always allowed again (max >= 1).
        #[test]
        fn window_allows_after_it_passes(
            max in 1u32..6,
            window_ms in 1u64..200,
            burst in 0usize..20,
        ) {
            let t0 = Instant::now();
            let mut w = RestartWindow::new(intensity(max, window_ms));
            for _ in 0..burst {
                w.record(t0);
            }
            let later = t0 + Duration::from_millis(window_ms);
            prop_assert_eq!(w.recent(later), 0);
            prop_assert!(w.record(later));
        }

        #[test]
        fn backoff_monotone_and_capped(
            initial_ms in 0u64..1_000,
            max_ms in 0u64..10_000,
            multiplier in 0.0f64..10.0,
            attempt in 0u32..200,
        ) {
            let b = Backoff {
                initial: Duration::from_millis(initial_ms),
                max: Duration::from_millis(max_ms),
                multiplier,
                jitter: false,
            };
            prop_assert!(b.delay(attempt) <= b.delay(attempt + 1));
            prop_assert!(b.delay(attempt) <= b.max);
            if initial_ms == 0 {
                prop_assert_eq!(b.delay(attempt), Duration::ZERO);
            }
        }

        #[test]
        fn jitter_within_half_and_full(
            initial_ms in 1u64..1_000,
            max_ms in 1u64..10_000,
            multiplier in 1.0f64..4.0,
            attempt in 0u32..40,
        ) {
            let plain = Backoff {
                initial: Duration::from_millis(initial_ms),
                max: Duration::from_millis(max_ms),
                multiplier,
                jitter: false,
            };
            let jittered = Backoff { jitter: true, ..plain };
            let d = plain.delay(attempt);
            let j = jittered.delay(attempt);
            prop_assert!(j >= d / 2 && j <= d, "{j:?} not in [{:?}, {d:?}]", d / 2);
        }
    }
}
