//! `watch --plain` against a stand-in node: its event stream drops once mid-run, and the
//! run view lags behind the events, as a durable run's does.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use parking_lot::Mutex;
use serde_json::json;

use super::*;
use crate::cli::client::RemoteArgs;

const ID: &str = "0190a000-0000-7000-8000-000000000002";

type Queries = Arc<Mutex<Vec<Vec<(String, String)>>>>;

#[derive(Clone, Default)]
struct Stand {
    /// The query of each event connection.
    queries: Queries,
    /// How far the run is: 0 started, 1 after the first connection's events, 2 ended.
    stage: Arc<AtomicUsize>,
    /// How the run ends.
    ending: &'static str,
}

fn event(seq: u64, kind: &str, data: Value) -> WsMessage {
    let event = json!({"seq": seq, "time": "2026-01-01T00:00:01Z", "kind": kind, "namespace": "default",
                       "subject": ID, "data": data});
    WsMessage::Text(event.to_string().into())
}

async fn events(
    State(stand): State<Stand>,
    Query(query): Query<Vec<(String, String)>>,
    upgrade: WebSocketUpgrade,
) -> axum::response::Response {
    let connection = {
        let mut queries = stand.queries.lock();
        queries.push(query);
        queries.len()
    };
    upgrade.on_upgrade(move |socket| stream(socket, connection, stand))
}

async fn stream(mut socket: WebSocket, connection: usize, stand: Stand) {
    // Events of another run are the watcher's to ignore.
    let other = json!({"seq": 9, "kind": "run.failed", "subject": "another", "data": {}});
    let _ = socket.send(WsMessage::Text(other.to_string().into())).await;
    if connection == 1 {
        let _ = socket.send(event(1, "step.running", json!({"step": "a", "attempt": 1}))).await;
        let _ = socket.send(event(2, "step.succeeded", json!({"step": "a", "attempt": 1}))).await;
        stand.stage.store(1, Ordering::SeqCst);
        let frame = CloseFrame { code: 1001, reason: "shutting down".into() };
        let _ = socket.send(WsMessage::Close(Some(frame))).await;
        return;
    }
    let _ = socket.send(event(3, "step.running", json!({"step": "b", "attempt": 1}))).await;
    if stand.ending == "failed" {
        let _ =
            socket.send(event(4, "step.failed", json!({"step": "b", "attempt": 1, "error": "boom"}))).await;
        let _ = socket.send(event(5, "run.failed", json!({"error": "step b failed: boom"}))).await;
    } else {
        let _ = socket.send(event(4, "step.succeeded", json!({"step": "b", "attempt": 1}))).await;
        let _ = socket.send(event(5, "run.succeeded", json!({}))).await;
    }
    stand.stage.store(2, Ordering::SeqCst);
    while let Some(Ok(_)) = socket.recv().await {}
}

/// The view lags: it shows step a running only once the stream dropped, and the end only
/// after the last event.
async fn view(State(stand): State<Stand>, Path(id): Path<String>) -> Result<Json<Value>, StatusCode> {
    if id != ID {
        return Err(StatusCode::NOT_FOUND);
    }
    let stage = stand.stage.load(Ordering::SeqCst);
    let (a, b, state) = match stage {
        0 => ("queued", "queued", "running"),
        1 => ("running", "queued", "running"),
        _ if stand.ending == "failed" => ("succeeded", "failed", "failed"),
        _ => ("succeeded", "succeeded", "succeeded"),
    };
    let attempt = |s: &str| if s == "queued" { 0 } else { 1 };
    Ok(Json(json!({"id": ID, "namespace": "default", "workflow": "pair", "version": 1, "state": state,
        "error": if state == "failed" { json!("step b failed: boom") } else { Value::Null },
        "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:02Z",
        "steps": [{"id": "b", "state": b, "attempt": attempt(b)}, {"id": "a", "state": a, "attempt": attempt(a)}]})))
}

async fn workflow(Path(name): Path<String>) -> Json<Value> {
    assert_eq!(name, "pair");
    Json(json!({"namespace": "default", "name": "pair", "version": 1,
        "def": {"name": "pair", "steps": [{"id": "b", "agent": "echo", "depends_on": ["a"]}, {"id": "a", "agent": "echo"}]}}))
}

async fn stand_in(ending: &'static str) -> (Remote, Stand) {
    let stand = Stand { ending, ..Stand::default() };
    let app = Router::new()
        .route("/v1/events", get(events))
        .route("/v1/runs/{id}", get(view))
        .route("/v1/workflows/{name}", get(workflow))
        .with_state(stand.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (Remote::new(&RemoteArgs { url, api_key: None }).unwrap(), stand)
}

async fn watch(remote: &Remote) -> (Result<(), CliError>, Vec<String>) {
    let (watcher, first) = Watcher::start(remote, ID, Duration::from_secs(60), true).await.unwrap();
    let mut out = Vec::new();
    let outcome = tokio::time::timeout(Duration::from_secs(20), watcher.plain(first, &mut out)).await;
    let outcome = outcome.expect("the watch ends with the run");
    (outcome, String::from_utf8(out).unwrap().lines().map(str::to_string).collect())
}

#[tokio::test]
async fn plain_prints_each_transition_once_across_a_reconnection() {
    let (remote, stand) = stand_in("succeeded").await;
    let (outcome, lines) = watch(&remote).await;
    assert!(outcome.is_ok(), "{:?}", outcome.err());
    assert_eq!(
        lines,
        [
            "run running",
            "step a running (attempt 1)",
            "step a succeeded (attempt 1)",
            "step b running (attempt 1)",
            "step b succeeded (attempt 1)",
            "run succeeded",
        ]
    );
    let queries = stand.queries.lock().clone();
    assert_eq!(queries.len(), 2, "{queries:?}");
    assert_eq!(queries[0], [("runs".to_string(), ID.to_string())]);
    assert!(queries[1].contains(&("after".to_string(), "2".to_string())), "resumed after seq 2: {queries:?}");
}

#[tokio::test]
async fn a_failed_run_ends_the_watch_with_exit_1() {
    let (remote, _) = stand_in("failed").await;
    let (outcome, lines) = watch(&remote).await;
    let e = outcome.unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        (exit::FAILURE, &*format!("run {ID} failed: step b failed: boom"))
    );
    assert_eq!(
        lines[lines.len() - 2..],
        ["step b failed (attempt 1): boom", "run failed: step b failed: boom"]
    );
}

#[tokio::test]
async fn a_run_that_is_not_there_is_not_found() {
    let (remote, _) = stand_in("succeeded").await;
    let e = Watcher::start(&remote, "nope", Duration::from_secs(1), true).await.err().unwrap();
    assert_eq!(e.code, exit::NOT_FOUND, "{}", e.message);
}
