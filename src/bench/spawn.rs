//! `spawn`: N idle agent instances under their pool supervisors, against N bare ractor
//! actors linked under a bare parent. Each side runs in its own child process (this
//! binary, `--role`), so one heap does not hide the other; rounds alternate the two.

use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use mark1_actors::ports::MemoryStore;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::{json, Value};

use super::{median, report, round3, rss_bytes};
use crate::{Agent, AgentError, AgentSpec, Node, TaskContext};

#[derive(Args, Debug, Clone)]
pub struct Params {
    /// Agent instances (and bare actors) to spawn.
    #[arg(long, default_value_t = 200_000)]
    n: usize,
    /// Instances per pool (one agent definition per pool).
    #[arg(long, default_value_t = 1_000)]
    per_pool: usize,
    /// Alternating rounds of subject and baseline.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Internal: run one side in this process and print its figures.
    #[arg(long, value_enum, hide = true)]
    role: Option<Role>,
    /// Accepted for the contract (`--json`); output is always JSON.
    #[arg(long)]
    json: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Subject,
    Baseline,
}

pub async fn run(p: Params) -> Result<Value, String> {
    match p.role {
        Some(Role::Subject) => return subject(&p).await,
        Some(Role::Baseline) => return baseline(p.n).await,
        None => {}
    }
    let (mut bytes, mut rate, mut base_bytes, mut base_rate) = (vec![], vec![], vec![], vec![]);
    for _ in 0..p.rounds {
        let b = child(&p, "baseline")?;
        base_bytes.push(b["bytes_per_actor"].as_f64().unwrap_or(0.0));
        base_rate.push(b["spawns_per_sec"].as_f64().unwrap_or(0.0));
        let s = child(&p, "subject")?;
        bytes.push(s["bytes_per_agent"].as_f64().unwrap_or(0.0));
        rate.push(s["spawns_per_sec"].as_f64().unwrap_or(0.0));
    }
    let (bytes, rate) = (median(&mut bytes), median(&mut rate));
    let (base_bytes, base_rate) = (median(&mut base_bytes), median(&mut base_rate));
    Ok(report(
        "spawn",
        json!({"n": p.n, "per_pool": p.per_pool, "pools": p.n.div_ceil(p.per_pool), "rounds": p.rounds, "store": "memory"}),
        json!({"bytes_per_agent": bytes.round(), "spawns_per_sec": rate.round()}),
        json!({"bytes_per_actor": base_bytes.round(), "spawns_per_sec": base_rate.round()}),
        json!({"bytes": round3(bytes / base_bytes), "spawns_per_sec": round3(rate / base_rate)}),
        json!({"agents_spawned_per_round": p.n, "actors_spawned_per_round": p.n, "rounds": p.rounds}),
    ))
}

/// Runs one side in a fresh process of this binary and parses its JSON.
fn child(p: &Params, role: &str) -> Result<Value, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = std::process::Command::new(exe)
        .args([
            "bench",
            "spawn",
            "--role",
            role,
            "--n",
            &p.n.to_string(),
            "--per-pool",
            &p.per_pool.to_string(),
        ])
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run the {role} process: {e}"))?;
    if !out.status.success() {
        return Err(format!("the {role} process failed with {}", out.status));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("the {role} process printed no JSON: {e}"))
}

struct Idle;

impl Agent for Idle {
    async fn handle(&self, _: TaskContext, input: Value) -> Result<Value, AgentError> {
        Ok(input)
    }
}

async fn subject(p: &Params) -> Result<Value, String> {
    let node = Node::builder()
        .store(std::sync::Arc::new(MemoryStore::new()))
        .build()
        .await
        .map_err(|e| e.to_string())?;
    let handle = node.start().await.map_err(|e| e.to_string())?;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let before = rss_bytes();
    let started = Instant::now();
    let pools = p.n.div_ceil(p.per_pool);
    for i in 0..pools {
        let size = p.per_pool.min(p.n - i * p.per_pool);
        let spec = AgentSpec::native(format!("idle-{i}")).pool_size(size, size);
        handle.register_agent(spec, Idle).await.map_err(|e| e.to_string())?;
    }
    let elapsed = started.elapsed();
    let after = rss_bytes();
    // After the RSS reading: the snapshot itself allocates a tree as large as the node's.
    let tree_nodes = handle.tree_internals().snapshot().count();
    let spawned = handle.agents().await.map_err(|e| e.to_string())?.iter().map(|a| a.workers).sum::<usize>();
    if spawned != p.n {
        return Err(format!("expected {} instances, found {spawned}", p.n));
    }
    handle.shutdown(Duration::from_secs(60)).await;
    Ok(json!({
        "bytes_per_agent": (after.saturating_sub(before)) as f64 / p.n as f64,
        "spawns_per_sec": p.n as f64 / elapsed.as_secs_f64(),
        "tree_nodes": tree_nodes,
    }))
}

/// A bare actor that does nothing.
struct Bare;

impl Actor for Bare {
    type Msg = ();
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
}

/// A bare parent that ignores its children's exits (ractor would otherwise stop it).
pub(super) struct BareParent;

impl Actor for BareParent {
    type Msg = ();
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _: ActorRef<()>,
        _: ractor::SupervisionEvent,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
}

async fn baseline(n: usize) -> Result<Value, String> {
    let (parent, _) = Actor::spawn(None, BareParent, ()).await.map_err(|e| e.to_string())?;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let before = rss_bytes();
    let started = Instant::now();
    let mut children = Vec::with_capacity(n);
    for _ in 0..n {
        let (child, _) =
            Actor::spawn_linked(None, Bare, (), parent.get_cell()).await.map_err(|e| e.to_string())?;
        children.push(child);
    }
    let elapsed = started.elapsed();
    let after = rss_bytes();
    parent.stop(None);
    Ok(json!({
        "bytes_per_actor": (after.saturating_sub(before)) as f64 / n as f64,
        "spawns_per_sec": n as f64 / elapsed.as_secs_f64(),
    }))
}
