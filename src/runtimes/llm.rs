//! LLM agents (`runtime = "llm"`): a system prompt, a model, tools and limits, run as a
//! tool-calling loop through the node's model router.
//!
//! - [`session`]: one task's loop, caps, fallback models and the output check;
//! - [`tools`]: the tool trait and an agent's toolbox; [`agent_tool`] (other agents, as
//!   sub-tasks), [`http_tool`] (endpoints behind an allow-list and an address policy),
//!   [`mcp`] (the tools of configured MCP servers);
//! - [`output`]: the final answer against `output_schema`.

pub mod agent_tool;
pub mod http_tool;
pub mod mcp;
pub mod output;
pub mod session;
pub mod tools;

use std::sync::Arc;

use mark1_actors::domain::{AgentSpec, LlmSpec, RuntimeSpec, ToolDef};
use mark1_actors::models::ModelRouter;
use mark1_actors::node::actor_name;
use mark1_actors::ports::{AgentError, AgentRuntime, AgentWorker, TaskContext};
use serde_json::Value;

pub use self::mcp::McpServers;
use self::output::OutputSchema;
use self::session::{Agent, Session};
use self::tools::Toolbox;

/// Starts the workers of a node's LLM agents.
pub struct LlmRuntime {
    router: ModelRouter,
    mcp: Arc<McpServers>,
    default_answer_tokens: u32,
}

impl LlmRuntime {
    /// The runtime of node `node`, whose router it finds by name; an answer is at most
    /// `default_answer_tokens` long unless an agent says otherwise.
    pub fn new(node: &str, mcp: Arc<McpServers>, default_answer_tokens: u32) -> Self {
        LlmRuntime { router: ModelRouter::new(actor_name(node, "models/router")), mcp, default_answer_tokens }
    }

    /// Ends the MCP servers' connections (the node is shutting down).
    pub async fn close(&self) {
        self.mcp.close().await;
    }

    /// Checks what registration can check beyond the spec itself, so an agent that
    /// could never start is refused rather than stored: the MCP servers its tools name
    /// are configured, and its agent and HTTP tools can be built.
    pub fn check(&self, llm: &LlmSpec) -> Result<(), String> {
        for (i, tool) in llm.tools.iter().enumerate() {
            let built = match tool {
                ToolDef::Mcp { server, .. } if !self.mcp.has(server) => {
                    Err(format!("no MCP server '{server}' is configured (mcp.servers)"))
                }
                ToolDef::Mcp { .. } => Ok(()),
                ToolDef::Http { .. } => http_tool::HttpTool::new(tool).map(drop),
                ToolDef::Agent { .. } => agent_tool::AgentTool::new(tool).map(drop),
            };
            built.map_err(|e| format!("llm.tools[{i}]: {e}"))?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl AgentRuntime for LlmRuntime {
    async fn start(&self, spec: &AgentSpec) -> Result<Box<dyn AgentWorker>, AgentError> {
        let RuntimeSpec::Llm(llm) = &spec.runtime else {
            return Err(AgentError::StartFailed(format!("agent {} is not an llm agent", spec.key())));
        };
        let toolbox = Toolbox::build(llm, &self.mcp).await.map_err(AgentError::StartFailed)?;
        let output = llm
            .output_schema
            .as_ref()
            .map(OutputSchema::compile)
            .transpose()
            .map_err(AgentError::StartFailed)?;
        Ok(Box::new(LlmWorker {
            spec: llm.clone(),
            key: spec.key(),
            name: spec.name.clone(),
            router: self.router.clone(),
            toolbox,
            output,
            default_answer_tokens: self.default_answer_tokens,
        }))
    }
}

/// One instance of an LLM agent: its definition with the tools and schema ready.
struct LlmWorker {
    spec: Box<LlmSpec>,
    key: String,
    name: String,
    router: ModelRouter,
    toolbox: Toolbox,
    output: Option<OutputSchema>,
    default_answer_tokens: u32,
}

#[async_trait::async_trait]
impl AgentWorker for LlmWorker {
    async fn run(&mut self, ctx: TaskContext, input: Value) -> Result<Value, AgentError> {
        let agent = Agent {
            spec: &self.spec,
            key: &self.key,
            name: &self.name,
            router: &self.router,
            toolbox: &self.toolbox,
            output: self.output.as_ref(),
            default_answer_tokens: self.default_answer_tokens,
        };
        Session::new(agent, &ctx, &input).run().await
    }
}
