//! `/v1/events` (listing and WebSocket) and `/v1/actors/watch`, with real clients.

use std::time::{Duration, SystemTime};

use futures::StreamExt;
use mark1_actors::domain::EventKind;
use mark1_actors::ports::EventSink;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{connect_async, MaybeTlsStream, WebSocketStream};

use super::support::{json_of, serve, serve_in, serve_with, token, Served};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens a WebSocket on `path_and_query` with a bearer token (or none).
async fn open(s: &Served, path_and_query: &str, bearer: Option<&str>) -> Result<Ws, u16> {
    let mut request = format!("ws://{}{path_and_query}", s.edge.local_addr()).into_client_request().unwrap();
    if let Some(token) = bearer {
        request.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    match connect_async(request).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(e) => panic!("websocket: {e}"),
    }
}

/// The next text frame as JSON; panics on a close or after 10 s.
async fn frame(ws: &mut Ws) -> Value {
    loop {
        let message =
            tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("a frame in time");
        match message.expect("the stream is open").expect("a frame") {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Close(close) => panic!("closed: {close:?}"),
            _ => {}
        }
    }
}

/// Reads up to the close frame: its code and reason, and how many text frames came first.
async fn close_of(ws: &mut Ws) -> (u16, String, usize) {
    let mut texts = 0;
    loop {
        let message =
            tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("a close in time");
        match message.expect("a close frame before the end").expect("a frame") {
            Message::Text(_) => texts += 1,
            Message::Close(Some(close)) => return (close.code.into(), close.reason.to_string(), texts),
            Message::Close(None) => panic!("a close frame without a code"),
            _ => {}
        }
    }
}

/// Runs a task to the end as `bearer`; returns its id.
async fn run(s: &Served, bearer: &str, agent: &str, input: Value) -> String {
    let body = json!({"agent": agent, "input": input});
    let response =
        s.http.post(s.url("/v1/tasks?wait=5s")).bearer_auth(bearer).json(&body).send().await.unwrap();
    let (status, task) = json_of(response).await;
    assert_eq!((status, &task["state"]), (200, &json!("succeeded")), "{task}");
    task["id"].as_str().unwrap().to_string()
}

async fn list(s: &Served, bearer: &str, query: &str) -> (u16, Value) {
    json_of(s.http.get(s.url(&format!("/v1/events?{query}"))).bearer_auth(bearer).send().await.unwrap()).await
}

fn seqs(events: &[Value]) -> Vec<u64> {
    events.iter().map(|e| e["seq"].as_u64().unwrap()).collect()
}

fn increasing(seqs: &[u64]) -> bool {
    seqs.windows(2).all(|w| w[0] < w[1])
}

#[tokio::test]
async fn listing_filters_pages_and_confines_callers() {
    let s = serve().await;
    let (dev_a, dev_b) = (token("developer", Some("team-a")), token("developer", Some("team-b")));
    let echo = run(&s, &dev_a, "echo", json!(1)).await;
    let slept = run(&s, &dev_a, "sleeper", json!({"ms": 1})).await;
    run(&s, &dev_b, "echo", json!(2)).await;

    let (status, page) = list(&s, &dev_a, "kinds=task.succeeded,task.queued&agents=echo").await;
    assert_eq!(status, 200, "{page}");
    let events = page["events"].as_array().unwrap();
    let shown: Vec<(&str, &str)> =
        events.iter().map(|e| (e["kind"].as_str().unwrap(), e["subject"].as_str().unwrap())).collect();
    assert_eq!(shown, vec![("task.queued", echo.as_str()), ("task.succeeded", echo.as_str())], "{page}");
    assert_eq!(events[1]["data"]["agent"], "echo");
    assert_eq!(page["next"], Value::Null);

    let (_, page) = list(&s, &dev_a, &format!("tasks={slept}")).await;
    let kinds: Vec<&str> =
        page["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, vec!["task.queued", "task.running", "task.succeeded"]);

    // Team A sees only its namespace; paging by `next` walks it all in seq order.
    let (mut after, mut seen) = (0, Vec::new());
    loop {
        let (status, page) = list(&s, &dev_a, &format!("after={after}&limit=2")).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(page["events"].as_array().unwrap().iter().cloned());
        match page["next"].as_u64() {
            Some(next) => after = next,
            None => break,
        }
    }
    assert!(seen.iter().all(|e| e["namespace"] == "team-a") && increasing(&seqs(&seen)), "{seen:?}");
    assert_eq!(seen.len(), 3 + 3, "two tasks: {seen:?}");

    let (status, problem) = list(&s, &dev_a, "kinds=task.succeeded,task.exploded").await;
    assert_eq!(status, 400);
    assert!(problem["detail"].as_str().unwrap().contains("task.exploded"), "{problem}");
    let (status, _) = list(&s, &dev_a, "access_token=x").await;
    assert_eq!(status, 400, "access_token only on upgrades");

    // Role agent: only tasks it submitted, named.
    let agent = token("agent", Some("team-a"));
    let own = run(&s, &agent, "echo", json!(3)).await;
    let (status, _) = list(&s, &agent, "").await;
    assert_eq!(status, 403);
    let (status, _) = list(&s, &agent, &format!("tasks={echo}")).await;
    assert_eq!(status, 404, "another submitter's task");
    let (status, page) = list(&s, &agent, &format!("tasks={own}")).await;
    assert_eq!((status, page["events"].as_array().unwrap().len()), (200, 3), "{page}");

    // Viewers do not see progress data (the agent's own payload).
    let bus = &s.node.tree_internals().events;
    bus.emit(EventKind::TaskProgress, "team-a".into(), echo.as_str().into(), json!({"secret": 1}).into());
    let (_, page) = list(&s, &token("viewer", Some("team-a")), "kinds=task.progress").await;
    assert_eq!(page["events"][0]["data"], Value::Null, "{page}");
    let (_, page) = list(&s, &dev_a, "kinds=task.progress").await;
    assert_eq!(page["events"][0]["data"], json!({"secret": 1}), "{page}");
    s.stop().await;
}

#[tokio::test]
async fn websocket_streams_filtered_events_in_order_and_isolates_namespaces() {
    let s = serve().await;
    let (dev_a, dev_b) = (token("developer", Some("team-a")), token("developer", Some("team-b")));
    assert_eq!(open(&s, "/v1/events", None).await.err(), Some(401));
    assert_eq!(open(&s, "/v1/events?kinds=nope", Some(&dev_a)).await.err(), Some(400));
    let mut a =
        open(&s, "/v1/events?kinds=task.queued,task.succeeded&agents=echo", Some(&dev_a)).await.unwrap();
    // A browser's way: the credential in the query of the upgrade.
    let mut b = open(&s, &format!("/v1/events?access_token={dev_b}"), None).await.unwrap();

    let first = run(&s, &dev_a, "echo", json!(1)).await;
    run(&s, &dev_a, "sleeper", json!({"ms": 1})).await;
    let last = run(&s, &dev_a, "echo", json!(2)).await;
    let theirs = run(&s, &dev_b, "echo", json!(3)).await;

    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(frame(&mut a).await);
    }
    let shown: Vec<(&str, &str)> =
        got.iter().map(|e| (e["kind"].as_str().unwrap(), e["subject"].as_str().unwrap())).collect();
    let expected = [
        ("task.queued", &first),
        ("task.succeeded", &first),
        ("task.queued", &last),
        ("task.succeeded", &last),
    ];
    assert_eq!(shown, expected.map(|(k, t)| (k, t.as_str())), "no sleeper events, nothing of team-b");
    assert!(increasing(&seqs(&got)));
    // The fields, whatever their order (serde_json keeps insertion order once any crate
    // in the build enables `preserve_order`, as ollama-rs's schemars does).
    let mut keys: Vec<_> = got[0].as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["data", "kind", "namespace", "seq", "subject", "time"]);

    // Team B's stream holds only team B's task, though team A's ran first.
    let mut theirs_seen = Vec::new();
    while theirs_seen.len() < 3 {
        let event = frame(&mut b).await;
        assert_eq!((&event["namespace"], &event["subject"]), (&json!("team-b"), &json!(theirs)), "{event}");
        theirs_seen.push(event);
    }

    // Shutdown closes every stream with 1001.
    let Served { node, edge, .. } = s;
    edge.shutdown(Duration::from_secs(5)).await;
    for ws in [&mut a, &mut b] {
        assert_eq!(close_of(ws).await.0, 1001);
    }
    assert!(node.shutdown(Duration::from_secs(10)).await.stopped_cleanly);
}

#[tokio::test]
async fn resume_after_a_restart_comes_from_the_store_until_retention_prunes_it() {
    let s = serve().await;
    let dev = token("developer", Some("team-a"));
    let tasks = [run(&s, &dev, "echo", json!(1)).await, run(&s, &dev, "echo", json!(2)).await];
    let (_, page) = list(&s, &dev, &format!("tasks={}", tasks[0])).await;
    let cursor = page["events"][0]["seq"].as_u64().unwrap();
    let s = serve_in(s.stop_keeping_data().await, |l| l).await;

    // The ring of the new node holds none of it: stored events, then live ones.
    let mut ws = open(&s, &format!("/v1/events?after={cursor}"), Some(&dev)).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(frame(&mut ws).await);
    }
    let shown: Vec<(&str, &str)> =
        got.iter().map(|e| (e["kind"].as_str().unwrap(), e["subject"].as_str().unwrap())).collect();
    let (t0, t1) = (tasks[0].as_str(), tasks[1].as_str());
    let stored = [
        ("task.running", t0),
        ("task.succeeded", t0),
        ("task.queued", t1),
        ("task.running", t1),
        ("task.succeeded", t1),
    ];
    assert_eq!(shown, stored);
    let live = run(&s, &dev, "echo", json!(3)).await;
    let next = frame(&mut ws).await;
    assert_eq!((&next["kind"], &next["subject"]), (&json!("task.queued"), &json!(live)));
    got.push(next);
    assert!(increasing(&seqs(&got)) && seqs(&got)[0] > cursor);

    // Retention prunes what the store kept: the cursor is now older than anything kept.
    let cutoff = SystemTime::now() + Duration::from_secs(1);
    assert!(s.node.store().prune(cutoff, 100_000).await.unwrap() > 0);
    let mut expired = open(&s, &format!("/v1/events?after={cursor}"), Some(&dev)).await.unwrap();
    let (code, reason, texts) = close_of(&mut expired).await;
    assert_eq!((code, texts), (4001, 0));
    assert!(reason.starts_with("cursor_expired"), "{reason}");
    let (status, problem) = list(&s, &dev, &format!("after={cursor}")).await;
    assert_eq!((status, &problem["type"]), (410, &json!("urn:mark1:cursor_expired")), "{problem}");
    let (status, _) = list(&s, &dev, "after=0").await;
    assert_eq!(status, 200, "0 lists what is kept");
    s.stop().await;
}

#[tokio::test]
async fn a_client_that_never_reads_is_dropped_as_slow() {
    let s = serve_with(|l| l.set("server.ws_buffer", 4)).await;
    let admin = token("admin", None);
    let mut ws = open(&s, "/v1/events?kinds=task.progress", Some(&admin)).await.unwrap();
    // Large events fill the socket's buffers quickly; then the server's queue.
    let blob = "x".repeat(64 * 1024);
    let bus = &s.node.tree_internals().events;
    let sent = 400;
    for i in 0..sent {
        bus.emit(
            EventKind::TaskProgress,
            "team-a".into(),
            format!("t{i}").into(),
            json!({"blob": blob}).into(),
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (code, reason, texts) = close_of(&mut ws).await;
    assert_eq!((code, reason.as_str()), (4008, "slow_client"));
    assert!(texts < sent, "dropped before the end: {texts}");
    s.stop().await;
}

#[tokio::test]
async fn actors_watch_pushes_the_tree_periodically() {
    let s = serve().await;
    let viewer = token("viewer", Some("team-a"));
    let plain = s.http.get(s.url("/v1/actors/watch")).bearer_auth(&viewer).send().await.unwrap();
    assert_eq!(json_of(plain).await.0, 400, "WebSocket only");
    assert_eq!(open(&s, "/v1/actors/watch?interval=100ms", Some(&viewer)).await.err(), Some(400));
    let mut ws = open(&s, "/v1/actors/watch?interval=200ms", Some(&viewer)).await.unwrap();
    for _ in 0..2 {
        let tree = frame(&mut ws).await;
        assert_eq!(tree["name"], json!(s.node.name()), "{tree}");
        assert!(!tree["children"].as_array().unwrap().is_empty());
    }
    s.stop().await;
}

#[tokio::test]
async fn a_websocket_filtered_on_a_run_sees_its_events_in_order() {
    let s = serve().await;
    let dev = token("developer", Some("team-a"));
    let definition = json!({"name": "pair", "steps": [
        {"id": "nap", "agent": "sleeper", "input": {"ms": 300}},
        {"id": "echo", "agent": "echo", "depends_on": ["nap"]},
    ]});
    let response =
        s.http.post(s.url("/v1/workflows")).bearer_auth(&dev).json(&definition).send().await.unwrap();
    assert_eq!(json_of(response).await.0, 201);
    let start = |n: u32| {
        s.http
            .post(s.url("/v1/runs"))
            .bearer_auth(&dev)
            .json(&json!({"workflow": "pair", "input": {"n": n}}))
            .send()
    };
    let (_, other) = json_of(start(0).await.unwrap()).await;
    let (status, run) = json_of(start(1).await.unwrap()).await;
    assert_eq!(status, 201, "{run}");
    let id = run["id"].as_str().unwrap();

    // From the start of what is kept: the run's stored events, then live ones.
    let mut ws = open(&s, &format!("/v1/events?runs={id}&after=0"), Some(&dev)).await.unwrap();
    let mut got = Vec::new();
    loop {
        let event = frame(&mut ws).await;
        assert_eq!(event["subject"], json!(id), "only the run named: {event}");
        let kind = event["kind"].as_str().unwrap().to_string();
        got.push(event);
        if kind.starts_with("run.") && kind != "run.started" {
            break;
        }
    }
    let kinds: Vec<&str> = got.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["run.started", "step.running", "step.succeeded", "step.running", "step.succeeded", "run.succeeded"],
        "{got:?}"
    );
    assert!(increasing(&seqs(&got)));
    assert_eq!(got[1]["data"]["step"], "nap", "{got:?}");
    assert_ne!(other["id"], run["id"]);
    s.stop().await;
}
