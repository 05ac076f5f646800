//! The durable `Store` (DESIGN §8): sqlx adapters for SQLite and PostgreSQL behind the
//! `actors` crate's port.
//!
//! | module | what it holds |
//! |---|---|
//! | [`open`](open_store) | URLs, passwords, redaction, connecting, migrations and the schema version check |
//! | `sqlite`, `postgres` | each backend's connection settings, SQL differences (`Dialect`) and batch writer |
//! | `write` | `write_batch`'s grouping of writes by table, and the tables' column lists |
//! | `migrations` | the migrations embedded in the binary |
//! | `rows` | how domain values become columns and back (times, ids, JSON) |
//! | `runs` | the reads of workflows, runs and journals, and the claim of orphaned runs |
//! | `usage` | the reads of model usage: totals per namespace and grouped reports |
//! | `error` | which database failures are `Unavailable` and which `Rejected` |
//! | `io` | the store's own thread, on which batches are committed |
//!
//! One generic `SqlStore` serves both backends: reads, leases, claims and pruning share
//! their SQL (`$1` placeholders work on both); what differs sits in `Dialect`, the batch
//! writer above all (`VALUES` lists on SQLite, `UNNEST` of arrays on PostgreSQL).

mod error;
mod io;
mod migrations;
mod open;
mod postgres;
mod rows;
mod runs;
mod scans;
mod sqlite;
mod usage;
mod write;

use std::time::SystemTime;

use futures::future::BoxFuture;
use mark1_actors::domain::scan::{ScanId, ScanRecord};
use mark1_actors::domain::workflow::{JournalEntry, RunId, RunRecord, WorkflowRecord};
use mark1_actors::domain::{
    AgentSpec, ApiKeyRecord, AuditHead, AuditRecord, Event, Target, TaskId, TaskRecord, TaskState,
};
use mark1_actors::ports::{
    AttemptRecord, NodeStart, RunQuery, ScanQuery, Store, StoreError, TaskQuery, UsageQuery, UsageRow,
    UsageTotal, Write,
};
use serde_json::Value;
use sqlx::database::HasStatementCache;
use sqlx::types::Json;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};
use uuid::Uuid;

pub use migrations::newest_schema_version;
pub use open::{open, open_store, redact, with_database, OpenedStore, StoreOpenError, StoreOptions};
pub(crate) use rows::{ATTEMPT_COLUMNS as ATTEMPT_ROW, EVENT_COLUMNS as EVENT_ROW, TASK_COLUMNS as TASK_ROW};
/// For `bench durable`'s bare-sqlx baseline, which must write exactly the node's rows.
pub(crate) use write::MAX_ROWS;

/// The node's task upsert tail (`ON CONFLICT (id) DO UPDATE SET …` of the columns that
/// can change), for the same baseline.
pub(crate) fn task_upsert() -> String {
    write::TASKS.tail()
}

use error::classify;
use rows::{
    micros, API_KEY_COLUMNS, ATTEMPT_COLUMNS, AUDIT_COLUMNS, EVENT_COLUMNS, RUN_FINISHED, TASK_COLUMNS,
    UNFINISHED,
};

/// Which database a store runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// What differs between the backends' SQL.
pub(crate) trait Dialect: Database + HasStatementCache {
    /// Ends a claim's row selection: on PostgreSQL, locks the rows and skips those another
    /// node is claiming, so two nodes never take the same task.
    const CLAIM_LOCK: &'static str;
    /// The migrations of this backend, oldest first.
    const MIGRATIONS: migrations::Files;
    /// A query answering one row with a boolean column `present`: whether sqlx's migration
    /// table exists.
    const HAS_MIGRATIONS_TABLE: &'static str;
    /// The placeholder of the `n`th (1-based) parameter of a statement with many of them,
    /// bound in order: `?` on SQLite (numbered ones cost it a quadratic lookup, see
    /// `sqlite.rs`), `$n` on PostgreSQL.
    fn param(n: usize) -> String;
    /// Applies a batch's writes in one transaction, every table with multi-row statements
    /// (the fastest form differs: `VALUES` lists on SQLite, `UNNEST` of arrays on PostgreSQL).
    fn write(pool: &Pool<Self>, batch: write::Grouped) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Rows a statement changed (each backend's result type has its own method).
    fn rows_affected(result: &Self::QueryResult) -> u64;
}

/// Finished task states, spelled as the `(state, updated_at)` index is searched by prune.
const FINISHED: &str = "('succeeded', 'failed', 'cancelled', 'timed_out')";

/// A store on SQLite or PostgreSQL. Writes (batches, leases, claims, pruning) go through
/// `writer`, reads through `reader`: on SQLite one writer connection and a small pool of
/// readers (WAL lets them read while it writes), on PostgreSQL one pool for both.
pub(crate) struct SqlStore<DB: Database> {
    writer: Pool<DB>,
    reader: Pool<DB>,
    io: io::Io,
    /// SQLite files only: copies the WAL into the database between commits.
    checkpointer: Option<sqlite::Checkpointer>,
}

impl<DB: Database> SqlStore<DB> {
    fn new(writer: Pool<DB>, reader: Pool<DB>) -> Result<Self, StoreOpenError> {
        let io = io::Io::new().map_err(StoreOpenError::Thread)?;
        Ok(SqlStore { writer, reader, io, checkpointer: None })
    }

    /// Closes every connection (SQLite checkpoints its WAL when the last one closes).
    pub async fn close(&self) {
        if let Some(checkpointer) = &self.checkpointer {
            checkpointer.close().await;
        }
        self.writer.close().await;
        self.reader.close().await;
    }
}

fn clamp_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The `WHERE` clause of the filters a query sets: each `(set, "column op")` that is set
/// adds `column op $n`, numbered in order, so the caller binds the values in the same
/// order. Returns the clause (empty with no filter) and how many parameters it takes.
fn where_clause(filters: &[(bool, &str)]) -> (String, usize) {
    let conditions: Vec<String> = filters
        .iter()
        .filter(|(set, _)| *set)
        .enumerate()
        .map(|(i, (_, condition))| format!("{condition} ${}", i + 1))
        .collect();
    let clause =
        if conditions.is_empty() { String::new() } else { format!(" WHERE {}", conditions.join(" AND ")) };
    (clause, conditions.len())
}

/// The claim of orphans of `table` (tasks or runs), bound `$1` the claiming start, `$2`
/// its node, `$3` now, `$4` the limit; returns the claimed rows' `columns`.
///
/// One statement, so the claim is atomic. SQLite has no UPDATE … LIMIT by default, hence
/// the selection first, in a WITH clause that runs once. When PostgreSQL locks a row that
/// another claim has just taken, it re-checks the row's condition on its new version, but
/// not a join's: with the live leases as a join (a LEFT JOIN, or NOT EXISTS, which it
/// turns into one) the taken row passed again and was claimed twice. `NOT IN (subselect)`
/// stays a condition on the row, re-checked with the new owner.
fn claim_sql(table: &str, unfinished: &str, columns: &str, lock: &str) -> String {
    format!(
        "WITH orphans AS (\
           SELECT t.id AS orphan FROM {table} t \
           WHERE t.state IN {unfinished} AND t.owner <> $1 \
           AND t.owner NOT IN (SELECT n.id FROM nodes n WHERE n.name <> $2 AND n.lease_expires_at >= $3) \
           ORDER BY t.id LIMIT $4 {lock}) \
         UPDATE {table} SET owner = $1 WHERE id IN (SELECT orphan FROM orphans) \
         RETURNING {columns}"
    )
}

#[async_trait::async_trait]
impl<DB> Store for SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> Uuid: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Vec<u8>: Decode<'q, DB> + Type<DB>,
    for<'q> i32: Decode<'q, DB> + Type<DB>,
    for<'q> i16: Decode<'q, DB> + Type<DB>,
    for<'q> bool: Decode<'q, DB> + Type<DB>,
    for<'q> f64: Decode<'q, DB> + Type<DB>,
    for<'q> Json<Value>: Decode<'q, DB> + Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
{
    fn commit_runtime(&self) -> Option<tokio::runtime::Handle> {
        Some(self.io.handle().clone())
    }

    /// The rows are made here, from the borrowed writes; the commit runs on the store's
    /// thread (`io`).
    async fn write_batch(&self, writes: &[Write]) -> Result<(), StoreError> {
        let (batch, pool) = (write::Grouped::new(writes)?, self.writer.clone());
        self.io.run(async move { DB::write(&pool, batch).await }).await?;
        if let Some(checkpointer) = &self.checkpointer {
            checkpointer.committed();
        }
        Ok(())
    }

    async fn task(&self, id: TaskId) -> Result<Option<TaskRecord>, StoreError> {
        let sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1");
        let row = sqlx::query(&sql).bind(id.0).fetch_optional(&self.reader).await.map_err(classify)?;
        row.map(|r| rows::task_from_row(&r)).transpose().map_err(classify)
    }

    async fn task_by_idempotency_key(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<Option<TaskRecord>, StoreError> {
        let sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE namespace = $1 AND idempotency_key = $2");
        let row = sqlx::query(&sql)
            .bind(namespace.to_string())
            .bind(key.to_string())
            .fetch_optional(&self.reader)
            .await
            .map_err(classify)?;
        row.map(|r| rows::task_from_row(&r)).transpose().map_err(classify)
    }

    async fn count_tasks(&self, state: TaskState) -> Result<u64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM tasks WHERE state = $1")
            .bind(state.as_str().to_string())
            .fetch_one(&self.reader)
            .await
            .map_err(classify)?;
        let n: i64 = row.try_get("n").map_err(classify)?;
        Ok(n.unsigned_abs())
    }

    async fn attempts(&self, id: TaskId) -> Result<Vec<AttemptRecord>, StoreError> {
        let sql = format!("SELECT {ATTEMPT_COLUMNS} FROM task_attempts WHERE task_id = $1 ORDER BY attempt");
        let found = sqlx::query(&sql).bind(id.0).fetch_all(&self.reader).await.map_err(classify)?;
        found.iter().map(rows::attempt_from_row).collect::<Result<_, _>>().map_err(classify)
    }

    async fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE seq > $1 ORDER BY seq LIMIT $2");
        let found = sqlx::query(&sql)
            .bind(clamp_i64(after))
            .bind(clamp_i64(limit as u64))
            .fetch_all(&self.reader)
            .await
            .map_err(classify)?;
        found.iter().map(rows::event_from_row).collect::<Result<_, _>>().map_err(classify)
    }

    async fn last_event_seq(&self) -> Result<u64, StoreError> {
        let row = sqlx::query("SELECT MAX(seq) AS seq FROM events")
            .fetch_one(&self.reader)
            .await
            .map_err(classify)?;
        let seq: Option<i64> = row.try_get("seq").map_err(classify)?;
        Ok(seq.map_or(0, i64::unsigned_abs))
    }

    async fn agents(&self) -> Result<Vec<AgentSpec>, StoreError> {
        let found = sqlx::query("SELECT spec FROM agents ORDER BY namespace, name")
            .fetch_all(&self.reader)
            .await
            .map_err(classify)?;
        found.iter().map(rows::agent_from_row).collect::<Result<_, _>>().map_err(classify)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.reader).await.map(drop).map_err(classify)
    }

    async fn open_lease(&self, start: &NodeStart) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO nodes (id, name, started_at, lease_expires_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, started_at = excluded.started_at, \
             lease_expires_at = excluded.lease_expires_at",
        )
        .bind(start.id)
        .bind(start.node.clone())
        .bind(micros(start.started_at)?)
        .bind(micros(start.lease_until)?)
        .execute(&self.writer)
        .await
        .map(drop)
        .map_err(classify)
    }

    async fn renew_lease(&self, start: Uuid, until: SystemTime) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE nodes SET lease_expires_at = $2 WHERE id = $1")
            .bind(start)
            .bind(micros(until)?)
            .execute(&self.writer)
            .await
            .map_err(classify)?;
        // A start whose row is gone was closed or taken over: it must not go on as owner.
        if DB::rows_affected(&done) == 0 {
            return Err(StoreError::Rejected(format!("no lease for node start {start}")));
        }
        Ok(())
    }

    async fn close_lease(&self, start: Uuid) -> Result<(), StoreError> {
        // Expired, not deleted: what the start left unfinished becomes claimable at once.
        sqlx::query("UPDATE nodes SET lease_expires_at = 0 WHERE id = $1")
            .bind(start)
            .execute(&self.writer)
            .await
            .map(drop)
            .map_err(classify)
    }

    async fn claim_orphans(
        &self,
        start: &NodeStart,
        now: SystemTime,
        limit: usize,
    ) -> Result<Vec<TaskRecord>, StoreError> {
        let sql = claim_sql("tasks", UNFINISHED, TASK_COLUMNS, DB::CLAIM_LOCK);
        self.claim(&sql, start, now, limit, rows::task_from_row, |t| t.id).await
    }

    async fn prune(&self, before: SystemTime, limit: usize) -> Result<u64, StoreError> {
        if limit == 0 {
            return Ok(0);
        }
        let (before, limit) = (micros(before)?, clamp_i64(limit as u64));
        let mut tx = self.writer.begin().await.map_err(classify)?;
        let mut deleted = 0;
        // Finished tasks with their attempts, finished runs with their journals.
        for (table, finished, child, parent) in
            [("tasks", FINISHED, "task_attempts", "task_id"), ("runs", RUN_FINISHED, "run_journal", "run_id")]
        {
            let old = sqlx::query(&format!(
                "SELECT id FROM {table} WHERE state IN {finished} AND updated_at < $1 LIMIT $2"
            ))
            .bind(before)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await
            .map_err(classify)?;
            let ids: Vec<Uuid> =
                old.iter().map(|r| r.try_get("id")).collect::<Result<_, _>>().map_err(classify)?;
            for chunk in ids.chunks(write::MAX_ROWS) {
                let list: Vec<String> = (1..=chunk.len()).map(DB::param).collect();
                for (table, column) in [(child, parent), (table, "id")] {
                    let sql = format!("DELETE FROM {table} WHERE {column} IN ({})", list.join(", "));
                    let query = chunk.iter().fold(sqlx::query::<DB>(&sql), |q, id| q.bind(*id));
                    query.persistent(false).execute(&mut *tx).await.map_err(classify)?;
                }
            }
            deleted += ids.len() as u64;
        }
        let events = sqlx::query(
            "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE emitted_at < $1 ORDER BY seq LIMIT $2)",
        )
        .bind(before)
        .bind(limit)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        // Oldest first, by the `(ended_at)` index.
        let usage = sqlx::query(
            "DELETE FROM model_usage WHERE id IN \
             (SELECT id FROM model_usage WHERE ended_at < $1 ORDER BY ended_at LIMIT $2)",
        )
        .bind(before)
        .bind(limit)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        // Like the in-memory store: tasks, runs, events and usage records; a task's
        // attempts and a run's journal go with it.
        Ok(deleted + DB::rows_affected(&events) + DB::rows_affected(&usage))
    }

    /// One statement text per combination of filters (at most 32, all kept prepared); a
    /// namespace's tasks come from the `(namespace, id)` index newest first.
    async fn list_tasks(&self, query: &TaskQuery) -> Result<Vec<TaskRecord>, StoreError> {
        let mut n = 0;
        let mut param = || {
            n += 1;
            format!("${n}")
        };
        let mut conditions = Vec::new();
        if query.namespace.is_some() {
            conditions.push(format!("namespace = {}", param()));
        }
        if query.state.is_some() {
            conditions.push(format!("state = {}", param()));
        }
        if query.agent.is_some() {
            // Run by it, or addressed to it and not dispatched yet (`agent` is set then).
            conditions.push(format!("(agent = {} OR target = {})", param(), param()));
        }
        if query.submitter.is_some() {
            conditions.push(format!("submitter = {}", param()));
        }
        if query.before.is_some() {
            conditions.push(format!("id < {}", param()));
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        };
        let sql = format!("SELECT {TASK_COLUMNS} FROM tasks{filter} ORDER BY id DESC LIMIT {}", param());
        let mut select = sqlx::query(&sql);
        if let Some(namespace) = &query.namespace {
            select = select.bind(namespace.clone());
        }
        if let Some(state) = query.state {
            select = select.bind(state.as_str().to_string());
        }
        if let Some(agent) = &query.agent {
            let target = rows::json_text(&Target::Agent(agent.clone()))?;
            select = select.bind(agent.clone()).bind(target);
        }
        if let Some(submitter) = &query.submitter {
            select = select.bind(submitter.clone());
        }
        if let Some(before) = query.before {
            select = select.bind(before.0);
        }
        let found =
            select.bind(clamp_i64(query.limit as u64)).fetch_all(&self.reader).await.map_err(classify)?;
        found.iter().map(rows::task_from_row).collect::<Result<_, _>>().map_err(classify)
    }

    async fn usage_totals(&self, since: SystemTime) -> Result<Vec<UsageTotal>, StoreError> {
        self.select_usage_totals(since).await
    }

    async fn usage_report(&self, query: &UsageQuery) -> Result<Vec<UsageRow>, StoreError> {
        self.select_usage_report(query).await
    }

    async fn workflow(
        &self,
        namespace: &str,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<WorkflowRecord>, StoreError> {
        self.find_workflow(namespace, name, version).await
    }

    async fn workflows(&self, namespace: Option<&str>) -> Result<Vec<WorkflowRecord>, StoreError> {
        self.list_workflows(namespace).await
    }

    async fn scan(&self, id: ScanId) -> Result<Option<ScanRecord>, StoreError> {
        self.find_scan(id).await
    }

    async fn scan_result(&self, id: ScanId) -> Result<Option<String>, StoreError> {
        self.find_scan_result(id).await
    }

    async fn list_scans(&self, query: &ScanQuery) -> Result<Vec<ScanRecord>, StoreError> {
        self.select_scans(query).await
    }

    async fn run(&self, id: RunId) -> Result<Option<RunRecord>, StoreError> {
        self.find_run(id).await
    }

    async fn run_by_idempotency_key(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<Option<RunRecord>, StoreError> {
        self.find_run_by_key(namespace, key).await
    }

    async fn list_runs(&self, query: &RunQuery) -> Result<Vec<RunRecord>, StoreError> {
        self.select_runs(query).await
    }

    async fn journal(&self, run: RunId) -> Result<Vec<JournalEntry>, StoreError> {
        self.select_journal(run).await
    }

    async fn claim_orphan_runs(
        &self,
        start: &NodeStart,
        now: SystemTime,
        limit: usize,
    ) -> Result<Vec<RunRecord>, StoreError> {
        self.claim_runs(start, now, limit).await
    }

    async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let sql = format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE id = $1");
        let row =
            sqlx::query(&sql).bind(id.to_string()).fetch_optional(&self.reader).await.map_err(classify)?;
        row.map(|r| rows::api_key_from_row(&r)).transpose().map_err(classify)
    }

    async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let sql = format!("SELECT {API_KEY_COLUMNS} FROM api_keys ORDER BY created_at, id");
        let found = sqlx::query(&sql).fetch_all(&self.reader).await.map_err(classify)?;
        found.iter().map(rows::api_key_from_row).collect::<Result<_, _>>().map_err(classify)
    }

    async fn revoke_api_key(&self, id: &str, at: SystemTime) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1")
            .bind(id.to_string())
            .bind(micros(at)?)
            .execute(&self.writer)
            .await
            .map_err(classify)?;
        Ok(DB::rows_affected(&done) > 0)
    }

    async fn audit_records(
        &self,
        node: Option<&str>,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let (after, limit) = (clamp_i64(after_seq), clamp_i64(limit as u64));
        let found = match node {
            Some(node) => {
                let sql = format!(
                    "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE node = $1 AND seq > $2 ORDER BY seq LIMIT $3"
                );
                sqlx::query(&sql).bind(node.to_string()).bind(after).bind(limit).fetch_all(&self.reader).await
            }
            None => {
                let sql = format!(
                    "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY node, seq LIMIT $2"
                );
                sqlx::query(&sql).bind(after).bind(limit).fetch_all(&self.reader).await
            }
        }
        .map_err(classify)?;
        found.iter().map(rows::audit_from_row).collect::<Result<_, _>>().map_err(classify)
    }

    async fn audit_head(&self, node: &str) -> Result<Option<AuditHead>, StoreError> {
        let row = sqlx::query("SELECT seq, hash FROM audit_log WHERE node = $1 ORDER BY seq DESC LIMIT 1")
            .bind(node.to_string())
            .fetch_optional(&self.reader)
            .await
            .map_err(classify)?;
        row.map(|r| rows::audit_head_from_row(&r)).transpose().map_err(classify)
    }

    async fn audit_chains(&self) -> Result<Vec<String>, StoreError> {
        let found = sqlx::query("SELECT DISTINCT node FROM audit_log ORDER BY node")
            .fetch_all(&self.reader)
            .await
            .map_err(classify)?;
        found.iter().map(|r| r.try_get("node")).collect::<Result<_, _>>().map_err(classify)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn finished_and_unfinished_name_every_state_once() {
        use mark1_actors::domain::TaskState::*;
        for state in [Queued, Running, Succeeded, Failed, Cancelled, TimedOut] {
            let quoted = format!("'{}'", state.as_str());
            assert_eq!(super::FINISHED.contains(&quoted), state.is_final(), "{state:?}");
            assert_eq!(super::UNFINISHED.contains(&quoted), !state.is_final(), "{state:?}");
        }
    }
}
