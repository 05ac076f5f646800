//! PostgreSQL: the production and cluster backend.

use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

use futures::future::BoxFuture;
use mark1_actors::ports::StoreError;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgQueryResult};
use sqlx::{ConnectOptions, Connection, Pool, Postgres};

use super::error::classify;
use super::migrations::{self, Files};
use super::write::{
    Grouped, Table, AGENTS, API_KEYS, ATTEMPTS, AUDIT, EVENTS, JOURNAL, RUNS, SCANS, TASKS, USAGE, WORKFLOWS,
};
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
    SqlStore::new(pool.clone(), pool)
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
const API_KEY_TYPES: &[&str] = &["text", "bytea", "text", "text", "text", "text", "int8", "int8", "int8"];
const AUDIT_TYPES: &[&str] =
    &["text", "int8", "int8", "text", "text", "text", "text", "text", "text", "text", "bytea", "bytea"];
const WORKFLOW_TYPES: &[&str] = &["text", "text", "int4", "text", "int8"];
const RUN_TYPES: &[&str] = &[
    "uuid", "text", "text", "int4", "text", "text", "text", "text", "text", "text", "bool", "uuid", "text",
    "uuid", "int8", "int8",
];
const JOURNAL_TYPES: &[&str] = &["uuid", "int8", "text", "int4", "text", "text", "int8"];
const USAGE_TYPES: &[&str] = &[
    "uuid", "text", "uuid", "uuid", "text", "text", "text", "int8", "int8", "float8", "int8", "int8", "int8",
];
const SCAN_TYPES: &[&str] = &[
    "uuid", "text", "text", "text", "text", "text", "int8", "int8", "int8", "int8", "int8", "int8", "text",
    "int8", "int8",
];

/// `INSERT INTO t (cols) SELECT cols FROM UNNEST($n::type[], …) AS u(cols) [ON CONFLICT …]`,
/// the arrays numbered from `first`: one array parameter per column whatever the number
/// of rows. A `VALUES` list of 500 rows × 20 columns spent more server time parsing and
/// binding its 10,000 parameters than inserting (measured: parse 3 ms, bind 4.5 ms,
/// execute 4.3 ms).
fn unnest_sql(table: &Table, types: &[&str], first: usize) -> String {
    let select: Vec<String> = table
        .columns()
        .map(|c| if table.json.contains(&c) { format!("{c}::json") } else { c.to_string() })
        .collect();
    let arrays: Vec<String> =
        types.iter().enumerate().map(|(i, t)| format!("${}::{t}[]", first + i)).collect();
    format!(
        "INSERT INTO {name} ({columns}) SELECT {select} FROM UNNEST({arrays}) AS u({columns}){tail}",
        name = table.name,
        columns = table.columns,
        select = select.join(", "),
        arrays = arrays.join(", "),
        tail = table.tail(),
    )
}

/// The whole batch as one statement: each table's `UNNEST` insert in a data-modifying
/// `WITH` clause, the removal of agents as the main statement. One statement commits on
/// its own, atomically, so a batch costs one round trip to the server instead of one
/// per table plus `BEGIN` and `COMMIT` (measured, batches of 64 tasks on the local
/// server: 2.0–2.3 ms a commit against 2.3–2.5 ms). The text is fixed, so the
/// statement is prepared once per connection. Tables whose arrays are empty insert
/// nothing. The parts touch different tables, except that agents are put and removed by
/// different keys (`Grouped` keeps one write per key), and keys are put and revoked by
/// different keys too (a key put in the batch is put revoked), so no part needs another's
/// effect.
///
/// API keys, their revocations and audit records are rare, workflow definitions, runs
/// and journal entries absent from a node that runs no workflow, and model usage from
/// one that calls no model, and scan records from most batches, so each group's parts are
/// in the statement only for a batch that has some: the statement of the task path keeps
/// only the parts it uses. Sixteen fixed texts, indexed by [`batch_index`].
static BATCH_SQL: LazyLock<[String; 16]> =
    LazyLock::new(|| std::array::from_fn(|i| batch_sql(i & 1 != 0, i & 2 != 0, i & 4 != 0, i & 8 != 0)));

fn batch_index(access: bool, runs: bool, usage: bool, scans: bool) -> usize {
    usize::from(access) | usize::from(runs) << 1 | usize::from(usage) << 2 | usize::from(scans) << 3
}

fn batch_sql(access: bool, runs: bool, usage: bool, scans: bool) -> String {
    fn part(table: &Table, types: &[&str], next: &mut usize) -> String {
        let sql = unnest_sql(table, types, *next);
        *next += types.len();
        sql
    }
    let mut next = 1;
    let mut parts = vec![
        part(&TASKS, TASK_TYPES, &mut next),
        part(&ATTEMPTS, ATTEMPT_TYPES, &mut next),
        part(&EVENTS, EVENT_TYPES, &mut next),
        part(&AGENTS, AGENT_TYPES, &mut next),
    ];
    let removed = next;
    next += 2;
    if access {
        parts.push(part(&API_KEYS, API_KEY_TYPES, &mut next));
        parts.push(format!(
            "UPDATE api_keys k SET revoked_at = COALESCE(k.revoked_at, r.at) \
             FROM UNNEST(${}::text[], ${}::int8[]) AS r(id, at) WHERE k.id = r.id",
            next,
            next + 1
        ));
        next += 2;
        parts.push(part(&AUDIT, AUDIT_TYPES, &mut next));
    }
    if runs {
        parts.push(part(&WORKFLOWS, WORKFLOW_TYPES, &mut next));
        parts.push(part(&RUNS, RUN_TYPES, &mut next));
        parts.push(part(&JOURNAL, JOURNAL_TYPES, &mut next));
    }
    if usage {
        parts.push(part(&USAGE, USAGE_TYPES, &mut next));
    }
    if scans {
        parts.push(part(&SCANS, SCAN_TYPES, &mut next));
    }
    let with: Vec<String> = parts.iter().enumerate().map(|(i, sql)| format!("w{i} AS ({sql})")).collect();
    format!(
        "WITH {} DELETE FROM agents WHERE (namespace, name) IN (SELECT * FROM UNNEST(${}::text[], ${}::text[]))",
        with.join(", "),
        removed,
        removed + 1
    )
}

/// One column of a group of rows, as an array parameter.
fn column<R, T>(rows: &[R], value: impl Fn(&R) -> T) -> Vec<T> {
    rows.iter().map(value).collect()
}

/// The batch in one statement (`BATCH_SQL`), arrays bound in its parameters' order.
async fn write(pool: &Pool<Postgres>, batch: Grouped) -> Result<(), StoreError> {
    let (t, a, e, g, removed) =
        (&batch.tasks, &batch.attempts, &batch.events, &batch.agents, &batch.removed_agents);
    let (access, runs, usage, scans) =
        (batch.has_access(), batch.has_runs(), batch.has_usage(), batch.has_scans());
    let sql: &str = &BATCH_SQL[batch_index(access, runs, usage, scans)];
    let mut query = sqlx::query(sql)
        .bind(column(t, |r| r.id))
        .bind(column(t, |r| r.namespace.clone()))
        .bind(column(t, |r| r.target.clone()))
        .bind(column(t, |r| r.agent.clone()))
        .bind(column(t, |r| r.state))
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
        .bind(column(a, |r| r.task_id))
        .bind(column(a, |r| r.attempt))
        .bind(column(a, |r| r.node_start))
        .bind(column(a, |r| r.agent.clone()))
        .bind(column(a, |r| r.state))
        .bind(column(a, |r| r.error.clone()))
        .bind(column(a, |r| r.started_at))
        .bind(column(a, |r| r.finished_at))
        .bind(column(e, |r| r.seq))
        .bind(column(e, |r| r.emitted_at))
        .bind(column(e, |r| r.kind))
        .bind(column(e, |r| r.namespace.clone()))
        .bind(column(e, |r| r.subject.clone()))
        .bind(column(e, |r| r.data.clone()))
        .bind(column(g, |r| r.namespace.clone()))
        .bind(column(g, |r| r.name.clone()))
        .bind(column(g, |r| r.spec.clone()))
        .bind(column(removed, |(namespace, _)| namespace.clone()))
        .bind(column(removed, |(_, name)| name.clone()));
    if access {
        let (k, r, l) = (&batch.api_keys, &batch.revoked_keys, &batch.audit);
        query = query
            .bind(column(k, |r| r.id.clone()))
            .bind(column(k, |r| r.sha256.clone()))
            .bind(column(k, |r| r.name.clone()))
            .bind(column(k, |r| r.role))
            .bind(column(k, |r| r.namespace.clone()))
            .bind(column(k, |r| r.created_by.clone()))
            .bind(column(k, |r| r.created_at))
            .bind(column(k, |r| r.expires_at))
            .bind(column(k, |r| r.revoked_at))
            .bind(column(r, |(id, _)| id.clone()))
            .bind(column(r, |(_, at)| *at))
            .bind(column(l, |r| r.node.clone()))
            .bind(column(l, |r| r.seq))
            .bind(column(l, |r| r.recorded_at))
            .bind(column(l, |r| r.actor.clone()))
            .bind(column(l, |r| r.action.clone()))
            .bind(column(l, |r| r.namespace.clone()))
            .bind(column(l, |r| r.subject.clone()))
            .bind(column(l, |r| r.outcome))
            .bind(column(l, |r| r.request_id.clone()))
            .bind(column(l, |r| r.data.clone()))
            .bind(column(l, |r| r.prev_hash.clone()))
            .bind(column(l, |r| r.hash.clone()));
    }
    if runs {
        let (w, r, j) = (&batch.workflows, &batch.runs, &batch.journal);
        query = query
            .bind(column(w, |r| r.namespace.clone()))
            .bind(column(w, |r| r.name.clone()))
            .bind(column(w, |r| r.version))
            .bind(column(w, |r| r.spec.clone()))
            .bind(column(w, |r| r.created_at))
            .bind(column(r, |r| r.id))
            .bind(column(r, |r| r.namespace.clone()))
            .bind(column(r, |r| r.workflow.clone()))
            .bind(column(r, |r| r.workflow_version))
            .bind(column(r, |r| r.state))
            .bind(column(r, |r| r.input.clone()))
            .bind(column(r, |r| r.output.clone()))
            .bind(column(r, |r| r.error.clone()))
            .bind(column(r, |r| r.idempotency_key.clone()))
            .bind(column(r, |r| r.submitter.clone()))
            .bind(column(r, |r| r.durable))
            .bind(column(r, |r| r.parent_run))
            .bind(column(r, |r| r.parent_step.clone()))
            .bind(column(r, |r| r.owner))
            .bind(column(r, |r| r.created_at))
            .bind(column(r, |r| r.updated_at))
            .bind(column(j, |r| r.run_id))
            .bind(column(j, |r| r.seq))
            .bind(column(j, |r| r.step.clone()))
            .bind(column(j, |r| r.attempt))
            .bind(column(j, |r| r.kind))
            .bind(column(j, |r| r.data.clone()))
            .bind(column(j, |r| r.recorded_at));
    }
    if usage {
        let u = &batch.usage;
        query = query
            .bind(column(u, |r| r.id))
            .bind(column(u, |r| r.namespace.clone()))
            .bind(column(u, |r| r.task_id))
            .bind(column(u, |r| r.run_id))
            .bind(column(u, |r| r.agent.clone()))
            .bind(column(u, |r| r.provider.clone()))
            .bind(column(u, |r| r.model.clone()))
            .bind(column(u, |r| r.prompt_tokens))
            .bind(column(u, |r| r.completion_tokens))
            .bind(column(u, |r| r.cost))
            .bind(column(u, |r| r.latency_us))
            .bind(column(u, |r| r.first_token_us))
            .bind(column(u, |r| r.ended_at));
    }
    if scans {
        let s = &batch.scans;
        query = query
            .bind(column(s, |r| r.id))
            .bind(column(s, |r| r.namespace.clone()))
            .bind(column(s, |r| r.path.clone()))
            .bind(column(s, |r| r.state))
            .bind(column(s, |r| r.submitter.clone()))
            .bind(column(s, |r| r.error.clone()));
        for i in 0..6 {
            query = query.bind(column(s, |r| r.counts[i]));
        }
        query = query
            .bind(column(s, |r| r.result.clone()))
            .bind(column(s, |r| r.created_at))
            .bind(column(s, |r| r.finished_at));
    }
    query.execute(pool).await.map(drop).map_err(classify)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_column_has_an_array_type() {
        for (table, types) in [
            (&TASKS, TASK_TYPES),
            (&ATTEMPTS, ATTEMPT_TYPES),
            (&EVENTS, EVENT_TYPES),
            (&AGENTS, AGENT_TYPES),
            (&API_KEYS, API_KEY_TYPES),
            (&AUDIT, AUDIT_TYPES),
            (&WORKFLOWS, WORKFLOW_TYPES),
            (&RUNS, RUN_TYPES),
            (&JOURNAL, JOURNAL_TYPES),
            (&USAGE, USAGE_TYPES),
            (&SCANS, SCAN_TYPES),
        ] {
            assert_eq!(table.columns().count(), types.len(), "{}", table.name);
        }
    }

    #[test]
    fn unnest_statements_cast_json_columns() {
        assert_eq!(
            unnest_sql(&AGENTS, AGENT_TYPES, 4),
            "INSERT INTO agents (namespace, name, spec) SELECT namespace, name, spec::json \
             FROM UNNEST($4::text[], $5::text[], $6::text[]) AS u(namespace, name, spec) \
             ON CONFLICT (namespace, name) DO UPDATE SET spec = excluded.spec"
        );
    }

    #[test]
    fn the_batch_statements_number_every_array_once() {
        let core = TASK_TYPES.len() + ATTEMPT_TYPES.len() + EVENT_TYPES.len() + AGENT_TYPES.len() + 2;
        let access = API_KEY_TYPES.len() + 2 + AUDIT_TYPES.len();
        let runs = WORKFLOW_TYPES.len() + RUN_TYPES.len() + JOURNAL_TYPES.len();
        let mut seen = std::collections::HashSet::new();
        for with_access in [false, true] {
            for with_runs in [false, true] {
                for with_usage in [false, true] {
                    for with_scans in [false, true] {
                        let index = batch_index(with_access, with_runs, with_usage, with_scans);
                        assert!(seen.insert(index), "one text per combination");
                        let sql = &BATCH_SQL[index];
                        let arrays = core
                            + if with_access { access } else { 0 }
                            + if with_runs { runs } else { 0 }
                            + if with_usage { USAGE_TYPES.len() } else { 0 }
                            + if with_scans { SCAN_TYPES.len() } else { 0 };
                        for n in 1..=arrays {
                            assert_eq!(sql.matches(&format!("${n}::")).count(), 1, "${n}");
                        }
                        assert!(!sql.contains(&format!("${}::", arrays + 1)));
                        assert_eq!(sql.contains("audit_log"), with_access);
                        assert_eq!(sql.contains("run_journal"), with_runs);
                        assert_eq!(sql.contains("model_usage"), with_usage);
                        assert_eq!(sql.contains("INSERT INTO scans"), with_scans);
                    }
                }
            }
        }
    }
}
