//! Which steps of a run can move, kept up to date as entries apply, so deciding the
//! next transitions costs the steps that can change rather than every step of the run
//! (a chain of a thousand steps would otherwise be quadratic).

use std::collections::{BTreeSet, HashMap, HashSet};

use super::StepProgress;
use crate::domain::workflow::{StepState, WorkflowDef};

#[derive(Debug, Default, PartialEq)]
pub(super) struct Index {
    by_id: HashMap<String, usize>,
    dependents: Vec<Vec<usize>>,
    /// Steps some step's `on_error: {goto}` names.
    routes: HashSet<String>,
    /// Per step, how many of its dependencies are not final.
    unsettled: Vec<usize>,
    /// Per step, whether it counts as final in its dependents' `unsettled`.
    settled: Vec<bool>,
    /// Queued steps (not started, or waiting for a retry).
    pub queued: BTreeSet<usize>,
    /// Queued steps whose dependencies are all final: they start or are skipped next.
    pub ready: BTreeSet<usize>,
    /// Running or waiting for approval.
    pub live: BTreeSet<usize>,
    /// With a retry or an approval timeout due at some time.
    pub timed: BTreeSet<usize>,
    /// Failed, and nothing handles it: the run fails.
    pub unhandled: BTreeSet<usize>,
}

impl Index {
    pub fn build(def: &WorkflowDef, steps: &[StepProgress]) -> Index {
        let by_id: HashMap<String, usize> =
            steps.iter().enumerate().map(|(i, s)| (s.id.clone(), i)).collect();
        let mut dependents = vec![Vec::new(); steps.len()];
        let mut unsettled = vec![0; steps.len()];
        for (i, step) in def.steps.iter().enumerate() {
            for dep in step.depends_on.iter().filter_map(|d| by_id.get(d)) {
                dependents[*dep].push(i);
                if !steps[*dep].state.is_final() {
                    unsettled[i] += 1;
                }
            }
        }
        let routes = def.steps.iter().filter_map(|s| s.on_error.route().map(str::to_string)).collect();
        let mut index = Index {
            by_id,
            dependents,
            routes,
            unsettled,
            settled: steps.iter().map(|s| s.state.is_final()).collect(),
            ..Index::default()
        };
        for (i, step) in steps.iter().enumerate() {
            index.place(i, step);
        }
        index
    }

    pub fn position(&self, id: &str) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    pub fn is_route(&self, id: &str) -> bool {
        self.routes.contains(id)
    }

    /// Takes in a change of step `i`.
    pub fn update(&mut self, i: usize, step: &StepProgress, steps: &[StepProgress]) {
        let settled = step.state.is_final();
        if settled != self.settled[i] {
            self.settled[i] = settled;
            for n in 0..self.dependents[i].len() {
                let d = self.dependents[i][n];
                if settled {
                    self.unsettled[d] -= 1;
                } else {
                    self.unsettled[d] += 1;
                }
                self.place_ready(d, steps[d].state);
            }
        }
        self.place(i, step);
    }

    fn place(&mut self, i: usize, step: &StepProgress) {
        set(&mut self.queued, i, step.state == StepState::Queued);
        set(&mut self.live, i, matches!(step.state, StepState::Running | StepState::WaitingApproval));
        set(&mut self.timed, i, step.retry_at.is_some() || step.decide_at.is_some());
        set(&mut self.unhandled, i, step.is_failure() && !step.handled);
        self.place_ready(i, step.state);
    }

    fn place_ready(&mut self, i: usize, state: StepState) {
        set(&mut self.ready, i, state == StepState::Queued && self.unsettled[i] == 0);
    }
}

fn set(set: &mut BTreeSet<usize>, i: usize, member: bool) {
    if member {
        set.insert(i);
    } else {
        set.remove(&i);
    }
}
