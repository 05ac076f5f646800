//! The `ModelProvider` port: one LLM backend (a local Ollama, an OpenAI-compatible server).
//!
//! The types here are Mark-1's own vocabulary for model calls. Each adapter translates
//! them to its wire protocol, and the gateways translate their wire protocols to them, so
//! an OpenAI-shaped request can be served by Ollama and the other way round.

use std::time::Duration;

use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a model can do. Discovery fills it from provider metadata; config may override it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelCapabilities {
    pub chat: bool,
    pub tools: bool,
    pub embeddings: bool,
    pub vision: bool,
}

impl ModelCapabilities {
    /// The names of the capabilities `needed` asks for that are missing here.
    pub fn missing(&self, needed: &ModelCapabilities) -> Vec<&'static str> {
        [
            ("chat", needed.chat && !self.chat),
            ("tools", needed.tools && !self.tools),
            ("embeddings", needed.embeddings && !self.embeddings),
            ("vision", needed.vision && !self.vision),
        ]
        .into_iter()
        .filter_map(|(name, missing)| missing.then_some(name))
        .collect()
    }
}

/// Price of a model in cost units (the operator's currency) per million tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelPrice {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
}

impl ModelPrice {
    pub fn cost(&self, usage: &Usage) -> f64 {
        (f64::from(usage.prompt_tokens) * self.input_per_mtok
            + f64::from(usage.completion_tokens) * self.output_per_mtok)
            / 1_000_000.0
    }
}

/// One model one provider serves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub id: String,
    pub provider: String,
    #[serde(default)]
    pub context_length: Option<u32>,
    #[serde(default)]
    pub capabilities: ModelCapabilities,
    #[serde(default)]
    pub price: ModelPrice,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
}

/// A tool the model asked to call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The provider's id for the call (Ollama has none; adapters make one up).
    pub id: String,
    pub name: String,
    /// The arguments as JSON; adapters parse providers' argument strings.
    pub arguments: Value,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    #[serde(default)]
    pub content: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// On a `tool` message: the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// Images as base64, for vision models.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
}

impl ChatMessage {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        ChatMessage {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
            images: Vec::new(),
        }
    }
}

/// A tool offered to the model: a name, what it does, and a JSON Schema of its arguments.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub parameters: Value,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GenerationOptions {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    /// Most tokens to generate; also what a budget reserves for the answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
}

/// Constrains the answer's shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type", content = "schema")]
pub enum ResponseFormat {
    /// Any JSON value.
    Json,
    /// JSON matching this schema.
    JsonSchema(Value),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// A bare model id, or `provider/model` to pin one provider (the router strips the
    /// provider before the adapter sees it).
    pub model: String,
    pub messages: Vec<ChatMessage>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolSpec>,
    #[serde(default)]
    pub options: GenerationOptions,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<ResponseFormat>,
}

impl ChatRequest {
    pub fn new(model: impl Into<String>, messages: Vec<ChatMessage>) -> Self {
        ChatRequest {
            model: model.into(),
            messages,
            tools: Vec::new(),
            options: GenerationOptions::default(),
            format: None,
        }
    }
}

/// A raw completion (Ollama's `/api/generate`). Providers without one answer it as a chat.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenerateRequest {
    pub model: String,
    pub prompt: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    #[serde(default)]
    pub options: GenerationOptions,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<ResponseFormat>,
}

impl GenerateRequest {
    /// The same request as a chat: the system prompt, then the prompt as the user's turn.
    pub fn into_chat(self) -> ChatRequest {
        let mut messages = Vec::with_capacity(2);
        if let Some(system) = self.system {
            messages.push(ChatMessage::new(Role::System, system));
        }
        messages.push(ChatMessage { images: self.images, ..ChatMessage::new(Role::User, self.prompt) });
        ChatRequest {
            model: self.model,
            messages,
            tools: Vec::new(),
            options: self.options,
            format: self.format,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

impl Usage {
    pub fn total(&self) -> u64 {
        u64::from(self.prompt_tokens) + u64::from(self.completion_tokens)
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    #[default]
    Stop,
    /// The token limit cut the answer short.
    Length,
    /// The answer is a request to call tools.
    ToolCalls,
    ContentFilter,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    pub provider: String,
    pub model: String,
    pub message: ChatMessage,
    pub usage: Usage,
    pub finish_reason: FinishReason,
    /// What the call cost at the model's configured price. Providers leave it 0; the
    /// router fills it in, so callers with their own caps (LLM agents) can count.
    #[serde(default)]
    pub cost: f64,
}

/// One piece of a streamed answer. A stream ends with exactly one `Done`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum ChatChunk {
    Delta {
        content: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCall>,
    },
    Done {
        usage: Usage,
        finish_reason: FinishReason,
    },
}

pub type ChatStream = BoxStream<'static, Result<ChatChunk, ModelError>>;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EmbedRequest {
    pub model: String,
    pub input: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EmbedResponse {
    pub provider: String,
    pub model: String,
    pub embeddings: Vec<Vec<f32>>,
    pub usage: Usage,
}

/// Why a model call failed. [`ModelError::is_provider_fault`] separates the provider's
/// failures (tried elsewhere, counted by its circuit breaker) from the caller's.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ModelError {
    #[error(
        "no provider serves model '{0}' (GET /v1/models lists them; `provider/model` pins one provider)"
    )]
    UnknownModel(String),
    #[error("no provider of model '{model}' can serve this request: {reason}")]
    NotCapable { model: String, reason: String },
    #[error("provider '{provider}' is unavailable: {reason}")]
    Unavailable { provider: String, reason: String },
    #[error("provider '{provider}' gave no answer within {after:?}")]
    Timeout { provider: String, after: Duration },
    #[error("provider '{provider}' answered with something that is not a valid response: {reason}")]
    InvalidResponse { provider: String, reason: String },
    #[error("provider '{provider}' rejected the request ({status}): {reason}")]
    Rejected { provider: String, status: u16, reason: String },
    #[error("provider '{provider}' has {limit} calls in flight; try again shortly")]
    Overloaded { provider: String, limit: usize },
    #[error(
        "namespace '{namespace}' has exhausted its {resource} budget for this period ({used} of {limit} used); \
         it renews with the next models.budget_period, or raise models.namespaces.{namespace}.{key}",
        key = .resource.key()
    )]
    BudgetExhausted { namespace: String, resource: BudgetResource, used: f64, limit: f64 },
    #[error("the model call was cancelled")]
    Cancelled,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BudgetResource {
    Tokens,
    Cost,
}

impl BudgetResource {
    /// Its key under `[models.namespaces.<namespace>]`.
    pub fn key(self) -> &'static str {
        match self {
            BudgetResource::Tokens => "tokens",
            BudgetResource::Cost => "cost",
        }
    }
}

impl std::fmt::Display for BudgetResource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BudgetResource::Tokens => "token",
            BudgetResource::Cost => "cost",
        })
    }
}

impl ModelError {
    /// The provider failed (down, slow, garbage, overloaded), not the request: another
    /// provider may succeed, and the failure counts against this one's circuit breaker.
    pub fn is_provider_fault(&self) -> bool {
        match self {
            ModelError::Unavailable { .. }
            | ModelError::Timeout { .. }
            | ModelError::InvalidResponse { .. }
            | ModelError::Overloaded { .. } => true,
            // 408, 429 and 5xx are the server's trouble; other statuses are the request's.
            ModelError::Rejected { status, .. } => *status == 408 || *status == 429 || *status >= 500,
            _ => false,
        }
    }

    /// Which variant this is, without its details (a metric label).
    pub fn kind(&self) -> ModelErrorKind {
        match self {
            ModelError::UnknownModel(_) => ModelErrorKind::UnknownModel,
            ModelError::NotCapable { .. } => ModelErrorKind::NotCapable,
            ModelError::Unavailable { .. } => ModelErrorKind::Unavailable,
            ModelError::Timeout { .. } => ModelErrorKind::Timeout,
            ModelError::InvalidResponse { .. } => ModelErrorKind::InvalidResponse,
            ModelError::Rejected { .. } => ModelErrorKind::Rejected,
            ModelError::Overloaded { .. } => ModelErrorKind::Overloaded,
            ModelError::BudgetExhausted { .. } => ModelErrorKind::BudgetExhausted,
            ModelError::Cancelled => ModelErrorKind::Cancelled,
        }
    }
}

/// The variants of [`ModelError`] without their details: a small fixed set, so a metric
/// labelled by it cannot grow with what callers or providers send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ModelErrorKind {
    UnknownModel,
    NotCapable,
    Unavailable,
    Timeout,
    InvalidResponse,
    Rejected,
    Overloaded,
    BudgetExhausted,
    Cancelled,
}

impl ModelErrorKind {
    /// Every kind, in declaration order (so `kind as usize` indexes it).
    pub const ALL: [ModelErrorKind; 9] = [
        ModelErrorKind::UnknownModel,
        ModelErrorKind::NotCapable,
        ModelErrorKind::Unavailable,
        ModelErrorKind::Timeout,
        ModelErrorKind::InvalidResponse,
        ModelErrorKind::Rejected,
        ModelErrorKind::Overloaded,
        ModelErrorKind::BudgetExhausted,
        ModelErrorKind::Cancelled,
    ];

    /// The variant's name in snake_case.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelErrorKind::UnknownModel => "unknown_model",
            ModelErrorKind::NotCapable => "not_capable",
            ModelErrorKind::Unavailable => "unavailable",
            ModelErrorKind::Timeout => "timeout",
            ModelErrorKind::InvalidResponse => "invalid_response",
            ModelErrorKind::Rejected => "rejected",
            ModelErrorKind::Overloaded => "overloaded",
            ModelErrorKind::BudgetExhausted => "budget_exhausted",
            ModelErrorKind::Cancelled => "cancelled",
        }
    }
}

/// One LLM backend. Adapters translate to their wire protocol and map every failure to a
/// [`ModelError`]; they never retry or fall back (the router does).
#[async_trait::async_trait]
pub trait ModelProvider: Send + Sync + 'static {
    fn name(&self) -> &str;
    async fn models(&self) -> Result<Vec<ModelInfo>, ModelError>;

    /// Whether the provider answers, as cheaply as it can tell (the health check calls
    /// this every few seconds); by default, listing its models.
    async fn ping(&self) -> Result<(), ModelError> {
        self.models().await.map(drop)
    }

    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, ModelError>;
    async fn chat_stream(&self, request: ChatRequest) -> Result<ChatStream, ModelError>;
    async fn embed(&self, request: EmbedRequest) -> Result<EmbedResponse, ModelError>;

    /// A raw completion; answered as a chat unless the provider has its own.
    async fn generate(&self, request: GenerateRequest) -> Result<ChatResponse, ModelError> {
        self.chat(request.into_chat()).await
    }

    async fn generate_stream(&self, request: GenerateRequest) -> Result<ChatStream, ModelError> {
        self.chat_stream(request.into_chat()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_kinds_index_their_list_and_name_their_variant() {
        for (i, kind) in ModelErrorKind::ALL.into_iter().enumerate() {
            assert_eq!(kind as usize, i, "{kind:?}");
        }
        let timeout = ModelError::Timeout { provider: "p".into(), after: Duration::from_secs(1) };
        assert_eq!(timeout.kind().as_str(), "timeout");
        let rejected = ModelError::Rejected { provider: "p".into(), status: 400, reason: "no".into() };
        assert_eq!(rejected.kind(), ModelErrorKind::Rejected);
        assert_eq!(ModelError::UnknownModel("m".into()).kind().as_str(), "unknown_model");
        assert_eq!(ModelError::Cancelled.kind().as_str(), "cancelled");
    }
}
