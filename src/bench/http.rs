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
use std::time::Duration;

use axum::body::Bytes;
use axum::http::Method;
use clap::Args;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use super::client::{bench_key, drive, rate_ratio, summarize, Call, Phase};
use super::dispatch::wait_for_agent;
use super::{in_temp_dir, node_config, report, round3, Noop};
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

pub async fn run(p: Params) -> Result<Value, String> {
    in_temp_dir("http", |dir| async move { measure(&p, &dir).await }).await
}

async fn measure(p: &Params, dir: &std::path::Path) -> Result<Value, String> {
    let p = p.clone();
    let config = node_config("bench-http", dir)?
        .set("store.sync", p.sync.as_str())
        .load()
        .map_err(|e| e.to_string())?;
    let (flush_delay, lazy_delay, batch_max) =
        (config.store.flush_delay, config.store.lazy_delay, config.store.batch_max);
    let node = Node::builder()
        .config(config)
        .agent(AgentSpec::native("noop").pool_size(p.instances, p.instances).queue_limit(1 << 20), Noop)
        .build()
        .await
        .map_err(|e| e.to_string())?;
    let node = Arc::new(node.start().await.map_err(|e| e.to_string())?);
    wait_for_agent(&node).await?;
    let auth = Some(bench_key(&node).await?);
    let listener = TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let edge = Edge::start_on(node.clone(), listener).await.map_err(|e| e.to_string())?;
    let addr = edge.local_addr();

    let task = |durable: bool| Call {
        addr,
        method: Method::POST,
        path: "/v1/tasks?wait=5s",
        auth: auth.clone(),
        body: Bytes::from(json!({"agent": "noop", "input": {"n": 1}, "durable": durable}).to_string()),
    };
    let whoami =
        Call { addr, method: Method::GET, path: "/v1/whoami", auth: auth.clone(), body: Bytes::new() };
    let phases = [whoami, task(false), task(true)];
    // Requests sent per phase (each connection sends a whole share, so a little more than asked).
    let mut sent = [0usize; 3];
    // Warm-up, not measured: connections, caches, the pool.
    for (i, call) in phases.iter().enumerate() {
        sent[i] += drive(call, p.connections, p.requests / 10).await?.latencies.len();
    }
    let mut results: [Vec<Phase>; 3] = Default::default();
    for _ in 0..p.rounds {
        for (i, call) in phases.iter().enumerate() {
            let phase = drive(call, p.connections, p.requests).await?;
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
               "flush_delay_ms": flush_delay.as_secs_f64() * 1e3,
               "lazy_delay_ms": lazy_delay.as_secs_f64() * 1e3, "batch_max": batch_max,
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
            "tasks_per_sec_vs_baseline": round3(rate_ratio(&fast, &baseline)),
            "durable_tasks_per_sec_vs_baseline": round3(rate_ratio(&durable, &baseline)),
        }),
        work,
    ))
}
