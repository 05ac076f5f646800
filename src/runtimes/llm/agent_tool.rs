//! Agent tools: another agent of the task's namespace, called as a sub-task through the
//! orchestrator. The sub-task is submitted as the task's submitter, so an LLM agent can
//! reach only what its submitter could (the namespace) and what its definition grants
//! (the agents and capabilities listed as tools).

use mark1_actors::domain::{TaskRequest, TaskState, ToolDef};
use mark1_actors::ports::model::ToolSpec;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::tools::{any_object, ArgumentSchema, Tool, ToolCallContext, ToolError};

pub struct AgentTool {
    spec: ToolSpec,
    target: Target,
    schema: ArgumentSchema,
}

enum Target {
    Agent(String),
    Capabilities(Vec<String>),
}

impl AgentTool {
    /// `def` is a validated `ToolDef::Agent`.
    pub fn new(def: &ToolDef) -> Result<Self, String> {
        let ToolDef::Agent { name, agent, capabilities, description, parameters } = def else {
            unreachable!("AgentTool is built from agent tool definitions")
        };
        let target = match agent {
            Some(agent) => Target::Agent(agent.clone()),
            None => Target::Capabilities(capabilities.clone()),
        };
        let description = if description.is_empty() {
            match &target {
                Target::Agent(agent) => format!("Runs the agent '{agent}' with the arguments as its input."),
                Target::Capabilities(c) => {
                    format!(
                        "Runs an agent with the capabilities {} with the arguments as its input.",
                        c.join(", ")
                    )
                }
            }
        } else {
            description.clone()
        };
        let parameters = parameters.clone().unwrap_or_else(any_object);
        let spec = ToolSpec {
            name: name.clone().or_else(|| agent.clone()).expect("validated: a name or an agent"),
            description,
            parameters: parameters.clone(),
        };
        Ok(AgentTool { spec, target, schema: ArgumentSchema::compile(&parameters)? })
    }
}

#[async_trait::async_trait]
impl Tool for AgentTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(&self, context: &ToolCallContext<'_>, arguments: Value) -> Result<Value, ToolError> {
        self.schema.check(&arguments)?;
        let task = context.task;
        let Some(client) = &task.tasks else {
            return Err(ToolError::Failed(
                "this task runs outside a node: no orchestrator to call agents".into(),
            ));
        };
        // The step keeps a call the model repeats later (to retry a failure) from finding
        // the failed sub-task again.
        let digest = call_digest(&self.spec.name, &arguments);
        let key = format!("{}:tool:{}:{digest}", task.idempotency_key, context.step);
        let mut request = match &self.target {
            Target::Agent(agent) => TaskRequest::to_agent(agent.clone(), arguments),
            Target::Capabilities(capabilities) => {
                TaskRequest::to_capabilities(capabilities.clone(), arguments)
            }
        }
        .namespace(&*task.namespace)
        .idempotency_key(key);
        request.submitter = task.submitter.clone();
        request.deadline = task.deadline;
        request.traceparent = task.traceparent.clone();
        let record = match client.run(request, &task.cancel).await {
            None => return Err(ToolError::Cancelled),
            Some(Err(error)) => return Err(ToolError::Failed(error.to_string())),
            Some(Ok(record)) => record,
        };
        match record.state {
            TaskState::Succeeded => Ok(record.output.map_or(Value::Null, std::sync::Arc::unwrap_or_clone)),
            state => Err(ToolError::Failed(format!(
                "task {} ended {}: {}",
                record.id,
                state.as_str(),
                record.error.as_deref().unwrap_or("no reason given")
            ))),
        }
    }
}

/// Names a tool call by what it asks, so a task re-run after a crash that asks the same
/// again at the same step finds the sub-task it submitted before (the idempotency key)
/// instead of running it twice, while a different call gets a task of its own.
fn call_digest(tool: &str, arguments: &Value) -> String {
    let mut hash = Sha256::new();
    hash.update(tool.as_bytes());
    hash.update([0]);
    hash.update(arguments.to_string().as_bytes());
    hash.finalize()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_call_is_named_by_tool_and_arguments() {
        let a = call_digest("search", &json!({"q": "rust"}));
        assert_eq!(a, call_digest("search", &json!({"q": "rust"})));
        assert_ne!(a, call_digest("search", &json!({"q": "go"})));
        assert_ne!(a, call_digest("lookup", &json!({"q": "rust"})));
        assert_eq!(a.len(), 16);
    }
}
