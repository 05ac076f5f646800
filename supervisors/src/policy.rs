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
        todo!()
    }

    /// Records a restart at `now`. Returns `false` when this restart exceeds the
    /// intensity (more than `max_restarts` within `window`), i.e. the supervisor must escalate.
    pub fn record(&mut self, now: Instant) -> bool {
        todo!()
    }

    /// Restarts counted within the window ending at `now`.
    pub fn recent(&mut self, now: Instant) -> u32 {
        todo!()
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
    pub fn delay(&self, attempt: u32) -> Duration {
        todo!()
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
