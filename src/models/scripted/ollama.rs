//! Ollama's protocol for the scripted server: `/api/tags`, `/api/show`, `/api/version`,
//! `/api/chat`, `/api/generate` and `/api/embed`, answering model calls from the script.
//!
//! Answers are built as the port's types and written through [`wire`]'s conversions, the
//! ones a gateway uses, so the server also exercises them.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::stream::{self, StreamExt};
use mark1_actors::ports::model::{
    ChatChunk, ChatMessage, ChatResponse, EmbedResponse, FinishReason, Role, ToolCall, Usage,
};
use serde_json::{Map, Value};

use super::{embed as embedding, usage, Answer, Script, ScriptedModel};
use crate::models::ollama::wire;

pub(super) fn routes() -> Router<Arc<Script>> {
    Router::new()
        .route("/api/tags", get(tags))
        .route("/api/show", post(show))
        .route("/api/version", get(version))
        .route("/api/chat", post(chat))
        .route("/api/generate", post(generate))
        .route("/api/embed", post(embed))
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(wire::ErrorBody { error: message.into() })).into_response()
}

fn not_found(model: &str) -> Response {
    error(StatusCode::NOT_FOUND, format!("model \"{model}\" not found, try pulling it first"))
}

fn now() -> String {
    humantime::format_rfc3339_nanos(SystemTime::now()).to_string()
}

/// A caller with the script's API key, if it requires one.
struct Authorized;

impl FromRequestParts<Arc<Script>> for Authorized {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, script: &Arc<Script>) -> Result<Self, Response> {
        let header = parts.headers.get(AUTHORIZATION).and_then(|value| value.to_str().ok());
        if script.authorized(header) {
            Ok(Authorized)
        } else {
            Err(error(StatusCode::UNAUTHORIZED, "unauthorized"))
        }
    }
}

fn find(script: &Script, model: &str) -> Option<ScriptedModel> {
    script.models().into_iter().find(|m| m.id == model)
}

async fn tags(State(script): State<Arc<Script>>, _: Authorized) -> Json<wire::TagsResponse> {
    let models = script
        .models()
        .into_iter()
        .map(|model| wire::ListedModel {
            name: model.id.clone(),
            model: model.id,
            modified_at: "2025-01-01T00:00:00Z".into(),
            size: 0,
            digest: "0".repeat(64),
            details: wire::ModelDetails {
                format: "gguf".into(),
                family: "scripted".into(),
                ..Default::default()
            },
        })
        .collect();
    Json(wire::TagsResponse { models })
}

async fn show(State(script): State<Arc<Script>>, _: Authorized, body: Bytes) -> Response {
    let request: wire::ShowRequest = match wire::parse(&body) {
        Ok(request) => request,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let Some(model) = find(&script, &request.model) else { return not_found(&request.model) };
    let mut model_info = Map::new();
    model_info.insert("general.architecture".into(), "scripted".into());
    model_info.insert("scripted.context_length".into(), model.context_length.into());
    Json(wire::ShowResponse {
        capabilities: wire::capability_names(&model.capabilities),
        model_info,
        ..Default::default()
    })
    .into_response()
}

async fn version(_: Authorized) -> Json<wire::VersionResponse> {
    Json(wire::VersionResponse { version: "0.0.0-scripted".into() })
}

/// Which endpoint a model call came to, with what it shapes the answer by.
enum Endpoint {
    Chat,
    Generate,
    Embed(Vec<String>),
}

/// A model call the script answers.
struct Call {
    endpoint: Endpoint,
    model: String,
    /// All the text sent, for the prompt's token count.
    prompt: String,
    stream: bool,
}

/// Checks the body and the model, then answers with the script's next answer.
async fn answer<T, F>(script: &Script, body: &Bytes, read: F) -> Response
where
    T: serde::de::DeserializeOwned,
    F: FnOnce(T) -> (Call, String),
{
    let request = match wire::parse::<T>(body) {
        Ok(request) => request,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let (call, last_user) = read(request);
    if find(script, &call.model).is_none() {
        return not_found(&call.model);
    }
    // The body parsed as the request type, so it is JSON.
    let recorded = serde_json::from_slice(body).unwrap_or(Value::Null);
    respond(script.next(recorded, &last_user), call).await
}

async fn chat(State(script): State<Arc<Script>>, _: Authorized, body: Bytes) -> Response {
    answer(&script, &body, |request: wire::ChatRequest| {
        let last_user = request.messages.iter().rev().find(|m| m.role == "user").map(|m| m.content.clone());
        let prompt = request.messages.iter().map(|m| m.content.as_str()).collect::<Vec<_>>().join(" ");
        let call = Call { endpoint: Endpoint::Chat, stream: request.streams(), model: request.model, prompt };
        (call, last_user.unwrap_or_default())
    })
    .await
}

async fn generate(State(script): State<Arc<Script>>, _: Authorized, body: Bytes) -> Response {
    answer(&script, &body, |request: wire::GenerateRequest| {
        let prompt = format!("{} {}", request.system.as_deref().unwrap_or_default(), request.prompt);
        let last_user = request.prompt.clone();
        (
            Call { endpoint: Endpoint::Generate, stream: request.streams(), model: request.model, prompt },
            last_user,
        )
    })
    .await
}

async fn embed(State(script): State<Arc<Script>>, _: Authorized, body: Bytes) -> Response {
    answer(&script, &body, |request: wire::EmbedRequest| {
        let input = match request.input {
            wire::EmbedInput::One(text) => vec![text],
            wire::EmbedInput::Many(texts) => texts,
        };
        let last = input.last().cloned().unwrap_or_default();
        let call = Call {
            prompt: input.join(" "),
            endpoint: Endpoint::Embed(input),
            model: request.model,
            stream: false,
        };
        (call, last)
    })
    .await
}

async fn respond(answer: Answer, call: Call) -> Response {
    match answer {
        Answer::Text(text) => reply(call, text, Vec::new()),
        Answer::ToolCalls(calls) => reply(call, String::new(), calls),
        Answer::Error { status, message } => {
            error(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), message)
        }
        Answer::Garbage => ndjson(Body::from("this is not json\n")),
        Answer::Hang => std::future::pending().await,
        Answer::Slow(delay, answer) => {
            tokio::time::sleep(delay).await;
            Box::pin(respond(*answer, call)).await
        }
        Answer::Drop => dropped(call),
    }
}

fn ndjson(body: Body) -> Response {
    ([(CONTENT_TYPE, "application/x-ndjson")], body).into_response()
}

/// Text streams as one line per word, tool calls as one line, then the line with counts.
fn reply(call: Call, text: String, tool_calls: Vec<ToolCall>) -> Response {
    let usage = usage(&call.prompt, &text);
    let finish_reason = if tool_calls.is_empty() { FinishReason::Stop } else { FinishReason::ToolCalls };
    if let Endpoint::Embed(input) = &call.endpoint {
        let response = EmbedResponse {
            provider: "scripted".into(),
            model: call.model.clone(),
            embeddings: input.iter().map(|text| embedding(text)).collect(),
            usage: Usage { completion_tokens: 0, ..usage },
        };
        return Json(wire::EmbedResponse::from(&response)).into_response();
    }
    let created_at = now();
    if !call.stream {
        let message = ChatMessage { tool_calls, ..ChatMessage::new(Role::Assistant, text) };
        let response = ChatResponse {
            provider: "scripted".into(),
            model: call.model.clone(),
            message,
            usage,
            finish_reason,
            cost: 0.0,
        };
        return match call.endpoint {
            Endpoint::Generate => {
                Json(wire::GenerateResponse::complete(&response, &created_at)).into_response()
            }
            _ => Json(wire::ChatResponse::complete(&response, &created_at)).into_response(),
        };
    }
    let mut chunks: Vec<ChatChunk> = text
        .split_inclusive(char::is_whitespace)
        .map(|word| ChatChunk::Delta { content: word.into(), tool_calls: Vec::new() })
        .collect();
    if !tool_calls.is_empty() {
        chunks.push(ChatChunk::Delta { content: String::new(), tool_calls });
    }
    chunks.push(ChatChunk::Done { usage, finish_reason });
    let lines: Vec<String> = chunks.iter().map(|chunk| line(&call, &created_at, chunk)).collect();
    // One body frame per line, as Ollama writes them.
    ndjson(Body::from_stream(stream::iter(lines.into_iter().map(Ok::<_, Infallible>))))
}

fn line(call: &Call, created_at: &str, chunk: &ChatChunk) -> String {
    let line = match call.endpoint {
        Endpoint::Generate => {
            serde_json::to_string(&wire::GenerateResponse::line(&call.model, created_at, chunk))
        }
        _ => serde_json::to_string(&wire::ChatResponse::line(&call.model, created_at, chunk)),
    };
    line.expect("wire types serialize") + "\n"
}

/// The start of an answer, then the connection is cut: a streamed answer sends its first
/// line, any other half of a JSON object.
fn dropped(call: Call) -> Response {
    let first = if call.stream {
        let chunk = ChatChunk::Delta { content: "partial ".into(), tool_calls: Vec::new() };
        line(&call, &now(), &chunk)
    } else {
        format!("{{\"model\":\"{}\",", call.model)
    };
    let cut = stream::once(async {
        // Gives the client time to read the first part before the connection goes.
        tokio::time::sleep(Duration::from_millis(20)).await;
        Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "scripted drop"))
    });
    let body = stream::once(async move { Ok(Bytes::from(first)) }).chain(cut);
    ndjson(Body::from_stream(body))
}
