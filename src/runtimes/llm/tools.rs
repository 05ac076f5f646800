//! What an LLM agent's model may call: the [`Tool`] trait and the [`Toolbox`] of one
//! agent, built from its `tools` definitions.

use std::collections::HashMap;
use std::sync::Arc;

use mark1_actors::domain::{LlmSpec, ToolDef};
use mark1_actors::ports::model::ToolSpec;
use mark1_actors::ports::TaskContext;
use serde_json::{json, Value};

use super::agent_tool::AgentTool;
use super::http_tool::HttpTool;
use super::mcp::McpServers;

/// Why a tool call gave no result. The model hears it as the call's answer and may try
/// something else; none of these ends the task.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The call was refused before anything was sent (a host outside the allow-list, a
    /// private address, arguments that break the tool's schema).
    #[error("refused: {0}")]
    Refused(String),
    /// The tool ran and failed.
    #[error("failed: {0}")]
    Failed(String),
    /// The task was cancelled while the tool ran.
    #[error("cancelled")]
    Cancelled,
}

/// Where a tool call happens: the task, and which step and call of its loop.
pub struct ToolCallContext<'a> {
    pub task: &'a TaskContext,
    /// The model call (1-based) whose answer asked for the tool.
    pub step: u32,
}

#[async_trait::async_trait]
pub trait Tool: Send + Sync {
    /// The name, description and argument schema offered to the model.
    fn spec(&self) -> &ToolSpec;

    async fn call(&self, context: &ToolCallContext<'_>, arguments: Value) -> Result<Value, ToolError>;
}

/// The tools of one agent, by name.
#[derive(Clone, Default)]
pub struct Toolbox {
    tools: HashMap<String, Arc<dyn Tool>>,
    /// In definition order, for a stable request to the model.
    specs: Vec<ToolSpec>,
}

impl Toolbox {
    /// The tools `spec` defines. MCP servers are asked for their tools now, so a server
    /// that is down or a tool it does not have fails the agent's start, not a task.
    pub async fn build(spec: &LlmSpec, mcp: &McpServers) -> Result<Toolbox, String> {
        let mut toolbox = Toolbox::default();
        for (i, def) in spec.tools.iter().enumerate() {
            let tools: Vec<Arc<dyn Tool>> = match def {
                ToolDef::Agent { .. } => {
                    vec![Arc::new(AgentTool::new(def).map_err(|e| format!("llm.tools[{i}]: {e}"))?)]
                }
                ToolDef::Http { .. } => {
                    vec![Arc::new(HttpTool::new(def).map_err(|e| format!("llm.tools[{i}]: {e}"))?)]
                }
                ToolDef::Mcp { server, tools } => {
                    mcp.tools(server, tools).await.map_err(|e| format!("llm.tools[{i}]: {e}"))?
                }
            };
            for tool in tools {
                toolbox.add(tool).map_err(|e| format!("llm.tools[{i}]: {e}"))?;
            }
        }
        Ok(toolbox)
    }

    fn add(&mut self, tool: Arc<dyn Tool>) -> Result<(), String> {
        let name = tool.spec().name.clone();
        if self.tools.contains_key(&name) {
            return Err(format!("two tools are named '{name}'"));
        }
        self.specs.push(tool.spec().clone());
        self.tools.insert(name, tool);
        Ok(())
    }

    pub fn specs(&self) -> &[ToolSpec] {
        &self.specs
    }

    /// Runs the call the model asked for; an unknown tool is an error the model hears.
    pub async fn call(
        &self,
        context: &ToolCallContext<'_>,
        name: &str,
        arguments: Value,
    ) -> Result<Value, ToolError> {
        match self.tools.get(name) {
            Some(tool) => tool.call(context, arguments).await,
            None => Err(ToolError::Refused(format!(
                "there is no tool '{name}'; the tools are: {}",
                self.specs.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
            ))),
        }
    }
}

/// The argument schema of a tool defined without one: any object.
pub fn any_object() -> Value {
    json!({"type": "object"})
}

/// A tool's argument schema, compiled once. Models do not always keep to the schema
/// they were shown; a call that breaks it is refused with the reasons, so the model can
/// correct itself instead of the tool seeing garbage.
pub struct ArgumentSchema(jsonschema::Validator);

impl ArgumentSchema {
    pub fn compile(schema: &Value) -> Result<Self, String> {
        jsonschema::validator_for(schema)
            .map(ArgumentSchema)
            .map_err(|e| format!("parameters: not a usable JSON Schema: {e}"))
    }

    pub fn check(&self, arguments: &Value) -> Result<(), ToolError> {
        let problems: Vec<String> = self
            .0
            .iter_errors(arguments)
            .take(5)
            .map(|e| format!("{} at '{}'", e, e.instance_path().as_str()))
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ToolError::Refused(format!(
                "the arguments do not match the tool's schema: {}",
                problems.join("; ")
            )))
        }
    }
}

/// The tool message the model reads: the result as text (strings as they are, other
/// JSON compact), or the error.
pub fn tool_message_content(result: &Result<Value, ToolError>) -> String {
    match result {
        Ok(Value::String(text)) => text.clone(),
        Ok(value) => value.to_string(),
        Err(error) => json!({"error": error.to_string()}).to_string(),
    }
}
