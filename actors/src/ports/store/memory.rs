//! `MemoryStore`: the port's backend in memory.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::Mutex;
use uuid::Uuid;

use super::{AttemptRecord, NodeStart, Store, StoreError, TaskQuery, Write};
use crate::domain::{AgentSpec, ApiKeyRecord, AuditHead, AuditRecord, Event, TaskId, TaskRecord, TaskState};

/// A store in memory: the backend of unit tests, of benches that measure the runtime
/// without a database, and of nodes run without one. It keeps the most recent
/// `retain` tasks and events (ids are time-ordered, so the oldest go first), so a
/// long-running node does not grow without limit.
pub struct MemoryStore {
    inner: Mutex<MemoryTables>,
    retain: usize,
}

#[derive(Default)]
struct MemoryTables {
    /// Boxed: a B-tree node of inline records is kilobytes, so every insert and eviction
    /// moved kilobytes and the nodes churned through the allocator's large pages.
    tasks: BTreeMap<TaskId, Box<TaskRecord>>,
    attempts: BTreeMap<(TaskId, u32), AttemptRecord>,
    events: VecDeque<Arc<Event>>,
    agents: HashMap<(String, String), AgentSpec>,
    nodes: HashMap<Uuid, NodeStart>,
    api_keys: BTreeMap<String, ApiKeyRecord>,
    audit: BTreeMap<(String, u64), AuditRecord>,
}

impl MemoryTables {
    /// What a database's unique keys would refuse, checked before anything is applied
    /// so a batch stays all or nothing.
    fn conflict(&self, writes: &[Write]) -> Option<String> {
        let mut keys = std::collections::HashSet::new();
        let mut audit = std::collections::HashSet::new();
        writes.iter().find_map(|write| match write {
            Write::PutApiKey(key) if self.api_keys.contains_key(&key.id) || !keys.insert(&key.id) => {
                Some(format!("API key id {} is taken", key.id))
            }
            Write::AppendAudit(r)
                if self.audit.contains_key(&(r.node.clone(), r.seq)) || !audit.insert((&r.node, r.seq)) =>
            {
                Some(format!("audit record {} of chain '{}' exists", r.seq, r.node))
            }
            _ => None,
        })
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

    /// Keeps at most `retain` tasks and `retain` events.
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
            }
        }
        while t.tasks.len() > self.retain {
            if let Some((id, _)) = t.tasks.pop_first() {
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
        let found = t
            .tasks
            .values()
            .find(|task| task.namespace == namespace && task.idempotency_key.as_deref() == Some(key));
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
        // Starts whose tasks are not orphans: live leases of other nodes, and this start.
        let live: Vec<Uuid> = t
            .nodes
            .values()
            .filter(|n| n.id == start.id || (n.node != start.node && n.lease_until >= now))
            .map(|n| n.id)
            .collect();
        let mut claimed = Vec::new();
        for task in t.tasks.values_mut() {
            if claimed.len() == limit {
                break;
            }
            if !task.state.is_final() && task.owner.is_some_and(|o| !live.contains(&o)) {
                task.owner = Some(start.id);
                claimed.push((**task).clone());
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
            t.tasks.remove(id);
        }
        t.attempts.retain(|(task, _), _| !old.contains(task));
        let mut events = 0;
        while events < limit && t.events.front().is_some_and(|e| e.time < before) {
            t.events.pop_front();
            events += 1;
        }
        Ok((old.len() + events) as u64)
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
