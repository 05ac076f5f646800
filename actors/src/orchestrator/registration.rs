//! Agents joining and leaving: pools started and drained outside the mailbox.

use ractor::RpcReplyPort;
use serde_json::{json, Value};

use super::registry::AgentEntry;
use super::{AgentRegistryError, OrchestratorMsg, OrchestratorState};
use crate::agents::AgentDefinition;
use crate::domain::EventKind;
use crate::ports::Write;

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
        let outcome = match result {
            Ok(entry) => {
                self.registry.insert(entry);
                let data = json!({"capabilities": spec.capabilities});
                let event =
                    self.args.events.emit(EventKind::AgentRegistered, &spec.namespace, spec.key(), data);
                // Registered at run time: stored, so the node brings it back after a restart.
                if reply.is_some() {
                    self.write_later([Write::PutAgent(Box::new((*spec).clone())), Write::AppendEvent(event)]);
                }
                Ok(())
            }
            Err(reason) => {
                self.args.catalog.remove(&spec.key());
                Err(AgentRegistryError::StartFailed { agent: spec.key(), reason })
            }
        };
        if let Some(reply) = reply {
            let _ = reply.send(outcome);
        }
    }

    pub(super) fn remove(
        &mut self,
        namespace: &str,
        name: &str,
        reply: RpcReplyPort<Result<(), AgentRegistryError>>,
    ) {
        let key = format!("{namespace}/{name}");
        let Some(entry) = self.registry.remove(&key) else {
            let _ = reply.send(Err(AgentRegistryError::NotFound(key)));
            return;
        };
        self.args.catalog.remove(&key);
        let event = self.args.events.emit(EventKind::AgentRemoved, namespace, key.clone(), Value::Null);
        let (namespace, name) = (namespace.to_string(), name.to_string());
        self.write_later([Write::RemoveAgent { namespace, name }, Write::AppendEvent(event)]);
        // Draining runs outside the mailbox: the pool finishes what it holds, then stops.
        let agents = self.args.agents.clone();
        let pools = self.args.pools.clone();
        tokio::spawn(async move {
            pools.drain_and_stop(&agents, &entry).await;
            let _ = reply.send(Ok(()));
        });
    }
}
