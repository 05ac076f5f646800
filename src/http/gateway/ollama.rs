//! `/ollama/api/…`: Ollama's chat, generate, embed, tags, show and version API, served by
//! the router. Point an Ollama client's host at `http://NODE/ollama` and send a Mark-1
//! API key as `Authorization: Bearer`.

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures::StreamExt;
use mark1_actors::ports::model::{self as port, ChatChunk, ChatStream};
use serde::Serialize;
use serde_json::{json, Map};

use super::{context_of, ProtocolError, Refusal};
use crate::http::auth::Caller;
use crate::http::routes::tasks::rfc3339;
use crate::http::state::EdgeState;
use crate::models::ollama::wire;

/// A refusal in Ollama's error shape, `{"error": "…"}`.
pub struct OllamaError(Refusal);

impl<E: Into<Refusal>> From<E> for OllamaError {
    fn from(error: E) -> Self {
        OllamaError(error.into())
    }
}

impl IntoResponse for OllamaError {
    fn into_response(self) -> Response {
        let OllamaError(refusal) = self;
        (refusal.status, Extension(ProtocolError), Json(wire::ErrorBody { error: refusal.message }))
            .into_response()
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, Refusal> {
    wire::parse(body).map_err(|e| Refusal::bad_request(e.to_string()))
}

fn bad(error: impl std::fmt::Display) -> Refusal {
    Refusal::bad_request(error.to_string())
}

/// Newline-delimited JSON, one line per chunk, as Ollama streams; an error after the
/// headers went out travels as an `{"error": …}` line.
fn ndjson<T: Serialize>(chunks: ChatStream, line: impl Fn(&ChatChunk) -> T + Send + 'static) -> Response {
    let lines = chunks.map(move |chunk| {
        let text = match chunk {
            Ok(chunk) => serde_json::to_string(&line(&chunk)),
            Err(error) => serde_json::to_string(&wire::ErrorBody { error: error.to_string() }),
        };
        Ok::<_, std::convert::Infallible>(text.expect("wire types serialize") + "\n")
    });
    ([(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(lines)).into_response()
}

/// `POST /ollama/api/chat`; streams unless `"stream": false`.
#[utoipa::path(post, path = "/ollama/api/chat", tag = "gateways",
    request_body(content = Object, description = "An Ollama chat request"),
    responses((status = 200, description = "The answer, or its lines as application/x-ndjson")))]
pub async fn chat(
    State(edge): State<Arc<EdgeState>>,
    caller: Caller,
    body: Bytes,
) -> Result<Response, OllamaError> {
    let context = context_of(&caller)?;
    let request: wire::ChatRequest = parse(&body)?;
    let stream = request.streams();
    let model = request.model.clone();
    let request = port::ChatRequest::try_from(request).map_err(bad)?;
    let created_at = rfc3339(SystemTime::now());
    let router = edge.node.models();
    if !stream {
        let response = router.chat(request, context).await?;
        return Ok(Json(wire::ChatResponse::complete(&response, &created_at)).into_response());
    }
    let chunks = router.chat_stream(request, context).await?;
    Ok(ndjson(chunks, move |chunk| wire::ChatResponse::line(&model, &created_at, chunk)))
}

/// `POST /ollama/api/generate`; streams unless `"stream": false`.
#[utoipa::path(post, path = "/ollama/api/generate", tag = "gateways",
    request_body(content = Object, description = "An Ollama generate request"),
    responses((status = 200, description = "The answer, or its lines as application/x-ndjson")))]
pub async fn generate(
    State(edge): State<Arc<EdgeState>>,
    caller: Caller,
    body: Bytes,
) -> Result<Response, OllamaError> {
    let context = context_of(&caller)?;
    let request: wire::GenerateRequest = parse(&body)?;
    let stream = request.streams();
    let model = request.model.clone();
    let request = port::GenerateRequest::try_from(request).map_err(bad)?;
    let created_at = rfc3339(SystemTime::now());
    let router = edge.node.models();
    if !stream {
        let response = router.generate(request, context).await?;
        return Ok(Json(wire::GenerateResponse::complete(&response, &created_at)).into_response());
    }
    let chunks = router.generate_stream(request, context).await?;
    Ok(ndjson(chunks, move |chunk| wire::GenerateResponse::line(&model, &created_at, chunk)))
}

/// `POST /ollama/api/embed`.
#[utoipa::path(post, path = "/ollama/api/embed", tag = "gateways",
    request_body(content = Object, description = "An Ollama embed request"),
    responses((status = 200, description = "The embeddings", body = Object)))]
pub async fn embed(
    State(edge): State<Arc<EdgeState>>,
    caller: Caller,
    body: Bytes,
) -> Result<Json<wire::EmbedResponse>, OllamaError> {
    let context = context_of(&caller)?;
    let request: wire::EmbedRequest = parse(&body)?;
    let request = port::EmbedRequest::try_from(request).map_err(bad)?;
    let response = edge.node.models().embed(request, context).await?;
    Ok(Json(wire::EmbedResponse::from(&response)))
}

/// `GET /ollama/api/tags`: every model id the router can route, once.
#[utoipa::path(get, path = "/ollama/api/tags", tag = "gateways",
    responses((status = 200, description = "The models", body = Object)))]
pub async fn tags(
    State(edge): State<Arc<EdgeState>>,
    caller: Caller,
) -> Result<Json<wire::TagsResponse>, OllamaError> {
    context_of(&caller)?;
    let mut models: Vec<wire::ListedModel> = Vec::new();
    for view in edge.node.models().models().await? {
        if !models.iter().any(|m| m.name == view.info.id) {
            models.push(wire::ListedModel {
                name: view.info.id.clone(),
                model: view.info.id,
                modified_at: rfc3339(SystemTime::now()),
                ..wire::ListedModel::default()
            });
        }
    }
    Ok(Json(wire::TagsResponse { models }))
}

/// `POST /ollama/api/show`: what the router knows of a model (its first provider's view).
#[utoipa::path(post, path = "/ollama/api/show", tag = "gateways",
    request_body(content = Object, description = "{\"model\": NAME}"),
    responses((status = 200, description = "Capabilities and context length", body = Object)))]
pub async fn show(
    State(edge): State<Arc<EdgeState>>,
    caller: Caller,
    body: Bytes,
) -> Result<Json<wire::ShowResponse>, OllamaError> {
    context_of(&caller)?;
    let request: wire::ShowRequest = parse(&body)?;
    let views = edge.node.models().models().await?;
    let Some(view) = views.into_iter().find(|v| v.info.id == request.model) else {
        return Err(port::ModelError::UnknownModel(request.model).into());
    };
    let mut model_info = Map::new();
    model_info.insert("general.architecture".into(), json!("mark1"));
    if let Some(length) = view.info.context_length {
        model_info.insert("mark1.context_length".into(), json!(length));
    }
    Ok(Json(wire::ShowResponse {
        capabilities: wire::capability_names(&view.info.capabilities),
        model_info,
        ..wire::ShowResponse::default()
    }))
}

/// `GET /ollama/api/version`: Mark-1's version (clients only check that it answers).
#[utoipa::path(get, path = "/ollama/api/version", tag = "gateways",
    responses((status = 200, description = "The version", body = Object)))]
pub async fn version() -> Json<wire::VersionResponse> {
    Json(wire::VersionResponse { version: env!("CARGO_PKG_VERSION").into() })
}
