//! A plan step's own transitions: its goal rendered for the model, and the plan it gets
//! back taking effect. A plan step runs in two phases of one attempt, each started by a
//! `step.running` entry: first the model plans (no plan yet), then the plan's sub-run runs
//! (the plan is journaled by then), at once or after an approval.

use super::*;

impl RunProgress {
    /// A plan step's `goal`, rendered now. A goal that evaluates to something other than
    /// a string (`"{{ input.goal }}"` reading an object) is given as its JSON.
    pub fn render_goal(&self, templates: &Templates, goal: &str) -> Result<String, TemplateError> {
        Ok(match templates.eval(goal, Usage::Value, &self.context(None))? {
            Value::String(goal) => goal,
            other => other.to_string(),
        })
    }

    /// Takes in the plan made for plan step `id`'s attempt `attempt`: journals it, then
    /// runs it (`step.running` again, same attempt) or holds it for a decision when the
    /// step asks for approval. A stale report (another attempt, a step no longer
    /// planning) changes nothing.
    pub fn planned(
        &mut self,
        templates: &Templates,
        id: &str,
        attempt: u32,
        plan: Plan,
        now: SystemTime,
    ) -> Vec<JournalEntry> {
        let Some(i) = self.index(id) else { return Vec::new() };
        let step = &self.steps[i];
        let planning = step.state == StepState::Running && step.attempt == attempt && step.plan.is_none();
        if self.state.is_final() || !planning {
            return Vec::new();
        }
        let data = serde_json::to_value(&plan).expect("a plan is JSON");
        let planned = self.step_draft(JournalKind::StepPlanned, i, Some(attempt), data);
        let mut entries = vec![self.record(planned, now)];
        let next = match self.def.steps[i].gate() {
            Some(gate) => {
                let until = gate.timeout.map(|t| millis(now + t));
                self.step_draft(JournalKind::StepWaitingApproval, i, Some(attempt), json!({"until": until}))
            }
            None => self.step_draft(JournalKind::StepRunning, i, Some(attempt), json!({})),
        };
        entries.push(self.record(next, now));
        entries.extend(self.advance(templates, now));
        entries
    }
}
