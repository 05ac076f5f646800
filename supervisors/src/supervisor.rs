//! The [`Supervisor`] actor: starts children from [`ChildSpec`]s, restarts them by
//! [`Strategy`] and [`Restart`] policy with [`Backoff`], and fails upward when restarts
//! exceed its [`Intensity`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SpawnErr, SupervisionEvent};

use crate::policy::{Backoff, Intensity, Restart, Strategy};
use crate::stats::{ActorStats, RestartCause};

/// What a child's start function receives.
pub struct StartCtx {
    /// The supervisor to link to (`spawn_linked(.., ctx.supervisor.clone())`).
    pub supervisor: ActorCell,
    /// The registry name to use, `Some("<supervisor name>/<child id>")` for registered
    /// children, `None` otherwise.
    pub name: Option<String>,
    /// The slot's stats; pass them to [`crate::spawn_instrumented`].
    pub stats: Arc<ActorStats>,
}

/// Erlang's default shutdown timeout for a worker child.
const DEFAULT_SHUTDOWN: Duration = Duration::from_secs(5);

type StartFn = Arc<dyn Fn(StartCtx) -> BoxFuture<'static, Result<ActorCell, SpawnErr>> + Send + Sync>;

/// How to (re)start one child. The start function builds fresh arguments on every call,
/// since ractor moves `Arguments` into the actor.
#[derive(Clone)]
pub struct ChildSpec {
    pub id: String,
    pub restart: Restart,
    /// Register the child in ractor's registry as `<supervisor name>/<id>`.
    pub registered: bool,
    /// How long a graceful stop may take before the child is killed.
    pub shutdown: Duration,
    start: StartFn,
}

impl ChildSpec {
    pub fn new<F, Fut>(id: impl Into<String>, start: F) -> Self
    where
        F: Fn(StartCtx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<ActorCell, SpawnErr>> + Send + 'static,
    {
        let start: StartFn = Arc::new(move |ctx| Box::pin(start(ctx)));
        ChildSpec {
            id: id.into(),
            restart: Restart::Permanent,
            registered: true,
            shutdown: DEFAULT_SHUTDOWN,
            start,
        }
    }

    /// A child that is an [`crate::Instrumented`] actor built by `make` on every start.
    pub fn actor<A, F>(id: impl Into<String>, make: F) -> Self
    where
        A: Actor,
        F: Fn() -> (A, A::Arguments) + Send + Sync + 'static,
    {
        ChildSpec::new(id, move |ctx: StartCtx| {
            let (actor, args) = make();
            async move {
                let (addr, _) =
                    crate::spawn_instrumented(ctx.name, actor, args, ctx.stats, Some(ctx.supervisor)).await?;
                Ok(addr.actor().get_cell())
            }
        })
    }

    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    pub fn registered(mut self, registered: bool) -> Self {
        self.registered = registered;
        self
    }

    pub fn shutdown(mut self, timeout: Duration) -> Self {
        self.shutdown = timeout;
        self
    }
}

/// Something a supervisor tells its observer (events, metrics).
#[derive(Clone, Debug)]
pub enum SupervisorEvent {
    /// A child is being restarted.
    ChildRestarted { supervisor: String, child: String, cause: RestartCause, reason: String },
    /// A child exited and is not restarted (temporary, or transient with a normal exit).
    ChildExited { supervisor: String, child: String, reason: String },
    /// The supervisor exceeded its intensity and is failing upward.
    Escalated { supervisor: String, reason: String },
}

pub type SupervisorObserver = Arc<dyn Fn(SupervisorEvent) + Send + Sync>;

pub struct SupervisorArgs {
    pub strategy: Strategy,
    pub intensity: Intensity,
    pub backoff: Backoff,
    /// Started in order at `pre_start`; a child that cannot start fails the supervisor's start.
    pub children: Vec<ChildSpec>,
    /// Upper bound on children, static and dynamic together.
    pub max_children: Option<usize>,
    /// This supervisor's own slot; children slots are attached under it.
    pub stats: Arc<ActorStats>,
    pub observer: Option<SupervisorObserver>,
}

impl SupervisorArgs {
    pub fn new(stats: Arc<ActorStats>) -> Self {
        SupervisorArgs {
            strategy: Strategy::OneForOne,
            intensity: Intensity::default(),
            backoff: Backoff::default(),
            children: Vec::new(),
            max_children: None,
            stats,
            observer: None,
        }
    }
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SupervisorError {
    #[error("a child with id '{0}' already exists")]
    DuplicateChild(String),
    #[error("no child with id '{0}'")]
    NoSuchChild(String),
    #[error("the supervisor is full: at most {0} children")]
    Full(usize),
    #[error("child '{id}' failed to start: {reason}")]
    StartFailed { id: String, reason: String },
}

pub enum SupervisorMsg {
    /// Starts a dynamic child.
    StartChild(ChildSpec, RpcReplyPort<Result<ActorCell, SupervisorError>>),
    /// Stops a child gracefully (then kills it after its `shutdown` timeout) and forgets it.
    StopChild(String, RpcReplyPort<Result<(), SupervisorError>>),
    /// The current children: id and the cell of the running incarnation, if any.
    Children(RpcReplyPort<Vec<(String, Option<ActorCell>)>>),
    /// Internal: a backoff delay elapsed; restart the child if `generation` is still current.
    Restart { id: String, generation: u64 },
}

/// The supervisor actor. Spawn it wrapped with [`crate::spawn_instrumented`] (or as a
/// [`ChildSpec::actor`] of another supervisor).
///
/// Naming: a child's slot is called `<supervisor's registry name>/<child id>` when the
/// supervisor has a registry name, and `<child id>` otherwise; that is its stats name.
/// A child with `registered: true` gets that full name in ractor's registry only when the
/// supervisor is itself named: the registry is global to the process, so a bare child id
/// would collide between two nodes (or two tests) in one process.
pub struct Supervisor;

#[cfg(test)]
pub(crate) mod tests;

mod state;

pub use state::SupervisorState;

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        SupervisorState::start(myself, args).await
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.stop_all().await;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SupervisorMsg::StartChild(spec, reply) => {
                let _ = reply.send(state.start_dynamic(&myself, spec).await);
            }
            SupervisorMsg::StopChild(id, reply) => {
                let _ = reply.send(state.stop_child(&id).await);
            }
            SupervisorMsg::Children(reply) => {
                let _ = reply.send(state.children());
            }
            SupervisorMsg::Restart { id, generation } => {
                state.restart_due(&myself, &id, generation).await?;
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let Some((cell, exit)) = Exit::from_event(event) else { return Ok(()) };
        // Events from cells that are no longer a current child (siblings stopped during a
        // group restart, children stopped on request) are ignored.
        match state.slot_of(&cell) {
            Some(id) => state.on_exit(&myself, id, exit).await,
            None => Ok(()),
        }
    }
}

/// How a child ended: `cause` is `None` for a normal exit.
#[derive(Debug, Clone)]
pub(crate) struct Exit {
    pub(crate) cause: Option<RestartCause>,
    pub(crate) reason: String,
}

impl Exit {
    /// The child and how it exited, for the two events that end a child.
    pub(crate) fn from_event(event: SupervisionEvent) -> Option<(ActorCell, Exit)> {
        match event {
            SupervisionEvent::ActorFailed(cell, err) => {
                Some((cell, Exit { cause: Some(RestartCause::Failed), reason: err.to_string() }))
            }
            SupervisionEvent::ActorTerminated(cell, _, reason) => Some((cell, Exit::terminated(reason))),
            _ => None,
        }
    }

    /// Classifies an `ActorTerminated` reason. ractor reports a kill as the reason
    /// `"killed"` (also the reason of a signal-terminated processing loop), so a child that
    /// stops itself with that exact reason is indistinguishable from one that was killed.
    pub(crate) fn terminated(reason: Option<String>) -> Exit {
        match reason.as_deref() {
            None => Exit { cause: None, reason: "normal".into() },
            Some("normal") | Some("shutdown") => Exit { cause: None, reason: reason.unwrap_or_default() },
            Some("killed") => Exit { cause: Some(RestartCause::Killed), reason: "killed".into() },
            Some(r) => Exit { cause: Some(RestartCause::Stopped), reason: r.to_string() },
        }
    }
}

/// Stops a child gracefully: it handles what its mailbox already holds (a store writer
/// commits its last writes), then stops; it is killed if that takes longer than `timeout`.
pub(crate) async fn stop_cell(cell: &ActorCell, timeout: Duration) {
    if cell.drain_and_wait(Some(timeout)).await.is_err() {
        let _ = cell.kill_and_wait(Some(timeout)).await;
    }
}
