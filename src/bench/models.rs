//! `models`: what the model gateway adds to a call, against calling the provider directly.
//!
//! A scripted model server (zero think time, echoing the last user message) listens on
//! loopback; a node (default SQLite store in a temp folder) has it as its one provider,
//! `scripted`, of kind `openai`, so the real adapter calls it over HTTP. The node's
//! namespace `default` has token and cost budgets far above anything the run spends, so
//! every call reserves and settles without being refused; usage records go to the store.
//! Nothing caches answers.
//!
//! Per round, interleaved: the same chat request sent straight to the scripted server's
//! `POST /v1/chat/completions` (baseline), then to the node's
//! `POST /openai/v1/chat/completions` with an API key (edge → router → provider actor →
//! adapter → scripted server). First on one connection, sequentially, for latency
//! (`added_*` is the gateway's quantile minus the direct one's, per round); then on
//! `connections` connections for throughput. Medians of the rounds are reported.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use axum::body::Bytes;
use axum::http::Method;
use clap::Args;
use mark1_actors::ports::store::{UsageGroup, UsageQuery};
use serde_json::{json, Value};
use tokio::net::TcpListener;

use super::client::{bench_key, drive, rate_ratio, summarize, Call, Phase};
use super::{in_temp_dir, median, node_config, quantile, report, round3};
use crate::http::Edge;
use crate::models::scripted::ScriptedServer;
use crate::{Node, NodeHandle};

/// The targets: added latency at p50 and p99, and the gateway's throughput.
const ADDED_P50_MAX_US: f64 = 100.0;
const ADDED_P99_MAX_US: f64 = 1000.0;
const GATEWAY_MIN_RPS: f64 = 10_000.0;

/// Budgets no run comes near: enforced on every call, never refusing one.
const TOKEN_BUDGET: u64 = 1 << 60;
const COST_BUDGET: f64 = 1e15;

#[derive(Args, Debug, Clone)]
pub struct Params {
    /// Requests per throughput phase and round.
    #[arg(long, default_value_t = 20_000)]
    requests: usize,
    /// Concurrent keep-alive connections in the throughput phases.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Sequential requests on one connection per latency phase and round.
    #[arg(long, default_value_t = 5_000)]
    latency_requests: usize,
    /// Interleaved rounds of direct and gateway phases.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// SQLite `synchronous` of the store the usage records go to: `full` (the default) or `normal`.
    #[arg(long, default_value = "full")]
    sync: String,
    /// Accepted for the contract (`--json`); output is always JSON.
    #[arg(long)]
    json: bool,
}

/// A short chat, the same bytes both ways: the model id is routed by the gateway and
/// served as is by the scripted server.
fn chat_body() -> Bytes {
    Bytes::from(
        json!({"model": "llama3.1", "max_tokens": 64, "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Say hello to the benchmark."}]})
        .to_string(),
    )
}

pub async fn run(p: Params) -> Result<Value, String> {
    in_temp_dir("models", |dir| async move { measure(&p, &dir).await }).await
}

async fn measure(p: &Params, dir: &std::path::Path) -> Result<Value, String> {
    let server =
        ScriptedServer::start().await.map_err(|e| format!("cannot start the scripted server: {e}"))?;
    server.script.forget_requests();
    let provider_limit = p.connections.max(256);
    let config = node_config("bench-models", dir)?
        .set("store.sync", p.sync.as_str())
        .set("models.providers.scripted.kind", "openai")
        .set("models.providers.scripted.base_url", server.openai_url())
        .set("models.providers.scripted.max_in_flight", provider_limit)
        .set("models.namespaces.default.tokens", TOKEN_BUDGET)
        .set("models.namespaces.default.cost", COST_BUDGET)
        .load()
        .map_err(|e| e.to_string())?;
    let policy = config.models.policy;
    let node = Node::builder().config(config).build().await.map_err(|e| e.to_string())?;
    let node = Arc::new(node.start().await.map_err(|e| e.to_string())?);
    let views = node.models().refresh().await.map_err(|e| e.to_string())?;
    if !views.iter().any(|v| v.info.id == "llama3.1") {
        return Err("the router did not discover the scripted server's llama3.1".into());
    }
    let auth = bench_key(&node).await?;
    let listener = TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let edge = Edge::start_on(node.clone(), listener).await.map_err(|e| e.to_string())?;

    let body = chat_body();
    let direct = Call {
        addr: server.addr,
        method: Method::POST,
        path: "/v1/chat/completions",
        auth: None,
        body: body.clone(),
    };
    let gateway = Call {
        addr: edge.local_addr(),
        method: Method::POST,
        path: "/openai/v1/chat/completions",
        auth: Some(auth),
        body: body.clone(),
    };
    let calls = [direct, gateway];
    // Requests sent per call, warm-up included.
    let mut sent = [0usize; 2];
    // Warm-up, not measured: connections (the adapter's pool too), caches, the router's
    // latency average.
    for (i, call) in calls.iter().enumerate() {
        sent[i] += drive(call, p.connections, p.requests / 10).await?.latencies.len();
        sent[i] += drive(call, 1, p.latency_requests / 10).await?.latencies.len();
    }
    let mut sequential: [Vec<Phase>; 2] = Default::default();
    let mut loaded: [Vec<Phase>; 2] = Default::default();
    for _ in 0..p.rounds {
        for (i, call) in calls.iter().enumerate() {
            let phase = drive(call, 1, p.latency_requests).await?;
            sent[i] += phase.latencies.len();
            sequential[i].push(phase);
        }
        for (i, call) in calls.iter().enumerate() {
            let phase = drive(call, p.connections, p.requests).await?;
            sent[i] += phase.latencies.len();
            loaded[i].push(phase);
        }
    }
    let [direct_seq, gateway_seq] = sequential;
    let added = added_latency(direct_seq, gateway_seq);
    let [direct, gateway] = loaded.map(summarize);

    let work = work_done(&node, &server, sent).await;
    edge.shutdown(Duration::from_secs(5)).await;
    node.shutdown(Duration::from_secs(10)).await;
    let work = work?;

    let figure = |v: &Value, key: &str| v[key].as_f64().unwrap_or(0.0);
    let gateway_rps = figure(&gateway, "per_sec");
    let (added_p50, added_p99) = (figure(&added, "added_p50_us"), figure(&added, "added_p99_us"));
    let figures = json!({
        "added_p50_us": added_p50, "added_p99_us": added_p99,
        "gateway_p50_us": added["gateway_p50_us"], "gateway_p99_us": added["gateway_p99_us"],
        "gateway_rps": gateway_rps,
        "gateway_loaded_p50_us": gateway["p50_us"], "gateway_loaded_p99_us": gateway["p99_us"],
        "gateway_cpu_us_per_request": gateway["cpu_us_per_request"],
        "added_cpu_us_per_request":
            round3(figure(&gateway, "cpu_us_per_request") - figure(&direct, "cpu_us_per_request")),
        "targets": {
            "added_p50_us": {"max": ADDED_P50_MAX_US, "met": added_p50 <= ADDED_P50_MAX_US},
            "added_p99_us": {"max": ADDED_P99_MAX_US, "met": added_p99 <= ADDED_P99_MAX_US},
            "gateway_rps": {"min": GATEWAY_MIN_RPS, "met": gateway_rps >= GATEWAY_MIN_RPS},
        },
    });
    Ok(report(
        "models",
        json!({"requests": p.requests, "connections": p.connections, "latency_requests": p.latency_requests,
               "rounds": p.rounds, "body_bytes": body.len(),
               "provider": "scripted server, openai protocol over loopback HTTP, zero think time",
               "provider_max_in_flight": provider_limit, "policy": policy,
               "auth": "api_key", "budgets": {"tokens": TOKEN_BUDGET, "cost": COST_BUDGET},
               "metering": "usage records to the store", "response_cache": false,
               "http": "HTTP/1.1 keep-alive, loopback", "store": "sqlite", "sync": p.sync,
               "runtime_workers": tokio::runtime::Handle::current().metrics().num_workers()}),
        figures,
        json!({"direct_rps": direct["per_sec"], "direct_p50_us": added["direct_p50_us"],
               "direct_p99_us": added["direct_p99_us"], "direct_loaded_p50_us": direct["p50_us"],
               "direct_loaded_p99_us": direct["p99_us"],
               "direct_cpu_us_per_request": direct["cpu_us_per_request"]}),
        json!({
            "gateway_rps_vs_direct": round3(rate_ratio(&gateway, &direct)),
            "gateway_p50_vs_direct":
                round3(figure(&added, "gateway_p50_us") / figure(&added, "direct_p50_us").max(1.0)),
        }),
        work,
    ))
}

/// Sequential latency: each round's gateway quantile minus the direct one's; medians of
/// the rounds (the quantiles themselves too, for the report).
fn added_latency(direct: Vec<Phase>, gateway: Vec<Phase>) -> Value {
    let quantiles = |mut phase: Phase| {
        phase.latencies.sort_unstable();
        (quantile(&phase.latencies, 0.5) as f64, quantile(&phase.latencies, 0.99) as f64)
    };
    let mut columns: [Vec<f64>; 6] = Default::default();
    for (d, g) in direct.into_iter().zip(gateway) {
        let ((d50, d99), (g50, g99)) = (quantiles(d), quantiles(g));
        for (column, x) in columns.iter_mut().zip([g50 - d50, g99 - d99, g50, g99, d50, d99]) {
            column.push(x);
        }
    }
    let [a50, a99, g50, g99, d50, d99] = columns.map(|mut column| median(&mut column));
    json!({"added_p50_us": a50, "added_p99_us": a99, "gateway_p50_us": g50, "gateway_p99_us": g99,
           "direct_p50_us": d50, "direct_p99_us": d99})
}

/// What was really done, checked against what was sent: every gateway call went through
/// the router (its stats), reached the scripted server, was settled against the budget
/// and recorded as usage in the store.
async fn work_done(node: &NodeHandle, server: &ScriptedServer, sent: [usize; 2]) -> Result<Value, String> {
    let [direct, gateway] = sent.map(|n| n as u64);
    let usage = usage_records(node, gateway).await?;
    let views = node.models().models().await.map_err(|e| e.to_string())?;
    let router_calls: u64 = views.iter().map(|v| v.stats.calls).sum();
    let budgets = node.models().budgets().await.map_err(|e| e.to_string())?;
    let budget =
        budgets.iter().find(|b| b.namespace == "default").ok_or("no budget for namespace default")?;
    let provider_calls = server.script.calls();
    let tree = node.tree_internals();
    let work = json!({
        "requests": direct + gateway, "direct_requests": direct, "gateway_requests": gateway,
        "router_calls": router_calls, "provider_calls": provider_calls, "usage_records": usage,
        "budget_tokens_settled": budget.tokens_used, "budget_tokens_reserved": budget.tokens_reserved,
        "rows_written": tree.store_writer_stats.rows.load(Relaxed),
        "commits": tree.store_writer_stats.commits.load(Relaxed),
    });
    let consistent = router_calls == gateway
        && provider_calls == direct + gateway
        && usage == gateway
        && budget.tokens_reserved == 0
        && budget.tokens_used > 0;
    if !consistent {
        return Err(format!("the work done does not add up to the requests answered: {work}"));
    }
    Ok(work)
}

/// Usage records of the run in the store, once all `expected` have been written (they
/// are background writes), or what is there after ten seconds.
async fn usage_records(node: &NodeHandle, expected: u64) -> Result<u64, String> {
    let query = UsageQuery {
        namespace: Some("default".into()),
        since: Some(UNIX_EPOCH),
        until: None,
        group_by: UsageGroup::Namespace,
    };
    let mut calls = 0;
    for _ in 0..1000 {
        let rows = node.store().usage_report(&query).await.map_err(|e| e.to_string())?;
        calls = rows.iter().map(|row| row.calls).sum();
        if calls >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(calls)
}
