//! `watch` against a stand-in for the node's `/v1/events` WebSocket, which closes the
//! first connection as a slow client and checks that the second resumes after the last seq.

use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use parking_lot::Mutex;
use serde_json::json;

use super::*;
use crate::cli::client::RemoteArgs;

/// What each connection asked for: its query and Authorization header.
type Seen = Arc<Mutex<Vec<(Vec<(String, String)>, String)>>>;

async fn events(
    State((seen, close_with)): State<(Seen, u16)>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let connection = {
        let mut seen = seen.lock();
        seen.push((query, auth));
        seen.len()
    };
    upgrade.on_upgrade(move |socket| serve(socket, connection, close_with))
}

/// The first connection gets seq 1 and 2 then a close; later ones seq 3 and 4.
async fn serve(mut socket: WebSocket, connection: usize, close_with: u16) {
    let seqs = if connection == 1 { [1, 2] } else { [3, 4] };
    for seq in seqs {
        let event = json!({"seq": seq, "time": "t", "kind": "task.succeeded", "namespace": "default", "subject": "x", "data": {}});
        if socket.send(WsMessage::Text(event.to_string().into())).await.is_err() {
            return;
        }
    }
    if connection == 1 {
        let frame = CloseFrame { code: close_with, reason: "slow_client: fell behind".into() };
        let _ = socket.send(WsMessage::Close(Some(frame))).await;
    }
    // Hold the socket until the client leaves.
    while let Some(Ok(_)) = socket.recv().await {}
}

async fn stand_in(close_with: u16) -> (Remote, Seen) {
    let seen = Seen::default();
    let app = Router::new().route("/v1/events", get(events)).with_state((seen.clone(), close_with));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let remote = Remote::new(&RemoteArgs { url, api_key: Some("mk1_test".into()) }).unwrap();
    (remote, seen)
}

#[tokio::test]
async fn watch_resumes_after_the_last_seq_when_dropped_as_a_slow_client() {
    let (remote, seen) = stand_in(crate::http::SLOW_CLIENT).await;
    let filter = Filter { kinds: vec!["task.succeeded".into(), "task.failed".into()], ..Filter::default() };
    let mut got = Vec::new();
    let watched = watch(&remote, filter, |event| {
        got.push(event["seq"].as_u64().unwrap());
        if got.len() == 3 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    tokio::time::timeout(Duration::from_secs(10), watched).await.expect("in time").expect("no error");
    assert_eq!(got, [1, 2, 3]);
    let seen = seen.lock();
    let kinds = ("kinds".to_string(), "task.succeeded,task.failed".to_string());
    assert_eq!(seen[0], (vec![kinds.clone()], "Bearer mk1_test".to_string()));
    assert_eq!(seen[1], (vec![("after".into(), "2".into()), kinds], "Bearer mk1_test".to_string()));
}

#[tokio::test]
async fn an_expired_cursor_ends_the_watch_with_failure() {
    let (remote, _) = stand_in(crate::http::CURSOR_EXPIRED).await;
    let watched = watch(&remote, Filter::default(), |_| ControlFlow::Continue(()));
    let e = tokio::time::timeout(Duration::from_secs(10), watched).await.expect("in time").unwrap_err();
    assert_eq!(e.code, exit::FAILURE);
    assert!(e.message.contains("missed"), "{}", e.message);
}

#[tokio::test]
async fn a_node_that_is_not_running_is_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let remote = Remote::new(&RemoteArgs { url, api_key: None }).unwrap();
    let e = watch(&remote, Filter::default(), |_| ControlFlow::Continue(())).await.unwrap_err();
    assert_eq!(e.code, exit::UNAVAILABLE, "{}", e.message);
}
