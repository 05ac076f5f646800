//! Model calls: latency, time to first token, tokens, errors and outcomes, counted as
//! calls end; providers' breakers and calls in flight and namespaces' budgets, read at
//! scrape time.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::models::breaker::BreakerState;
use crate::models::budget::BudgetBook;
use crate::models::stats::ProviderStats;
use crate::models::ProviderEntry;
use crate::ports::model::{BudgetResource, ModelError, ModelErrorKind, Usage};

/// A model at a provider: the provider's name and the model's id there. Both come from
/// configuration and discovery, never from a caller, so the series stay bounded.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    provider: String,
    model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    provider: String,
    model: String,
    /// `in` (the prompt) or `out` (the completion).
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    provider: String,
    model: String,
    /// [`ModelErrorKind::as_str`].
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    /// `success`, or the [`ModelErrorKind`] the caller got.
    outcome: &'static str,
}

fn latency_histogram() -> Histogram {
    // 5 ms … 82 s: from a cached answer of a small local model to a long completion.
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

type HistogramFamily = Family<ModelLabels, Histogram, fn() -> Histogram>;

/// The model-call families of one node. The router resolves each (provider, model)'s
/// series once ([`ModelMetrics::series`]) and hands them to the calls, so a call never
/// takes a family's lock: its counters are atomics, and a histogram observation takes
/// only that histogram's own short lock (prometheus-client's histograms have no atomic
/// form), which only calls to the same model share.
#[derive(Clone, Debug)]
pub struct ModelMetrics {
    duration: HistogramFamily,
    first_token: HistogramFamily,
    tokens: Family<TokenLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    calls: Family<OutcomeLabels, Counter>,
    /// `success`, then one per [`ModelErrorKind`] in its order.
    outcomes: Arc<[Counter; 1 + ModelErrorKind::ALL.len()]>,
}

impl Default for ModelMetrics {
    fn default() -> Self {
        let calls = Family::<OutcomeLabels, Counter>::default();
        let outcome = |outcome| calls.get_or_create(&OutcomeLabels { outcome }).clone();
        let mut outcomes = [(); 1 + ModelErrorKind::ALL.len()].map(|()| Counter::default());
        outcomes[0] = outcome("success");
        for kind in ModelErrorKind::ALL {
            outcomes[1 + kind as usize] = outcome(kind.as_str());
        }
        ModelMetrics {
            duration: Family::new_with_constructor(latency_histogram),
            first_token: Family::new_with_constructor(latency_histogram),
            tokens: Family::default(),
            errors: Family::default(),
            calls,
            outcomes: Arc::new(outcomes),
        }
    }
}

impl ModelMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "mark1_model_call_duration_seconds",
            "Model calls that answered, from the attempt at the provider to the whole answer",
            self.duration.clone(),
        );
        registry.register(
            "mark1_model_time_to_first_token_seconds",
            "Streamed model calls, from the attempt at the provider to the first token",
            self.first_token.clone(),
        );
        registry.register(
            "mark1_model_tokens",
            "Tokens of answered model calls: in (prompt) and out (completion)",
            self.tokens.clone(),
        );
        registry.register(
            "mark1_model_errors",
            "Failed attempts at a provider, by model and error kind",
            self.errors.clone(),
        );
        registry.register(
            "mark1_model_calls",
            "Model calls by how they ended for the caller (success or the error kind)",
            self.calls.clone(),
        );
    }

    /// The series of `model` at `provider`. Takes the families' locks: the router keeps
    /// the result for every later call to the same model.
    pub fn series(&self, provider: &str, model: &str) -> ModelSeries {
        let labels = ModelLabels { provider: provider.to_string(), model: model.to_string() };
        let tokens = |direction| {
            let labels = TokenLabels { provider: provider.to_string(), model: model.to_string(), direction };
            self.tokens.get_or_create(&labels).clone()
        };
        ModelSeries {
            duration: self.duration.get_or_create(&labels).clone(),
            first_token: self.first_token.get_or_create(&labels).clone(),
            tokens_in: tokens("in"),
            tokens_out: tokens("out"),
            errors: Default::default(),
            error_family: self.errors.clone(),
            labels,
        }
    }

    /// A call ended with an answer for its caller.
    pub fn call_succeeded(&self) {
        self.outcomes[0].inc();
    }

    /// A call ended with `error` for its caller (refused, failed, or given up).
    pub fn call_failed(&self, error: &ModelError) {
        self.outcomes[1 + error.kind() as usize].inc();
    }
}

/// One model at one provider: what its calls bump.
#[derive(Debug)]
pub struct ModelSeries {
    duration: Histogram,
    first_token: Histogram,
    tokens_in: Counter,
    tokens_out: Counter,
    /// Resolved at the first error of each kind, so models show only the kinds they had
    /// (most never see most kinds); later errors of that kind only bump the counter.
    errors: [OnceLock<Counter>; ModelErrorKind::ALL.len()],
    error_family: Family<ErrorLabels, Counter>,
    labels: ModelLabels,
}

impl ModelSeries {
    /// An attempt answered after `elapsed` (its first token after `first_token`, if it
    /// streamed) and used `usage`.
    pub fn answered(&self, elapsed: Duration, first_token: Option<Duration>, usage: Usage) {
        self.duration.observe(elapsed.as_secs_f64());
        if let Some(first_token) = first_token {
            self.first_token.observe(first_token.as_secs_f64());
        }
        self.tokens_in.inc_by(u64::from(usage.prompt_tokens));
        self.tokens_out.inc_by(u64::from(usage.completion_tokens));
    }

    /// An attempt at this provider failed with `error`.
    pub fn failed(&self, error: &ModelError) {
        let kind = error.kind();
        let counter = self.errors[kind as usize].get_or_init(|| {
            let labels = ErrorLabels {
                provider: self.labels.provider.clone(),
                model: self.labels.model.clone(),
                kind: kind.as_str(),
            };
            self.error_family.get_or_create(&labels).clone()
        });
        counter.inc();
    }
}

/// Each provider's breaker and calls in flight, and what each namespace's budget has
/// left, read at scrape time from the stats the calls keep and the router's
/// [`BudgetBook`]: nothing is sent to the router, and the hot path pays nothing.
pub struct ModelCollector {
    providers: Vec<(String, Arc<ProviderStats>)>,
    budgets: BudgetBook,
}

impl ModelCollector {
    pub fn new(providers: &[ProviderEntry], budgets: BudgetBook) -> Self {
        let providers = providers.iter().map(|p| (p.settings.name.clone(), p.stats.clone())).collect();
        ModelCollector { providers, budgets }
    }
}

impl std::fmt::Debug for ModelCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.providers.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("ModelCollector").field("providers", &names).finish()
    }
}

/// The breaker's state as a number a graph can plot and an alert can compare.
fn breaker_value(state: BreakerState) -> i64 {
    match state {
        BreakerState::Closed => 0,
        BreakerState::Open => 1,
        BreakerState::HalfOpen => 2,
    }
}

impl Collector for ModelCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let now = Instant::now();
        let mut family = encoder.encode_descriptor(
            "mark1_model_breaker_state",
            "A provider's circuit breaker: 0 closed, 1 open, 2 half-open (one trial call may go)",
            None,
            MetricType::Gauge,
        )?;
        for (provider, stats) in &self.providers {
            let state = ConstGauge::new(breaker_value(stats.breaker_state(now)));
            state.encode(family.encode_family(&[("provider", provider.as_str())])?)?;
        }
        let mut family = encoder.encode_descriptor(
            "mark1_model_in_flight",
            "Calls in flight at a provider (a streamed answer until its stream ends)",
            None,
            MetricType::Gauge,
        )?;
        for (provider, stats) in &self.providers {
            let in_flight = ConstGauge::new(i64::try_from(stats.in_flight()).unwrap_or(i64::MAX));
            in_flight.encode(family.encode_family(&[("provider", provider.as_str())])?)?;
        }
        let mut family = encoder.encode_descriptor(
            "mark1_model_budget_remaining",
            "What calls of a namespace may still reserve this period, of each limited resource",
            None,
            MetricType::Gauge,
        )?;
        let unix_secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        for status in self.budgets.status(unix_secs) {
            for resource in [BudgetResource::Tokens, BudgetResource::Cost] {
                let Some(remaining) = status.remaining(resource) else { continue };
                let labels = [("namespace", status.namespace.as_str()), ("resource", resource.key())];
                ConstGauge::new(remaining).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(registry: &Registry) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
        text
    }

    #[test]
    fn series_count_answers_tokens_and_errors_by_kind_and_calls_by_outcome() {
        let metrics = ModelMetrics::default();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let series = metrics.series("local", "llama3.1");
        let usage = Usage { prompt_tokens: 7, completion_tokens: 3 };
        series.answered(Duration::from_millis(40), Some(Duration::from_millis(10)), usage);
        series.answered(Duration::from_millis(20), None, usage);
        let unavailable = ModelError::Unavailable { provider: "local".into(), reason: "down".into() };
        series.failed(&unavailable);
        series.failed(&unavailable);
        metrics.call_succeeded();
        metrics.call_failed(&ModelError::BudgetExhausted {
            namespace: "team".into(),
            resource: BudgetResource::Tokens,
            used: 1.0,
            limit: 1.0,
        });
        let text = encoded(&registry);
        for line in [
            r#"mark1_model_tokens_total{provider="local",model="llama3.1",direction="in"} 14"#,
            r#"mark1_model_tokens_total{provider="local",model="llama3.1",direction="out"} 6"#,
            r#"mark1_model_errors_total{provider="local",model="llama3.1",kind="unavailable"} 2"#,
            r#"mark1_model_call_duration_seconds_count{provider="local",model="llama3.1"} 2"#,
            r#"mark1_model_time_to_first_token_seconds_count{provider="local",model="llama3.1"} 1"#,
            r#"mark1_model_calls_total{outcome="success"} 1"#,
            r#"mark1_model_calls_total{outcome="budget_exhausted"} 1"#,
            r#"mark1_model_calls_total{outcome="timeout"} 0"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        assert!(!text.contains(r#"kind="timeout""#), "no series for an error kind that never happened");
        let again = metrics.series("local", "llama3.1");
        again.failed(&unavailable);
        assert!(encoded(&registry).contains(r#"kind="unavailable"} 3"#), "the same series, resolved again");
    }
}
