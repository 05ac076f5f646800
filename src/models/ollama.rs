//! The `ollama` provider: the `ModelProvider` port over Ollama's native API, through the
//! ollama-rs client.
//!
//! The adapter neither retries nor times out (the router owns both); dropping a call's
//! future or stream drops the HTTP request and so closes its connection. What ollama-rs
//! loses on the way is made up for here and said where: the HTTP status of an error
//! (`failure`), `done_reason` (`convert`), lines it cannot parse (`answer`).
//! Embedding answers come back without token counts, so their usage is zero.
//!
//! Known limits of ollama-rs 0.3 that this adapter cannot see past: its streams skip lines
//! they cannot parse (printing them to stderr); the generate stream parses each chunk of
//! the body on its own, so it loses a line split across two chunks; the chat stream drops
//! a chunk that splits a UTF-8 character. Ollama's short lines usually arrive whole; a lost
//! last line shows up as an `InvalidResponse`, a lost middle line as missing text.

mod answer;
mod convert;
mod failure;
pub mod wire;

use futures::future::join_all;
use futures::stream::{self, StreamExt};
use mark1_actors::ports::model::{
    ChatRequest, ChatResponse, ChatStream, EmbedRequest, EmbedResponse, GenerateRequest, ModelCapabilities,
    ModelError, ModelInfo, ModelPrice, ModelProvider, Usage,
};
use ollama_rs::generation::embeddings::request::{EmbeddingsInput, GenerateEmbeddingsRequest};
use ollama_rs::Ollama;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};

use answer::{Call, Line};
use failure::{cut_short, model_error};

/// Why a provider could not be set up from its config.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("base_url '{url}' is not a URL: {reason}")]
    BaseUrl { url: String, reason: String },
    #[error("the API key cannot be sent in an HTTP header (it has a newline or another control character)")]
    ApiKey,
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

/// One Ollama server, under the name it was configured with.
#[derive(Debug, Clone)]
pub struct OllamaProvider {
    name: String,
    client: Ollama,
}

impl OllamaProvider {
    /// `base_url` is the server's root, as `http://127.0.0.1:11434`; `api_key` is sent as
    /// `Authorization: Bearer` (Ollama itself wants none, proxies in front of it may).
    pub fn new(name: impl Into<String>, base_url: &str, api_key: Option<String>) -> Result<Self, SetupError> {
        let mut url = reqwest::Url::parse(base_url)
            .map_err(|e| SetupError::BaseUrl { url: base_url.into(), reason: e.to_string() })?;
        // ollama-rs appends `api/chat` to the URL as written: without the slash, a base
        // with a path (`http://proxy/ollama`) would become `http://proxy/ollamaapi/chat`.
        if !url.path().ends_with('/') {
            url.set_path(&format!("{}/", url.path()));
        }
        let mut headers = HeaderMap::new();
        if let Some(key) = api_key {
            let mut value =
                HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| SetupError::ApiKey)?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        // No timeout on purpose: the router gives each attempt its deadline.
        let http = reqwest::Client::builder().default_headers(headers).build().map_err(SetupError::Client)?;
        let client = Ollama::builder().url(url).reqwest_client(http).build();
        Ok(OllamaProvider { name: name.into(), client })
    }

    fn fail(&self) -> impl Fn(ollama_rs::error::OllamaError) -> ModelError + '_ {
        |error| model_error(&self.name, error)
    }

    fn call(&self, max_tokens: Option<u32>) -> Call {
        Call { provider: self.name.clone(), max_tokens }
    }

    /// What `show` says of one model; a model it fails for is still served, as a chat model.
    async fn describe(&self, model: String) -> ModelInfo {
        let (capabilities, context_length) = match self.client.show_model_info(model.clone()).await {
            Ok(info) if info.capabilities.is_empty() => (chat_only(), wire::context_length(&info.model_info)),
            Ok(info) => (wire::capabilities_from(&info.capabilities), wire::context_length(&info.model_info)),
            Err(error) => {
                let error = model_error(&self.name, error);
                tracing::warn!(provider = %self.name, %model, %error, "model details unavailable; assuming chat");
                (chat_only(), None)
            }
        };
        ModelInfo {
            id: model,
            provider: self.name.clone(),
            context_length,
            capabilities,
            price: ModelPrice::default(),
        }
    }
}

/// Servers before Ollama 0.6 list no capabilities; every model they run can chat.
fn chat_only() -> ModelCapabilities {
    ModelCapabilities { chat: true, ..ModelCapabilities::default() }
}

#[async_trait::async_trait]
impl ModelProvider for OllamaProvider {
    fn name(&self) -> &str {
        &self.name
    }

    async fn models(&self) -> Result<Vec<ModelInfo>, ModelError> {
        let listed = self.client.list_local_models().await.map_err(self.fail())?;
        Ok(join_all(listed.into_iter().map(|model| self.describe(model.name))).await)
    }

    /// One listing, without the per-model `show` calls discovery makes.
    async fn ping(&self) -> Result<(), ModelError> {
        self.client.list_local_models().await.map(drop).map_err(self.fail())
    }

    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, ModelError> {
        let call = self.call(request.options.max_tokens);
        let request = convert::chat_request(&self.name, request)?;
        let response = self.client.send_chat_messages(request).await.map_err(self.fail())?;
        Ok(call.complete(response.model.clone(), Line::from(response)))
    }

    async fn chat_stream(&self, request: ChatRequest) -> Result<ChatStream, ModelError> {
        let call = self.call(request.options.max_tokens);
        let request = convert::chat_request(&self.name, request)?;
        let lines = self.client.send_chat_messages_stream(request).await.map_err(self.fail())?;
        let provider = self.name.clone();
        // ollama-rs reports a broken body as `Err(())`, with nothing more to say.
        let lines =
            lines.map(move |line| line.map(Line::from).map_err(|()| cut_short(&provider, "connection lost")));
        Ok(call.stream(lines.boxed()))
    }

    async fn embed(&self, request: EmbedRequest) -> Result<EmbedResponse, ModelError> {
        let wire =
            GenerateEmbeddingsRequest::new(request.model.clone(), EmbeddingsInput::Multiple(request.input));
        let response = self.client.generate_embeddings(wire).await.map_err(self.fail())?;
        Ok(EmbedResponse {
            provider: self.name.clone(),
            model: request.model,
            embeddings: response.embeddings,
            usage: Usage::default(),
        })
    }

    async fn generate(&self, request: GenerateRequest) -> Result<ChatResponse, ModelError> {
        let call = self.call(request.options.max_tokens);
        let request = convert::generation_request(&self.name, request)?;
        let response = self.client.generate(request).await.map_err(self.fail())?;
        Ok(call.complete(response.model.clone(), Line::from(response)))
    }

    async fn generate_stream(&self, request: GenerateRequest) -> Result<ChatStream, ModelError> {
        let call = self.call(request.options.max_tokens);
        let request = convert::generation_request(&self.name, request)?;
        let batches = self.client.generate_stream(request).await.map_err(self.fail())?;
        let provider = self.name.clone();
        // ollama-rs hands over the lines of each chunk of the body it reads, in batches.
        let lines = batches.flat_map(move |batch| match batch {
            Ok(lines) => stream::iter(lines.into_iter().map(|line| Ok(Line::from(line))).collect::<Vec<_>>()),
            Err(error) => stream::iter(vec![Err(cut_short(&provider, &error.to_string()))]),
        });
        Ok(call.stream(lines.boxed()))
    }
}

#[cfg(test)]
mod tests;
