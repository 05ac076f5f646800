//! Per-namespace budgets of tokens and cost per period. A call reserves its worst case
//! before it goes, settles at its real usage when it ends, and releases the reservation
//! when it is cancelled or fails, so concurrent calls cannot overspend together.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::Serialize;

use crate::domain::model::NamespaceModels;
use crate::ports::model::{BudgetResource, ModelError};

/// What a call may spend at most.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Spend {
    pub tokens: u64,
    pub cost: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReservationId(u64);

/// One namespace's standing in the current period.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct BudgetStatus {
    pub namespace: String,
    /// Start of the period, in seconds since the Unix epoch.
    pub period_start: u64,
    pub tokens_used: u64,
    pub tokens_reserved: u64,
    /// Zero: no token limit.
    pub tokens_limit: u64,
    pub cost_used: f64,
    pub cost_reserved: f64,
    /// Zero: no cost limit.
    pub cost_limit: f64,
}

#[derive(Clone, Copy, Debug, Default)]
struct Ledger {
    period: u64,
    used: Spend,
    reserved: Spend,
}

struct Reservation {
    namespace: String,
    period: u64,
    spend: Spend,
}

pub struct Budgets {
    period: Duration,
    limits: BTreeMap<String, NamespaceModels>,
    ledgers: HashMap<String, Ledger>,
    reservations: HashMap<ReservationId, Reservation>,
    next_id: u64,
}

impl Budgets {
    pub fn new(period: Duration, limits: BTreeMap<String, NamespaceModels>) -> Self {
        Budgets {
            period: period.max(Duration::from_secs(1)),
            limits,
            ledgers: HashMap::new(),
            reservations: HashMap::new(),
            next_id: 0,
        }
    }

    /// The index of the period `unix_secs` falls in; periods are aligned to the epoch.
    pub fn period_of(&self, unix_secs: u64) -> u64 {
        unix_secs / self.period.as_secs().max(1)
    }

    /// Start of the current period, for reloading what was used in it after a restart.
    pub fn period_start(&self, unix_secs: u64) -> u64 {
        self.period_of(unix_secs) * self.period.as_secs().max(1)
    }

    /// Whether calls of `namespace` are limited at all (no reservation is kept otherwise).
    pub fn limited(&self, namespace: &str) -> bool {
        self.limits.get(namespace).is_some_and(|l| l.tokens > 0 || l.cost > 0.0)
    }

    /// Adds usage recorded before this process started (read back from the store).
    pub fn restore(&mut self, namespace: &str, used: Spend, unix_secs: u64) {
        let ledger = self.ledger(namespace, unix_secs);
        ledger.used.tokens += used.tokens;
        ledger.used.cost += used.cost;
    }

    /// Reserves `spend`, or refuses with the resource that would run out.
    pub fn reserve(
        &mut self,
        namespace: &str,
        spend: Spend,
        unix_secs: u64,
    ) -> Result<ReservationId, ModelError> {
        let limit = self.limits.get(namespace).cloned().unwrap_or_default();
        let ledger = *self.ledger(namespace, unix_secs);
        let committed = |used: f64, reserved: f64| used + reserved;
        if limit.tokens > 0 && ledger.used.tokens + ledger.reserved.tokens + spend.tokens > limit.tokens {
            return Err(ModelError::BudgetExhausted {
                namespace: namespace.into(),
                resource: BudgetResource::Tokens,
                used: committed(ledger.used.tokens as f64, ledger.reserved.tokens as f64),
                limit: limit.tokens as f64,
            });
        }
        if limit.cost > 0.0 && ledger.used.cost + ledger.reserved.cost + spend.cost > limit.cost {
            return Err(ModelError::BudgetExhausted {
                namespace: namespace.into(),
                resource: BudgetResource::Cost,
                used: committed(ledger.used.cost, ledger.reserved.cost),
                limit: limit.cost,
            });
        }
        let ledger = self.ledger(namespace, unix_secs);
        ledger.reserved.tokens += spend.tokens;
        ledger.reserved.cost += spend.cost;
        let period = ledger.period;
        self.next_id += 1;
        let id = ReservationId(self.next_id);
        self.reservations.insert(id, Reservation { namespace: namespace.into(), period, spend });
        Ok(id)
    }

    /// Replaces the reservation by what the call really used (which may exceed it: the
    /// call already happened; the next reservation pays for it).
    pub fn settle(&mut self, id: ReservationId, used: Spend, unix_secs: u64) {
        if let Some(namespace) = self.unreserve(id) {
            let ledger = self.ledger(&namespace, unix_secs);
            ledger.used.tokens += used.tokens;
            ledger.used.cost += used.cost;
        }
    }

    /// Drops the reservation of a call that was cancelled or failed before using anything.
    pub fn release(&mut self, id: ReservationId) {
        self.unreserve(id);
    }

    /// Usage of a call that needed no reservation (its namespace has no limits).
    pub fn record(&mut self, namespace: &str, used: Spend, unix_secs: u64) {
        if self.limited(namespace) {
            let ledger = self.ledger(namespace, unix_secs);
            ledger.used.tokens += used.tokens;
            ledger.used.cost += used.cost;
        }
    }

    pub fn status(&mut self, unix_secs: u64) -> Vec<BudgetStatus> {
        let namespaces: Vec<String> = self.limits.keys().cloned().collect();
        namespaces
            .into_iter()
            .map(|namespace| {
                let limit = self.limits[&namespace].clone();
                let period_start = self.period_start(unix_secs);
                let ledger = *self.ledger(&namespace, unix_secs);
                BudgetStatus {
                    namespace,
                    period_start,
                    tokens_used: ledger.used.tokens,
                    tokens_reserved: ledger.reserved.tokens,
                    tokens_limit: limit.tokens,
                    cost_used: ledger.used.cost,
                    cost_reserved: ledger.reserved.cost,
                    cost_limit: limit.cost,
                }
            })
            .collect()
    }

    fn unreserve(&mut self, id: ReservationId) -> Option<String> {
        let reservation = self.reservations.remove(&id)?;
        if let Some(ledger) = self.ledgers.get_mut(&reservation.namespace) {
            // A reservation from a period that has ended was already dropped with it.
            if ledger.period == reservation.period {
                ledger.reserved.tokens -= reservation.spend.tokens.min(ledger.reserved.tokens);
                ledger.reserved.cost = (ledger.reserved.cost - reservation.spend.cost).max(0.0);
            }
        }
        Some(reservation.namespace)
    }

    /// The namespace's ledger for the current period; a new period starts from zero.
    fn ledger(&mut self, namespace: &str, unix_secs: u64) -> &mut Ledger {
        let period = self.period_of(unix_secs);
        let ledger = self.ledgers.entry(namespace.to_string()).or_default();
        if ledger.period != period {
            *ledger = Ledger { period, ..Ledger::default() };
        }
        ledger
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budgets(tokens: u64, cost: f64) -> Budgets {
        let limits =
            BTreeMap::from([("team".to_string(), NamespaceModels { providers: vec![], tokens, cost })]);
        Budgets::new(Duration::from_secs(3600), limits)
    }

    const T: u64 = 1_800_000_000;

    #[test]
    fn reservations_count_against_the_limit_until_settled_or_released() {
        let mut b = budgets(1000, 0.0);
        let first = b.reserve("team", Spend { tokens: 600, cost: 0.0 }, T).unwrap();
        let refused = b.reserve("team", Spend { tokens: 600, cost: 0.0 }, T).unwrap_err();
        assert!(
            matches!(refused, ModelError::BudgetExhausted { resource: BudgetResource::Tokens, .. }),
            "{refused}"
        );
        assert!(
            refused.to_string().contains("raise models.namespaces.team.tokens"),
            "says what to change: {refused}"
        );
        b.release(first);
        let second = b.reserve("team", Spend { tokens: 600, cost: 0.0 }, T).unwrap();
        b.settle(second, Spend { tokens: 100, cost: 0.0 }, T);
        let status = &b.status(T)[0];
        assert_eq!((status.tokens_used, status.tokens_reserved), (100, 0));
        b.reserve("team", Spend { tokens: 900, cost: 0.0 }, T).unwrap();
    }

    #[test]
    fn cost_limits_and_unlimited_namespaces() {
        let mut b = budgets(0, 1.0);
        let r = b.reserve("team", Spend { tokens: 10_000_000, cost: 0.75 }, T).unwrap();
        b.settle(r, Spend { tokens: 10, cost: 0.75 }, T);
        let e = b.reserve("team", Spend { tokens: 1, cost: 0.5 }, T).unwrap_err();
        assert!(e.to_string().contains("cost budget"), "{e}");
        assert!(!b.limited("other"));
        b.reserve("other", Spend { tokens: u64::MAX / 2, cost: 1e9 }, T).unwrap();
    }

    #[test]
    fn a_new_period_starts_from_zero_and_restores_add_up() {
        let mut b = budgets(1000, 0.0);
        b.restore("team", Spend { tokens: 900, cost: 0.0 }, T);
        assert!(b.reserve("team", Spend { tokens: 200, cost: 0.0 }, T).is_err());
        let next_hour = T + 3600;
        let r = b.reserve("team", Spend { tokens: 200, cost: 0.0 }, next_hour).unwrap();
        b.release(r);
        assert_eq!(b.status(next_hour)[0].tokens_reserved, 0);
        assert_eq!(b.period_start(T + 17), b.period_start(T));
    }
}
