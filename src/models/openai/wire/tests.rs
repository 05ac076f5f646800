use mark1_actors::ports::model::{
    self as port, ChatChunk, ChatMessage, ChatRequest, ChatResponse, FinishReason as PortFinish,
    ResponseFormat as PortFormat, Role as PortRole, ToolSpec,
};
use serde_json::{json, Value};

use super::*;

fn call(id: &str, name: &str, arguments: Value) -> port::ToolCall {
    port::ToolCall { id: id.into(), name: name.into(), arguments }
}

/// Through JSON, as it travels.
fn travel<T: Serialize + serde::de::DeserializeOwned>(value: &T) -> T {
    serde_json::from_str(&serde_json::to_string(value).unwrap()).unwrap()
}

fn full_request() -> ChatRequest {
    let mut request = ChatRequest::new(
        "llama3.1",
        vec![
            ChatMessage::new(PortRole::System, "be brief"),
            ChatMessage {
                images: vec!["iVBORw0KGgoAAAA".into()],
                ..ChatMessage::new(PortRole::User, "what is this?")
            },
            ChatMessage {
                tool_calls: vec![call("call_1", "lookup", json!({"q": "png"}))],
                ..ChatMessage::new(PortRole::Assistant, "")
            },
            ChatMessage {
                tool_call_id: Some("call_1".into()),
                ..ChatMessage::new(PortRole::Tool, "an image")
            },
        ],
    );
    request.tools = vec![ToolSpec {
        name: "lookup".into(),
        description: "looks things up".into(),
        parameters: json!({"type": "object", "properties": {"q": {"type": "string"}}}),
    }];
    request.options = port::GenerationOptions {
        temperature: Some(0.5),
        top_p: Some(0.25),
        max_tokens: Some(64),
        stop: vec!["END".into()],
        seed: Some(7),
    };
    request.format = Some(PortFormat::JsonSchema(json!({"type": "object"})));
    request
}

#[test]
fn a_request_survives_the_round_trip_through_the_wire() {
    let request = full_request();
    let wire = ChatCompletionRequest::from_port(&request, true);
    let json = serde_json::to_value(&wire).unwrap();
    assert_eq!(json["messages"][2]["tool_calls"][0]["function"]["arguments"], json!(r#"{"q":"png"}"#));
    assert_eq!(
        json["messages"][1]["content"][1]["image_url"]["url"],
        json!("data:image/png;base64,iVBORw0KGgoAAAA")
    );
    assert_eq!(json["messages"][2]["content"], Value::Null, "a tool-calling turn has null content");
    assert_eq!(json["stream_options"], json!({"include_usage": true}));
    assert_eq!(json["max_tokens"], json!(64));
    assert_eq!(json["response_format"]["type"], json!("json_schema"));
    assert_eq!(travel(&wire).into_port().unwrap(), request);
}

#[test]
fn a_plain_request_sends_no_stream_fields() {
    let wire = ChatCompletionRequest::from_port(&ChatRequest::new("m", vec![]), false);
    let json = serde_json::to_value(wire).unwrap();
    for absent in ["stream", "stream_options", "tools", "stop", "response_format", "max_completion_tokens"] {
        assert!(json.get(absent).is_none(), "{absent} is sent: {json}");
    }
}

#[test]
fn content_parts_with_images_and_unknown_fields_are_read() {
    let body = json!({
        "model": "llama3.1", "n": 1, "user": "u-1", "logprobs": false,
        "messages": [
            {"role": "developer", "content": "be brief"},
            {"role": "user", "name": "ann", "content": [
                {"type": "text", "text": "what is"},
                {"type": "text", "text": "this?"},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/AAAA", "detail": "low"}}
            ]}
        ],
        "tools": null,
        "stop": "END",
        "max_tokens": 10,
        "max_completion_tokens": 20
    });
    let request = serde_json::from_value::<ChatCompletionRequest>(body).unwrap().into_port().unwrap();
    assert_eq!(request.messages[0].role, PortRole::System);
    assert_eq!(request.messages[1].content, "what is\nthis?");
    assert_eq!(request.messages[1].images, vec!["/9j/AAAA".to_string()]);
    assert_eq!(request.options.stop, vec!["END".to_string()]);
    assert_eq!(request.options.max_tokens, Some(20), "max_completion_tokens wins");
    assert_eq!(ChatCompletionRequest::from_port(&request, false).messages[1].content, {
        let parts = vec![
            ContentPart::Text { text: "what is\nthis?".into() },
            ContentPart::ImageUrl {
                image_url: ImageUrl { url: "data:image/jpeg;base64,/9j/AAAA".into(), detail: None },
            },
        ];
        Some(Content::Parts(parts))
    });
}

#[test]
fn tool_choice_none_offers_no_tools() {
    let mut wire = ChatCompletionRequest::from_port(&full_request(), false);
    wire.tool_choice = Some(json!("none"));
    assert!(wire.into_port().unwrap().tools.is_empty());
}

fn bad_field(body: Value) -> String {
    let mut request = json!({"model": "m", "messages": []});
    request.as_object_mut().unwrap().extend(body.as_object().unwrap().clone());
    serde_json::from_value::<ChatCompletionRequest>(request).unwrap().into_port().unwrap_err().field
}

#[test]
fn a_bad_request_names_its_field() {
    let image = json!({"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}});
    let cases = [
        (json!({"messages": [{"role": "user", "content": [image]}]}), "messages[0].content[0].image_url.url"),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]}),
            "messages[0].content[0].type",
        ),
        (
            json!({"messages": [{"role": "user", "content": "hi"},
                {"role": "assistant", "tool_calls": [{"id": "c", "type": "function",
                    "function": {"name": "f", "arguments": "{not json"}}]}]}),
            "messages[1].tool_calls[0].function.arguments",
        ),
        (json!({"messages": [{"role": "tool", "content": "42"}]}), "messages[0].tool_call_id"),
        (json!({"messages": [{"role": "user"}]}), "messages[0].content"),
        (json!({"tools": [{"type": "web_search", "function": {"name": "f"}}]}), "tools[0].type"),
    ];
    for (body, field) in cases {
        assert_eq!(bad_field(body.clone()), field, "for {body}");
    }
}

fn response(message: ChatMessage, finish_reason: PortFinish) -> ChatResponse {
    let usage = port::Usage { prompt_tokens: 3, completion_tokens: 5 };
    ChatResponse { provider: "p".into(), model: "llama3.1".into(), message, usage, finish_reason, cost: 0.0 }
}

#[test]
fn a_response_survives_the_round_trip_through_the_wire() {
    let calls = vec![call("call_9", "lookup", json!({"q": 1}))];
    for original in [
        response(ChatMessage::new(PortRole::Assistant, "hi"), PortFinish::Stop),
        response(
            ChatMessage { tool_calls: calls, ..ChatMessage::new(PortRole::Assistant, "") },
            PortFinish::ToolCalls,
        ),
    ] {
        let wire = ChatCompletion::from_port(&original, "chatcmpl-1", 1700000000);
        let json = serde_json::to_value(&wire).unwrap();
        assert_eq!(json["object"], json!("chat.completion"));
        assert_eq!(json["usage"], json!({"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}));
        assert_eq!(travel(&wire).into_port("p").unwrap(), original);
    }
}

#[test]
fn servers_own_finish_reasons_and_a_stop_with_tool_calls_are_read() {
    let body =
        json!({"choices": [{"message": {"role": "assistant", "content": "x"}, "finish_reason": "abort"}]});
    let answer = serde_json::from_value::<ChatCompletion>(body).unwrap().into_port("p").unwrap();
    assert_eq!((answer.finish_reason, answer.usage), (PortFinish::Stop, port::Usage::default()));
    let body = json!({"choices": [{"message": {"role": "assistant", "content": null, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": ""}}]}, "finish_reason": "stop"}]});
    let answer = serde_json::from_value::<ChatCompletion>(body).unwrap().into_port("p").unwrap();
    assert_eq!(answer.finish_reason, PortFinish::ToolCalls);
    assert_eq!(answer.message.tool_calls[0].arguments, json!({}));
    let empty = serde_json::from_value::<ChatCompletion>(json!({"choices": []})).unwrap();
    assert_eq!(empty.into_port("p").unwrap_err().field, "choices");
}

#[test]
fn encoded_chunks_decode_to_the_same_stream() {
    let usage = port::Usage { prompt_tokens: 2, completion_tokens: 4 };
    let calls = vec![call("call_1", "a", json!({"x": 1})), call("call_2", "b", json!([]))];
    let original = vec![
        ChatChunk::Delta { content: "hello ".into(), tool_calls: vec![] },
        ChatChunk::Delta { content: "world".into(), tool_calls: vec![] },
        ChatChunk::Delta { content: String::new(), tool_calls: calls },
        ChatChunk::Done { usage, finish_reason: PortFinish::ToolCalls },
    ];
    let mut encoder = ChunkEncoder::new("chatcmpl-1", 1, "m", true);
    let wire: Vec<_> = original.iter().flat_map(|chunk| encoder.encode(chunk)).collect();
    assert_eq!(wire[0].choices[0].delta.role, Some(Role::Assistant), "the first chunk names the role");
    assert_eq!(wire.last().unwrap().choices, vec![], "the usage chunk has no choices");
    let mut decoder = ChunkDecoder::default();
    let mut decoded: Vec<_> = wire.iter().filter_map(|chunk| decoder.push(travel(chunk))).collect();
    decoded.extend(decoder.finish().unwrap());
    assert_eq!(decoded, original);
}

#[test]
fn tool_call_fragments_are_put_together_by_index() {
    let fragment = |index, id: Option<&str>, name: Option<&str>, arguments: &str| ChatCompletionChunk {
        choices: vec![ChunkChoice {
            index: 0,
            delta: Delta {
                tool_calls: vec![ToolCallDelta {
                    index,
                    id: id.map(Into::into),
                    kind: None,
                    function: FunctionDelta { name: name.map(Into::into), arguments: Some(arguments.into()) },
                }],
                ..Delta::default()
            },
            finish_reason: None,
        }],
        id: "chatcmpl-1".into(),
        object: chat_completion_chunk(),
        created: 1,
        model: "m".into(),
        usage: None,
    };
    let mut decoder = ChunkDecoder::default();
    for chunk in [
        fragment(0, Some("call_a"), Some("f"), "{\"a\""),
        fragment(1, None, Some("g"), ""),
        fragment(0, None, None, ": 1}"),
    ] {
        assert_eq!(decoder.push(chunk), None, "tool calls wait for the end");
    }
    assert!(!decoder.finished());
    let chunks = decoder.finish().unwrap();
    let expected = vec![call("call_a", "f", json!({"a": 1})), call("call_1", "g", json!({}))];
    assert_eq!(chunks[0], ChatChunk::Delta { content: String::new(), tool_calls: expected });
    assert_eq!(
        chunks[1],
        ChatChunk::Done { usage: port::Usage::default(), finish_reason: PortFinish::ToolCalls }
    );

    let mut decoder = ChunkDecoder::default();
    decoder.push(fragment(0, Some("c"), Some("f"), "{\"a\":"));
    assert_eq!(decoder.finish().unwrap_err().field, "choices[0].delta.tool_calls[0].function.arguments");
}

#[test]
fn embeddings_read_one_input_and_put_vectors_in_order() {
    let request: EmbeddingsRequest =
        serde_json::from_value(json!({"model": "e", "input": "one text"})).unwrap();
    assert_eq!(request.into_port().input, vec!["one text".to_string()]);
    let body = json!({"object": "list", "model": "e", "usage": {"prompt_tokens": 4, "total_tokens": 4}, "data": [
        {"object": "embedding", "index": 1, "embedding": [2.0]},
        {"object": "embedding", "index": 0, "embedding": [1.0]}
    ]});
    let response: EmbeddingsResponse = serde_json::from_value(body).unwrap();
    let answer = response.clone().into_port("p", 2).unwrap();
    assert_eq!(answer.embeddings, vec![vec![1.0], vec![2.0]]);
    assert_eq!(answer.usage.prompt_tokens, 4);
    assert_eq!(travel(&EmbeddingsResponse::from_port(&answer)).into_port("p", 2).unwrap(), answer);
    assert_eq!(response.into_port("p", 3).unwrap_err().field, "data");
}

#[test]
fn models_infer_capabilities_and_read_vllms_context_length() {
    let list: ModelList = serde_json::from_value(json!({"object": "list", "data": [
        {"id": "Qwen/Qwen2.5-7B", "object": "model", "created": 1, "owned_by": "vllm", "max_model_len": 32768},
        {"id": "text-embedding-3-small", "object": "model"}
    ]}))
    .unwrap();
    let models: Vec<_> = list.data.into_iter().map(|model| model.into_port("p")).collect();
    assert_eq!(models[0].context_length, Some(32768));
    assert!(
        models[0].capabilities.chat && models[0].capabilities.tools && !models[0].capabilities.embeddings
    );
    assert_eq!(models[1].context_length, None);
    assert!(models[1].capabilities.embeddings && !models[1].capabilities.chat);
    assert_eq!(Model::from_port(&models[0], 1).into_port("p"), models[0]);
}

#[test]
fn error_bodies_read_string_or_number_codes() {
    let body: ErrorBody = serde_json::from_value(
        json!({"error": {"message": "no", "type": "BadRequestError", "param": null, "code": 400}}),
    )
    .unwrap();
    assert_eq!((body.error.message.as_str(), body.error.code), ("no", Some(json!(400))));
    let json = serde_json::to_value(ErrorBody::new("invalid_request_error", "bad")).unwrap();
    assert_eq!(
        json,
        json!({"error": {"message": "bad", "type": "invalid_request_error", "param": null, "code": null}})
    );
}
