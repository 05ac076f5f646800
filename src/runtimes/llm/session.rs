//! One task of an LLM agent: the tool-calling loop through the model router.
//!
//! Each step asks the model with the conversation so far; an answer that calls tools
//! has them run (concurrently) and their results appended, and the loop asks again; an
//! answer without tool calls is the final answer, checked against the output schema
//! with one repair attempt. The task's token and cost caps are checked before every
//! call; cancelling the task drops the call in flight, which cancels it in the router
//! and releases its budget reservation.

use std::time::SystemTime;

use mark1_actors::domain::LlmSpec;
use mark1_actors::models::{CallContext, ModelCall, ModelRouter};
use mark1_actors::ports::model::{
    ChatMessage, ChatRequest, ChatResponse, GenerationOptions, ModelError, ResponseFormat, Role,
};
use mark1_actors::ports::{AgentError, TaskContext};
use serde_json::{json, Value};

use super::output::OutputSchema;
use super::tools::{tool_message_content, ToolCallContext, ToolError, Toolbox};

/// What an agent's definition gives every task.
pub struct Agent<'a> {
    pub spec: &'a LlmSpec,
    /// `<namespace>/<name>`.
    pub key: &'a str,
    pub name: &'a str,
    pub router: &'a ModelRouter,
    pub toolbox: &'a Toolbox,
    pub output: Option<&'a OutputSchema>,
    /// Most tokens of an answer when the agent sets no `max_answer_tokens` (the router's
    /// `models.default_max_tokens`).
    pub default_answer_tokens: u32,
}

pub struct Session<'a> {
    agent: Agent<'a>,
    task: &'a TaskContext,
    messages: Vec<ChatMessage>,
    tokens: u64,
    cost: f64,
}

impl<'a> Session<'a> {
    pub fn new(agent: Agent<'a>, task: &'a TaskContext, input: &Value) -> Self {
        let mut system = agent.spec.system.clone();
        if let Some(output) = agent.output {
            if !system.is_empty() {
                system.push_str("\n\n");
            }
            system.push_str(&format!(
                "Your final answer must be only a JSON value matching this JSON Schema, with no other text:\n{}",
                output.schema()
            ));
        }
        let mut messages = Vec::with_capacity(4);
        if !system.is_empty() {
            messages.push(ChatMessage::new(Role::System, system));
        }
        messages.push(ChatMessage::new(Role::User, user_prompt(input)));
        Session { agent, task, messages, tokens: 0, cost: 0.0 }
    }

    pub async fn run(mut self) -> Result<Value, AgentError> {
        let max_steps = self.agent.spec.max_steps;
        for step in 1..=max_steps {
            let response = self.ask(true).await?;
            let message = response.message;
            if message.tool_calls.is_empty() {
                return self.finish(message.content).await;
            }
            if step == max_steps {
                // Their answers could not be shown to the model: do not run them.
                break;
            }
            let names: Vec<&str> = message.tool_calls.iter().map(|c| c.name.as_str()).collect();
            self.task.report_progress(json!({"step": step, "tool_calls": names}));
            let answers = self.call_tools(step, &message).await?;
            self.messages.push(message);
            self.messages.extend(answers);
        }
        Err(AgentError::failed(format!(
            "step limit: {max_steps} model calls without a final answer (llm.max_steps)"
        )))
    }

    /// Runs the tool calls of one answer, concurrently; each result (or error) becomes
    /// a `tool` message for the model.
    async fn call_tools(&self, step: u32, message: &ChatMessage) -> Result<Vec<ChatMessage>, AgentError> {
        let context = ToolCallContext { task: self.task, step };
        let calls = message.tool_calls.iter().map(|call| async {
            let result = self.agent.toolbox.call(&context, &call.name, call.arguments.clone()).await;
            if let Err(error) = &result {
                tracing::debug!(agent = %self.agent.key, tool = %call.name, %error, "tool call failed");
            }
            let cancelled = matches!(result, Err(ToolError::Cancelled));
            let content = tool_message_content(&result);
            (
                cancelled,
                ChatMessage { tool_call_id: Some(call.id.clone()), ..ChatMessage::new(Role::Tool, content) },
            )
        });
        let answers = futures::future::join_all(calls).await;
        if self.task.cancel.is_cancelled() || answers.iter().any(|(cancelled, _)| *cancelled) {
            return Err(AgentError::Cancelled);
        }
        Ok(answers.into_iter().map(|(_, message)| message).collect())
    }

    /// The final answer: as it is, or checked against the output schema, with one
    /// repair attempt that shows the model what was wrong.
    async fn finish(&mut self, answer: String) -> Result<Value, AgentError> {
        let Some(output) = self.agent.output else { return Ok(Value::String(answer)) };
        let problems = match output.check(&answer) {
            Ok(value) => return Ok(value),
            Err(problems) => problems,
        };
        self.messages.push(ChatMessage::new(Role::Assistant, answer));
        self.messages.push(ChatMessage::new(
            Role::User,
            format!(
                "{problems}. Answer again with only a JSON value matching this JSON Schema:\n{}",
                output.schema()
            ),
        ));
        let repaired = self.ask(false).await?.message.content;
        output.check(&repaired).map_err(|problems| AgentError::Failed {
            message: format!("output_schema: {problems} (after one repair attempt)"),
            retryable: true,
        })
    }

    /// One model call: within the caps, through the model and then its fallbacks.
    async fn ask(&mut self, offer_tools: bool) -> Result<ChatResponse, AgentError> {
        let spec = self.agent.spec;
        if let Some(max_cost) = spec.max_cost {
            if self.cost >= max_cost {
                return Err(AgentError::failed(format!(
                    "cost cap: this task used {:.6} of its {max_cost} (llm.max_cost)",
                    self.cost
                )));
            }
        }
        let mut last_error = None;
        for model in std::iter::once(&spec.model).chain(&spec.fallback_models) {
            let call = ModelCall::Chat(self.request(model, offer_tools));
            let call = self.within_token_cap(call)?;
            let answer = tokio::select! {
                biased;
                _ = self.task.cancel.cancelled() => return Err(AgentError::Cancelled),
                answer = self.agent.router.call(call, self.call_context()) => answer,
            };
            match answer {
                Ok(output) => {
                    let response = output.into_response();
                    self.tokens += response.usage.total();
                    self.cost += response.cost;
                    return Ok(response);
                }
                Err(error) if tries_another_model(&error) => {
                    tracing::debug!(agent = %self.agent.key, %model, %error, "model failed; trying the next");
                    last_error = Some(error);
                }
                Err(error) => return Err(agent_error(error)),
            }
        }
        Err(agent_error(last_error.expect("at least the agent's own model was tried")))
    }

    fn request(&self, model: &str, offer_tools: bool) -> ChatRequest {
        let spec = self.agent.spec;
        let tools = if offer_tools { self.agent.toolbox.specs().to_vec() } else { Vec::new() };
        // Constrained decoding would keep the model from calling tools, so the schema
        // is enforced that way only when none are offered; otherwise the prompt and the
        // check after the answer do it.
        let format = match self.agent.output {
            Some(output) if tools.is_empty() => Some(ResponseFormat::JsonSchema(output.schema().clone())),
            _ => None,
        };
        ChatRequest {
            model: model.to_string(),
            messages: self.messages.clone(),
            tools,
            options: GenerationOptions {
                temperature: spec.temperature,
                max_tokens: spec.max_answer_tokens,
                ..GenerationOptions::default()
            },
            format,
        }
    }

    /// Fits the call into what is left of the task's token cap: its answer may use at
    /// most what the (estimated) prompt leaves, and never more than an answer's usual
    /// size (asking for all that is left would reserve it from the namespace's budget
    /// and could exceed the model's context or output limit).
    fn within_token_cap(&self, call: ModelCall) -> Result<ModelCall, AgentError> {
        let Some(max_tokens) = self.agent.spec.max_tokens else { return Ok(call) };
        let left = max_tokens.saturating_sub(self.tokens);
        let prompt = u64::from(call.prompt_tokens());
        if prompt >= left {
            return Err(AgentError::failed(format!(
                "token cap: this task used {} of its {max_tokens} tokens and the next call needs about {prompt} \
                 (llm.max_tokens)",
                self.tokens
            )));
        }
        let ModelCall::Chat(mut request) = call else { unreachable!("sessions make chat calls") };
        let room = u32::try_from(left - prompt).unwrap_or(u32::MAX);
        let answer = request.options.max_tokens.unwrap_or(self.agent.default_answer_tokens);
        request.options.max_tokens = Some(answer.min(room));
        Ok(ModelCall::Chat(request))
    }

    fn call_context(&self) -> CallContext {
        CallContext {
            namespace: self.task.namespace.to_string(),
            task: Some(self.task.task_id),
            run: None,
            agent: Some(self.agent.name.to_string()),
            deadline: self.task.deadline.map(instant_of),
        }
    }
}

/// The task input as the user's turn: a string as it is, anything else as JSON.
fn user_prompt(input: &Value) -> String {
    match input {
        Value::String(text) => text.clone(),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    }
}

/// Errors after which the next model in `fallback_models` may do better: the model is
/// not there or not fit, or its providers failed (the errors that are retryable).
fn tries_another_model(error: &ModelError) -> bool {
    error.is_provider_fault() || matches!(error, ModelError::UnknownModel(_) | ModelError::NotCapable { .. })
}

/// A model failure as the task's: what another attempt could fix is retryable.
fn agent_error(error: ModelError) -> AgentError {
    match error {
        ModelError::Cancelled => AgentError::Cancelled,
        error if error.is_provider_fault() => AgentError::retryable(format!("model call failed: {error}")),
        error => AgentError::failed(format!("model call failed: {error}")),
    }
}

fn instant_of(deadline: SystemTime) -> tokio::time::Instant {
    let left = deadline.duration_since(SystemTime::now()).unwrap_or_default();
    tokio::time::Instant::now() + left
}
