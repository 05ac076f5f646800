//! The `Store` port: reads, plus `write_batch` that applies many writes in one
//! transaction. The `store_writer` actor groups callers' writes into those batches.
//!
//! Besides tasks, events and agents, the port owns the node leases of DESIGN §4: every
//! node start holds a row in `nodes` renewed by heartbeat, unfinished tasks point to
//! the start that runs them, and a new start claims the tasks of expired leases (and of
//! its own node's earlier starts at once). Workflow runs (DESIGN §5) are leased the same
//! way; the port keeps every version of each workflow definition, the runs and each run's
//! journal. It also keeps API keys and the audit log's hash chains (DESIGN §9).

use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::model::UsageRecord;
use crate::domain::scan::{ScanId, ScanRecord, ScanState};
use crate::domain::workflow::{JournalEntry, RunId, RunRecord, RunState, WorkflowRecord};
use crate::domain::{
    AgentSpec, ApiKeyRecord, AuditHead, AuditRecord, Event, Target, TaskId, TaskRecord, TaskState,
};

mod memory;

pub use memory::MemoryStore;

/// One change to durable state.
#[derive(Clone, Debug, PartialEq)]
pub enum Write {
    /// Inserts or replaces a task record. Several puts of one task in a batch: the last wins.
    /// Shared with the orchestrator's entry of the task, which copies it only if it
    /// changes the task again before the write is done with it.
    PutTask(Arc<TaskRecord>),
    /// Inserts or replaces the record of one attempt of a task.
    PutAttempt(Box<AttemptRecord>),
    /// Appends an event with the `seq` the node's event bus gave it.
    AppendEvent(Arc<Event>),
    PutAgent(Box<AgentSpec>),
    RemoveAgent {
        namespace: String,
        name: String,
    },
    /// Inserts a new API key; an id already taken rejects the batch.
    PutApiKey(Box<ApiKeyRecord>),
    /// Revokes a key as of `at`, unless it was revoked earlier; an unknown id is no change.
    RevokeApiKey {
        id: String,
        at: SystemTime,
    },
    /// Appends an audit record; a `(node, seq)` already taken rejects the batch, so two
    /// writers of one chain cannot fork it: the second fails and must re-read the head.
    AppendAudit(Box<AuditRecord>),
    /// Inserts a version of a workflow definition; a `(namespace, name, version)` already
    /// stored rejects the batch: a stored version never changes, since runs pin it.
    PutWorkflow(Box<WorkflowRecord>),
    /// Inserts or replaces a run record. Several puts of one run in a batch: the last wins.
    PutRun(Box<RunRecord>),
    /// Appends an entry to a run's journal; a `(run, seq)` already taken rejects the
    /// batch, so two drivers of one run cannot both journal the same transition.
    AppendJournal(Box<JournalEntry>),
    /// Records one model call's usage. Inserted once: an id already present (stored, or
    /// earlier in the batch) is ignored, so a retried background batch cannot double-count.
    PutUsage(Box<UsageRecord>),
    /// Inserts or replaces a scan job's record, with its report (JSON text) once it has
    /// one. Several puts of one scan in a batch: the last wins; a put without a report
    /// clears one stored earlier (a job writes its report with its final put only).
    PutScan {
        record: Box<ScanRecord>,
        result: Option<Arc<str>>,
    },
}

/// Which tasks [`Store::list_tasks`] returns: newest first (ids are UUID v7), those
/// matching every filter that is set, at most `limit`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskQuery {
    pub namespace: Option<String>,
    pub state: Option<TaskState>,
    /// Tasks run by this agent, or addressed to it by name (and not yet dispatched).
    pub agent: Option<String>,
    pub submitter: Option<String>,
    /// Only tasks older than this one: the cursor of the next page is the last id of the
    /// page before.
    pub before: Option<TaskId>,
    pub limit: usize,
}

impl Default for TaskQuery {
    fn default() -> Self {
        TaskQuery { namespace: None, state: None, agent: None, submitter: None, before: None, limit: 100 }
    }
}

impl TaskQuery {
    pub fn matches(&self, task: &TaskRecord) -> bool {
        let agent =
            |a: &String| task.agent.as_ref() == Some(a) || matches!(&task.target, Target::Agent(t) if t == a);
        self.namespace.as_ref().is_none_or(|ns| &task.namespace == ns)
            && self.state.is_none_or(|s| task.state == s)
            && self.agent.as_ref().is_none_or(agent)
            && self.submitter.as_ref().is_none_or(|s| task.submitter.as_ref() == Some(s))
            && self.before.is_none_or(|before| task.id < before)
    }
}

/// Which runs [`Store::list_runs`] returns: newest first (ids are UUID v7), those matching
/// every filter that is set, at most `limit`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunQuery {
    pub namespace: Option<String>,
    pub state: Option<RunState>,
    /// Runs of this workflow, whatever the version.
    pub workflow: Option<String>,
    /// Runs this principal submitted (role `agent` sees only its own).
    pub submitter: Option<String>,
    /// Only runs older than this one: the cursor of the next page is the last id of the
    /// page before.
    pub before: Option<RunId>,
    pub limit: usize,
}

impl Default for RunQuery {
    fn default() -> Self {
        RunQuery { namespace: None, state: None, workflow: None, submitter: None, before: None, limit: 100 }
    }
}

impl RunQuery {
    pub fn matches(&self, run: &RunRecord) -> bool {
        self.namespace.as_ref().is_none_or(|ns| &run.namespace == ns)
            && self.state.is_none_or(|s| run.state == s)
            && self.workflow.as_ref().is_none_or(|w| &run.workflow == w)
            && self.submitter.as_ref().is_none_or(|s| run.submitter.as_ref() == Some(s))
            && self.before.is_none_or(|before| run.id < before)
    }
}

/// Which scans [`Store::list_scans`] returns: newest first (ids are UUID v7), those
/// matching every filter that is set, at most `limit`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanQuery {
    pub namespace: Option<String>,
    pub state: Option<ScanState>,
    /// Only scans older than this one: the cursor of the next page.
    pub before: Option<ScanId>,
    pub limit: usize,
}

impl Default for ScanQuery {
    fn default() -> Self {
        ScanQuery { namespace: None, state: None, before: None, limit: 100 }
    }
}

impl ScanQuery {
    pub fn matches(&self, scan: &ScanRecord) -> bool {
        self.namespace.as_ref().is_none_or(|ns| &scan.namespace == ns)
            && self.state.is_none_or(|s| scan.state == s)
            && self.before.is_none_or(|before| scan.id < before)
    }
}

/// Model usage of one namespace summed since a time ([`Store::usage_totals`]): what the
/// router's budgets start from after a restart.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UsageTotal {
    pub namespace: String,
    /// Prompt and completion tokens together.
    pub tokens: u64,
    pub cost: f64,
}

/// What the rows of a usage report ([`Store::usage_report`]) are grouped by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageGroup {
    #[default]
    Namespace,
    Agent,
    Task,
    Run,
    Provider,
    Model,
}

impl UsageGroup {
    pub const ALL: [UsageGroup; 6] = [
        UsageGroup::Namespace,
        UsageGroup::Agent,
        UsageGroup::Task,
        UsageGroup::Run,
        UsageGroup::Provider,
        UsageGroup::Model,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            UsageGroup::Namespace => "namespace",
            UsageGroup::Agent => "agent",
            UsageGroup::Task => "task",
            UsageGroup::Run => "run",
            UsageGroup::Provider => "provider",
            UsageGroup::Model => "model",
        }
    }

    /// The group `record` falls in: `None` for a call made outside any agent, task or run.
    /// Task and run ids are spelled as their `Display` spells them.
    pub fn key(self, record: &UsageRecord) -> Option<String> {
        match self {
            UsageGroup::Namespace => Some(record.namespace.clone()),
            UsageGroup::Agent => record.agent.clone(),
            UsageGroup::Task => record.task.map(|t| t.to_string()),
            UsageGroup::Run => record.run.map(|r| r.to_string()),
            UsageGroup::Provider => Some(record.provider.clone()),
            UsageGroup::Model => Some(record.model.clone()),
        }
    }
}

impl std::fmt::Display for UsageGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `group_by` that names no [`UsageGroup`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown usage group '{0}': expected one of namespace, agent, task, run, provider, model")]
pub struct UnknownUsageGroup(pub String);

impl std::str::FromStr for UsageGroup {
    type Err = UnknownUsageGroup;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        UsageGroup::ALL.into_iter().find(|g| g.as_str() == s).ok_or_else(|| UnknownUsageGroup(s.to_string()))
    }
}

/// Which usage [`Store::usage_report`] sums: records matching every filter that is set,
/// grouped by `group_by`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UsageQuery {
    pub namespace: Option<String>,
    /// Records at or after this time.
    pub since: Option<SystemTime>,
    /// Records before this time.
    pub until: Option<SystemTime>,
    pub group_by: UsageGroup,
}

impl UsageQuery {
    /// Rows in a report at most: the groups of the highest cost.
    pub const LIMIT: usize = 1000;
}

/// One group of a usage report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UsageRow {
    /// The group's value (a namespace, an agent's name, a task id…); `None` gathers the
    /// calls made outside any agent, task or run.
    pub key: Option<String>,
    pub calls: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost: f64,
}

impl UsageRow {
    pub fn tokens(&self) -> u64 {
        self.prompt_tokens + self.completion_tokens
    }

    /// The report's order: cost, then tokens, highest first; then by key (`None` first),
    /// so equal groups come in the same order from every backend.
    pub fn report_order(a: &UsageRow, b: &UsageRow) -> std::cmp::Ordering {
        b.cost.total_cmp(&a.cost).then(b.tokens().cmp(&a.tokens())).then_with(|| a.key.cmp(&b.key))
    }
}

/// One execution of a task (table `task_attempts`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub task_id: TaskId,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The node start that ran it.
    pub node_start: Uuid,
    pub agent: Option<String>,
    /// `running` while it runs, then how it ended.
    pub state: TaskState,
    pub error: Option<String>,
    #[serde(with = "humantime_serde")]
    pub started_at: SystemTime,
    #[serde(with = "humantime_serde")]
    pub finished_at: Option<SystemTime>,
}

/// One start of a node and its lease (table `nodes`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeStart {
    /// A UUID v7 made at start.
    pub id: Uuid,
    /// The node's configured name: a restarted node finds its earlier starts by it.
    pub node: String,
    #[serde(with = "humantime_serde")]
    pub started_at: SystemTime,
    /// The lease ends here unless renewed; others may then claim the start's tasks.
    #[serde(with = "humantime_serde")]
    pub lease_until: SystemTime,
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or refused the work; callers may retry later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The write breaks a constraint (a duplicate key, a schema mismatch).
    #[error("store rejected the write: {0}")]
    Rejected(String),
}

#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Applies every write in one transaction: all or nothing. Borrowed, so a batch the
    /// store could not take is still there to retry.
    async fn write_batch(&self, writes: &[Write]) -> Result<(), StoreError>;
    /// The runtime a commit runs best on, if the store has one of its own: the store
    /// writer runs its commits there, so a commit does not hop between runtimes.
    fn commit_runtime(&self) -> Option<tokio::runtime::Handle> {
        None
    }
    async fn task(&self, id: TaskId) -> Result<Option<TaskRecord>, StoreError>;
    /// The task submitted in `namespace` with this idempotency key, if any.
    async fn task_by_idempotency_key(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<Option<TaskRecord>, StoreError>;
    /// Tasks in `state` (in flight, finished…), for health, tests and the crash check.
    async fn count_tasks(&self, state: TaskState) -> Result<u64, StoreError>;
    /// Attempts of a task, first first.
    async fn attempts(&self, id: TaskId) -> Result<Vec<AttemptRecord>, StoreError>;
    /// Stored events with `seq > after`, oldest first, at most `limit`.
    async fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Event>, StoreError>;
    /// The highest stored `seq` (0 when none): a node continues its sequence from here.
    async fn last_event_seq(&self) -> Result<u64, StoreError>;
    async fn agents(&self) -> Result<Vec<AgentSpec>, StoreError>;
    /// Cheap reachability check for health and readiness.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Records a node start and its lease.
    async fn open_lease(&self, start: &NodeStart) -> Result<(), StoreError>;
    /// Extends the lease of a node start (the heartbeat).
    async fn renew_lease(&self, start: Uuid, until: SystemTime) -> Result<(), StoreError>;
    /// Ends a lease now (a clean stop): whatever the start left unfinished (a drain that
    /// timed out) is claimable at once.
    async fn close_lease(&self, start: Uuid) -> Result<(), StoreError>;
    /// Takes over at most `limit` unfinished tasks owned by an earlier start of
    /// `start.node`, by a start whose lease ended before `now`, or by a start with no
    /// row: their owner becomes `start.id`, in one transaction, and they are returned
    /// oldest first. Tasks of `start` itself are never claimed.
    async fn claim_orphans(
        &self,
        start: &NodeStart,
        now: SystemTime,
        limit: usize,
    ) -> Result<Vec<TaskRecord>, StoreError>;
    /// Deletes at most `limit` finished tasks (with their attempts) and at most `limit`
    /// finished runs (with their journals) last updated before `before`, at most `limit`
    /// events and at most `limit` usage records older than it; returns the tasks, runs,
    /// events and usage records deleted.
    async fn prune(&self, before: SystemTime, limit: usize) -> Result<u64, StoreError>;
    /// Tasks matching `query`, newest first.
    async fn list_tasks(&self, query: &TaskQuery) -> Result<Vec<TaskRecord>, StoreError>;

    /// Usage per namespace of the calls that ended at or after `since`, by namespace: the
    /// router restores its budgets from these at start.
    async fn usage_totals(&self, since: SystemTime) -> Result<Vec<UsageTotal>, StoreError>;
    /// Usage matching `query`, summed per group, in [`UsageRow::report_order`], at most
    /// [`UsageQuery::LIMIT`] rows.
    async fn usage_report(&self, query: &UsageQuery) -> Result<Vec<UsageRow>, StoreError>;

    /// A scan job's record, without its report.
    async fn scan(&self, id: ScanId) -> Result<Option<ScanRecord>, StoreError>;
    /// A scan's report as the JSON text it was stored as; `None` when there is no such
    /// scan or it has no report (yet).
    async fn scan_result(&self, id: ScanId) -> Result<Option<String>, StoreError>;
    /// Scans matching `query`, newest first, without their reports.
    async fn list_scans(&self, query: &ScanQuery) -> Result<Vec<ScanRecord>, StoreError>;

    /// Version `version` of workflow `name` in `namespace`; its newest version when `None`.
    async fn workflow(
        &self,
        namespace: &str,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<WorkflowRecord>, StoreError>;
    /// Every stored version of the workflows of `namespace` (of every namespace when
    /// `None`), by namespace, name, then version.
    async fn workflows(&self, namespace: Option<&str>) -> Result<Vec<WorkflowRecord>, StoreError>;
    async fn run(&self, id: RunId) -> Result<Option<RunRecord>, StoreError>;
    /// The run submitted in `namespace` with this idempotency key, if any.
    async fn run_by_idempotency_key(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<Option<RunRecord>, StoreError>;
    /// Runs matching `query`, newest first.
    async fn list_runs(&self, query: &RunQuery) -> Result<Vec<RunRecord>, StoreError>;
    /// The journal of run `run`, by seq; empty for a run that journaled nothing.
    async fn journal(&self, run: RunId) -> Result<Vec<JournalEntry>, StoreError>;
    /// [`claim_orphans`](Store::claim_orphans) for runs: takes over at most `limit`
    /// unfinished runs (not in a final state) owned by an earlier start of `start.node`,
    /// by a start whose lease ended before `now`, or by a start with no row; their owner
    /// becomes `start.id`, in one transaction, and they are returned oldest first. Runs
    /// of `start` itself are never claimed.
    async fn claim_orphan_runs(
        &self,
        start: &NodeStart,
        now: SystemTime,
        limit: usize,
    ) -> Result<Vec<RunRecord>, StoreError>;

    /// Inserts a new key; an id already taken is `Rejected`. (In a batch with other
    /// writes, such as its audit record: [`Write::PutApiKey`].)
    async fn put_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        self.write_batch(&[Write::PutApiKey(Box::new(key.clone()))]).await
    }
    async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError>;
    /// Every key, revoked and expired ones included, oldest first.
    async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError>;
    /// Revokes a key as of `at` (a key revoked earlier keeps its first revocation time);
    /// `false` when there is no such key.
    async fn revoke_api_key(&self, id: &str, at: SystemTime) -> Result<bool, StoreError>;

    /// Audit records of chain `node` (of every chain when `None`, by chain then seq) with
    /// `seq > after_seq`, oldest first, at most `limit`.
    async fn audit_records(
        &self,
        node: Option<&str>,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError>;
    /// The newest record of chain `node`, where its next record links.
    async fn audit_head(&self, node: &str) -> Result<Option<AuditHead>, StoreError>;
    /// The names of every chain in the log.
    async fn audit_chains(&self) -> Result<Vec<String>, StoreError>;
}
