//! `write_batch`: the writes of a batch grouped by table; each backend then writes every
//! table with multi-row statements inside one transaction (`sqlite.rs`: `VALUES` lists,
//! `postgres.rs`: `UNNEST` of arrays).

use std::collections::{HashMap, HashSet};

use mark1_actors::domain::scan::ScanId;
use mark1_actors::domain::workflow::{RunId, RunRecord};
use mark1_actors::domain::{TaskId, TaskRecord};
use mark1_actors::ports::{AttemptRecord, StoreError, Write};

use super::rows::{
    micros, AgentRow, ApiKeyRow, AttemptRow, AuditRow, EventRow, JournalRow, RunRow, ScanRow, TaskRow,
    UsageRow, WorkflowRow, API_KEY_COLUMNS, ATTEMPT_COLUMNS, AUDIT_COLUMNS, EVENT_COLUMNS, JOURNAL_COLUMNS,
    RUN_COLUMNS, SCAN_COLUMNS, TASK_COLUMNS, USAGE_COLUMNS, WORKFLOW_COLUMNS,
};

/// Rows in one statement at most, whatever the parameter limit allows: past a few hundred
/// rows a bigger statement no longer commits faster (DESIGN §8 measured 500), and parsing
/// it costs more. A power of two, the largest of SQLite's statement sizes (`sqlite.rs`).
pub(crate) const MAX_ROWS: usize = 512;

/// A batch's writes, grouped by table, with repeated keys resolved as applying the writes
/// one by one would: the last write of a key wins. PostgreSQL's multi-row upsert may not
/// touch one row twice, so a statement must not carry a key twice.
#[derive(Default)]
pub(crate) struct Grouped {
    pub tasks: Vec<TaskRow>,
    pub attempts: Vec<AttemptRow>,
    pub events: Vec<EventRow>,
    pub agents: Vec<AgentRow>,
    pub removed_agents: Vec<(String, String)>,
    pub api_keys: Vec<ApiKeyRow>,
    /// `(id, at)`, one per key: its first revocation in the batch.
    pub revoked_keys: Vec<(String, i64)>,
    pub audit: Vec<AuditRow>,
    pub workflows: Vec<WorkflowRow>,
    pub runs: Vec<RunRow>,
    pub journal: Vec<JournalRow>,
    /// One per id: the first record of it in the batch (the store keeps the first too).
    pub usage: Vec<UsageRow>,
    /// One per scan: the last put of it in the batch.
    pub scans: Vec<ScanRow>,
}

impl Grouped {
    /// Resolves repeated keys first, so a task written three times in a batch (queued,
    /// running, final) is converted to columns once.
    pub fn new(writes: &[Write]) -> Result<Self, StoreError> {
        let mut tasks: Vec<&TaskRecord> = Vec::new();
        let mut attempts: Vec<&AttemptRecord> = Vec::new();
        let mut runs: Vec<&RunRecord> = Vec::new();
        let mut grouped = Grouped::default();
        let mut task_at: HashMap<TaskId, usize> = HashMap::new();
        let mut attempt_at: HashMap<(TaskId, u32), usize> = HashMap::new();
        let mut run_at: HashMap<RunId, usize> = HashMap::new();
        // Puts and removals of one agent interleave; only the last of each key counts.
        let mut agents: HashMap<(String, String), Option<AgentRow>> = HashMap::new();
        let mut usage_ids = HashSet::new();
        let mut scans: Vec<ScanRow> = Vec::new();
        let mut scan_at: HashMap<ScanId, usize> = HashMap::new();
        for write in writes {
            match write {
                Write::PutTask(task) => last_wins(&mut tasks, &mut task_at, task.id, task),
                Write::PutAttempt(a) => last_wins(&mut attempts, &mut attempt_at, (a.task_id, a.attempt), a),
                Write::AppendEvent(event) => grouped.events.push(EventRow::new(event)?),
                Write::PutAgent(spec) => {
                    let row = AgentRow::new(spec)?;
                    agents.insert((row.namespace.clone(), row.name.clone()), Some(row));
                }
                Write::RemoveAgent { namespace, name } => {
                    agents.insert((namespace.clone(), name.clone()), None);
                }
                Write::PutApiKey(key) => grouped.api_keys.push(ApiKeyRow::new(key)?),
                Write::RevokeApiKey { id, at } => grouped.revoke(id, micros(*at)?),
                Write::AppendAudit(record) => grouped.audit.push(AuditRow::new(record)?),
                Write::PutWorkflow(workflow) => grouped.workflows.push(WorkflowRow::new(workflow)?),
                Write::PutRun(run) => last_wins(&mut runs, &mut run_at, run.id, run),
                Write::AppendJournal(entry) => grouped.journal.push(JournalRow::new(entry)?),
                Write::PutUsage(record) => {
                    if usage_ids.insert(record.id) {
                        grouped.usage.push(UsageRow::new(record)?);
                    }
                }
                Write::PutScan { record, result } => {
                    // Converted at once (scans are few): the report is the one big value.
                    let row = ScanRow::new(record, result.as_deref())?;
                    match scan_at.get(&record.id) {
                        Some(&i) => scans[i] = row,
                        None => {
                            scan_at.insert(record.id, scans.len());
                            scans.push(row);
                        }
                    }
                }
            }
        }
        grouped.tasks = tasks.into_iter().map(TaskRow::new).collect::<Result<_, _>>()?;
        grouped.attempts = attempts.into_iter().map(AttemptRow::new).collect::<Result<_, _>>()?;
        grouped.runs = runs.into_iter().map(RunRow::new).collect::<Result<_, _>>()?;
        grouped.scans = scans;
        for (key, last) in agents {
            match last {
                Some(row) => grouped.agents.push(row),
                None => grouped.removed_agents.push(key),
            }
        }
        Ok(grouped)
    }
}

impl Grouped {
    /// Whether the batch writes API keys, revocations or audit records. PostgreSQL's
    /// batch statement carries these parts, and the runs', only when a batch has some, so
    /// the task path keeps its short statement.
    pub fn has_access(&self) -> bool {
        !(self.api_keys.is_empty() && self.revoked_keys.is_empty() && self.audit.is_empty())
    }

    /// Whether the batch writes workflow definitions, runs or journal entries.
    pub fn has_runs(&self) -> bool {
        !(self.workflows.is_empty() && self.runs.is_empty() && self.journal.is_empty())
    }

    /// Whether the batch records model usage.
    pub fn has_usage(&self) -> bool {
        !self.usage.is_empty()
    }

    /// Whether the batch writes scan records.
    pub fn has_scans(&self) -> bool {
        !self.scans.is_empty()
    }

    /// A key put earlier in the same batch is stored revoked: on PostgreSQL the parts of
    /// the batch's one statement do not see each other's rows, so the update alone would
    /// miss it. A key revoked twice keeps the first time, as applying the writes in order.
    fn revoke(&mut self, id: &str, at: i64) {
        if let Some(key) = self.api_keys.iter_mut().find(|k| k.id == id) {
            key.revoked_at.get_or_insert(at);
        }
        if !self.revoked_keys.iter().any(|(revoked, _)| revoked == id) {
            self.revoked_keys.push((id.to_string(), at));
        }
    }
}

/// Keeps `value` in the place of the first write of `key`, replacing an earlier one.
fn last_wins<'a, K: std::hash::Hash + Eq, V>(
    values: &mut Vec<&'a V>,
    at: &mut HashMap<K, usize>,
    key: K,
    value: &'a V,
) {
    match at.get(&key) {
        Some(&i) => values[i] = value,
        None => {
            at.insert(key, values.len());
            values.push(value);
        }
    }
}

/// `col = excluded.col` for every column but the key and the fixed ones: an upsert
/// replaces what can change. When nothing can change, a row whose key is taken is left
/// out (`DO NOTHING`): the insert keeps the first row of a key.
fn update_all(columns: &str, key: &[&str], fixed: &[&str]) -> String {
    let set: Vec<String> = columns
        .split(',')
        .map(str::trim)
        .filter(|c| !key.contains(c) && !fixed.contains(c))
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    if set.is_empty() {
        return format!(" ON CONFLICT ({}) DO NOTHING", key.join(", "));
    }
    format!(" ON CONFLICT ({}) DO UPDATE SET {}", key.join(", "), set.join(", "))
}

/// Rows per statement for a table of `columns` columns under the backend's parameter limit.
pub(super) fn rows_per_statement(max_params: usize, columns: usize) -> usize {
    (max_params / columns).clamp(1, MAX_ROWS)
}

/// Where a group of rows goes; both backends build their statements from these.
pub(super) struct Table {
    pub name: &'static str,
    /// Comma-separated, in the order the rows bind them.
    pub columns: &'static str,
    /// Columns bound as text that the backend stores as JSON.
    pub json: &'static [&'static str],
    /// The conflict target of the upsert; empty: a plain insert.
    pub key: &'static [&'static str],
    /// Set when the row is made and never changed: left out of the upsert's `SET`, so a
    /// change of state does not rewrite the indexes over them (SQLite rewrites an index
    /// whose column is assigned, even to the same value).
    pub fixed: &'static [&'static str],
}

impl Table {
    pub fn columns(&self) -> impl Iterator<Item = &'static str> {
        self.columns.split(',').map(str::trim)
    }

    /// ` ON CONFLICT (key) DO UPDATE SET …` for an upsert, nothing for a plain insert.
    pub fn tail(&self) -> String {
        if self.key.is_empty() {
            String::new()
        } else {
            update_all(self.columns, self.key, self.fixed)
        }
    }
}

pub(super) const TASKS: Table = Table {
    name: "tasks",
    columns: TASK_COLUMNS,
    json: &["input", "output"],
    key: &["id"],
    fixed: &[
        "namespace",
        "target",
        "input",
        "priority",
        "max_attempts",
        "idempotency_key",
        "durable",
        "submitter",
        "timeout_us",
        "traceparent",
        "created_at",
        "deadline_at",
    ],
};
pub(super) const ATTEMPTS: Table = Table {
    name: "task_attempts",
    columns: ATTEMPT_COLUMNS,
    json: &[],
    key: &["task_id", "attempt"],
    fixed: &[],
};
pub(super) const EVENTS: Table =
    Table { name: "events", columns: EVENT_COLUMNS, json: &["data"], key: &[], fixed: &[] };
pub(super) const AGENTS: Table = Table {
    name: "agents",
    columns: "namespace, name, spec",
    json: &["spec"],
    key: &["namespace", "name"],
    fixed: &[],
};
/// Plain inserts: a key id or an audit `(node, seq)` already taken rejects the batch.
pub(super) const API_KEYS: Table =
    Table { name: "api_keys", columns: API_KEY_COLUMNS, json: &[], key: &[], fixed: &[] };
pub(super) const AUDIT: Table =
    Table { name: "audit_log", columns: AUDIT_COLUMNS, json: &["data"], key: &[], fixed: &[] };
/// Plain inserts: a stored version never changes (runs pin it), and a journal entry is
/// written once, so a `(namespace, name, version)` or `(run_id, seq)` already taken
/// rejects the batch.
pub(super) const WORKFLOWS: Table =
    Table { name: "workflows", columns: WORKFLOW_COLUMNS, json: &["spec"], key: &[], fixed: &[] };
pub(super) const JOURNAL: Table =
    Table { name: "run_journal", columns: JOURNAL_COLUMNS, json: &["data"], key: &[], fixed: &[] };
pub(super) const RUNS: Table = Table {
    name: "runs",
    columns: RUN_COLUMNS,
    json: &["input", "output"],
    key: &["id"],
    fixed: &[
        "namespace",
        "workflow",
        "workflow_version",
        "input",
        "idempotency_key",
        "submitter",
        "durable",
        "parent_run",
        "parent_step",
        "created_at",
    ],
};
/// Usage records are written once and never change: every column is fixed, so an id
/// already stored is left as it is (`ON CONFLICT (id) DO NOTHING`) and a retried batch
/// does not count a call twice.
pub(super) const USAGE: Table = Table {
    name: "model_usage",
    columns: USAGE_COLUMNS,
    json: &[],
    key: &["id"],
    fixed: &[
        "namespace",
        "task_id",
        "run_id",
        "agent",
        "provider",
        "model",
        "prompt_tokens",
        "completion_tokens",
        "cost",
        "latency_us",
        "first_token_us",
        "ended_at",
    ],
};

/// A scan's state, end and counts change; where and when it started and who asked, not.
/// The report is replaced with each put (a job sends it with its final put only).
pub(super) const SCANS: Table = Table {
    name: "scans",
    columns: SCAN_COLUMNS,
    json: &["result"],
    key: &["id"],
    fixed: &["namespace", "path", "submitter", "created_at"],
};

#[cfg(test)]
mod tests {
    use mark1_actors::domain::{AgentSpec, TaskRequest, TaskState};
    use uuid::Uuid;

    use super::*;

    #[test]
    fn upserts_replace_every_column_but_the_key() {
        assert_eq!(
            update_all("task_id, attempt, state", &["task_id", "attempt"], &[]),
            " ON CONFLICT (task_id, attempt) DO UPDATE SET state = excluded.state"
        );
        assert_eq!(
            update_all("id, namespace, state", &["id"], &["namespace"]),
            " ON CONFLICT (id) DO UPDATE SET state = excluded.state",
            "fixed columns are written once"
        );
        assert_eq!(USAGE.tail(), " ON CONFLICT (id) DO NOTHING", "usage records are never replaced");
    }

    #[test]
    fn a_usage_record_repeated_in_a_batch_is_kept_once() {
        use mark1_actors::domain::model::UsageRecord;
        let record = |id, cost| {
            Write::PutUsage(Box::new(UsageRecord {
                id,
                at_ms: 1_000,
                namespace: "default".into(),
                task: None,
                run: None,
                agent: None,
                provider: "local".into(),
                model: "small".into(),
                prompt_tokens: 1,
                completion_tokens: 1,
                cost,
                latency_ms: 1,
                first_token_ms: None,
            }))
        };
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let grouped = Grouped::new(&[record(a, 1.0), record(b, 2.0), record(a, 3.0)]).unwrap();
        let kept: Vec<(Uuid, f64)> = grouped.usage.iter().map(|u| (u.id, u.cost)).collect();
        assert_eq!(kept, vec![(a, 1.0), (b, 2.0)], "the first record of an id");
        assert!(grouped.has_usage() && !grouped.has_runs() && !grouped.has_access());
        assert!(!Grouped::new(&[task(TaskId::new(), TaskState::Queued)]).unwrap().has_usage());
        assert_eq!(USAGE.columns().count(), 13);
        assert_eq!(USAGE.fixed.len() + USAGE.key.len(), 13, "every column is fixed");
    }

    fn task(id: TaskId, state: TaskState) -> Write {
        let request = TaskRequest::to_agent("echo", serde_json::json!({}));
        let mut record = TaskRecord::queued(&request, 1, None, std::time::SystemTime::now());
        (record.id, record.state) = (id, state);
        Write::PutTask(std::sync::Arc::new(record))
    }

    #[test]
    fn repeated_keys_keep_the_last_write() {
        let (a, b) = (TaskId::new(), TaskId::new());
        let writes =
            vec![task(a, TaskState::Queued), task(b, TaskState::Queued), task(a, TaskState::Running)];
        let grouped = Grouped::new(&writes).unwrap();
        let states: Vec<(Uuid, &str)> = grouped.tasks.iter().map(|t| (t.id, t.state)).collect();
        assert_eq!(states, vec![(a.0, "running"), (b.0, "queued")]);
    }

    #[test]
    fn repeated_runs_keep_the_last_put_and_journal_entries_all_stay() {
        use mark1_actors::domain::workflow::{JournalEntry, JournalKind, RunState};
        let run = |id: RunId, state: RunState| {
            Write::PutRun(Box::new(RunRecord {
                id,
                namespace: "default".into(),
                workflow: "triage".into(),
                version: 1,
                state,
                input: serde_json::json!({}),
                output: None,
                error: None,
                idempotency_key: None,
                submitter: None,
                durable: true,
                parent: None,
                owner: None,
                created_at: std::time::SystemTime::now(),
                updated_at: std::time::SystemTime::now(),
            }))
        };
        let entry = |run: RunId, seq| {
            Write::AppendJournal(Box::new(JournalEntry {
                run,
                seq,
                step: None,
                attempt: None,
                kind: JournalKind::RunStarted,
                data: serde_json::json!({}),
                recorded_at: std::time::SystemTime::now(),
            }))
        };
        let (a, b) = (RunId::new(), RunId::new());
        let writes =
            [run(a, RunState::Running), entry(a, 1), run(b, RunState::Running), run(a, RunState::Failed)];
        let grouped = Grouped::new(&writes).unwrap();
        let states: Vec<(Uuid, &str)> = grouped.runs.iter().map(|r| (r.id, r.state)).collect();
        assert_eq!(states, vec![(a.0, "failed"), (b.0, "running")]);
        assert_eq!(grouped.journal.len(), 1);
        assert!(grouped.has_runs() && !grouped.has_access());
        assert!(!Grouped::new(&[task(TaskId::new(), TaskState::Queued)]).unwrap().has_runs());
    }

    #[test]
    fn puts_and_removals_of_an_agent_resolve_in_order() {
        let put = |name: &str| Write::PutAgent(Box::new(AgentSpec::native(name)));
        let remove = |name: &str| Write::RemoveAgent { namespace: "default".into(), name: name.into() };
        let grouped = Grouped::new(&[put("x"), remove("x"), remove("y"), put("y")]).unwrap();
        let put: Vec<&str> = grouped.agents.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(put, vec!["y"]);
        assert_eq!(grouped.removed_agents, vec![("default".to_string(), "x".to_string())]);
    }

    #[test]
    fn a_key_put_and_revoked_in_one_batch_is_put_revoked() {
        use mark1_actors::domain::{ApiKeyRecord, Role};
        use std::time::{Duration, SystemTime};
        let at = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        let key = ApiKeyRecord {
            id: "0123456789ab".into(),
            sha256: [7; 32],
            name: String::new(),
            role: Role::Admin,
            namespace: None,
            created_by: None,
            created_at: at(1),
            expires_at: None,
            revoked_at: None,
        };
        let revoke = |id: &str, s| Write::RevokeApiKey { id: id.into(), at: at(s) };
        let writes = [
            Write::PutApiKey(Box::new(key)),
            revoke("0123456789ab", 5),
            revoke("0123456789ab", 9),
            revoke("other", 7),
        ];
        let grouped = Grouped::new(&writes).unwrap();
        assert_eq!(grouped.api_keys[0].revoked_at, Some(5_000_000));
        assert_eq!(
            grouped.revoked_keys,
            vec![("0123456789ab".to_string(), 5_000_000), ("other".to_string(), 7_000_000)]
        );
        assert!(grouped.has_access() && !grouped.has_runs());
    }

    #[test]
    fn statements_stay_under_the_parameter_limit() {
        assert_eq!(rows_per_statement(32766, 20), MAX_ROWS);
        assert_eq!(rows_per_statement(999, 20), 49);
        assert_eq!(rows_per_statement(10, 20), 1);
        assert_eq!(TASK_COLUMNS.split(',').count(), 20);
    }
}
