//! A plan step's own rules: what it asks the model for must be able to run. The plan the
//! model answers with is checked later, when it exists, by the same [`validate`].
//!
//! [`validate`]: super::validate

use super::{Validator, MAX_STEPS};
use crate::domain::workflow::definition::{PlanDef, StepDef, DEFAULT_PLAN_STEPS};

impl Validator<'_> {
    pub(super) fn plan_step(&mut self, at: &str, step: &StepDef, plan: &PlanDef) {
        let at_plan = format!("{at}/plan");
        if plan.goal.trim().is_empty() {
            self.problem(format!("{at_plan}/goal"), "the goal is empty: say what the plan is for");
        }
        match plan.max_steps {
            Some(0) => self.problem(
                format!("{at_plan}/max_steps"),
                format!(
                    "max_steps 0 leaves no step to plan: use 1 or more, or leave it out for the default \
                     ({DEFAULT_PLAN_STEPS})"
                ),
            ),
            Some(n) if n > MAX_STEPS => self.problem(
                format!("{at_plan}/max_steps"),
                format!(
                    "a plan runs as a workflow, which has at most {MAX_STEPS} steps: use {MAX_STEPS} or less"
                ),
            ),
            _ => {}
        }
        if let Some(model) = &plan.model {
            if model.trim().is_empty() || model.chars().any(|c| c.is_whitespace() || c.is_control()) {
                self.problem(
                    format!("{at_plan}/model"),
                    format!(
                        "{model:?} is not a model id: write it as GET /v1/models lists it (llama3.1), or \
                         provider/model to pin one provider; leave it out for the first chat model"
                    ),
                );
            }
        }
        if let Some(agents) = &plan.agents {
            if agents.is_empty() {
                self.problem(
                    format!("{at_plan}/agents"),
                    "an empty list lets the plan name no agent: list some, or leave agents out",
                );
            }
            for (j, agent) in agents.iter().enumerate() {
                self.agent(format!("{at_plan}/agents/{j}"), agent);
            }
        }
        if let Some(capabilities) = &plan.capabilities {
            if capabilities.is_empty() {
                self.problem(
                    format!("{at_plan}/capabilities"),
                    "an empty list lets the plan ask for no capability: list some, or leave capabilities out",
                );
            }
            for (j, capability) in capabilities.iter().enumerate() {
                self.capability(format!("{at_plan}/capabilities/{j}"), capability);
            }
        }
        if let Some(approval) = &plan.approval {
            self.gate(&format!("{at_plan}/approval"), approval);
        }
        if step.for_each.is_some() {
            self.problem(format!("{at}/for_each"), "a plan step plans once, for one goal: remove for_each");
        }
    }
}
