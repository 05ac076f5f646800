//! OTP-style supervision on ractor, with no knowledge of AI.
//!
//! | item | what it is |
//! |---|---|
//! | [`policy`] | pure policy: [`Restart`], [`Strategy`], [`Intensity`] + [`RestartWindow`], [`Backoff`] |
//! | [`stats`] | per-actor counters in shared atomics and the [`ActorSnapshot`] tree built from them |
//! | [`instrumented`] | [`Instrumented`] wraps any actor to count messages and handling time; [`Addr`] counts sends |
//! | [`supervisor`] | the [`Supervisor`] actor: child specs, strategies, intensity, backoff, dynamic children |
//! | [`pool`] | the [`Pool`] actor: a balanced, bounded pool of identical workers that grows and shrinks |
//!
//! ractor's default `handle_supervisor_evt` stops the parent whenever a child exits;
//! every supervising actor here overrides it. A child whose `pre_start` fails makes
//! `spawn_linked` return an error and sends no supervision event, so a failed start is
//! counted as a failure (`start_failed`) by the code that spawned it.

pub mod instrumented;
pub mod policy;
pub mod pool;
pub mod stats;
pub mod supervisor;

pub use instrumented::{spawn_instrumented, Addr, Instrumented};
pub use policy::{Backoff, Intensity, Restart, RestartWindow, Strategy};
pub use pool::{
    Assignment, Job, Lease, Pool, PoolArgs, PoolError, PoolLoad, PoolMsg, PoolStatus, Routing, WorkerStart,
};
pub use stats::{ActorSnapshot, ActorStats, RestartCause, Restarts, Status};
pub use supervisor::{
    ChildSpec, StartCtx, Supervisor, SupervisorArgs, SupervisorError, SupervisorEvent, SupervisorMsg,
    SupervisorObserver,
};
