//! `/v1/tasks` (DESIGN §13.3): submit (optionally waiting), get, list, cancel.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use mark1_actors::domain::{Permission, Role, Target, TaskId, TaskRecord, TaskRequest, TaskState};
use mark1_actors::ports::TaskQuery;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::http::auth::Caller;
use crate::http::body;
use crate::http::error::{ApiError, Problem};
use crate::http::query::Query;
use crate::http::state::EdgeState;

/// A submission. Exactly one of `agent` and `capabilities`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitTask {
    /// A named agent of the namespace.
    pub agent: Option<String>,
    /// Any agent with every one of these capabilities.
    pub capabilities: Option<Vec<String>>,
    #[serde(default)]
    pub input: Value,
    /// Admins may name a namespace; everyone else submits in their own.
    pub namespace: Option<String>,
    /// 0..=9, higher first; default 5.
    pub priority: Option<u8>,
    /// Time one attempt may take, e.g. `30s`.
    pub timeout: Option<String>,
    /// RFC 3339 time after which the task is `timed_out`.
    pub deadline: Option<String>,
    /// Extra attempts for retryable failures.
    pub retries: Option<u32>,
    /// Committed before it is accepted (default true).
    pub durable: Option<bool>,
}

/// A task as the API shows it. Viewers see no `input` or `output`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TaskView {
    #[schema(value_type = String, format = Uuid)]
    pub id: TaskId,
    pub namespace: String,
    /// The agent asked for, when the submission named one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_agent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Vec<String>>,
    /// The agent that ran (or runs) the latest attempt.
    pub agent: Option<String>,
    #[schema(value_type = String, example = "succeeded")]
    pub state: TaskState,
    // Shared with the task's record: a response does not copy the payload.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub input: Option<Arc<Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub output: Option<Arc<Value>>,
    pub error: Option<String>,
    pub priority: u8,
    pub attempt: u32,
    pub max_attempts: u32,
    pub idempotency_key: Option<String>,
    pub durable: bool,
    pub submitter: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    pub updated_at: String,
    pub deadline: Option<String>,
}

pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_micros(t).to_string()
}

impl TaskView {
    pub fn new(task: TaskRecord, payloads: bool) -> Self {
        let (target_agent, capabilities) = match task.target {
            Target::Agent(name) => (Some(name), None),
            Target::Capabilities(caps) => (None, Some(caps)),
        };
        TaskView {
            id: task.id,
            namespace: task.namespace,
            target_agent,
            capabilities,
            agent: task.agent,
            state: task.state,
            input: payloads.then_some(task.input),
            output: if payloads { task.output } else { None },
            error: task.error,
            priority: task.priority,
            attempt: task.attempt,
            max_attempts: task.max_attempts,
            idempotency_key: task.idempotency_key,
            durable: task.durable,
            submitter: task.submitter,
            created_at: rfc3339(task.created_at),
            updated_at: rfc3339(task.updated_at),
            deadline: task.deadline.map(rfc3339),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct WaitQuery {
    /// Wait up to this long for it to finish, e.g. `5s`.
    pub wait: Option<String>,
}

impl WaitQuery {
    pub(crate) fn duration(&self, max: Duration) -> Result<Option<Duration>, ApiError> {
        body::wait(self.wait.as_deref(), max)
    }
}

/// Submits a task. `201` with the queued task; with `wait`, `200` when it finished in
/// time or `202` while it still runs. A reused `Idempotency-Key` answers `200` with the
/// first task; the same key with a different body is `409`.
#[utoipa::path(post, path = "/v1/tasks", tag = "tasks", request_body = SubmitTask, params(WaitQuery,
    ("Idempotency-Key" = Option<String>, Header, description = "Makes resubmission safe"),
    ("traceparent" = Option<String>, Header, description = "W3C trace context carried into the task")),
    responses((status = 201, body = TaskView), (status = 200, body = TaskView), (status = 202, body = TaskView),
        (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 429, body = Problem)))]
pub async fn submit(
    State(edge): State<Arc<EdgeState>>,
    caller: Caller,
    Query(query): Query<WaitQuery>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    caller.require(Permission::Submit, "submit tasks")?;
    let submission: SubmitTask = body::parse(&bytes)?;
    let wait = query.duration(edge.server.max_wait)?;
    let request = task_request(&caller, submission, &headers)?;
    let (record, status) = match wait {
        // One message: the task, finished or as it is when the wait ends (a replayed
        // idempotency key answers with the first task either way).
        Some(wait) => {
            let record = edge.node.submit_and_wait(request, wait).await?;
            let status = if record.state.is_final() { StatusCode::OK } else { StatusCode::ACCEPTED };
            (record, status)
        }
        None => {
            let submitted = edge.node.submit_detailed(request).await?;
            let status = if submitted.existing { StatusCode::OK } else { StatusCode::CREATED };
            (edge.node.get(submitted.id).await?, status)
        }
    };
    tracing::Span::current().record("task_id", tracing::field::display(record.id));
    Ok((status, Json(TaskView::new(record, caller.principal.role.sees_payloads()))).into_response())
}

fn task_request(caller: &Caller, s: SubmitTask, headers: &HeaderMap) -> Result<TaskRequest, ApiError> {
    let mut request = match (s.agent, s.capabilities) {
        (Some(agent), None) => TaskRequest::to_agent(agent, s.input),
        (None, Some(caps)) if !caps.is_empty() => TaskRequest::to_capabilities(caps, s.input),
        _ => {
            return Err(ApiError::BadRequest(
                "name exactly one of `agent` and a non-empty `capabilities`".into(),
            ))
        }
    };
    request.namespace = caller.namespace(s.namespace.as_deref())?;
    if let Some(priority) = s.priority {
        if priority > 9 {
            return Err(ApiError::BadRequest(format!("priority: {priority} is outside 0..=9")));
        }
        request.priority = priority;
    }
    request.timeout = s.timeout.as_deref().map(|t| body::duration("timeout", t)).transpose()?;
    request.deadline = s
        .deadline
        .as_deref()
        .map(|d| {
            humantime::parse_rfc3339_weak(d)
                .map_err(|e| ApiError::BadRequest(format!("deadline: {d:?} is not an RFC 3339 time ({e})")))
        })
        .transpose()?;
    request.retries = s.retries;
    request.durable = s.durable.unwrap_or(true);
    request.submitter = Some(caller.principal.subject.clone());
    request.idempotency_key = header_text(headers, "idempotency-key")?;
    request.traceparent = header_text(headers, "traceparent")?.filter(|t| valid_traceparent(t));
    Ok(request)
}

pub(crate) fn header_text(headers: &HeaderMap, name: &str) -> Result<Option<String>, ApiError> {
    headers
        .get(name)
        .map(|v| {
            v.to_str().map(str::to_string).map_err(|_| ApiError::BadRequest(format!("{name} must be ASCII")))
        })
        .transpose()
}

/// `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`; anything else is ignored, as
/// W3C Trace Context asks of a malformed header.
fn valid_traceparent(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    let hex = |s: &str, n: usize| {
        s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    };
    parts.len() == 4
        && hex(parts[0], 2)
        && parts[0] != "ff"
        && hex(parts[1], 32)
        && parts[1].bytes().any(|b| b != b'0')
        && hex(parts[2], 16)
        && parts[2].bytes().any(|b| b != b'0')
        && hex(parts[3], 2)
}

/// A task the caller may see, else not found (existence is not leaked across namespaces).
pub(crate) async fn visible_task(
    edge: &EdgeState,
    caller: &Caller,
    id: &str,
) -> Result<TaskRecord, ApiError> {
    let not_found = || ApiError::NotFound(format!("no task {id}"));
    let id: TaskId = id.parse().map_err(|_| not_found())?;
    let task = edge.node.get(id).await.map_err(|e| match ApiError::from(e) {
        ApiError::NotFound(_) => not_found(),
        other => other,
    })?;
    let own = caller.principal.role != Role::Agent
        || task.submitter.as_deref() == Some(caller.principal.subject.as_str());
    if caller.reaches(&task.namespace) && own {
        Ok(task)
    } else {
        Err(not_found())
    }
}

/// One task; with `wait`, waits up to that long for it to finish.
#[utoipa::path(get, path = "/v1/tasks/{id}", tag = "tasks", params(("id" = String, Path), WaitQuery),
    responses((status = 200, body = TaskView), (status = 404, body = Problem)))]
pub async fn get(
    State(edge): State<Arc<EdgeState>>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<WaitQuery>,
) -> Result<Json<TaskView>, ApiError> {
    caller.require(Permission::Read, "read tasks")?;
    let mut task = visible_task(&edge, &caller, &id).await?;
    if let Some(wait) = query.duration(edge.server.max_wait)? {
        if !task.state.is_final() {
            task = edge.node.wait(task.id, wait).await?;
        }
    }
    Ok(Json(TaskView::new(task, caller.principal.role.sees_payloads())))
}

/// Cancels a task; answers with the task as it is then.
#[utoipa::path(post, path = "/v1/tasks/{id}/cancel", tag = "tasks", params(("id" = String, Path)),
    responses((status = 200, body = TaskView), (status = 404, body = Problem)))]
pub async fn cancel(
    State(edge): State<Arc<EdgeState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<TaskView>, ApiError> {
    caller.require(Permission::Submit, "cancel tasks")?;
    let task = visible_task(&edge, &caller, &id).await?;
    let task = edge.node.cancel(task.id).await?;
    Ok(Json(TaskView::new(task, caller.principal.role.sees_payloads())))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Admins spanning every namespace may filter by one; others see their own.
    pub namespace: Option<String>,
    pub state: Option<String>,
    pub agent: Option<String>,
    /// The `next` of the previous page.
    pub cursor: Option<String>,
    /// At most 1000; default 100.
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TaskPage {
    pub tasks: Vec<TaskView>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next: Option<String>,
}

/// Tasks, newest first, with cursor pagination.
#[utoipa::path(get, path = "/v1/tasks", tag = "tasks", params(ListQuery),
    responses((status = 200, body = TaskPage), (status = 400, body = Problem)))]
pub async fn list(
    State(edge): State<Arc<EdgeState>>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<Json<TaskPage>, ApiError> {
    caller.require(Permission::Read, "read tasks")?;
    let limit = super::page_limit(query.limit);
    let namespace = caller.listing_namespace(query.namespace.as_deref())?;
    let state = query
        .state
        .map(|s| {
            serde_json::from_value::<TaskState>(Value::String(s.clone()))
                .map_err(|_| ApiError::BadRequest(format!("state: unknown task state {s:?}")))
        })
        .transpose()?;
    let before = query
        .cursor
        .map(|c| {
            c.parse::<TaskId>().map_err(|_| ApiError::BadRequest(format!("cursor: {c:?} is not a cursor")))
        })
        .transpose()?;
    let submitter = (caller.principal.role == Role::Agent).then(|| caller.principal.subject.clone());
    let tasks = edge
        .node
        .store()
        .list_tasks(&TaskQuery { namespace, state, agent: query.agent, submitter, before, limit: limit + 1 })
        .await?;
    let (tasks, next) = super::page(tasks, limit, |t| t.id.to_string());
    let payloads = caller.principal.role.sees_payloads();
    let tasks = tasks.into_iter().map(|t| TaskView::new(t, payloads)).collect();
    Ok(Json(TaskPage { tasks, next }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn traceparent_follows_the_w3c_shape() {
        assert!(super::valid_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
        assert!(!super::valid_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01"));
        assert!(!super::valid_traceparent("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"));
        assert!(!super::valid_traceparent("garbage"));
    }
}
