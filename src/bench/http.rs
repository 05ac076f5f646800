//! `http`: tasks through the HTTP edge, authenticated with an API key, over loopback.
//!
//! A node (default SQLite store in a temp folder, a no-op native agent) serves its edge
//! on 127.0.0.1; `connections` keep-alive HTTP/1.1 connections from an in-process hyper
//! client each send requests back to back. Per round, interleaved: the authenticated
//! no-op `GET /v1/whoami` (baseline), `POST /v1/tasks?wait=5s` with `durable: false`,
//! and the same with `durable: true` (committed before it is accepted). Medians of the
//! rounds are reported.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::body::{Body, Bytes};
use axum::http::{header, Method, Request};
use clap::Args;
use mark1_actors::domain::Role;
use mark1_actors::ports::Write;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};

use super::dispatch::wait_for_agent;
use super::{cpu_us, median, quantile, report, round3, Noop};
use crate::auth::keys::{self, KeySpec};
use crate::config::ConfigLoader;
use crate::http::Edge;
use crate::{AgentSpec, Node};

#[derive(Args, Debug, Clone)]
pub struct Params {
    /// Requests per phase and round.
    #[arg(long, default_value_t = 50_000)]
    requests: usize,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Agent instances in the pool.
    #[arg(long, default_value_t = 8)]
    instances: usize,
    /// Interleaved rounds of the three phases.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// SQLite `synchronous` for the durable phase: `full` (the default) or `normal`.
    #[arg(long, default_value = "full")]
    sync: String,
    /// Accepted for the contract (`--json`); output is always JSON.
    #[arg(long)]
    json: bool,
}

/// One phase's request, sent on every connection until the phase's count is reached.
#[derive(Clone)]
struct Call {
    method: Method,
    path: &'static str,
    body: Bytes,
}

struct Phase {
    per_sec: f64,
    latencies: Vec<u64>,
    cpu_us: u64,
}

pub async fn run(p: Params) -> Result<Value, String> {
    let dir = std::env::temp_dir().join(format!("mark1-bench-http-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let outcome = measure(&p, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

async fn measure(p: &Params, dir: &std::path::Path) -> Result<Value, String> {
    let p = p.clone();
    let config = ConfigLoader::new()
        .no_file()
        .env(Vec::<(String, String)>::new())
        .set("node.name", "bench-http")
        .set("node.data_dir", dir.to_str().ok_or("temp dir is not UTF-8")?)
        .set("store.sync", p.sync.as_str())
        .set("limits.max_in_flight", 1_000_000)
        .load()
        .map_err(|e| e.to_string())?;
    let (flush_delay, batch_max) = (config.store.flush_delay, config.store.batch_max);
    let node = Node::builder()
        .config(config)
        .agent(AgentSpec::native("noop").pool_size(p.instances, p.instances).queue_limit(1 << 20), Noop)
        .build()
        .await
        .map_err(|e| e.to_string())?;
    let node = Arc::new(node.start().await.map_err(|e| e.to_string())?);
    wait_for_agent(&node).await?;
    let spec = KeySpec {
        role: Role::Developer,
        namespace: Some("default".into()),
        name: "bench".into(),
        created_by: None,
        expires_at: None,
    };
    let (key, record) = keys::generate(spec, SystemTime::now()).map_err(|e| e.to_string())?;
    node.store().write_batch(&[Write::PutApiKey(Box::new(record))]).await.map_err(|e| e.to_string())?;
    let listener = TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let edge = Edge::start_on(node.clone(), listener).await.map_err(|e| e.to_string())?;
    let addr = edge.local_addr();
    let auth: Arc<str> = Arc::from(format!("Bearer {key}"));

    let task = |durable: bool| Call {
        method: Method::POST,
        path: "/v1/tasks?wait=5s",
        body: Bytes::from(json!({"agent": "noop", "input": {"n": 1}, "durable": durable}).to_string()),
    };
    let whoami = Call { method: Method::GET, path: "/v1/whoami", body: Bytes::new() };
    let phases = [whoami, task(false), task(true)];
    // Requests sent per phase (each connection sends a whole share, so a little more than asked).
    let mut sent = [0usize; 3];
    // Warm-up, not measured: connections, caches, the pool.
    for (i, call) in phases.iter().enumerate() {
        sent[i] += drive(addr, &auth, call, &p, p.requests / 10).await?.latencies.len();
    }
    let mut results: [Vec<Phase>; 3] = Default::default();
    for _ in 0..p.rounds {
        for (i, call) in phases.iter().enumerate() {
            let phase = drive(addr, &auth, call, &p, p.requests).await?;
            sent[i] += phase.latencies.len();
            results[i].push(phase);
        }
    }
    let [baseline, fast, durable] = results.map(summarize);

    let tree = node.tree_internals();
    let work = json!({
        "requests": sent.iter().sum::<usize>(),
        "tasks_dispatched": tree.metrics.finished_total(),
        "rows_written": tree.store_writer_stats.rows.load(Relaxed),
        "commits": tree.store_writer_stats.commits.load(Relaxed),
    });
    edge.shutdown(Duration::from_secs(5)).await;
    node.shutdown(Duration::from_secs(10)).await;
    let expected = (sent[1] + sent[2]) as u64;
    if work["tasks_dispatched"].as_u64() != Some(expected) {
        return Err(format!("{} tasks finished, expected {expected}", work["tasks_dispatched"]));
    }
    Ok(report(
        "http",
        json!({"requests": p.requests, "connections": p.connections, "instances": p.instances, "rounds": p.rounds,
               "auth": "api_key", "http": "HTTP/1.1 keep-alive, loopback", "store": "sqlite", "sync": p.sync,
               "flush_delay_ms": flush_delay.as_secs_f64() * 1e3, "batch_max": batch_max,
               "runtime_workers": tokio::runtime::Handle::current().metrics().num_workers()}),
        json!({
            "tasks_per_sec": fast["per_sec"], "p50_us": fast["p50_us"], "p99_us": fast["p99_us"],
            "cpu_us_per_task": fast["cpu_us_per_request"],
            "durable_tasks_per_sec": durable["per_sec"], "durable_p50_us": durable["p50_us"],
            "durable_p99_us": durable["p99_us"], "durable_cpu_us_per_task": durable["cpu_us_per_request"],
        }),
        json!({"baseline_per_sec": baseline["per_sec"], "p50_us": baseline["p50_us"], "p99_us": baseline["p99_us"],
               "cpu_us_per_request": baseline["cpu_us_per_request"]}),
        json!({
            "tasks_per_sec_vs_baseline": round3(ratio(&fast, &baseline)),
            "durable_tasks_per_sec_vs_baseline": round3(ratio(&durable, &baseline)),
        }),
        work,
    ))
}

fn ratio(a: &Value, b: &Value) -> f64 {
    a["per_sec"].as_f64().unwrap_or(0.0) / b["per_sec"].as_f64().unwrap_or(1.0).max(1.0)
}

fn summarize(rounds: Vec<Phase>) -> Value {
    let n = rounds.first().map_or(1, |r| r.latencies.len().max(1)) as f64;
    let (mut rate, mut p50, mut p99, mut cpu) = (vec![], vec![], vec![], vec![]);
    for mut r in rounds {
        r.latencies.sort_unstable();
        rate.push(r.per_sec);
        p50.push(quantile(&r.latencies, 0.5) as f64);
        p99.push(quantile(&r.latencies, 0.99) as f64);
        cpu.push(r.cpu_us as f64 / n);
    }
    json!({"per_sec": median(&mut rate).round(), "p50_us": median(&mut p50), "p99_us": median(&mut p99),
           "cpu_us_per_request": round3(median(&mut cpu))})
}

/// Sends `total` requests over `p.connections` fresh keep-alive connections; every
/// answer must be 200.
async fn drive(
    addr: std::net::SocketAddr,
    auth: &Arc<str>,
    call: &Call,
    p: &Params,
    total: usize,
) -> Result<Phase, String> {
    let per = total.div_ceil(p.connections);
    let mut senders = Vec::with_capacity(p.connections);
    for _ in 0..p.connections {
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let io = hyper_util::rt::TokioIo::new(tcp);
        let (sender, connection) =
            hyper::client::conn::http1::handshake(io).await.map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        senders.push(sender);
    }
    let (cpu, started) = (cpu_us(), Instant::now());
    let mut joins = Vec::with_capacity(p.connections);
    for mut sender in senders {
        let (auth, call) = (auth.clone(), call.clone());
        joins.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per);
            for _ in 0..per {
                let request = Request::builder()
                    .method(call.method.clone())
                    .uri(call.path)
                    .header(header::HOST, "127.0.0.1")
                    .header(header::AUTHORIZATION, &*auth)
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(call.body.clone()))
                    .map_err(|e| e.to_string())?;
                let t = Instant::now();
                let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
                let status = response.status();
                let body = axum::body::to_bytes(Body::new(response.into_body()), 1 << 20)
                    .await
                    .map_err(|e| e.to_string())?;
                if status != 200 {
                    return Err(format!(
                        "{} {}: {status} {}",
                        call.method,
                        call.path,
                        String::from_utf8_lossy(&body)
                    ));
                }
                latencies.push(t.elapsed().as_micros() as u64);
            }
            Ok::<_, String>(latencies)
        }));
    }
    let mut latencies = Vec::with_capacity(per * p.connections);
    for j in joins {
        latencies.extend(j.await.map_err(|e| e.to_string())??);
    }
    let per_sec = latencies.len() as f64 / started.elapsed().as_secs_f64();
    Ok(Phase { per_sec, latencies, cpu_us: cpu_us() - cpu })
}
