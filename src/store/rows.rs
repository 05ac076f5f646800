//! How domain values become column values and back, for both backends.
//!
//! Times are `BIGINT` microseconds since the Unix epoch (columns named `*_at`, durations
//! `*_us`): one integer compares, indexes and sorts the same on SQLite and PostgreSQL, and
//! spans ±292,000 years, so any deadline a caller can write fits. Records read back have
//! their times truncated to the microsecond. Ids are UUIDs (PostgreSQL `uuid`, SQLite a
//! 16-byte BLOB; v7 ids then sort by creation time in both). JSON is text on SQLite and
//! `json` on PostgreSQL (see `migrations/README.md`); enum-like values are their snake_case
//! names.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mark1_actors::domain::{AgentSpec, Event, EventKind, TaskId, TaskRecord, TaskState};
use mark1_actors::ports::{AttemptRecord, StoreError};
use serde::de::DeserializeOwned;
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{ColumnIndex, Decode, Row, Type};
use uuid::Uuid;

mod access;
pub(crate) use access::{
    api_key_from_row, audit_from_row, audit_head_from_row, ApiKeyRow, AuditRow, API_KEY_COLUMNS,
    AUDIT_COLUMNS,
};
mod runs;
pub(crate) use runs::{
    journal_from_row, run_from_row, workflow_from_row, JournalRow, RunRow, WorkflowRow, JOURNAL_COLUMNS,
    RUN_COLUMNS, RUN_FINISHED, RUN_UNFINISHED, WORKFLOW_COLUMNS,
};
mod scans;
pub(crate) use scans::{scan_from_row, ScanRow, SCAN_COLUMNS, SCAN_RECORD_COLUMNS};
mod usage;
pub(crate) use usage::{UsageRow, USAGE_COLUMNS};

pub(crate) const TASK_COLUMNS: &str = "id, namespace, target, agent, state, input, output, error, priority, \
     attempt, max_attempts, idempotency_key, durable, submitter, timeout_us, traceparent, owner, \
     created_at, updated_at, deadline_at";
pub(crate) const ATTEMPT_COLUMNS: &str =
    "task_id, attempt, node_start, agent, state, error, started_at, finished_at";
pub(crate) const EVENT_COLUMNS: &str = "seq, emitted_at, kind, namespace, subject, data";

/// The states a task can still change from; claims look only at these. Spelled once so
/// every query matches the partial index `tasks_unfinished_owner` (SQLite uses a partial
/// index only when the query's condition implies the index's).
pub(crate) const UNFINISHED: &str = "('queued', 'running')";

/// Microseconds since the Unix epoch (negative before it).
pub(crate) fn micros(time: SystemTime) -> Result<i64, StoreError> {
    let out_of_range = || StoreError::Rejected(format!("time {time:?} is out of the storable range"));
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_micros()).map_err(|_| out_of_range()),
        Err(before) => i64::try_from(before.duration().as_micros()).map(|us| -us).map_err(|_| out_of_range()),
    }
}

pub(crate) fn time(micros: i64) -> SystemTime {
    let offset = Duration::from_micros(micros.unsigned_abs());
    if micros >= 0 {
        UNIX_EPOCH + offset
    } else {
        UNIX_EPOCH - offset
    }
}

fn duration_micros(duration: Duration) -> Result<i64, StoreError> {
    i64::try_from(duration.as_micros())
        .map_err(|_| StoreError::Rejected(format!("duration {duration:?} is out of the storable range")))
}

pub(crate) fn small<T: TryFrom<u64>>(value: u64, what: &str) -> Result<T, StoreError> {
    T::try_from(value).map_err(|_| StoreError::Rejected(format!("{what} {value} is out of range")))
}

pub(crate) fn json_text<T: serde::Serialize + ?Sized>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Rejected(format!("cannot encode JSON: {e}")))
}

/// A name stored as text (`"running"`, `"task.queued"`) back to its serde enum.
fn from_name<T: DeserializeOwned>(name: String, column: &str) -> Result<T, sqlx::Error> {
    serde_json::from_value(Value::String(name)).map_err(|e| decode_error(column, e))
}

pub(crate) fn decode_error(column: &str, error: impl std::fmt::Display) -> sqlx::Error {
    sqlx::Error::ColumnDecode { index: column.into(), source: error.to_string().into() }
}

/// A task's column values, converted before any statement is built so a value that cannot
/// be stored fails the batch before it touches the database.
pub(crate) struct TaskRow {
    pub id: Uuid,
    pub namespace: String,
    pub target: String,
    pub agent: Option<String>,
    pub state: &'static str,
    pub input: String,
    pub output: Option<String>,
    pub error: Option<String>,
    pub priority: i16,
    pub attempt: i32,
    pub max_attempts: i32,
    pub idempotency_key: Option<String>,
    pub durable: bool,
    pub submitter: Option<String>,
    pub timeout_us: Option<i64>,
    pub traceparent: Option<String>,
    pub owner: Option<Uuid>,
    pub created_at: i64,
    pub updated_at: i64,
    pub deadline_at: Option<i64>,
}

impl TaskRow {
    pub fn new(task: &TaskRecord) -> Result<Self, StoreError> {
        Ok(TaskRow {
            id: task.id.0,
            target: json_text(&task.target)?,
            state: task.state.as_str(),
            input: json_text(&*task.input)?,
            output: task.output.as_ref().map(json_text).transpose()?,
            priority: small(task.priority.into(), "priority")?,
            attempt: small(task.attempt.into(), "attempt")?,
            max_attempts: small(task.max_attempts.into(), "max_attempts")?,
            timeout_us: task.timeout.map(duration_micros).transpose()?,
            created_at: micros(task.created_at)?,
            updated_at: micros(task.updated_at)?,
            deadline_at: task.deadline.map(micros).transpose()?,
            namespace: task.namespace.clone(),
            agent: task.agent.clone(),
            error: task.error.clone(),
            idempotency_key: task.idempotency_key.clone(),
            durable: task.durable,
            submitter: task.submitter.clone(),
            traceparent: task.traceparent.clone(),
            owner: task.owner,
        })
    }
}

pub(crate) struct AttemptRow {
    pub task_id: Uuid,
    pub attempt: i32,
    pub node_start: Uuid,
    pub agent: Option<String>,
    pub state: &'static str,
    pub error: Option<String>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
}

impl AttemptRow {
    pub fn new(attempt: &AttemptRecord) -> Result<Self, StoreError> {
        Ok(AttemptRow {
            task_id: attempt.task_id.0,
            attempt: small(attempt.attempt.into(), "attempt")?,
            node_start: attempt.node_start,
            agent: attempt.agent.clone(),
            state: attempt.state.as_str(),
            error: attempt.error.clone(),
            started_at: micros(attempt.started_at)?,
            finished_at: attempt.finished_at.map(micros).transpose()?,
        })
    }
}

pub(crate) struct EventRow {
    pub seq: i64,
    pub emitted_at: i64,
    pub kind: &'static str,
    pub namespace: String,
    pub subject: String,
    pub data: String,
}

impl EventRow {
    pub fn new(event: &Event) -> Result<Self, StoreError> {
        Ok(EventRow {
            seq: small(event.seq, "event seq")?,
            emitted_at: micros(event.time)?,
            kind: event.kind.as_str(),
            namespace: event.namespace.to_string(),
            subject: event.subject.to_string(),
            data: json_text(&event.data)?,
        })
    }
}

pub(crate) struct AgentRow {
    pub namespace: String,
    pub name: String,
    pub spec: String,
}

impl AgentRow {
    pub fn new(spec: &AgentSpec) -> Result<Self, StoreError> {
        Ok(AgentRow { namespace: spec.namespace.clone(), name: spec.name.clone(), spec: json_text(spec)? })
    }
}

/// Reads one column by name.
pub(crate) fn get<'r, R, T>(row: &'r R, column: &str) -> Result<T, sqlx::Error>
where
    R: Row,
    T: Decode<'r, R::Database> + Type<R::Database>,
    for<'a> &'a str: ColumnIndex<R>,
{
    row.try_get(column)
}

pub(crate) fn get_time<R>(row: &R, column: &str) -> Result<SystemTime, sqlx::Error>
where
    R: Row,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'a> &'a str: ColumnIndex<R>,
{
    get::<R, i64>(row, column).map(time)
}

fn get_u32<R>(row: &R, column: &str) -> Result<u32, sqlx::Error>
where
    R: Row,
    for<'r> i32: Decode<'r, R::Database> + Type<R::Database>,
    for<'a> &'a str: ColumnIndex<R>,
{
    u32::try_from(get::<R, i32>(row, column)?).map_err(|e| decode_error(column, e))
}

pub(crate) fn task_from_row<R>(row: &R) -> Result<TaskRecord, sqlx::Error>
where
    R: Row,
    for<'r> Uuid: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i32: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i16: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> bool: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Json<Value>: Decode<'r, R::Database> + Type<R::Database>,
    for<'a> &'a str: ColumnIndex<R>,
{
    let target: String = get(row, "target")?;
    let priority: i16 = get(row, "priority")?;
    let timeout_us: Option<i64> = get(row, "timeout_us")?;
    Ok(TaskRecord {
        id: TaskId(get(row, "id")?),
        namespace: get(row, "namespace")?,
        target: serde_json::from_str(&target).map_err(|e| decode_error("target", e))?,
        agent: get(row, "agent")?,
        state: from_name::<TaskState>(get(row, "state")?, "state")?,
        input: Arc::new(get::<R, Json<Value>>(row, "input")?.0),
        output: get::<R, Option<Json<Value>>>(row, "output")?.map(|j| Arc::new(j.0)),
        error: get(row, "error")?,
        priority: u8::try_from(priority).map_err(|e| decode_error("priority", e))?,
        attempt: get_u32(row, "attempt")?,
        max_attempts: get_u32(row, "max_attempts")?,
        idempotency_key: get(row, "idempotency_key")?,
        durable: get(row, "durable")?,
        submitter: get(row, "submitter")?,
        timeout: match timeout_us {
            Some(us) => {
                Some(Duration::from_micros(u64::try_from(us).map_err(|e| decode_error("timeout_us", e))?))
            }
            None => None,
        },
        traceparent: get(row, "traceparent")?,
        owner: get(row, "owner")?,
        created_at: get_time(row, "created_at")?,
        updated_at: get_time(row, "updated_at")?,
        deadline: get::<R, Option<i64>>(row, "deadline_at")?.map(time),
    })
}

pub(crate) fn attempt_from_row<R>(row: &R) -> Result<AttemptRecord, sqlx::Error>
where
    R: Row,
    for<'r> Uuid: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i32: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'a> &'a str: ColumnIndex<R>,
{
    Ok(AttemptRecord {
        task_id: TaskId(get(row, "task_id")?),
        attempt: get_u32(row, "attempt")?,
        node_start: get(row, "node_start")?,
        agent: get(row, "agent")?,
        state: from_name::<TaskState>(get(row, "state")?, "state")?,
        error: get(row, "error")?,
        started_at: get_time(row, "started_at")?,
        finished_at: get::<R, Option<i64>>(row, "finished_at")?.map(time),
    })
}

pub(crate) fn event_from_row<R>(row: &R) -> Result<Event, sqlx::Error>
where
    R: Row,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Json<Value>: Decode<'r, R::Database> + Type<R::Database>,
    for<'a> &'a str: ColumnIndex<R>,
{
    let seq: i64 = get(row, "seq")?;
    Ok(Event {
        seq: u64::try_from(seq).map_err(|e| decode_error("seq", e))?,
        time: get_time(row, "emitted_at")?,
        kind: from_name::<EventKind>(get(row, "kind")?, "kind")?,
        namespace: get::<R, String>(row, "namespace")?.into(),
        subject: get::<R, String>(row, "subject")?.into(),
        data: Arc::new(get::<R, Json<Value>>(row, "data")?.0),
    })
}

pub(crate) fn agent_from_row<R>(row: &R) -> Result<AgentSpec, sqlx::Error>
where
    R: Row,
    for<'r> Json<Value>: Decode<'r, R::Database> + Type<R::Database>,
    for<'a> &'a str: ColumnIndex<R>,
{
    serde_json::from_value(get::<R, Json<Value>>(row, "spec")?.0).map_err(|e| decode_error("spec", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_to_the_microsecond() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        assert_eq!(micros(t).unwrap(), 1_700_000_000_123_456);
        assert_eq!(time(micros(t).unwrap()), UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_000));
        let before = UNIX_EPOCH - Duration::from_micros(5);
        assert_eq!(micros(before).unwrap(), -5);
        assert_eq!(time(-5), before);
    }

    #[test]
    fn far_future_times_fit() {
        let year_9999 = UNIX_EPOCH + Duration::from_secs(253_402_300_799);
        assert_eq!(time(micros(year_9999).unwrap()), year_9999);
    }

    #[test]
    fn enum_names_round_trip() {
        for kind in [EventKind::TaskTimedOut, EventKind::AgentRemoved, EventKind::ActorRestarted] {
            assert_eq!(from_name::<EventKind>(kind.as_str().into(), "kind").unwrap(), kind);
        }
        let kind: EventKind = from_name("agent.removed".into(), "kind").unwrap();
        assert_eq!(kind, EventKind::AgentRemoved);
        let state: TaskState = from_name("timed_out".into(), "state").unwrap();
        assert_eq!(state, TaskState::TimedOut);
        assert!(from_name::<TaskState>("finished".into(), "state").is_err());
    }
}
