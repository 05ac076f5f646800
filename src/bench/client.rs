//! The load side of the HTTP benches: an in-process hyper client on keep-alive HTTP/1.1
//! connections over loopback, a bench API key, and the per-phase summary. One driver for
//! every HTTP bench, so their figures are measured the same way.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::body::{Body, Bytes};
use axum::http::{header, Method, Request};
use mark1_actors::domain::Role;
use mark1_actors::ports::Write;
use serde_json::{json, Value};
use tokio::net::TcpStream;

use super::{cpu_us, median, quantile, round3};
use crate::auth::keys::{self, KeySpec};
use crate::NodeHandle;

/// One phase's request, sent on every connection until the phase's count is reached.
#[derive(Clone)]
pub(super) struct Call {
    pub addr: SocketAddr,
    pub method: Method,
    pub path: &'static str,
    /// The `Authorization` header's value, if the server wants one.
    pub auth: Option<Arc<str>>,
    pub body: Bytes,
}

/// What one phase measured.
pub(super) struct Phase {
    pub per_sec: f64,
    /// Per request, in microseconds, in no particular order.
    pub latencies: Vec<u64>,
    /// CPU time of the whole process (client included) during the phase.
    pub cpu_us: u64,
}

/// Creates a developer API key in namespace `default` and returns its `Authorization`
/// header value.
pub(super) async fn bench_key(node: &NodeHandle) -> Result<Arc<str>, String> {
    let spec = KeySpec {
        role: Role::Developer,
        namespace: Some("default".into()),
        name: "bench".into(),
        created_by: None,
        expires_at: None,
    };
    let (key, record) = keys::generate(spec, SystemTime::now()).map_err(|e| e.to_string())?;
    node.store().write_batch(&[Write::PutApiKey(Box::new(record))]).await.map_err(|e| e.to_string())?;
    Ok(Arc::from(format!("Bearer {key}")))
}

/// Sends `total` requests over `connections` fresh keep-alive connections, each sending
/// back to back; every answer must be 200.
pub(super) async fn drive(call: &Call, connections: usize, total: usize) -> Result<Phase, String> {
    let per = total.div_ceil(connections);
    let mut senders = Vec::with_capacity(connections);
    for _ in 0..connections {
        let tcp = TcpStream::connect(call.addr).await.map_err(|e| e.to_string())?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let io = hyper_util::rt::TokioIo::new(tcp);
        let (sender, connection) =
            hyper::client::conn::http1::handshake(io).await.map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        senders.push(sender);
    }
    let (cpu, started) = (cpu_us(), Instant::now());
    let mut joins = Vec::with_capacity(connections);
    for mut sender in senders {
        let call = call.clone();
        joins.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per);
            for _ in 0..per {
                let mut request = Request::builder()
                    .method(call.method.clone())
                    .uri(call.path)
                    .header(header::HOST, "127.0.0.1")
                    .header(header::CONTENT_TYPE, "application/json");
                if let Some(auth) = &call.auth {
                    request = request.header(header::AUTHORIZATION, &**auth);
                }
                let request = request.body(Body::from(call.body.clone())).map_err(|e| e.to_string())?;
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
    let mut latencies = Vec::with_capacity(per * connections);
    for j in joins {
        latencies.extend(j.await.map_err(|e| e.to_string())??);
    }
    let per_sec = latencies.len() as f64 / started.elapsed().as_secs_f64();
    Ok(Phase { per_sec, latencies, cpu_us: cpu_us() - cpu })
}

/// Medians over rounds of one phase: `per_sec`, `p50_us`, `p99_us`, `cpu_us_per_request`.
pub(super) fn summarize(rounds: Vec<Phase>) -> Value {
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

/// `a`'s rate over `b`'s, two [`summarize`] results.
pub(super) fn rate_ratio(a: &Value, b: &Value) -> f64 {
    a["per_sec"].as_f64().unwrap_or(0.0) / b["per_sec"].as_f64().unwrap_or(1.0).max(1.0)
}
