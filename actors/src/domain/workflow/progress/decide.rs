//! Deciding what happens next: starts, skips, fan-out items, approval timeouts, retries
//! and the run's end, and taking in how a unit of work ended.

use super::*;

impl RunProgress {
    /// Decides every transition possible now, applies them, and returns them as journal
    /// entries to write (in order) before acting on them. Empty when nothing can move.
    pub fn advance(&mut self, templates: &Templates, now: SystemTime) -> Vec<JournalEntry> {
        let mut entries = Vec::new();
        while !self.state.is_final() {
            let drafts = self.next_drafts(templates, now);
            if drafts.is_empty() {
                break;
            }
            for draft in drafts {
                entries.push(self.record(draft, now));
            }
            entries.extend(self.after_failure(now));
        }
        entries
    }

    /// Makes a journal entry of `draft`, applies it, and returns it.
    pub(super) fn record(&mut self, draft: Draft, now: SystemTime) -> JournalEntry {
        let entry = JournalEntry {
            run: self.run,
            seq: self.next_seq,
            step: draft.step,
            attempt: draft.attempt,
            kind: draft.kind,
            data: draft.data,
            recorded_at: now,
        };
        self.apply(&entry);
        entry
    }

    pub(super) fn step_draft(&self, kind: JournalKind, i: usize, attempt: Option<u32>, data: Value) -> Draft {
        Draft { kind, step: Some(self.steps[i].id.clone()), attempt, data }
    }

    /// One round of decisions: starts, skips, items, and the run's end.
    pub(super) fn next_drafts(&self, templates: &Templates, now: SystemTime) -> Vec<Draft> {
        let mut drafts = Vec::new();
        let mut free = self.def.concurrency().saturating_sub(self.running_units());
        // Only steps that can move: ready to start or skip, running, or with a timer.
        let mut look: Vec<usize> =
            self.index.ready.iter().chain(&self.index.live).chain(&self.index.timed).copied().collect();
        look.sort_unstable();
        look.dedup();
        for i in look {
            let (step, def) = (&self.steps[i], &self.def.steps[i]);
            match step.state {
                StepState::Queued if step.retry_at.is_none_or(|at| at <= now) => {
                    let deps: Vec<Dep> = def.depends_on.iter().map(|d| self.dep(d)).collect();
                    if deps.contains(&Dep::Blocks) {
                        drafts.push(self.step_draft(
                            JournalKind::StepSkipped,
                            i,
                            None,
                            json!({"reason": SkipReason::Upstream}),
                        ));
                        continue;
                    }
                    if deps.contains(&Dep::Pending)
                        || (self.is_route(&step.id) && !self.routed.contains(&step.id))
                    {
                        continue;
                    }
                    if let Some(draft) = self.start(templates, i, now, &mut free) {
                        drafts.push(draft);
                    }
                }
                StepState::Running if step.items.is_some() => {
                    drafts.extend(self.items_next(i, &mut free));
                }
                StepState::WaitingApproval if step.decide_at.is_some_and(|at| at <= now) => {
                    let default = def.gate().and_then(|a| a.default);
                    let (approved, decided) = (default == Some(Decision::Approve), default.is_some());
                    if decided {
                        drafts.push(self.step_draft(
                            JournalKind::StepDecided,
                            i,
                            Some(step.attempt),
                            json!({"approved": approved, "comment": "the approval timed out", "by": "timeout"}),
                        ));
                    }
                    drafts.push(self.decision_outcome(
                        i,
                        approved,
                        decided,
                        "the approval timed out",
                        "timeout",
                    ));
                }
                _ => {}
            }
            if !drafts.is_empty() && drafts.iter().any(|d| d.kind == JournalKind::StepFailed) {
                break;
            }
        }
        if drafts.is_empty() {
            drafts.extend(self.finish(templates));
        }
        drafts
    }

    /// The entry that ends a wait for a decision: an approval step succeeds when approved,
    /// a plan step runs its plan; either fails when rejected.
    pub(super) fn decision_outcome(
        &self,
        i: usize,
        approved: bool,
        decided: bool,
        comment: &str,
        by: &str,
    ) -> Draft {
        let attempt = Some(self.steps[i].attempt);
        if approved && matches!(self.def.steps[i].kind(), Some(StepKind::Plan(_))) {
            // An approved plan runs now, in the attempt that planned it.
            return self.step_draft(JournalKind::StepRunning, i, attempt, json!({}));
        }
        if approved {
            self.step_draft(
                JournalKind::StepSucceeded,
                i,
                attempt,
                json!({"output": {"approved": true, "comment": comment, "by": by}}),
            )
        } else {
            let (state, error) = if decided {
                (StepState::Failed, format!("rejected by {by}: {comment}"))
            } else {
                (StepState::TimedOut, "the approval timed out with no default decision".to_string())
            };
            self.step_draft(JournalKind::StepFailed, i, attempt, json!({"error": error, "state": state}))
        }
    }

    /// Starts a ready step, if the run has room: skip by `when`, wait for approval, fan
    /// out, or run. A template that fails to evaluate fails the step.
    pub(super) fn start(
        &self,
        templates: &Templates,
        i: usize,
        now: SystemTime,
        free: &mut usize,
    ) -> Option<Draft> {
        let def = &self.def.steps[i];
        let step = &self.steps[i];
        let attempt = step.attempt + 1;
        let fail = |what: &str, e: TemplateError| {
            self.step_draft(
                JournalKind::StepFailed,
                i,
                Some(attempt),
                json!({"error": format!("{what}: {e}"), "state": StepState::Failed}),
            )
        };
        // A retried step is past its `when`: it was decided on the first attempt.
        if step.attempt == 0 {
            if let Some(when) = &def.when {
                match templates.truthy(when, &self.context(None)) {
                    Ok(true) => {}
                    Ok(false) => {
                        return Some(self.step_draft(
                            JournalKind::StepSkipped,
                            i,
                            None,
                            json!({"reason": SkipReason::Condition}),
                        ))
                    }
                    Err(e) => return Some(fail("`when` failed", e)),
                }
            }
        }
        if let Some(StepKind::Approval(approval)) = def.kind() {
            let until = approval.timeout.map(|t| millis(now + t));
            return Some(self.step_draft(
                JournalKind::StepWaitingApproval,
                i,
                Some(attempt),
                json!({"until": until}),
            ));
        }
        if let (Some(for_each), None) = (&def.for_each, &step.items) {
            let items = match templates.eval(for_each, Usage::Expression, &self.context(None)) {
                Ok(Value::Array(items)) => items,
                Ok(Value::Null) => Vec::new(),
                Ok(other) => {
                    let e = TemplateError(format!("gave {other}, not a list"));
                    return Some(fail("`for_each`", e));
                }
                Err(e) => return Some(fail("`for_each` failed", e)),
            };
            return Some(self.step_draft(
                JournalKind::StepRunning,
                i,
                Some(attempt),
                json!({"items": items}),
            ));
        }
        if step.items.is_some() {
            // A retry of a fan-out: items are started one by one, within the limits.
            return Some(self.step_draft(JournalKind::StepRunning, i, Some(attempt), json!({})));
        }
        if *free == 0 {
            return None;
        }
        *free -= 1;
        Some(self.step_draft(JournalKind::StepRunning, i, Some(attempt), json!({})))
    }

    /// Starts the next items of a running `for_each`, or ends the step when all are done.
    pub(super) fn items_next(&self, i: usize, free: &mut usize) -> Vec<Draft> {
        let step = &self.steps[i];
        let attempt = Some(step.attempt);
        if step.item_states.iter().all(|it| it.state == StepState::Succeeded) {
            let outputs: Vec<Value> =
                step.item_states.iter().map(|it| it.output.clone().unwrap_or(Value::Null)).collect();
            return vec![self.step_draft(JournalKind::StepSucceeded, i, attempt, json!({"output": outputs}))];
        }
        let running = step.item_states.iter().filter(|it| it.state == StepState::Running).count();
        let mut room = self.def.steps[i].item_concurrency().saturating_sub(running);
        let mut drafts = Vec::new();
        for (n, item) in step.item_states.iter().enumerate() {
            if room == 0 || *free == 0 {
                break;
            }
            if item.state == StepState::Queued {
                room -= 1;
                *free -= 1;
                drafts.push(self.step_draft(JournalKind::ItemRunning, i, attempt, json!({"index": n})));
            }
        }
        drafts
    }

    /// When nothing else can move: skips routes nothing went to, then ends the run.
    pub(super) fn finish(&self, templates: &Templates) -> Vec<Draft> {
        if !self.index.live.is_empty() {
            return Vec::new();
        }
        let queued: Vec<usize> = self.index.queued.iter().copied().collect();
        if queued.iter().any(|&i| self.steps[i].retry_at.is_some()) {
            return Vec::new(); // a retry is due later
        }
        if !queued.is_empty() {
            return queued
                .into_iter()
                .filter(|&i| self.is_route(&self.steps[i].id) && !self.routed.contains(&self.steps[i].id))
                .map(|i| {
                    self.step_draft(
                        JournalKind::StepSkipped,
                        i,
                        None,
                        json!({"reason": SkipReason::NotRouted}),
                    )
                })
                .collect();
        }
        if let Some(failed) = self.unhandled_failure() {
            return vec![failed];
        }
        let output = match &self.def.output {
            None => Ok(Value::Object(
                self.steps.iter().filter_map(|s| Some((s.id.clone(), s.output.clone()?))).collect(),
            )),
            Some(output) => templates.render(output, &self.context(None)),
        };
        vec![match output {
            Ok(output) => Draft {
                kind: JournalKind::RunSucceeded,
                step: None,
                attempt: None,
                data: json!({"output": output}),
            },
            Err(e) => Draft {
                kind: JournalKind::RunFailed,
                step: None,
                attempt: None,
                data: json!({"error": format!("the run's output failed to render: {e}")}),
            },
        }]
    }

    /// Records how one unit of step `id`'s attempt `attempt` ended (item `item` of a
    /// `for_each`), then advances. A stale report (another attempt, a step no longer
    /// running) changes nothing.
    pub fn complete(
        &mut self,
        templates: &Templates,
        id: &str,
        item: Option<usize>,
        attempt: u32,
        outcome: UnitOutcome,
        now: SystemTime,
    ) -> Vec<JournalEntry> {
        let Some(i) = self.index(id) else { return Vec::new() };
        let step = &self.steps[i];
        if self.state.is_final() || step.state != StepState::Running || step.attempt != attempt {
            return Vec::new();
        }
        let mut entries = Vec::new();
        match (item, outcome) {
            (Some(n), outcome) => {
                if step.item_states.get(n).is_none_or(|it| it.state != StepState::Running) {
                    return Vec::new();
                }
                match outcome {
                    UnitOutcome::Succeeded(output) => {
                        let draft = self.step_draft(
                            JournalKind::ItemSucceeded,
                            i,
                            Some(attempt),
                            json!({"index": n, "output": output}),
                        );
                        entries.push(self.record(draft, now));
                    }
                    UnitOutcome::Failed { state, error } => {
                        let draft = self.step_draft(
                            JournalKind::ItemFailed,
                            i,
                            Some(attempt),
                            json!({"index": n, "error": error}),
                        );
                        entries.push(self.record(draft, now));
                        let error = format!("item {n}: {error}");
                        entries.extend(self.attempt_failed(i, state, error, now));
                    }
                }
            }
            (None, UnitOutcome::Succeeded(output)) => {
                let draft =
                    self.step_draft(JournalKind::StepSucceeded, i, Some(attempt), json!({"output": output}));
                entries.push(self.record(draft, now));
            }
            (None, UnitOutcome::Failed { state, error }) => {
                entries.extend(self.attempt_failed(i, state, error, now))
            }
        }
        entries.extend(self.after_failure(now));
        entries.extend(self.advance(templates, now));
        entries
    }

    /// A failed attempt: retried when attempts are left, else the step fails.
    pub(super) fn attempt_failed(
        &mut self,
        i: usize,
        state: StepState,
        error: String,
        now: SystemTime,
    ) -> Vec<JournalEntry> {
        let step = &self.steps[i];
        let def = &self.def.steps[i];
        let attempt = step.attempt;
        let draft = if state != StepState::Cancelled && attempt < def.max_attempts() {
            let delay = def.retry.as_ref().map(|r| r.delay_before(attempt + 1)).unwrap_or_default();
            self.step_draft(
                JournalKind::StepRetrying,
                i,
                Some(attempt),
                json!({"error": error, "state": state, "retry_at": millis(now + delay)}),
            )
        } else {
            self.step_draft(
                JournalKind::StepFailed,
                i,
                Some(attempt),
                json!({"error": error, "state": state}),
            )
        };
        vec![self.record(draft, now)]
    }

    /// A step that failed with `on_error: fail` fails the run at once.
    pub(super) fn after_failure(&mut self, now: SystemTime) -> Vec<JournalEntry> {
        match self.unhandled_failure() {
            Some(draft) if !self.state.is_final() => vec![self.record(draft, now)],
            _ => Vec::new(),
        }
    }

    /// The `run.failed` a failed step with `on_error: fail` calls for, if there is one.
    pub(super) fn unhandled_failure(&self) -> Option<Draft> {
        let failed = &self.steps[*self.index.unhandled.first()?];
        let error =
            format!("step '{}' failed: {}", failed.id, failed.error.as_deref().unwrap_or("unknown error"));
        Some(Draft { kind: JournalKind::RunFailed, step: None, attempt: None, data: json!({"error": error}) })
    }
}
