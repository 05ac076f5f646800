//! The run's side of a plan step. One attempt has two phases, each started by a
//! `step.running` entry: while the attempt has no plan, its unit is the planner asking the
//! model; once the plan is journaled (`step.planned`), its unit is the plan's sub-run. A
//! run resumed after a crash therefore asks again only if no plan was journaled, and
//! otherwise finds the sub-run it had started by its idempotency key.

use super::*;
use crate::domain::workflow::plan::planned_name;
use crate::ports::model::ModelError;
use crate::workflows::planner::Ask;

impl RunDriver {
    /// Starts plan step `i`'s unit: the planner when the attempt has no plan yet, else the
    /// plan's sub-run with `input` under the idempotency key `key`.
    pub(super) fn start_plan(&mut self, unit: UnitKey, i: usize, input: Value, key: String) {
        let step = &self.progress.def().steps[i];
        let Some(StepKind::Plan(plan)) = step.kind() else { return };
        let carrier = match &self.progress.steps()[i].plan {
            Some(accepted) => {
                let planned = Arc::new(accepted.definition(&self.record.workflow, &unit.step));
                let start = self.sub_run(&unit, planned.name.clone(), None, input, key);
                run_child(self.env.clone(), self.myself.clone(), unit.clone(), start, Some(planned));
                Carrier::Pending
            }
            None => {
                let goal = match self.progress.render_goal(&self.env.templates, &plan.goal) {
                    Ok(goal) => goal,
                    Err(e) => return self.fail_unit(unit, format!("goal: {e}")),
                };
                let ask = Ask {
                    namespace: self.record.namespace.clone(),
                    run: self.record.id,
                    name: planned_name(&self.record.workflow, &unit.step),
                    goal,
                    input,
                    def: plan.clone(),
                    timeout: step.timeout,
                };
                Carrier::Planning(ask.spawn(self.env.clone(), self.myself.clone(), unit.clone()))
            }
        };
        self.in_flight.insert(unit, carrier);
    }

    /// Takes in the planner's answer for `unit`: an accepted plan is journaled, and runs or
    /// waits for approval next; no plan fails the attempt (retried like any other).
    pub(super) fn planned(&mut self, unit: UnitKey, result: Result<Plan, PlanError>) {
        let plan = match result {
            Ok(plan) => plan,
            Err(error) => {
                let timed_out = matches!(error, PlanError::Model(ModelError::Timeout { .. }));
                let state = if timed_out { StepState::TimedOut } else { StepState::Failed };
                return self.finished(unit, UnitOutcome::Failed { state, error: error.to_string() });
            }
        };
        if self.in_flight.remove(&unit).is_none() {
            return; // dropped meanwhile: the step ended, or the run did
        }
        let now = self.env.clock.now();
        let entries = self.progress.planned(&self.env.templates, &unit.step, unit.attempt, plan, now);
        self.commit(entries, Vec::new());
    }
}
