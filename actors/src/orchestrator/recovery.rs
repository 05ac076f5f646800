//! Recovery: the lease heartbeat, claiming orphaned tasks, and idempotency keys that
//! only the store remembers.
//!
//! Execution is at least once and the recorded completion exactly once: a task whose
//! final state was committed is never claimed, and a claimed task runs again with the
//! attempt number (so the idempotency key) it had. A task stored `running` re-runs that
//! attempt; one stored `queued` runs the attempt after the last one recorded.

use std::sync::Arc;
use std::time::Duration;

use super::tasks::TaskEntry;
use super::{Intake, OrchestratorMsg, OrchestratorState, Submitted, TaskError};
use crate::domain::{TaskRecord, TaskRequest, TaskState};
use crate::ports::StoreError;

/// Tasks claimed per store call; a full batch asks for the next at once.
const CLAIM_BATCH: usize = 256;

impl OrchestratorState {
    pub(super) fn renew_lease(&mut self) {
        let until = self.args.clock.now() + self.args.lease_ttl;
        let (store, id) = (self.args.store.clone(), self.start.id);
        tokio::spawn(async move {
            if let Err(error) = store.renew_lease(id, until).await {
                tracing::warn!(%error, "could not renew the node lease");
            }
        });
        self.claim();
    }

    pub(super) fn claim(&mut self) {
        if self.claiming || self.draining {
            return;
        }
        self.claiming = true;
        let (store, start, now) = (self.args.store.clone(), self.start.clone(), self.args.clock.now());
        let me = self.myself.clone();
        tokio::spawn(async move {
            let result = store.claim_orphans(&start, now, CLAIM_BATCH).await;
            let _ = me.cast(OrchestratorMsg::Claimed(result));
        });
    }

    pub(super) fn claimed(&mut self, result: Result<Vec<TaskRecord>, StoreError>) {
        self.claiming = false;
        let records = match result {
            Ok(records) => records,
            Err(error) => {
                tracing::warn!(%error, "could not claim orphaned tasks; will try again");
                return;
            }
        };
        if !records.is_empty() {
            tracing::info!(tasks = records.len(), "running tasks left unfinished by an earlier start");
        }
        let full = records.len() == CLAIM_BATCH;
        for record in records {
            self.resume(record);
        }
        if full {
            self.claim();
        }
    }

    /// Takes a claimed task into the table and runs it again.
    fn resume(&mut self, mut record: TaskRecord) {
        let id = record.id;
        if self.tasks.get(&id).is_some() {
            return;
        }
        if record.state == TaskState::Running {
            // Dispatch counts the attempt it starts: this one is the one that was running.
            record.attempt = record.attempt.saturating_sub(1);
        }
        record.state = TaskState::Queued;
        let request = Arc::new(record.to_request());
        let (namespace, timeout, backoff) = match self.registry.select(&record.namespace, &record.target) {
            Ok(agent) => (agent.namespace.clone(), agent.spec.timeout, agent.spec.retries.backoff),
            // Dispatch finds no agent either and fails the task with the reason.
            Err(_) => (record.namespace.as_str().into(), Duration::from_secs(60), Duration::ZERO),
        };
        let entry = TaskEntry::new(request, record, namespace, timeout, backoff);
        self.quotas.readmit(&entry.record.namespace);
        self.tasks.insert(entry);
        self.args.metrics.in_flight.inc();
        self.dispatch(id);
    }

    /// Looks an idempotency key up in the store, outside the mailbox; the answer comes
    /// back as `IdempotencyChecked`.
    pub(super) fn check_idempotency_in_store(&self, request: Arc<TaskRequest>, intake: Intake) {
        let store = self.args.store.clone();
        let me = self.myself.clone();
        tokio::spawn(async move {
            let key = request.idempotency_key.as_deref().unwrap_or_default();
            let found = store.task_by_idempotency_key(&request.namespace, key).await.map(|t| t.map(Box::new));
            let _ = me.cast(OrchestratorMsg::IdempotencyChecked { request, intake, found });
        });
    }

    pub(super) fn idempotency_checked(
        &mut self,
        request: Arc<TaskRequest>,
        intake: Intake,
        found: Result<Option<Box<TaskRecord>>, StoreError>,
    ) {
        let key = request.idempotency_key.clone().unwrap_or_default();
        // Another submission with this key may have been admitted meanwhile: memory first.
        if self.tasks.by_idempotency_key(&request.namespace, &key).is_some() {
            return self.submit(request, intake, true);
        }
        match found {
            Err(error) => intake.refuse(TaskError::Unavailable(error.to_string())),
            Ok(None) => self.submit(request, intake, true),
            Ok(Some(record)) if !record.same_work(&request) => {
                intake.refuse(TaskError::IdempotencyConflict { key })
            }
            Ok(Some(record)) => match intake {
                Intake::Accept(reply) => drop(reply.send(Ok(Submitted { id: record.id, existing: true }))),
                // Final (it finished long ago), or run by another node start: what the
                // store says is all this node knows.
                Intake::Wait(reply, _) => reply.send(Ok(*record)),
            },
        }
    }
}
