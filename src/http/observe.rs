//! Request metrics and the request's span.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, State};
use axum::http::Request;
use axum::middleware::Next;
use axum::response::Response;

use crate::metrics::HttpMetrics;

/// Counts every request by its matched route template and final status (this layer sits
/// outside the one that turns errors into problem documents, so it sees what the client
/// sees).
pub async fn count(State(metrics): State<Arc<HttpMetrics>>, request: Request<Body>, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let response = next.run(request).await;
    metrics.observe(
        &method,
        route.as_ref().map(MatchedPath::as_str),
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// The span every request's logs carry: method, path, request id, and the task id once
/// a handler knows it, or the run id (`Span::current().record("task_id", …)`).
pub fn span(request: &Request<Body>) -> tracing::Span {
    let id = super::request_id(request.headers()).unwrap_or("");
    tracing::info_span!("http", method = %request.method(), path = %request.uri().path(), request_id = %id,
        task_id = tracing::field::Empty, run_id = tracing::field::Empty)
}
