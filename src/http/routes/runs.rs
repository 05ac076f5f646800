//! `/v1/runs` (DESIGN §5, §13.7): start a run (optionally waiting), read runs and their
//! events; changes to a run are in [`changes`].
//!
//! What a caller sees is what tasks show: their namespace's runs (admins every
//! namespace), role `agent` only the runs it started, viewers no inputs or outputs.

pub mod changes;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use mark1_actors::domain::workflow::{
    ItemProgress, ParentStep, RunId, RunRecord, RunState, SkipReason, StepProgress, StepState,
};
use mark1_actors::domain::{Permission, Role};
use mark1_actors::events::EventFilter;
use mark1_actors::ports::RunQuery;
use mark1_actors::workflows::{RunView as Run, StartRun};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::events::EventList;
use super::tasks::{header_text, rfc3339, WaitQuery};
use crate::http::auth::Caller;
use crate::http::body;
use crate::http::error::{ApiError, Problem};
use crate::http::query::Query;
use crate::http::state::EdgeState;

/// A run to start.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRunBody {
    /// A stored workflow of the namespace.
    pub workflow: String,
    /// That version; the latest when unset.
    pub version: Option<u32>,
    /// The run's input, checked against the workflow's `input_schema`; default `{}`.
    #[schema(value_type = Option<Object>)]
    pub input: Option<Value>,
    /// Journal writes committed before the run acts (default true).
    pub durable: Option<bool>,
    /// Makes starting safe to repeat; the `Idempotency-Key` header does the same.
    pub idempotency_key: Option<String>,
}

/// A run without its steps, as listings show it. Viewers see no `input` or `output`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RunSummary {
    #[schema(value_type = String, format = Uuid)]
    pub id: RunId,
    pub namespace: String,
    pub workflow: String,
    /// The definition version the run pinned when it started.
    pub version: u32,
    /// `running`, `waiting_approval`, `succeeded`, `failed` or `cancelled`.
    #[schema(value_type = String, example = "succeeded")]
    pub state: RunState,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub input: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub output: Option<Value>,
    pub error: Option<String>,
    pub idempotency_key: Option<String>,
    pub submitter: Option<String>,
    pub durable: bool,
    /// The step of a parent run this run serves (a sub-workflow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub parent: Option<ParentStep>,
    /// RFC 3339.
    pub created_at: String,
    pub updated_at: String,
}

impl RunSummary {
    pub fn new(run: RunRecord, payloads: bool) -> Self {
        RunSummary {
            id: run.id,
            namespace: run.namespace,
            workflow: run.workflow,
            version: run.version,
            state: run.state,
            input: payloads.then_some(run.input),
            output: if payloads { run.output } else { None },
            error: run.error,
            idempotency_key: run.idempotency_key,
            submitter: run.submitter,
            durable: run.durable,
            parent: run.parent,
            created_at: rfc3339(run.created_at),
            updated_at: rfc3339(run.updated_at),
        }
    }
}

/// One step of a run. Viewers see no `output`, `items` or item outputs.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StepView {
    pub id: String,
    /// `queued`, `running`, `succeeded`, `failed`, `cancelled`, `timed_out`, `skipped` or
    /// `waiting_approval`.
    #[schema(value_type = String, example = "succeeded")]
    pub state: StepState,
    /// The attempt running, or the last one made (0 before the first).
    pub attempt: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub output: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `condition`, `manual`, `upstream` or `not_routed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub skip_reason: Option<SkipReason>,
    /// A `for_each` step's items, as evaluated when it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub items: Option<Vec<Value>>,
    /// A `for_each` step's items' states, in the order of the items.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub item_states: Vec<ItemView>,
    /// RFC 3339: a failed attempt runs again then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<String>,
    /// RFC 3339: an approval decides itself (by its default) then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decide_at: Option<String>,
    /// Failed, and the run went on (`on_error: continue`, or routed to another step).
    pub handled: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ItemView {
    #[schema(value_type = String)]
    pub state: StepState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub output: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl StepView {
    fn new(step: StepProgress, payloads: bool) -> Self {
        let item = |i: ItemProgress| ItemView {
            state: i.state,
            output: if payloads { i.output } else { None },
            error: i.error,
        };
        StepView {
            id: step.id,
            state: step.state,
            attempt: step.attempt,
            output: if payloads { step.output } else { None },
            error: step.error,
            skip_reason: step.skip_reason,
            items: if payloads { step.items } else { None },
            item_states: step.item_states.into_iter().map(item).collect(),
            retry_at: step.retry_at.map(rfc3339),
            decide_at: step.decide_at.map(rfc3339),
            handled: step.handled,
        }
    }
}

/// A run with every step's state.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RunView {
    #[serde(flatten)]
    pub run: RunSummary,
    /// In the order of the definition, then steps added to the run.
    pub steps: Vec<StepView>,
}

impl RunView {
    pub fn new(run: Run, payloads: bool) -> Self {
        RunView {
            run: RunSummary::new(run.record, payloads),
            steps: run.steps.into_iter().map(|s| StepView::new(s, payloads)).collect(),
        }
    }

    pub(crate) fn of(run: Run, caller: &Caller) -> Self {
        Self::new(run, caller.principal.role.sees_payloads())
    }
}

/// A run the caller may see, else not found (existence is not leaked across namespaces).
pub(crate) async fn visible_run(edge: &EdgeState, caller: &Caller, id: &str) -> Result<Run, ApiError> {
    let not_found = || ApiError::NotFound(format!("no run {id}"));
    let id: RunId = id.parse().map_err(|_| not_found())?;
    let run = edge.node.get_run(id).await.map_err(|e| match ApiError::from(e) {
        ApiError::NotFound(_) => not_found(),
        other => other,
    })?;
    let own = caller.principal.role != Role::Agent
        || run.record.submitter.as_deref() == Some(caller.principal.subject.as_str());
    if caller.reaches(&run.record.namespace) && own {
        tracing::Span::current().record("run_id", tracing::field::display(id));
        Ok(run)
    } else {
        Err(not_found())
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StartQuery {
    /// Wait up to this long for the run to finish, e.g. `30s`.
    pub wait: Option<String>,
    /// Admins may name a namespace; everyone else starts runs in their own.
    pub namespace: Option<String>,
}

/// Starts a run of a stored workflow. `201` with the run when not waiting; with `wait`,
/// `200` when it finished in time or `202` while it still runs. A reused idempotency key
/// answers with the first run (`200` when not waiting); the same key for another
/// workflow, version or input is `409`. An input that breaks the workflow's
/// `input_schema` is `400` with every problem in `errors`.
#[utoipa::path(post, path = "/v1/runs", tag = "runs", request_body = StartRunBody, params(StartQuery,
    ("Idempotency-Key" = Option<String>, Header, description = "Makes starting safe to repeat")),
    responses((status = 201, body = RunView), (status = 200, body = RunView), (status = 202, body = RunView),
        (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn start(
    State(edge): State<Arc<EdgeState>>,
    caller: Caller,
    Query(query): Query<StartQuery>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    caller.require(Permission::Submit, "start runs")?;
    let request: StartRunBody = body::parse(&bytes)?;
    let wait = body::wait(query.wait.as_deref(), edge.server.max_wait)?;
    let namespace = caller.namespace(query.namespace.as_deref())?;
    let idempotency_key = match (header_text(&headers, "idempotency-key")?, request.idempotency_key) {
        (Some(header), Some(body)) if header != body => {
            return Err(ApiError::BadRequest(
                "the Idempotency-Key header and the body's idempotency_key differ".into(),
            ))
        }
        (header, body) => header.or(body),
    };
    let replayed = match &idempotency_key {
        Some(key) => edge.node.store().run_by_idempotency_key(&namespace, key).await?.is_some(),
        None => false,
    };
    let record = edge
        .node
        .start_run(StartRun {
            namespace,
            workflow: request.workflow,
            version: request.version,
            input: request.input.unwrap_or_else(|| Value::Object(Default::default())),
            idempotency_key,
            submitter: Some(caller.principal.subject.clone()),
            durable: request.durable.unwrap_or(true),
            parent: None,
        })
        .await?;
    tracing::Span::current().record("run_id", tracing::field::display(record.id));
    let (run, status) = match wait {
        Some(wait) => {
            let run = edge.node.wait_run(record.id, wait).await?;
            let status = if run.record.state.is_final() { StatusCode::OK } else { StatusCode::ACCEPTED };
            (run, status)
        }
        None => {
            let status = if replayed { StatusCode::OK } else { StatusCode::CREATED };
            (edge.node.get_run(record.id).await?, status)
        }
    };
    Ok((status, Json(RunView::of(run, &caller))).into_response())
}

/// One run with its steps; with `wait`, waits up to that long for it to finish.
#[utoipa::path(get, path = "/v1/runs/{id}", tag = "runs", params(("id" = String, Path), WaitQuery),
    responses((status = 200, body = RunView), (status = 404, body = Problem)))]
pub async fn get(
    State(edge): State<Arc<EdgeState>>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<WaitQuery>,
) -> Result<Json<RunView>, ApiError> {
    caller.require(Permission::Read, "read runs")?;
    let mut run = visible_run(&edge, &caller, &id).await?;
    if let Some(wait) = query.duration(edge.server.max_wait)? {
        // Even when the live run already shows its end: a wait answers once that end is
        // committed, so what the caller sees next in listings (from the store) agrees.
        run = edge.node.wait_run(run.record.id, wait).await?;
    }
    Ok(Json(RunView::of(run, &caller)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RunListQuery {
    /// Admins spanning every namespace may filter by one; others see their own.
    pub namespace: Option<String>,
    /// Runs of this workflow, whatever the version.
    pub workflow: Option<String>,
    /// `running`, `waiting_approval`, `succeeded`, `failed` or `cancelled`.
    pub state: Option<String>,
    /// The `next` of the previous page: runs older than this one.
    #[serde(alias = "cursor")]
    pub before: Option<String>,
    /// At most 1000; default 100.
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RunPage {
    /// Newest first.
    pub runs: Vec<RunSummary>,
    /// Pass as `before` for the next page; absent on the last.
    pub next: Option<String>,
}

/// Runs, newest first, without their steps, with cursor pagination.
#[utoipa::path(get, path = "/v1/runs", tag = "runs", params(RunListQuery),
    responses((status = 200, body = RunPage), (status = 400, body = Problem)))]
pub async fn list(
    State(edge): State<Arc<EdgeState>>,
    caller: Caller,
    Query(query): Query<RunListQuery>,
) -> Result<Json<RunPage>, ApiError> {
    caller.require(Permission::Read, "read runs")?;
    let limit = super::page_limit(query.limit);
    let namespace = caller.listing_namespace(query.namespace.as_deref())?;
    let state = query
        .state
        .map(|s| {
            RunState::parse(&s).ok_or_else(|| ApiError::BadRequest(format!("state: unknown run state {s:?}")))
        })
        .transpose()?;
    let before = query
        .before
        .map(|c| {
            c.parse::<RunId>().map_err(|_| ApiError::BadRequest(format!("before: {c:?} is not a run id")))
        })
        .transpose()?;
    let submitter = (caller.principal.role == Role::Agent).then(|| caller.principal.subject.clone());
    let runs = edge
        .node
        .runs(&RunQuery { namespace, state, workflow: query.workflow, submitter, before, limit: limit + 1 })
        .await?;
    let (runs, next) = super::page(runs, limit, |r| r.id.to_string());
    let payloads = caller.principal.role.sees_payloads();
    let runs = runs.into_iter().map(|r| RunSummary::new(r, payloads)).collect();
    Ok(Json(RunPage { runs, next }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RunEventsQuery {
    /// Events after this seq; default 0 (everything kept).
    pub after: Option<u64>,
    /// At most 1000; default 100.
    pub limit: Option<usize>,
}

/// The run's events (`run.*`, `step.*`; subject: the run id), oldest first: those the
/// store keeps (durable runs), then the node's recent ones. For a live stream, open the
/// WebSocket `/v1/events?runs=<id>`.
#[utoipa::path(get, path = "/v1/runs/{id}/events", tag = "runs", params(("id" = String, Path), RunEventsQuery),
    responses((status = 200, body = EventList), (status = 404, body = Problem), (status = 410, body = Problem)))]
pub async fn events(
    State(edge): State<Arc<EdgeState>>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<RunEventsQuery>,
) -> Result<Json<EventList>, ApiError> {
    caller.require(Permission::Read, "read events")?;
    let run = visible_run(&edge, &caller, &id).await?.record;
    let filter = EventFilter {
        kinds: Vec::new(),
        namespaces: vec![run.namespace],
        subjects: vec![run.id.to_string()],
        agents: Vec::new(),
    };
    let payloads = caller.principal.role.sees_payloads();
    Ok(Json(super::events::event_list(&edge, filter, query.after, query.limit, payloads).await?))
}
