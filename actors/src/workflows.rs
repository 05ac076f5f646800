//! Workflow runs as supervised actors (DESIGN §5):
//!
//! ```text
//! workflows            supervisor, one-for-one
//! ├── engine           stores definitions, starts runs, claims the runs of dead starts
//! └── run:<id>         one per unfinished run (transient: a crash restarts it from its journal)
//! ```
//!
//! A `plan` step's model call (`planner`) runs as a task of its run, like a step's task.
//!
//! The engine holds a lease of its own (a row in `nodes`, like the orchestrator's) that
//! the runs it drives point to; a node that starts claims the unfinished runs of expired
//! leases and of its own earlier starts, and resumes each from its journal.
//!
//! Live runs are found through a [`RunDirectory`] shared by the engine, the runs and the
//! embedding API, so a change to a run is one message to its actor.

mod check;
mod engine;
mod planner;
mod run;
mod units;

use std::collections::{HashMap, VecDeque};
use std::time::SystemTime;

use mark1_supervisors::Addr;
use parking_lot::RwLock;
use ractor::RpcReplyPort;
use serde::Serialize;
use serde_json::Value;

pub use check::known_names;
pub use engine::{Engine, EngineArgs, EngineMsg, RunEnv, StartRun};
pub use planner::PlanError;
pub use run::{RunActor, RunMsg};

use crate::domain::workflow::validate::Problem;
use crate::domain::workflow::{
    ChangeError, JournalEntry, RunId, RunProgress, RunRecord, StepDef, StepProgress, Templates,
};
use crate::ports::StoreError;

/// Why a workflow or run request was refused. Typed, so the edge can map it.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum WorkflowError {
    #[error(
        "no workflow '{name}'{} in namespace '{namespace}'; store it first (mark1 workflows create, POST /v1/workflows)",
        version.map(|v| format!(" version {v}")).unwrap_or_default()
    )]
    UnknownWorkflow { namespace: String, name: String, version: Option<u32> },
    #[error("no run {0}")]
    UnknownRun(RunId),
    /// The definition (or the steps added to a run) breaks the rules; every problem is listed.
    #[error("invalid workflow: {}", problems(.0))]
    Invalid(Vec<Problem>),
    /// The run input does not satisfy the workflow's `input_schema`.
    #[error("the run input does not match the workflow's input_schema: {}", problems(.0))]
    InvalidInput(Vec<Problem>),
    #[error("workflow '{name}' version {version} exists with a different definition; leave `version` out to store the next one")]
    VersionExists { name: String, version: u32 },
    #[error("idempotency key '{key}' was used for a different run; use a new key for different work")]
    IdempotencyConflict { key: String },
    #[error(transparent)]
    Change(#[from] ChangeError),
    #[error("{0}")]
    Unavailable(String),
}

fn problems(problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("{} (at {})", p.message, p.pointer)).collect::<Vec<_>>().join("; ")
}

impl From<StoreError> for WorkflowError {
    fn from(e: StoreError) -> Self {
        WorkflowError::Unavailable(e.to_string())
    }
}

/// A run as the API shows it: its record and every step's state.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunView {
    #[serde(flatten)]
    pub record: RunRecord,
    pub steps: Vec<StepProgress>,
}

/// A change to a running run (`PATCH /v1/runs/{id}`, `POST …/approvals/{step}`).
#[derive(Clone, Debug, PartialEq)]
pub enum RunChange {
    Cancel { reason: String },
    RetryStep { step: String },
    SkipStep { step: String, output: Value },
    AddSteps { steps: Vec<StepDef> },
    Decide { step: String, approved: bool, comment: String },
}

impl RunChange {
    /// Applies the change to a run's progress: the entries to journal, or why not.
    pub fn apply(
        self,
        progress: &mut RunProgress,
        templates: &Templates,
        by: &str,
        now: SystemTime,
    ) -> Result<Vec<JournalEntry>, WorkflowError> {
        Ok(match self {
            RunChange::Cancel { reason } => progress.cancel(by, &reason, now)?,
            RunChange::RetryStep { step } => progress.retry(templates, &step, by, now)?,
            RunChange::SkipStep { step, output } => progress.skip(templates, &step, output, by, now)?,
            RunChange::Decide { step, approved, comment } => {
                progress.decide(templates, &step, approved, &comment, by, now)?
            }
            RunChange::AddSteps { steps } => progress.add_steps(templates, steps, by, now)?,
        })
    }
}

pub type ViewReply = RpcReplyPort<Result<RunView, WorkflowError>>;

/// Finished runs kept in memory, so reading a run that just ended does not depend on
/// its background writes having reached the store (durability off).
const RECENTLY_FINISHED: usize = 10_000;

/// The actors of live runs, by run id, and the views of the runs that ended last.
#[derive(Default)]
pub struct RunDirectory {
    runs: RwLock<HashMap<RunId, Addr<RunMsg>>>,
    finished: parking_lot::Mutex<(HashMap<RunId, RunView>, VecDeque<RunId>)>,
}

impl RunDirectory {
    pub fn get(&self, id: RunId) -> Option<Addr<RunMsg>> {
        self.runs.read().get(&id).cloned()
    }

    /// A run that ended recently, as it ended.
    pub fn finished(&self, id: RunId) -> Option<RunView> {
        self.finished.lock().0.get(&id).cloned()
    }

    fn remember(&self, view: RunView) {
        let mut finished = self.finished.lock();
        let (views, order) = &mut *finished;
        if views.insert(view.record.id, view.clone()).is_none() {
            order.push_back(view.record.id);
        }
        while order.len() > RECENTLY_FINISHED {
            if let Some(oldest) = order.pop_front() {
                views.remove(&oldest);
            }
        }
    }

    fn insert(&self, id: RunId, addr: Addr<RunMsg>) {
        self.runs.write().insert(id, addr);
    }

    fn remove(&self, id: RunId) {
        self.runs.write().remove(&id);
    }
}

/// The supervisor child id of a run's actor.
pub fn run_child_id(id: RunId) -> String {
    format!("run:{id}")
}
