//! Agents declared as data (config tables, the HTTP API, the store) rather than code:
//! process and LLM agents, each checked and given its runtime here.

use std::sync::Arc;

use mark1_actors::agents::AgentDefinition;
use mark1_actors::domain::{AgentSpec, RuntimeSpec};

use crate::runtimes::{LlmRuntime, ProcessRuntime};

/// The runtimes of declared agents, shared by every agent of a kind.
#[derive(Clone)]
pub struct DeclaredRuntimes {
    pub processes: Arc<ProcessRuntime>,
    pub llm: Arc<LlmRuntime>,
}

impl DeclaredRuntimes {
    /// The definition of `spec` with its runtime, once what the runtime can check before
    /// starting holds (a process agent's command is in the sandbox's folders, an LLM
    /// agent's MCP servers are configured). Errors are the reason alone.
    pub fn definition(&self, spec: AgentSpec) -> Result<AgentDefinition, String> {
        let runtime: Arc<dyn mark1_actors::ports::AgentRuntime> = match &spec.runtime {
            RuntimeSpec::Process(process) => {
                self.processes.validate(process).map_err(|e| e.to_string())?;
                self.processes.clone()
            }
            RuntimeSpec::Llm(llm) => {
                self.llm.check(llm)?;
                self.llm.clone()
            }
            RuntimeSpec::Native => {
                return Err("a native agent is a Rust type: register it with its implementation".into())
            }
        };
        Ok(AgentDefinition::new(spec, runtime))
    }
}
