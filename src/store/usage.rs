//! Reads of model usage (`model_usage`, migration 4): the per-namespace totals the
//! router's budgets restart from, and the grouped report. The `SqlStore` side of the
//! port's usage methods, which `store.rs` delegates here.
//!
//! Sums are cast to `BIGINT` and `DOUBLE PRECISION`, names both backends read the same
//! way: PostgreSQL's `SUM` of a `BIGINT` is a `numeric`, which sqlx does not decode as
//! an integer.

use std::time::SystemTime;

use mark1_actors::domain::workflow::RunId;
use mark1_actors::domain::TaskId;
use mark1_actors::ports::{StoreError, UsageGroup, UsageQuery, UsageRow, UsageTotal};
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Row, Type};
use uuid::Uuid;

use super::error::classify;
use super::rows::micros;
use super::{clamp_i64, where_clause, Dialect, SqlStore};

/// The column a report groups by.
fn group_column(group: UsageGroup) -> &'static str {
    match group {
        UsageGroup::Namespace => "namespace",
        UsageGroup::Agent => "agent",
        UsageGroup::Task => "task_id",
        UsageGroup::Run => "run_id",
        UsageGroup::Provider => "provider",
        UsageGroup::Model => "model",
    }
}

/// The report's statement for `group`, filtered by the conditions given (each with its
/// `$n`), the limit bound last. Its order is the report's (`UsageRow::report_order`),
/// ties by key with the groups without one first, so the limit cuts where the order
/// does. Aliases differ from the column names: SQLite would read a column name in
/// `ORDER BY` as the alias of the same name.
fn report_sql(group: UsageGroup, filter: &str, params: usize) -> String {
    let column = group_column(group);
    format!(
        "SELECT {column} AS group_key, COUNT(*) AS calls, \
         CAST(SUM(prompt_tokens) AS BIGINT) AS prompt_sum, \
         CAST(SUM(completion_tokens) AS BIGINT) AS completion_sum, \
         CAST(SUM(cost) AS DOUBLE PRECISION) AS cost_sum \
         FROM model_usage{filter} GROUP BY {column} \
         ORDER BY SUM(cost) DESC, SUM(prompt_tokens + completion_tokens) DESC, \
         ({column} IS NULL) DESC, {column} LIMIT ${}",
        params + 1
    )
}

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
    for<'q> f64: Decode<'q, DB> + Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
{
    /// By the `(ended_at)` index; sorted here, by bytes, as `list_workflows` is.
    pub(super) async fn select_usage_totals(&self, since: SystemTime) -> Result<Vec<UsageTotal>, StoreError> {
        let found = sqlx::query(
            "SELECT namespace, CAST(SUM(prompt_tokens + completion_tokens) AS BIGINT) AS tokens, \
             CAST(SUM(cost) AS DOUBLE PRECISION) AS cost_sum \
             FROM model_usage WHERE ended_at >= $1 GROUP BY namespace",
        )
        .bind(micros(since)?)
        .fetch_all(&self.reader)
        .await
        .map_err(classify)?;
        let mut totals = found
            .iter()
            .map(|row| {
                Ok(UsageTotal {
                    namespace: row.try_get("namespace")?,
                    tokens: row.try_get::<i64, _>("tokens")?.unsigned_abs(),
                    cost: row.try_get("cost_sum")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(classify)?;
        totals.sort_by(|a, b| a.namespace.cmp(&b.namespace));
        Ok(totals)
    }

    /// One statement text per group and combination of filters (48 at most); a
    /// namespace's records come from the `(namespace, ended_at)` index.
    pub(super) async fn select_usage_report(&self, query: &UsageQuery) -> Result<Vec<UsageRow>, StoreError> {
        let (filter, params) = where_clause(&[
            (query.namespace.is_some(), "namespace ="),
            (query.since.is_some(), "ended_at >="),
            (query.until.is_some(), "ended_at <"),
        ]);
        let sql = report_sql(query.group_by, &filter, params);
        let mut select = sqlx::query(&sql);
        if let Some(namespace) = &query.namespace {
            select = select.bind(namespace.clone());
        }
        if let Some(since) = query.since {
            select = select.bind(micros(since)?);
        }
        if let Some(until) = query.until {
            select = select.bind(micros(until)?);
        }
        let found = select
            .bind(clamp_i64(UsageQuery::LIMIT as u64))
            .fetch_all(&self.reader)
            .await
            .map_err(classify)?;
        let key = |row: &DB::Row| -> Result<Option<String>, sqlx::Error> {
            Ok(match query.group_by {
                UsageGroup::Task => {
                    row.try_get::<Option<Uuid>, _>("group_key")?.map(|id| TaskId(id).to_string())
                }
                UsageGroup::Run => {
                    row.try_get::<Option<Uuid>, _>("group_key")?.map(|id| RunId(id).to_string())
                }
                _ => row.try_get("group_key")?,
            })
        };
        let mut rows = found
            .iter()
            .map(|row| {
                Ok(UsageRow {
                    key: key(row)?,
                    calls: row.try_get::<i64, _>("calls")?.unsigned_abs(),
                    prompt_tokens: row.try_get::<i64, _>("prompt_sum")?.unsigned_abs(),
                    completion_tokens: row.try_get::<i64, _>("completion_sum")?.unsigned_abs(),
                    cost: row.try_get("cost_sum")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(classify)?;
        // Again here, by bytes: PostgreSQL orders text by the database's collation.
        rows.sort_by(UsageRow::report_order);
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_group_filter_and_order_by_the_group_column() {
        let (filter, params) = where_clause(&[(true, "namespace ="), (false, "x ="), (true, "ended_at <")]);
        let sql = report_sql(UsageGroup::Task, &filter, params);
        assert!(sql.starts_with("SELECT task_id AS group_key, COUNT(*) AS calls"), "{sql}");
        assert!(sql.contains(" WHERE namespace = $1 AND ended_at < $2 GROUP BY task_id "), "{sql}");
        assert!(sql.contains("(task_id IS NULL) DESC, task_id LIMIT $3"), "{sql}");
        let (filter, params) = where_clause(&[(false, "namespace =")]);
        let all = report_sql(UsageGroup::Model, &filter, params);
        assert!(all.contains("FROM model_usage GROUP BY model ") && all.ends_with("LIMIT $1"), "{all}");
    }
}
