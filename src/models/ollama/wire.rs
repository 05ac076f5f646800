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

use mark1_actors::ports::model::ModelCapabilities;
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

mod convert;
#[cfg(test)]
mod tests;
