//! Rate limits per credential: a token bucket (GCRA) keyed by the principal's subject.

use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use mark1_actors::domain::Principal;

use super::error::ApiError;

pub struct Limiter {
    limiter: Option<DefaultKeyedRateLimiter<String>>,
}

impl Limiter {
    /// `per_sec == 0` turns limits off.
    pub fn new(per_sec: u32, burst: u32) -> Self {
        let limiter = NonZeroU32::new(per_sec).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(rate);
            DefaultKeyedRateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Limiter { limiter }
    }

    pub fn check(&self, principal: &Principal) -> Result<(), ApiError> {
        let Some(limiter) = &self.limiter else { return Ok(()) };
        limiter.check_key(&principal.subject).map_err(|not_until| ApiError::TooManyRequests {
            message: format!("rate limit of {} exceeded", principal.subject),
            retry_after: not_until.wait_time_from(DefaultClock::default().now()),
        })
    }

    /// Forgets idle credentials so the map does not grow with every key ever seen.
    pub fn retain_recent(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use mark1_actors::domain::Role;

    use super::*;

    #[test]
    fn a_credential_beyond_its_burst_is_refused_with_a_wait_while_others_pass() {
        let limiter = Limiter::new(1, 2);
        let principal =
            |s: &str| Principal { subject: s.into(), role: Role::Viewer, namespace: Some("a".into()) };
        assert!(limiter.check(&principal("key:a")).is_ok());
        assert!(limiter.check(&principal("key:a")).is_ok());
        match limiter.check(&principal("key:a")) {
            Err(ApiError::TooManyRequests { retry_after, .. }) => assert!(retry_after.as_millis() > 0),
            other => panic!("expected 429, got {other:?}"),
        }
        assert!(limiter.check(&principal("key:b")).is_ok(), "limits are per credential");
        assert!(Limiter::new(0, 0).check(&principal("key:a")).is_ok(), "0 means unlimited");
    }
}
