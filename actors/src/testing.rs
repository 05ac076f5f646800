//! Fault injection for tests: a store that can be switched off like a database that
//! goes away, made to refuse one write, or made to hold its commits like a database that
//! hangs, so outage, rejection and queueing are tested without a real server.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::SystemTime;

use uuid::Uuid;

use crate::domain::scan::{ScanId, ScanRecord};
use crate::domain::workflow::{JournalEntry, RunId, RunRecord, WorkflowRecord};
use crate::domain::{AgentSpec, ApiKeyRecord, AuditHead, AuditRecord, Event, TaskId, TaskRecord, TaskState};
use crate::ports::{
    AttemptRecord, MemoryStore, NodeStart, RunQuery, ScanQuery, Store, StoreError, TaskQuery, UsageQuery,
    UsageRow, UsageTotal, Write,
};

/// A [`MemoryStore`] whose every call fails with `StoreError::Unavailable` while down,
/// which rejects (as a constraint violation would) any batch holding the event with
/// the poisoned `seq`, and whose batches wait while held.
pub struct SwitchableStore {
    inner: MemoryStore,
    down: AtomicBool,
    /// 0: nothing is poisoned.
    poisoned_seq: AtomicU64,
    held: tokio::sync::watch::Sender<bool>,
    batches: AtomicU64,
}

impl Default for SwitchableStore {
    fn default() -> Self {
        SwitchableStore {
            inner: MemoryStore::default(),
            down: AtomicBool::new(false),
            poisoned_seq: AtomicU64::new(0),
            held: tokio::sync::watch::Sender::new(false),
            batches: AtomicU64::new(0),
        }
    }
}

impl SwitchableStore {
    /// While held, `write_batch` waits (before it looks at the data) until released.
    pub fn hold_writes(&self, held: bool) {
        self.held.send_replace(held);
    }

    /// Calls of `write_batch` so far, held ones included.
    pub fn batches(&self) -> u64 {
        self.batches.load(Relaxed)
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Relaxed);
    }

    /// Batches holding the event with this `seq` are rejected from now on.
    pub fn poison_event(&self, seq: u64) {
        self.poisoned_seq.store(seq, Relaxed);
    }

    pub fn inner(&self) -> &MemoryStore {
        &self.inner
    }

    fn up(&self) -> Result<&MemoryStore, StoreError> {
        match self.down.load(Relaxed) {
            true => Err(StoreError::Unavailable("connection refused (switched off)".into())),
            false => Ok(&self.inner),
        }
    }
}

#[async_trait::async_trait]
impl Store for SwitchableStore {
    async fn write_batch(&self, writes: &[Write]) -> Result<(), StoreError> {
        self.batches.fetch_add(1, Relaxed);
        let _ = self.held.subscribe().wait_for(|held| !held).await;
        let poisoned = self.poisoned_seq.load(Relaxed);
        if writes.iter().any(|w| matches!(w, Write::AppendEvent(e) if e.seq == poisoned)) {
            return Err(StoreError::Rejected(format!("event {poisoned} breaks a constraint")));
        }
        self.up()?.write_batch(writes).await
    }
    async fn task(&self, id: TaskId) -> Result<Option<TaskRecord>, StoreError> {
        self.up()?.task(id).await
    }
    async fn task_by_idempotency_key(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<Option<TaskRecord>, StoreError> {
        self.up()?.task_by_idempotency_key(namespace, key).await
    }
    async fn count_tasks(&self, state: TaskState) -> Result<u64, StoreError> {
        self.up()?.count_tasks(state).await
    }
    async fn attempts(&self, id: TaskId) -> Result<Vec<AttemptRecord>, StoreError> {
        self.up()?.attempts(id).await
    }
    async fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        self.up()?.events_after(after, limit).await
    }
    async fn last_event_seq(&self) -> Result<u64, StoreError> {
        self.up()?.last_event_seq().await
    }
    async fn agents(&self) -> Result<Vec<AgentSpec>, StoreError> {
        self.up()?.agents().await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.up()?.ping().await
    }
    async fn open_lease(&self, start: &NodeStart) -> Result<(), StoreError> {
        self.up()?.open_lease(start).await
    }
    async fn renew_lease(&self, start: Uuid, until: SystemTime) -> Result<(), StoreError> {
        self.up()?.renew_lease(start, until).await
    }
    async fn close_lease(&self, start: Uuid) -> Result<(), StoreError> {
        self.up()?.close_lease(start).await
    }
    async fn claim_orphans(
        &self,
        start: &NodeStart,
        now: SystemTime,
        limit: usize,
    ) -> Result<Vec<TaskRecord>, StoreError> {
        self.up()?.claim_orphans(start, now, limit).await
    }
    async fn prune(&self, before: SystemTime, limit: usize) -> Result<u64, StoreError> {
        self.up()?.prune(before, limit).await
    }
    async fn list_tasks(&self, query: &TaskQuery) -> Result<Vec<TaskRecord>, StoreError> {
        self.up()?.list_tasks(query).await
    }
    async fn usage_totals(&self, since: SystemTime) -> Result<Vec<UsageTotal>, StoreError> {
        self.up()?.usage_totals(since).await
    }
    async fn usage_report(&self, query: &UsageQuery) -> Result<Vec<UsageRow>, StoreError> {
        self.up()?.usage_report(query).await
    }
    async fn workflow(
        &self,
        namespace: &str,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<WorkflowRecord>, StoreError> {
        self.up()?.workflow(namespace, name, version).await
    }
    async fn workflows(&self, namespace: Option<&str>) -> Result<Vec<WorkflowRecord>, StoreError> {
        self.up()?.workflows(namespace).await
    }
    async fn scan(&self, id: ScanId) -> Result<Option<ScanRecord>, StoreError> {
        self.up()?.scan(id).await
    }
    async fn scan_result(&self, id: ScanId) -> Result<Option<String>, StoreError> {
        self.up()?.scan_result(id).await
    }
    async fn list_scans(&self, query: &ScanQuery) -> Result<Vec<ScanRecord>, StoreError> {
        self.up()?.list_scans(query).await
    }
    async fn run(&self, id: RunId) -> Result<Option<RunRecord>, StoreError> {
        self.up()?.run(id).await
    }
    async fn run_by_idempotency_key(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<Option<RunRecord>, StoreError> {
        self.up()?.run_by_idempotency_key(namespace, key).await
    }
    async fn list_runs(&self, query: &RunQuery) -> Result<Vec<RunRecord>, StoreError> {
        self.up()?.list_runs(query).await
    }
    async fn journal(&self, run: RunId) -> Result<Vec<JournalEntry>, StoreError> {
        self.up()?.journal(run).await
    }
    async fn claim_orphan_runs(
        &self,
        start: &NodeStart,
        now: SystemTime,
        limit: usize,
    ) -> Result<Vec<RunRecord>, StoreError> {
        self.up()?.claim_orphan_runs(start, now, limit).await
    }
    async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        self.up()?.api_key(id).await
    }
    async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.up()?.api_keys().await
    }
    async fn revoke_api_key(&self, id: &str, at: SystemTime) -> Result<bool, StoreError> {
        self.up()?.revoke_api_key(id, at).await
    }
    async fn audit_records(
        &self,
        node: Option<&str>,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.up()?.audit_records(node, after_seq, limit).await
    }
    async fn audit_head(&self, node: &str) -> Result<Option<AuditHead>, StoreError> {
        self.up()?.audit_head(node).await
    }
    async fn audit_chains(&self) -> Result<Vec<String>, StoreError> {
        self.up()?.audit_chains().await
    }
}

/// Polls `check` every 10 ms for up to 10 s; panics naming `what` if it never holds.
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if check() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}
