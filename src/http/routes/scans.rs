//! `/v1/scans` (DESIGN §7, §9): start a scan of a folder on the node as a job, read jobs
//! and their reports.
//!
//! Starting a scan is for admins only: it reads every file under a folder of the node's
//! disk (those under `scan.allowed_dirs`), like registering a `process` agent runs a
//! command there. Reading is namespaced as tasks are: a caller sees its namespace's
//! scans (admins every namespace); viewers see records and counts but not reports, and
//! role `agent`, which reads only its own work, none.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use mark1_actors::domain::scan::{ScanId, ScanRecord, ScanState, ScanSummary};
use mark1_actors::domain::{AuditOutcome, Permission, Role};
use mark1_actors::ports::ScanQuery;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::tasks::rfc3339;
use crate::http::audit::audit;
use crate::http::auth::Caller;
use crate::http::body;
use crate::http::error::{ApiError, Problem};
use crate::http::query::Query;
use crate::http::state::EdgeState;

/// A scan to start.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartScanBody {
    /// An absolute path to a folder under one of the node's `scan.allowed_dirs`.
    pub path: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StartScanQuery {
    /// Admins may name a namespace; default `default`.
    pub namespace: Option<String>,
}

/// The counts of a finished scan's report.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SummaryView {
    pub files: u64,
    pub llm_calls: u64,
    pub agents: u64,
    pub tools: u64,
    pub mcp: u64,
    /// Files that could not be read or parsed.
    pub problems: u64,
}

impl From<ScanSummary> for SummaryView {
    fn from(s: ScanSummary) -> Self {
        SummaryView {
            files: s.files,
            llm_calls: s.llm_calls,
            agents: s.agents,
            tools: s.tools,
            mcp: s.mcp,
            problems: s.problems,
        }
    }
}

/// A scan job: where it is, and once it succeeded, its report's counts.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ScanView {
    #[schema(value_type = String, format = Uuid)]
    pub id: ScanId,
    pub namespace: String,
    /// The scanned folder, absolute and canonical.
    pub path: String,
    /// `running`, `succeeded` or `failed`.
    #[schema(value_type = String, example = "running")]
    pub status: ScanState,
    pub submitter: Option<String>,
    pub error: Option<String>,
    pub summary: Option<SummaryView>,
    /// RFC 3339.
    pub created_at: String,
    pub finished_at: Option<String>,
}

impl From<ScanRecord> for ScanView {
    fn from(r: ScanRecord) -> Self {
        ScanView {
            id: r.id,
            namespace: r.namespace,
            path: r.path.display().to_string(),
            status: r.state,
            submitter: r.submitter,
            error: r.error,
            summary: r.summary.map(Into::into),
            created_at: rfc3339(r.created_at),
            finished_at: r.finished_at.map(rfc3339),
        }
    }
}

fn require_read(caller: &Caller) -> Result<(), ApiError> {
    caller.require(Permission::Read, "read scans")?;
    if caller.principal.role == Role::Agent {
        return Err(ApiError::forbidden("read scans (agents read their own tasks only)"));
    }
    Ok(())
}

/// A scan the caller may see, else not found (existence is not leaked across namespaces).
async fn visible_scan(edge: &EdgeState, caller: &Caller, id: &str) -> Result<ScanRecord, ApiError> {
    let not_found = || ApiError::NotFound(format!("no scan {id}"));
    let id: ScanId = id.parse().map_err(|_| not_found())?;
    match edge.node.scan(id).await? {
        Some(scan) if caller.reaches(&scan.namespace) => Ok(scan),
        _ => Err(not_found()),
    }
}

/// Starts a scan of a folder on the node as a job: `202` with the job, `running`. Its
/// progress comes as `scan.started`, `scan.progress`, then `scan.finished` or
/// `scan.failed` events (subject: the scan id). Admins only; the folder must lie under
/// `scan.allowed_dirs` (`403` otherwise, and while that list is empty).
#[utoipa::path(post, path = "/v1/scans", tag = "scans", request_body = StartScanBody, params(StartScanQuery),
    responses((status = 202, body = ScanView), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 429, body = Problem)))]
pub async fn start(
    State(edge): State<Arc<EdgeState>>,
    caller: Caller,
    Query(query): Query<StartScanQuery>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    caller.require(Permission::StartScans, "start scans (they read the node's files)")?;
    let request: StartScanBody = body::parse(&bytes)?;
    let namespace = caller.namespace(query.namespace.as_deref())?;
    let outcome = edge
        .node
        .start_scan(&namespace, std::path::Path::new(&request.path), Some(caller.principal.subject.clone()))
        .await;
    let result = if outcome.is_ok() { AuditOutcome::Success } else { AuditOutcome::Failure };
    let subject = outcome.as_ref().ok().map(|r| format!("scan:{}", r.id));
    audit(
        &edge,
        &caller,
        "scan.start",
        Some(&namespace),
        subject.as_deref(),
        result,
        json!({"path": request.path}),
    )
    .await;
    let record = outcome?;
    Ok((StatusCode::ACCEPTED, Json(ScanView::from(record))).into_response())
}

/// One scan job: its status and, once it succeeded, its report's counts.
#[utoipa::path(get, path = "/v1/scans/{id}", tag = "scans", params(("id" = String, Path)),
    responses((status = 200, body = ScanView), (status = 404, body = Problem)))]
pub async fn get(
    State(edge): State<Arc<EdgeState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ScanView>, ApiError> {
    require_read(&caller)?;
    Ok(Json(visible_scan(&edge, &caller, &id).await?.into()))
}

/// A finished scan's report: the RepositoryAnalysis JSON (`mark1 scan --schema`
/// describes it). `409` while the scan runs or when it failed. Not for viewers.
#[utoipa::path(get, path = "/v1/scans/{id}/result", tag = "scans", params(("id" = String, Path)),
    responses((status = 200, description = "The RepositoryAnalysis", content_type = "application/json", body = Object),
        (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn result(
    State(edge): State<Arc<EdgeState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    require_read(&caller)?;
    if !caller.principal.role.sees_payloads() {
        return Err(ApiError::forbidden("read scan reports"));
    }
    let scan = visible_scan(&edge, &caller, &id).await?;
    match scan.state {
        ScanState::Running => {
            return Err(ApiError::Conflict(format!(
                "scan {} is still running; its report comes when it ends",
                scan.id
            )))
        }
        ScanState::Failed => {
            let error = scan.error.unwrap_or_default();
            return Err(ApiError::Conflict(format!("scan {} failed, so it has no report: {error}", scan.id)));
        }
        ScanState::Succeeded => {}
    }
    let report = edge.node.scan_result(scan.id).await?.ok_or_else(|| {
        ApiError::Internal(format!("scan {} succeeded but its report is not stored", scan.id))
    })?;
    Ok(([(header::CONTENT_TYPE, "application/json")], report).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ScanListQuery {
    /// Admins spanning every namespace may filter by one; others see their own.
    pub namespace: Option<String>,
    /// `running`, `succeeded` or `failed`.
    pub status: Option<String>,
    /// The `next` of the previous page: scans older than this one.
    #[serde(alias = "cursor")]
    pub before: Option<String>,
    /// At most 1000; default 100.
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ScanPage {
    /// Newest first.
    pub scans: Vec<ScanView>,
    /// Pass as `before` for the next page; absent on the last.
    pub next: Option<String>,
}

/// Scan jobs, newest first, with cursor pagination.
#[utoipa::path(get, path = "/v1/scans", tag = "scans", params(ScanListQuery),
    responses((status = 200, body = ScanPage), (status = 400, body = Problem)))]
pub async fn list(
    State(edge): State<Arc<EdgeState>>,
    caller: Caller,
    Query(query): Query<ScanListQuery>,
) -> Result<Json<ScanPage>, ApiError> {
    require_read(&caller)?;
    let limit = super::page_limit(query.limit);
    let namespace = caller.listing_namespace(query.namespace.as_deref())?;
    let state = query
        .status
        .map(|s| {
            ScanState::parse(&s)
                .ok_or_else(|| ApiError::BadRequest(format!("status: unknown scan status {s:?}")))
        })
        .transpose()?;
    let before = query
        .before
        .map(|c| {
            c.parse::<ScanId>().map_err(|_| ApiError::BadRequest(format!("before: {c:?} is not a scan id")))
        })
        .transpose()?;
    let scans = edge.node.scans(&ScanQuery { namespace, state, before, limit: limit + 1 }).await?;
    let (scans, next) = super::page(scans, limit, |s| s.id.to_string());
    Ok(Json(ScanPage { scans: scans.into_iter().map(Into::into).collect(), next }))
}
