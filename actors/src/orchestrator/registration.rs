//! Agents joining and leaving: pools started and drained outside the mailbox.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use mark1_supervisors::pool::PoolMsg;
use ractor::rpc::CallResult;
use ractor::RpcReplyPort;
use serde_json::{json, Value};

use super::registry::{agent_key, AgentEntry};
use super::{AgentRegistryError, OrchestratorMsg, OrchestratorState};
use crate::agents::AgentDefinition;
use crate::domain::{EventKind, RuntimeSpec};
use crate::ports::{StoreError, Write};
use crate::store_writer::Retry;

impl OrchestratorState {
    pub(super) fn register(
        &mut self,
        definition: AgentDefinition,
        reply: RpcReplyPort<Result<(), AgentRegistryError>>,
    ) {
        if let Err(reason) = definition.spec.validate() {
            let _ = reply.send(Err(AgentRegistryError::Invalid(reason)));
            return;
        }
        let key = definition.spec.key();
        if self.registry.contains(&key) || !self.args.catalog.insert(definition.clone()) {
            let _ = reply.send(Err(AgentRegistryError::Duplicate(key)));
            return;
        }
        let pools = self.args.pools.clone();
        let agents = self.args.agents.clone();
        let me = self.myself.clone();
        tokio::spawn(async move {
            let result = pools.start(&agents, &definition).await;
            let _ = me.cast(OrchestratorMsg::PoolStarted { definition, result, reply: Some(reply) });
        });
    }

    pub(super) fn pool_started(
        &mut self,
        definition: AgentDefinition,
        result: Result<AgentEntry, String>,
        reply: Option<RpcReplyPort<Result<(), AgentRegistryError>>>,
    ) {
        let spec = definition.spec.clone();
        let entry = match result {
            Ok(entry) => entry,
            Err(reason) => {
                self.args.catalog.remove(&spec.key());
                if let Some(reply) = reply {
                    let _ = reply.send(Err(AgentRegistryError::StartFailed { agent: spec.key(), reason }));
                }
                return;
            }
        };
        self.registry.insert(entry);
        let data = json!({"capabilities": spec.capabilities});
        let (namespace, key) = (spec.namespace.as_str().into(), spec.key().into());
        let event = self.args.events.emit(EventKind::AgentRegistered, namespace, key, data.into());
        // Registered at run time: stored, so the node brings it back after a restart, and
        // answered once it is.
        if let Some(reply) = reply {
            let writes = vec![Write::PutAgent(Box::new((*spec).clone())), Write::AppendEvent(event)];
            let stored = self.store_agent_change(spec.key(), writes);
            tokio::spawn(async move {
                let _ = reply.send(stored.await);
            });
        }
    }

    pub(super) fn remove(
        &mut self,
        namespace: &str,
        name: &str,
        reply: RpcReplyPort<Result<(), AgentRegistryError>>,
    ) {
        let key = agent_key(namespace, name);
        let Some(entry) = self.registry.remove(&key) else {
            let _ = reply.send(Err(AgentRegistryError::NotFound(key)));
            return;
        };
        self.args.catalog.remove(&key);
        let event = self.args.events.emit(
            EventKind::AgentRemoved,
            namespace.into(),
            key.as_str().into(),
            Value::Null.into(),
        );
        let (namespace, name) = (namespace.to_string(), name.to_string());
        let stored = self
            .store_agent_change(key, vec![Write::RemoveAgent { namespace, name }, Write::AppendEvent(event)]);
        // Draining runs outside the mailbox: the pool finishes what it holds, then stops.
        let agents = self.args.agents.clone();
        let pools = self.args.pools.clone();
        tokio::spawn(async move {
            pools.drain_and_stop(&agents, &entry).await;
            let _ = reply.send(stored.await);
        });
    }

    /// Changes an agent's pool bounds: the pool grows or shrinks to fit, restarts and the
    /// catalog keep the new size, and a stored (process) agent is stored with it.
    pub(super) fn resize(
        &mut self,
        namespace: &str,
        name: &str,
        (min, max): (usize, usize),
        reply: RpcReplyPort<Result<(), AgentRegistryError>>,
    ) {
        let key = agent_key(namespace, name);
        let Some(entry) = self.registry.get_mut(&key) else {
            let _ = reply.send(Err(AgentRegistryError::NotFound(key)));
            return;
        };
        let spec = Arc::new((*entry.spec).clone().pool_size(min, max));
        if let Err(reason) = spec.validate() {
            let _ = reply.send(Err(AgentRegistryError::Invalid(reason)));
            return;
        }
        let Some(pool) = entry.pool.clone() else {
            let _ = reply.send(Err(AgentRegistryError::StartFailed { agent: key, reason: "no pool".into() }));
            return;
        };
        entry.spec = spec.clone();
        if let Some(mut definition) = self.args.catalog.remove(&key) {
            definition.spec = spec.clone();
            self.args.catalog.insert(definition);
        }
        // Declared agents come back from the store after a restart; native ones are code.
        let stored = (!matches!(spec.runtime, RuntimeSpec::Native))
            .then(|| self.store_agent_change(key.clone(), vec![Write::PutAgent(Box::new((*spec).clone()))]));
        // The pool answers at once and resizes in its own mailbox; wait outside ours.
        tokio::spawn(async move {
            let outcome = match pool
                .call(|r| PoolMsg::Resize { min, max, reply: r }, Some(Duration::from_secs(10)))
                .await
            {
                Ok(CallResult::Success(Ok(()))) => Ok(()),
                Ok(CallResult::Success(Err(e))) => Err(AgentRegistryError::Invalid(e.to_string())),
                _ => Err(AgentRegistryError::StartFailed {
                    agent: key,
                    reason: "the pool did not answer".into(),
                }),
            };
            let outcome = match stored {
                Some(stored) => outcome.and(stored.await),
                None => outcome,
            };
            let _ = reply.send(outcome);
        });
    }

    /// Sends an agent change to the store; the future resolves once it is committed.
    /// The writer keeps it through an outage (the change is live already), so whoever
    /// asked hears back once the store has it, not before.
    fn store_agent_change(
        &mut self,
        agent: String,
        writes: Vec<Write>,
    ) -> impl Future<Output = Result<(), AgentRegistryError>> + Send + 'static {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let ack = Box::new(move |result: Result<(), StoreError>| drop(tx.send(result)));
        self.write_now(writes, ack, Retry::UntilCommitted);
        async move {
            let stopped = || Err(StoreError::Unavailable("the store writer stopped".into()));
            let result = rx.await.unwrap_or_else(|_| stopped());
            result.map_err(|e| AgentRegistryError::NotStored { agent, reason: e.to_string() })
        }
    }
}
