//! The real adapter against the scripted server.

use std::time::Duration;

use futures::StreamExt;
use mark1_actors::ports::model::{
    ChatChunk, ChatMessage, ChatRequest, EmbedRequest, FinishReason, GenerateRequest, ModelCapabilities,
    ModelError, ModelProvider, Role, ToolCall, ToolSpec, Usage,
};
use serde_json::json;

use super::OllamaProvider;
use crate::models::scripted::{Answer, ScriptedServer};

async fn setup() -> (ScriptedServer, OllamaProvider) {
    let server = ScriptedServer::start().await.unwrap();
    let provider = OllamaProvider::new("local", &server.ollama_url(), None).unwrap();
    (server, provider)
}

fn ask(text: &str) -> ChatRequest {
    ChatRequest::new("llama3.1", vec![ChatMessage::new(Role::User, text)])
}

fn generation(prompt: &str) -> GenerateRequest {
    GenerateRequest {
        model: "llama3.1".into(),
        prompt: prompt.into(),
        system: Some("be brief".into()),
        images: Vec::new(),
        options: Default::default(),
        format: None,
    }
}

/// Every item of a stream, stopping at the first error.
async fn drain(provider: &OllamaProvider, request: ChatRequest) -> Vec<Result<ChatChunk, ModelError>> {
    let stream = provider.chat_stream(request).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), stream.collect::<Vec<_>>()).await.expect("the stream ends")
}

#[tokio::test]
async fn lists_models_with_capabilities_and_context_length() {
    let (_server, provider) = setup().await;
    let mut models = provider.models().await.unwrap();
    models.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(models.len(), 2);
    assert_eq!((models[0].id.as_str(), models[0].provider.as_str()), ("llama3.1", "local"));
    assert_eq!(models[0].capabilities, ModelCapabilities { chat: true, tools: true, ..Default::default() });
    assert_eq!(models[0].context_length, Some(8192));
    assert_eq!(models[1].capabilities, ModelCapabilities { embeddings: true, ..Default::default() });
    assert_eq!(models[1].context_length, Some(512));
}

#[tokio::test]
async fn chats_and_sends_options_and_format() {
    let (server, provider) = setup().await;
    server.script.push(Answer::Text("hello there".into()));
    let mut request = ask("say hi to me");
    request.options.max_tokens = Some(100);
    request.options.temperature = Some(0.2);
    request.options.seed = Some(1 << 40);
    request.format = Some(mark1_actors::ports::model::ResponseFormat::Json);
    let response = provider.chat(request).await.unwrap();
    assert_eq!((response.provider.as_str(), response.model.as_str()), ("local", "llama3.1"));
    assert_eq!(response.message.content, "hello there");
    assert_eq!(response.usage, Usage { prompt_tokens: 4, completion_tokens: 2 });
    assert_eq!(response.finish_reason, FinishReason::Stop);
    let sent = &server.script.requests()[0];
    assert_eq!(sent["stream"], json!(false));
    assert_eq!(sent["format"], json!("json"));
    assert_eq!(sent["options"]["num_predict"], json!(100));
    assert_eq!(sent["options"]["seed"], json!(1_u64 << 40));
}

#[tokio::test]
async fn an_answer_at_the_token_limit_finished_for_length() {
    let (server, provider) = setup().await;
    server.script.push(Answer::Text("one two three".into()));
    let mut request = ask("count");
    request.options.max_tokens = Some(3);
    assert_eq!(provider.chat(request).await.unwrap().finish_reason, FinishReason::Length);
}

#[tokio::test]
async fn chats_with_tool_calls() {
    let (server, provider) = setup().await;
    let call = ToolCall { id: "ignored".into(), name: "weather".into(), arguments: json!({"city": "Paris"}) };
    server.script.push(Answer::ToolCalls(vec![call.clone(), ToolCall { name: "time".into(), ..call }]));
    let mut request = ask("weather in Paris?");
    let parameters = json!({"type": "object", "properties": {"city": {"type": "string"}}});
    request.tools = vec![ToolSpec { name: "weather".into(), description: "the weather".into(), parameters }];
    let response = provider.chat(request).await.unwrap();
    assert_eq!(response.finish_reason, FinishReason::ToolCalls);
    let calls = &response.message.tool_calls;
    assert_eq!((calls[0].id.as_str(), calls[0].name.as_str()), ("call_0", "weather"));
    assert_eq!((calls[1].id.as_str(), calls[1].name.as_str()), ("call_1", "time"));
    assert_eq!(calls[0].arguments, json!({"city": "Paris"}));
    assert_eq!(server.script.requests()[0]["tools"][0]["function"]["name"], json!("weather"));
}

#[tokio::test]
async fn streams_deltas_then_one_done() {
    let (server, provider) = setup().await;
    server.script.push(Answer::Text("a streamed answer".into()));
    let chunks: Vec<ChatChunk> = drain(&provider, ask("go")).await.into_iter().map(Result::unwrap).collect();
    let (last, deltas) = chunks.split_last().unwrap();
    let text: String = deltas
        .iter()
        .map(|chunk| match chunk {
            ChatChunk::Delta { content, .. } => content.as_str(),
            ChatChunk::Done { .. } => panic!("a Done before the end"),
        })
        .collect();
    assert_eq!((deltas.len(), text.as_str()), (3, "a streamed answer"));
    let usage = Usage { prompt_tokens: 1, completion_tokens: 3 };
    assert_eq!(last, &ChatChunk::Done { usage, finish_reason: FinishReason::Stop });
    assert_eq!(server.script.requests()[0]["stream"], json!(true));
}

#[tokio::test]
async fn streamed_tool_calls_finish_for_tools() {
    let (server, provider) = setup().await;
    let call = ToolCall { id: String::new(), name: "weather".into(), arguments: json!({}) };
    server.script.push(Answer::ToolCalls(vec![call]));
    let chunks: Vec<ChatChunk> = drain(&provider, ask("go")).await.into_iter().map(Result::unwrap).collect();
    assert!(matches!(&chunks[0], ChatChunk::Delta { tool_calls, .. } if tool_calls[0].id == "call_0"));
    assert!(matches!(chunks[1], ChatChunk::Done { finish_reason: FinishReason::ToolCalls, .. }));
}

#[tokio::test]
async fn generates_natively() {
    let (server, provider) = setup().await;
    server.script.push(Answer::Text("once upon".into()));
    server.script.push(Answer::Text("a time".into()));
    let request = generation("tell a story");
    let response = provider.generate(request.clone()).await.unwrap();
    assert_eq!(response.message.content, "once upon");
    let chunks: Vec<_> = provider.generate_stream(request).await.unwrap().collect().await;
    let chunks: Vec<ChatChunk> = chunks.into_iter().map(Result::unwrap).collect();
    assert_eq!(chunks.len(), 3);
    assert!(matches!(chunks[2], ChatChunk::Done { usage: Usage { completion_tokens: 2, .. }, .. }));
    // Only /api/generate takes a `prompt` and a `system` field.
    for sent in server.script.requests() {
        assert_eq!(
            (sent["prompt"].clone(), sent["system"].clone()),
            (json!("tell a story"), json!("be brief"))
        );
        assert!(sent.get("messages").is_none());
    }
}

#[tokio::test]
async fn embeds() {
    let (_server, provider) = setup().await;
    let request = EmbedRequest { model: "nomic-embed-text".into(), input: vec!["a".into(), "bc".into()] };
    let response = provider.embed(request).await.unwrap();
    assert_eq!(
        response.embeddings,
        vec![crate::models::scripted::embed("a"), crate::models::scripted::embed("bc")]
    );
    assert_eq!((response.provider.as_str(), response.model.as_str()), ("local", "nomic-embed-text"));
}

#[tokio::test]
async fn an_http_error_is_a_rejection_with_ollamas_message() {
    let (server, provider) = setup().await;
    server.script.push(Answer::Error { status: 400, message: "invalid options: mirostat".into() });
    let error = provider.chat(ask("hi")).await.unwrap_err();
    let expected = ModelError::Rejected {
        provider: "local".into(),
        status: 400,
        reason: "invalid options: mirostat".into(),
    };
    assert_eq!(error, expected);
    assert!(!error.is_provider_fault());

    let error = provider.chat(ChatRequest::new("nope", vec![])).await.unwrap_err();
    assert!(
        matches!(error, ModelError::Rejected { status: 404, ref reason, .. } if reason.contains("\"nope\" not found"))
    );
}

#[tokio::test]
async fn a_busy_server_is_the_providers_fault() {
    let (server, provider) = setup().await;
    let busy = "server busy, please try again.  maximum pending requests exceeded";
    server.script.push(Answer::Error { status: 503, message: busy.into() });
    server.script.push(Answer::Error { status: 503, message: busy.into() });
    let error = provider.chat(ask("hi")).await.unwrap_err();
    assert!(matches!(error, ModelError::Rejected { status: 503, .. }), "{error:?}");
    assert!(error.is_provider_fault());
    let error = provider.chat_stream(ask("hi")).await.err().expect("a rejection");
    assert!(error.is_provider_fault(), "{error:?}");
}

#[tokio::test]
async fn garbage_is_an_invalid_response() {
    let (server, provider) = setup().await;
    server.script.push(Answer::Garbage);
    server.script.push(Answer::Garbage);
    let error = provider.chat(ask("hi")).await.unwrap_err();
    assert!(matches!(error, ModelError::InvalidResponse { .. }), "{error:?}");
    let items = drain(&provider, ask("hi")).await;
    assert!(matches!(items.as_slice(), [Err(ModelError::InvalidResponse { .. })]), "{items:?}");
}

#[tokio::test]
async fn a_dropped_stream_ends_in_an_error_not_a_done() {
    let (server, provider) = setup().await;
    server.script.push(Answer::Drop);
    let items = drain(&provider, ask("hi")).await;
    let partial = ChatChunk::Delta { content: "partial ".into(), tool_calls: Vec::new() };
    assert!(
        matches!(items.as_slice(), [Ok(first), Err(ModelError::Unavailable { .. })] if *first == partial),
        "{items:?}"
    );

    server.script.push(Answer::Drop);
    let error = provider.chat(ask("hi")).await.unwrap_err();
    assert!(matches!(error, ModelError::Unavailable { .. }), "{error:?}");

    server.script.push(Answer::Drop);
    let request = GenerateRequest { system: None, ..generation("go on") };
    let stream = provider.generate_stream(request).await.unwrap();
    let items: Vec<_> = tokio::time::timeout(Duration::from_secs(10), stream.collect()).await.unwrap();
    assert!(matches!(items.last(), Some(Err(ModelError::Unavailable { .. }))), "{items:?}");
    assert!(!items.iter().any(|item| matches!(item, Ok(ChatChunk::Done { .. }))), "{items:?}");
}

#[tokio::test]
async fn a_wrong_api_key_is_rejected_with_401() {
    let (server, _) = setup().await;
    server.script.require_api_key("secret");
    let wrong = OllamaProvider::new("local", &server.ollama_url(), Some("guess".into())).unwrap();
    let error = wrong.chat(ask("hi")).await.unwrap_err();
    assert!(matches!(error, ModelError::Rejected { status: 401, .. }), "{error:?}");
    let right = OllamaProvider::new("local", &server.ollama_url(), Some("secret".into())).unwrap();
    assert_eq!(right.models().await.unwrap().len(), 2);
}

#[tokio::test]
async fn an_unused_port_is_unavailable() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let provider = OllamaProvider::new("local", &format!("http://127.0.0.1:{port}"), None).unwrap();
    let error = provider.models().await.unwrap_err();
    assert!(
        matches!(error, ModelError::Unavailable { ref provider, .. } if provider == "local"),
        "{error:?}"
    );
    assert!(error.is_provider_fault());
}

#[tokio::test]
async fn ping_answers_whether_the_server_is_there() {
    let (_server, provider) = setup().await;
    provider.ping().await.expect("the scripted server answers");
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let gone = OllamaProvider::new("local", &format!("http://127.0.0.1:{port}"), None).unwrap();
    assert!(matches!(gone.ping().await, Err(ModelError::Unavailable { .. })));
}

#[tokio::test]
async fn a_hanging_server_is_given_up_on_by_the_caller() {
    let (server, provider) = setup().await;
    server.script.push(Answer::Hang);
    let waited = tokio::time::timeout(Duration::from_millis(200), provider.chat(ask("hi"))).await;
    assert!(waited.is_err(), "the adapter must not answer for a hanging server");
    // The server is still there for the next call.
    assert_eq!(provider.chat(ask("again")).await.unwrap().message.content, "again");
}

#[test]
fn a_bad_base_url_or_key_is_a_setup_error() {
    assert!(matches!(OllamaProvider::new("x", "not a url", None), Err(super::SetupError::BaseUrl { .. })));
    assert!(matches!(
        OllamaProvider::new("x", "http://h:1", Some("a\nb".into())),
        Err(super::SetupError::ApiKey)
    ));
}

#[tokio::test]
async fn a_model_without_details_is_listed_as_a_chat_model() {
    use axum::routing::{get, post};
    let tags =
        json!({"models": [{"name": "ghost", "model": "ghost", "modified_at": "", "size": 0, "digest": ""}]});
    let app = axum::Router::new()
        .route("/api/tags", get(move || async move { axum::Json(tags) }))
        .route("/api/show", post(|| async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "boom") }));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let models = OllamaProvider::new("local", &url, None).unwrap().models().await.unwrap();
    assert_eq!(models.len(), 1);
    assert_eq!(models[0].capabilities, ModelCapabilities { chat: true, ..Default::default() });
    assert_eq!(models[0].context_length, None);
}

#[tokio::test]
async fn a_slow_answer_still_arrives() {
    let (server, provider) = setup().await;
    server.script.push(Answer::Slow(Duration::from_millis(50), Box::new(Answer::Text("late".into()))));
    assert_eq!(provider.chat(ask("hi")).await.unwrap().message.content, "late");
}
