//! `workflow`: runs of no-op native agents through the workflow engine, durability off
//! (in-memory store) and on (SQLite with the shipped sync setting).
//!
//! Subjects: (a) one linear chain of `chain` steps (`chain_step_us` = run time / steps);
//! (b) a fan-out of `fanout` parallel items joined, repeated `fanout_runs` times
//! (`fanout_node_us` = time / items); (c) `small_runs` runs of a 3-step chain,
//! `concurrency` at a time (`small_runs_per_sec`). Baselines, interleaved with the
//! subjects: `call_us`, one bare sequential ractor request/reply, and `commit_us`, one
//! single-row SQLite commit with the same sync setting.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use mark1_actors::domain::workflow::{RunState, WorkflowDef};
use mark1_actors::ports::{MemoryStore, Store};
use mark1_actors::workflows::StartRun;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde_json::{json, Value};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection};

use super::{median, node_config, report, round3, Noop};
use crate::config::SyncMode;
use crate::store::{open, StoreOptions};
use crate::{AgentSpec, Node, NodeHandle};

#[derive(Args, Debug, Clone)]
pub struct Params {
    /// Steps of the linear chain.
    #[arg(long, default_value_t = 1_000)]
    chain: usize,
    /// Parallel items of the fan-out.
    #[arg(long, default_value_t = 100)]
    fanout: usize,
    /// Fan-out runs, one after another.
    #[arg(long, default_value_t = 100)]
    fanout_runs: usize,
    /// Runs of the 3-step workflow.
    #[arg(long, default_value_t = 10_000)]
    small_runs: usize,
    /// Runs of the 3-step workflow in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Interleaved rounds of subjects and baselines; medians are reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// The store writer's flush delay (`store.flush_delay`); the shipped one when unset.
    #[arg(long, value_parser = humantime::parse_duration)]
    flush_delay: Option<Duration>,
    /// SQLite `synchronous` of the durable runs: `full` (the shipped default) or `normal`.
    #[arg(long, default_value = "full", value_parser = parse_sync)]
    sync: SyncMode,
    /// Accepted for the contract (`--json`); output is always JSON.
    #[arg(long)]
    json: bool,
}

fn parse_sync(text: &str) -> Result<SyncMode, String> {
    match text {
        "full" => Ok(SyncMode::Full),
        "normal" => Ok(SyncMode::Normal),
        other => Err(format!("unknown sync mode '{other}': expected full or normal")),
    }
}

/// The figures of one kind of run, durability off or on.
#[derive(Default)]
struct Samples {
    chain_step_us: Vec<f64>,
    fanout_node_us: Vec<f64>,
    small_runs_per_sec: Vec<f64>,
}

pub async fn run(p: Params) -> Result<Value, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let sqlite_url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let memory =
        start_node("bench-workflow-memory", dir.path(), Arc::new(MemoryStore::with_retention(1 << 20)), &p)
            .await?;
    let mut options = StoreOptions::new(&sqlite_url);
    options.sync = p.sync;
    let opened = open(&options).await.map_err(|e| e.to_string())?;
    let sqlite = start_node("bench-workflow-sqlite", dir.path(), opened.store.clone(), &p).await?;
    let (flush_delay, lazy_delay) = (sqlite.config().store.flush_delay, sqlite.config().store.lazy_delay);
    let call = Actor::spawn(None, Echo, ()).await.map_err(|e| e.to_string())?.0;
    let mut commit = BareCommit::connect(&dir.path().join("baseline.db"), p.sync).await?;

    let (mut off, mut on) = (Samples::default(), Samples::default());
    let (mut call_us, mut commit_us) = (Vec::new(), Vec::new());
    // Warm-up, not measured.
    measure(&memory, &p, false, &mut Samples::default(), 10).await?;
    for _ in 0..p.rounds {
        measure(&memory, &p, false, &mut off, 1).await?;
        call_us.push(bare_calls(&call, 10_000).await);
        measure(&sqlite, &p, true, &mut on, 1).await?;
        commit_us.push(commit.measure(200).await?);
    }
    call.stop(None);

    let work = json!({
        "runs": runs_finished(&memory).await + runs_finished(&sqlite).await,
        "tasks_dispatched": memory.tree_internals().metrics.finished_total()
            + sqlite.tree_internals().metrics.finished_total(),
        "events_emitted": memory.tree_internals().events.last_seq() + sqlite.tree_internals().events.last_seq(),
        "rows_written": memory.tree_internals().store_writer_stats.rows.load(Relaxed)
            + sqlite.tree_internals().store_writer_stats.rows.load(Relaxed),
        "commits_durable": sqlite.tree_internals().store_writer_stats.commits.load(Relaxed),
    });
    memory.shutdown(Duration::from_secs(10)).await;
    sqlite.shutdown(Duration::from_secs(10)).await;
    opened.close().await;

    let (call_us, commit_us) = (median(&mut call_us), median(&mut commit_us));
    let chain = median(&mut off.chain_step_us);
    let chain_durable = median(&mut on.chain_step_us);
    let fanout = median(&mut off.fanout_node_us);
    let fanout_durable = median(&mut on.fanout_node_us);
    let small = median(&mut off.small_runs_per_sec);
    let small_durable = median(&mut on.small_runs_per_sec);
    let flush_delay = humantime::format_duration(flush_delay).to_string();
    let lazy_delay = humantime::format_duration(lazy_delay).to_string();
    let sync = match p.sync {
        SyncMode::Full => "full",
        SyncMode::Normal => "normal",
    };
    Ok(report(
        "workflow",
        json!({"chain": p.chain, "fanout": p.fanout, "fanout_runs": p.fanout_runs, "small_runs": p.small_runs,
               "concurrency": p.concurrency, "rounds": p.rounds, "durable_store": "sqlite", "sqlite_synchronous": sync,
               "store_off": "memory", "agent": "native no-op", "flush_delay": flush_delay,
               "lazy_delay": lazy_delay}),
        json!({
            "chain_step_us": round3(chain),
            "chain_step_durable_us": round3(chain_durable),
            "fanout_node_us": round3(fanout),
            "fanout_node_durable_us": round3(fanout_durable),
            "small_runs_per_sec": small.round(),
            "small_runs_durable_per_sec": small_durable.round(),
        }),
        json!({"call_us": round3(call_us), "commit_us": round3(commit_us)}),
        json!({
            "chain_step_vs_call": round3(chain / call_us),
            "chain_step_durable_vs_commit_plus_3_calls": round3(chain_durable / (commit_us + 3.0 * call_us)),
        }),
        work,
    ))
}

/// A node named `name` (two run side by side) on `store`, with the bench's workflows.
async fn start_node(
    name: &str,
    dir: &std::path::Path,
    store: Arc<dyn Store>,
    p: &Params,
) -> Result<Arc<NodeHandle>, String> {
    // The shipped settings (flush delay, batch size) but for the in-flight limit, which
    // the concurrent small runs would otherwise meet.
    let mut config = node_config(name, dir)?.load().map_err(|e| e.to_string())?;
    if let Some(delay) = p.flush_delay {
        config.store.flush_delay = delay;
    }
    let node = Node::builder()
        .config(config)
        .store(store)
        .agent(AgentSpec::native("noop").pool_size(4, 4).queue_limit(1 << 20), Noop)
        .build()
        .await
        .map_err(|e| e.to_string())?;
    let handle = Arc::new(node.start().await.map_err(|e| e.to_string())?);
    super::dispatch::wait_for_agent(&handle).await?;
    for def in [chain(p.chain, "chain"), chain(3, "small"), fanout(p.fanout)] {
        handle.create_workflow("default", def).await.map_err(|e| e.to_string())?;
    }
    Ok(handle)
}

fn chain(steps: usize, name: &str) -> WorkflowDef {
    let steps: Vec<Value> = (0..steps)
        .map(|i| match i {
            0 => json!({"id": "s0", "agent": "noop"}),
            _ => json!({"id": format!("s{i}"), "agent": "noop", "depends_on": [format!("s{}", i - 1)]}),
        })
        .collect();
    serde_json::from_value(json!({"name": name, "steps": steps})).expect("a valid chain")
}

fn fanout(items: usize) -> WorkflowDef {
    serde_json::from_value(json!({"name": "fanout", "concurrency": items, "steps": [
        {"id": "fan", "agent": "noop", "for_each": format!("range({items})"), "concurrency": items, "input": "{{ item }}"},
        {"id": "join", "agent": "noop", "depends_on": ["fan"], "input": "{{ steps.fan.output | length }}"},
    ]}))
    .expect("a valid fan-out")
}

fn start(workflow: &str, durable: bool) -> StartRun {
    StartRun {
        namespace: "default".into(),
        workflow: workflow.into(),
        version: Some(1),
        input: Value::Null,
        idempotency_key: None,
        submitter: None,
        durable,
        parent: None,
    }
}

/// One run to its end; errors unless it succeeded.
async fn one_run(handle: &NodeHandle, workflow: &str, durable: bool) -> Result<(), String> {
    let record = handle.start_run(start(workflow, durable)).await.map_err(|e| e.to_string())?;
    let view = handle.wait_run(record.id, Duration::from_secs(300)).await.map_err(|e| e.to_string())?;
    match view.record.state {
        RunState::Succeeded => Ok(()),
        other => Err(format!("a {workflow} run ended {other:?}: {:?}", view.record.error)),
    }
}

/// One round of the three subjects; `scale` divides their sizes (a warm-up uses less).
async fn measure(
    handle: &Arc<NodeHandle>,
    p: &Params,
    durable: bool,
    into: &mut Samples,
    scale: usize,
) -> Result<(), String> {
    let t = Instant::now();
    one_run(handle, "chain", durable).await?;
    into.chain_step_us.push(t.elapsed().as_secs_f64() * 1e6 / p.chain as f64);

    let runs = (p.fanout_runs / scale).max(1);
    let t = Instant::now();
    for _ in 0..runs {
        one_run(handle, "fanout", durable).await?;
    }
    into.fanout_node_us.push(t.elapsed().as_secs_f64() * 1e6 / (runs * p.fanout) as f64);

    let total = (p.small_runs / scale).max(1);
    let per = total.div_ceil(p.concurrency);
    let t = Instant::now();
    let mut joins = Vec::new();
    for _ in 0..p.concurrency {
        let handle = handle.clone();
        joins.push(tokio::spawn(async move {
            for _ in 0..per {
                one_run(&handle, "small", durable).await?;
            }
            Ok::<_, String>(per)
        }));
    }
    let mut done = 0;
    for j in joins {
        done += j.await.map_err(|e| e.to_string())??;
    }
    into.small_runs_per_sec.push(done as f64 / t.elapsed().as_secs_f64());
    Ok(())
}

async fn runs_finished(handle: &NodeHandle) -> u64 {
    let store = handle.store();
    let mut total = 0;
    let mut query = mark1_actors::ports::RunQuery { limit: 10_000, ..Default::default() };
    loop {
        let page = store.list_runs(&query).await.unwrap_or_default();
        total += page.iter().filter(|r| r.state == RunState::Succeeded).count() as u64;
        match page.last() {
            Some(last) if page.len() == query.limit => query.before = Some(last.id),
            _ => return total,
        }
    }
}

/// The `call_us` baseline: an actor that replies to every call.
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

/// Mean µs of `n` sequential calls.
async fn bare_calls(actor: &ActorRef<RpcReplyPort<()>>, n: usize) -> f64 {
    let t = Instant::now();
    for _ in 0..n {
        let _ = actor.call(|reply| reply, None).await;
    }
    t.elapsed().as_secs_f64() * 1e6 / n as f64
}

/// The `commit_us` baseline: single-row commits on a bare SQLite connection with the
/// node's journal mode and sync setting.
struct BareCommit {
    conn: sqlx::SqliteConnection,
    next: i64,
}

impl BareCommit {
    async fn connect(path: &std::path::Path, sync: SyncMode) -> Result<BareCommit, String> {
        let mut conn = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match sync {
                SyncMode::Full => SqliteSynchronous::Full,
                SyncMode::Normal => SqliteSynchronous::Normal,
            })
            .connect()
            .await
            .map_err(|e| e.to_string())?;
        sqlx::query("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, data TEXT NOT NULL)")
            .execute(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        Ok(BareCommit { conn, next: 0 })
    }

    /// Mean µs of `n` commits of one row each.
    async fn measure(&mut self, n: usize) -> Result<f64, String> {
        let t = Instant::now();
        for _ in 0..n {
            self.next += 1;
            let mut tx = self.conn.begin().await.map_err(|e| e.to_string())?;
            sqlx::query("INSERT INTO t (id, data) VALUES (?, ?)")
                .bind(self.next)
                .bind("step")
                .execute(&mut *tx)
                .await
                .map_err(|e| e.to_string())?;
            tx.commit().await.map_err(|e| e.to_string())?;
        }
        Ok(t.elapsed().as_secs_f64() * 1e6 / n as f64)
    }
}
