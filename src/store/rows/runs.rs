//! Columns of `workflows`, `runs` and `run_journal`. A definition is its `WorkflowDef` as
//! JSON in `spec`; a run's pinned version is `workflow_version` and its parent step the
//! pair `parent_run`, `parent_step` (both set or neither); run states and journal kinds
//! are their names (`waiting_approval`, `step.running`).

use mark1_actors::domain::workflow::{
    JournalEntry, JournalKind, ParentStep, RunId, RunRecord, RunState, WorkflowRecord,
};
use mark1_actors::ports::StoreError;
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{ColumnIndex, Decode, Row, Type};
use uuid::Uuid;

use super::{decode_error, from_name, get, get_time, get_u32, json_text, micros, small};

pub(crate) const WORKFLOW_COLUMNS: &str = "namespace, name, version, spec, created_at";
pub(crate) const RUN_COLUMNS: &str = "id, namespace, workflow, workflow_version, state, input, output, \
     error, idempotency_key, submitter, durable, parent_run, parent_step, owner, created_at, updated_at";
pub(crate) const JOURNAL_COLUMNS: &str = "run_id, seq, step, attempt, kind, data, recorded_at";

/// The run states a claim looks at, spelled as the partial index `runs_unfinished_owner`
/// (migration 3) so SQLite uses it.
pub(crate) const RUN_UNFINISHED: &str = "('running', 'waiting_approval')";
/// Final run states, as prune searches the `(state, updated_at)` index.
pub(crate) const RUN_FINISHED: &str = "('succeeded', 'failed', 'cancelled')";

pub(crate) struct WorkflowRow {
    pub namespace: String,
    pub name: String,
    pub version: i32,
    pub spec: String,
    pub created_at: i64,
}

impl WorkflowRow {
    pub fn new(workflow: &WorkflowRecord) -> Result<Self, StoreError> {
        Ok(WorkflowRow {
            namespace: workflow.namespace.clone(),
            name: workflow.name.clone(),
            version: small(workflow.version.into(), "workflow version")?,
            spec: json_text(&workflow.def)?,
            created_at: micros(workflow.created_at)?,
        })
    }
}

pub(crate) struct RunRow {
    pub id: Uuid,
    pub namespace: String,
    pub workflow: String,
    pub workflow_version: i32,
    pub state: &'static str,
    pub input: String,
    pub output: Option<String>,
    pub error: Option<String>,
    pub idempotency_key: Option<String>,
    pub submitter: Option<String>,
    pub durable: bool,
    pub parent_run: Option<Uuid>,
    pub parent_step: Option<String>,
    pub owner: Option<Uuid>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl RunRow {
    pub fn new(run: &RunRecord) -> Result<Self, StoreError> {
        Ok(RunRow {
            id: run.id.0,
            namespace: run.namespace.clone(),
            workflow: run.workflow.clone(),
            workflow_version: small(run.version.into(), "workflow version")?,
            state: run.state.as_str(),
            input: json_text(&run.input)?,
            output: run.output.as_ref().map(json_text).transpose()?,
            error: run.error.clone(),
            idempotency_key: run.idempotency_key.clone(),
            submitter: run.submitter.clone(),
            durable: run.durable,
            parent_run: run.parent.as_ref().map(|p| p.run.0),
            parent_step: run.parent.as_ref().map(|p| p.step.clone()),
            owner: run.owner,
            created_at: micros(run.created_at)?,
            updated_at: micros(run.updated_at)?,
        })
    }
}

pub(crate) struct JournalRow {
    pub run_id: Uuid,
    pub seq: i64,
    pub step: Option<String>,
    pub attempt: Option<i32>,
    pub kind: &'static str,
    pub data: String,
    pub recorded_at: i64,
}

impl JournalRow {
    pub fn new(entry: &JournalEntry) -> Result<Self, StoreError> {
        Ok(JournalRow {
            run_id: entry.run.0,
            seq: small(entry.seq, "journal seq")?,
            step: entry.step.clone(),
            attempt: entry.attempt.map(|a| small(a.into(), "attempt")).transpose()?,
            kind: entry.kind.as_str(),
            data: json_text(&entry.data)?,
            recorded_at: micros(entry.recorded_at)?,
        })
    }
}

pub(crate) fn workflow_from_row<R>(row: &R) -> Result<WorkflowRecord, sqlx::Error>
where
    R: Row,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i32: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Json<Value>: Decode<'r, R::Database> + Type<R::Database>,
    for<'a> &'a str: ColumnIndex<R>,
{
    let spec = get::<R, Json<Value>>(row, "spec")?.0;
    Ok(WorkflowRecord {
        namespace: get(row, "namespace")?,
        name: get(row, "name")?,
        version: get_u32(row, "version")?,
        def: serde_json::from_value(spec).map_err(|e| decode_error("spec", e))?,
        created_at: get_time(row, "created_at")?,
    })
}

pub(crate) fn run_from_row<R>(row: &R) -> Result<RunRecord, sqlx::Error>
where
    R: Row,
    for<'r> Uuid: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i32: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> bool: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Json<Value>: Decode<'r, R::Database> + Type<R::Database>,
    for<'a> &'a str: ColumnIndex<R>,
{
    let parent = match (get::<R, Option<Uuid>>(row, "parent_run")?, get(row, "parent_step")?) {
        (Some(run), Some(step)) => Some(ParentStep { run: RunId(run), step }),
        (None, None) => None,
        _ => return Err(decode_error("parent_step", "parent_run and parent_step are set together")),
    };
    Ok(RunRecord {
        id: RunId(get(row, "id")?),
        namespace: get(row, "namespace")?,
        workflow: get(row, "workflow")?,
        version: get_u32(row, "workflow_version")?,
        state: from_name::<RunState>(get(row, "state")?, "state")?,
        input: get::<R, Json<Value>>(row, "input")?.0,
        output: get::<R, Option<Json<Value>>>(row, "output")?.map(|j| j.0),
        error: get(row, "error")?,
        idempotency_key: get(row, "idempotency_key")?,
        submitter: get(row, "submitter")?,
        durable: get(row, "durable")?,
        parent,
        owner: get(row, "owner")?,
        created_at: get_time(row, "created_at")?,
        updated_at: get_time(row, "updated_at")?,
    })
}

pub(crate) fn journal_from_row<R>(row: &R) -> Result<JournalEntry, sqlx::Error>
where
    R: Row,
    for<'r> Uuid: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i32: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Json<Value>: Decode<'r, R::Database> + Type<R::Database>,
    for<'a> &'a str: ColumnIndex<R>,
{
    let seq: i64 = get(row, "seq")?;
    let attempt: Option<i32> = get(row, "attempt")?;
    Ok(JournalEntry {
        run: RunId(get(row, "run_id")?),
        seq: u64::try_from(seq).map_err(|e| decode_error("seq", e))?,
        step: get(row, "step")?,
        attempt: attempt.map(u32::try_from).transpose().map_err(|e| decode_error("attempt", e))?,
        kind: from_name::<JournalKind>(get(row, "kind")?, "kind")?,
        data: get::<R, Json<Value>>(row, "data")?.0,
        recorded_at: get_time(row, "recorded_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finished_and_unfinished_name_every_run_state_once() {
        use RunState::*;
        for state in [Running, WaitingApproval, Succeeded, Failed, Cancelled] {
            let quoted = format!("'{}'", state.as_str());
            assert_eq!(RUN_FINISHED.contains(&quoted), state.is_final(), "{state:?}");
            assert_eq!(RUN_UNFINISHED.contains(&quoted), !state.is_final(), "{state:?}");
        }
    }

    #[test]
    fn the_claim_index_names_the_unfinished_states() {
        for dir in ["sqlite", "postgres"] {
            let path = format!("{}/migrations/{dir}/0003_workflow_runs.sql", env!("CARGO_MANIFEST_DIR"));
            let sql = std::fs::read_to_string(path).unwrap();
            assert!(sql.contains(&format!("WHERE state IN {RUN_UNFINISHED}")), "{dir}");
        }
    }

    #[test]
    fn versions_and_seqs_out_of_range_are_rejected() {
        let mut entry = JournalEntry {
            run: RunId::new(),
            seq: u64::MAX,
            step: None,
            attempt: None,
            kind: JournalKind::RunStarted,
            data: Value::Null,
            recorded_at: std::time::SystemTime::UNIX_EPOCH,
        };
        assert!(matches!(JournalRow::new(&entry), Err(StoreError::Rejected(_))));
        entry.seq = 1;
        entry.attempt = Some(u32::MAX);
        assert!(matches!(JournalRow::new(&entry), Err(StoreError::Rejected(_))));
        entry.attempt = Some(2);
        assert_eq!(JournalRow::new(&entry).unwrap().kind, "run.started");
    }
}
