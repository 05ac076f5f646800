//! Changes someone asks for while a run goes on: decide an approval, skip, retry a
//! failed step, add steps, cancel. Each becomes journal entries, or a typed refusal.

use super::*;

impl RunProgress {
    pub(super) fn change_step(&self, id: &str) -> Result<usize, ChangeError> {
        self.index(id).ok_or_else(|| ChangeError::UnknownStep(id.to_string()))
    }

    /// Approves or rejects a waiting approval step.
    pub fn decide(
        &mut self,
        templates: &Templates,
        id: &str,
        approved: bool,
        comment: &str,
        by: &str,
        now: SystemTime,
    ) -> Result<Vec<JournalEntry>, ChangeError> {
        self.live()?;
        let i = self.change_step(id)?;
        let state = self.steps[i].state;
        if state != StepState::WaitingApproval {
            return Err(ChangeError::WrongState {
                step: id.into(),
                state,
                wanted: "only a step waiting for approval can be decided",
            });
        }
        let attempt = Some(self.steps[i].attempt);
        let decided = self.step_draft(
            JournalKind::StepDecided,
            i,
            attempt,
            json!({"approved": approved, "comment": comment, "by": by}),
        );
        let mut entries = vec![self.record(decided, now)];
        let outcome = self.decision_outcome(i, approved, true, comment, by);
        entries.push(self.record(outcome, now));
        entries.extend(self.after_failure(now));
        entries.extend(self.advance(templates, now));
        Ok(entries)
    }

    /// Skips a step that has not started (or waits for approval), with the output its
    /// dependents will see.
    pub fn skip(
        &mut self,
        templates: &Templates,
        id: &str,
        output: Value,
        by: &str,
        now: SystemTime,
    ) -> Result<Vec<JournalEntry>, ChangeError> {
        self.live()?;
        let i = self.change_step(id)?;
        let state = self.steps[i].state;
        if !matches!(state, StepState::Queued | StepState::WaitingApproval) {
            return Err(ChangeError::WrongState {
                step: id.into(),
                state,
                wanted: "only a step that has not started can be skipped",
            });
        }
        let draft = self.step_draft(
            JournalKind::StepSkipped,
            i,
            None,
            json!({"reason": SkipReason::Manual, "output": output, "by": by}),
        );
        let mut entries = vec![self.record(draft, now)];
        entries.extend(self.advance(templates, now));
        Ok(entries)
    }

    /// Runs a failed step again with a new attempt; a run that failed because of it
    /// runs again.
    pub fn retry(
        &mut self,
        templates: &Templates,
        id: &str,
        by: &str,
        now: SystemTime,
    ) -> Result<Vec<JournalEntry>, ChangeError> {
        if self.state == RunState::Cancelled {
            return Err(ChangeError::RunFinal(self.state));
        }
        let i = self.change_step(id)?;
        let state = self.steps[i].state;
        if !self.steps[i].is_failure() {
            return Err(ChangeError::WrongState {
                step: id.into(),
                state,
                wanted: "only a failed step can be retried",
            });
        }
        let draft = self.step_draft(
            JournalKind::StepRetryRequested,
            i,
            Some(self.steps[i].attempt),
            json!({"by": by}),
        );
        let mut entries = vec![self.record(draft, now)];
        entries.extend(self.advance(templates, now));
        Ok(entries)
    }

    /// Adds steps to a running run. The caller validated the run's definition with them.
    pub fn add_steps(
        &mut self,
        templates: &Templates,
        steps: Vec<StepDef>,
        by: &str,
        now: SystemTime,
    ) -> Result<Vec<JournalEntry>, ChangeError> {
        self.live()?;
        let draft = Draft {
            kind: JournalKind::StepsAdded,
            step: None,
            attempt: None,
            data: json!({"steps": steps, "by": by}),
        };
        let mut entries = vec![self.record(draft, now)];
        entries.extend(self.advance(templates, now));
        Ok(entries)
    }

    pub fn cancel(
        &mut self,
        by: &str,
        reason: &str,
        now: SystemTime,
    ) -> Result<Vec<JournalEntry>, ChangeError> {
        self.live()?;
        let draft = Draft {
            kind: JournalKind::RunCancelled,
            step: None,
            attempt: None,
            data: json!({"by": by, "reason": reason}),
        };
        Ok(vec![self.record(draft, now)])
    }

    pub(super) fn live(&self) -> Result<(), ChangeError> {
        if self.state.is_final() {
            Err(ChangeError::RunFinal(self.state))
        } else {
            Ok(())
        }
    }
}
