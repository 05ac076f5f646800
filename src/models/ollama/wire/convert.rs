//! Conversions between Ollama's wire types and the port's: requests from the wire (for a
//! gateway), answers to it.

use mark1_actors::ports::model::{self as port, ResponseFormat, Role};
use serde_json::{Map, Value};

use super::{
    call_id, ChatRequest, ChatResponse, EmbedInput, EmbedRequest, EmbedResponse, Ending, Format,
    FunctionCall, GenerateRequest, GenerateResponse, Message, Options, Tool, ToolCall, WireError,
};

impl TryFrom<ChatRequest> for port::ChatRequest {
    type Error = WireError;

    fn try_from(request: ChatRequest) -> Result<Self, WireError> {
        let model = checked_model(request.model)?;
        let mut messages = Vec::with_capacity(request.messages.len());
        for (index, message) in request.messages.into_iter().enumerate() {
            let message = port_message(message, index, &messages)?;
            messages.push(message);
        }
        let tools = request
            .tools
            .into_iter()
            .enumerate()
            .map(|(i, tool)| port_tool(tool, i))
            .collect::<Result<_, _>>()?;
        Ok(port::ChatRequest {
            model,
            messages,
            tools,
            options: request.options.map(port_options).unwrap_or_default(),
            format: port_format(request.format)?,
        })
    }
}

impl TryFrom<GenerateRequest> for port::GenerateRequest {
    type Error = WireError;

    fn try_from(request: GenerateRequest) -> Result<Self, WireError> {
        Ok(port::GenerateRequest {
            model: checked_model(request.model)?,
            prompt: request.prompt,
            system: request.system,
            images: request.images,
            options: request.options.map(port_options).unwrap_or_default(),
            format: port_format(request.format)?,
        })
    }
}

impl TryFrom<EmbedRequest> for port::EmbedRequest {
    type Error = WireError;

    fn try_from(request: EmbedRequest) -> Result<Self, WireError> {
        let input = match request.input {
            EmbedInput::One(text) => vec![text],
            EmbedInput::Many(texts) if texts.is_empty() => {
                return Err(WireError::new("input", "needs at least one text"));
            }
            EmbedInput::Many(texts) => texts,
        };
        Ok(port::EmbedRequest { model: checked_model(request.model)?, input })
    }
}

fn checked_model(model: String) -> Result<String, WireError> {
    if model.trim().is_empty() {
        return Err(WireError::new("model", "is required"));
    }
    Ok(model)
}

/// `earlier` are the messages already converted: a `tool` message answers a call of the
/// latest assistant message, found by `tool_name`, or else by its place among the results.
fn port_message(
    message: Message,
    index: usize,
    earlier: &[port::ChatMessage],
) -> Result<port::ChatMessage, WireError> {
    let field = |name: &str| format!("messages[{index}].{name}");
    let role = match message.role.as_str() {
        "system" => Role::System,
        "user" => Role::User,
        "assistant" => Role::Assistant,
        "tool" => Role::Tool,
        other => {
            return Err(WireError::new(
                field("role"),
                format!("'{other}' is not system, user, assistant or tool"),
            ));
        }
    };
    let tool_calls = message
        .tool_calls
        .into_iter()
        .enumerate()
        .map(|(i, call)| {
            let arguments = port_arguments(call.function.arguments).map_err(|reason| {
                WireError::new(field(&format!("tool_calls[{i}].function.arguments")), reason)
            })?;
            Ok(port::ToolCall { id: call_id(i), name: call.function.name, arguments })
        })
        .collect::<Result<_, WireError>>()?;
    let tool_call_id =
        (role == Role::Tool).then(|| answered_call(earlier, message.tool_name.as_deref())).flatten();
    Ok(port::ChatMessage { role, content: message.content, tool_calls, tool_call_id, images: message.images })
}

fn port_arguments(arguments: Value) -> Result<Value, String> {
    let arguments = match arguments {
        Value::Null => Value::Object(Map::new()),
        Value::String(text) => serde_json::from_str(&text).map_err(|e| format!("is not JSON: {e}"))?,
        other => other,
    };
    if !arguments.is_object() {
        return Err("must be a JSON object".into());
    }
    Ok(arguments)
}

fn answered_call(earlier: &[port::ChatMessage], tool_name: Option<&str>) -> Option<String> {
    let position = earlier.iter().rposition(|m| m.role == Role::Assistant && !m.tool_calls.is_empty())?;
    let calls = &earlier[position].tool_calls;
    let call = match tool_name {
        Some(name) => calls.iter().find(|call| call.name == name),
        None => calls.get(earlier.len() - position - 1),
    };
    call.map(|call| call.id.clone())
}

fn port_tool(tool: Tool, index: usize) -> Result<port::ToolSpec, WireError> {
    if tool.kind != "function" {
        return Err(WireError::new(
            format!("tools[{index}].type"),
            format!("'{}' is not 'function'", tool.kind),
        ));
    }
    if tool.function.name.is_empty() {
        return Err(WireError::new(format!("tools[{index}].function.name"), "is required"));
    }
    let parameters = match tool.function.parameters {
        Value::Null => serde_json::json!({ "type": "object", "properties": {} }),
        parameters => parameters,
    };
    Ok(port::ToolSpec { name: tool.function.name, description: tool.function.description, parameters })
}

fn port_options(options: Options) -> port::GenerationOptions {
    port::GenerationOptions {
        temperature: options.temperature,
        top_p: options.top_p,
        // Zero and the negative "no limit" values leave the limit to the router's default.
        max_tokens: options.num_predict.and_then(|n| u32::try_from(n).ok()).filter(|n| *n > 0),
        stop: options.stop,
        seed: options.seed,
    }
}

fn port_format(format: Option<Format>) -> Result<Option<ResponseFormat>, WireError> {
    match format {
        None => Ok(None),
        Some(Format::Named(name)) if name.is_empty() => Ok(None),
        Some(Format::Named(name)) if name == "json" => Ok(Some(ResponseFormat::Json)),
        Some(Format::Named(name)) => {
            Err(WireError::new("format", format!("'{name}' is neither \"json\" nor a JSON schema object")))
        }
        Some(Format::Schema(schema)) => Ok(Some(ResponseFormat::JsonSchema(Value::Object(schema)))),
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    }
}

impl From<&port::ChatMessage> for Message {
    fn from(message: &port::ChatMessage) -> Self {
        let tool_calls = message
            .tool_calls
            .iter()
            .map(|call| ToolCall {
                function: FunctionCall { name: call.name.clone(), arguments: call.arguments.clone() },
            })
            .collect();
        Message {
            role: role_name(message.role).into(),
            content: message.content.clone(),
            images: message.images.clone(),
            tool_calls,
            tool_name: None,
            thinking: None,
        }
    }
}

impl Ending {
    /// The counts of a finished answer; Mark-1 does not time answers, so durations are 0.
    pub fn new(usage: port::Usage, finish_reason: port::FinishReason) -> Self {
        // Ollama knows only these two; a request for tools also ends with "stop".
        let done_reason = if finish_reason == port::FinishReason::Length { "length" } else { "stop" };
        Ending {
            done_reason: done_reason.into(),
            prompt_eval_count: usage.prompt_tokens.into(),
            eval_count: usage.completion_tokens.into(),
            ..Ending::default()
        }
    }
}

impl ChatResponse {
    /// The whole answer to a call with `stream: false`.
    pub fn complete(response: &port::ChatResponse, created_at: &str) -> Self {
        ChatResponse {
            model: response.model.clone(),
            created_at: created_at.into(),
            message: Message::from(&response.message),
            done: true,
            end: Some(Ending::new(response.usage, response.finish_reason)),
        }
    }

    /// The line for one chunk of a streamed answer.
    pub fn line(model: &str, created_at: &str, chunk: &port::ChatChunk) -> Self {
        let (message, end) = match chunk {
            port::ChatChunk::Delta { content, tool_calls } => {
                let delta = port::ChatMessage {
                    tool_calls: tool_calls.clone(),
                    ..port::ChatMessage::new(Role::Assistant, content.clone())
                };
                (Message::from(&delta), None)
            }
            port::ChatChunk::Done { usage, finish_reason } => (
                Message { role: "assistant".into(), ..Message::default() },
                Some(Ending::new(*usage, *finish_reason)),
            ),
        };
        ChatResponse { model: model.into(), created_at: created_at.into(), message, done: end.is_some(), end }
    }
}

impl GenerateResponse {
    /// The whole answer to a call with `stream: false`.
    pub fn complete(response: &port::ChatResponse, created_at: &str) -> Self {
        GenerateResponse {
            model: response.model.clone(),
            created_at: created_at.into(),
            response: response.message.content.clone(),
            done: true,
            end: Some(Ending::new(response.usage, response.finish_reason)),
        }
    }

    /// The line for one chunk of a streamed answer (tool calls have no place in it).
    pub fn line(model: &str, created_at: &str, chunk: &port::ChatChunk) -> Self {
        let (response, end) = match chunk {
            port::ChatChunk::Delta { content, .. } => (content.clone(), None),
            port::ChatChunk::Done { usage, finish_reason } => {
                (String::new(), Some(Ending::new(*usage, *finish_reason)))
            }
        };
        GenerateResponse {
            model: model.into(),
            created_at: created_at.into(),
            response,
            done: end.is_some(),
            end,
        }
    }
}

impl From<&port::EmbedResponse> for EmbedResponse {
    fn from(response: &port::EmbedResponse) -> Self {
        EmbedResponse {
            model: response.model.clone(),
            embeddings: response.embeddings.clone(),
            prompt_eval_count: Some(response.usage.prompt_tokens.into()),
        }
    }
}
