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
        todo!()
    }

    /// A child that is an [`crate::Instrumented`] actor built by `make` on every start.
    pub fn actor<A, F>(id: impl Into<String>, make: F) -> Self
    where
        A: Actor,
        F: Fn() -> (A, A::Arguments) + Send + Sync + 'static,
    {
        todo!()
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
pub struct Supervisor;

pub struct SupervisorState {
    // private fields chosen by the implementation
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        _args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        todo!()
    }
}
