//! Counting layer: [`Instrumented`] wraps an actor to count handled messages and time
//! spent in handlers; [`Addr`] wraps an `ActorRef` to count messages sent. Both write to
//! the slot's [`ActorStats`], which snapshots read without messaging the actor.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::concurrency::JoinHandle;
use ractor::rpc::CallResult;
use ractor::{
    Actor, ActorCell, ActorProcessingErr, ActorRef, Message, MessagingErr, RpcReplyPort, SpawnErr,
    SupervisionEvent,
};

use crate::stats::{ActorStats, Status};

/// An actor wrapped with counters. Same messages, state and arguments as `A`.
pub struct Instrumented<A> {
    inner: A,
    stats: Arc<ActorStats>,
}

impl<A: Actor> Instrumented<A> {
    pub fn new(inner: A, stats: Arc<ActorStats>) -> Self {
        Instrumented { inner, stats }
    }
}

impl<A: Actor> Actor for Instrumented<A> {
    type Msg = A::Msg;
    type State = A::State;
    type Arguments = A::Arguments;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        self.stats.set_actor_id(myself.get_id().pid());
        self.stats.set_status(Status::Starting);
        let state = self.inner.pre_start(myself, args).await?;
        self.stats.set_status(Status::Running);
        Ok(state)
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        self.inner.post_start(myself, state).await
    }

    async fn post_stop(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let result = self.inner.post_stop(myself, state).await;
        self.stats.set_status(Status::Stopped);
        result
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let started = Instant::now();
        let result = self.inner.handle(myself, message, state).await;
        self.stats.on_handled(started.elapsed());
        result
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        self.inner.handle_supervisor_evt(myself, event, state).await
    }
}

/// Spawns `actor` wrapped in [`Instrumented`], linked to `supervisor` when given, and
/// returns an [`Addr`] that counts what is sent to it.
pub async fn spawn_instrumented<A: Actor>(
    name: Option<String>,
    actor: A,
    args: A::Arguments,
    stats: Arc<ActorStats>,
    supervisor: Option<ActorCell>,
) -> Result<(Addr<A::Msg>, JoinHandle<()>), SpawnErr> {
    let wrapped = Instrumented::new(actor, stats.clone());
    let spawned = match supervisor {
        Some(sup) => Actor::spawn_linked(name, wrapped, args, sup).await,
        None => Actor::spawn(name, wrapped, args).await,
    };
    match spawned {
        Ok((actor, handle)) => Ok((Addr::new(actor, stats), handle)),
        Err(e) => {
            stats.set_status(Status::Failed);
            Err(e)
        }
    }
}

/// An `ActorRef` that counts the messages sent through it, so mailbox depth is visible.
pub struct Addr<M> {
    actor: ActorRef<M>,
    stats: Arc<ActorStats>,
}

impl<M> Clone for Addr<M> {
    fn clone(&self) -> Self {
        Addr { actor: self.actor.clone(), stats: self.stats.clone() }
    }
}

impl<M: Message> Addr<M> {
    pub fn new(actor: ActorRef<M>, stats: Arc<ActorStats>) -> Self {
        Addr { actor, stats }
    }

    pub fn actor(&self) -> &ActorRef<M> {
        &self.actor
    }

    pub fn stats(&self) -> &Arc<ActorStats> {
        &self.stats
    }

    #[inline]
    pub fn cast(&self, message: M) -> Result<(), MessagingErr<M>> {
        self.stats.on_sent();
        let result = self.actor.send_message(message);
        if result.is_err() {
            self.stats.on_send_failed();
        }
        result
    }

    /// Sends `message()` after `delay`, counted like any send.
    pub fn send_after(
        &self,
        delay: Duration,
        message: impl FnOnce() -> M + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let addr = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = addr.cast(message());
        })
    }

    /// Sends `message()` every `period`, the first after one period, until the actor stops.
    pub fn send_interval(
        &self,
        period: Duration,
        message: impl Fn() -> M + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let addr = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            loop {
                ticks.tick().await;
                if addr.cast(message()).is_err() {
                    break;
                }
            }
        })
    }

    /// Request/reply with an explicit timeout.
    pub async fn call<R: Send + 'static>(
        &self,
        build: impl FnOnce(RpcReplyPort<R>) -> M,
        timeout: Option<Duration>,
    ) -> Result<CallResult<R>, MessagingErr<M>> {
        self.stats.on_sent();
        let result = self.actor.call(build, timeout).await;
        if result.is_err() {
            self.stats.on_send_failed();
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use ractor::{Actor, ActorProcessingErr, ActorRef};
    use tokio::sync::Semaphore;

    use super::spawn_instrumented;
    use crate::stats::{ActorStats, Status};

    /// Handles a message only when a permit is available: a mailbox that backs up on demand.
    struct Gate;

    impl Actor for Gate {
        type Msg = ();
        type State = Arc<Semaphore>;
        type Arguments = Arc<Semaphore>;

        async fn pre_start(
            &self,
            _: ActorRef<()>,
            gate: Arc<Semaphore>,
        ) -> Result<Arc<Semaphore>, ActorProcessingErr> {
            Ok(gate)
        }

        async fn handle(
            &self,
            _: ActorRef<()>,
            _: (),
            gate: &mut Arc<Semaphore>,
        ) -> Result<(), ActorProcessingErr> {
            gate.acquire().await?.forget();
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_backed_up_mailbox_shows_its_depth_and_drains_to_zero() {
        let gate = Arc::new(Semaphore::new(0));
        let stats = ActorStats::new("gate");
        let (addr, handle) = spawn_instrumented(None, Gate, gate.clone(), stats.clone(), None).await.unwrap();
        assert_eq!(stats.status(), Status::Running);
        for _ in 0..5 {
            addr.cast(()).unwrap();
        }
        // One message is in the handler, blocked; four wait behind it.
        assert_eq!(stats.mailbox_depth(), 5, "nothing handled yet");
        gate.add_permits(5);
        for _ in 0..500 {
            if stats.messages_handled() == 5 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert_eq!((stats.messages_handled(), stats.mailbox_depth()), (5, 0));
        addr.actor().stop(None);
        handle.await.unwrap();
        assert_eq!(stats.status(), Status::Stopped);
    }
}
