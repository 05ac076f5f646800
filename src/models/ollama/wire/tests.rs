use mark1_actors::ports::model::{self as port, ChatChunk, FinishReason, ResponseFormat, Role, Usage};
use serde_json::json;

use super::*;

fn chat(body: Value) -> Result<port::ChatRequest, WireError> {
    port::ChatRequest::try_from(parse::<ChatRequest>(body.to_string().as_bytes())?)
}

#[test]
fn stream_defaults_to_true_and_can_be_turned_off() {
    let request: ChatRequest = parse(br#"{"model":"m","messages":[]}"#).unwrap();
    assert!(request.streams());
    let request: ChatRequest = parse(br#"{"model":"m","messages":[],"stream":false}"#).unwrap();
    assert!(!request.streams());
    let request: GenerateRequest = parse(br#"{"model":"m","prompt":"hi"}"#).unwrap();
    assert!(request.streams());
}

#[test]
fn format_is_json_or_a_schema() {
    let request = chat(json!({"model": "m", "messages": [], "format": "json"})).unwrap();
    assert_eq!(request.format, Some(ResponseFormat::Json));
    let schema = json!({"type": "object", "properties": {"a": {"type": "number"}}});
    let request = chat(json!({"model": "m", "messages": [], "format": schema})).unwrap();
    assert_eq!(request.format, Some(ResponseFormat::JsonSchema(schema)));
    let error = chat(json!({"model": "m", "messages": [], "format": "yaml"})).unwrap_err();
    assert_eq!(error.field, "format");
}

#[test]
fn a_bad_request_names_its_field() {
    let error =
        chat(json!({"model": "m", "messages": [{"role": "user", "content": "a"}, {"role": "robot"}]}));
    assert_eq!(error.unwrap_err().field, "messages[1].role");
    let error = chat(json!({"model": "m", "messages": [], "options": {"temperature": "hot"}})).unwrap_err();
    assert_eq!(error.field, "options.temperature");
    let error = chat(json!({"model": "", "messages": []})).unwrap_err();
    assert_eq!(error.field, "model");
    let arguments = json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": [1]}}]}]});
    assert_eq!(chat(arguments).unwrap_err().field, "messages[0].tool_calls[0].function.arguments");
    let error = parse::<ChatRequest>(b"{\"model\":\"m\"} trailing").unwrap_err();
    assert_eq!(error.field, "body");
}

#[test]
fn unknown_fields_and_nulls_from_real_clients_are_tolerated() {
    let request = chat(json!({
        "model": "m",
        "messages": [{"role": "user", "content": "hi", "images": null, "extra": 1}],
        "tools": null,
        "options": {"temperature": 0.5, "num_predict": 64, "mirostat": 2, "stop": null, "seed": 7},
        "keep_alive": "5m",
        "think": true,
        "something_new": {"x": 1},
    }))
    .unwrap();
    assert_eq!(request.messages, vec![port::ChatMessage::new(Role::User, "hi")]);
    assert_eq!(request.options.temperature, Some(0.5));
    assert_eq!(request.options.max_tokens, Some(64));
    assert_eq!(request.options.seed, Some(7));
}

#[test]
fn unlimited_num_predict_sets_no_limit() {
    let request = chat(json!({"model": "m", "messages": [], "options": {"num_predict": -1}})).unwrap();
    assert_eq!(request.options.max_tokens, None);
}

#[test]
fn tool_calls_get_ids_and_tool_results_find_their_call() {
    let request = chat(json!({
        "model": "m",
        "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"function": {"name": "weather", "arguments": {"city": "Paris"}}},
                {"function": {"name": "time", "arguments": "{\"zone\": \"CET\"}"}},
            ]},
            {"role": "tool", "content": "12:00", "tool_name": "time"},
            {"role": "tool", "content": "sunny"},
        ],
        "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}],
    }))
    .unwrap();
    let calls = &request.messages[1].tool_calls;
    assert_eq!((calls[0].id.as_str(), calls[1].id.as_str()), ("call_0", "call_1"));
    assert_eq!(calls[1].arguments, json!({"zone": "CET"}));
    assert_eq!(request.messages[2].tool_call_id.as_deref(), Some("call_1"));
    // Without a tool_name, the second result answers the second call.
    assert_eq!(request.messages[3].tool_call_id.as_deref(), Some("call_1"));
    assert_eq!(request.tools[0].name, "weather");
}

#[test]
fn generate_and_embed_requests_convert() {
    let request: GenerateRequest =
        parse(br#"{"model":"m","prompt":"hi","system":"be brief","raw":true,"format":"json"}"#).unwrap();
    let request = port::GenerateRequest::try_from(request).unwrap();
    assert_eq!((request.prompt.as_str(), request.system.as_deref()), ("hi", Some("be brief")));
    assert_eq!(request.format, Some(ResponseFormat::Json));

    let one: EmbedRequest = parse(br#"{"model":"e","input":"a"}"#).unwrap();
    assert_eq!(port::EmbedRequest::try_from(one).unwrap().input, vec!["a".to_string()]);
    let many: EmbedRequest = parse(br#"{"model":"e","input":["a","b"]}"#).unwrap();
    assert_eq!(port::EmbedRequest::try_from(many).unwrap().input.len(), 2);
    let none: EmbedRequest = parse(br#"{"model":"e","input":[]}"#).unwrap();
    assert_eq!(port::EmbedRequest::try_from(none).unwrap_err().field, "input");
}

#[test]
fn chunks_become_lines_and_the_last_carries_counts() {
    let delta = ChatChunk::Delta { content: "hel".into(), tool_calls: vec![] };
    let line = serde_json::to_value(ChatResponse::line("m", "t", &delta)).unwrap();
    assert_eq!(
        line,
        json!({"model": "m", "created_at": "t", "message": {"role": "assistant", "content": "hel"}, "done": false})
    );

    let done = ChatChunk::Done {
        usage: Usage { prompt_tokens: 3, completion_tokens: 5 },
        finish_reason: FinishReason::Length,
    };
    let line = serde_json::to_value(ChatResponse::line("m", "t", &done)).unwrap();
    assert_eq!(line["done"], json!(true));
    assert_eq!(line["done_reason"], json!("length"));
    assert_eq!((line["prompt_eval_count"].clone(), line["eval_count"].clone()), (json!(3), json!(5)));
    let back: ChatResponse = serde_json::from_value(line).unwrap();
    assert_eq!(back.end.unwrap().eval_count, 5);
    let back: ChatResponse =
        serde_json::from_value(serde_json::to_value(ChatResponse::line("m", "t", &delta)).unwrap()).unwrap();
    assert_eq!((back.done, back.end), (false, None));

    let line = serde_json::to_value(GenerateResponse::line("m", "t", &delta)).unwrap();
    assert_eq!(line["response"], json!("hel"));
}

#[test]
fn a_complete_answer_keeps_tool_calls_without_ids() {
    let call = port::ToolCall { id: "call_0".into(), name: "f".into(), arguments: json!({"x": 1}) };
    let response = port::ChatResponse {
        provider: "p".into(),
        model: "m".into(),
        message: port::ChatMessage { tool_calls: vec![call], ..port::ChatMessage::new(Role::Assistant, "") },
        usage: Usage::default(),
        finish_reason: FinishReason::ToolCalls,
        cost: 0.0,
    };
    let body = serde_json::to_value(ChatResponse::complete(&response, "t")).unwrap();
    assert_eq!(body["message"]["tool_calls"], json!([{"function": {"name": "f", "arguments": {"x": 1}}}]));
    assert_eq!(body["done_reason"], json!("stop"));
}

#[test]
fn capabilities_and_context_length_from_show() {
    let names = capability_names(&ModelCapabilities { chat: true, vision: true, ..Default::default() });
    assert_eq!(names, vec!["completion", "vision"]);
    assert_eq!(
        capabilities_from(&names),
        ModelCapabilities { chat: true, vision: true, ..Default::default() }
    );

    let info =
        json!({"general.architecture": "llama", "bert.context_length": 512, "llama.context_length": 131072});
    assert_eq!(context_length(info.as_object().unwrap()), Some(131_072));
    let info = json!({"qwen2.context_length": 32768});
    assert_eq!(context_length(info.as_object().unwrap()), Some(32_768));
    assert_eq!(context_length(&Map::new()), None);
}

#[test]
fn show_accepts_the_old_name_field() {
    let request: ShowRequest = parse(br#"{"name":"llama3.1"}"#).unwrap();
    assert_eq!(request.model, "llama3.1");
}
