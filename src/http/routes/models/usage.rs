//! `GET /v1/models/usage`: model calls summed per namespace, agent, task, run, provider
//! or model over a time window, from the usage records the store keeps.

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::State;
use axum::Json;
use mark1_actors::domain::Permission;
use mark1_actors::ports::{UsageGroup, UsageQuery, UsageRow};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::http::auth::Caller;
use crate::http::body;
use crate::http::error::{ApiError, Problem};
use crate::http::query::Query;
use crate::http::state::EdgeState;

/// Kept as text so a bad value is refused with a message naming the parameter.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UsageParams {
    /// Calls that ended at or after this time (RFC 3339). Default: all kept.
    pub since: Option<String>,
    /// Calls that ended before this time (RFC 3339).
    pub until: Option<String>,
    /// `namespace` (default), `agent`, `task`, `run`, `provider` or `model`.
    pub group_by: Option<String>,
    /// Admins may name any namespace (default: every one); others see their own.
    pub namespace: Option<String>,
}

/// Usage per group, the costliest first (then the most tokens), at most 1,000 groups.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UsageReport {
    pub group_by: String,
    /// The namespace the report covers; absent: every namespace.
    pub namespace: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub rows: Vec<UsageLine>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UsageLine {
    /// The group's value (a namespace, an agent, a task id…); absent for the calls made
    /// outside any agent, task or run.
    pub key: Option<String>,
    pub calls: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Prompt and completion tokens together.
    pub tokens: u64,
    pub cost: f64,
}

impl From<UsageRow> for UsageLine {
    fn from(row: UsageRow) -> Self {
        UsageLine {
            tokens: row.tokens(),
            key: row.key,
            calls: row.calls,
            prompt_tokens: row.prompt_tokens,
            completion_tokens: row.completion_tokens,
            cost: row.cost,
        }
    }
}

/// Model usage over a window, grouped. Non-admins see their own namespace only.
#[utoipa::path(get, path = "/v1/models/usage", tag = "models", params(UsageParams),
    responses((status = 200, body = UsageReport), (status = 400, body = Problem),
        (status = 403, body = Problem)))]
pub async fn report(
    State(edge): State<Arc<EdgeState>>,
    caller: Caller,
    Query(params): Query<UsageParams>,
) -> Result<Json<UsageReport>, ApiError> {
    caller.require(Permission::Read, "read model usage")?;
    let query = UsageQuery {
        namespace: caller.listing_namespace(params.namespace.as_deref())?,
        since: params.since.as_deref().map(|t| body::time("since", t)).transpose()?,
        until: params.until.as_deref().map(|t| body::time("until", t)).transpose()?,
        group_by: params
            .group_by
            .as_deref()
            .map(|g| g.parse::<UsageGroup>().map_err(|e| ApiError::BadRequest(format!("group_by: {e}"))))
            .transpose()?
            .unwrap_or_default(),
    };
    if let (Some(since), Some(until)) = (query.since, query.until) {
        if until <= since {
            return Err(ApiError::BadRequest("until: must be later than since".into()));
        }
    }
    let rows = edge.node.store().usage_report(&query).await?;
    Ok(Json(UsageReport {
        group_by: query.group_by.to_string(),
        since: query.since.map(rfc3339),
        until: query.until.map(rfc3339),
        namespace: query.namespace,
        rows: rows.into_iter().map(UsageLine::from).collect(),
    }))
}

fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}
