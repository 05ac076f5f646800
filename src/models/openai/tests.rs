//! The provider against the scripted server (and, where a test must see the socket, a
//! bare TCP listener): every answer and every failure the port distinguishes.

use std::time::Duration;

use futures::StreamExt;
use mark1_actors::ports::model::{
    ChatChunk, ChatMessage, ChatRequest, EmbedRequest, FinishReason, ModelError, ModelProvider, Role,
    ToolCall, ToolSpec, Usage,
};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::OpenAiProvider;
use crate::models::scripted::{self, Answer, ScriptedServer};

async fn scripted() -> (ScriptedServer, OpenAiProvider) {
    let server = ScriptedServer::start().await.unwrap();
    let provider = OpenAiProvider::new("vllm", &server.openai_url(), None).unwrap();
    (server, provider)
}

fn hello() -> ChatRequest {
    ChatRequest::new("llama3.1", vec![ChatMessage::new(Role::User, "say hello")])
}

fn weather_calls() -> Vec<ToolCall> {
    vec![
        ToolCall {
            id: "call_1".into(),
            name: "weather".into(),
            arguments: json!({"city": "Paris", "days": 3}),
        },
        ToolCall { id: "call_2".into(), name: "time".into(), arguments: json!({"zone": "Europe/Paris"}) },
    ]
}

/// Every item of the stream, bounded so that a stream that never ends fails the test.
async fn drain(provider: &OpenAiProvider, request: ChatRequest) -> Vec<Result<ChatChunk, ModelError>> {
    let stream = provider.chat_stream(request).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), stream.collect()).await.expect("the stream ends")
}

fn dones(chunks: &[Result<ChatChunk, ModelError>]) -> usize {
    chunks.iter().filter(|chunk| matches!(chunk, Ok(ChatChunk::Done { .. }))).count()
}

#[tokio::test]
async fn lists_models_with_inferred_capabilities_and_context_length() {
    let (_server, provider) = scripted().await;
    let models = provider.models().await.unwrap();
    assert_eq!(models.len(), 2);
    let chat = models.iter().find(|model| model.id == "llama3.1").unwrap();
    assert_eq!((chat.provider.as_str(), chat.context_length), ("vllm", Some(8192)));
    assert!(chat.capabilities.chat && chat.capabilities.tools);
    let embedding = models.iter().find(|model| model.id == "nomic-embed-text").unwrap();
    assert!(embedding.capabilities.embeddings && !embedding.capabilities.chat);
}

#[tokio::test]
async fn chat_returns_the_content_and_usage() {
    let (server, provider) = scripted().await;
    server.script.push(Answer::Text("hello there friend".into()));
    let mut request = hello();
    request.options.max_tokens = Some(16);
    let answer = provider.chat(request).await.unwrap();
    assert_eq!((answer.provider.as_str(), answer.model.as_str()), ("vllm", "llama3.1"));
    assert_eq!(answer.message.content, "hello there friend");
    assert_eq!(answer.usage, Usage { prompt_tokens: 2, completion_tokens: 3 });
    assert_eq!(answer.finish_reason, FinishReason::Stop);
    let sent = &server.script.requests()[0];
    assert_eq!((&sent["max_tokens"], sent.get("stream")), (&json!(16), None));
}

#[tokio::test]
async fn chat_parses_tool_call_arguments() {
    let (server, provider) = scripted().await;
    server.script.push(Answer::ToolCalls(weather_calls()));
    let mut request = hello();
    request.tools =
        vec![ToolSpec { name: "weather".into(), description: String::new(), parameters: json!({}) }];
    let answer = provider.chat(request).await.unwrap();
    assert_eq!(answer.message.tool_calls, weather_calls());
    assert_eq!(answer.finish_reason, FinishReason::ToolCalls);
    assert_eq!(server.script.requests()[0]["tools"][0]["function"]["name"], json!("weather"));
}

#[tokio::test]
async fn streamed_text_comes_as_deltas_then_one_done_with_usage() {
    let (server, provider) = scripted().await;
    server.script.push(Answer::Text("one two three".into()));
    let chunks = drain(&provider, hello()).await;
    let text: String = (chunks.iter())
        .filter_map(|chunk| match chunk {
            Ok(ChatChunk::Delta { content, .. }) => Some(content.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(text, "one two three");
    assert!(chunks.len() >= 4, "one delta per word, then Done: {chunks:?}");
    assert_eq!(dones(&chunks), 1);
    let usage = Usage { prompt_tokens: 2, completion_tokens: 3 };
    assert_eq!(chunks.last(), Some(&Ok(ChatChunk::Done { usage, finish_reason: FinishReason::Stop })));
    assert_eq!(server.script.requests()[0]["stream_options"], json!({"include_usage": true}));
}

#[tokio::test]
async fn streamed_tool_calls_are_put_back_together() {
    let (server, provider) = scripted().await;
    server.script.push(Answer::ToolCalls(weather_calls()));
    let chunks = drain(&provider, hello()).await;
    let calls: Vec<ToolCall> = (chunks.iter())
        .flat_map(|chunk| match chunk {
            Ok(ChatChunk::Delta { tool_calls, .. }) => tool_calls.clone(),
            _ => Vec::new(),
        })
        .collect();
    assert_eq!(calls, weather_calls());
    assert_eq!(dones(&chunks), 1);
    assert!(matches!(
        chunks.last(),
        Some(Ok(ChatChunk::Done { finish_reason: FinishReason::ToolCalls, .. }))
    ));
}

#[tokio::test]
async fn embeds_every_input_in_order() {
    let (_server, provider) = scripted().await;
    let request = EmbedRequest { model: "nomic-embed-text".into(), input: vec!["a b".into(), "c".into()] };
    let answer = provider.embed(request).await.unwrap();
    assert_eq!(answer.embeddings, vec![scripted::embed("a b"), scripted::embed("c")]);
    assert_eq!((answer.provider.as_str(), answer.usage.prompt_tokens), ("vllm", 3));
}

#[tokio::test]
async fn an_error_status_is_rejected_with_the_servers_message() {
    let (server, provider) = scripted().await;
    server.script.push(Answer::Error { status: 400, message: "context too long".into() });
    let error = provider.chat(hello()).await.unwrap_err();
    assert_eq!(
        error,
        ModelError::Rejected { provider: "vllm".into(), status: 400, reason: "context too long".into() }
    );
    assert!(!error.is_provider_fault());
    let unknown = provider.chat(ChatRequest { model: "gpt-9".into(), ..hello() }).await.unwrap_err();
    assert!(matches!(unknown, ModelError::Rejected { status: 404, .. }), "{unknown:?}");
}

#[tokio::test]
async fn a_503_is_the_providers_fault_in_both_modes() {
    let (server, provider) = scripted().await;
    server.script.push(Answer::Error { status: 503, message: "overloaded".into() });
    server.script.push(Answer::Error { status: 503, message: "overloaded".into() });
    let error = provider.chat(hello()).await.unwrap_err();
    assert!(
        matches!(error, ModelError::Rejected { status: 503, .. }) && error.is_provider_fault(),
        "{error:?}"
    );
    let Err(error) = provider.chat_stream(hello()).await else { panic!("a 503 stream starts") };
    assert!(error.is_provider_fault(), "{error:?}");
}

#[tokio::test]
async fn garbage_is_an_invalid_response() {
    let (server, provider) = scripted().await;
    for _ in 0..3 {
        server.script.push(Answer::Garbage);
    }
    let invalid = |result: Result<_, ModelError>| matches!(result, Err(ModelError::InvalidResponse { .. }));
    assert!(invalid(provider.chat(hello()).await.map(drop)));
    let request = EmbedRequest { model: "nomic-embed-text".into(), input: vec!["x".into()] };
    assert!(invalid(provider.embed(request).await.map(drop)));
    let chunks = drain(&provider, hello()).await;
    assert_eq!(chunks.len(), 1, "the stream stops at the garbage: {chunks:?}");
    assert!(invalid(chunks[0].clone().map(drop)));
}

#[tokio::test]
async fn a_dropped_connection_is_unavailable_never_a_done() {
    let (server, provider) = scripted().await;
    server.script.push(Answer::Drop);
    server.script.push(Answer::Drop);
    let error = provider.chat(hello()).await.unwrap_err();
    assert!(matches!(error, ModelError::Unavailable { .. }), "{error:?}");
    let chunks = drain(&provider, hello()).await;
    assert_eq!(dones(&chunks), 0, "{chunks:?}");
    assert!(matches!(chunks.last(), Some(Err(ModelError::Unavailable { .. }))), "{chunks:?}");
}

#[tokio::test]
async fn a_wrong_api_key_is_rejected_401_and_the_right_one_passes() {
    let server = ScriptedServer::start().await.unwrap();
    server.script.require_api_key("sk-right");
    let wrong = OpenAiProvider::new("vllm", &server.openai_url(), Some("sk-wrong".into())).unwrap();
    let error = wrong.chat(hello()).await.unwrap_err();
    assert!(
        matches!(error, ModelError::Rejected { status: 401, .. }) && !error.is_provider_fault(),
        "{error:?}"
    );
    let right = OpenAiProvider::new("vllm", &server.openai_url(), Some("sk-right".into())).unwrap();
    assert_eq!(right.models().await.unwrap().len(), 2);
}

#[tokio::test]
async fn an_unused_port_is_unavailable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let provider = OpenAiProvider::new("vllm", &format!("http://127.0.0.1:{port}/v1"), None).unwrap();
    let error = provider.models().await.unwrap_err();
    assert!(matches!(error, ModelError::Unavailable { .. }) && error.is_provider_fault(), "{error:?}");
}

#[test]
fn a_base_url_must_be_http() {
    assert!(OpenAiProvider::new("p", "ftp://host/v1", None).is_err());
    assert!(OpenAiProvider::new("p", "localhost:8000", None).is_err());
    let provider = OpenAiProvider::new("p", "https://host/v1/", None).unwrap();
    assert_eq!(provider.endpoints.chat.as_str(), "https://host/v1/chat/completions", "one slash");
}

#[tokio::test]
async fn a_script_that_forgets_request_bodies_still_counts_the_calls() {
    let (server, provider) = scripted().await;
    provider.chat(hello()).await.unwrap();
    server.script.forget_requests();
    provider.chat(hello()).await.unwrap();
    provider.models().await.unwrap();
    assert_eq!(server.script.calls(), 2, "model calls, not listings");
    assert_eq!(server.script.requests().len(), 1, "the body before forgetting");
}

#[tokio::test]
async fn a_hanging_server_is_given_up_on() {
    let (server, provider) = scripted().await;
    server.script.push(Answer::Hang);
    let gave_up = tokio::time::timeout(Duration::from_millis(300), provider.chat(hello())).await;
    assert!(gave_up.is_err());
    // The provider is not stuck: the next call is answered.
    assert_eq!(provider.chat(hello()).await.unwrap().message.content, "say hello");
}

/// A server on a bare socket that reads the request, writes `reply`, and then says
/// when the client closes the connection: the proof that a dropped call leaves nothing open.
async fn bare_server(reply: String) -> (String, tokio::sync::oneshot::Receiver<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let (closed, on_close) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buffer = vec![0; 64 * 1024];
        let _ = socket.read(&mut buffer).await.unwrap();
        socket.write_all(reply.as_bytes()).await.unwrap();
        while socket.read(&mut buffer).await.is_ok_and(|read| read > 0) {}
        let _ = closed.send(());
    });
    (url, on_close)
}

#[tokio::test]
async fn a_call_given_up_on_closes_its_connection() {
    let (url, on_close) = bare_server(String::new()).await;
    let provider = OpenAiProvider::new("vllm", &url, None).unwrap();
    assert!(tokio::time::timeout(Duration::from_millis(300), provider.chat(hello())).await.is_err());
    tokio::time::timeout(Duration::from_secs(5), on_close).await.expect("the connection is closed").unwrap();
}

#[tokio::test]
async fn a_dropped_stream_closes_its_connection() {
    let event = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n";
    let reply = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{event}\r\n",
        event.len()
    );
    let (url, on_close) = bare_server(reply).await;
    let provider = OpenAiProvider::new("vllm", &url, None).unwrap();
    let mut stream = provider.chat_stream(hello()).await.unwrap();
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first, ChatChunk::Delta { content: "hi".into(), tool_calls: vec![] });
    drop(stream);
    tokio::time::timeout(Duration::from_secs(5), on_close).await.expect("the connection is closed").unwrap();
}
