//! SQLite: the embedded default (a file under `node.data_dir`, WAL).

use std::str::FromStr;
use std::time::Duration;

use futures::future::BoxFuture;
use mark1_actors::ports::StoreError;
use sqlx::query::Query;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions,
    SqliteQueryResult, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection, Pool, Sqlite};

use super::error::classify;
use super::migrations::{self, Files};
use super::write::{
    rows_per_statement, Grouped, Table, AGENTS, API_KEYS, ATTEMPTS, AUDIT, EVENTS, JOURNAL, RUNS, SCANS,
    TASKS, USAGE, WORKFLOWS,
};
use super::{Dialect, SqlStore, StoreOpenError, StoreOptions};
use crate::config::SyncMode;

mod checkpoint;

pub(crate) use checkpoint::Checkpointer;

/// Readers besides the one writer connection; WAL lets them read while it commits.
const READERS: u32 = 4;

/// How long a statement waits for a lock another process holds (`mark1 migrate` while a
/// node runs) before it fails as unavailable.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// SQLITE_MAX_VARIABLE_NUMBER of the bundled SQLite (3.32 and later).
const MAX_PARAMS: usize = 32_766;

impl Dialect for Sqlite {
    /// Claims run on the one writer connection, so they never overlap in this process; a
    /// second process waits for the write lock.
    const CLAIM_LOCK: &'static str = "";
    const MIGRATIONS: Files = migrations::SQLITE;
    const HAS_MIGRATIONS_TABLE: &'static str = "SELECT EXISTS (SELECT 1 FROM sqlite_master \
         WHERE type = 'table' AND name = '_sqlx_migrations') AS present";

    fn param(_: usize) -> String {
        "?".into()
    }

    fn write(pool: &Pool<Sqlite>, batch: Grouped) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(write(pool, batch))
    }

    fn rows_affected(result: &SqliteQueryResult) -> u64 {
        result.rows_affected()
    }
}

/// Opens the writer (creating the file and its folder) and the readers.
pub(super) async fn connect(options: &StoreOptions, url: &str) -> Result<SqlStore<Sqlite>, StoreOpenError> {
    let unreachable =
        |e: sqlx::Error| StoreOpenError::Unreachable { url: url.into(), message: e.to_string() };
    let invalid = |e: sqlx::Error| StoreOpenError::InvalidUrl { url: url.into(), message: e.to_string() };
    let in_memory = options.url.contains(":memory:") || options.url.contains("mode=memory");
    let connect = SqliteConnectOptions::from_str(&options.url)
        .map_err(invalid)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(match options.sync {
            SyncMode::Full => SqliteSynchronous::Full,
            SyncMode::Normal => SqliteSynchronous::Normal,
        })
        .busy_timeout(BUSY_TIMEOUT);
    if !in_memory {
        if let Some(dir) = connect.get_filename().parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|source| StoreOpenError::CreateDir { path: dir.to_path_buf(), source })?;
        }
    }
    // One connection first, for its error: a pool would retry until its timeout and then
    // report only that it timed out.
    connect.connect().await.map_err(unreachable)?.close().await.map_err(unreachable)?;
    let writer = single_connection(&connect).await.map_err(unreachable)?;
    // An in-memory database exists once per connection (or per shared cache, which the
    // pool may close when idle): one connection serves reads and writes, and has no WAL.
    if in_memory {
        return SqlStore::new(writer.clone(), writer);
    }
    let reader = SqlitePoolOptions::new()
        .max_connections(READERS)
        .test_before_acquire(false)
        .connect_lazy_with(connect.clone().pragma("query_only", "ON"));
    let checkpoints = single_connection(&connect).await.map_err(unreachable)?;
    let mut store = SqlStore::new(writer, reader)?;
    store.checkpointer = Some(Checkpointer::start(checkpoints, store.io.handle()));
    Ok(store)
}

/// A pool of one connection that lives as long as the store: reopening costs a file
/// open and the pragmas.
async fn single_connection(connect: &SqliteConnectOptions) -> Result<Pool<Sqlite>, sqlx::Error> {
    SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .test_before_acquire(false)
        .connect_with(connect.clone())
        .await
}

type Bound<'q> = Query<'q, Sqlite, SqliteArguments<'q>>;

/// One transaction; each table as `INSERT … VALUES (…), (…) [ON CONFLICT … DO UPDATE]`
/// statements of as many rows as the parameter limit allows.
async fn write(pool: &Pool<Sqlite>, batch: Grouped) -> Result<(), StoreError> {
    let mut tx = pool.begin().await.map_err(classify)?;
    values(&mut tx, &TASKS, batch.tasks, |q, t| {
        q.bind(t.id)
            .bind(t.namespace)
            .bind(t.target)
            .bind(t.agent)
            .bind(t.state)
            .bind(t.input)
            .bind(t.output)
            .bind(t.error)
            .bind(t.priority)
            .bind(t.attempt)
            .bind(t.max_attempts)
            .bind(t.idempotency_key)
            .bind(t.durable)
            .bind(t.submitter)
            .bind(t.timeout_us)
            .bind(t.traceparent)
            .bind(t.owner)
            .bind(t.created_at)
            .bind(t.updated_at)
            .bind(t.deadline_at)
    })
    .await?;
    values(&mut tx, &ATTEMPTS, batch.attempts, |q, a| {
        q.bind(a.task_id)
            .bind(a.attempt)
            .bind(a.node_start)
            .bind(a.agent)
            .bind(a.state)
            .bind(a.error)
            .bind(a.started_at)
            .bind(a.finished_at)
    })
    .await?;
    values(&mut tx, &EVENTS, batch.events, |q, e| {
        q.bind(e.seq).bind(e.emitted_at).bind(e.kind).bind(e.namespace).bind(e.subject).bind(e.data)
    })
    .await?;
    values(&mut tx, &AGENTS, batch.agents, |q, a| q.bind(a.namespace).bind(a.name).bind(a.spec)).await?;
    for chunk in batch.removed_agents.chunks(rows_per_statement(MAX_PARAMS, 2)) {
        let pairs = vec!["(?, ?)"; chunk.len()].join(", ");
        let sql = format!("DELETE FROM agents WHERE (namespace, name) IN (VALUES {pairs})");
        let query =
            chunk.iter().fold(sqlx::query(&sql), |q, (ns, name)| q.bind(ns.clone()).bind(name.clone()));
        query.persistent(false).execute(&mut *tx).await.map_err(classify)?;
    }
    values(&mut tx, &API_KEYS, batch.api_keys, |q, k| {
        q.bind(k.id)
            .bind(k.sha256)
            .bind(k.name)
            .bind(k.role)
            .bind(k.namespace)
            .bind(k.created_by)
            .bind(k.created_at)
            .bind(k.expires_at)
            .bind(k.revoked_at)
    })
    .await?;
    for (id, at) in batch.revoked_keys {
        sqlx::query("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?")
            .bind(at)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
    }
    values(&mut tx, &AUDIT, batch.audit, |q, a| {
        q.bind(a.node)
            .bind(a.seq)
            .bind(a.recorded_at)
            .bind(a.actor)
            .bind(a.action)
            .bind(a.namespace)
            .bind(a.subject)
            .bind(a.outcome)
            .bind(a.request_id)
            .bind(a.data)
            .bind(a.prev_hash)
            .bind(a.hash)
    })
    .await?;
    values(&mut tx, &WORKFLOWS, batch.workflows, |q, w| {
        q.bind(w.namespace).bind(w.name).bind(w.version).bind(w.spec).bind(w.created_at)
    })
    .await?;
    values(&mut tx, &RUNS, batch.runs, |q, r| {
        q.bind(r.id)
            .bind(r.namespace)
            .bind(r.workflow)
            .bind(r.workflow_version)
            .bind(r.state)
            .bind(r.input)
            .bind(r.output)
            .bind(r.error)
            .bind(r.idempotency_key)
            .bind(r.submitter)
            .bind(r.durable)
            .bind(r.parent_run)
            .bind(r.parent_step)
            .bind(r.owner)
            .bind(r.created_at)
            .bind(r.updated_at)
    })
    .await?;
    values(&mut tx, &JOURNAL, batch.journal, |q, j| {
        q.bind(j.run_id)
            .bind(j.seq)
            .bind(j.step)
            .bind(j.attempt)
            .bind(j.kind)
            .bind(j.data)
            .bind(j.recorded_at)
    })
    .await?;
    values(&mut tx, &USAGE, batch.usage, |q, u| {
        q.bind(u.id)
            .bind(u.namespace)
            .bind(u.task_id)
            .bind(u.run_id)
            .bind(u.agent)
            .bind(u.provider)
            .bind(u.model)
            .bind(u.prompt_tokens)
            .bind(u.completion_tokens)
            .bind(u.cost)
            .bind(u.latency_us)
            .bind(u.first_token_us)
            .bind(u.ended_at)
    })
    .await?;
    values(&mut tx, &SCANS, batch.scans, |q, s| {
        let [files, llm_calls, agents, tools, mcp, problems] = s.counts;
        q.bind(s.id)
            .bind(s.namespace)
            .bind(s.path)
            .bind(s.state)
            .bind(s.submitter)
            .bind(s.error)
            .bind(files)
            .bind(llm_calls)
            .bind(agents)
            .bind(tools)
            .bind(mcp)
            .bind(problems)
            .bind(s.result)
            .bind(s.created_at)
            .bind(s.finished_at)
    })
    .await?;
    tx.commit().await.map_err(classify)
}

/// Bare `?` placeholders: sqlx asks SQLite the name of every parameter, and for numbered
/// ones (`$N`, `?N`) SQLite scans a list as long as the statement's parameters, which is
/// quadratic in a 10,000-parameter statement (measured: 95 % of a batch's time).
///
/// Each statement has room for one of a few numbers of rows (`statement_rows`), so a
/// table needs at most 18 statement texts, which stay prepared in the
/// connection's statement cache: preparing a 60-row upsert anew for every commit cost
/// as much as running it (measured: 1.3–1.7 ms against 0.95 ms for a commit of 63
/// tasks). The rows a statement has no data for stay unbound, which SQLite reads as
/// NULL, and `WHERE column1 IS NOT NULL` leaves them out (every table's first column is
/// a NOT NULL key).
async fn values<R>(
    conn: &mut SqliteConnection,
    table: &Table,
    rows: Vec<R>,
    bind: impl for<'q> Fn(Bound<'q>, R) -> Bound<'q>,
) -> Result<(), StoreError> {
    let columns = table.columns().count();
    let limit = rows_per_statement(MAX_PARAMS, columns);
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<R> = rows.by_ref().take(limit).collect();
        let sql = padded_insert(table, columns, statement_rows(chunk.len(), limit));
        let query = chunk.into_iter().fold(sqlx::query(&sql), &bind);
        query.execute(&mut *conn).await.map_err(classify)?;
    }
    Ok(())
}

/// Rows of room in the statement that carries `rows` rows: the next of 1, 2, 3, 4, 6, 8,
/// 12, 16, … (powers of two and one and a half times them: at most a third of a
/// statement is padding), at most `limit`.
fn statement_rows(rows: usize, limit: usize) -> usize {
    let power = rows.next_power_of_two();
    let between = power / 4 * 3;
    (if rows <= between { between } else { power }).max(rows).min(limit)
}

/// `INSERT INTO t (…) SELECT * FROM (VALUES (?, …), …) WHERE column1 IS NOT NULL [ON
/// CONFLICT …]` with room for `rows` rows. (The WHERE clause also settles SQLite's
/// parsing ambiguity between `INSERT … SELECT` and an upsert's `ON`.)
fn padded_insert(table: &Table, columns: usize, rows: usize) -> String {
    let row = format!("({})", vec!["?"; columns].join(", "));
    let values = vec![row.as_str(); rows].join(", ");
    format!(
        "INSERT INTO {} ({}) SELECT * FROM (VALUES {values}) WHERE column1 IS NOT NULL{}",
        table.name,
        table.columns,
        table.tail()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_come_in_few_sizes() {
        let room = |rows| statement_rows(rows, 512);
        assert_eq!([1, 2, 3, 4, 5, 6, 7, 8, 9].map(room), [1, 2, 3, 4, 6, 6, 8, 8, 12]);
        assert_eq!([63, 64, 65, 300, 385, 512].map(room), [64, 64, 96, 384, 512, 512]);
        assert_eq!([40, 49].map(|rows| statement_rows(rows, 49)), [48, 49]);
        let sizes: std::collections::BTreeSet<usize> = (1..=512).map(room).collect();
        assert_eq!(sizes.len(), 18);
        assert!((1..=512).all(|n| room(n) >= n && room(n) * 2 <= n * 3 + 1));
    }

    #[test]
    fn padded_rows_are_left_out() {
        let agents =
            Table { name: "agents", columns: "namespace, name, spec", json: &[], key: &[], fixed: &[] };
        assert_eq!(
            padded_insert(&agents, 3, 2),
            "INSERT INTO agents (namespace, name, spec) SELECT * FROM (VALUES (?, ?, ?), (?, ?, ?)) \
             WHERE column1 IS NOT NULL"
        );
    }
}
