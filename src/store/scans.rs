//! Reads of scan jobs (`scans`, migration 5): the `SqlStore` side of the port's scan
//! methods, which `store.rs` delegates here. Records are read without their report; the
//! report is read alone, as text (`CAST(result AS TEXT)` reads SQLite's text and
//! PostgreSQL's `jsonb` alike).

use mark1_actors::domain::scan::{ScanId, ScanRecord};
use mark1_actors::ports::{ScanQuery, StoreError};
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Row, Type};
use uuid::Uuid;

use super::error::classify;
use super::rows::{scan_from_row, SCAN_RECORD_COLUMNS};
use super::{clamp_i64, where_clause, Dialect, SqlStore};

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
    for<'a> &'a str: ColumnIndex<DB::Row>,
{
    pub(super) async fn find_scan(&self, id: ScanId) -> Result<Option<ScanRecord>, StoreError> {
        let sql = format!("SELECT {SCAN_RECORD_COLUMNS} FROM scans WHERE id = $1");
        let row = sqlx::query(&sql).bind(id.0).fetch_optional(&self.reader).await.map_err(classify)?;
        row.map(|r| scan_from_row(&r)).transpose().map_err(classify)
    }

    pub(super) async fn find_scan_result(&self, id: ScanId) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT CAST(result AS TEXT) AS result FROM scans WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&self.reader)
            .await
            .map_err(classify)?;
        match row {
            Some(row) => row.try_get::<Option<String>, _>("result").map_err(classify),
            None => Ok(None),
        }
    }

    /// As `select_runs`: one statement text per combination of filters (at most 8); a
    /// namespace's scans come from the `(namespace, id)` index newest first.
    pub(super) async fn select_scans(&self, query: &ScanQuery) -> Result<Vec<ScanRecord>, StoreError> {
        let (filter, params) = where_clause(&[
            (query.namespace.is_some(), "namespace ="),
            (query.state.is_some(), "state ="),
            (query.before.is_some(), "id <"),
        ]);
        let sql =
            format!("SELECT {SCAN_RECORD_COLUMNS} FROM scans{filter} ORDER BY id DESC LIMIT ${}", params + 1);
        let mut select = sqlx::query(&sql);
        if let Some(namespace) = &query.namespace {
            select = select.bind(namespace.clone());
        }
        if let Some(state) = query.state {
            select = select.bind(state.as_str().to_string());
        }
        if let Some(before) = query.before {
            select = select.bind(before.0);
        }
        let found =
            select.bind(clamp_i64(query.limit as u64)).fetch_all(&self.reader).await.map_err(classify)?;
        found.iter().map(scan_from_row).collect::<Result<_, _>>().map_err(classify)
    }
}
