//! The provider for OpenAI-compatible servers (vLLM, llama.cpp's server, LM Studio,
//! hosted APIs): the port's calls as `/chat/completions`, `/embeddings` and `/models`
//! under the configured base URL (the one ending in `/v1`).
//!
//! No retries and no deadlines here beyond connecting: the router owns both, and
//! dropping a call's future (or a stream) closes its connection, which aborts the call.

mod sse;
#[cfg(test)]
mod tests;
pub mod wire;

use std::time::Duration;

use futures::StreamExt;
use mark1_actors::ports::model::{
    ChatRequest, ChatResponse, ChatStream, EmbedRequest, EmbedResponse, ModelError, ModelInfo, ModelProvider,
};
use reqwest::{RequestBuilder, Response, StatusCode, Url};
use serde::de::DeserializeOwned;

use self::wire::{ChatCompletion, ChatCompletionRequest, EmbeddingsRequest, EmbeddingsResponse, ModelList};

/// Long enough for a server across a WAN, short enough that a dead host fails over fast.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a provider cannot be set up from its config.
#[derive(Debug, thiserror::Error)]
pub enum OpenAiSetupError {
    #[error("provider '{provider}': base_url '{url}' is not an http:// or https:// URL")]
    BadUrl { provider: String, url: String },
    #[error("provider '{provider}': cannot build the HTTP client: {source}")]
    Client {
        provider: String,
        #[source]
        source: reqwest::Error,
    },
}

#[derive(Debug)]
pub struct OpenAiProvider {
    name: String,
    endpoints: Endpoints,
    api_key: Option<String>,
    http: reqwest::Client,
}

/// The URLs called, parsed once: given a string, reqwest would parse it on every call.
#[derive(Debug)]
struct Endpoints {
    models: Url,
    chat: Url,
    embeddings: Url,
}

impl OpenAiProvider {
    /// `base_url` ends in `/v1`; `api_key`, if any, is sent as `Authorization: Bearer`.
    pub fn new(
        name: impl Into<String>,
        base_url: &str,
        api_key: Option<String>,
    ) -> Result<Self, OpenAiSetupError> {
        let name = name.into();
        let base = base_url.trim_end_matches('/');
        let endpoint = |path: &str| {
            Url::parse(&format!("{base}/{path}"))
                .ok()
                .filter(|url| matches!(url.scheme(), "http" | "https"))
                .ok_or_else(|| OpenAiSetupError::BadUrl { provider: name.clone(), url: base_url.into() })
        };
        let endpoints = Endpoints {
            models: endpoint("models")?,
            chat: endpoint("chat/completions")?,
            embeddings: endpoint("embeddings")?,
        };
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|source| OpenAiSetupError::Client { provider: name.clone(), source })?;
        Ok(OpenAiProvider { name, endpoints, api_key, http })
    }

    /// Sends the request; a transport failure or an error status becomes the port's error.
    async fn send(&self, request: RequestBuilder) -> Result<Response, ModelError> {
        let request = match &self.api_key {
            Some(key) => request.bearer_auth(key),
            None => request,
        };
        let response = request.send().await.map_err(|e| sse::unavailable(&self.name, &e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        // A body cut short still leaves the status to report.
        let body = response.bytes().await.unwrap_or_default();
        Err(ModelError::Rejected {
            provider: self.name.clone(),
            status: status.as_u16(),
            reason: rejection_reason(status, &body),
        })
    }

    /// Reads the whole body as `T`.
    async fn read<T: DeserializeOwned>(&self, response: Response) -> Result<T, ModelError> {
        // The status line came, so a failure now is the connection cut mid-body.
        let body = response.bytes().await.map_err(|e| sse::unavailable(&self.name, &e))?;
        serde_json::from_slice(&body)
            .map_err(|e| self.invalid(format!("the body is not the expected JSON: {e}")))
    }

    fn invalid(&self, reason: impl ToString) -> ModelError {
        ModelError::InvalidResponse { provider: self.name.clone(), reason: reason.to_string() }
    }
}

/// The error body's message; failing that, the start of the body; failing that, the
/// status's name.
fn rejection_reason(status: StatusCode, body: &[u8]) -> String {
    if let Ok(error) = serde_json::from_slice::<wire::ErrorBody>(body) {
        return error.error.message;
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return status.canonical_reason().unwrap_or("no reason given").to_string();
    }
    text.chars().take(200).collect()
}

#[async_trait::async_trait]
impl ModelProvider for OpenAiProvider {
    fn name(&self) -> &str {
        &self.name
    }

    async fn models(&self) -> Result<Vec<ModelInfo>, ModelError> {
        let response = self.send(self.http.get(self.endpoints.models.clone())).await?;
        let list: ModelList = self.read(response).await?;
        Ok(list.data.into_iter().map(|model| model.into_port(&self.name)).collect())
    }

    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, ModelError> {
        let body = ChatCompletionRequest::from_port(&request, false);
        let response = self.send(self.http.post(self.endpoints.chat.clone()).json(&body)).await?;
        let completion: ChatCompletion = self.read(response).await?;
        let mut answer = completion.into_port(&self.name).map_err(|e| self.invalid(e))?;
        if answer.model.is_empty() {
            answer.model = request.model;
        }
        Ok(answer)
    }

    async fn chat_stream(&self, request: ChatRequest) -> Result<ChatStream, ModelError> {
        let body = ChatCompletionRequest::from_port(&request, true);
        let response = self.send(self.http.post(self.endpoints.chat.clone()).json(&body)).await?;
        Ok(sse::chat_chunks(self.name.clone(), response.bytes_stream()).boxed())
    }

    async fn embed(&self, request: EmbedRequest) -> Result<EmbedResponse, ModelError> {
        let body = EmbeddingsRequest::from_port(&request);
        let response = self.send(self.http.post(self.endpoints.embeddings.clone()).json(&body)).await?;
        let embeddings: EmbeddingsResponse = self.read(response).await?;
        let mut answer =
            embeddings.into_port(&self.name, request.input.len()).map_err(|e| self.invalid(e))?;
        if answer.model.is_empty() {
            answer.model = request.model;
        }
        Ok(answer)
    }
}
