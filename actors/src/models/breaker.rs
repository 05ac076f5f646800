//! A circuit breaker per provider: after enough consecutive failures the provider is left
//! alone for a while, then one trial call decides whether it is back.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::domain::model::BreakerSettings;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    /// Refusing calls until the cool-down ends.
    Open,
    /// The cool-down ended: one trial call may go.
    HalfOpen,
}

#[derive(Clone, Debug)]
pub struct Breaker {
    threshold: u32,
    open_for: Duration,
    consecutive_failures: u32,
    opened_at: Option<Instant>,
    trial_in_flight: bool,
}

impl Breaker {
    pub fn new(settings: BreakerSettings) -> Self {
        Breaker {
            threshold: settings.failures.max(1),
            open_for: settings.open_for,
            consecutive_failures: 0,
            opened_at: None,
            trial_in_flight: false,
        }
    }

    pub fn state(&self, now: Instant) -> BreakerState {
        match self.opened_at {
            None => BreakerState::Closed,
            Some(at) if now.saturating_duration_since(at) < self.open_for => BreakerState::Open,
            Some(_) => BreakerState::HalfOpen,
        }
    }

    /// Whether a call could go now (without taking the half-open trial slot).
    pub fn available(&self, now: Instant) -> bool {
        match self.state(now) {
            BreakerState::Closed => true,
            BreakerState::Open => false,
            BreakerState::HalfOpen => !self.trial_in_flight,
        }
    }

    /// Lets a call through if the breaker allows it; when half-open, only one at a time.
    pub fn admit(&mut self, now: Instant) -> bool {
        let admitted = self.available(now);
        if admitted && self.state(now) == BreakerState::HalfOpen {
            self.trial_in_flight = true;
        }
        admitted
    }

    /// An admitted call was abandoned by its caller: it proved nothing, so the half-open
    /// trial slot is freed for another call.
    pub fn abandon(&mut self) {
        self.trial_in_flight = false;
    }

    /// Records how an admitted call ended: a success closes the breaker; a failure counts,
    /// and opens it at the threshold or when it was the half-open trial.
    pub fn record(&mut self, ok: bool, now: Instant) {
        self.trial_in_flight = false;
        if ok {
            self.consecutive_failures = 0;
            self.opened_at = None;
            return;
        }
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        if self.opened_at.is_some() || self.consecutive_failures >= self.threshold {
            self.opened_at = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(BreakerSettings { failures: 3, open_for: Duration::from_secs(10) })
    }

    #[test]
    fn opens_after_consecutive_failures_only() {
        let (mut b, t) = (breaker(), Instant::now());
        b.record(false, t);
        b.record(false, t);
        b.record(true, t);
        b.record(false, t);
        b.record(false, t);
        assert_eq!(b.state(t), BreakerState::Closed, "a success in between resets the count");
        b.record(false, t);
        assert_eq!(b.state(t), BreakerState::Open);
        assert!(!b.admit(t + Duration::from_secs(9)));
    }

    #[test]
    fn half_open_admits_one_trial_whose_outcome_decides() {
        let (mut b, t) = (breaker(), Instant::now());
        for _ in 0..3 {
            b.record(false, t);
        }
        let later = t + Duration::from_secs(10);
        assert_eq!(b.state(later), BreakerState::HalfOpen);
        assert!(b.admit(later), "the trial goes");
        assert!(!b.admit(later), "only one trial at a time");
        b.record(false, later);
        assert_eq!(b.state(later + Duration::from_secs(1)), BreakerState::Open, "a failed trial reopens");

        let again = later + Duration::from_secs(10);
        assert!(b.admit(again));
        b.record(true, again);
        assert_eq!(b.state(again), BreakerState::Closed, "a good trial closes");
        assert!(b.admit(again) && b.admit(again));
    }
}
