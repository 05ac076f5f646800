//! The `ModelProvider` port: one LLM backend (Ollama, an OpenAI-compatible server).
//! Real providers arrive with the models issue; the router already routes over this port.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub id: String,
    pub provider: String,
    #[serde(default)]
    pub context_length: Option<u32>,
    #[serde(default)]
    pub capabilities: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// A bare model id, or `provider/model` to pin one provider.
    pub model: String,
    pub messages: Vec<ChatMessage>,
    pub namespace: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    pub provider: String,
    pub model: String,
    pub message: ChatMessage,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ModelError {
    #[error("no provider serves model '{0}'")]
    UnknownModel(String),
    #[error("provider '{provider}' is unavailable: {reason}")]
    Unavailable { provider: String, reason: String },
    #[error("provider '{provider}' rejected the request: {reason}")]
    Rejected { provider: String, reason: String },
}

#[async_trait::async_trait]
pub trait ModelProvider: Send + Sync + 'static {
    fn name(&self) -> &str;
    async fn models(&self) -> Result<Vec<ModelInfo>, ModelError>;
    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, ModelError>;
}
