//! Per-namespace budgets of tokens and cost per period. A call reserves its worst case
//! before it goes, settles at its real usage when it ends, and releases the reservation
//! when it is cancelled or fails, so concurrent calls cannot overspend together.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;

use crate::domain::model::{NamespaceModels, RouterSettings};
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

impl BudgetStatus {
    /// What calls may still reserve of `resource` this period; `None` when it has no limit.
    pub fn remaining(&self, resource: BudgetResource) -> Option<f64> {
        let (used, limit) = match resource {
            BudgetResource::Tokens => {
                ((self.tokens_used + self.tokens_reserved) as f64, self.tokens_limit as f64)
            }
            BudgetResource::Cost => (self.cost_used + self.cost_reserved, self.cost_limit),
        };
        (limit > 0.0).then(|| (limit - used).max(0.0))
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Ledger {
    period: u64,
    used: Spend,
    reserved: Spend,
}

/// The limits and each namespace's ledger, shared so `/metrics` reads the budgets at
/// scrape time without messaging the router. The router is the only writer; a mutex
/// that only a scrape ever contends is simpler than a snapshot kept in step with every
/// change, and a reader that computes from the current time sees a period that ended
/// without a call since as renewed, which a snapshot taken at the last call would not.
#[derive(Clone)]
pub struct BudgetBook {
    period: Duration,
    limits: Arc<BTreeMap<String, NamespaceModels>>,
    ledgers: Arc<Mutex<HashMap<String, Ledger>>>,
}

impl BudgetBook {
    pub fn new(period: Duration, limits: BTreeMap<String, NamespaceModels>) -> Self {
        BudgetBook {
            period: period.max(Duration::from_secs(1)),
            limits: Arc::new(limits),
            ledgers: Arc::default(),
        }
    }

    /// The period and namespace limits of the router's settings.
    pub fn from_settings(settings: &RouterSettings) -> Self {
        Self::new(settings.budget_period, settings.namespaces.clone())
    }

    /// The index of the period `unix_secs` falls in; periods are aligned to the epoch.
    fn period_of(&self, unix_secs: u64) -> u64 {
        unix_secs / self.period.as_secs().max(1)
    }

    /// Start of the current period, for reloading what was used in it after a restart.
    pub fn period_start(&self, unix_secs: u64) -> u64 {
        self.period_of(unix_secs) * self.period.as_secs().max(1)
    }

    /// Each configured namespace's standing at `unix_secs`; a ledger of an earlier period
    /// reads as empty.
    pub fn status(&self, unix_secs: u64) -> Vec<BudgetStatus> {
        let (period, period_start) = (self.period_of(unix_secs), self.period_start(unix_secs));
        let ledgers = self.ledgers.lock();
        self.limits
            .iter()
            .map(|(namespace, limit)| {
                let ledger =
                    ledgers.get(namespace).filter(|l| l.period == period).copied().unwrap_or_default();
                BudgetStatus {
                    namespace: namespace.clone(),
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

    /// Runs `f` on the namespace's ledger for the current period; a new period starts
    /// from zero.
    fn with_ledger<R>(&self, namespace: &str, unix_secs: u64, f: impl FnOnce(&mut Ledger) -> R) -> R {
        let period = self.period_of(unix_secs);
        let mut ledgers = self.ledgers.lock();
        let ledger = ledgers.entry(namespace.to_string()).or_default();
        if ledger.period != period {
            *ledger = Ledger { period, ..Ledger::default() };
        }
        f(ledger)
    }
}

struct Reservation {
    namespace: String,
    period: u64,
    spend: Spend,
}

/// The router's side of a [`BudgetBook`]: it alone reserves, settles and releases.
pub struct Budgets {
    book: BudgetBook,
    reservations: HashMap<ReservationId, Reservation>,
    next_id: u64,
}

impl Budgets {
    /// Keeps the ledgers of `book`, emptied: a router (re)starting begins from what the
    /// store holds, and reservations of an earlier router died with it.
    pub fn new(book: BudgetBook) -> Self {
        book.ledgers.lock().clear();
        Budgets { book, reservations: HashMap::new(), next_id: 0 }
    }

    /// Start of the current period (see [`BudgetBook::period_start`]).
    pub fn period_start(&self, unix_secs: u64) -> u64 {
        self.book.period_start(unix_secs)
    }

    /// Whether calls of `namespace` are limited at all (no reservation is kept otherwise).
    pub fn limited(&self, namespace: &str) -> bool {
        self.book.limits.get(namespace).is_some_and(|l| l.tokens > 0 || l.cost > 0.0)
    }

    /// Adds usage recorded before this process started (read back from the store).
    pub fn restore(&mut self, namespace: &str, used: Spend, unix_secs: u64) {
        self.book.with_ledger(namespace, unix_secs, |ledger| add(&mut ledger.used, used));
    }

    /// Reserves `spend`, or refuses with the resource that would run out.
    pub fn reserve(
        &mut self,
        namespace: &str,
        spend: Spend,
        unix_secs: u64,
    ) -> Result<ReservationId, ModelError> {
        let limit = self.book.limits.get(namespace).cloned().unwrap_or_default();
        let period = self.book.with_ledger(namespace, unix_secs, |ledger| {
            let exhausted = |resource, used: f64, limit: f64| ModelError::BudgetExhausted {
                namespace: namespace.into(),
                resource,
                used,
                limit,
            };
            let tokens = ledger.used.tokens + ledger.reserved.tokens;
            if limit.tokens > 0 && tokens + spend.tokens > limit.tokens {
                return Err(exhausted(BudgetResource::Tokens, tokens as f64, limit.tokens as f64));
            }
            let cost = ledger.used.cost + ledger.reserved.cost;
            if limit.cost > 0.0 && cost + spend.cost > limit.cost {
                return Err(exhausted(BudgetResource::Cost, cost, limit.cost));
            }
            add(&mut ledger.reserved, spend);
            Ok(ledger.period)
        })?;
        self.next_id += 1;
        let id = ReservationId(self.next_id);
        self.reservations.insert(id, Reservation { namespace: namespace.into(), period, spend });
        Ok(id)
    }

    /// Replaces the reservation by what the call really used (which may exceed it: the
    /// call already happened; the next reservation pays for it).
    pub fn settle(&mut self, id: ReservationId, used: Spend, unix_secs: u64) {
        if let Some(namespace) = self.unreserve(id) {
            self.book.with_ledger(&namespace, unix_secs, |ledger| add(&mut ledger.used, used));
        }
    }

    /// Drops the reservation of a call that was cancelled or failed before using anything.
    pub fn release(&mut self, id: ReservationId) {
        self.unreserve(id);
    }

    /// Usage of a call that needed no reservation (its namespace has no limits).
    pub fn record(&mut self, namespace: &str, used: Spend, unix_secs: u64) {
        if self.limited(namespace) {
            self.book.with_ledger(namespace, unix_secs, |ledger| add(&mut ledger.used, used));
        }
    }

    pub fn status(&self, unix_secs: u64) -> Vec<BudgetStatus> {
        self.book.status(unix_secs)
    }

    fn unreserve(&mut self, id: ReservationId) -> Option<String> {
        let reservation = self.reservations.remove(&id)?;
        if let Some(ledger) = self.book.ledgers.lock().get_mut(&reservation.namespace) {
            // A reservation from a period that has ended was already dropped with it.
            if ledger.period == reservation.period {
                ledger.reserved.tokens -= reservation.spend.tokens.min(ledger.reserved.tokens);
                ledger.reserved.cost = (ledger.reserved.cost - reservation.spend.cost).max(0.0);
            }
        }
        Some(reservation.namespace)
    }
}

fn add(to: &mut Spend, spend: Spend) {
    to.tokens += spend.tokens;
    to.cost += spend.cost;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book(tokens: u64, cost: f64) -> BudgetBook {
        let limits =
            BTreeMap::from([("team".to_string(), NamespaceModels { providers: vec![], tokens, cost })]);
        BudgetBook::new(Duration::from_secs(3600), limits)
    }

    fn budgets(tokens: u64, cost: f64) -> Budgets {
        Budgets::new(book(tokens, cost))
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

    #[test]
    fn the_shared_book_reads_what_is_left_and_renews_with_the_period() {
        let book = book(1000, 2.0);
        let mut b = Budgets::new(book.clone());
        let r = b.reserve("team", Spend { tokens: 300, cost: 0.5 }, T).unwrap();
        let status = &book.status(T)[0];
        assert_eq!(status.remaining(BudgetResource::Tokens), Some(700.0), "reservations count: {status:?}");
        b.settle(r, Spend { tokens: 100, cost: 0.25 }, T);
        let status = &book.status(T)[0];
        assert_eq!(status.remaining(BudgetResource::Tokens), Some(900.0));
        assert_eq!(status.remaining(BudgetResource::Cost), Some(1.75));
        let next_hour = &book.status(T + 3600)[0];
        assert_eq!(next_hour.remaining(BudgetResource::Tokens), Some(1000.0), "a new period, no call yet");
        assert_eq!(self::book(0, 0.0).status(T)[0].remaining(BudgetResource::Tokens), None, "no limit");

        let restarted = Budgets::new(book.clone());
        assert_eq!(restarted.status(T)[0].tokens_used, 0, "a new router starts from the store, not here");
    }
}
