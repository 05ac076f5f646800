//! `dispatch`: no-op native agents on the in-memory store, many concurrent submitters.
//!
//! Subject: each submitter runs `submit → wait` through the whole runtime (records,
//! selection, pool routing, events, metrics, store writes). Baseline: the same number
//! of concurrent request/reply calls straight to one bare ractor actor. Rounds of the
//! two are interleaved; medians are reported. Then an open-loop phase offers a steady
//! fraction of the measured peak and reports latency from each intended send time.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use mark1_actors::node::NodeSettings;
use mark1_actors::ports::MemoryStore;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde_json::{json, Value};

use super::{cpu_us, median, paced, quantile, report, round3, Noop, PACER_TICK};
use crate::{AgentSpec, Node, NodeHandle, TaskRequest, TaskState};

#[derive(Args, Debug, Clone)]
pub struct Params {
    /// Tasks per round.
    #[arg(long, default_value_t = 200_000)]
    tasks: usize,
    /// Concurrent submitters.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Agent instances in the pool.
    #[arg(long, default_value_t = 64)]
    instances: usize,
    /// Interleaved rounds of subject and baseline.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Commit each task before accepting it (in-memory store: measures the group-commit path).
    #[arg(long)]
    durable: bool,
    /// Open-loop rate in tasks/s; default: `open_loop_fraction` of the measured peak.
    #[arg(long)]
    rate: Option<f64>,
    /// Fraction of the peak offered in the open-loop phase.
    #[arg(long, default_value_t = 0.5)]
    open_loop_fraction: f64,
    /// Duration of the open-loop phase, in seconds.
    #[arg(long, default_value_t = 3.0)]
    open_loop_secs: f64,
    /// Accepted for the contract (`--json`); output is always JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(p: Params) -> Result<Value, String> {
    let settings = NodeSettings { max_in_flight: 1_000_000, ..NodeSettings::default() };
    let node = Node::builder()
        .store(Arc::new(MemoryStore::new()))
        .settings(settings)
        .agent(
            AgentSpec::native("noop")
                .capability("bench.noop")
                .pool_size(p.instances, p.instances)
                .queue_limit(1 << 20),
            Noop,
        )
        .build()
        .await
        .map_err(|e| e.to_string())?;
    let handle = Arc::new(node.start().await.map_err(|e| e.to_string())?);
    wait_for_agent(&handle).await?;
    let baseline_actor = Actor::spawn(None, Echo, ()).await.map_err(|e| e.to_string())?.0;

    // The one actor every task passes through twice: its busy share of a round's wall
    // time says how close the node is to what a single orchestrator can take.
    let orchestrator_name = mark1_actors::node::actor_name(&handle.tree_internals().name, "orchestrator");
    let orchestrator =
        handle.tree_internals().stats.find(&orchestrator_name).ok_or("no orchestrator stats")?;

    // Warm-up, not measured.
    closed_loop(&handle, &p, p.tasks / 10).await?;
    let (mut tps, mut p50, mut p99, mut cpu, mut busy) = (vec![], vec![], vec![], vec![], vec![]);
    let (mut calls, mut base_cpu) = (vec![], vec![]);
    for _ in 0..p.rounds {
        let (cpu_before, busy_before, started) = (cpu_us(), orchestrator.busy(), Instant::now());
        let (rate, mut lat) = closed_loop(&handle, &p, p.tasks).await?;
        cpu.push((cpu_us() - cpu_before) as f64 / lat.len() as f64);
        busy.push((orchestrator.busy() - busy_before).as_secs_f64() / started.elapsed().as_secs_f64());
        lat.sort_unstable();
        tps.push(rate);
        p50.push(quantile(&lat, 0.5) as f64);
        p99.push(quantile(&lat, 0.99) as f64);
        let cpu_before = cpu_us();
        let (rate, done) = bare_calls(&baseline_actor, p.concurrency, p.tasks).await;
        base_cpu.push((cpu_us() - cpu_before) as f64 / done as f64);
        calls.push(rate);
    }
    let tasks_per_sec = median(&mut tps);
    let calls_per_sec = median(&mut calls);
    let (cpu_per_task, base_cpu_per_call) = (median(&mut cpu), median(&mut base_cpu));
    let rate = p.rate.unwrap_or(tasks_per_sec * p.open_loop_fraction);
    let open = open_loop(&handle, &p, rate).await?;

    baseline_actor.stop(None);
    let tree = handle.tree_internals();
    let work = json!({
        "tasks_dispatched": tree.metrics.finished_total(),
        "events_emitted": tree.events.last_seq(),
        "rows_written": tree.store_writer_stats.rows.load(Relaxed),
        "commits": tree.store_writer_stats.commits.load(Relaxed),
    });
    handle.shutdown(Duration::from_secs(10)).await;
    Ok(report(
        "dispatch",
        json!({"tasks": p.tasks, "concurrency": p.concurrency, "instances": p.instances, "rounds": p.rounds,
               "durable": p.durable, "store": "memory", "open_loop_rate": round3(rate), "open_loop_secs": p.open_loop_secs}),
        json!({
            "tasks_per_sec": tasks_per_sec.round(),
            "p50_us": median(&mut p50),
            "p99_us": median(&mut p99),
            "cpu_us_per_task": round3(cpu_per_task),
            "orchestrator_busy_share": round3(median(&mut busy)),
            "open_loop": open,
        }),
        json!({"calls_per_sec": calls_per_sec.round(), "cpu_us_per_call": round3(base_cpu_per_call)}),
        json!({"tasks_per_sec_vs_calls_per_sec": round3(tasks_per_sec / calls_per_sec),
               "cpu_us_per_task_vs_per_call": round3(cpu_per_task / base_cpu_per_call)}),
        work,
    ))
}

pub(super) async fn wait_for_agent(handle: &NodeHandle) -> Result<(), String> {
    for _ in 0..500 {
        if handle.agents().await.map(|a| a.iter().any(|a| a.workers > 0)).unwrap_or(false) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err("the bench agent did not start".into())
}

fn request(durable: bool) -> TaskRequest {
    TaskRequest::to_agent("noop", Value::Null).durable(durable)
}

/// Every submitter runs submit-and-wait back to back. Returns tasks/s and latencies (µs).
async fn closed_loop(handle: &Arc<NodeHandle>, p: &Params, tasks: usize) -> Result<(f64, Vec<u64>), String> {
    let per = tasks.div_ceil(p.concurrency);
    let started = Instant::now();
    let mut joins = Vec::new();
    for _ in 0..p.concurrency {
        let handle = handle.clone();
        let durable = p.durable;
        joins.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per);
            for _ in 0..per {
                let t = Instant::now();
                let done =
                    handle.run(request(durable), Duration::from_secs(30)).await.map_err(|e| e.to_string())?;
                if done.state != TaskState::Succeeded {
                    return Err(format!("task ended {:?}: {:?}", done.state, done.error));
                }
                lat.push(t.elapsed().as_micros() as u64);
            }
            Ok::<_, String>(lat)
        }));
    }
    let mut all = Vec::with_capacity(per * p.concurrency);
    for j in joins {
        all.extend(j.await.map_err(|e| e.to_string())??);
    }
    Ok((all.len() as f64 / started.elapsed().as_secs_f64(), all))
}

/// Offers `rate` tasks/s on a fixed schedule (`paced`); latency counts from each
/// intended send time.
async fn open_loop(handle: &Arc<NodeHandle>, p: &Params, rate: f64) -> Result<Value, String> {
    let total = (rate * p.open_loop_secs).max(1.0) as usize;
    let (handle, durable) = (handle.clone(), p.durable);
    let started = Instant::now();
    let done = paced(rate, total, move |intended| {
        let handle = handle.clone();
        async move {
            let done = handle.run(request(durable), Duration::from_secs(30)).await;
            (matches!(done, Ok(t) if t.state == TaskState::Succeeded), intended.elapsed().as_micros() as u64)
        }
    })
    .await?;
    let achieved = done.len() as f64 / started.elapsed().as_secs_f64();
    let failed = done.iter().filter(|(ok, _)| !ok).count();
    let mut lat: Vec<u64> = done.into_iter().map(|(_, us)| us).collect();
    lat.sort_unstable();
    Ok(
        json!({"offered_per_sec": rate.round(), "completed_per_sec": achieved.round(), "tasks": total, "failed": failed,
              "p50_us": quantile(&lat, 0.5), "p99_us": quantile(&lat, 0.99), "max_us": lat.last().copied().unwrap_or(0),
              "pacer_tick_us": PACER_TICK.as_micros() as u64}),
    )
}

/// The baseline actor: replies to every call.
struct Echo;

impl Actor for Echo {
    type Msg = RpcReplyPort<()>;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<Self::Msg>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<Self::Msg>,
        reply: RpcReplyPort<()>,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        let _ = reply.send(());
        Ok(())
    }
}

/// Returns calls/s and the number of calls made.
async fn bare_calls(actor: &ActorRef<RpcReplyPort<()>>, concurrency: usize, calls: usize) -> (f64, usize) {
    let per = calls.div_ceil(concurrency);
    let started = Instant::now();
    let mut joins = Vec::new();
    for _ in 0..concurrency {
        let actor = actor.clone();
        joins.push(tokio::spawn(async move {
            for _ in 0..per {
                let _ = actor.call(|r| r, None).await;
            }
        }));
    }
    for j in joins {
        let _ = j.await;
    }
    ((per * concurrency) as f64 / started.elapsed().as_secs_f64(), per * concurrency)
}
