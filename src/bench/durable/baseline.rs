//! The `durable` baseline: bare sqlx on one connection, no actors and no `Store` adapter,
//! writing the rows the node writes for each task, in multi-row statements.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous};
use sqlx::ConnectOptions;
use uuid::Uuid;

use super::Params;
use crate::config::SyncMode;
use crate::store::{open, Backend, StoreOptions};

/// The baseline: one bare sqlx connection.
pub(super) struct Bare {
    conn: BareConn,
    /// Event sequence, continued across rounds like the node's.
    seq: i64,
    node_start: Uuid,
    pub rows: u64,
    pub commits: u64,
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
    pub const ROWS_PER_TASK: u64 = 6;

    /// Creates the schema with the store's migrations, then connects bare, with the
    /// settings the store uses (WAL and `synchronous`; `synchronous_commit=on`).
    pub async fn connect(p: &Params, url: &str) -> Result<Bare, String> {
        let mut options = StoreOptions::new(url);
        options.sync = p.sync;
        let migrated = open(&options).await.map_err(|e| e.to_string())?;
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
    pub async fn round(&mut self, tasks: usize, batch: usize) -> Result<(f64, Vec<u64>), String> {
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

    pub async fn count_succeeded(&mut self) -> Result<u64, String> {
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
/// The node's own column lists and task upsert (the completion updates the columns
/// that can change, as the node's does), so both sides write the same rows.
use crate::store::{
    task_upsert, ATTEMPT_ROW as ATTEMPT_COLUMNS, EVENT_ROW as EVENT_COLUMNS, TASK_ROW as TASK_COLUMNS,
};

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

/// `VALUES` lists of bare `?`, at most the store's rows per statement (DESIGN §8).
mod sqlite {
    use sqlx::sqlite::{SqliteArguments, SqliteConnection};
    use sqlx::{Connection, Sqlite};
    use uuid::Uuid;

    use super::{task_upsert, TASK_COLUMNS};
    use super::{BareEvent, BareTask, TaskValues, ATTEMPT_COLUMNS, EVENT_COLUMNS, NAMESPACE, TARGET};

    const ROWS: usize = crate::store::MAX_ROWS;

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
        let upsert = task_upsert();
        for (tasks, completed) in [(new, false), (done, true)] {
            for chunk in tasks.chunks(ROWS) {
                let sql = insert("tasks", TASK_COLUMNS, chunk.len(), if completed { &upsert } else { "" });
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
                q = q
                    .bind(e.seq)
                    .bind(e.at)
                    .bind(e.kind)
                    .bind(NAMESPACE)
                    .bind(e.subject.as_str())
                    .bind(e.data);
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

    use super::{task_upsert, BareEvent, BareTask, TaskValues, NAMESPACE, TARGET, TASK_COLUMNS};

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
            let sql = if completed { format!("{insert}{}", task_upsert()) } else { insert.clone() };
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
