//! `/openai/v1/…`: the OpenAI chat completions, embeddings and models API, served by the
//! router. Point an OpenAI client's base URL at `http://NODE/openai/v1` and give it a
//! Mark-1 API key as its API key.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures::StreamExt;
use mark1_actors::ports::model::{ChatChunk, ModelError};

use super::{context_of, unix_now, ProtocolError, Refusal};
use crate::http::auth::Caller;
use crate::http::state::EdgeState;
use crate::models::openai::wire::{
    self, ChatCompletion, ChatCompletionRequest, ChunkEncoder, EmbeddingsRequest, EmbeddingsResponse,
    ErrorBody,
};

/// A refusal in OpenAI's error shape, which its SDKs read.
pub struct OpenAiError(Refusal);

impl<E: Into<Refusal>> From<E> for OpenAiError {
    fn from(error: E) -> Self {
        OpenAiError(error.into())
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let OpenAiError(refusal) = self;
        let kind = match refusal.status.as_u16() {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            429 => "rate_limit_error",
            400..=499 => "invalid_request_error",
            _ => "api_error",
        };
        (refusal.status, Extension(ProtocolError), Json(ErrorBody::new(kind, refusal.message)))
            .into_response()
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, Refusal> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        Refusal::bad_request(format!("invalid request body at '{path}': {}", e.into_inner()))
    })
}

/// `POST /openai/v1/chat/completions`, streamed as server-sent events when `stream` is set.
#[utoipa::path(post, path = "/openai/v1/chat/completions", tag = "gateways",
    request_body(content = Object, description = "An OpenAI chat completions request"),
    responses((status = 200, description = "A chat completion, or its chunks as text/event-stream")))]
pub async fn chat_completions(
    State(edge): State<Arc<EdgeState>>,
    caller: Caller,
    body: Bytes,
) -> Result<Response, OpenAiError> {
    let context = context_of(&caller)?;
    let request: ChatCompletionRequest = parse(&body)?;
    let (stream, include_usage) = (request.stream, request.stream_options.is_some_and(|o| o.include_usage));
    let model = request.model.clone();
    let request = request.into_port().map_err(|e| Refusal::bad_request(e.to_string()))?;
    let id = format!("chatcmpl-{}", uuid::Uuid::now_v7().simple());
    let created = unix_now();
    let router = edge.node.models();
    if !stream {
        let response = router.chat(request, context).await?;
        return Ok(Json(ChatCompletion::from_port(&response, id, created)).into_response());
    }
    let chunks = router.chat_stream(request, context).await?;
    let mut encoder = ChunkEncoder::new(id, created, model, include_usage);
    let events = chunks.flat_map(move |chunk| {
        let lines: Vec<String> = match chunk {
            Ok(chunk @ ChatChunk::Delta { .. }) => encoder.encode(&chunk).iter().map(event).collect(),
            Ok(chunk @ ChatChunk::Done { .. }) => {
                let mut lines: Vec<String> = encoder.encode(&chunk).iter().map(event).collect();
                lines.push(format!("data: {}\n\n", wire::DONE));
                lines
            }
            // Headers are gone: the error travels as an event, as OpenAI's servers send it.
            Err(error) => vec![event(&stream_error(error))],
        };
        futures::stream::iter(lines.into_iter().map(Ok::<_, std::convert::Infallible>))
    });
    Ok((
        [(header::CONTENT_TYPE, "text/event-stream"), (header::CACHE_CONTROL, "no-cache")],
        Body::from_stream(events),
    )
        .into_response())
}

fn event(value: &impl serde::Serialize) -> String {
    format!("data: {}\n\n", serde_json::to_string(value).expect("wire types serialize"))
}

fn stream_error(error: ModelError) -> ErrorBody {
    ErrorBody::new("api_error", error.to_string())
}

/// `POST /openai/v1/embeddings`.
#[utoipa::path(post, path = "/openai/v1/embeddings", tag = "gateways",
    request_body(content = Object, description = "An OpenAI embeddings request"),
    responses((status = 200, description = "The embeddings", body = Object)))]
pub async fn embeddings(
    State(edge): State<Arc<EdgeState>>,
    caller: Caller,
    body: Bytes,
) -> Result<Json<EmbeddingsResponse>, OpenAiError> {
    let context = context_of(&caller)?;
    let request: EmbeddingsRequest = parse(&body)?;
    let response = edge.node.models().embed(request.into_port(), context).await?;
    Ok(Json(EmbeddingsResponse::from_port(&response)))
}

/// `GET /openai/v1/models`: every model id the router can route, once, owned by the
/// providers that serve it.
#[utoipa::path(get, path = "/openai/v1/models", tag = "gateways",
    responses((status = 200, description = "The model list", body = Object)))]
pub async fn models(
    State(edge): State<Arc<EdgeState>>,
    caller: Caller,
) -> Result<Json<wire::ModelList>, OpenAiError> {
    context_of(&caller)?;
    let views = edge.node.models().models().await?;
    let created = unix_now();
    let mut data: Vec<wire::Model> = Vec::new();
    for view in views {
        match data.iter_mut().find(|m| m.id == view.info.id) {
            Some(model) => model.owned_by = format!("{},{}", model.owned_by, view.info.provider),
            None => data.push(wire::Model::from_port(&view.info, created)),
        }
    }
    Ok(Json(wire::ModelList { object: "list".into(), data }))
}
