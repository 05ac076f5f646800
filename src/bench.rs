//! `mark1 bench <name>`: benchmarks that build their own nodes in-process and print
//! one JSON object (DESIGN §13.9): `bench`, `git_sha`, `profile`, `params`, the
//! figures, a `baseline` measured in the same run (interleaved, medians), `ratio`, and
//! `work` counting what was really done. Never a timed test: figures are reported, not
//! asserted.

mod client;
mod dispatch;
mod durable;
mod http;
mod models;
mod restart;
mod scan;
mod spawn;
mod workflow;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use crate::cli::{exit, CliError};
use crate::config::ConfigLoader;
use crate::{Agent, AgentError, TaskContext};

/// The agent of the task benches: answers with its input, so what is measured is the
/// runtime around it.
pub(crate) struct Noop;

impl Agent for Noop {
    async fn handle(&self, _: TaskContext, input: Value) -> Result<Value, AgentError> {
        Ok(input)
    }
}

#[derive(Args, Debug)]
pub struct BenchCommand {
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Subcommand, Debug)]
enum Bench {
    /// Task throughput and latency through the whole runtime, against bare ractor calls.
    Dispatch(dispatch::Params),
    /// Durable task throughput and latency on SQLite or PostgreSQL, against bare sqlx writing the same rows.
    Durable(durable::Params),
    /// Tasks through the HTTP edge with API-key auth, against the authenticated no-op `whoami`.
    Http(http::Params),
    /// What the model gateway adds to a call (edge, router, budgets, metering), against calling the provider directly.
    Models(models::Params),
    /// Memory and spawn rate of idle agent instances, against bare ractor actors.
    Spawn(spawn::Params),
    /// Time from a child's failure to its replacement handling a message.
    Restart(restart::Params),
    /// The codebase scanner's whole pipeline over a repository (or a synthetic corpus), against parsing the same files alone.
    Scan(scan::Params),
    /// Workflow runs (a long chain, fan-outs, many small runs), durability off and on.
    Workflow(workflow::Params),
}

impl BenchCommand {
    pub async fn run(self) -> Result<(), CliError> {
        let report = match self.bench {
            Bench::Dispatch(p) => dispatch::run(p).await,
            Bench::Durable(p) => durable::run(p).await,
            Bench::Http(p) => http::run(p).await,
            Bench::Models(p) => models::run(p).await,
            Bench::Spawn(p) => spawn::run(p).await,
            Bench::Restart(p) => restart::run(p).await,
            Bench::Scan(p) => scan::run(p).await,
            Bench::Workflow(p) => workflow::run(p).await,
        }
        .map_err(|message| CliError { code: exit::FAILURE, message })?;
        println!("{}", serde_json::to_string_pretty(&report).expect("json serializes"));
        Ok(())
    }
}

/// The common envelope of every report.
pub(crate) fn report(
    bench: &str,
    params: Value,
    figures: Value,
    baseline: Value,
    ratio: Value,
    work: Value,
) -> Value {
    let mut out = Map::new();
    out.insert("bench".into(), json!(bench));
    out.insert("git_sha".into(), json!(git_sha()));
    out.insert("profile".into(), json!(if cfg!(debug_assertions) { "debug" } else { "release" }));
    out.insert("params".into(), params);
    if let Value::Object(figures) = figures {
        out.extend(figures);
    }
    out.insert("baseline".into(), baseline);
    out.insert("ratio".into(), ratio);
    out.insert("work".into(), work);
    Value::Object(out)
}

fn git_sha() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Runs `measure` with a fresh folder for its node's data under the system's temp folder,
/// removed afterwards whatever the outcome.
pub(crate) async fn in_temp_dir<F, Fut>(bench: &str, measure: F) -> Result<Value, String>
where
    F: FnOnce(PathBuf) -> Fut,
    Fut: Future<Output = Result<Value, String>>,
{
    let dir = std::env::temp_dir().join(format!("mark1-bench-{bench}-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let outcome = measure(dir.clone()).await;
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

/// The configuration every bench node starts from: no file and no environment (a run
/// depends on its flags alone), its data in `dir`, and an in-flight limit no bench meets.
pub(crate) fn node_config(name: &str, dir: &Path) -> Result<ConfigLoader, String> {
    let dir = dir.to_str().ok_or_else(|| format!("{} is not UTF-8", dir.display()))?;
    Ok(ConfigLoader::new()
        .no_file()
        .env(Vec::<(String, String)>::new())
        .set("node.name", name)
        .set("node.data_dir", dir)
        .set("limits.max_in_flight", 1_000_000))
}

/// Median of samples (sorted in place).
pub(crate) fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    if values.is_empty() {
        return 0.0;
    }
    values[values.len() / 2]
}

/// The `q` quantile (0..=1) of sorted samples.
pub(crate) fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i]
}

/// Resident memory of this process, in bytes (Linux).
pub(crate) fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

/// The peak resident memory of this process so far (`VmHWM`), in bytes (Linux).
pub(crate) fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
    kb.unwrap_or(0) * 1024
}

/// How often the pacer of an open-loop phase wakes.
pub(crate) const PACER_TICK: Duration = Duration::from_micros(100);

/// Starts `total` tasks on a fixed schedule of `rate` a second, each made by `start` from
/// its intended start time, and returns their outputs in completion order. Open-loop
/// phases measure latency from that intended time, so a slow system cannot hide its
/// backlog (no coordinated omission). The pacer is an OS thread that wakes every
/// `PACER_TICK` and starts whatever is due: tokio's timer has millisecond granularity,
/// which would add up to a millisecond of its own lateness.
pub(crate) async fn paced<T, F, Fut>(rate: f64, total: usize, start: F) -> Result<Vec<T>, String>
where
    T: Send + 'static,
    F: Fn(Instant) -> Fut + Send + 'static,
    Fut: Future<Output = T> + Send + 'static,
{
    let interval = Duration::from_secs_f64(1.0 / rate.max(1.0));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let runtime = tokio::runtime::Handle::current();
    let begun = Instant::now();
    let pacer = std::thread::spawn(move || {
        let mut sent = 0;
        while sent < total {
            let due = ((begun.elapsed().as_secs_f64() / interval.as_secs_f64()) as usize + 1).min(total);
            for i in sent..due {
                let task = start(begun + interval.mul_f64(i as f64));
                let tx = tx.clone();
                runtime.spawn(async move { drop(tx.send(task.await)) });
            }
            sent = due;
            std::thread::sleep(PACER_TICK);
        }
    });
    let mut outputs = Vec::with_capacity(total);
    while outputs.len() < total {
        let Some(output) = rx.recv().await else { break };
        outputs.push(output);
    }
    pacer.join().map_err(|_| "the pacer thread panicked".to_string())?;
    Ok(outputs)
}

/// CPU time (user and system) this process has used so far, in microseconds: divided by
/// the work done, it is steadier than wall-clock rates on a shared machine.
pub(crate) fn cpu_us() -> u64 {
    use nix::sys::resource::{getrusage, UsageWho};
    getrusage(UsageWho::RUSAGE_SELF).map_or(0, |u| {
        let us = |t: nix::sys::time::TimeVal| t.tv_sec() as u64 * 1_000_000 + t.tv_usec() as u64;
        us(u.user_time()) + us(u.system_time())
    })
}

/// Rounds to 3 decimals for readable ratios.
pub(crate) fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
