//! The supervisor's private state and the restart machinery behind its handlers.
//!
//! Restarts run as a loop rather than recursion: a restart whose start fails becomes a
//! new exit (`StartFailed`) that goes through intensity and backoff again, and the loop
//! ends when every child in the group is running, a delayed restart is scheduled, or the
//! intensity is exceeded.

use std::sync::Arc;
use std::time::Instant;

use ractor::{ActorCell, ActorProcessingErr, ActorRef};

use super::{stop_cell, ChildSpec, Exit, StartCtx, SupervisorArgs, SupervisorError, SupervisorEvent};
use super::{SupervisorMsg, SupervisorObserver};
use crate::policy::{Backoff, Intensity, Restart, RestartWindow, Strategy};
use crate::stats::{ActorStats, RestartCause, Status};

/// Restarts of one child remembered for its backoff; beyond this many the delay is at
/// its cap anyway.
const BACKOFF_HISTORY: u32 = 64;

struct Slot {
    spec: ChildSpec,
    /// `<supervisor name>/<id>`, or the id when the supervisor has no name.
    full_name: String,
    stats: Arc<ActorStats>,
    /// The running incarnation.
    cell: Option<ActorCell>,
    /// Waiting for a (delayed) restart.
    pending: bool,
    /// Bumped on every start, so a backoff timer scheduled before it is stale.
    generation: u64,
    /// This child's own recent restarts: the backoff attempt number.
    recent: RestartWindow,
}

pub struct SupervisorState {
    /// Registry name, or the stats name when unnamed: used in events and errors.
    name: String,
    registry_name: Option<String>,
    strategy: Strategy,
    backoff: Backoff,
    max_children: Option<usize>,
    window: RestartWindow,
    slots: Vec<Slot>,
    stats: Arc<ActorStats>,
    observer: Option<SupervisorObserver>,
}

impl SupervisorState {
    /// Builds the state and starts the static children in order; if one cannot start,
    /// the ones already started are stopped and the supervisor's start fails.
    pub(super) async fn start(
        myself: ActorRef<SupervisorMsg>,
        args: SupervisorArgs,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let registry_name = myself.get_name();
        let mut state = SupervisorState {
            name: registry_name.clone().unwrap_or_else(|| args.stats.name().to_string()),
            registry_name,
            strategy: args.strategy,
            backoff: args.backoff,
            max_children: args.max_children,
            window: RestartWindow::new(args.intensity),
            slots: Vec::with_capacity(args.children.len()),
            stats: args.stats,
            observer: args.observer,
        };
        for spec in args.children {
            let id = spec.id.clone();
            let refused = match state.admit(&id) {
                Err(e) => Some(e.to_string()),
                Ok(()) => {
                    let idx = state.add_slot(spec);
                    state.start_slot(&myself, idx).await.err()
                }
            };
            if let Some(reason) = refused {
                state.stop_all().await;
                return Err(
                    format!("supervisor '{}': child '{id}' failed to start: {reason}", state.name).into()
                );
            }
        }
        Ok(state)
    }

    fn admit(&self, id: &str) -> Result<(), SupervisorError> {
        if self.index(id).is_some() {
            return Err(SupervisorError::DuplicateChild(id.to_string()));
        }
        match self.max_children {
            Some(max) if self.slots.len() >= max => Err(SupervisorError::Full(max)),
            _ => Ok(()),
        }
    }

    fn index(&self, id: &str) -> Option<usize> {
        self.slots.iter().position(|s| s.spec.id == id)
    }

    /// The id of the current child running in `cell`, if any.
    pub(super) fn slot_of(&self, cell: &ActorCell) -> Option<String> {
        let id = cell.get_id();
        self.slots
            .iter()
            .find(|s| s.cell.as_ref().is_some_and(|c| c.get_id() == id))
            .map(|s| s.spec.id.clone())
    }

    fn add_slot(&mut self, spec: ChildSpec) -> usize {
        let full_name = match &self.registry_name {
            Some(n) => format!("{n}/{}", spec.id),
            None => spec.id.clone(),
        };
        let stats = self.stats.child(full_name.clone());
        let window = self.window.intensity().window;
        self.slots.push(Slot {
            spec,
            full_name,
            stats,
            cell: None,
            pending: false,
            generation: 0,
            recent: RestartWindow::new(Intensity { max_restarts: BACKOFF_HISTORY, window }),
        });
        self.slots.len() - 1
    }

    fn remove_slot(&mut self, idx: usize) -> Slot {
        let slot = self.slots.remove(idx);
        self.stats.detach(&slot.stats);
        slot
    }

    async fn start_slot(&mut self, myself: &ActorRef<SupervisorMsg>, idx: usize) -> Result<(), String> {
        let registered = self.registry_name.is_some();
        let slot = &mut self.slots[idx];
        let ctx = StartCtx {
            supervisor: myself.get_cell(),
            name: (slot.spec.registered && registered).then(|| slot.full_name.clone()),
            stats: slot.stats.clone(),
        };
        slot.generation += 1;
        slot.pending = false;
        slot.stats.set_status(Status::Starting);
        match (slot.spec.start)(ctx).await {
            Ok(cell) => {
                slot.stats.set_actor_id(cell.get_id().pid());
                slot.stats.set_status(Status::Running);
                slot.cell = Some(cell);
                Ok(())
            }
            Err(e) => {
                slot.stats.set_status(Status::Failed);
                Err(e.to_string())
            }
        }
    }

    fn notify(&self, event: SupervisorEvent) {
        if let Some(observer) = &self.observer {
            observer(event);
        }
    }

    /// A current child exited (or failed to restart): apply its restart policy, the
    /// intensity, the strategy and the backoff.
    pub(super) async fn on_exit(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        id: String,
        exit: Exit,
    ) -> Result<(), ActorProcessingErr> {
        let mut next = Some((id, exit));
        while let Some((id, exit)) = next.take() {
            let Some(idx) = self.index(&id) else { continue };
            self.slots[idx].cell = None;
            let restart = match self.slots[idx].spec.restart {
                Restart::Permanent => true,
                Restart::Transient => exit.cause.is_some(),
                Restart::Temporary => false,
            };
            if !restart {
                let slot = &self.slots[idx];
                slot.stats.set_status(if exit.cause.is_some() { Status::Failed } else { Status::Stopped });
                self.notify(SupervisorEvent::ChildExited {
                    supervisor: self.name.clone(),
                    child: slot.full_name.clone(),
                    reason: exit.reason,
                });
                if slot.spec.restart == Restart::Temporary {
                    self.remove_slot(idx);
                }
                continue;
            }
            // A permanent child that exits normally is restarted too; it counts as `stopped`.
            let cause = exit.cause.unwrap_or(RestartCause::Stopped);
            let now = Instant::now();
            if !self.window.record(now) {
                return Err(self.escalate(now, &exit.reason).await);
            }
            let slot = &mut self.slots[idx];
            slot.stats.record_restart(cause);
            slot.stats.set_status(Status::Restarting);
            slot.recent.record(now);
            let attempt = slot.recent.recent(now).saturating_sub(1);
            self.notify(SupervisorEvent::ChildRestarted {
                supervisor: self.name.clone(),
                child: self.slots[idx].full_name.clone(),
                cause,
                reason: exit.reason,
            });
            self.stop_siblings(idx).await;
            let idx = self.index(&id).expect("the exited child is never removed with its siblings");
            self.slots[idx].pending = true;
            let generation = self.slots[idx].generation;
            let delay = self.backoff.delay(attempt);
            if delay.is_zero() {
                next = self.restart_group(myself, idx).await;
            } else {
                // Dropping the handle detaches the timer; it does not cancel it.
                drop(myself.send_after(delay, move || SupervisorMsg::Restart { id, generation }));
            }
        }
        Ok(())
    }

    /// Stops the running siblings that the strategy restarts with child `idx`, in reverse
    /// start order, and marks them pending; temporary siblings are stopped and removed.
    async fn stop_siblings(&mut self, idx: usize) {
        let group = match self.strategy {
            Strategy::OneForOne => return,
            Strategy::OneForAll => 0..self.slots.len(),
            Strategy::RestForOne => idx..self.slots.len(),
        };
        let mut temporary = Vec::new();
        for j in group.rev().filter(|&j| j != idx) {
            let slot = &mut self.slots[j];
            let Some(cell) = slot.cell.take() else { continue };
            slot.stats.set_status(Status::Stopping);
            stop_cell(&cell, slot.spec.shutdown).await;
            if slot.spec.restart == Restart::Temporary {
                slot.stats.set_status(Status::Stopped);
                temporary.push(j);
            } else {
                slot.stats.set_status(Status::Restarting);
                slot.pending = true;
            }
        }
        // `temporary` is in descending order, so removals keep the other indices valid.
        for j in temporary {
            let slot = self.remove_slot(j);
            self.notify(SupervisorEvent::ChildExited {
                supervisor: self.name.clone(),
                child: slot.full_name,
                reason: "shutdown".into(),
            });
        }
    }

    /// Starts, in start order, the pending children of the group of child `idx`. Returns
    /// the first one that failed to start, as an exit to handle.
    async fn restart_group(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        idx: usize,
    ) -> Option<(String, Exit)> {
        let members: Vec<usize> = match self.strategy {
            Strategy::OneForOne => vec![idx],
            Strategy::OneForAll => (0..self.slots.len()).collect(),
            Strategy::RestForOne => (idx..self.slots.len()).collect(),
        };
        for j in members {
            if !self.slots[j].pending {
                continue;
            }
            if let Err(reason) = self.start_slot(myself, j).await {
                let exit = Exit { cause: Some(RestartCause::StartFailed), reason };
                return Some((self.slots[j].spec.id.clone(), exit));
            }
        }
        None
    }

    /// A backoff delay elapsed.
    pub(super) async fn restart_due(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        id: &str,
        generation: u64,
    ) -> Result<(), ActorProcessingErr> {
        let Some(idx) = self.index(id) else { return Ok(()) };
        let slot = &self.slots[idx];
        if !slot.pending || slot.generation != generation {
            return Ok(());
        }
        match self.restart_group(myself, idx).await {
            Some((id, exit)) => self.on_exit(myself, id, exit).await,
            None => Ok(()),
        }
    }

    /// Gives up: notifies, stops everything and returns the reason to fail with.
    async fn escalate(&mut self, now: Instant, last_failure: &str) -> ActorProcessingErr {
        let reason = self.window.exceeded(&format!("supervisor '{}'", self.name), now, last_failure);
        tracing::error!(supervisor = %self.name, %reason, "supervisor escalates");
        self.notify(SupervisorEvent::Escalated { supervisor: self.name.clone(), reason: reason.clone() });
        self.stop_all().await;
        self.stats.set_status(Status::Failed);
        reason.into()
    }

    /// Stops every child in reverse start order, each gracefully then killed after its
    /// shutdown timeout. Slots stay (their stats show `stopped`); pending timers go stale.
    pub(super) async fn stop_all(&mut self) {
        for slot in self.slots.iter_mut().rev() {
            slot.pending = false;
            slot.generation += 1;
            if let Some(cell) = slot.cell.take() {
                slot.stats.set_status(Status::Stopping);
                stop_cell(&cell, slot.spec.shutdown).await;
            }
            slot.stats.set_status(Status::Stopped);
        }
    }

    pub(super) async fn start_dynamic(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        spec: ChildSpec,
    ) -> Result<ActorCell, SupervisorError> {
        self.admit(&spec.id)?;
        let id = spec.id.clone();
        let idx = self.add_slot(spec);
        match self.start_slot(myself, idx).await {
            Ok(()) => Ok(self.slots[idx].cell.clone().expect("a started child has a cell")),
            Err(reason) => {
                self.remove_slot(idx);
                Err(SupervisorError::StartFailed { id, reason })
            }
        }
    }

    pub(super) async fn stop_child(&mut self, id: &str) -> Result<(), SupervisorError> {
        let idx = self.index(id).ok_or_else(|| SupervisorError::NoSuchChild(id.to_string()))?;
        // Removed first, so the stop's own supervision event finds no current child.
        let mut slot = self.remove_slot(idx);
        if let Some(cell) = slot.cell.take() {
            slot.stats.set_status(Status::Stopping);
            stop_cell(&cell, slot.spec.shutdown).await;
        }
        slot.stats.set_status(Status::Stopped);
        Ok(())
    }

    pub(super) fn children(&self) -> Vec<(String, Option<ActorCell>)> {
        self.slots.iter().map(|s| (s.spec.id.clone(), s.cell.clone())).collect()
    }
}
