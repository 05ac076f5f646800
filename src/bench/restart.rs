//! `restart`: a supervised child panics on a message; measured from the failure to its
//! replacement handling its next message. Immediate first restart, unlimited intensity,
//! a quiet panic hook. Baseline: spawning a fresh bare actor linked to a bare parent and
//! having it handle one message, the floor any restart pays.

use std::time::{Duration, Instant};

use clap::Args;
use mark1_supervisors::{
    spawn_instrumented, ActorStats, Backoff, ChildSpec, Intensity, Strategy, Supervisor, SupervisorArgs,
};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::{quantile, report, round3};

#[derive(Args, Debug, Clone)]
pub struct Params {
    /// Restarts measured.
    #[arg(long, default_value_t = 10_000)]
    restarts: usize,
    /// Accepted for the contract (`--json`); output is always JSON.
    #[arg(long)]
    json: bool,
}

enum ChildMsg {
    /// Panics.
    Fail,
    /// Replies with the time the message was handled.
    Ping(RpcReplyPort<Instant>),
}

/// The child: announces each incarnation, then panics or answers.
struct Child;

impl Actor for Child {
    type Msg = ChildMsg;
    type State = ();
    type Arguments = mpsc::UnboundedSender<ActorRef<ChildMsg>>;

    async fn pre_start(
        &self,
        myself: ActorRef<ChildMsg>,
        started: Self::Arguments,
    ) -> Result<(), ActorProcessingErr> {
        let _ = started.send(myself);
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<ChildMsg>,
        msg: ChildMsg,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ChildMsg::Fail => panic!("bench failure"),
            ChildMsg::Ping(reply) => {
                let _ = reply.send(Instant::now());
            }
        }
        Ok(())
    }
}

pub async fn run(p: Params) -> Result<Value, String> {
    // Quiet: ten thousand panic messages would dominate the run.
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let subject = restarts(p.restarts).await;
    let base = bare_spawns(p.restarts).await;
    std::panic::set_hook(previous);
    let (mut subject, mut base) = (subject?, base?);
    subject.sort_unstable();
    base.sort_unstable();
    let (p50, p99) = (quantile(&subject, 0.5), quantile(&subject, 0.99));
    let (b50, b99) = (quantile(&base, 0.5), quantile(&base, 0.99));
    Ok(report(
        "restart",
        json!({"restarts": p.restarts, "backoff": "immediate", "intensity": "unlimited", "panic_hook": "quiet",
               "strategy": "one_for_one"}),
        json!({"restart_p50_us": p50, "restart_p99_us": p99}),
        json!({"spawn_p50_us": b50, "spawn_p99_us": b99}),
        json!({"p50": round3(p50 as f64 / b50.max(1) as f64), "p99": round3(p99 as f64 / b99.max(1) as f64)}),
        json!({"restarts": subject.len(), "bare_spawns": base.len()}),
    ))
}

async fn restarts(n: usize) -> Result<Vec<u64>, String> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let stats = ActorStats::new("bench-restart");
    let child = ChildSpec::actor("child", move || (Child, tx.clone()));
    let args = SupervisorArgs {
        strategy: Strategy::OneForOne,
        intensity: Intensity::UNLIMITED,
        backoff: Backoff::IMMEDIATE,
        children: vec![child],
        max_children: None,
        stats: stats.clone(),
        observer: None,
    };
    let (sup, _) =
        spawn_instrumented(None, Supervisor, args, stats.clone(), None).await.map_err(|e| e.to_string())?;
    let mut current = rx.recv().await.ok_or("the child never started")?;
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let failed_at = Instant::now();
        current.send_message(ChildMsg::Fail).map_err(|e| e.to_string())?;
        current = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .map_err(|_| "no restart within 5s".to_string())?
            .ok_or("the supervisor stopped")?;
        let handled = ractor::call!(current, ChildMsg::Ping).map_err(|e| e.to_string())?;
        samples.push(handled.duration_since(failed_at).as_micros() as u64);
    }
    let restarted = stats.snapshot().children.first().map(|c| c.restarts.failed).unwrap_or(0);
    sup.actor().stop(None);
    if restarted < n as u64 {
        return Err(format!("expected {n} restarts counted, found {restarted}"));
    }
    Ok(samples)
}

async fn bare_spawns(n: usize) -> Result<Vec<u64>, String> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (parent, _) = Actor::spawn(None, super::spawn::BareParent, ()).await.map_err(|e| e.to_string())?;
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let (child, _) = Actor::spawn_linked(None, Child, tx.clone(), parent.get_cell())
            .await
            .map_err(|e| e.to_string())?;
        let _ = rx.recv().await;
        let handled = ractor::call!(child, ChildMsg::Ping).map_err(|e| e.to_string())?;
        samples.push(handled.duration_since(started).as_micros() as u64);
        child.stop(None);
    }
    parent.stop(None);
    Ok(samples)
}
