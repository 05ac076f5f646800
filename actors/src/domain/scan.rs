//! Scan jobs (DESIGN §7, §9): a scan of a folder on the node's disk, run as an actor under
//! the `scans` supervisor, and its stored record (table `scans`).

use std::path::PathBuf;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

super::time_ordered_id!(
    /// A scan job's id (UUID v7).
    ScanId
);

/// Where a scan job is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScanState {
    /// Accepted: waiting for a scan slot or scanning.
    Running,
    Succeeded,
    Failed,
}

impl ScanState {
    pub const ALL: [ScanState; 3] = [ScanState::Running, ScanState::Succeeded, ScanState::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            ScanState::Running => "running",
            ScanState::Succeeded => "succeeded",
            ScanState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        ScanState::ALL.into_iter().find(|state| state.as_str() == s)
    }

    pub fn is_final(self) -> bool {
        self != ScanState::Running
    }
}

/// The counts of a finished scan's report, stored beside it so listings need not read it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanSummary {
    pub files: u64,
    pub llm_calls: u64,
    pub agents: u64,
    pub tools: u64,
    pub mcp: u64,
    /// Files that could not be read or parsed (reported, never fatal).
    pub problems: u64,
}

/// One scan job (table `scans`), without its report: [`Write::PutScan`] carries that,
/// and `Store::scan_result` reads it.
///
/// [`Write::PutScan`]: crate::ports::Write::PutScan
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScanRecord {
    pub id: ScanId,
    pub namespace: String,
    /// The scanned folder, absolute and canonical.
    pub path: PathBuf,
    pub state: ScanState,
    pub submitter: Option<String>,
    /// Why the scan failed.
    pub error: Option<String>,
    /// Set once it succeeded.
    pub summary: Option<ScanSummary>,
    #[serde(with = "humantime_serde")]
    pub created_at: SystemTime,
    #[serde(with = "humantime_serde")]
    pub finished_at: Option<SystemTime>,
}

impl ScanRecord {
    pub fn running(namespace: &str, path: PathBuf, submitter: Option<String>, now: SystemTime) -> Self {
        ScanRecord {
            id: ScanId::new(),
            namespace: namespace.to_string(),
            path,
            state: ScanState::Running,
            submitter,
            error: None,
            summary: None,
            created_at: now,
            finished_at: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_by_name() {
        for state in ScanState::ALL {
            assert_eq!(ScanState::parse(state.as_str()), Some(state));
            assert_eq!(serde_json::to_value(state).unwrap(), state.as_str());
        }
        assert_eq!(ScanState::parse("queued"), None);
        assert!(!ScanState::Running.is_final() && ScanState::Failed.is_final());
    }
}
