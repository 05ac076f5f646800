//! How the model router is set up: policy, retries, circuit breaker, budgets, and the
//! per-provider knobs. Plain data, built from `[models]` in config or in code.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ports::model::{ModelCapabilities, ModelPrice};

/// How the router picks among providers that can all serve a request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoutePolicy {
    /// Lowest moving average of recent call latency (untried providers first).
    #[default]
    Latency,
    /// Fewest calls in flight.
    LeastInFlight,
    /// Lowest price of the model at that provider.
    Cost,
    /// At random, in proportion to each provider's `weight`.
    Weighted,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerSettings {
    /// Consecutive provider failures that open the breaker.
    pub failures: u32,
    /// How long an open breaker refuses calls before letting one trial call through.
    #[serde(with = "humantime_serde")]
    pub open_for: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings { failures: 5, open_for: Duration::from_secs(30) }
    }
}

/// A namespace's allowance for one period. Zero means no limit on that resource.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NamespaceModels {
    /// Providers this namespace may use; empty means all.
    pub providers: Vec<String>,
    /// Tokens (prompt + completion) per period.
    pub tokens: u64,
    /// Cost units per period (see [`ModelPrice`]).
    pub cost: f64,
}

/// Overrides of what discovery reports for one model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelOverride {
    pub context_length: Option<u32>,
    pub capabilities: Option<ModelCapabilities>,
    pub price: Option<ModelPrice>,
}

/// The router's view of one provider beyond its adapter.
#[derive(Clone, Debug, PartialEq)]
pub struct ProviderSettings {
    pub name: String,
    /// Share of calls under the `weighted` policy.
    pub weight: u32,
    /// Calls in flight at once; more are refused as `Overloaded` (and tried elsewhere).
    pub max_in_flight: usize,
    /// Models served that discovery may not list, and corrections to what it reports.
    pub models: BTreeMap<String, ModelOverride>,
}

impl ProviderSettings {
    pub fn new(name: impl Into<String>) -> Self {
        ProviderSettings { name: name.into(), weight: 1, max_in_flight: 256, models: BTreeMap::new() }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct RouterSettings {
    pub policy: RoutePolicy,
    /// Longest one attempt at one provider may take.
    pub attempt_timeout: Duration,
    /// Further attempts after a provider fault, each at the next-best provider.
    pub retries: u32,
    /// Delay before the first retry, doubling after each.
    pub retry_backoff: Duration,
    pub breaker: BreakerSettings,
    /// How often every provider's model list is re-read.
    pub discovery_interval: Duration,
    /// Length of a budget period; periods are aligned to the Unix epoch (UTC).
    pub budget_period: Duration,
    /// Tokens reserved for the answer when a request sets no `max_tokens`.
    pub default_max_tokens: u32,
    pub namespaces: BTreeMap<String, NamespaceModels>,
}

impl Default for RouterSettings {
    fn default() -> Self {
        RouterSettings {
            policy: RoutePolicy::Latency,
            attempt_timeout: Duration::from_secs(120),
            retries: 2,
            retry_backoff: Duration::from_millis(100),
            breaker: BreakerSettings::default(),
            discovery_interval: Duration::from_secs(300),
            budget_period: Duration::from_secs(24 * 3600),
            default_max_tokens: 1024,
            namespaces: BTreeMap::new(),
        }
    }
}

/// One model call's usage, as recorded in the store: per task, run, agent and namespace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UsageRecord {
    pub id: uuid::Uuid,
    /// When the call ended, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    pub namespace: String,
    pub task: Option<crate::domain::TaskId>,
    pub run: Option<crate::domain::workflow::RunId>,
    pub agent: Option<String>,
    pub provider: String,
    pub model: String,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub cost: f64,
    pub latency_ms: u64,
    /// Streams only: time until the first piece of the answer.
    pub first_token_ms: Option<u64>,
}
