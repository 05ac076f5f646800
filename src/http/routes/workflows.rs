//! `/v1/workflows` (DESIGN §5, §13.7): store a definition (JSON or YAML), check one
//! without storing it, read stored versions.
//!
//! A definition's text is read by the same parser as `mark1 workflows validate`, so every
//! problem, of syntax or of meaning, comes back at its line and column.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use mark1_actors::domain::workflow::{self, ParsedDefinition, WorkflowRecord};
use mark1_actors::domain::{AuditOutcome, Permission};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use super::tasks::rfc3339;
use crate::http::audit::audit;
use crate::http::auth::Caller;
use crate::http::error::{ApiError, ErrorDetail, Problem};
use crate::http::query::Query;
use crate::http::state::EdgeState;

/// A stored version of a workflow.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WorkflowView {
    pub namespace: String,
    pub name: String,
    pub version: u32,
    /// The definition as stored (its `version` set), in JSON.
    #[schema(value_type = Object)]
    pub def: Value,
    /// RFC 3339.
    pub created_at: String,
}

impl From<WorkflowRecord> for WorkflowView {
    fn from(w: WorkflowRecord) -> Self {
        WorkflowView {
            namespace: w.namespace,
            name: w.name,
            version: w.version,
            def: serde_json::to_value(&w.def).unwrap_or(Value::Null),
            created_at: rfc3339(w.created_at),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct NamespaceQuery {
    /// Admins may name a namespace; everyone else acts in their own.
    pub namespace: Option<String>,
}

/// What `POST /v1/workflows/validate` found.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Validation {
    pub valid: bool,
    /// Every problem, in the order of the text; empty when valid.
    pub errors: Vec<ErrorDetail>,
}

/// The body as a definition: JSON or YAML text (JSON is read as YAML 1.2, so both give
/// positions), or every syntax and shape problem at its line and column.
fn definition(
    headers: &HeaderMap,
    bytes: &Bytes,
) -> Result<Result<ParsedDefinition, Vec<ErrorDetail>>, ApiError> {
    if let Some(kind) = headers.get(header::CONTENT_TYPE) {
        let kind = kind.to_str().unwrap_or_default();
        let essence = kind.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        let known =
            ["application/json", "application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"];
        if !known.contains(&essence.as_str()) {
            return Err(ApiError::BadRequest(format!(
                "content-type {kind:?}: send the definition as application/json or application/yaml"
            )));
        }
    }
    if bytes.is_empty() {
        return Err(ApiError::BadRequest("the request needs a workflow definition as its body".into()));
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|e| ApiError::BadRequest(format!("the definition is not UTF-8 text: {e}")))?;
    Ok(workflow::parse(text, None)
        .map_err(|diagnostics| diagnostics.into_iter().map(ErrorDetail::from).collect()))
}

/// Stores a definition as a new version: the one it names, else the next. The body is
/// the definition, as `application/json` or `application/yaml` (`text/yaml`). `201` with
/// the stored version (also when that version was stored before with the same
/// definition); `400` with every problem in `errors`, each with its line and column;
/// `409` when the version exists with another definition.
#[utoipa::path(post, path = "/v1/workflows", tag = "workflows", params(NamespaceQuery),
    request_body(description = "A workflow definition (DESIGN §13.7), as JSON or YAML",
        content((Object = "application/json"), (String = "application/yaml"), (String = "text/yaml"))),
    responses((status = 201, body = WorkflowView), (status = 400, body = Problem), (status = 409, body = Problem)))]
pub async fn create(
    State(edge): State<Arc<EdgeState>>,
    caller: Caller,
    Query(query): Query<NamespaceQuery>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<(StatusCode, Json<WorkflowView>), ApiError> {
    caller.require(Permission::WriteWorkflows, "create workflows")?;
    let namespace = caller.namespace(query.namespace.as_deref())?;
    let parsed =
        definition(&headers, &bytes)?.map_err(|errors| ApiError::invalid("invalid workflow", errors))?;
    let (name, asked) = (parsed.def.name.clone(), parsed.def.version);
    let outcome = edge.node.create_workflow(&namespace, parsed.def).await;
    let (result, version, data) = match &outcome {
        Ok(record) => (AuditOutcome::Success, Some(record.version), json!({"steps": record.def.steps.len()})),
        Err(e) => (AuditOutcome::Failure, asked, json!({"error": e.to_string()})),
    };
    let target = match version {
        Some(v) => format!("workflow:{name}@{v}"),
        None => format!("workflow:{name}"),
    };
    audit(&edge, &caller, "workflow.create", Some(&namespace), Some(&target), result, data).await;
    let record = outcome.map_err(|e| ApiError::from(e).located(&parsed.positions))?;
    Ok((StatusCode::CREATED, Json(record.into())))
}

/// Checks a definition as `POST /v1/workflows` would, against the agents and the stored
/// workflows of the namespace, without storing it. Always `200` for a definition that
/// was read: `{valid, errors}`, each error at its line and column.
#[utoipa::path(post, path = "/v1/workflows/validate", tag = "workflows", params(NamespaceQuery),
    request_body(description = "A workflow definition (DESIGN §13.7), as JSON or YAML",
        content((Object = "application/json"), (String = "application/yaml"), (String = "text/yaml"))),
    responses((status = 200, body = Validation), (status = 400, body = Problem)))]
pub async fn validate(
    State(edge): State<Arc<EdgeState>>,
    caller: Caller,
    Query(query): Query<NamespaceQuery>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Json<Validation>, ApiError> {
    caller.require(Permission::WriteWorkflows, "create workflows")?;
    let namespace = caller.namespace(query.namespace.as_deref())?;
    let errors = match definition(&headers, &bytes)? {
        Err(errors) => errors,
        Ok(parsed) => {
            let mut errors: Vec<ErrorDetail> = edge
                .node
                .validate_workflow(&namespace, &parsed.def)
                .await?
                .into_iter()
                .map(|p| ErrorDetail::from(p).located(&parsed.positions))
                .collect();
            errors.sort_by_key(|e| (e.line, e.column));
            errors
        }
    };
    Ok(Json(Validation { valid: errors.is_empty(), errors }))
}

/// Every stored version of every workflow the caller reaches: their namespace's (admins
/// spanning every namespace: all, or the one they name), by name then version.
#[utoipa::path(get, path = "/v1/workflows", tag = "workflows", params(NamespaceQuery),
    responses((status = 200, body = Vec<WorkflowView>), (status = 403, body = Problem)))]
pub async fn list(
    State(edge): State<Arc<EdgeState>>,
    caller: Caller,
    Query(query): Query<NamespaceQuery>,
) -> Result<Json<Vec<WorkflowView>>, ApiError> {
    caller.require(Permission::Read, "read workflows")?;
    let namespace = caller.listing_namespace(query.namespace.as_deref())?;
    let records = edge.node.workflows(namespace.as_deref()).await?;
    Ok(Json(records.into_iter().map(WorkflowView::from).collect()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct VersionQuery {
    /// That version; the latest when unset.
    pub version: Option<u32>,
    /// Admins may name a namespace; everyone else reads their own.
    pub namespace: Option<String>,
}

/// One stored version of a workflow: the one asked for, or the latest.
#[utoipa::path(get, path = "/v1/workflows/{name}", tag = "workflows",
    params(("name" = String, Path), VersionQuery),
    responses((status = 200, body = WorkflowView), (status = 404, body = Problem)))]
pub async fn get(
    State(edge): State<Arc<EdgeState>>,
    caller: Caller,
    Path(name): Path<String>,
    Query(query): Query<VersionQuery>,
) -> Result<Json<WorkflowView>, ApiError> {
    caller.require(Permission::Read, "read workflows")?;
    let namespace = caller.namespace(query.namespace.as_deref())?;
    Ok(Json(edge.node.workflow(&namespace, &name, query.version).await?.into()))
}

/// `GET /v1/workflows/validate`: the workflow named `validate`. The path is that of
/// `POST /v1/workflows/validate`, and a route's path wins over `{name}` whatever the
/// method, so the name is routed here by hand (and documented under `{name}`).
pub async fn get_named_validate(
    edge: State<Arc<EdgeState>>,
    caller: Caller,
    query: Query<VersionQuery>,
) -> Result<Json<WorkflowView>, ApiError> {
    get(edge, caller, Path("validate".to_string()), query).await
}
