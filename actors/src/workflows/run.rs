//! The `run:<id>` actor: drives one run's DAG.
//!
//! Every transition is decided by the run's [`RunProgress`], journaled through the store
//! writer, and only then acted on: a durable run waits for the commit before it submits
//! a step's task (or starts a sub-run, or ends); a run with durability off writes in the
//! background and acts at once. On (re)start the actor rebuilds its progress from the
//! journal and picks up what was in flight: a step's task is submitted again with the
//! same attempt, so the same idempotency key finds the task the orchestrator already has.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use mark1_supervisors::{Addr, SupervisorMsg};
use ractor::concurrency::{oneshot, JoinHandle};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::Value;

use super::engine::StartRun;
use super::planner::PlanError;
use super::units::{cancel_key, cancel_task, run_child, run_outcome, started_for, submit_and_wait};
use super::{run_child_id, RunChange, RunEnv, RunView, ViewReply, WorkflowError};
use crate::domain::workflow::{
    step_task_key, JournalEntry, ParentStep, Plan, RunId, RunProgress, RunRecord, StepKind, StepState,
    UnitOutcome,
};
use crate::domain::{Target, TaskId, TaskRequest};
use crate::ports::StoreError;

/// One unit of a run's work: a step, or one item of a `for_each` step, at an attempt.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UnitKey {
    pub step: String,
    pub item: Option<usize>,
    pub attempt: u32,
}

/// What carries a unit out, once known.
#[derive(Clone, Debug)]
enum Carrier {
    Pending,
    /// A task submitted under this idempotency key; its id is not known here.
    Keyed(String),
    Task(TaskId),
    Run(RunId),
    /// A plan step's planner, asking the model.
    Planning(tokio::task::AbortHandle),
}

pub enum RunMsg {
    Get(ViewReply),
    /// Replies when the run is final or, with `wait`, once that long has passed.
    Wait {
        wait: Option<Duration>,
        reply: ViewReply,
    },
    Change {
        change: RunChange,
        by: String,
        reply: ViewReply,
    },
    // Internal messages.
    /// A unit's task was accepted by the orchestrator.
    Accepted {
        unit: UnitKey,
        task: TaskId,
    },
    /// A sub-workflow step's run exists.
    ChildStarted {
        unit: UnitKey,
        child: RunId,
    },
    /// A unit ended.
    Finished {
        unit: UnitKey,
        outcome: UnitOutcome,
    },
    /// A plan step's planner answered.
    Planned {
        unit: UnitKey,
        result: Result<Plan, PlanError>,
    },
    /// A sub-run this run started ended (sent by the sub-run).
    ChildFinished {
        child: RunId,
        record: Box<RunRecord>,
    },
    /// Journal entries committed (or not); the run acts on them now.
    Journaled {
        entries: Vec<JournalEntry>,
        result: Result<(), StoreError>,
        replies: Vec<ViewReply>,
    },
    /// A retry's backoff or an approval's timeout is due.
    Timer,
    /// A bounded `Wait` ended.
    WaitElapsed(u64),
}

pub struct RunArgs {
    pub id: RunId,
    pub env: Arc<RunEnv>,
    /// What the engine already has when it starts the run; a restart reads the store.
    pub loaded: Option<Loaded>,
    pub stats: Arc<mark1_supervisors::ActorStats>,
}

/// A run as the engine hands it over.
pub struct Loaded {
    pub record: RunRecord,
    pub progress: RunProgress,
    /// Entries decided but not yet journaled (a change that revived a finished run),
    /// and who waits for them.
    pub pending: Vec<JournalEntry>,
    pub replies: Vec<ViewReply>,
    /// The run was just created by this engine: no task can carry one of its keys but
    /// those its actor submits.
    pub fresh: bool,
}

pub struct RunActor;

pub struct RunDriver {
    env: Arc<RunEnv>,
    myself: Addr<RunMsg>,
    record: RunRecord,
    /// The namespace and the run id as text, made once: every event of the run carries them.
    event_names: (Arc<str>, Arc<str>),
    progress: RunProgress,
    in_flight: HashMap<UnitKey, Carrier>,
    timer: Option<(std::time::SystemTime, JoinHandle<()>)>,
    waiters: Vec<(u64, ViewReply)>,
    next_waiter: u64,
    /// Entries sent to the writer whose commit is not yet acknowledged.
    unacked: usize,
    /// What the engine handed over to journal at start.
    pending: Option<(Vec<JournalEntry>, Vec<ViewReply>)>,
    /// Created by the engine in this incarnation (see [`Loaded::fresh`]).
    fresh: bool,
}

impl Actor for RunActor {
    type Msg = RunMsg;
    type State = RunDriver;
    type Arguments = RunArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<RunMsg>,
        args: RunArgs,
    ) -> Result<RunDriver, ActorProcessingErr> {
        let RunArgs { id, env, loaded, stats } = args;
        let Loaded { record, progress, pending, replies, fresh } = match loaded {
            Some(loaded) => loaded,
            None => {
                let (record, progress) = env.load(id).await?;
                Loaded { record, progress, pending: Vec::new(), replies: Vec::new(), fresh: false }
            }
        };
        let myself = Addr::new(myself, stats);
        env.directory.insert(id, myself.clone());
        Ok(RunDriver {
            env,
            myself,
            event_names: (record.namespace.as_str().into(), record.id.text()),
            record,
            progress,
            in_flight: HashMap::new(),
            timer: None,
            waiters: Vec::new(),
            next_waiter: 0,
            unacked: 0,
            pending: Some((pending, replies)),
            fresh,
        })
    }

    async fn post_start(&self, _: ActorRef<RunMsg>, state: &mut RunDriver) -> Result<(), ActorProcessingErr> {
        let (pending, replies) = state.pending.take().unwrap_or_default();
        if state.progress.state.is_final() && pending.is_empty() {
            state.finish();
            return Ok(());
        }
        state.resume();
        state.commit(pending, replies);
        let entries = state.progress.advance(&state.env.templates, state.env.clock.now());
        state.commit(entries, Vec::new());
        state.reschedule();
        Ok(())
    }

    async fn post_stop(&self, _: ActorRef<RunMsg>, state: &mut RunDriver) -> Result<(), ActorProcessingErr> {
        state.env.directory.remove(state.record.id);
        if let Some((_, timer)) = state.timer.take() {
            timer.abort();
        }
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<RunMsg>,
        msg: RunMsg,
        state: &mut RunDriver,
    ) -> Result<(), ActorProcessingErr> {
        let now = state.env.clock.now();
        match msg {
            RunMsg::Get(reply) => {
                let _ = reply.send(Ok(state.view()));
            }
            RunMsg::Wait { wait, reply } => state.wait(wait, reply),
            RunMsg::WaitElapsed(token) => {
                if let Some(at) = state.waiters.iter().position(|(t, _)| *t == token) {
                    let (_, reply) = state.waiters.swap_remove(at);
                    let _ = reply.send(Ok(state.view()));
                }
            }
            RunMsg::Change { change, by, reply } => match state.change(change, &by).await {
                Ok(entries) => state.commit(entries, vec![reply]),
                Err(error) => {
                    let _ = reply.send(Err(error));
                }
            },
            RunMsg::Accepted { unit, task } => {
                if let Some(carrier) = state.in_flight.get_mut(&unit) {
                    *carrier = Carrier::Task(task);
                } else {
                    // The unit was dropped meanwhile (its step failed, the run ended).
                    cancel_task(&state.env, task);
                }
            }
            RunMsg::ChildStarted { unit, child } => match state.in_flight.get_mut(&unit) {
                Some(carrier) => *carrier = Carrier::Run(child),
                // The step ended meanwhile (the run was cancelled, say): so does its sub-run.
                None => state.cancel_child(child),
            },
            RunMsg::Finished { unit, outcome } => state.finished(unit, outcome),
            RunMsg::Planned { unit, result } => state.planned(unit, result),
            RunMsg::ChildFinished { child, record } => {
                // The unit the sub-run carries, or, when the sub-run ended before its start
                // was reported here, the unit that started it.
                let run = state.record.id;
                let unit = state
                    .in_flight
                    .iter()
                    .find(|(_, c)| matches!(c, Carrier::Run(id) if *id == child))
                    .or_else(|| state.in_flight.iter().find(|(unit, _)| started_for(&record, run, unit)))
                    .map(|(unit, _)| unit.clone());
                if let Some(unit) = unit {
                    state.finished(unit, run_outcome(&record));
                }
            }
            RunMsg::Journaled { entries, result, replies } => {
                state.unacked -= entries.len();
                if let Err(error) = result {
                    // The writer keeps journal writes until they commit; an error means it
                    // is gone. A restarted run resumes from what the journal has.
                    for reply in replies {
                        let _ = reply.send(Err(WorkflowError::Unavailable(error.to_string())));
                    }
                    return Err(format!("run {}: the journal write failed: {error}", state.record.id).into());
                }
                state.act(&entries);
                for reply in replies {
                    let _ = reply.send(Ok(state.view()));
                }
            }
            RunMsg::Timer => {
                state.timer = None;
                let entries = state.progress.advance(&state.env.templates, now);
                state.commit(entries, Vec::new());
            }
        }
        state.reschedule();
        Ok(())
    }
}

impl RunDriver {
    fn view(&self) -> RunView {
        RunView { record: self.record.clone(), steps: self.progress.steps().to_vec() }
    }

    fn wait(&mut self, wait: Option<Duration>, reply: ViewReply) {
        if self.record.state.is_final() && self.unacked == 0 {
            let _ = reply.send(Ok(self.view()));
            return;
        }
        let token = self.next_waiter;
        self.next_waiter += 1;
        self.waiters.push((token, reply));
        if let Some(wait) = wait {
            self.myself.send_after(wait, move || RunMsg::WaitElapsed(token));
        }
    }

    async fn change(&mut self, change: RunChange, by: &str) -> Result<Vec<JournalEntry>, WorkflowError> {
        if let RunChange::AddSteps { steps } = &change {
            // Checked against the run's definition as it is now, added steps included.
            self.env.check_added_steps(&self.record.namespace, self.progress.def(), steps).await?;
        }
        change.apply(&mut self.progress, &self.env.templates, by, self.env.clock.now())
    }

    /// Picks up what a crash (or a restart) left in flight.
    fn resume(&mut self) {
        let mut units = Vec::new();
        for step in self.progress.steps() {
            if step.state != StepState::Running {
                continue;
            }
            match &step.items {
                Some(_) => {
                    let running =
                        step.item_states.iter().enumerate().filter(|(_, it)| it.state == StepState::Running);
                    let attempt = step.attempt;
                    units.extend(running.map(|(n, _)| UnitKey {
                        step: step.id.clone(),
                        item: Some(n),
                        attempt,
                    }));
                }
                None => units.push(UnitKey { step: step.id.clone(), item: None, attempt: step.attempt }),
            }
        }
        for unit in units {
            self.start_unit(unit, false);
        }
    }

    /// Whether a unit started now names a key no task can have yet: the run was created
    /// in this incarnation, or its journal (committed before acting) names the attempt.
    /// A non-durable run that restarted may have submitted an attempt its journal lacks.
    fn new_keys(&self) -> bool {
        self.fresh || self.record.durable
    }

    fn is_fan_out(&self, step: &str) -> bool {
        self.progress.step(step).is_some_and(|s| s.items.is_some())
    }

    /// Submits a unit's task, or starts its sub-run.
    /// `fresh`: the unit's attempt was journaled (committed) by this actor just now, so
    /// no task can carry its key yet; a unit picked up after a restart may have one.
    fn start_unit(&mut self, unit: UnitKey, fresh: bool) {
        let Some(i) = self.progress.steps().iter().position(|s| s.id == unit.step) else { return };
        let def = &self.progress.def().steps[i];
        let (env, run, record) = (self.env.clone(), self.myself.clone(), &self.record);
        let key = step_task_key(record.id, &unit.step, unit.item, unit.attempt);
        let input = match self.progress.render_input(&env.templates, i, unit.item) {
            Ok(input) => input,
            Err(e) => return self.fail_unit(unit, format!("input: {e}")),
        };
        let target = match def.kind() {
            Some(StepKind::Agent(agent)) => Target::Agent(agent.to_string()),
            Some(StepKind::Capability(capability)) => Target::Capabilities(vec![capability.to_string()]),
            Some(StepKind::Workflow(workflow)) => {
                let start = self.sub_run(&unit, workflow.name.clone(), workflow.version, input, key);
                self.in_flight.insert(unit.clone(), Carrier::Pending);
                run_child(env, run, unit, start, None);
                return;
            }
            Some(StepKind::Plan(_)) => return self.start_plan(unit, i, input, key),
            // Approvals run nothing.
            Some(StepKind::Approval(_)) | None => return,
        };
        let request = TaskRequest {
            target,
            input: Arc::new(input),
            namespace: record.namespace.clone(),
            priority: 5,
            timeout: def.timeout,
            deadline: None,
            // A step with its own `retry` owns its attempts; without one, the agent's
            // retry policy applies to the task as to any other.
            retries: def.retry.as_ref().map(|_| 0),
            idempotency_key: Some(key),
            // The run's journal is what survives a crash: a step in flight is submitted
            // again with the same key, and its completion is recorded by the journal, not
            // the task. Committing the task as well would double the commits of a step.
            durable: false,
            submitter: record.submitter.clone(),
            traceparent: None,
            key_is_new: fresh,
        };
        let key = request.idempotency_key.clone().unwrap_or_default();
        self.in_flight.insert(unit.clone(), Carrier::Keyed(key));
        submit_and_wait(env.orchestrator.clone(), run, unit, request);
    }

    /// The request that starts the sub-run carrying `unit` (of a `workflow` or `plan` step).
    fn sub_run(
        &self,
        unit: &UnitKey,
        workflow: String,
        version: Option<u32>,
        input: Value,
        key: String,
    ) -> StartRun {
        let record = &self.record;
        StartRun {
            namespace: record.namespace.clone(),
            workflow,
            version,
            input,
            idempotency_key: Some(key),
            submitter: record.submitter.clone(),
            durable: record.durable,
            parent: Some(ParentStep { run: record.id, step: unit.step.clone() }),
        }
    }

    /// Ends `unit` as failed before it started. The report goes through the mailbox, so
    /// it is taken in after the entries being acted on now; the unit is in flight until
    /// then, or the report would be dropped as stale.
    fn fail_unit(&mut self, unit: UnitKey, error: String) {
        self.in_flight.insert(unit.clone(), Carrier::Pending);
        let outcome = UnitOutcome::Failed { state: StepState::Failed, error };
        let _ = self.myself.cast(RunMsg::Finished { unit, outcome });
    }

    /// Forgets the units `which` selects, cancelling their tasks and sub-runs.
    fn drop_units(&mut self, which: impl Fn(&UnitKey) -> bool) {
        let dropped: Vec<UnitKey> = self.in_flight.keys().filter(|u| which(u)).cloned().collect();
        for unit in dropped {
            match self.in_flight.remove(&unit) {
                Some(Carrier::Task(task)) => cancel_task(&self.env, task),
                Some(Carrier::Keyed(key)) => cancel_key(&self.env, &self.record.namespace, key),
                Some(Carrier::Run(child)) => self.cancel_child(child),
                Some(Carrier::Planning(planner)) => planner.abort(),
                _ => {}
            }
        }
    }

    /// Cancels a sub-run this run started, if it is still going.
    fn cancel_child(&self, child: RunId) {
        if let Some(child) = self.env.directory.get(child) {
            let (reply, _) = oneshot();
            let change = RunChange::Cancel { reason: "its parent step ended".into() };
            let _ = child.cast(RunMsg::Change { change, by: "parent".into(), reply: reply.into() });
        }
    }

    fn finished(&mut self, unit: UnitKey, outcome: UnitOutcome) {
        if self.in_flight.remove(&unit).is_none() {
            return; // dropped meanwhile, or reported twice
        }
        let entries = self.progress.complete(
            &self.env.templates,
            &unit.step,
            unit.item,
            unit.attempt,
            outcome,
            self.env.clock.now(),
        );
        self.commit(entries, Vec::new());
    }

    /// The run is final and journaled: tell its parent and waiters, then leave.
    fn finish(&mut self) {
        if let Some(parent) = self.record.parent.as_ref().and_then(|p| self.env.directory.get(p.run)) {
            let record = Box::new(self.record.clone());
            let _ = parent.cast(RunMsg::ChildFinished { child: self.record.id, record });
        }
        let view = self.view();
        self.env.directory.remember(view.clone());
        for (_, reply) in self.waiters.drain(..) {
            let _ = reply.send(Ok(view.clone()));
        }
        // Stopping through the supervisor removes the run's slot (a transient child that
        // stops by itself would keep one).
        let (reply, _) = oneshot();
        let supervisor: ActorRef<SupervisorMsg> = self.env.supervisor.clone();
        let _ = supervisor.send_message(SupervisorMsg::StopChild(run_child_id(self.record.id), reply.into()));
    }

    /// Keeps one timer, for the earliest retry or approval timeout due.
    fn reschedule(&mut self) {
        let next = if self.progress.state.is_final() { None } else { self.progress.next_timer() };
        if self.timer.as_ref().map(|(at, _)| *at) == next {
            return;
        }
        if let Some((_, timer)) = self.timer.take() {
            timer.abort();
        }
        if let Some(at) = next {
            let delay = at.duration_since(self.env.clock.now()).unwrap_or_default();
            let handle = self.myself.send_after(delay, || RunMsg::Timer);
            self.timer = Some((at, handle));
        }
    }
}

mod journal;
mod plan;
