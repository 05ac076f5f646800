//! Liveness, readiness, metrics, the caller's identity and the live actor tree.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use mark1_actors::domain::{Permission, Principal};
use mark1_actors::health::HealthReport;
use mark1_supervisors::ActorSnapshot;
use serde::Serialize;
use utoipa::ToSchema;

use crate::http::auth::Caller;
use crate::http::error::{ApiError, Problem};
use crate::http::state::EdgeState;

#[derive(Debug, Serialize, ToSchema)]
pub struct Liveness {
    /// `ok`; `degraded` when a pool failed, a model provider or the store does not
    /// answer; `starting`
    /// before the first health check.
    pub status: &'static str,
    pub node: String,
    pub store_ok: bool,
    pub store_error: Option<String>,
    /// Agents whose pools failed, with the reason.
    pub failed_agents: Vec<FailedAgent>,
    pub agents: usize,
    /// Model providers and whether they answered their last probe.
    pub providers: Vec<ProviderView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderView {
    pub name: String,
    pub ok: bool,
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FailedAgent {
    pub agent: String,
    pub reason: String,
}

/// Liveness: answers while the node runs, with what is degraded. No authentication.
#[utoipa::path(get, path = "/health", tag = "system", responses((status = 200, body = Liveness)))]
pub async fn health(State(edge): State<Arc<EdgeState>>) -> Json<Liveness> {
    let report: HealthReport = edge.node.health();
    let status = if report.checked_at.is_none() {
        "starting"
    } else if !report.store_ok || !report.failed_agents.is_empty() || report.providers.iter().any(|p| !p.ok) {
        "degraded"
    } else {
        "ok"
    };
    Json(Liveness {
        status,
        node: edge.node.name().to_string(),
        store_ok: report.store_ok,
        store_error: report.store_error,
        failed_agents: report
            .failed_agents
            .into_iter()
            .map(|(agent, reason)| FailedAgent { agent, reason })
            .collect(),
        agents: report.agents,
        providers: report
            .providers
            .into_iter()
            .map(|p| ProviderView { name: p.name, ok: p.ok, error: p.error })
            .collect(),
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    pub ready: bool,
    pub store_ok: bool,
    pub core_actors_running: bool,
}

/// Readiness: `200` when the store answers and the core actors run, else `503`. No authentication.
#[utoipa::path(get, path = "/ready", tag = "system",
    responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
pub async fn ready(State(edge): State<Arc<EdgeState>>) -> Response {
    let report = edge.node.health();
    let core = edge.node.is_running() && edge.node.core_actors_running();
    let ready = report.ready() && core;
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(Readiness { ready, store_ok: report.store_ok, core_actors_running: core })).into_response()
}

/// Prometheus text exposition of the node's metrics.
#[utoipa::path(get, path = "/metrics", tag = "system",
    responses((status = 200, content_type = "text/plain", body = String), (status = 401, body = Problem)))]
pub async fn metrics(State(edge): State<Arc<EdgeState>>, caller: Caller) -> Result<Response, ApiError> {
    caller.require(Permission::Read, "read metrics")?;
    let text = edge.node.metrics_text();
    Ok(([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text)
        .into_response())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WhoAmI {
    pub subject: String,
    pub role: String,
    /// Null for admins spanning every namespace.
    pub namespace: Option<String>,
}

/// The authenticated caller.
#[utoipa::path(get, path = "/v1/whoami", tag = "system", responses((status = 200, body = WhoAmI), (status = 401, body = Problem)))]
pub async fn whoami(caller: Caller) -> Json<WhoAmI> {
    let Principal { subject, role, namespace } = caller.principal;
    Json(WhoAmI { subject, role: role.to_string(), namespace })
}

/// The live actor tree, read from counters without messaging any actor.
#[utoipa::path(get, path = "/v1/actors", tag = "actors",
    responses((status = 200, body = Object, description = "The tree: name, actor_id, status, restarts by cause, mailbox_depth, messages, children")))]
pub async fn tree(
    State(edge): State<Arc<EdgeState>>,
    caller: Caller,
) -> Result<Json<ActorSnapshot>, ApiError> {
    caller.require(Permission::Read, "read the actor tree")?;
    Ok(Json(edge.node.tree()))
}

/// One actor of the tree and its subtree, by name (URL-encode the `/`s, e.g. `mark1%2Forchestrator`).
#[utoipa::path(get, path = "/v1/actors/{name}", tag = "actors", params(("name" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = Problem)))]
pub async fn actor(
    State(edge): State<Arc<EdgeState>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<ActorSnapshot>, ApiError> {
    caller.require(Permission::Read, "read the actor tree")?;
    let tree = edge.node.tree();
    tree.find(&name).cloned().map(Json).ok_or_else(|| ApiError::NotFound(format!("no actor named {name:?}")))
}
