//! What the router knows about each provider's recent behaviour, in shared memory: the
//! call tasks update it as calls end, and the router, `/v1/models` and the metrics read
//! it without messaging anyone.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::Serialize;

use super::breaker::{Breaker, BreakerState};
use crate::domain::model::BreakerSettings;
use crate::ports::model::Usage;

/// Weight of the newest sample in the latency moving averages.
const EWMA_ALPHA: f64 = 0.2;

/// One model's counters at one provider.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ModelStats {
    pub calls: u64,
    pub failures: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Moving average of the whole call, in milliseconds.
    pub latency_ms: f64,
    pub last_error: Option<String>,
}

pub struct ProviderStats {
    in_flight: AtomicUsize,
    /// Moving average of call latency in microseconds; 0 until the first call.
    latency_us: AtomicU64,
    breaker: Mutex<Breaker>,
    models: Mutex<HashMap<String, ModelStats>>,
    /// Why the last model discovery failed, if it did.
    discovery_error: Mutex<Option<String>>,
}

/// How one call ended, for the stats.
pub enum Outcome<'a> {
    Success(Usage),
    /// The provider failed (counts against its breaker).
    ProviderFault(&'a str),
    /// The request was refused for its own fault; the provider is healthy.
    RequestFault(&'a str),
}

/// A call the breaker let through. Finish it with how it ended; dropped unfinished (its
/// caller gave up, its task was cancelled) it proved nothing about the provider, so a
/// half-open breaker's trial slot is freed for another call.
pub struct Admission {
    stats: Arc<ProviderStats>,
    started: Instant,
    finished: bool,
}

impl Admission {
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Records the end of the call to `model`.
    pub fn finish(mut self, model: &str, outcome: Outcome<'_>) {
        self.finished = true;
        self.stats.record(model, self.started.elapsed(), outcome, Instant::now());
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if !self.finished {
            self.stats.breaker.lock().abandon();
        }
    }
}

impl ProviderStats {
    pub fn new(breaker: BreakerSettings) -> Self {
        ProviderStats {
            in_flight: AtomicUsize::new(0),
            latency_us: AtomicU64::new(0),
            breaker: Mutex::new(Breaker::new(breaker)),
            models: Mutex::new(HashMap::new()),
            discovery_error: Mutex::new(None),
        }
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Relaxed)
    }

    /// Takes an in-flight slot if fewer than `limit` are taken.
    pub fn try_begin(&self, limit: usize) -> bool {
        self.in_flight.fetch_update(Relaxed, Relaxed, |n| (n < limit).then_some(n + 1)).is_ok()
    }

    pub fn end(&self) {
        self.in_flight.fetch_sub(1, Relaxed);
    }

    /// `None` until the first call finished.
    pub fn latency(&self) -> Option<Duration> {
        match self.latency_us.load(Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    pub fn breaker_state(&self, now: Instant) -> BreakerState {
        self.breaker.lock().state(now)
    }

    pub fn available(&self, now: Instant) -> bool {
        self.breaker.lock().available(now)
    }

    /// Lets a call through if the breaker allows it (see [`Admission`]).
    pub fn admit(self: &Arc<Self>) -> Option<Admission> {
        let started = Instant::now();
        self.breaker.lock().admit(started).then(|| Admission {
            stats: self.clone(),
            started,
            finished: false,
        })
    }

    fn record(&self, model: &str, elapsed: Duration, outcome: Outcome<'_>, now: Instant) {
        self.breaker.lock().record(matches!(outcome, Outcome::Success(_) | Outcome::RequestFault(_)), now);
        let sample = elapsed.as_micros().max(1) as u64;
        let _ = self.latency_us.fetch_update(Relaxed, Relaxed, |old| Some(ewma(old, sample)));
        let mut models = self.models.lock();
        let stats = models.entry(model.to_string()).or_default();
        stats.calls += 1;
        stats.latency_ms = if stats.calls == 1 {
            elapsed.as_secs_f64() * 1e3
        } else {
            stats.latency_ms * (1.0 - EWMA_ALPHA) + elapsed.as_secs_f64() * 1e3 * EWMA_ALPHA
        };
        match outcome {
            Outcome::Success(usage) => {
                stats.prompt_tokens += u64::from(usage.prompt_tokens);
                stats.completion_tokens += u64::from(usage.completion_tokens);
            }
            Outcome::ProviderFault(error) | Outcome::RequestFault(error) => {
                stats.failures += 1;
                stats.last_error = Some(error.to_string());
            }
        }
    }

    pub fn model_stats(&self, model: &str) -> ModelStats {
        self.models.lock().get(model).cloned().unwrap_or_default()
    }

    pub fn set_discovery_error(&self, error: Option<String>) {
        *self.discovery_error.lock() = error;
    }

    pub fn discovery_error(&self) -> Option<String> {
        self.discovery_error.lock().clone()
    }
}

fn ewma(old: u64, sample: u64) -> u64 {
    if old == 0 {
        return sample;
    }
    ((old as f64) * (1.0 - EWMA_ALPHA) + (sample as f64) * EWMA_ALPHA).max(1.0) as u64
}
