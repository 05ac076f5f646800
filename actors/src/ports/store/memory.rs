//! `MemoryStore`: the port's backend in memory.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::Mutex;
use uuid::Uuid;

use super::{
    AttemptRecord, NodeStart, RunQuery, ScanQuery, Store, StoreError, TaskQuery, UsageQuery, UsageRow,
    UsageTotal, Write,
};
use crate::domain::scan::{ScanId, ScanRecord};
use crate::domain::workflow::{JournalEntry, RunId, RunRecord, WorkflowRecord};
use crate::domain::{AgentSpec, ApiKeyRecord, AuditHead, AuditRecord, Event, TaskId, TaskRecord, TaskState};

mod usage;

/// A store in memory: the backend of unit tests, of benches that measure the runtime
/// without a database, and of nodes run without one. It keeps the most recent
/// `retain` tasks, events and model usage records (the oldest go first), so a
/// long-running node does not grow without limit. Runs and their journals stay until
/// `prune` removes the finished ones: an unfinished run must never be dropped.
pub struct MemoryStore {
    inner: Mutex<MemoryTables>,
    retain: usize,
}

#[derive(Default)]
struct MemoryTables {
    /// Behind an `Arc`, shared with the orchestrator's entry of the task (`Write::PutTask`):
    /// no copy per write, and a B-tree node stays small (inline records made each node
    /// kilobytes, moved on every insert and eviction).
    tasks: BTreeMap<TaskId, Arc<TaskRecord>>,
    attempts: BTreeMap<(TaskId, u32), AttemptRecord>,
    events: VecDeque<Arc<Event>>,
    agents: HashMap<(String, String), AgentSpec>,
    nodes: HashMap<Uuid, NodeStart>,
    api_keys: BTreeMap<String, ApiKeyRecord>,
    audit: BTreeMap<(String, u64), AuditRecord>,
    workflows: BTreeMap<(String, String, u32), WorkflowRecord>,
    runs: BTreeMap<RunId, RunRecord>,
    journal: BTreeMap<(RunId, u64), JournalEntry>,
    usage: usage::UsageTable,
    /// Scan records and their reports.
    scans: BTreeMap<ScanId, (ScanRecord, Option<Arc<str>>)>,
    /// Tasks and runs by (namespace, idempotency key): found without a scan, as a
    /// database's unique index finds them.
    task_keys: HashMap<(String, String), TaskId>,
    run_keys: HashMap<(String, String), RunId>,
}

impl MemoryTables {
    fn forget_task(&mut self, task: &TaskRecord) {
        if let Some(key) = &task.idempotency_key {
            let slot = (task.namespace.clone(), key.clone());
            if self.task_keys.get(&slot) == Some(&task.id) {
                self.task_keys.remove(&slot);
            }
        }
    }

    fn forget_run(&mut self, run: &RunRecord) {
        if let Some(key) = &run.idempotency_key {
            let slot = (run.namespace.clone(), key.clone());
            if self.run_keys.get(&slot) == Some(&run.id) {
                self.run_keys.remove(&slot);
            }
        }
    }
}

impl MemoryTables {
    /// What a database's unique keys would refuse, checked before anything is applied
    /// so a batch stays all or nothing.
    fn conflict(&self, writes: &[Write]) -> Option<String> {
        let mut keys = std::collections::HashSet::new();
        let mut audit = std::collections::HashSet::new();
        let mut workflows = std::collections::HashSet::new();
        let mut journal = std::collections::HashSet::new();
        writes.iter().find_map(|write| match write {
            Write::PutApiKey(key) if self.api_keys.contains_key(&key.id) || !keys.insert(&key.id) => {
                Some(format!("API key id {} is taken", key.id))
            }
            Write::AppendAudit(r)
                if self.audit.contains_key(&(r.node.clone(), r.seq)) || !audit.insert((&r.node, r.seq)) =>
            {
                Some(format!("audit record {} of chain '{}' exists", r.seq, r.node))
            }
            Write::PutWorkflow(w)
                if self.workflows.contains_key(&(w.namespace.clone(), w.name.clone(), w.version))
                    || !workflows.insert((&w.namespace, &w.name, w.version)) =>
            {
                Some(format!("version {} of workflow '{}/{}' exists", w.version, w.namespace, w.name))
            }
            Write::AppendJournal(e)
                if self.journal.contains_key(&(e.run, e.seq)) || !journal.insert((e.run, e.seq)) =>
            {
                Some(format!("journal entry {} of run {} exists", e.seq, e.run))
            }
            _ => None,
        })
    }

    /// Node starts whose work is not orphaned at `now`: live leases of other nodes, and
    /// `start` itself (an earlier start of its own node is over, whatever its lease says).
    fn holders(&self, start: &NodeStart, now: SystemTime) -> Vec<Uuid> {
        self.nodes
            .values()
            .filter(|n| n.id == start.id || (n.node != start.node && n.lease_until >= now))
            .map(|n| n.id)
            .collect()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::with_retention(100_000)
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps at most `retain` tasks, `retain` events and `retain` usage records.
    pub fn with_retention(retain: usize) -> Self {
        MemoryStore { inner: Mutex::new(MemoryTables::default()), retain: retain.max(1) }
    }

    pub fn events(&self) -> Vec<Arc<Event>> {
        self.inner.lock().events.iter().cloned().collect()
    }
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    async fn write_batch(&self, writes: &[Write]) -> Result<(), StoreError> {
        let mut t = self.inner.lock();
        if let Some(conflict) = t.conflict(writes) {
            return Err(StoreError::Rejected(conflict));
        }
        for write in writes {
            match write {
                Write::PutTask(task) => {
                    if let Some(key) = &task.idempotency_key {
                        t.task_keys.entry((task.namespace.clone(), key.clone())).or_insert(task.id);
                    }
                    t.tasks.insert(task.id, task.clone());
                }
                Write::PutAttempt(attempt) => {
                    t.attempts.insert((attempt.task_id, attempt.attempt), (**attempt).clone());
                }
                Write::AppendEvent(event) => t.events.push_back(event.clone()),
                Write::PutAgent(spec) => {
                    t.agents.insert((spec.namespace.clone(), spec.name.clone()), (**spec).clone());
                }
                Write::RemoveAgent { namespace, name } => {
                    t.agents.remove(&(namespace.clone(), name.clone()));
                }
                Write::PutApiKey(key) => {
                    t.api_keys.insert(key.id.clone(), (**key).clone());
                }
                Write::RevokeApiKey { id, at } => {
                    if let Some(key) = t.api_keys.get_mut(id) {
                        key.revoked_at.get_or_insert(*at);
                    }
                }
                Write::AppendAudit(record) => {
                    t.audit.insert((record.node.clone(), record.seq), (**record).clone());
                }
                Write::PutWorkflow(w) => {
                    t.workflows.insert((w.namespace.clone(), w.name.clone(), w.version), (**w).clone());
                }
                Write::PutRun(run) => {
                    if let Some(key) = &run.idempotency_key {
                        t.run_keys.entry((run.namespace.clone(), key.clone())).or_insert(run.id);
                    }
                    t.runs.insert(run.id, (**run).clone());
                }
                Write::AppendJournal(entry) => {
                    t.journal.insert((entry.run, entry.seq), (**entry).clone());
                }
                Write::PutUsage(record) => t.usage.insert(record),
                Write::PutScan { record, result } => {
                    t.scans.insert(record.id, ((**record).clone(), result.clone()));
                }
            }
        }
        while t.tasks.len() > self.retain {
            if let Some((id, task)) = t.tasks.pop_first() {
                t.forget_task(&task);
                // The oldest task goes first, so its attempts and those of any task older
                // still are at the front.
                while let Some(attempt) = t.attempts.first_entry() {
                    if attempt.key().0 > id {
                        break;
                    }
                    attempt.remove();
                }
            }
        }
        while t.events.len() > self.retain {
            t.events.pop_front();
        }
        t.usage.retain_newest(self.retain);
        // Finished runs go oldest first, with their journals; an unfinished run is never
        // dropped, so one that runs long holds back the ones after it.
        while t.runs.len() > self.retain {
            let Some(entry) = t.runs.first_entry() else { break };
            if !entry.get().state.is_final() {
                break;
            }
            let run = entry.remove();
            t.forget_run(&run);
            let entries: Vec<(RunId, u64)> =
                t.journal.range((run.id, 0)..=(run.id, u64::MAX)).map(|(k, _)| *k).collect();
            for key in entries {
                t.journal.remove(&key);
            }
        }
        Ok(())
    }

    async fn task(&self, id: TaskId) -> Result<Option<TaskRecord>, StoreError> {
        Ok(self.inner.lock().tasks.get(&id).map(|task| (**task).clone()))
    }

    async fn task_by_idempotency_key(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<Option<TaskRecord>, StoreError> {
        let t = self.inner.lock();
        let found = t.task_keys.get(&(namespace.to_string(), key.to_string())).and_then(|id| t.tasks.get(id));
        Ok(found.map(|task| (**task).clone()))
    }

    async fn count_tasks(&self, state: TaskState) -> Result<u64, StoreError> {
        Ok(self.inner.lock().tasks.values().filter(|t| t.state == state).count() as u64)
    }

    async fn attempts(&self, id: TaskId) -> Result<Vec<AttemptRecord>, StoreError> {
        let t = self.inner.lock();
        Ok(t.attempts.range((id, 0)..=(id, u32::MAX)).map(|(_, a)| a.clone()).collect())
    }

    async fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        let t = self.inner.lock();
        Ok(t.events.iter().filter(|e| e.seq > after).take(limit).map(|e| (**e).clone()).collect())
    }

    async fn last_event_seq(&self) -> Result<u64, StoreError> {
        Ok(self.inner.lock().events.back().map_or(0, |e| e.seq))
    }

    async fn agents(&self) -> Result<Vec<AgentSpec>, StoreError> {
        Ok(self.inner.lock().agents.values().cloned().collect())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn open_lease(&self, start: &NodeStart) -> Result<(), StoreError> {
        self.inner.lock().nodes.insert(start.id, start.clone());
        Ok(())
    }

    async fn renew_lease(&self, start: Uuid, until: SystemTime) -> Result<(), StoreError> {
        match self.inner.lock().nodes.get_mut(&start) {
            Some(node) => {
                node.lease_until = until;
                Ok(())
            }
            None => Err(StoreError::Rejected(format!("no lease for node start {start}"))),
        }
    }

    async fn close_lease(&self, start: Uuid) -> Result<(), StoreError> {
        if let Some(node) = self.inner.lock().nodes.get_mut(&start) {
            node.lease_until = SystemTime::UNIX_EPOCH;
        }
        Ok(())
    }

    async fn claim_orphans(
        &self,
        start: &NodeStart,
        now: SystemTime,
        limit: usize,
    ) -> Result<Vec<TaskRecord>, StoreError> {
        let mut t = self.inner.lock();
        let live = t.holders(start, now);
        let mut claimed = Vec::new();
        for task in t.tasks.values_mut() {
            if claimed.len() == limit {
                break;
            }
            if !task.state.is_final() && task.owner.is_some_and(|o| !live.contains(&o)) {
                let task = Arc::make_mut(task);
                task.owner = Some(start.id);
                claimed.push(task.clone());
            }
        }
        Ok(claimed)
    }

    async fn prune(&self, before: SystemTime, limit: usize) -> Result<u64, StoreError> {
        let mut t = self.inner.lock();
        let old: Vec<TaskId> = t
            .tasks
            .values()
            .filter(|task| task.state.is_final() && task.updated_at < before)
            .take(limit)
            .map(|task| task.id)
            .collect();
        for id in &old {
            if let Some(task) = t.tasks.remove(id) {
                t.forget_task(&task);
            }
        }
        t.attempts.retain(|(task, _), _| !old.contains(task));
        let old_runs: Vec<RunId> = t
            .runs
            .values()
            .filter(|run| run.state.is_final() && run.updated_at < before)
            .take(limit)
            .map(|run| run.id)
            .collect();
        for id in &old_runs {
            if let Some(run) = t.runs.remove(id) {
                t.forget_run(&run);
            }
            let entries: Vec<(RunId, u64)> =
                t.journal.range((*id, 0)..=(*id, u64::MAX)).map(|(k, _)| *k).collect();
            for key in entries {
                t.journal.remove(&key);
            }
        }
        let mut events = 0;
        while events < limit && t.events.front().is_some_and(|e| e.time < before) {
            t.events.pop_front();
            events += 1;
        }
        let usage = t.usage.prune(before, limit);
        Ok((old.len() + old_runs.len() + events + usage) as u64)
    }

    async fn list_tasks(&self, query: &TaskQuery) -> Result<Vec<TaskRecord>, StoreError> {
        let t = self.inner.lock();
        Ok(t.tasks
            .values()
            .rev()
            .filter(|task| query.matches(task))
            .take(query.limit)
            .map(|task| (**task).clone())
            .collect())
    }

    async fn usage_totals(&self, since: SystemTime) -> Result<Vec<UsageTotal>, StoreError> {
        Ok(self.inner.lock().usage.totals(since))
    }

    async fn usage_report(&self, query: &UsageQuery) -> Result<Vec<UsageRow>, StoreError> {
        Ok(self.inner.lock().usage.report(query))
    }

    async fn workflow(
        &self,
        namespace: &str,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<WorkflowRecord>, StoreError> {
        let t = self.inner.lock();
        let key = |v| (namespace.to_string(), name.to_string(), v);
        let found = match version {
            Some(v) => t.workflows.get(&key(v)),
            None => t.workflows.range(key(0)..=key(u32::MAX)).next_back().map(|(_, w)| w),
        };
        Ok(found.cloned())
    }

    async fn workflows(&self, namespace: Option<&str>) -> Result<Vec<WorkflowRecord>, StoreError> {
        let t = self.inner.lock();
        let found = t.workflows.values().filter(|w| namespace.is_none_or(|ns| w.namespace == ns));
        Ok(found.cloned().collect())
    }

    async fn scan(&self, id: ScanId) -> Result<Option<ScanRecord>, StoreError> {
        Ok(self.inner.lock().scans.get(&id).map(|(record, _)| record.clone()))
    }

    async fn scan_result(&self, id: ScanId) -> Result<Option<String>, StoreError> {
        Ok(self.inner.lock().scans.get(&id).and_then(|(_, result)| result.as_deref().map(str::to_string)))
    }

    async fn list_scans(&self, query: &ScanQuery) -> Result<Vec<ScanRecord>, StoreError> {
        let t = self.inner.lock();
        Ok(t.scans
            .values()
            .rev()
            .map(|(r, _)| r)
            .filter(|r| query.matches(r))
            .take(query.limit)
            .cloned()
            .collect())
    }

    async fn run(&self, id: RunId) -> Result<Option<RunRecord>, StoreError> {
        Ok(self.inner.lock().runs.get(&id).cloned())
    }

    async fn run_by_idempotency_key(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<Option<RunRecord>, StoreError> {
        let t = self.inner.lock();
        let found = t.run_keys.get(&(namespace.to_string(), key.to_string())).and_then(|id| t.runs.get(id));
        Ok(found.cloned())
    }

    async fn list_runs(&self, query: &RunQuery) -> Result<Vec<RunRecord>, StoreError> {
        let t = self.inner.lock();
        Ok(t.runs.values().rev().filter(|run| query.matches(run)).take(query.limit).cloned().collect())
    }

    async fn journal(&self, run: RunId) -> Result<Vec<JournalEntry>, StoreError> {
        let t = self.inner.lock();
        Ok(t.journal.range((run, 0)..=(run, u64::MAX)).map(|(_, e)| e.clone()).collect())
    }

    async fn claim_orphan_runs(
        &self,
        start: &NodeStart,
        now: SystemTime,
        limit: usize,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let mut t = self.inner.lock();
        let live = t.holders(start, now);
        let orphans = t
            .runs
            .values_mut()
            .filter(|run| !run.state.is_final() && run.owner.is_some_and(|o| !live.contains(&o)));
        Ok(orphans
            .take(limit)
            .map(|run| {
                run.owner = Some(start.id);
                run.clone()
            })
            .collect())
    }

    async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        Ok(self.inner.lock().api_keys.get(id).cloned())
    }

    async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let mut keys: Vec<ApiKeyRecord> = self.inner.lock().api_keys.values().cloned().collect();
        keys.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(keys)
    }

    async fn revoke_api_key(&self, id: &str, at: SystemTime) -> Result<bool, StoreError> {
        let mut t = self.inner.lock();
        Ok(t.api_keys.get_mut(id).map(|key| key.revoked_at.get_or_insert(at)).is_some())
    }

    async fn audit_records(
        &self,
        node: Option<&str>,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let t = self.inner.lock();
        let records = t.audit.values().filter(|r| node.is_none_or(|n| r.node == n) && r.seq > after_seq);
        Ok(records.take(limit).cloned().collect())
    }

    async fn audit_head(&self, node: &str) -> Result<Option<AuditHead>, StoreError> {
        let t = self.inner.lock();
        let mut chain = t.audit.range((node.to_string(), 0)..=(node.to_string(), u64::MAX));
        Ok(chain.next_back().map(|(_, r)| r.head()))
    }

    async fn audit_chains(&self) -> Result<Vec<String>, StoreError> {
        let t = self.inner.lock();
        let mut chains: Vec<String> = t.audit.keys().map(|(node, _)| node.clone()).collect();
        chains.dedup();
        Ok(chains)
    }
}

#[cfg(test)]
mod tests;
