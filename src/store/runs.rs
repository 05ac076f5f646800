//! Reads of workflows, runs and run journals, and the claim of orphaned rows (runs and
//! tasks share it): the `SqlStore` side of the port's workflow methods, which `store.rs`
//! delegates here.

use std::time::SystemTime;

use mark1_actors::domain::workflow::{JournalEntry, RunId, RunRecord, WorkflowRecord};
use mark1_actors::ports::{NodeStart, RunQuery, StoreError};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Type};
use uuid::Uuid;

use super::error::classify;
use super::rows::{self, micros, JOURNAL_COLUMNS, RUN_COLUMNS, RUN_UNFINISHED, WORKFLOW_COLUMNS};
use super::{claim_sql, clamp_i64, where_clause, Dialect, SqlStore};

/// Bounded as `SqlStore`'s `Store` implementation in `store.rs` is (less what these
/// methods do not use), so that implementation can call them.
impl<DB> SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> Uuid: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> i32: Decode<'q, DB> + Type<DB>,
    for<'q> bool: Decode<'q, DB> + Type<DB>,
    for<'q> Json<Value>: Decode<'q, DB> + Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
{
    pub(super) async fn find_workflow(
        &self,
        namespace: &str,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<WorkflowRecord>, StoreError> {
        // The primary key `(namespace, name, version)` serves both: an equality, or its
        // last entry for the name.
        let select = format!("SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE namespace = $1 AND name = $2");
        let query = match version {
            Some(_) => format!("{select} AND version = $3"),
            None => format!("{select} ORDER BY version DESC LIMIT 1"),
        };
        let mut query = sqlx::query(&query).bind(namespace.to_string()).bind(name.to_string());
        if let Some(version) = version {
            query = query.bind(i64::from(version));
        }
        let row = query.fetch_optional(&self.reader).await.map_err(classify)?;
        row.map(|r| rows::workflow_from_row(&r)).transpose().map_err(classify)
    }

    pub(super) async fn list_workflows(
        &self,
        namespace: Option<&str>,
    ) -> Result<Vec<WorkflowRecord>, StoreError> {
        let found = match namespace {
            Some(namespace) => {
                let sql = format!("SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE namespace = $1");
                sqlx::query(&sql).bind(namespace.to_string()).fetch_all(&self.reader).await
            }
            None => {
                sqlx::query(&format!("SELECT {WORKFLOW_COLUMNS} FROM workflows"))
                    .fetch_all(&self.reader)
                    .await
            }
        }
        .map_err(classify)?;
        let mut workflows: Vec<WorkflowRecord> =
            found.iter().map(rows::workflow_from_row).collect::<Result<_, _>>().map_err(classify)?;
        // Sorted here, by bytes: PostgreSQL's `ORDER BY` on text follows the database's
        // collation, which may order `a-b` and `ab` unlike the memory store and SQLite.
        workflows.sort_by(|a, b| (&a.namespace, &a.name, a.version).cmp(&(&b.namespace, &b.name, b.version)));
        Ok(workflows)
    }

    pub(super) async fn find_run(&self, id: RunId) -> Result<Option<RunRecord>, StoreError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1");
        let row = sqlx::query(&sql).bind(id.0).fetch_optional(&self.reader).await.map_err(classify)?;
        row.map(|r| rows::run_from_row(&r)).transpose().map_err(classify)
    }

    pub(super) async fn find_run_by_key(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<Option<RunRecord>, StoreError> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE namespace = $1 AND idempotency_key = $2");
        let row = sqlx::query(&sql)
            .bind(namespace.to_string())
            .bind(key.to_string())
            .fetch_optional(&self.reader)
            .await
            .map_err(classify)?;
        row.map(|r| rows::run_from_row(&r)).transpose().map_err(classify)
    }

    /// As `list_tasks`: one statement text per combination of filters (at most 32); a
    /// namespace's runs come from the `(namespace, id)` index newest first.
    pub(super) async fn select_runs(&self, query: &RunQuery) -> Result<Vec<RunRecord>, StoreError> {
        let (filter, params) = where_clause(&[
            (query.namespace.is_some(), "namespace ="),
            (query.state.is_some(), "state ="),
            (query.workflow.is_some(), "workflow ="),
            (query.submitter.is_some(), "submitter ="),
            (query.before.is_some(), "id <"),
        ]);
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs{filter} ORDER BY id DESC LIMIT ${}", params + 1);
        let mut select = sqlx::query(&sql);
        if let Some(namespace) = &query.namespace {
            select = select.bind(namespace.clone());
        }
        if let Some(state) = query.state {
            select = select.bind(state.as_str().to_string());
        }
        if let Some(workflow) = &query.workflow {
            select = select.bind(workflow.clone());
        }
        if let Some(submitter) = &query.submitter {
            select = select.bind(submitter.clone());
        }
        if let Some(before) = query.before {
            select = select.bind(before.0);
        }
        let found =
            select.bind(clamp_i64(query.limit as u64)).fetch_all(&self.reader).await.map_err(classify)?;
        found.iter().map(rows::run_from_row).collect::<Result<_, _>>().map_err(classify)
    }

    pub(super) async fn select_journal(&self, run: RunId) -> Result<Vec<JournalEntry>, StoreError> {
        let sql = format!("SELECT {JOURNAL_COLUMNS} FROM run_journal WHERE run_id = $1 ORDER BY seq");
        let found = sqlx::query(&sql).bind(run.0).fetch_all(&self.reader).await.map_err(classify)?;
        found.iter().map(rows::journal_from_row).collect::<Result<_, _>>().map_err(classify)
    }

    /// The claim of `claim_orphans`, on `runs`.
    pub(super) async fn claim_runs(
        &self,
        start: &NodeStart,
        now: SystemTime,
        limit: usize,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let sql = claim_sql("runs", RUN_UNFINISHED, RUN_COLUMNS, DB::CLAIM_LOCK);
        self.claim(&sql, start, now, limit, rows::run_from_row, |r| r.id).await
    }

    /// Runs a claim statement (`claim_sql`) for `start` and reads back what it took,
    /// oldest first: RETURNING promises no order, and ids are time-ordered.
    pub(super) async fn claim<T, K: Ord>(
        &self,
        sql: &str,
        start: &NodeStart,
        now: SystemTime,
        limit: usize,
        from_row: impl Fn(&DB::Row) -> Result<T, sqlx::Error>,
        id: impl Fn(&T) -> K,
    ) -> Result<Vec<T>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let claimed = sqlx::query(sql)
            .bind(start.id)
            .bind(start.node.clone())
            .bind(micros(now)?)
            .bind(clamp_i64(limit as u64))
            .fetch_all(&self.writer)
            .await
            .map_err(classify)?;
        let mut taken: Vec<T> = claimed.iter().map(from_row).collect::<Result<_, _>>().map_err(classify)?;
        taken.sort_by_key(id);
        Ok(taken)
    }
}
