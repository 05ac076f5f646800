//! Ollama's HTTP API as a server sees it: the bodies of `/api/chat`, `/api/generate`,
//! `/api/embed`, `/api/tags`, `/api/show` and `/api/version`, and their conversions to and
//! from the port's types.
//!
//! The scripted server answers with these types, and a gateway speaking Ollama's protocol
//! on Mark-1's edge reads requests with them. Requests are read as leniently as Ollama
//! reads them (unknown fields ignored, `null` for an absent list) and checked once, when
//! they become the port's types, so a bad request is answered with the field at fault.
//! What the port has no place for (`keep_alive`, `think`, `raw`, `num_ctx`, `top_k`) is
//! read and then dropped.

use mark1_actors::ports::model::{self as port, ModelCapabilities, ResponseFormat, Role};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// A request that is not a valid Ollama request; `field` is a path such as `messages[1].role`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid field '{field}': {reason}")]
pub struct WireError {
    pub field: String,
    pub reason: String,
}

impl WireError {
    fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        WireError { field: field.into(), reason: reason.into() }
    }
}

/// Reads a JSON body; a type error names the field it is in (serde alone does not).
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, WireError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let field = e.path().to_string();
        let field = if field == "." { "body".to_string() } else { field };
        WireError::new(field, e.into_inner().to_string())
    })?;
    deserializer.end().map_err(|e| WireError::new("body", e.to_string()))?;
    Ok(value)
}

/// The id given to the `index`-th tool call of a message: Ollama's calls have none, and
/// the port (like OpenAI's protocol) needs one to pair a call with its result.
pub fn call_id(index: usize) -> String {
    format!("call_{index}")
}

/// Ollama is written in Go, whose clients send `null` for an empty list.
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `POST /api/chat`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    pub model: String,
    #[serde(default, deserialize_with = "nullable")]
    pub messages: Vec<Message>,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Tool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Options>,
    /// Absent means true: see [`ChatRequest::streams`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_alive: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub think: Option<Value>,
}

impl ChatRequest {
    /// Ollama streams unless the request says `"stream": false`.
    pub fn streams(&self) -> bool {
        self.stream.unwrap_or(true)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Checked when converted, so the error can name the message.
    pub role: String,
    #[serde(default, deserialize_with = "nullable")]
    pub content: String,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// On a `tool` message: the tool whose result this is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub function: FunctionCall,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    pub name: String,
    /// An object; some clients send it as a string of JSON, which is accepted too.
    #[serde(default)]
    pub arguments: Value,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    pub function: FunctionSpec,
}

fn function_type() -> String {
    "function".into()
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FunctionSpec {
    pub name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub description: String,
    #[serde(default)]
    pub parameters: Value,
}

/// `"json"`, or a JSON Schema the answer must match.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Format {
    Named(String),
    Schema(Map<String, Value>),
}

/// The model options Mark-1 reads; the many others Ollama knows are ignored.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Options {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    /// Most tokens to generate; -1 is no limit, -2 fills the context.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_predict: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_ctx: Option<u32>,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
}

/// One line of a streamed `/api/chat` answer, or the whole answer when not streaming.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    pub model: String,
    pub created_at: String,
    pub message: Message,
    pub done: bool,
    #[serde(flatten)]
    pub end: Option<Ending>,
}

/// What the last line (`done: true`) adds: why the answer ended, and counts. Durations are
/// nanoseconds; Ollama's own clients expect all of them on the last line.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Ending {
    pub done_reason: String,
    pub total_duration: u64,
    pub load_duration: u64,
    pub prompt_eval_count: u64,
    pub prompt_eval_duration: u64,
    pub eval_count: u64,
    pub eval_duration: u64,
}

/// `POST /api/generate`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenerateRequest {
    pub model: String,
    #[serde(default, deserialize_with = "nullable")]
    pub prompt: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Options>,
    /// Absent means true: see [`GenerateRequest::streams`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_alive: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub think: Option<Value>,
}

impl GenerateRequest {
    pub fn streams(&self) -> bool {
        self.stream.unwrap_or(true)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GenerateResponse {
    pub model: String,
    pub created_at: String,
    pub response: String,
    pub done: bool,
    #[serde(flatten)]
    pub end: Option<Ending>,
}

/// `POST /api/embed`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EmbedRequest {
    pub model: String,
    pub input: EmbedInput,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncate: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_alive: Option<Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EmbedInput {
    One(String),
    Many(Vec<String>),
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EmbedResponse {
    pub model: String,
    pub embeddings: Vec<Vec<f32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_eval_count: Option<u64>,
}

/// `GET /api/tags`: the models the server has.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TagsResponse {
    #[serde(deserialize_with = "nullable")]
    pub models: Vec<ListedModel>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ListedModel {
    pub name: String,
    pub model: String,
    pub modified_at: String,
    pub size: u64,
    pub digest: String,
    #[serde(default)]
    pub details: ModelDetails,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelDetails {
    pub parent_model: String,
    pub format: String,
    pub family: String,
    #[serde(deserialize_with = "nullable")]
    pub families: Vec<String>,
    pub parameter_size: String,
    pub quantization_level: String,
}

/// `POST /api/show`; older clients call the model `name`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShowRequest {
    #[serde(alias = "name")]
    pub model: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ShowResponse {
    pub license: String,
    pub modelfile: String,
    pub parameters: String,
    pub template: String,
    pub details: ModelDetails,
    /// Architecture metadata: `general.architecture`, `<arch>.context_length`, ….
    pub model_info: Map<String, Value>,
    #[serde(deserialize_with = "nullable")]
    pub capabilities: Vec<String>,
}

/// `GET /api/version`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionResponse {
    pub version: String,
}

/// The body of every error answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

/// `show`'s capability names for what a model can do.
pub fn capability_names(capabilities: &ModelCapabilities) -> Vec<String> {
    [
        ("completion", capabilities.chat),
        ("tools", capabilities.tools),
        ("vision", capabilities.vision),
        ("embedding", capabilities.embeddings),
    ]
    .into_iter()
    .filter(|(_, has)| *has)
    .map(|(name, _)| name.to_string())
    .collect()
}

/// What `show`'s capability names say a model can do; names Mark-1 has no use for
/// (`insert`, `thinking`) are skipped.
pub fn capabilities_from(names: &[String]) -> ModelCapabilities {
    let has = |name: &str| names.iter().any(|n| n == name);
    ModelCapabilities {
        chat: has("completion"),
        tools: has("tools"),
        vision: has("vision"),
        embeddings: has("embedding"),
    }
}

/// The context length in `show`'s `model_info`, whose key is prefixed by the architecture.
pub fn context_length(model_info: &Map<String, Value>) -> Option<u32> {
    let own_key = model_info
        .get("general.architecture")
        .and_then(Value::as_str)
        .map(|architecture| format!("{architecture}.context_length"));
    let value = own_key.and_then(|key| model_info.get(&key)).or_else(|| {
        model_info.iter().find(|(key, _)| key.ends_with(".context_length")).map(|(_, value)| value)
    })?;
    value.as_u64().and_then(|n| u32::try_from(n).ok())
}

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

#[cfg(test)]
mod tests;
