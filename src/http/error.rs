//! The one place errors become HTTP (CONVENTIONS 7): a small code set → status →
//! `application/problem+json` (RFC 9457). Internal causes are logged, never sent.

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use mark1_actors::domain::workflow::{ChangeError, Diagnostic, Positions, Problem as DefinitionProblem};
use mark1_actors::events::EventsError;
use mark1_actors::orchestrator::{AgentRegistryError, TaskError};
use mark1_actors::scans::ScanError;
use mark1_actors::workflows::WorkflowError;
use serde::Serialize;
use utoipa::ToSchema;

use crate::node::NodeError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{message}")]
    TooManyRequests { message: String, retry_after: Duration },
    #[error("{0}")]
    PayloadTooLarge(String),
    /// An event cursor older than what the node keeps (410 Gone).
    #[error("{0}")]
    CursorExpired(String),
    /// An actor did not answer in time.
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    Unavailable(String),
    /// Logged with the request's span (which carries its id); the client sees a generic text.
    #[error("{0}")]
    Internal(String),
    /// A bad request with every problem found (a workflow definition, a run input), each
    /// listed in the problem document's `errors`.
    #[error("{detail}")]
    Invalid { detail: String, errors: Vec<ErrorDetail> },
}

/// One problem of a request body: what is wrong, where (a JSON pointer), and, when the
/// body was a definition's text, at which line and column.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// A JSON pointer into the document, e.g. `/steps/2/depends_on/0`; `""` is the whole.
    pub pointer: String,
    pub message: String,
    /// 1-based.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// 1-based, in characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
}

impl From<DefinitionProblem> for ErrorDetail {
    fn from(p: DefinitionProblem) -> Self {
        ErrorDetail { pointer: p.pointer, message: p.message, line: None, column: None }
    }
}

impl From<Diagnostic> for ErrorDetail {
    fn from(d: Diagnostic) -> Self {
        ErrorDetail { pointer: d.pointer, message: d.message, line: Some(d.line), column: Some(d.column) }
    }
}

impl ErrorDetail {
    /// This problem at its place in a text whose parts are at `positions`.
    pub fn located(mut self, positions: &Positions) -> Self {
        if self.line.is_none() {
            let at = positions.locate(&self.pointer);
            (self.line, self.column) = (Some(at.line), Some(at.column));
        }
        self
    }
}

/// The problem document every error answers with.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct Problem {
    /// A stable identifier of the error kind, e.g. `urn:mark1:not_found`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Every problem of an invalid definition or input (400 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<ErrorDetail>>,
}

impl ApiError {
    /// The status and the short code of the problem document (the gateways answer in
    /// their protocols' error shapes with the same status).
    pub(crate) fn code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::TooManyRequests { .. } => (StatusCode::TOO_MANY_REQUESTS, "too_many_requests"),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::CursorExpired(_) => (StatusCode::GONE, "cursor_expired"),
            ApiError::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, "timeout"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            ApiError::Invalid { .. } => (StatusCode::BAD_REQUEST, "bad_request"),
        }
    }

    /// A 400 listing `errors`, its detail summing them up.
    pub fn invalid(what: &str, errors: Vec<ErrorDetail>) -> Self {
        let detail = match errors.as_slice() {
            [one] if one.pointer.is_empty() => format!("{what}: {}", one.message),
            [one] => format!("{what}: {} (at {})", one.message, one.pointer),
            many => format!("{what}: {} problems, listed in `errors`", many.len()),
        };
        ApiError::Invalid { detail, errors }
    }

    /// The problems of an invalid definition at their line and column in its text.
    pub fn located(self, positions: &Positions) -> Self {
        match self {
            ApiError::Invalid { detail, errors } => ApiError::Invalid {
                detail,
                errors: errors.into_iter().map(|e| e.located(positions)).collect(),
            },
            other => other,
        }
    }

    pub fn forbidden(what: &str) -> Self {
        ApiError::Forbidden(format!("your role may not {what}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.code();
        let detail = match &self {
            ApiError::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                "an internal error occurred; the node's log has the cause under this request's id".to_string()
            }
            other => other.to_string(),
        };
        let errors = match &self {
            ApiError::Invalid { errors, .. } => Some(errors.clone()),
            _ => None,
        };
        let problem = Problem {
            kind: format!("urn:mark1:{code}"),
            title: status.canonical_reason().unwrap_or("error").to_string(),
            status: status.as_u16(),
            detail,
            errors,
        };
        let body = serde_json::to_vec(&problem).expect("a problem serializes");
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let ApiError::TooManyRequests { retry_after, .. } = &self {
            let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let ApiError::Unauthorized(_) = &self {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<TaskError> for ApiError {
    fn from(e: TaskError) -> Self {
        match e {
            TaskError::UnknownAgent { .. } | TaskError::NoCapableAgent { .. } | TaskError::NotFound(_) => {
                ApiError::NotFound(e.to_string())
            }
            TaskError::Overloaded { retry_after, .. }
            | TaskError::QueueFull { retry_after, .. }
            | TaskError::QuotaExceeded { retry_after, .. } => {
                ApiError::TooManyRequests { message: e.to_string(), retry_after }
            }
            TaskError::IdempotencyConflict { .. } => ApiError::Conflict(e.to_string()),
            TaskError::Invalid(_) => ApiError::BadRequest(e.to_string()),
            TaskError::Unavailable(_) | TaskError::ShuttingDown => ApiError::Unavailable(e.to_string()),
            TaskError::AgentFailed { .. } => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<AgentRegistryError> for ApiError {
    fn from(e: AgentRegistryError) -> Self {
        match e {
            AgentRegistryError::Invalid(_) => ApiError::BadRequest(e.to_string()),
            AgentRegistryError::Duplicate(_) => ApiError::Conflict(e.to_string()),
            AgentRegistryError::NotFound(_) => ApiError::NotFound(e.to_string()),
            AgentRegistryError::StartFailed { .. } | AgentRegistryError::NotStored { .. } => {
                ApiError::Unavailable(e.to_string())
            }
        }
    }
}

impl From<NodeError> for ApiError {
    fn from(e: NodeError) -> Self {
        match e {
            NodeError::Task(e) => e.into(),
            NodeError::Agent(e) => e.into(),
            NodeError::InvalidAgent(m) => ApiError::BadRequest(m),
            NodeError::Timeout(m) => ApiError::Timeout(m),
            NodeError::Unavailable(m) => ApiError::Unavailable(m),
            NodeError::Events(e) => e.into(),
            NodeError::Workflow(e) => e.into(),
            NodeError::Scan(e) => e.into(),
            NodeError::UnknownScan(id) => ApiError::NotFound(format!("no scan {id}")),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<ScanError> for ApiError {
    fn from(e: ScanError) -> Self {
        match e {
            ScanError::Disabled | ScanError::NotAllowed { .. } => ApiError::Forbidden(e.to_string()),
            ScanError::InvalidPath(_) => ApiError::BadRequest(e.to_string()),
            ScanError::Busy(_) => {
                ApiError::TooManyRequests { message: e.to_string(), retry_after: Duration::from_secs(5) }
            }
            ScanError::Unavailable(_) => ApiError::Unavailable(e.to_string()),
        }
    }
}

impl From<WorkflowError> for ApiError {
    fn from(e: WorkflowError) -> Self {
        let details =
            |problems: Vec<DefinitionProblem>| problems.into_iter().map(ErrorDetail::from).collect();
        match e {
            WorkflowError::UnknownWorkflow { .. }
            | WorkflowError::UnknownRun(_)
            | WorkflowError::Change(ChangeError::UnknownStep(_)) => ApiError::NotFound(e.to_string()),
            WorkflowError::Invalid(problems) => ApiError::invalid("invalid workflow", details(problems)),
            WorkflowError::InvalidInput(problems) => ApiError::invalid(
                "the run input does not match the workflow's input_schema",
                details(problems),
            ),
            WorkflowError::VersionExists { .. }
            | WorkflowError::IdempotencyConflict { .. }
            | WorkflowError::Change(ChangeError::WrongState { .. } | ChangeError::RunFinal(_)) => {
                ApiError::Conflict(e.to_string())
            }
            WorkflowError::Unavailable(_) => ApiError::Unavailable(e.to_string()),
        }
    }
}

impl From<EventsError> for ApiError {
    fn from(e: EventsError) -> Self {
        match e {
            EventsError::CursorExpired { .. } => ApiError::CursorExpired(e.to_string()),
            EventsError::Store(e) => e.into(),
        }
    }
}

impl From<mark1_actors::ports::StoreError> for ApiError {
    fn from(e: mark1_actors::ports::StoreError) -> Self {
        use mark1_actors::ports::StoreError;
        match e {
            StoreError::Unavailable(_) => ApiError::Unavailable(e.to_string()),
            StoreError::Rejected(_) => ApiError::Internal(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;

    use super::ApiError;
    use crate::node::NodeError;

    #[test]
    fn actors_that_do_not_answer_are_504_and_stopped_ones_503() {
        let timeout = ApiError::from(NodeError::Timeout("the orchestrator did not answer within 10s".into()));
        assert_eq!(timeout.into_response().status(), StatusCode::GATEWAY_TIMEOUT);
        let stopped = ApiError::from(NodeError::Unavailable("the orchestrator stopped".into()));
        assert_eq!(stopped.into_response().status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn scan_errors_map_to_one_status_each() {
        use mark1_actors::scans::ScanError;
        let status = |e: ScanError| ApiError::from(NodeError::Scan(e)).into_response().status();
        assert_eq!(status(ScanError::Disabled), StatusCode::FORBIDDEN);
        let outside = ScanError::NotAllowed { path: "/etc".into(), allowed: "/srv".into() };
        assert_eq!(status(outside), StatusCode::FORBIDDEN);
        assert_eq!(status(ScanError::InvalidPath("x".into())), StatusCode::BAD_REQUEST);
        assert_eq!(status(ScanError::Busy(64)), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(status(ScanError::Unavailable("down".into())), StatusCode::SERVICE_UNAVAILABLE);
        assert!(ScanError::Disabled.to_string().contains("scan.allowed_dirs"));
    }

    #[test]
    fn workflow_errors_map_to_one_status_each_and_invalid_ones_list_every_problem() {
        use mark1_actors::domain::workflow::{ChangeError, Positions, Problem, RunId, RunState, StepState};
        use mark1_actors::workflows::WorkflowError;

        let status = |e: WorkflowError| ApiError::from(NodeError::Workflow(e)).into_response().status();
        assert_eq!(status(WorkflowError::UnknownRun(RunId::new())), StatusCode::NOT_FOUND);
        assert_eq!(status(ChangeError::UnknownStep("x".into()).into()), StatusCode::NOT_FOUND);
        let wrong = ChangeError::WrongState { step: "x".into(), state: StepState::Running, wanted: "…" };
        assert_eq!(status(wrong.into()), StatusCode::CONFLICT);
        assert_eq!(status(ChangeError::RunFinal(RunState::Failed).into()), StatusCode::CONFLICT);
        assert_eq!(status(WorkflowError::IdempotencyConflict { key: "k".into() }), StatusCode::CONFLICT);
        assert_eq!(status(WorkflowError::Unavailable("down".into())), StatusCode::SERVICE_UNAVAILABLE);

        let invalid =
            WorkflowError::Invalid(vec![Problem::new("/steps/0/agent", "no agent"), Problem::new("", "too")]);
        let response = ApiError::from(invalid).located(&Positions::default()).into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body = futures::executor::block_on(axum::body::to_bytes(response.into_body(), 4096)).unwrap();
        let problem: super::Problem = serde_json::from_slice(&body).unwrap();
        let errors = problem.errors.expect("the problems are listed");
        assert_eq!(errors.len(), 2);
        assert_eq!(
            (errors[0].pointer.as_str(), errors[0].line, errors[0].column),
            ("/steps/0/agent", Some(1), Some(1))
        );
        assert!(problem.detail.contains("2 problems"), "{}", problem.detail);

        let one = ApiError::from(WorkflowError::InvalidInput(vec![Problem::new("/input", "missing text")]));
        assert!(one.to_string().contains("missing text (at /input)"), "{one}");
    }

    #[test]
    fn overload_carries_retry_after_and_internal_causes_stay_inside() {
        let busy =
            ApiError::TooManyRequests { message: "full".into(), retry_after: Duration::from_millis(1500) };
        let response = busy.into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2", "rounded up to whole seconds");
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/problem+json");
        let internal = ApiError::Internal("database password is hunter2".into()).into_response();
        let body = futures::executor::block_on(axum::body::to_bytes(internal.into_body(), 4096)).unwrap();
        assert!(!String::from_utf8_lossy(&body).contains("hunter2"), "causes are logged, not sent");
    }
}
