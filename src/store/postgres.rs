//! PostgreSQL: the production and cluster backend.

use std::str::FromStr;
use std::time::Duration;

use futures::future::BoxFuture;
use mark1_actors::ports::StoreError;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions, PgQueryResult};
use sqlx::{ConnectOptions, Connection, Pool, Postgres};

use super::error::classify;
use super::migrations::{self, Files};
use super::write::{Grouped, Table, AGENTS, ATTEMPTS, EVENTS, TASKS};
use super::{Dialect, SqlStore, StoreOpenError, StoreOptions};

/// Connections shared by writes and reads. Writes are funnelled through the store writer,
/// one batch at a time, so most of these serve reads.
const CONNECTIONS: u32 = 8;

/// How long opening a connection may take, at start and later in the pool.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl Dialect for Postgres {
    const CLAIM_LOCK: &'static str = "FOR UPDATE OF t SKIP LOCKED";
    const MIGRATIONS: Files = migrations::POSTGRES;
    const HAS_MIGRATIONS_TABLE: &'static str =
        "SELECT to_regclass('_sqlx_migrations') IS NOT NULL AS present";

    fn param(n: usize) -> String {
        format!("${n}")
    }

    fn write(pool: &Pool<Postgres>, batch: Grouped) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(write(pool, batch))
    }

    fn rows_affected(result: &PgQueryResult) -> u64 {
        result.rows_affected()
    }
}

/// Connects once (for a clear error when the server is unreachable), then opens the pool.
pub(super) async fn connect(options: &StoreOptions, url: &str) -> Result<SqlStore<Postgres>, StoreOpenError> {
    let unreachable = |message: String| StoreOpenError::Unreachable { url: url.into(), message };
    let mut connect = PgConnectOptions::from_str(&options.url)
        .map_err(|e| StoreOpenError::InvalidUrl { url: url.into(), message: e.to_string() })?
        .application_name("mark1")
        // DESIGN §13.10: an accepted durable task is on disk, whatever the server's default.
        .options([("synchronous_commit", "on")]);
    if let Some(password) = &options.password {
        connect = connect.password(password);
    }
    // A pool would retry a refused connection until its timeout and report only that.
    match tokio::time::timeout(CONNECT_TIMEOUT, connect.connect()).await {
        Ok(Ok(conn)) => conn.close().await.map_err(|e| unreachable(e.to_string()))?,
        Ok(Err(e)) => return Err(unreachable(e.to_string())),
        Err(_) => return Err(unreachable(format!("no answer within {CONNECT_TIMEOUT:?}"))),
    }
    let pool = PgPoolOptions::new()
        .max_connections(CONNECTIONS)
        .acquire_timeout(CONNECT_TIMEOUT)
        .connect_with(connect)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    Ok(SqlStore { writer: pool.clone(), reader: pool })
}

/// Array element types of each table's columns, in `Table::columns` order; JSON columns
/// travel as text and are cast when inserted.
const TASK_TYPES: &[&str] = &[
    "uuid", "text", "text", "text", "text", "text", "text", "text", "int2", "int4", "int4", "text", "bool",
    "text", "int8", "text", "uuid", "int8", "int8", "int8",
];
const ATTEMPT_TYPES: &[&str] = &["uuid", "int4", "uuid", "text", "text", "text", "int8", "int8"];
const EVENT_TYPES: &[&str] = &["int8", "int8", "text", "text", "text", "text"];
const AGENT_TYPES: &[&str] = &["text", "text", "text"];

/// `INSERT INTO t (cols) SELECT cols FROM UNNEST($1::type[], …) AS u(cols) [ON CONFLICT …]`:
/// one statement per table whatever the batch size, with one array parameter per column.
/// A `VALUES` list of 500 rows × 20 columns spent more server time parsing and binding its
/// 10,000 parameters than inserting (measured: parse 3 ms, bind 4.5 ms, execute 4.3 ms).
fn unnest_sql(table: &Table, types: &[&str]) -> String {
    let select: Vec<String> = table
        .columns()
        .map(|c| if table.json.contains(&c) { format!("{c}::json") } else { c.to_string() })
        .collect();
    let arrays: Vec<String> = types.iter().enumerate().map(|(i, t)| format!("${}::{t}[]", i + 1)).collect();
    format!(
        "INSERT INTO {name} ({columns}) SELECT {select} FROM UNNEST({arrays}) AS u({columns}){tail}",
        name = table.name,
        columns = table.columns,
        select = select.join(", "),
        arrays = arrays.join(", "),
        tail = table.tail(),
    )
}

/// One column of a group of rows, as an array parameter.
fn column<R, T>(rows: &[R], value: impl Fn(&R) -> T) -> Vec<T> {
    rows.iter().map(value).collect()
}

/// One transaction, one statement per table.
async fn write(pool: &Pool<Postgres>, batch: Grouped) -> Result<(), StoreError> {
    let mut tx = pool.begin().await.map_err(classify)?;
    let conn: &mut PgConnection = &mut tx;
    if !batch.tasks.is_empty() {
        let t = &batch.tasks;
        sqlx::query(&unnest_sql(&TASKS, TASK_TYPES))
            .bind(column(t, |r| r.id))
            .bind(column(t, |r| r.namespace.clone()))
            .bind(column(t, |r| r.target.clone()))
            .bind(column(t, |r| r.agent.clone()))
            .bind(column(t, |r| r.state.clone()))
            .bind(column(t, |r| r.input.clone()))
            .bind(column(t, |r| r.output.clone()))
            .bind(column(t, |r| r.error.clone()))
            .bind(column(t, |r| r.priority))
            .bind(column(t, |r| r.attempt))
            .bind(column(t, |r| r.max_attempts))
            .bind(column(t, |r| r.idempotency_key.clone()))
            .bind(column(t, |r| r.durable))
            .bind(column(t, |r| r.submitter.clone()))
            .bind(column(t, |r| r.timeout_us))
            .bind(column(t, |r| r.traceparent.clone()))
            .bind(column(t, |r| r.owner))
            .bind(column(t, |r| r.created_at))
            .bind(column(t, |r| r.updated_at))
            .bind(column(t, |r| r.deadline_at))
            .execute(&mut *conn)
            .await
            .map_err(classify)?;
    }
    if !batch.attempts.is_empty() {
        let a = &batch.attempts;
        sqlx::query(&unnest_sql(&ATTEMPTS, ATTEMPT_TYPES))
            .bind(column(a, |r| r.task_id))
            .bind(column(a, |r| r.attempt))
            .bind(column(a, |r| r.node_start))
            .bind(column(a, |r| r.agent.clone()))
            .bind(column(a, |r| r.state.clone()))
            .bind(column(a, |r| r.error.clone()))
            .bind(column(a, |r| r.started_at))
            .bind(column(a, |r| r.finished_at))
            .execute(&mut *conn)
            .await
            .map_err(classify)?;
    }
    if !batch.events.is_empty() {
        let e = &batch.events;
        sqlx::query(&unnest_sql(&EVENTS, EVENT_TYPES))
            .bind(column(e, |r| r.seq))
            .bind(column(e, |r| r.emitted_at))
            .bind(column(e, |r| r.kind.clone()))
            .bind(column(e, |r| r.namespace.clone()))
            .bind(column(e, |r| r.subject.clone()))
            .bind(column(e, |r| r.data.clone()))
            .execute(&mut *conn)
            .await
            .map_err(classify)?;
    }
    if !batch.agents.is_empty() {
        let a = &batch.agents;
        sqlx::query(&unnest_sql(&AGENTS, AGENT_TYPES))
            .bind(column(a, |r| r.namespace.clone()))
            .bind(column(a, |r| r.name.clone()))
            .bind(column(a, |r| r.spec.clone()))
            .execute(&mut *conn)
            .await
            .map_err(classify)?;
    }
    if !batch.removed_agents.is_empty() {
        let removed = &batch.removed_agents;
        sqlx::query(
            "DELETE FROM agents WHERE (namespace, name) IN (SELECT * FROM UNNEST($1::text[], $2::text[]))",
        )
        .bind(column(removed, |(namespace, _)| namespace.clone()))
        .bind(column(removed, |(_, name)| name.clone()))
        .execute(&mut *conn)
        .await
        .map_err(classify)?;
    }
    tx.commit().await.map_err(classify)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_column_has_an_array_type() {
        for (table, types) in
            [(&TASKS, TASK_TYPES), (&ATTEMPTS, ATTEMPT_TYPES), (&EVENTS, EVENT_TYPES), (&AGENTS, AGENT_TYPES)]
        {
            assert_eq!(table.columns().count(), types.len(), "{}", table.name);
        }
    }

    #[test]
    fn unnest_statements_cast_json_columns() {
        assert_eq!(
            unnest_sql(&AGENTS, AGENT_TYPES),
            "INSERT INTO agents (namespace, name, spec) SELECT namespace, name, spec::json \
             FROM UNNEST($1::text[], $2::text[], $3::text[]) AS u(namespace, name, spec) \
             ON CONFLICT (namespace, name) DO UPDATE SET spec = excluded.spec"
        );
    }
}
