//! LLM agents: a system prompt, a model, tools, and the limits of one task's loop.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A declarative agent that answers a task with a tool-calling loop through the model
/// router (DESIGN §3).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmSpec {
    /// The model: a bare id routed across every provider serving it, or
    /// `provider/model` to pin one.
    pub model: String,
    /// Tried in order when the model is unknown, not capable, or every provider serving
    /// it is unavailable.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallback_models: Vec<String>,
    /// The system prompt.
    #[serde(default)]
    pub system: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolDef>,
    /// Model calls one task may make (each answer with tool calls is one step).
    #[serde(default = "default_max_steps")]
    pub max_steps: u32,
    /// Tokens (prompt and answer, every step) one task may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// Cost (at the models' configured prices) one task may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cost: Option<f64>,
    /// Most tokens of one answer; the router's default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_answer_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// A JSON Schema the final answer must match; the answer is then the parsed JSON.
    /// An answer that does not match gets one repair attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
}

fn default_max_steps() -> u32 {
    8
}

impl LlmSpec {
    pub fn new(model: impl Into<String>) -> Self {
        LlmSpec {
            model: model.into(),
            fallback_models: Vec::new(),
            system: String::new(),
            tools: Vec::new(),
            max_steps: default_max_steps(),
            max_tokens: None,
            max_cost: None,
            max_answer_tokens: None,
            temperature: None,
            output_schema: None,
        }
    }

    /// Checks what can be checked without the outside world. Errors name the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.model.trim().is_empty() {
            return Err("llm.model: required (a model id, or provider/model)".into());
        }
        if self.max_steps == 0 {
            return Err("llm.max_steps: must be at least 1".into());
        }
        if self.max_tokens == Some(0) {
            return Err("llm.max_tokens: must be at least 1 when set".into());
        }
        if let Some(cost) = self.max_cost {
            if !(cost.is_finite() && cost > 0.0) {
                return Err("llm.max_cost: must be a finite number > 0 when set".into());
            }
        }
        if let Some(schema) = &self.output_schema {
            if !schema.is_object() {
                return Err("llm.output_schema: must be a JSON Schema (an object)".into());
            }
            // Compiled offline: a schema that names remote documents is refused here.
            jsonschema::validator_for(schema)
                .map_err(|e| format!("llm.output_schema: not a usable JSON Schema: {e}"))?;
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, tool) in self.tools.iter().enumerate() {
            tool.validate().map_err(|e| format!("llm.tools[{i}]: {e}"))?;
            if let Some(name) = tool.name() {
                if !names.insert(name) {
                    return Err(format!("llm.tools[{i}]: tool name '{name}' is used twice"));
                }
            }
        }
        Ok(())
    }
}

/// A tool an LLM agent may call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ToolDef {
    /// Another agent of the task's namespace, called through the orchestrator as a
    /// sub-task submitted under the task's submitter.
    Agent {
        /// Tool name shown to the model; the agent's name when unset.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// The named agent…
        #[serde(default, skip_serializing_if = "Option::is_none")]
        agent: Option<String>,
        /// …or any agent with these capabilities.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        capabilities: Vec<String>,
        #[serde(default)]
        description: String,
        /// JSON Schema of the sub-task's input; any object when unset.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parameters: Option<Value>,
    },
    /// An HTTP endpoint. GET sends the arguments as the query string, other methods as a
    /// JSON body; the answer's body is the tool's result.
    Http {
        name: String,
        #[serde(default)]
        description: String,
        /// The endpoint; a template over the arguments (`{{ city }}`), rendered then
        /// checked against `allow_hosts` before anything is sent.
        url: String,
        #[serde(default = "default_method")]
        method: String,
        /// Host names (or `*.example.com`) the rendered URL may name.
        allow_hosts: Vec<String>,
        /// Lets the tool reach private, link-local and loopback addresses. Off by
        /// default, so a model cannot be talked into probing the node's network.
        #[serde(default)]
        allow_private: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parameters: Option<Value>,
    },
    /// The tools of a configured MCP server (`[mcp.servers.<server>]`).
    Mcp {
        server: String,
        /// Only these of the server's tools; all when empty.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tools: Vec<String>,
    },
}

fn default_method() -> String {
    "GET".into()
}

impl ToolDef {
    /// The name the model calls the tool by; MCP tools are named by their server.
    pub fn name(&self) -> Option<&str> {
        match self {
            ToolDef::Agent { name, agent, .. } => name.as_deref().or(agent.as_deref()),
            ToolDef::Http { name, .. } => Some(name),
            ToolDef::Mcp { .. } => None,
        }
    }

    fn validate(&self) -> Result<(), String> {
        if let Some(name) = self.name() {
            if !valid_tool_name(name) {
                return Err(format!("tool name '{name}' must match [A-Za-z0-9_-]{{1,64}}"));
            }
        }
        match self {
            ToolDef::Agent { name, agent, capabilities, parameters, .. } => {
                match (agent, capabilities.is_empty()) {
                    (Some(_), false) => return Err("give agent or capabilities, not both".into()),
                    (None, true) => return Err("an agent tool needs agent or capabilities".into()),
                    (None, false) if name.is_none() => {
                        return Err("a tool over capabilities needs a name".into())
                    }
                    _ => {}
                }
                check_parameters(parameters.as_ref())
            }
            ToolDef::Http { url, method, allow_hosts, parameters, .. } => {
                if url.trim().is_empty() {
                    return Err("url: required".into());
                }
                if !matches!(
                    method.to_ascii_uppercase().as_str(),
                    "GET" | "POST" | "PUT" | "PATCH" | "DELETE"
                ) {
                    return Err(format!("method: {method:?} is not one of GET, POST, PUT, PATCH, DELETE"));
                }
                if allow_hosts.is_empty() {
                    return Err("allow_hosts: name at least one host the tool may call".into());
                }
                check_parameters(parameters.as_ref())
            }
            ToolDef::Mcp { server, .. } if server.is_empty() => Err("server: required".into()),
            ToolDef::Mcp { .. } => Ok(()),
        }
    }
}

fn check_parameters(parameters: Option<&Value>) -> Result<(), String> {
    match parameters {
        Some(p) if !p.is_object() => Err("parameters: must be a JSON Schema object".into()),
        _ => Ok(()),
    }
}

/// What OpenAI-compatible servers accept as a function name.
pub fn valid_tool_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(tools: Value) -> Result<LlmSpec, String> {
        let spec: LlmSpec =
            serde_json::from_value(json!({"model": "m", "tools": tools})).map_err(|e| e.to_string())?;
        spec.validate().map(|()| spec)
    }

    #[test]
    fn tools_parse_by_kind_and_validate() {
        let ok = spec(json!([
            {"kind": "agent", "agent": "search"},
            {"kind": "agent", "name": "review", "capabilities": ["code.review"]},
            {"kind": "http", "name": "weather", "url": "https://api.example.com/w?c={{ city }}",
             "allow_hosts": ["api.example.com"]},
            {"kind": "mcp", "server": "files"}
        ]))
        .unwrap();
        assert_eq!(ok.max_steps, 8);
        assert_eq!(ok.tools[0].name(), Some("search"));

        let err = |tools| spec(tools).unwrap_err();
        assert!(err(json!([{"kind": "agent"}])).contains("needs agent or capabilities"));
        assert!(err(json!([{"kind": "agent", "capabilities": ["x"]}])).contains("needs a name"));
        assert!(err(json!([{"kind": "http", "name": "w", "url": "http://x", "allow_hosts": []}]))
            .contains("allow_hosts"));
        assert!(err(json!([{"kind": "agent", "agent": "a"}, {"kind": "agent", "agent": "a"}]))
            .contains("used twice"));
        assert!(err(json!([{"kind": "agent", "agent": "a", "name": "has space"}])).contains("must match"));
        assert!(err(json!([{"kind": "shell"}])).contains("unknown variant"));
        assert!(err(json!([{"kind": "agent", "agent": "a", "typo": 1}])).contains("unknown field"));
    }

    #[test]
    fn limits_are_checked() {
        let with = |patch: Value| {
            let mut value = json!({"model": "m"});
            value.as_object_mut().unwrap().extend(patch.as_object().unwrap().clone());
            serde_json::from_value::<LlmSpec>(value).unwrap().validate()
        };
        assert!(with(json!({"max_steps": 0})).unwrap_err().contains("llm.max_steps"));
        assert!(with(json!({"max_cost": -1.0})).unwrap_err().contains("llm.max_cost"));
        assert!(with(json!({"model": " "})).unwrap_err().contains("llm.model"));
        assert!(with(json!({"output_schema": "string"})).unwrap_err().contains("llm.output_schema"));
        assert!(with(json!({"max_tokens": 1000, "max_cost": 0.5})).is_ok());
    }
}
