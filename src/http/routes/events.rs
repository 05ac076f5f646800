//! `/v1/events` (DESIGN §13.4): a JSON listing, or with `Upgrade: websocket` a live
//! stream, both from a cursor; `/v1/actors/watch`: the actor tree, pushed periodically.
//!
//! What a caller sees: admins every namespace, everyone else their own; role `agent` only
//! events of tasks and runs it submitted, which it names with `tasks=` and `runs=` (events
//! carry no submitter, so they are checked once, up front, rather than per event); viewers
//! get `task.progress` events without their `data` (the agent's own payload, like a
//! task's output). Run and step events carry no inputs or outputs.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{rejection::WebSocketUpgradeRejection, WebSocketUpgrade};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use mark1_actors::domain::{Event, EventKind, Permission, Role};
use mark1_actors::events::EventFilter;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::http::auth::Caller;
use crate::http::body;
use crate::http::error::{ApiError, Problem};
use crate::http::query::Query;
use crate::http::routes::runs::visible_run;
use crate::http::routes::tasks::{rfc3339, visible_task};
use crate::http::state::EdgeState;
use crate::http::ws;

/// Most task and run ids one request may name.
const MAX_TASKS: usize = 100;
/// The shortest `interval` of `/v1/actors/watch`.
const MIN_WATCH_INTERVAL: Duration = Duration::from_millis(200);

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Events after this seq. Listing: default 0 (everything kept). WebSocket: default
    /// the next event published.
    pub after: Option<u64>,
    /// Listing only: at most 1000; default 100.
    pub limit: Option<usize>,
    /// Comma-separated kinds, e.g. `task.succeeded,task.failed`.
    pub kinds: Option<String>,
    /// Comma-separated task ids (the subjects of task events).
    pub tasks: Option<String>,
    /// Comma-separated run ids (the subjects of `run.*` and `step.*` events).
    pub runs: Option<String>,
    /// Comma-separated agent names: `agent.*` events of those agents and task events
    /// naming them in `data.agent` (the agent asked for, then the one that ran).
    pub agents: Option<String>,
    /// WebSocket upgrades only: the credential, for clients that cannot set headers.
    pub access_token: Option<String>,
}

/// An event as the API shows it (DESIGN §13.4).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventView {
    pub seq: u64,
    /// RFC 3339.
    pub time: String,
    #[schema(example = "task.succeeded")]
    pub kind: String,
    // Shared with the event, like `subject` and `data`: a delivery copies none of them.
    #[schema(value_type = String)]
    pub namespace: Arc<str>,
    /// A task id, an agent key (`<namespace>/<agent>`), an actor name.
    #[schema(value_type = String)]
    pub subject: Arc<str>,
    #[schema(value_type = Object)]
    pub data: Arc<Value>,
}

impl EventView {
    pub fn new(event: &Event, payloads: bool) -> Self {
        let hidden = !payloads && event.kind == EventKind::TaskProgress;
        EventView {
            seq: event.seq,
            time: rfc3339(event.time),
            kind: event.kind.as_str().to_string(),
            namespace: event.namespace.clone(),
            subject: event.subject.clone(),
            data: if hidden { Arc::new(Value::Null) } else { event.data.clone() },
        }
    }
}

/// A page of the events `filter` matches after `after`, as the caller may see them.
pub(crate) async fn event_list(
    edge: &EdgeState,
    filter: EventFilter,
    after: Option<u64>,
    limit: Option<usize>,
    payloads: bool,
) -> Result<EventList, ApiError> {
    let page = edge.node.list_events(filter, after.unwrap_or(0), super::page_limit(limit)).await?;
    let events = page.events.iter().map(|e| EventView::new(e, payloads)).collect();
    Ok(EventList { events, next: page.next })
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventList {
    /// Oldest first.
    pub events: Vec<EventView>,
    /// Pass as `after` for the next page; null once the listing reached the newest event.
    pub next: Option<u64>,
}

/// Events after a cursor, oldest first: those the store keeps (durable tasks, agents
/// registered at run time), then the node's recent ones. With `Upgrade: websocket` the
/// same filters stream one text frame per event (`{seq,time,kind,namespace,subject,data}`,
/// in seq order); close codes: `4001` (`cursor_expired…`: the cursor is older than what is
/// kept), `4008` (`slow_client`: more than `server.ws_buffer` events behind), `1001` (the
/// node shuts down), `1011` (the store failed while resuming). The credential may come as
/// `?access_token=` on the upgrade.
#[utoipa::path(get, path = "/v1/events", tag = "events", params(EventsQuery),
    responses((status = 200, body = EventList), (status = 101, description = "WebSocket: one text frame per event"),
        (status = 400, body = Problem), (status = 404, body = Problem),
        (status = 410, body = Problem, description = "cursor_expired: the cursor is older than what is kept")))]
pub async fn events(
    State(edge): State<Arc<EdgeState>>,
    caller: Caller,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    headers: HeaderMap,
    Query(query): Query<EventsQuery>,
) -> Result<Response, ApiError> {
    caller.require(Permission::Read, "read events")?;
    let filter = filter(&edge, &caller, &query).await?;
    let payloads = caller.principal.role.sees_payloads();
    if !crate::http::wants_websocket(&headers) {
        if query.access_token.is_some() {
            return Err(ApiError::BadRequest("access_token: accepted on WebSocket upgrades only".into()));
        }
        return Ok(Json(event_list(&edge, filter, query.after, query.limit, payloads).await?).into_response());
    }
    let upgrade = upgrade.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let subscription = edge.node.subscribe(filter, query.after).await?;
    let (edge, buffer) = (edge.clone(), edge.server.ws_buffer);
    Ok(upgrade.on_upgrade(move |socket| {
        let session = ws::stream_events(socket, subscription, payloads, buffer, edge.clone());
        edge.sessions.track_future(session)
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct WatchQuery {
    /// How often a snapshot is sent, e.g. `500ms`; default `1s`, at least `200ms`.
    pub interval: Option<String>,
    /// The credential, for clients that cannot set headers.
    pub access_token: Option<String>,
}

/// WebSocket only: the live actor tree (the JSON of `GET /v1/actors`) as one text frame
/// at once and then every `interval`.
#[utoipa::path(get, path = "/v1/actors/watch", tag = "actors", params(WatchQuery),
    responses((status = 101, description = "WebSocket: one text frame per snapshot"), (status = 400, body = Problem)))]
pub async fn watch_tree(
    State(edge): State<Arc<EdgeState>>,
    caller: Caller,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    Query(query): Query<WatchQuery>,
) -> Result<Response, ApiError> {
    caller.require(Permission::Read, "read the actor tree")?;
    let interval = match &query.interval {
        None => Duration::from_secs(1),
        Some(text) => body::duration("interval", text)?,
    };
    if interval < MIN_WATCH_INTERVAL {
        return Err(ApiError::BadRequest(format!("interval: at least {MIN_WATCH_INTERVAL:?}")));
    }
    let upgrade = upgrade.map_err(|e| {
        ApiError::BadRequest(format!("this route needs a WebSocket upgrade ({})", e.body_text()))
    })?;
    let edge = edge.clone();
    Ok(upgrade.on_upgrade(move |socket| {
        let session = ws::watch_tree(socket, interval, edge.clone());
        edge.sessions.track_future(session)
    }))
}

/// Whether the request asks for a WebSocket (otherwise it is a listing).
fn list(text: &Option<String>) -> Vec<&str> {
    text.as_deref()
        .map(|t| t.split(',').map(str::trim).filter(|s| !s.is_empty()).collect())
        .unwrap_or_default()
}

/// The query as a filter, confined to what the caller may see.
async fn filter(edge: &EdgeState, caller: &Caller, query: &EventsQuery) -> Result<EventFilter, ApiError> {
    let kinds = list(&query.kinds)
        .into_iter()
        .map(|k| {
            serde_json::from_value::<EventKind>(Value::String(k.to_string()))
                .map_err(|_| ApiError::BadRequest(format!("kinds: unknown event kind {k:?}")))
        })
        .collect::<Result<_, _>>()?;
    let (tasks, runs) = (list(&query.tasks), list(&query.runs));
    if tasks.len() + runs.len() > MAX_TASKS {
        return Err(ApiError::BadRequest(format!("tasks and runs: at most {MAX_TASKS} ids")));
    }
    if caller.principal.role == Role::Agent {
        if tasks.is_empty() && runs.is_empty() {
            return Err(ApiError::Forbidden(
                "role agent sees only events of tasks and runs it submitted: name them with tasks= or runs="
                    .into(),
            ));
        }
        for id in &tasks {
            visible_task(edge, caller, id).await?;
        }
        for id in &runs {
            visible_run(edge, caller, id).await?;
        }
    }
    let mut subjects: Vec<String> = tasks
        .into_iter()
        .map(|id| match id.parse::<mark1_actors::domain::TaskId>() {
            Ok(id) => Ok(id.to_string()),
            Err(_) => Err(ApiError::BadRequest(format!("tasks: {id:?} is not a task id"))),
        })
        .collect::<Result<_, _>>()?;
    for id in runs {
        match id.parse::<mark1_actors::domain::workflow::RunId>() {
            Ok(id) => subjects.push(id.to_string()),
            Err(_) => return Err(ApiError::BadRequest(format!("runs: {id:?} is not a run id"))),
        }
    }
    Ok(EventFilter {
        kinds,
        namespaces: caller.principal.namespace.iter().cloned().collect(),
        subjects,
        agents: list(&query.agents).into_iter().map(str::to_string).collect(),
    })
}
