//! `/v1/keys` and `/v1/audit`: administration, admins only.

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use mark1_actors::domain::{ApiKeyRecord, Permission, Role};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::tasks::rfc3339;
use crate::auth::keys;
use crate::http::audit;
use crate::http::auth::Caller;
use crate::http::body;
use crate::http::error::{ApiError, Problem};
use crate::http::query::Query;
use crate::http::state::EdgeState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// admin, operator, developer, viewer or agent.
    pub role: String,
    /// Required for every role but admin; an admin key without one spans every namespace.
    pub namespace: Option<String>,
    /// A label shown in listings.
    pub name: Option<String>,
    /// Lifetime, e.g. `90days`; no expiry when unset.
    pub expires_in: Option<String>,
}

/// A key as listings show it: never the secret, never its hash.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct KeyView {
    pub id: String,
    pub name: String,
    pub role: String,
    pub namespace: Option<String>,
    pub created_by: Option<String>,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

impl From<ApiKeyRecord> for KeyView {
    fn from(k: ApiKeyRecord) -> Self {
        KeyView {
            id: k.id,
            name: k.name,
            role: k.role.to_string(),
            namespace: k.namespace,
            created_by: k.created_by,
            created_at: rfc3339(k.created_at),
            expires_at: k.expires_at.map(rfc3339),
            revoked_at: k.revoked_at.map(rfc3339),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedKey {
    /// The key itself, shown this once.
    pub key: String,
    pub id: String,
    pub role: String,
    pub namespace: Option<String>,
}

/// Creates an API key; the answer is the only time the key is shown.
#[utoipa::path(post, path = "/v1/keys", tag = "admin", request_body = CreateKey,
    responses((status = 201, body = CreatedKey), (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn create(
    State(edge): State<Arc<EdgeState>>,
    caller: Caller,
    bytes: Bytes,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    caller.require(Permission::Administer, "manage keys")?;
    let request: CreateKey = body::parse(&bytes)?;
    let role: Role = request
        .role
        .parse()
        .map_err(|e: mark1_actors::domain::access::UnknownRole| ApiError::BadRequest(e.to_string()))?;
    let now = SystemTime::now();
    let expires_at =
        request.expires_in.as_deref().map(|t| body::duration("expires_in", t)).transpose()?.map(|d| now + d);
    let spec = keys::KeySpec {
        role,
        namespace: request.namespace,
        name: request.name.unwrap_or_default(),
        created_by: Some(caller.principal.subject.clone()),
        expires_at,
    };
    let (key, record) = keys::generate(spec, now).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    edge.node.store().put_api_key(&record).await?;
    audit::record(&edge, &caller, keys::created_entry(caller.principal.subject.clone(), &record)).await;
    let created =
        CreatedKey { key, id: record.id, role: record.role.to_string(), namespace: record.namespace };
    Ok((StatusCode::CREATED, Json(created)))
}

#[utoipa::path(get, path = "/v1/keys", tag = "admin", responses((status = 200, body = Vec<KeyView>), (status = 403, body = Problem)))]
pub async fn list(
    State(edge): State<Arc<EdgeState>>,
    caller: Caller,
) -> Result<Json<Vec<KeyView>>, ApiError> {
    caller.require(Permission::Administer, "manage keys")?;
    Ok(Json(edge.node.store().api_keys().await?.into_iter().map(KeyView::from).collect()))
}

/// Revokes a key at once: the next request with it is refused.
#[utoipa::path(delete, path = "/v1/keys/{id}", tag = "admin", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem), (status = 403, body = Problem)))]
pub async fn revoke(
    State(edge): State<Arc<EdgeState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Permission::Administer, "manage keys")?;
    let store = edge.node.store();
    let Some(key) = store.api_key(&id).await? else {
        return Err(ApiError::NotFound(format!("no key {id}")));
    };
    store.revoke_api_key(&id, SystemTime::now()).await?;
    edge.auth.forget_key(&id);
    audit::record(&edge, &caller, keys::revoked_entry(caller.principal.subject.clone(), &key)).await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// The chain: a node's name, or `<node>:cli` for the local CLI's records. Default: this node.
    pub chain: Option<String>,
    /// Records after this sequence number.
    pub after: Option<u64>,
    /// At most 1000; default 100.
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditView {
    pub chain: String,
    pub seq: u64,
    pub time: String,
    pub actor: String,
    pub action: String,
    pub namespace: Option<String>,
    pub target: Option<String>,
    pub outcome: String,
    pub request_id: Option<String>,
    pub data: Value,
}

/// Audit records of one chain, oldest first.
#[utoipa::path(get, path = "/v1/audit", tag = "admin", params(AuditQuery),
    responses((status = 200, body = Vec<AuditView>), (status = 403, body = Problem)))]
pub async fn audit_log(
    State(edge): State<Arc<EdgeState>>,
    caller: Caller,
    Query(query): Query<AuditQuery>,
) -> Result<Json<Vec<AuditView>>, ApiError> {
    caller.require(Permission::Administer, "read the audit log")?;
    let chain = query.chain.unwrap_or_else(|| edge.node.name().to_string());
    let limit = super::page_limit(query.limit);
    let records = edge.node.store().audit_records(Some(&chain), query.after.unwrap_or(0), limit).await?;
    Ok(Json(
        records
            .into_iter()
            .map(|r| AuditView {
                chain: r.node,
                seq: r.seq,
                time: rfc3339(r.recorded_at),
                actor: r.actor,
                action: r.action,
                namespace: r.namespace,
                target: r.subject,
                outcome: r.outcome.to_string(),
                request_id: r.request_id,
                data: r.data,
            })
            .collect(),
    ))
}
