//! Columns of `scans` (migration 5). The report's counts are six nullable integers, set
//! together once a scan succeeded; the report is JSON text (`jsonb` on PostgreSQL),
//! read apart from the record (`scan_result`), so listings never carry it.

use std::path::PathBuf;

use mark1_actors::domain::scan::{ScanId, ScanRecord, ScanState, ScanSummary};
use mark1_actors::ports::StoreError;
use sqlx::{ColumnIndex, Decode, Row, Type};
use uuid::Uuid;

use super::{decode_error, get, get_time, micros, time};

pub(crate) const SCAN_COLUMNS: &str = "id, namespace, path, state, submitter, error, files, llm_calls, \
     agents, tools, mcp, problems, result, created_at, finished_at";
/// Every column but the report.
pub(crate) const SCAN_RECORD_COLUMNS: &str = "id, namespace, path, state, submitter, error, files, \
     llm_calls, agents, tools, mcp, problems, created_at, finished_at";

pub(crate) struct ScanRow {
    pub id: Uuid,
    pub namespace: String,
    pub path: String,
    pub state: &'static str,
    pub submitter: Option<String>,
    pub error: Option<String>,
    /// files, llm_calls, agents, tools, mcp, problems.
    pub counts: [Option<i64>; 6],
    pub result: Option<String>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

fn count(n: u64) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| StoreError::Rejected(format!("scan count {n} is out of range")))
}

impl ScanRow {
    pub fn new(record: &ScanRecord, result: Option<&str>) -> Result<Self, StoreError> {
        let path = record
            .path
            .to_str()
            .ok_or_else(|| StoreError::Rejected(format!("scan path {:?} is not UTF-8", record.path)))?;
        let counts = match &record.summary {
            Some(s) => {
                [s.files, s.llm_calls, s.agents, s.tools, s.mcp, s.problems].map(|n| count(n).map(Some))
            }
            None => [const { Ok(None) }; 6],
        };
        let [files, llm_calls, agents, tools, mcp, problems] = counts;
        Ok(ScanRow {
            id: record.id.0,
            namespace: record.namespace.clone(),
            path: path.to_string(),
            state: record.state.as_str(),
            submitter: record.submitter.clone(),
            error: record.error.clone(),
            counts: [files?, llm_calls?, agents?, tools?, mcp?, problems?],
            result: result.map(str::to_string),
            created_at: micros(record.created_at)?,
            finished_at: record.finished_at.map(micros).transpose()?,
        })
    }
}

pub(crate) fn scan_from_row<R>(row: &R) -> Result<ScanRecord, sqlx::Error>
where
    R: Row,
    for<'r> Uuid: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'a> &'a str: ColumnIndex<R>,
{
    let state: String = get(row, "state")?;
    let n = |column: &str| -> Result<Option<u64>, sqlx::Error> {
        get::<R, Option<i64>>(row, column)?
            .map(|v| u64::try_from(v).map_err(|e| decode_error(column, e)))
            .transpose()
    };
    let summary = match n("files")? {
        Some(files) => Some(ScanSummary {
            files,
            llm_calls: n("llm_calls")?.unwrap_or(0),
            agents: n("agents")?.unwrap_or(0),
            tools: n("tools")?.unwrap_or(0),
            mcp: n("mcp")?.unwrap_or(0),
            problems: n("problems")?.unwrap_or(0),
        }),
        None => None,
    };
    Ok(ScanRecord {
        id: ScanId(get(row, "id")?),
        namespace: get(row, "namespace")?,
        path: PathBuf::from(get::<R, String>(row, "path")?),
        state: ScanState::parse(&state)
            .ok_or_else(|| decode_error("state", format!("unknown state {state}")))?,
        submitter: get(row, "submitter")?,
        error: get(row, "error")?,
        summary,
        created_at: get_time(row, "created_at")?,
        finished_at: get::<R, Option<i64>>(row, "finished_at")?.map(time),
    })
}
