//! Attempts: dispatch to the best agent, start and end reports, retries with backoff.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mark1_supervisors::{PoolError, PoolMsg};
use ractor::MessagingErr;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{OrchestratorMsg, OrchestratorState, TaskError};
use crate::agent_instance::{AgentJob, AttemptOutcome};
use crate::domain::{EventKind, TaskId, TaskState};
use crate::ports::{AgentError, Write};

impl OrchestratorState {
    /// Starts the next attempt of a task on the best agent.
    pub(super) fn dispatch(&mut self, id: TaskId) {
        let Some(entry) = self.tasks.get_mut(&id) else { return };
        if entry.record.state.is_final() {
            return;
        }
        // The clock is read only for a task with a deadline.
        let remaining = match entry.record.deadline {
            Some(deadline) => deadline.duration_since(self.args.clock.now()).unwrap_or(Duration::ZERO),
            None => Duration::MAX,
        };
        if remaining.is_zero() {
            return self.finish(
                id,
                TaskState::TimedOut,
                None,
                Some("deadline passed before the task could run".into()),
            );
        }
        // Over its namespace's quota of running tasks, it waits for a slot in order.
        if !entry.holds_run_slot {
            if !self.quotas.try_run(&entry.record.namespace, id) {
                return;
            }
            entry.holds_run_slot = true;
        }
        let selected = self.registry.select(&entry.record.namespace, &entry.record.target);
        let agent = match selected {
            Ok(agent) => agent,
            Err(error) => return self.finish(id, TaskState::Failed, None, Some(error.to_string())),
        };
        entry.record_mut().attempt += 1;
        if entry.record.attempt > 1 {
            // One token per attempt: the attempt's timeout fires it, so a retry needs a
            // fresh one. (A token per attempt, not a child token, keeps the hot path free
            // of the token tree's lock.)
            entry.cancel = CancellationToken::new();
        }
        entry.agent_key = Some(agent.key.clone());
        entry.record_mut().agent = Some(agent.spec.name.clone());
        entry.event_data = Some(agent.event_data.clone());
        let job = AgentJob {
            task_id: id,
            attempt: entry.record.attempt,
            priority: entry.record.priority,
            input: entry.record.input.clone(),
            namespace: entry.namespace.clone(),
            // The submitter's key names the first attempt (a workflow step's is
            // `run:<run>:<step>:<attempt>`); a retry after a failure gets a new key.
            idempotency_key: match (&entry.record.idempotency_key, entry.record.attempt) {
                (Some(key), 1) => key.clone(),
                (Some(key), attempt) => attempt_key(key, attempt),
                (None, attempt) => attempt_key(&entry.subject, attempt),
            },
            deadline: entry.record.deadline,
            timeout: entry.attempt_timeout.min(remaining),
            traceparent: entry.request.traceparent.clone(),
            submitter: entry.record.submitter.clone(),
            cancel: entry.cancel.clone(),
            reply_to: self.myself.clone(),
        };
        let sent = match &agent.pool {
            Some(pool) => pool.cast(PoolMsg::Submit(job)),
            None => Err(MessagingErr::SendErr(PoolMsg::Submit(job))),
        };
        if let Err(MessagingErr::SendErr(PoolMsg::Submit(job))) = sent {
            // The pool is gone: its agent failed. Report it like any rejection.
            let _ = self.myself.cast(OrchestratorMsg::AgentExited {
                key: agent.key.to_string(),
                reason: "its pool has stopped".into(),
            });
            job.reject_with(PoolError::NoWorkers);
        }
    }

    pub(super) fn attempt_started(&mut self, id: TaskId, attempt: u32) {
        let now = self.args.clock.now();
        self.attempt_started_at(id, attempt, now);
    }

    fn attempt_started_at(&mut self, id: TaskId, attempt: u32, now: SystemTime) {
        let Some(entry) = self.tasks.get_mut(&id) else { return };
        if entry.record.attempt != attempt || entry.record.state.is_final() {
            return;
        }
        let record = entry.record_mut();
        record.state = TaskState::Running;
        record.updated_at = now;
        // Only a durable task stores its attempts (`task_attempts`).
        entry.attempt_started_at = entry.record.durable.then_some(now);
        let data = match (&entry.event_data, attempt) {
            // Set at dispatch: the agent running this attempt.
            (Some(shared), 1) => shared.first_attempt.clone(),
            _ => Arc::new(json!({"attempt": attempt, "agent": entry.record.agent})),
        };
        let event = self.args.events.emit_at(
            now,
            EventKind::TaskRunning,
            entry.namespace.clone(),
            entry.subject.clone(),
            data,
        );
        // A durable task's row says which attempt runs, so a re-run after a crash keeps
        // its number (and so its idempotency key). A non-durable task's events live in
        // the event ring only (DESIGN §13.4).
        if entry.record.durable {
            let running = entry.put();
            self.write_later([running, Write::AppendEvent(event)]);
        }
    }

    pub(super) fn attempt_done(
        &mut self,
        id: TaskId,
        attempt: u32,
        outcome: AttemptOutcome,
        elapsed: Duration,
        start_unreported: bool,
    ) {
        if start_unreported {
            // Ignores a superseded attempt as the check below does.
            let now = self.args.clock.now();
            self.attempt_started_at(id, attempt, now.checked_sub(elapsed).unwrap_or(now));
        }
        let Some(entry) = self.tasks.get_mut(&id) else { return };
        // A late report of an attempt that was superseded (cancelled, timed out) is ignored.
        if entry.record.attempt != attempt || entry.record.state.is_final() {
            return;
        }
        let agent_key = entry.agent_key.clone();
        // A cancelled task is already final (and returned above), so only attempts count.
        let can_retry = entry.record.attempt < entry.record.max_attempts;
        let backoff = entry.retry_backoff.saturating_mul(1 << (attempt.saturating_sub(1)).min(16));
        if let (Some(key), false) = (&agent_key, matches!(outcome, AttemptOutcome::Rejected(_))) {
            if let Some(agent) = self.registry.get_mut(key) {
                agent.record(matches!(outcome, AttemptOutcome::Succeeded(_)), elapsed);
            }
        }
        match outcome {
            AttemptOutcome::Succeeded(output) => self.finish(id, TaskState::Succeeded, Some(output), None),
            AttemptOutcome::Failed(AgentError::Cancelled) => {
                self.finish(id, TaskState::Cancelled, None, Some("cancelled".into()))
            }
            AttemptOutcome::Failed(error) if error.is_retryable() && can_retry => {
                self.schedule_retry(id, attempt, backoff, TaskState::Failed, &error.to_string())
            }
            AttemptOutcome::Failed(error) => {
                self.finish(id, TaskState::Failed, None, Some(error.to_string()))
            }
            AttemptOutcome::TimedOut if can_retry && !self.past_deadline(id) => {
                self.schedule_retry(id, attempt, backoff, TaskState::TimedOut, "attempt timed out")
            }
            AttemptOutcome::TimedOut => {
                self.finish(id, TaskState::TimedOut, None, Some("the task ran out of time".into()))
            }
            AttemptOutcome::Rejected(PoolError::QueueFull { limit }) => {
                let agent = agent_key.as_deref().unwrap_or_default().to_string();
                let error = TaskError::QueueFull { agent, limit, retry_after: Duration::from_secs(1) };
                self.finish(id, TaskState::Failed, None, Some(error.to_string()))
            }
            AttemptOutcome::Rejected(error) => {
                let agent = agent_key.as_deref().unwrap_or_default();
                self.finish(
                    id,
                    TaskState::Failed,
                    None,
                    Some(format!("agent {agent} refused the task: {error}")),
                )
            }
        }
    }

    pub(super) fn past_deadline(&self, id: TaskId) -> bool {
        let now = self.args.clock.now();
        self.tasks.get(&id).and_then(|e| e.record.deadline).is_some_and(|d| d <= now)
    }

    pub(super) fn schedule_retry(
        &mut self,
        id: TaskId,
        attempt: u32,
        delay: Duration,
        ended: TaskState,
        why: &str,
    ) {
        let now = self.args.clock.now();
        let Some(entry) = self.tasks.get_mut(&id) else { return };
        let record = entry.record_mut();
        record.state = TaskState::Queued;
        record.error = Some(why.to_string());
        record.updated_at = now;
        let ended = entry.ended_attempt(ended, now);
        self.args.metrics.retried.inc();
        let data = json!({"agent": entry.event_agent(), "attempt": attempt, "error": why, "delay_ms": delay.as_millis() as u64});
        let event = self.args.events.emit_at(
            now,
            EventKind::TaskRetrying,
            entry.namespace.clone(),
            entry.subject.clone(),
            data.into(),
        );
        let namespace = std::mem::take(&mut entry.holds_run_slot).then(|| entry.record.namespace.clone());
        if entry.record.durable {
            let mut writes = vec![Write::AppendEvent(event), entry.put()];
            writes.extend(ended.map(|a| Write::PutAttempt(Box::new(a))));
            self.write_later(writes);
        }
        if let Some(namespace) = namespace {
            self.quotas.release(&namespace);
            self.run_waiting(&namespace);
        }
        if delay.is_zero() {
            self.dispatch(id);
        } else {
            self.myself.send_after(delay, move || OrchestratorMsg::Retry { id, attempt });
        }
    }

    pub(super) fn retry(&mut self, id: TaskId, attempt: u32) {
        if self.tasks.get(&id).is_some_and(|e| e.record.attempt == attempt && !e.record.state.is_final()) {
            self.dispatch(id);
        }
    }
}

/// `<task id or key>:<attempt>` in one allocation, without the formatting machinery
/// (once per attempt).
fn attempt_key(task: &str, attempt: u32) -> String {
    let mut digits = itoa::Buffer::new();
    let attempt = digits.format(attempt);
    let mut key = String::with_capacity(task.len() + 1 + attempt.len());
    key.push_str(task);
    key.push(':');
    key.push_str(attempt);
    key
}

impl AgentJob {
    /// Rejects a job whose pool could not be reached.
    pub(super) fn reject_with(self, error: PoolError) {
        mark1_supervisors::Job::reject(self, error);
    }
}
