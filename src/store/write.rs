//! `write_batch`: the writes of a batch grouped by table, each table written with
//! multi-row statements inside one transaction.

use std::collections::HashMap;

use mark1_actors::ports::{StoreError, Write};
use sqlx::query::Query;
use sqlx::{Database, Encode, Executor, IntoArguments, Type};
use uuid::Uuid;

use super::error::classify;
use super::rows::{AgentRow, AttemptRow, EventRow, TaskRow, ATTEMPT_COLUMNS, EVENT_COLUMNS, TASK_COLUMNS};
use super::{Dialect, SqlStore};

/// Rows in one statement at most, whatever the parameter limit allows: past a few hundred
/// rows a bigger statement no longer commits faster (DESIGN §8 measured 500), and parsing
/// it costs more.
pub(super) const MAX_ROWS: usize = 500;

/// A batch's writes, grouped by table, with repeated keys resolved as applying the writes
/// one by one would: the last write of a key wins. PostgreSQL's multi-row upsert may not
/// touch one row twice, so a statement must not carry a key twice.
#[derive(Default)]
struct Grouped {
    tasks: Vec<TaskRow>,
    attempts: Vec<AttemptRow>,
    events: Vec<EventRow>,
    agents: Vec<AgentRow>,
    removed_agents: Vec<(String, String)>,
}

impl Grouped {
    fn new(writes: Vec<Write>) -> Result<Self, StoreError> {
        let mut grouped = Grouped::default();
        let mut task_at: HashMap<Uuid, usize> = HashMap::new();
        let mut attempt_at: HashMap<(Uuid, i32), usize> = HashMap::new();
        // Puts and removals of one agent interleave; only the last of each key counts.
        let mut agents: HashMap<(String, String), Option<AgentRow>> = HashMap::new();
        for write in writes {
            match write {
                Write::PutTask(task) => {
                    let row = TaskRow::new(*task)?;
                    match task_at.get(&row.id) {
                        Some(&i) => grouped.tasks[i] = row,
                        None => {
                            task_at.insert(row.id, grouped.tasks.len());
                            grouped.tasks.push(row);
                        }
                    }
                }
                Write::PutAttempt(attempt) => {
                    let row = AttemptRow::new(*attempt)?;
                    match attempt_at.get(&(row.task_id, row.attempt)) {
                        Some(&i) => grouped.attempts[i] = row,
                        None => {
                            attempt_at.insert((row.task_id, row.attempt), grouped.attempts.len());
                            grouped.attempts.push(row);
                        }
                    }
                }
                Write::AppendEvent(event) => grouped.events.push(EventRow::new(&event)?),
                Write::PutAgent(spec) => {
                    let row = AgentRow::new(&spec)?;
                    agents.insert((row.namespace.clone(), row.name.clone()), Some(row));
                }
                Write::RemoveAgent { namespace, name } => {
                    agents.insert((namespace, name), None);
                }
            }
        }
        for (key, last) in agents {
            match last {
                Some(row) => grouped.agents.push(row),
                None => grouped.removed_agents.push(key),
            }
        }
        Ok(grouped)
    }
}

/// `col = excluded.col` for every column but the key: an upsert replaces the whole row.
fn update_all(columns: &str, key: &[&str]) -> String {
    let set: Vec<String> = columns
        .split(',')
        .map(str::trim)
        .filter(|c| !key.contains(c))
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    format!(" ON CONFLICT ({}) DO UPDATE SET {}", key.join(", "), set.join(", "))
}

/// Rows per statement for a table of `columns` columns under the backend's parameter limit.
fn rows_per_statement(max_params: usize, columns: usize) -> usize {
    (max_params / columns).clamp(1, MAX_ROWS)
}

/// A query being bound.
type Args<'q, DB> = Query<'q, DB, <DB as Database>::Arguments<'q>>;

/// Where a group of rows goes.
struct Table {
    name: &'static str,
    /// Comma-separated, in the order the rows bind them.
    columns: &'static str,
    /// Columns that get the backend's JSON cast.
    json: &'static [&'static str],
    /// The conflict target of the upsert; empty: a plain insert.
    key: &'static [&'static str],
}

impl<DB> SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> Uuid: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> i32: Encode<'q, DB> + Type<DB>,
    for<'q> i16: Encode<'q, DB> + Type<DB>,
    for<'q> bool: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> Option<Uuid>: Encode<'q, DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
    for<'q> Option<String>: Encode<'q, DB>,
{
    /// Applies every write in one transaction: all or nothing.
    pub(super) async fn apply(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let grouped = Grouped::new(writes)?;
        let mut tx = self.writer.begin().await.map_err(classify)?;
        let conn = &mut *tx;
        let tasks = Table { name: "tasks", columns: TASK_COLUMNS, json: &["input", "output"], key: &["id"] };
        Self::upsert(conn, tasks, grouped.tasks, |q, t| {
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
        let attempts = Table {
            name: "task_attempts",
            columns: ATTEMPT_COLUMNS,
            json: &[],
            key: &["task_id", "attempt"],
        };
        Self::upsert(conn, attempts, grouped.attempts, |q, a| {
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
        let events = Table { name: "events", columns: EVENT_COLUMNS, json: &["data"], key: &[] };
        Self::upsert(conn, events, grouped.events, |q, e| {
            q.bind(e.seq).bind(e.emitted_at).bind(e.kind).bind(e.namespace).bind(e.subject).bind(e.data)
        })
        .await?;
        let agents = Table {
            name: "agents",
            columns: "namespace, name, spec",
            json: &["spec"],
            key: &["namespace", "name"],
        };
        Self::upsert(conn, agents, grouped.agents, |q, a| q.bind(a.namespace).bind(a.name).bind(a.spec))
            .await?;
        Self::remove_agents(conn, grouped.removed_agents).await?;
        tx.commit().await.map_err(classify)
    }

    /// `INSERT INTO table (columns) VALUES (…), (…)`, plus `ON CONFLICT (key) DO UPDATE`
    /// when the table has a key, in as few statements as the parameter limit allows.
    async fn upsert<R>(
        conn: &mut DB::Connection,
        table: Table,
        rows: Vec<R>,
        bind: impl for<'q> Fn(Args<'q, DB>, R) -> Args<'q, DB>,
    ) -> Result<(), StoreError> {
        let columns: Vec<&str> = table.columns.split(',').map(str::trim).collect();
        let tail = if table.key.is_empty() { String::new() } else { update_all(table.columns, table.key) };
        let per_statement = rows_per_statement(DB::MAX_PARAMS, columns.len());
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let chunk: Vec<R> = rows.by_ref().take(per_statement).collect();
            let row = |i: usize| {
                let values = columns.iter().enumerate().map(|(c, column)| {
                    let cast = if table.json.contains(column) { DB::JSON_CAST } else { "" };
                    format!("${}{cast}", i * columns.len() + c + 1)
                });
                format!("({})", values.collect::<Vec<_>>().join(", "))
            };
            let values: Vec<String> = (0..chunk.len()).map(row).collect();
            let sql =
                format!("INSERT INTO {} ({}) VALUES {}{tail}", table.name, table.columns, values.join(", "));
            let query = chunk.into_iter().fold(sqlx::query::<DB>(&sql), &bind);
            // Statements of varying length would churn the prepared-statement cache.
            query.persistent(false).execute(&mut *conn).await.map_err(classify)?;
        }
        Ok(())
    }

    async fn remove_agents(conn: &mut DB::Connection, keys: Vec<(String, String)>) -> Result<(), StoreError> {
        for chunk in keys.chunks(rows_per_statement(DB::MAX_PARAMS, 2)) {
            let pairs: Vec<String> =
                (0..chunk.len()).map(|i| format!("(${}, ${})", 2 * i + 1, 2 * i + 2)).collect();
            let sql = format!("DELETE FROM agents WHERE (namespace, name) IN (VALUES {})", pairs.join(", "));
            let query = chunk
                .iter()
                .fold(sqlx::query::<DB>(&sql), |q, (ns, name)| q.bind(ns.clone()).bind(name.clone()));
            query.persistent(false).execute(&mut *conn).await.map_err(classify)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upserts_replace_every_column_but_the_key() {
        assert_eq!(
            update_all("task_id, attempt, state", &["task_id", "attempt"]),
            " ON CONFLICT (task_id, attempt) DO UPDATE SET state = excluded.state"
        );
    }

    #[test]
    fn statements_stay_under_the_parameter_limit() {
        assert_eq!(rows_per_statement(32766, 20), MAX_ROWS);
        assert_eq!(rows_per_statement(999, 20), 49);
        assert_eq!(rows_per_statement(10, 20), 1);
        assert_eq!(TASK_COLUMNS.split(',').count(), 20);
    }
}
