//! Audit records from the edge: administrative and security actions, and every denied
//! request (DESIGN §9). The node's `audit` actor chains and commits them.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use mark1_actors::domain::{AuditEntry, AuditOutcome};
use serde_json::{json, Value};

use super::auth::{Caller, CallerSlot};
use super::state::EdgeState;

/// Records `entry`, an action the caller took, with the request's id. An audit write
/// that fails is logged: the action already happened, and the caller should hear its
/// outcome.
pub async fn record(edge: &EdgeState, caller: &Caller, mut entry: AuditEntry) {
    entry.request_id = caller.request_id.clone();
    if let Err(error) = edge.node.audit(entry).await {
        tracing::error!(%error, "audit record not written");
    }
}

/// Records an action the caller took on `target`.
pub async fn audit(
    edge: &EdgeState,
    caller: &Caller,
    action: &str,
    namespace: Option<&str>,
    target: Option<&str>,
    outcome: AuditOutcome,
    data: Value,
) {
    let mut entry = AuditEntry::new(caller.principal.subject.clone(), action, outcome);
    entry.namespace = namespace.map(str::to_string);
    entry.subject = target.map(str::to_string);
    entry.data = data;
    record(edge, caller, entry).await
}

/// Records every request refused with 401 or 403, after the fact and off the response
/// path, so a flood of bad credentials cannot slow the edge (the rate limit and the
/// audit actor's bounded queue cap what it costs).
pub async fn audit_denials(
    State(edge): State<Arc<EdgeState>>,
    mut request: Request<Body>,
    next: Next,
) -> Response {
    // Cheap clones (shared buffers): the texts are only made for a denial.
    let (method, uri) = (request.method().clone(), request.uri().clone());
    let request_id = request.headers().get("x-request-id").cloned();
    let slot = CallerSlot::default();
    request.extensions_mut().insert(slot.clone());
    let response = next.run(request).await;
    let status = response.status();
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        let what = format!("{method} {}", uri.path());
        let request_id = request_id.and_then(|v| v.to_str().ok().map(str::to_string));
        let actor = slot.0.get().cloned().unwrap_or_else(|| "anonymous".to_string());
        let entry = AuditEntry {
            actor,
            action: "http.denied".into(),
            namespace: None,
            subject: Some(what),
            outcome: AuditOutcome::Denied,
            request_id,
            data: json!({"status": status.as_u16()}),
        };
        tokio::spawn(async move {
            if let Err(error) = edge.node.audit(entry).await {
                tracing::warn!(%error, "audit record of a denied request not written");
            }
        });
    }
    response
}
