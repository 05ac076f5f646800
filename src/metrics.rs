//! Metric names of the `mark1` crate, defined in one place (the actors' are in
//! `mark1_actors::metrics`). Registered per node, like every other metric.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::http::Method;
use parking_lot::RwLock;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// HTTP requests by method, matched route template (`/v1/tasks/{id}`, never the raw
/// path, so a scan of random URLs cannot grow the series) and status.
#[derive(Debug)]
pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    duration: Family<RequestLabels, Histogram, fn() -> Histogram>,
    /// Route templates seen so far, so a request shares the label's text instead of
    /// allocating its own.
    routes: RwLock<HashSet<Arc<str>>>,
}

/// The route label of requests no route matched.
pub const UNMATCHED: &str = "unmatched";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: Route,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct Route(Arc<str>);

impl EncodeLabelValue for Route {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&&*self.0, encoder)
    }
}

fn latency_histogram() -> Histogram {
    // 100 µs … 6.5 s: from a cached whoami to a long `wait`.
    Histogram::new(exponential_buckets(0.000_1, 4.0, 9))
}

impl HttpMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = HttpMetrics {
            requests: Family::default(),
            duration: Family::new_with_constructor(latency_histogram),
            routes: RwLock::new(HashSet::new()),
        };
        registry.register(
            "mark1_http_requests",
            "HTTP requests by method, route and status",
            metrics.requests.clone(),
        );
        registry.register(
            "mark1_http_request_duration_seconds",
            "HTTP request latency by method, route and status",
            metrics.duration.clone(),
        );
        metrics
    }

    /// Counts one request; `route` is the matched template, `None` when nothing matched.
    pub fn observe(&self, method: &Method, route: Option<&str>, status: u16, elapsed: Duration) {
        let labels = RequestLabels {
            method: method_label(method),
            route: self.route(route.unwrap_or(UNMATCHED)),
            status,
        };
        self.requests.get_or_create(&labels).inc();
        self.duration.get_or_create(&labels).observe(elapsed.as_secs_f64());
    }

    fn route(&self, template: &str) -> Route {
        if let Some(known) = self.routes.read().get(template) {
            return Route(known.clone());
        }
        let mut routes = self.routes.write();
        if let Some(known) = routes.get(template) {
            return Route(known.clone());
        }
        let route: Arc<str> = Arc::from(template);
        routes.insert(route.clone());
        Route(route)
    }
}

/// A fixed set, so an odd method cannot add series either.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}
