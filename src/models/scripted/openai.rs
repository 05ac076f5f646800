//! OpenAI's protocol on the scripted server: `/v1/models`, `/v1/chat/completions`
//! (whole and streamed) and `/v1/embeddings`, answering from the script.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::{Stream, StreamExt};
use mark1_actors::ports::model::{
    ChatChunk, ChatMessage, ChatRequest, ChatResponse, EmbedResponse, FinishReason, ModelInfo, ModelPrice,
    Role, Usage,
};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{count_tokens, embed, usage, Answer, Script};
use crate::models::openai::wire::{self, ChunkEncoder};

pub(super) fn routes() -> Router<Arc<Script>> {
    Router::new()
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat))
        .route("/v1/embeddings", post(embeddings))
}

async fn models(State(script): State<Arc<Script>>, headers: HeaderMap) -> Response {
    if let Err(refused) = authorize(&script, &headers) {
        return refused.into_response();
    }
    let data = (script.models().into_iter())
        .map(|model| {
            let info = ModelInfo {
                id: model.id,
                provider: "scripted".into(),
                context_length: Some(model.context_length),
                capabilities: model.capabilities,
                price: ModelPrice::default(),
            };
            wire::Model::from_port(&info, 0)
        })
        .collect();
    Json(wire::ModelList { object: "list".into(), data }).into_response()
}

async fn chat(State(script): State<Arc<Script>>, headers: HeaderMap, body: Bytes) -> Response {
    let (raw, wire_request) = match accept::<wire::ChatCompletionRequest>(&script, &headers, &body) {
        Ok(accepted) => accepted,
        Err(refused) => return refused.into_response(),
    };
    let include_usage = wire_request.stream_options.is_some_and(|options| options.include_usage);
    let stream = wire_request.stream;
    let request = match wire_request.into_port() {
        Ok(request) => request,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid request: {e}")),
    };
    let last_user = (request.messages.iter().rev())
        .find(|message| message.role == Role::User)
        .map(|message| message.content.clone())
        .unwrap_or_default();
    let answer = settle(script.next(raw, &last_user)).await;
    let reply = Reply { request, include_usage };
    match answer {
        Answer::Text(text) if stream => sse(reply.text_events(&text), false),
        Answer::ToolCalls(calls) if stream => sse(reply.tool_call_events(calls), false),
        Answer::Text(_) | Answer::ToolCalls(_) => {
            let completion = wire::ChatCompletion::from_port(&reply.response(answer), reply.id(), now());
            Json(completion).into_response()
        }
        Answer::Garbage if stream => sse(vec!["this is not json".into()], false),
        Answer::Drop if stream => sse(reply.text_events(&last_user).into_iter().take(1).collect(), true),
        other => failure(other),
    }
}

async fn embeddings(State(script): State<Arc<Script>>, headers: HeaderMap, body: Bytes) -> Response {
    let (raw, request) = match accept::<wire::EmbeddingsRequest>(&script, &headers, &body) {
        Ok(accepted) => accepted,
        Err(refused) => return refused.into_response(),
    };
    let request = request.into_port();
    match settle(script.next(raw, "")).await {
        Answer::Text(_) | Answer::ToolCalls(_) => {
            let prompt_tokens = request.input.iter().map(|text| count_tokens(text)).sum();
            let response = EmbedResponse {
                provider: "scripted".into(),
                embeddings: request.input.iter().map(|text| embed(text)).collect(),
                model: request.model,
                usage: Usage { prompt_tokens, completion_tokens: 0 },
            };
            Json(wire::EmbeddingsResponse::from_port(&response)).into_response()
        }
        other => failure(other),
    }
}

/// Checks the key, reads the body as JSON and as `T`, and checks the model is listed;
/// gives the body as received (for the script's record) and as read.
fn accept<T: DeserializeOwned + HasModel>(
    script: &Script,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Value, T), Refusal> {
    authorize(script, headers)?;
    let raw: Value = serde_json::from_slice(body)
        .map_err(|e| Refusal(StatusCode::BAD_REQUEST, format!("the body is not JSON: {e}")))?;
    let request: T = serde_json::from_value(raw.clone())
        .map_err(|e| Refusal(StatusCode::BAD_REQUEST, format!("invalid request: {e}")))?;
    let model = request.model();
    if !script.models().iter().any(|listed| listed.id == model) {
        let message = format!("The model `{model}` does not exist or you do not have access to it.");
        return Err(Refusal(StatusCode::NOT_FOUND, message));
    }
    Ok((raw, request))
}

trait HasModel {
    fn model(&self) -> &str;
}

impl HasModel for wire::ChatCompletionRequest {
    fn model(&self) -> &str {
        &self.model
    }
}

impl HasModel for wire::EmbeddingsRequest {
    fn model(&self) -> &str {
        &self.model
    }
}

fn authorize(script: &Script, headers: &HeaderMap) -> Result<(), Refusal> {
    let header = headers.get(header::AUTHORIZATION).and_then(|value| value.to_str().ok());
    if script.authorized(header) {
        Ok(())
    } else {
        Err(Refusal(StatusCode::UNAUTHORIZED, "Incorrect API key provided.".into()))
    }
}

/// A call refused before it reaches the script.
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        error(self.0, self.1)
    }
}

/// An error status with OpenAI's error body.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let kind = if status.is_server_error() { "server_error" } else { "invalid_request_error" };
    (status, Json(wire::ErrorBody::new(kind, message))).into_response()
}

/// Waits out `Slow` answers; never returns from `Hang`.
async fn settle(mut answer: Answer) -> Answer {
    loop {
        match answer {
            Answer::Slow(delay, then) => {
                tokio::time::sleep(delay).await;
                answer = *then;
            }
            Answer::Hang => return std::future::pending().await,
            other => return other,
        }
    }
}

/// The answers that are the same for every call and every mode: errors, garbage, and a
/// connection cut after a partial body.
fn failure(answer: Answer) -> Response {
    let json = [(header::CONTENT_TYPE, "application/json")];
    match answer {
        Answer::Error { status, message } => {
            error(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), message)
        }
        Answer::Garbage => (json, "this is not json").into_response(),
        Answer::Drop => {
            let start = futures::stream::iter([Ok(Bytes::from_static(b"{\"id\":\"chatcmpl-"))]);
            (json, Body::from_stream(start.chain(cut()))).into_response()
        }
        Answer::Text(_) | Answer::ToolCalls(_) | Answer::Slow(..) | Answer::Hang => {
            unreachable!("answered or settled before")
        }
    }
}

/// A body that fails once what came before it is sent: hyper then aborts the connection
/// instead of ending the body. The yield lets hyper flush first; without it the headers
/// and the first part could die in hyper's buffer with the connection.
fn cut() -> impl Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::once(async {
        tokio::task::yield_now().await;
        Err(std::io::Error::other("the script drops this connection"))
    })
}

/// Server-sent events, one per `data`; `drop` cuts the connection after them instead of
/// ending the stream with `[DONE]`.
fn sse(data: Vec<String>, drop: bool) -> Response {
    let events = data.into_iter().map(|data| Ok(Bytes::from(format!("data: {data}\n\n"))));
    let events = futures::stream::iter(events);
    let body = if drop {
        Body::from_stream(events.chain(cut()))
    } else {
        let done = Ok(Bytes::from(format!("data: {}\n\n", wire::DONE)));
        Body::from_stream(events.chain(futures::stream::iter([done])))
    };
    ([(header::CONTENT_TYPE, "text/event-stream")], body).into_response()
}

/// What one chat call's answer is built from.
struct Reply {
    request: ChatRequest,
    include_usage: bool,
}

impl Reply {
    fn id(&self) -> String {
        format!("chatcmpl-{}", uuid::Uuid::now_v7().simple())
    }

    fn prompt(&self) -> String {
        self.request.messages.iter().map(|message| message.content.as_str()).collect::<Vec<_>>().join(" ")
    }

    /// A text or tool-call answer as the port's response.
    fn response(&self, answer: Answer) -> ChatResponse {
        let (message, finish_reason) = match answer {
            Answer::ToolCalls(tool_calls) => {
                (ChatMessage { tool_calls, ..ChatMessage::new(Role::Assistant, "") }, FinishReason::ToolCalls)
            }
            Answer::Text(text) => (ChatMessage::new(Role::Assistant, text), FinishReason::Stop),
            _ => unreachable!("only text and tool calls are answers"),
        };
        let completion = message.tool_calls.iter().map(|call| call.arguments.to_string()).collect::<String>();
        ChatResponse {
            provider: "scripted".into(),
            model: self.request.model.clone(),
            usage: usage(&self.prompt(), &(message.content.clone() + &completion)),
            message,
            finish_reason,
            cost: 0.0,
        }
    }

    fn encoder(&self) -> ChunkEncoder {
        ChunkEncoder::new(self.id(), now(), self.request.model.clone(), self.include_usage)
    }

    /// One chunk per word, then the finish (and usage) chunks.
    fn text_events(&self, text: &str) -> Vec<String> {
        let mut encoder = self.encoder();
        let words = text
            .split_inclusive(' ')
            .map(|word| ChatChunk::Delta { content: word.into(), tool_calls: vec![] });
        let done = ChatChunk::Done { usage: usage(&self.prompt(), text), finish_reason: FinishReason::Stop };
        words.chain([done]).flat_map(|chunk| encoder.encode(&chunk)).map(|chunk| to_json(&chunk)).collect()
    }

    /// Each call as its id and name, then its arguments in two halves, so that clients
    /// must put them together; then the finish (and usage) chunks.
    fn tool_call_events(&self, calls: Vec<mark1_actors::ports::model::ToolCall>) -> Vec<String> {
        let mut encoder = self.encoder();
        let mut chunks = Vec::new();
        let response = self.response(Answer::ToolCalls(calls.clone()));
        for (index, call) in (0..).zip(calls) {
            let arguments = call.arguments.to_string();
            let middle = (arguments.len() / 2..).find(|&i| arguments.is_char_boundary(i)).unwrap_or_default();
            let (first, second) = arguments.split_at(middle);
            let pieces = [(Some(call.id), Some(call.name), ""), (None, None, first), (None, None, second)];
            for (id, name, arguments) in pieces {
                let fragment = wire::ToolCallDelta {
                    index,
                    kind: id.as_ref().map(|_| "function".into()),
                    id,
                    function: wire::FunctionDelta { name, arguments: Some(arguments.into()) },
                };
                chunks.push(encoder.delta(wire::Delta { tool_calls: vec![fragment], ..Default::default() }));
            }
        }
        let done = ChatChunk::Done { usage: response.usage, finish_reason: FinishReason::ToolCalls };
        chunks.extend(encoder.encode(&done));
        chunks.iter().map(to_json).collect()
    }
}

fn to_json(chunk: &wire::ChatCompletionChunk) -> String {
    serde_json::to_string(chunk).expect("chunks built from the port's types serialize")
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs())
}
