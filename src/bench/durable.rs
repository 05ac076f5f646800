//! `durable`: durable tasks through a whole node on a real database (SQLite or
//! PostgreSQL), against bare sqlx writing the same rows.
//!
//! Subject: a node on a fresh database with the shipped store settings (flush delay,
//! batch size; `--sync` for SQLite) and a pool of no-op native agents. Many submitters
//! each loop `submit` (returns once the task's row and `task.queued` event are
//! committed) then `wait` (returns once the final row, its events and the attempt are
//! committed). Latency: `p50_us`/`p99_us` are accept latency, submit → "accepted", the
//! part the flush delay decides; `e2e_*` is submit → final state.
//!
//! Baseline: no actors and no `Store` adapter, one sqlx connection to a second fresh
//! database of the same backend and settings, writing what each task costs the subject
//! in the same tables and columns: the queued row and its event in one commit; the final
//! row, the `task.running` and final events and the attempt in the next. Each commit
//! carries one batch's inserts and the previous batch's completions, batches as large as
//! the subject's measured tasks per commit in the round just run, multi-row statements.
//! Rounds of the two are interleaved; medians are reported. Both databases are dropped
//! at the end, so repeated runs start alike.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Args;
use mark1_actors::domain::TaskState;
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection};
use uuid::Uuid;

use super::{cpu_us, median, quantile, report, round3};
use crate::config::{Config, StoreConfig, SyncMode};
use crate::store::{open, redact, with_database, Backend, OpenedStore, StoreOptions};
use crate::{Agent, AgentError, AgentSpec, Node, NodeHandle, TaskContext, TaskRequest};

/// The server a PostgreSQL run creates its databases on when neither `--url` nor the
/// tests' variable names one.
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

#[derive(Args, Debug, Clone)]
pub struct Params {
    /// `sqlite` (fresh files in a temp folder) or `postgres` (fresh databases on the server
    /// at `--url`, dropped after the run; nothing else on it is touched).
    #[arg(long, value_parser = parse_backend, default_value = "sqlite")]
    backend: Backend,
    /// PostgreSQL server; default: `MARK1_TEST_POSTGRES_URL`, else a local server as user
    /// postgres. Its own database only serves to create and drop the bench's.
    #[arg(long)]
    url: Option<String>,
    /// SQLite's `synchronous`: `normal` (what the issue's scale figure used) or `full`
    /// (the shipped default; survives power loss). PostgreSQL commits with
    /// `synchronous_commit=on` whatever this says.
    #[arg(long, value_parser = parse_sync, default_value = "normal")]
    sync: SyncMode,
    /// Store writer flush delay; default: the shipped `store.flush_delay`.
    #[arg(long, value_parser = humantime::parse_duration)]
    flush_delay: Option<Duration>,
    /// Store writer batch size; default: the shipped `store.batch_max`.
    #[arg(long)]
    batch_max: Option<usize>,
    /// Tasks per round.
    #[arg(long, default_value_t = 100_000)]
    tasks: usize,
    /// Concurrent submitters.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// Agent instances in the pool.
    #[arg(long, default_value_t = 4)]
    instances: usize,
    /// Interleaved rounds of subject and baseline.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Accepted for the contract (`--json`); output is always JSON.
    #[arg(long)]
    json: bool,
}

fn parse_backend(text: &str) -> Result<Backend, String> {
    match text {
        "sqlite" => Ok(Backend::Sqlite),
        "postgres" => Ok(Backend::Postgres),
        _ => Err("expected sqlite or postgres".into()),
    }
}

fn parse_sync(text: &str) -> Result<SyncMode, String> {
    match text {
        "normal" => Ok(SyncMode::Normal),
        "full" => Ok(SyncMode::Full),
        _ => Err("expected normal or full".into()),
    }
}

struct Noop;

impl Agent for Noop {
    async fn handle(&self, _: TaskContext, input: Value) -> Result<Value, AgentError> {
        Ok(input)
    }
}

pub async fn run(p: Params) -> Result<Value, String> {
    let place = Place::create(&p).await?;
    let outcome = measure(&p, &place).await;
    place.remove().await;
    outcome
}

async fn measure(p: &Params, place: &Place) -> Result<Value, String> {
    let shipped = StoreConfig::default();
    let mut config = Config::default();
    config.node.data_dir = place.dir.clone();
    config.store.url = Some(place.subject_url.clone());
    config.store.sync = p.sync;
    config.store.flush_delay = p.flush_delay.unwrap_or(shipped.flush_delay);
    config.store.batch_max = p.batch_max.unwrap_or(shipped.batch_max);
    let flush_delay = config.store.flush_delay;
    // Opened here (as `Node::build` would from the same config) so the bench can count
    // what the node left in it once the node is gone.
    let opened = open(&StoreOptions::from_config(&config).map_err(|e| e.to_string())?)
        .await
        .map_err(|e| e.to_string())?;
    let node = Node::builder()
        .config(config)
        .store(opened.store.clone())
        .agent(
            AgentSpec::native("noop").pool_size(p.instances, p.instances).queue_limit(1 << 20),
            Noop,
        )
        .build()
        .await
        .map_err(|e| e.to_string())?;
    let handle = Arc::new(node.start().await.map_err(|e| e.to_string())?);
    super::dispatch::wait_for_agent(&handle).await?;
    let mut bare = Bare::connect(p, &place.baseline_url).await?;

    // Warm-up, not measured; the baseline writes as many rows, so both databases hold
    // the same number of tasks in every round.
    let warm_up = (p.tasks / 10).max(p.concurrency);
    let (_, commits) = subject_round(&handle, p, warm_up).await?;
    bare.round(warm_up, batch_size(warm_up, commits)).await?;

    let (mut tps, mut p50, mut p99, mut e2e50, mut e2e99, mut per_commit, mut cpu) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    let (mut base_tps, mut base_commit, mut base_batch, mut base_cpu) = (vec![], vec![], vec![], vec![]);
    for _ in 0..p.rounds {
        let cpu_before = cpu_us();
        let (round, commits) = subject_round(&handle, p, p.tasks).await?;
        cpu.push((cpu_us() - cpu_before) as f64 / p.tasks as f64);
        tps.push(round.tasks_per_sec);
        p50.push(quantile(&round.accept_us, 0.5) as f64);
        p99.push(quantile(&round.accept_us, 0.99) as f64);
        e2e50.push(quantile(&round.done_us, 0.5) as f64);
        e2e99.push(quantile(&round.done_us, 0.99) as f64);
        per_commit.push(p.tasks as f64 / commits.max(1) as f64);
        let batch = batch_size(p.tasks, commits);
        let cpu_before = cpu_us();
        let (rate, mut commit_us) = bare.round(p.tasks, batch).await?;
        base_cpu.push((cpu_us() - cpu_before) as f64 / p.tasks as f64);
        commit_us.sort_unstable();
        base_tps.push(rate);
        base_commit.push(quantile(&commit_us, 0.5) as f64);
        base_batch.push(batch as f64);
    }

    let tree = handle.tree_internals();
    let stats = &tree.store_writer_stats;
    let (rows, commits) = (stats.rows.load(Relaxed), stats.commits.load(Relaxed));
    let dispatched = tree.metrics.finished_total();
    let report_shutdown = handle.shutdown(Duration::from_secs(30)).await;
    let submitted = warm_up + p.tasks * p.rounds;
    let stored = opened.store.count_tasks(TaskState::Succeeded).await.map_err(|e| e.to_string())?;
    opened.close().await;
    if stored != submitted as u64 {
        return Err(format!("{submitted} tasks ran, but the store holds {stored} succeeded ones"));
    }
    let base_stored = bare.count_succeeded().await?;
    if base_stored != submitted as u64 {
        return Err(format!("the baseline wrote {submitted} tasks, but its database holds {base_stored}"));
    }

    let (tasks_per_sec, base_tasks_per_sec) = (median(&mut tps), median(&mut base_tps));
    let (p99_us, commit_us) = (median(&mut p99), median(&mut base_commit));
    let (cpu_per_task, base_cpu_per_task) = (median(&mut cpu), median(&mut base_cpu));
    // DESIGN/issue 3: accept p99 within three flush delays and one commit of the batch size.
    let p99_target_us = 3.0 * flush_delay.as_micros() as f64 + commit_us;
    let (backend, sync) = match p.backend {
        Backend::Sqlite => ("sqlite", json!(format!("{:?}", p.sync).to_uppercase())),
        Backend::Postgres => ("postgres", json!("synchronous_commit=on")),
    };
    Ok(report(
        "durable",
        json!({"backend": backend, "url": place.shown_url, "sync": sync, "durable": true,
               "flush_delay_us": flush_delay.as_micros() as u64,
               "batch_max": p.batch_max.unwrap_or(shipped.batch_max),
               "tasks": p.tasks, "concurrency": p.concurrency, "instances": p.instances, "rounds": p.rounds,
               "warm_up_tasks": warm_up, "latency": "p50_us/p99_us: submit -> accepted (committed); e2e: submit -> final state (committed)"}),
        json!({
            "tasks_per_sec": tasks_per_sec.round(),
            "p50_us": median(&mut p50),
            "p99_us": p99_us,
            "e2e_p50_us": median(&mut e2e50),
            "e2e_p99_us": median(&mut e2e99),
            "tasks_per_commit": round3(median(&mut per_commit)),
            "cpu_us_per_task": round3(cpu_per_task),
        }),
        json!({"tasks_per_sec": base_tasks_per_sec.round(), "batch_tasks": median(&mut base_batch),
               "cpu_us_per_task": round3(base_cpu_per_task),
               "commit_p50_us": commit_us, "rows_per_task": Bare::ROWS_PER_TASK}),
        json!({"tasks_per_sec": round3(tasks_per_sec / base_tasks_per_sec),
               "cpu_us_per_task": round3(cpu_per_task / base_cpu_per_task),
               "p99_vs_target": round3(p99_us / p99_target_us), "p99_target_us": p99_target_us}),
        json!({"tasks": dispatched, "tasks_succeeded_in_store": stored, "rows_written": rows, "commits": commits,
               "baseline_tasks_in_store": base_stored, "baseline_rows_written": bare.rows,
               "baseline_commits": bare.commits, "shutdown_drained": report_shutdown.drained}),
    ))
}

/// Baseline batches: the subject's tasks per commit, at least one.
fn batch_size(tasks: usize, commits: u64) -> usize {
    ((tasks as f64 / commits.max(1) as f64).round() as usize).max(1)
}

/// What one subject round measured.
struct Round {
    tasks_per_sec: f64,
    /// Sorted.
    accept_us: Vec<u64>,
    /// Sorted.
    done_us: Vec<u64>,
}

/// Every submitter runs submit-then-wait back to back. Returns the round and the
/// commits it took.
async fn subject_round(handle: &Arc<NodeHandle>, p: &Params, tasks: usize) -> Result<(Round, u64), String> {
    let stats = handle.tree_internals().store_writer_stats.clone();
    let commits_before = stats.commits.load(Relaxed);
    let per = tasks.div_ceil(p.concurrency);
    let mut left = tasks;
    let started = Instant::now();
    let mut joins = Vec::new();
    for _ in 0..p.concurrency {
        let mine = per.min(left);
        left -= mine;
        let handle = handle.clone();
        joins.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(mine);
            for _ in 0..mine {
                let t = Instant::now();
                let id = handle.submit(TaskRequest::to_agent("noop", Value::Null)).await.map_err(|e| e.to_string())?;
                let accepted = t.elapsed();
                let done = handle.wait(id, Duration::from_secs(60)).await.map_err(|e| e.to_string())?;
                if done.state != TaskState::Succeeded {
                    return Err(format!("task ended {:?}: {:?}", done.state, done.error));
                }
                lat.push((accepted.as_micros() as u64, t.elapsed().as_micros() as u64));
            }
            Ok::<_, String>(lat)
        }));
    }
    let (mut accept_us, mut done_us) = (Vec::with_capacity(tasks), Vec::with_capacity(tasks));
    for j in joins {
        for (a, d) in j.await.map_err(|e| e.to_string())?? {
            accept_us.push(a);
            done_us.push(d);
        }
    }
    let tasks_per_sec = tasks as f64 / started.elapsed().as_secs_f64();
    accept_us.sort_unstable();
    done_us.sort_unstable();
    Ok((Round { tasks_per_sec, accept_us, done_us }, stats.commits.load(Relaxed) - commits_before))
}

/// Where the two databases live, made for this run and removed after it.
struct Place {
    dir: std::path::PathBuf,
    subject_url: String,
    baseline_url: String,
    /// For `params`: the server without its password, or where the SQLite files were.
    shown_url: String,
    /// PostgreSQL: the server URL and the databases to drop.
    server: Option<(String, [String; 2])>,
}

impl Place {
    async fn create(p: &Params) -> Result<Place, String> {
        let run = Uuid::now_v7().simple().to_string();
        let dir = std::env::temp_dir().join(format!("mark1-bench-durable-{run}"));
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        match p.backend {
            Backend::Sqlite => Ok(Place {
                subject_url: format!("sqlite://{}", dir.join("subject.db").display()),
                baseline_url: format!("sqlite://{}", dir.join("baseline.db").display()),
                shown_url: format!("sqlite://{}/{{subject,baseline}}.db", dir.display()),
                dir,
                server: None,
            }),
            Backend::Postgres => {
                let server = p
                    .url
                    .clone()
                    .or_else(|| std::env::var("MARK1_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty()))
                    .unwrap_or_else(|| DEFAULT_POSTGRES_URL.into());
                let names = [format!("mark1_bench_{run}_subject"), format!("mark1_bench_{run}_baseline")];
                let mut conn = PgConnection::connect(&server)
                    .await
                    .map_err(|e| format!("cannot connect to {}: {e}", redact(&server)))?;
                for name in &names {
                    sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
                        .execute(&mut conn)
                        .await
                        .map_err(|e| format!("cannot create database {name}: {e}"))?;
                }
                conn.close().await.ok();
                Ok(Place {
                    subject_url: with_database(&server, &names[0]),
                    baseline_url: with_database(&server, &names[1]),
                    shown_url: redact(&server),
                    dir,
                    server: Some((server, names)),
                })
            }
        }
    }

    /// Best effort: a failure is reported on stderr, never hides the run's outcome.
    async fn remove(self) {
        if let Some((server, names)) = &self.server {
            match PgConnection::connect(server).await {
                Ok(mut conn) => {
                    for name in names {
                        let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                        if let Err(e) = sqlx::raw_sql(&sql).execute(&mut conn).await {
                            eprintln!("bench: could not drop database {name}: {e}");
                        }
                    }
                    conn.close().await.ok();
                }
                Err(e) => eprintln!("bench: could not drop databases {names:?}: {e}"),
            }
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("bench: could not remove {}: {e}", self.dir.display());
        }
    }
}

/// The baseline: one bare sqlx connection.
struct Bare {
    conn: BareConn,
    /// Event sequence, continued across rounds like the node's.
    seq: i64,
    node_start: Uuid,
    rows: u64,
    commits: u64,
}

enum BareConn {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

/// One task as the baseline writes it.
struct BareTask {
    id: Uuid,
    subject: String,
    created_at: i64,
}

impl Bare {
    /// Task insert and queued event; final task row, two events and the attempt.
    const ROWS_PER_TASK: u64 = 6;

    /// Creates the schema with the store's migrations, then connects bare, with the
    /// settings the store uses (WAL and `synchronous`; `synchronous_commit=on`).
    async fn connect(p: &Params, url: &str) -> Result<Bare, String> {
        let mut options = StoreOptions::new(url);
        options.sync = p.sync;
        let migrated: OpenedStore = open(&options).await.map_err(|e| e.to_string())?;
        migrated.close().await;
        let conn = match p.backend {
            Backend::Sqlite => {
                let options = url
                    .parse::<SqliteConnectOptions>()
                    .map_err(|e| e.to_string())?
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(match p.sync {
                        SyncMode::Full => SqliteSynchronous::Full,
                        SyncMode::Normal => SqliteSynchronous::Normal,
                    });
                BareConn::Sqlite(options.connect().await.map_err(|e| e.to_string())?)
            }
            Backend::Postgres => {
                let options = url
                    .parse::<PgConnectOptions>()
                    .map_err(|e| e.to_string())?
                    .options([("synchronous_commit", "on")]);
                BareConn::Postgres(options.connect().await.map_err(|e| e.to_string())?)
            }
        };
        Ok(Bare { conn, seq: 0, node_start: Uuid::now_v7(), rows: 0, commits: 0 })
    }

    /// Writes `tasks` tasks in batches of `batch`: each commit inserts one batch and
    /// completes the one before. Returns tasks/s and each commit's duration (µs).
    async fn round(&mut self, tasks: usize, batch: usize) -> Result<(f64, Vec<u64>), String> {
        let started = Instant::now();
        let mut commit_us = Vec::with_capacity(tasks / batch + 2);
        let mut previous: Vec<BareTask> = Vec::new();
        let mut left = tasks;
        while left > 0 || !previous.is_empty() {
            let n = batch.min(left);
            left -= n;
            let now = now_us();
            let new: Vec<BareTask> = (0..n)
                .map(|_| {
                    let id = Uuid::now_v7();
                    BareTask { id, subject: id.to_string(), created_at: now }
                })
                .collect();
            let t = Instant::now();
            self.commit(&new, &previous, now).await.map_err(|e| format!("baseline: {e}"))?;
            commit_us.push(t.elapsed().as_micros() as u64);
            self.rows += (2 * new.len() + 4 * previous.len()) as u64;
            self.commits += 1;
            previous = new;
        }
        Ok((tasks as f64 / started.elapsed().as_secs_f64(), commit_us))
    }

    async fn commit(&mut self, new: &[BareTask], done: &[BareTask], now: i64) -> Result<(), sqlx::Error> {
        // Events in the order the node emits them: queued, then running and final.
        let mut events = Vec::with_capacity(new.len() + 2 * done.len());
        for t in new {
            events.push(self.event(now, "task.queued", &t.subject, "null"));
        }
        for t in done {
            events.push(self.event(now, "task.running", &t.subject, r#"{"attempt":1,"agent":"noop"}"#));
            events.push(self.event(now, "task.succeeded", &t.subject, "null"));
        }
        let node_start = self.node_start;
        match &mut self.conn {
            BareConn::Sqlite(conn) => sqlite::commit(conn, new, done, &events, node_start, now).await,
            BareConn::Postgres(conn) => postgres::commit(conn, new, done, &events, node_start, now).await,
        }
    }

    fn event(&mut self, at: i64, kind: &'static str, subject: &str, data: &'static str) -> BareEvent {
        self.seq += 1;
        BareEvent { seq: self.seq, at, kind, subject: subject.to_string(), data }
    }

    async fn count_succeeded(&mut self) -> Result<u64, String> {
        let sql = "SELECT COUNT(*) FROM tasks WHERE state = 'succeeded'";
        let n: i64 = match &mut self.conn {
            BareConn::Sqlite(conn) => sqlx::query_scalar(sql).fetch_one(conn).await,
            BareConn::Postgres(conn) => sqlx::query_scalar(sql).fetch_one(conn).await,
        }
        .map_err(|e| e.to_string())?;
        Ok(n.unsigned_abs())
    }
}

struct BareEvent {
    seq: i64,
    at: i64,
    kind: &'static str,
    subject: String,
    data: &'static str,
}

fn now_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
}

/// What the node writes for every task of the bench; bound per row all the same, as a
/// writer that does not know them in advance would.
const TARGET: &str = r#"{"agent":"noop"}"#;
const NAMESPACE: &str = "default";
const TASK_COLUMNS: &str = "id, namespace, target, agent, state, input, output, error, priority, attempt, \
     max_attempts, idempotency_key, durable, submitter, timeout_us, traceparent, owner, created_at, updated_at, \
     deadline_at";
/// The completion replaces the row, as the node's does.
const TASK_UPSERT: &str = " ON CONFLICT (id) DO UPDATE SET namespace = excluded.namespace, target = \
     excluded.target, agent = excluded.agent, state = excluded.state, input = excluded.input, output = \
     excluded.output, error = excluded.error, priority = excluded.priority, attempt = excluded.attempt, \
     max_attempts = excluded.max_attempts, idempotency_key = excluded.idempotency_key, durable = \
     excluded.durable, submitter = excluded.submitter, timeout_us = excluded.timeout_us, traceparent = \
     excluded.traceparent, owner = excluded.owner, created_at = excluded.created_at, updated_at = \
     excluded.updated_at, deadline_at = excluded.deadline_at";
const EVENT_COLUMNS: &str = "seq, emitted_at, kind, namespace, subject, data";
const ATTEMPT_COLUMNS: &str = "task_id, attempt, node_start, agent, state, error, started_at, finished_at";

/// A task row's varying columns: queued (inserted) or succeeded (completed).
struct TaskValues<'a> {
    task: &'a BareTask,
    agent: Option<&'static str>,
    state: &'static str,
    output: Option<&'static str>,
    attempt: i32,
}

impl<'a> TaskValues<'a> {
    fn of(task: &'a BareTask, done: bool) -> Self {
        if done {
            TaskValues { task, agent: Some("noop"), state: "succeeded", output: Some("null"), attempt: 1 }
        } else {
            TaskValues { task, agent: None, state: "queued", output: None, attempt: 0 }
        }
    }
}

/// `VALUES` lists of bare `?`, at most 500 rows a statement (DESIGN §8).
mod sqlite {
    use sqlx::sqlite::{SqliteArguments, SqliteConnection};
    use sqlx::{Connection, Sqlite};
    use uuid::Uuid;

    use super::{BareEvent, BareTask, TaskValues, ATTEMPT_COLUMNS, EVENT_COLUMNS, NAMESPACE, TARGET};
    use super::{TASK_COLUMNS, TASK_UPSERT};

    const ROWS: usize = 500;

    type Query<'q> = sqlx::query::Query<'q, Sqlite, SqliteArguments<'q>>;

    fn insert(table: &str, columns: &str, rows: usize, tail: &str) -> String {
        let row = format!("({})", vec!["?"; columns.split(',').count()].join(", "));
        format!("INSERT INTO {table} ({columns}) VALUES {}{tail}", vec![row.as_str(); rows].join(", "))
    }

    pub(super) async fn commit(
        conn: &mut SqliteConnection,
        new: &[BareTask],
        done: &[BareTask],
        events: &[BareEvent],
        node_start: Uuid,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        let mut tx = conn.begin().await?;
        for (tasks, completed) in [(new, false), (done, true)] {
            for chunk in tasks.chunks(ROWS) {
                let sql = insert("tasks", TASK_COLUMNS, chunk.len(), if completed { TASK_UPSERT } else { "" });
                let mut q: Query = sqlx::query(&sql);
                for t in chunk.iter().map(|t| TaskValues::of(t, completed)) {
                    q = q
                        .bind(t.task.id)
                        .bind(NAMESPACE)
                        .bind(TARGET)
                        .bind(t.agent)
                        .bind(t.state)
                        .bind("null")
                        .bind(t.output)
                        .bind(None::<&str>)
                        .bind(5_i16)
                        .bind(t.attempt)
                        .bind(1_i32)
                        .bind(None::<&str>)
                        .bind(true)
                        .bind(None::<&str>)
                        .bind(None::<i64>)
                        .bind(None::<&str>)
                        .bind(Some(node_start))
                        .bind(t.task.created_at)
                        .bind(now)
                        .bind(None::<i64>);
                }
                q.execute(&mut *tx).await?;
            }
        }
        for chunk in events.chunks(ROWS) {
            let sql = insert("events", EVENT_COLUMNS, chunk.len(), "");
            let mut q: Query = sqlx::query(&sql);
            for e in chunk {
                q = q.bind(e.seq).bind(e.at).bind(e.kind).bind(NAMESPACE).bind(e.subject.as_str()).bind(e.data);
            }
            q.execute(&mut *tx).await?;
        }
        for chunk in done.chunks(ROWS) {
            let sql = insert("task_attempts", ATTEMPT_COLUMNS, chunk.len(), "");
            let mut q: Query = sqlx::query(&sql);
            for t in chunk {
                q = q
                    .bind(t.id)
                    .bind(1_i32)
                    .bind(node_start)
                    .bind("noop")
                    .bind("succeeded")
                    .bind(None::<&str>)
                    .bind(t.created_at)
                    .bind(Some(now));
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await
    }
}

/// `INSERT … SELECT … FROM UNNEST($1::type[], …)`, one array per column: one statement
/// per table and kind of write, whatever the batch size.
mod postgres {
    use sqlx::postgres::PgConnection;
    use sqlx::Connection;
    use uuid::Uuid;

    use super::{BareEvent, BareTask, TaskValues, NAMESPACE, TARGET, TASK_COLUMNS, TASK_UPSERT};

    fn column<'a, T, U>(rows: &'a [T], value: impl Fn(&'a T) -> U) -> Vec<U> {
        rows.iter().map(value).collect()
    }

    pub(super) async fn commit(
        conn: &mut PgConnection,
        new: &[BareTask],
        done: &[BareTask],
        events: &[BareEvent],
        node_start: Uuid,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        let mut tx = conn.begin().await?;
        let insert = format!(
            "INSERT INTO tasks ({TASK_COLUMNS}) SELECT id, namespace, target, agent, state, input::json, \
             output::json, error, priority, attempt, max_attempts, idempotency_key, durable, submitter, \
             timeout_us, traceparent, owner, created_at, updated_at, deadline_at \
             FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], \
             $8::text[], $9::int2[], $10::int4[], $11::int4[], $12::text[], $13::bool[], $14::text[], $15::int8[], \
             $16::text[], $17::uuid[], $18::int8[], $19::int8[], $20::int8[]) AS u({TASK_COLUMNS})"
        );
        for (tasks, completed) in [(new, false), (done, true)] {
            if tasks.is_empty() {
                continue;
            }
            let rows: Vec<TaskValues> = tasks.iter().map(|t| TaskValues::of(t, completed)).collect();
            let sql = if completed { format!("{insert}{TASK_UPSERT}") } else { insert.clone() };
            sqlx::query(&sql)
                .bind(column(&rows, |t| t.task.id))
                .bind(column(&rows, |_| NAMESPACE))
                .bind(column(&rows, |_| TARGET))
                .bind(column(&rows, |t| t.agent))
                .bind(column(&rows, |t| t.state))
                .bind(column(&rows, |_| "null"))
                .bind(column(&rows, |t| t.output))
                .bind(column(&rows, |_| None::<&str>))
                .bind(column(&rows, |_| 5_i16))
                .bind(column(&rows, |t| t.attempt))
                .bind(column(&rows, |_| 1_i32))
                .bind(column(&rows, |_| None::<&str>))
                .bind(column(&rows, |_| true))
                .bind(column(&rows, |_| None::<&str>))
                .bind(column(&rows, |_| None::<i64>))
                .bind(column(&rows, |_| None::<&str>))
                .bind(column(&rows, |_| Some(node_start)))
                .bind(column(&rows, |t| t.task.created_at))
                .bind(column(&rows, |_| now))
                .bind(column(&rows, |_| None::<i64>))
                .execute(&mut *tx)
                .await?;
        }
        if !events.is_empty() {
            sqlx::query(
                "INSERT INTO events (seq, emitted_at, kind, namespace, subject, data) \
                 SELECT seq, emitted_at, kind, namespace, subject, data::json \
                 FROM UNNEST($1::int8[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::text[]) \
                 AS u(seq, emitted_at, kind, namespace, subject, data)",
            )
            .bind(column(events, |e| e.seq))
            .bind(column(events, |e| e.at))
            .bind(column(events, |e| e.kind))
            .bind(column(events, |_| NAMESPACE))
            .bind(column(events, |e| e.subject.as_str()))
            .bind(column(events, |e| e.data))
            .execute(&mut *tx)
            .await?;
        }
        if !done.is_empty() {
            sqlx::query(
                "INSERT INTO task_attempts (task_id, attempt, node_start, agent, state, error, started_at, \
                 finished_at) SELECT * FROM UNNEST($1::uuid[], $2::int4[], $3::uuid[], $4::text[], $5::text[], \
                 $6::text[], $7::int8[], $8::int8[])",
            )
            .bind(column(done, |t| t.id))
            .bind(column(done, |_| 1_i32))
            .bind(column(done, |_| node_start))
            .bind(column(done, |_| "noop"))
            .bind(column(done, |_| "succeeded"))
            .bind(column(done, |_| None::<&str>))
            .bind(column(done, |t| t.created_at))
            .bind(column(done, |_| Some(now)))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    }
}
