//! One model call as the router handles it: what is asked, for whom, and what it needs.

use serde::Serialize;
use tokio::time::Instant;

use crate::domain::workflow::RunId;
use crate::domain::TaskId;
use crate::ports::model::{
    ChatRequest, ChatResponse, ChatStream, EmbedRequest, EmbedResponse, GenerateRequest, ModelCapabilities,
};

pub enum ModelCall {
    Chat(ChatRequest),
    ChatStream(ChatRequest),
    Generate(GenerateRequest),
    GenerateStream(GenerateRequest),
    Embed(EmbedRequest),
}

pub enum ModelOutput {
    Chat(ChatResponse),
    Stream(ChatStream),
    Embed(EmbedResponse),
}

/// The output of the call kind that asked for it: each variant of [`ModelCall`] has
/// exactly one output variant (the provider actor's `execute` matches them up), so the
/// typed callers below cannot see another.
impl ModelOutput {
    /// Of `Chat` and `Generate`.
    pub fn into_response(self) -> ChatResponse {
        match self {
            ModelOutput::Chat(response) => response,
            _ => unreachable!("a chat or generate call answers with a chat response"),
        }
    }

    /// Of `ChatStream` and `GenerateStream`.
    pub fn into_stream(self) -> ChatStream {
        match self {
            ModelOutput::Stream(stream) => stream,
            _ => unreachable!("a streamed call answers with a stream"),
        }
    }

    /// Of `Embed`.
    pub fn into_embeddings(self) -> EmbedResponse {
        match self {
            ModelOutput::Embed(response) => response,
            _ => unreachable!("an embedding call answers with embeddings"),
        }
    }
}

/// Who the call is for: whose budget pays, and where its usage is recorded.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CallContext {
    pub namespace: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<RunId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// When the whole call (every attempt) must have ended.
    #[serde(skip)]
    pub deadline: Option<Instant>,
}

impl CallContext {
    pub fn namespace(namespace: impl Into<String>) -> Self {
        CallContext { namespace: namespace.into(), ..CallContext::default() }
    }
}

/// What a model must offer to serve a call.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Needs {
    pub capabilities: ModelCapabilities,
    /// Prompt plus answer, in (estimated) tokens.
    pub context_tokens: u32,
}

impl ModelCall {
    pub fn model(&self) -> &str {
        match self {
            ModelCall::Chat(r) | ModelCall::ChatStream(r) => &r.model,
            ModelCall::Generate(r) | ModelCall::GenerateStream(r) => &r.model,
            ModelCall::Embed(r) => &r.model,
        }
    }

    /// The same call addressed to `model` (a provider's own id).
    pub fn for_model(&self, model: &str) -> ModelCall {
        let model = model.to_string();
        match self {
            ModelCall::Chat(r) => ModelCall::Chat(ChatRequest { model, ..r.clone() }),
            ModelCall::ChatStream(r) => ModelCall::ChatStream(ChatRequest { model, ..r.clone() }),
            ModelCall::Generate(r) => ModelCall::Generate(GenerateRequest { model, ..r.clone() }),
            ModelCall::GenerateStream(r) => ModelCall::GenerateStream(GenerateRequest { model, ..r.clone() }),
            ModelCall::Embed(r) => ModelCall::Embed(EmbedRequest { model, ..r.clone() }),
        }
    }

    /// Tokens of the prompt, estimated at four characters a token (what the budget
    /// reserves before the provider counts).
    pub fn prompt_tokens(&self) -> u32 {
        let chars: usize = match self {
            ModelCall::Chat(r) | ModelCall::ChatStream(r) => {
                r.messages.iter().map(|m| m.content.len() + 16).sum::<usize>()
                    + r.tools
                        .iter()
                        .map(|t| t.name.len() + t.description.len() + t.parameters.to_string().len())
                        .sum::<usize>()
            }
            ModelCall::Generate(r) | ModelCall::GenerateStream(r) => {
                r.prompt.len() + r.system.as_ref().map_or(0, String::len)
            }
            ModelCall::Embed(r) => r.input.iter().map(String::len).sum(),
        };
        u32::try_from(chars.div_ceil(4)).unwrap_or(u32::MAX)
    }

    /// Most tokens the answer may take: the request's `max_tokens`, else `default`.
    pub fn answer_tokens(&self, default: u32) -> u32 {
        match self {
            ModelCall::Chat(r) | ModelCall::ChatStream(r) => r.options.max_tokens.unwrap_or(default),
            ModelCall::Generate(r) | ModelCall::GenerateStream(r) => r.options.max_tokens.unwrap_or(default),
            ModelCall::Embed(_) => 0,
        }
    }

    /// What a model must offer, for a call whose prompt is `prompt_tokens` long (see
    /// [`ModelCall::prompt_tokens`]; passed in because the budget needs it too).
    pub fn needs(&self, prompt_tokens: u32) -> Needs {
        let mut capabilities = ModelCapabilities::default();
        match self {
            ModelCall::Chat(r) | ModelCall::ChatStream(r) => {
                capabilities.chat = true;
                capabilities.tools = !r.tools.is_empty();
                capabilities.vision = r.messages.iter().any(|m| !m.images.is_empty());
            }
            ModelCall::Generate(r) | ModelCall::GenerateStream(r) => {
                capabilities.chat = true;
                capabilities.vision = !r.images.is_empty();
            }
            ModelCall::Embed(_) => capabilities.embeddings = true,
        }
        let context_tokens = prompt_tokens.saturating_add(self.answer_tokens(0));
        Needs { capabilities, context_tokens }
    }
}
