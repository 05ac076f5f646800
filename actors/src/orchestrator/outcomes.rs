//! How tasks end: accepted or refused after their commit, cancelled, finished (record,
//! event, write, waiters, quotas), and the drain that waits for the last of them.

use std::sync::Arc;

use serde_json::{json, Value};

use super::tasks::RecordReply;
use super::{OrchestratorState, Submitted, TaskError};
use crate::domain::{EventKind, TaskId, TaskRecord, TaskState};
use crate::ports::{StoreError, Write};
use crate::store_writer::{Ack, Retry};

impl OrchestratorState {
    /// A durable task's commit finished: accept it and dispatch, or refuse it.
    pub(super) fn accepted(&mut self, id: TaskId, result: Result<(), StoreError>) {
        // Cancelled while its commit was in flight: it already has its final state, and
        // the submitter already heard "accepted".
        if self.tasks.get(&id).is_none_or(|e| e.record.state.is_final()) {
            return;
        }
        match result {
            Ok(()) => {
                if let Some(reply) = self.tasks.get_mut(&id).and_then(|e| e.accept_reply.take()) {
                    let _ = reply.send(Ok(Submitted { id, existing: false }));
                }
                self.dispatch(id);
            }
            Err(error) => {
                if let Some(entry) = self.tasks.forget(&id) {
                    self.quotas.finished(&entry.record.namespace, id);
                    self.args.metrics.in_flight.dec();
                    self.args.metrics.rejected.inc();
                    let error = TaskError::Unavailable(error.to_string());
                    if let Some(reply) = entry.accept_reply {
                        let _ = reply.send(Err(error.clone()));
                    }
                    self.wait_slots.unfile(id, &entry.waiters);
                    for waiter in entry.waiters {
                        waiter.send(Err(error.clone()));
                    }
                }
            }
        }
    }

    pub(super) fn cancel(&mut self, id: TaskId, reply: RecordReply) {
        let Some(entry) = self.tasks.get(&id) else {
            let _ = reply.send(Err(TaskError::NotFound(id)));
            return;
        };
        if !entry.record.state.is_final() {
            // The token reaches the attempt wherever it is: queued in a pool (it will not
            // start) or running (the agent is told; a process gets `cancel`, then a kill).
            entry.cancel.cancel();
            self.finish(id, TaskState::Cancelled, None, Some("cancelled".into()));
        }
        let _ = reply
            .send(self.tasks.get(&id).map(|e| TaskRecord::clone(&e.record)).ok_or(TaskError::NotFound(id)));
    }

    /// Records the final state, emits the event, writes the record and tells the waiters:
    /// those of a durable task once the final state is committed.
    pub(super) fn finish(
        &mut self,
        id: TaskId,
        state: TaskState,
        output: Option<Value>,
        error: Option<String>,
    ) {
        let now = self.args.clock.now();
        let Some(entry) = self.tasks.get_mut(&id) else { return };
        let record = entry.record_mut();
        record.state = state;
        record.output = output.map(Arc::new);
        record.error = if state == TaskState::Succeeded { None } else { error };
        record.updated_at = now;
        let attempt = entry.ended_attempt(state, now);
        let held = std::mem::take(&mut entry.holds_run_slot);
        self.wait_slots.unfile(id, &entry.waiters);
        let quota = self.quotas.enabled().then(|| (entry.record.namespace.clone(), held));
        // Metrics, the event and the write come first: whoever hears the final state
        // can already see them.
        let metrics = &self.args.metrics;
        metrics.finished(state);
        metrics.in_flight.dec();
        metrics
            .duration
            .observe(now.duration_since(entry.record.created_at).unwrap_or_default().as_secs_f64());
        let data = match state {
            // The record has the attempt count; the common case carries only the agent.
            TaskState::Succeeded => entry.agent_data(),
            _ => Arc::new(json!({
                "agent": entry.event_agent(), "attempt": entry.record.attempt, "error": entry.record.error
            })),
        };
        let kind = EventKind::for_task_state(state);
        let event = self.args.events.emit_at(now, kind, entry.namespace.clone(), entry.subject.clone(), data);
        let mut writes = vec![entry.put()];
        if let Some(reply) = entry.accept_reply.take() {
            // Finished before its commit was acknowledged (cancelled at once, say).
            let _ = reply.send(Ok(Submitted { id, existing: false }));
        }
        if entry.record.durable {
            writes.push(Write::AppendEvent(event));
            writes.extend(attempt.map(|a| Write::PutAttempt(Box::new(a))));
            let waiters = std::mem::take(&mut entry.waiters);
            let record = entry.record.clone();
            let ack: Ack = Box::new(move |result| {
                let reply = result
                    .map(|()| TaskRecord::clone(&record))
                    .map_err(|e| TaskError::Unavailable(format!("the final state was not stored: {e}")));
                for waiter in waiters {
                    waiter.send(reply.clone());
                }
            });
            self.write_now(writes, ack, Retry::UntilCommitted);
        } else {
            for waiter in entry.waiters.drain(..) {
                waiter.send(Ok(TaskRecord::clone(&entry.record)));
            }
            // The task's only row write: nothing can overtake it.
            self.write_lazily(writes);
        }
        self.tasks.finished(id);
        if let Some((namespace, held)) = quota {
            if held {
                self.quotas.release(&namespace);
            }
            self.quotas.finished(&namespace, id);
            self.run_waiting(&namespace);
        }
        self.check_drained();
    }

    /// Dispatches the next task of `namespace` that waits for a run slot, if one is free.
    pub(super) fn run_waiting(&mut self, namespace: &str) {
        while let Some(next) = self.quotas.next_waiting(namespace) {
            if self.tasks.get(&next).is_some_and(|e| !e.record.state.is_final()) {
                return self.dispatch(next);
            }
        }
    }

    pub(super) fn check_drained(&mut self) {
        if self.draining && self.tasks.live() == 0 {
            for reply in self.drain_waiters.drain(..) {
                let _ = reply.send(());
            }
        }
    }
}
