//! Between the wire types and the port's: port → wire for what the client sends and
//! what a server answers, wire → port for what a server receives and what the client
//! reads. Wire → port can fail; the error names the field, as a client would write it.

use mark1_actors::ports::model as port;
use serde_json::Value;

use super::*;

/// A request or response that does not fit the port: `field` is the path in the JSON
/// (`messages[2].content[1].image_url.url`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct WireError {
    pub field: String,
    pub message: String,
}

impl WireError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        WireError { field: field.into(), message: message.into() }
    }
}

impl ChatCompletionRequest {
    /// What a client sends for `request`; a stream asks for the usage at its end.
    pub fn from_port(request: &port::ChatRequest, stream: bool) -> Self {
        let options = &request.options;
        ChatCompletionRequest {
            model: request.model.clone(),
            messages: request.messages.iter().map(Message::from_port).collect(),
            tools: request.tools.iter().map(Tool::from_port).collect(),
            tool_choice: None,
            temperature: options.temperature,
            top_p: options.top_p,
            // `max_tokens`, not `max_completion_tokens`: every compatible server (vLLM,
            // llama.cpp, LM Studio) reads it, and OpenAI still does for chat models.
            max_tokens: options.max_tokens,
            max_completion_tokens: None,
            stop: (!options.stop.is_empty()).then(|| Stop::Many(options.stop.clone())),
            seed: options.seed,
            stream,
            stream_options: stream.then_some(StreamOptions { include_usage: true }),
            response_format: request.format.as_ref().map(ResponseFormat::from_port),
        }
    }

    /// The port's request for what a client sent. `stream` and `stream_options` are not
    /// part of it: the caller reads them first.
    pub fn into_port(self) -> Result<port::ChatRequest, WireError> {
        let messages = (self.messages.into_iter().enumerate())
            .map(|(i, message)| message.into_port(&format!("messages[{i}]")))
            .collect::<Result<_, _>>()?;
        // The port has no switch that forbids calls, so "none" offers no tools instead.
        let tools = if self.tool_choice.as_ref().and_then(Value::as_str) == Some("none") {
            Vec::new()
        } else {
            (self.tools.into_iter().enumerate())
                .map(|(i, tool)| tool.into_port(&format!("tools[{i}]")))
                .collect::<Result<_, _>>()?
        };
        let stop = match self.stop {
            None => Vec::new(),
            Some(Stop::One(stop)) => vec![stop],
            Some(Stop::Many(stops)) => stops,
        };
        let options = port::GenerationOptions {
            temperature: self.temperature,
            top_p: self.top_p,
            max_tokens: self.max_completion_tokens.or(self.max_tokens),
            stop,
            seed: self.seed,
        };
        let format = self.response_format.and_then(ResponseFormat::into_port);
        Ok(port::ChatRequest { model: self.model, messages, tools, options, format })
    }
}

impl ResponseFormat {
    fn from_port(format: &port::ResponseFormat) -> Self {
        match format {
            port::ResponseFormat::Json => ResponseFormat::JsonObject,
            port::ResponseFormat::JsonSchema(schema) => ResponseFormat::JsonSchema {
                json_schema: JsonSchemaFormat {
                    name: "response".into(),
                    schema: Some(schema.clone()),
                    strict: None,
                },
            },
        }
    }

    /// `None` for free text; a named schema without a schema asks for any JSON.
    fn into_port(self) -> Option<port::ResponseFormat> {
        match self {
            ResponseFormat::Text => None,
            ResponseFormat::JsonObject => Some(port::ResponseFormat::Json),
            ResponseFormat::JsonSchema { json_schema } => Some(match json_schema.schema {
                Some(schema) => port::ResponseFormat::JsonSchema(schema),
                None => port::ResponseFormat::Json,
            }),
        }
    }
}

impl From<port::Role> for Role {
    fn from(role: port::Role) -> Self {
        match role {
            port::Role::System => Role::System,
            port::Role::User => Role::User,
            port::Role::Assistant => Role::Assistant,
            port::Role::Tool => Role::Tool,
        }
    }
}

impl From<Role> for port::Role {
    fn from(role: Role) -> Self {
        match role {
            Role::System | Role::Developer => port::Role::System,
            Role::User => port::Role::User,
            Role::Assistant => port::Role::Assistant,
            Role::Tool => port::Role::Tool,
        }
    }
}

impl Message {
    fn from_port(message: &port::ChatMessage) -> Self {
        let content = if !message.images.is_empty() {
            let text =
                (!message.content.is_empty()).then(|| ContentPart::Text { text: message.content.clone() });
            let images = message.images.iter().map(|image| ContentPart::ImageUrl {
                image_url: ImageUrl { url: data_url(image), detail: None },
            });
            Some(Content::Parts(text.into_iter().chain(images).collect()))
        } else if message.content.is_empty() && !message.tool_calls.is_empty() {
            None
        } else {
            Some(Content::Text(message.content.clone()))
        };
        Message {
            role: message.role.into(),
            content,
            tool_calls: message.tool_calls.iter().map(ToolCall::from_port).collect(),
            tool_call_id: message.tool_call_id.clone(),
        }
    }

    /// `at` is where the message is (`messages[3]`, `choices[0].message`).
    fn into_port(self, at: &str) -> Result<port::ChatMessage, WireError> {
        let (content, images) = match self.content {
            Some(content) => content.into_port(&format!("{at}.content"))?,
            None if self.role == Role::Assistant => (String::new(), Vec::new()),
            None => return Err(WireError::new(format!("{at}.content"), "is required")),
        };
        if self.role == Role::Tool && self.tool_call_id.is_none() {
            return Err(WireError::new(format!("{at}.tool_call_id"), "is required on a tool message"));
        }
        let tool_calls = (self.tool_calls.into_iter().enumerate())
            .map(|(i, call)| call.into_port(&format!("{at}.tool_calls[{i}]")))
            .collect::<Result<_, _>>()?;
        Ok(port::ChatMessage {
            role: self.role.into(),
            content,
            tool_calls,
            tool_call_id: self.tool_call_id,
            images,
        })
    }
}

impl Content {
    /// The text and the base64 images. Text parts are joined by newlines, as separate
    /// paragraphs of one message.
    fn into_port(self, at: &str) -> Result<(String, Vec<String>), WireError> {
        let parts = match self {
            Content::Text(text) => return Ok((text, Vec::new())),
            Content::Parts(parts) => parts,
        };
        let (mut texts, mut images) = (Vec::new(), Vec::new());
        for (i, part) in parts.into_iter().enumerate() {
            match part {
                ContentPart::Text { text } => texts.push(text),
                ContentPart::ImageUrl { image_url } => images.push(
                    base64_of(&image_url.url)
                        .ok_or_else(|| {
                            WireError::new(
                                format!("{at}[{i}].image_url.url"),
                                "must be a data:image/...;base64,... URL (images are not fetched)",
                            )
                        })?
                        .to_string(),
                ),
                ContentPart::Unsupported => {
                    return Err(WireError::new(
                        format!("{at}[{i}].type"),
                        "only text and image_url parts are supported",
                    ))
                }
            }
        }
        Ok((texts.join("\n"), images))
    }
}

/// A data URL for a base64 image. The media type is read from the first bytes; servers
/// decode the bytes themselves, so an unrecognised image is labelled png.
fn data_url(base64: &str) -> String {
    let media = [("/9j/", "image/jpeg"), ("R0lGOD", "image/gif"), ("UklGR", "image/webp")]
        .into_iter()
        .find_map(|(prefix, media)| base64.starts_with(prefix).then_some(media))
        .unwrap_or("image/png");
    format!("data:{media};base64,{base64}")
}

/// The payload of a `data:…;base64,` URL.
fn base64_of(url: &str) -> Option<&str> {
    let (header, payload) = url.strip_prefix("data:")?.split_once(',')?;
    header.ends_with(";base64").then_some(payload)
}

/// A tool call's argument text as JSON; servers send "" for a call without arguments.
pub(super) fn parse_arguments(text: &str, field: impl FnOnce() -> String) -> Result<Value, WireError> {
    if text.trim().is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_str(text).map_err(|e| WireError::new(field(), format!("is not JSON: {e}")))
}

impl ToolCall {
    fn from_port(call: &port::ToolCall) -> Self {
        ToolCall {
            id: call.id.clone(),
            kind: function(),
            function: FunctionCall { name: call.name.clone(), arguments: call.arguments.to_string() },
        }
    }

    fn into_port(self, at: &str) -> Result<port::ToolCall, WireError> {
        if self.kind != "function" {
            return Err(WireError::new(format!("{at}.type"), "only function calls are supported"));
        }
        let arguments = parse_arguments(&self.function.arguments, || format!("{at}.function.arguments"))?;
        Ok(port::ToolCall { id: self.id, name: self.function.name, arguments })
    }
}

impl Tool {
    fn from_port(tool: &port::ToolSpec) -> Self {
        Tool {
            kind: function(),
            function: FunctionSpec {
                name: tool.name.clone(),
                description: (!tool.description.is_empty()).then(|| tool.description.clone()),
                parameters: Some(tool.parameters.clone()),
            },
        }
    }

    fn into_port(self, at: &str) -> Result<port::ToolSpec, WireError> {
        if self.kind != "function" {
            return Err(WireError::new(format!("{at}.type"), "only function tools are supported"));
        }
        let FunctionSpec { name, description, parameters } = self.function;
        // OpenAI reads a missing schema as "no arguments".
        let parameters =
            parameters.unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}}));
        Ok(port::ToolSpec { name, description: description.unwrap_or_default(), parameters })
    }
}

impl From<port::FinishReason> for FinishReason {
    fn from(reason: port::FinishReason) -> Self {
        match reason {
            port::FinishReason::Stop => FinishReason::Stop,
            port::FinishReason::Length => FinishReason::Length,
            port::FinishReason::ToolCalls => FinishReason::ToolCalls,
            port::FinishReason::ContentFilter => FinishReason::ContentFilter,
        }
    }
}

impl From<FinishReason> for port::FinishReason {
    fn from(reason: FinishReason) -> Self {
        match reason {
            FinishReason::Stop | FinishReason::Other => port::FinishReason::Stop,
            FinishReason::Length => port::FinishReason::Length,
            FinishReason::ToolCalls | FinishReason::FunctionCall => port::FinishReason::ToolCalls,
            FinishReason::ContentFilter => port::FinishReason::ContentFilter,
        }
    }
}

/// Some servers report `stop` for an answer that calls tools; the port says `ToolCalls`.
pub(super) fn finish_reason(reason: Option<FinishReason>, calls_tools: bool) -> port::FinishReason {
    match reason.map(port::FinishReason::from) {
        _ if calls_tools => port::FinishReason::ToolCalls,
        Some(reason) => reason,
        None => port::FinishReason::Stop,
    }
}

impl From<port::Usage> for Usage {
    fn from(usage: port::Usage) -> Self {
        Usage {
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            total_tokens: usage.total(),
        }
    }
}

impl From<Usage> for port::Usage {
    fn from(usage: Usage) -> Self {
        port::Usage { prompt_tokens: usage.prompt_tokens, completion_tokens: usage.completion_tokens }
    }
}

impl ChatCompletion {
    pub fn from_port(response: &port::ChatResponse, id: impl Into<String>, created: u64) -> Self {
        ChatCompletion {
            id: id.into(),
            object: chat_completion(),
            created,
            model: response.model.clone(),
            choices: vec![Choice {
                index: 0,
                message: Message::from_port(&response.message),
                finish_reason: Some(response.finish_reason.into()),
            }],
            usage: Some(response.usage.into()),
        }
    }

    /// The first choice as the port's answer from `provider`; a server that reports no
    /// usage is counted as zero tokens.
    pub fn into_port(self, provider: &str) -> Result<port::ChatResponse, WireError> {
        let choice = self.choices.into_iter().next().ok_or_else(|| WireError::new("choices", "is empty"))?;
        let message = choice.message.into_port("choices[0].message")?;
        Ok(port::ChatResponse {
            provider: provider.to_string(),
            model: self.model,
            finish_reason: finish_reason(choice.finish_reason, !message.tool_calls.is_empty()),
            message,
            usage: self.usage.map(Into::into).unwrap_or_default(),
            cost: 0.0,
        })
    }
}

impl EmbeddingsRequest {
    pub fn from_port(request: &port::EmbedRequest) -> Self {
        EmbeddingsRequest { model: request.model.clone(), input: EmbeddingInput::Many(request.input.clone()) }
    }

    pub fn into_port(self) -> port::EmbedRequest {
        let input = match self.input {
            EmbeddingInput::One(text) => vec![text],
            EmbeddingInput::Many(texts) => texts,
        };
        port::EmbedRequest { model: self.model, input }
    }
}

impl EmbeddingsResponse {
    pub fn from_port(response: &port::EmbedResponse) -> Self {
        let data = (response.embeddings.iter().zip(0..))
            .map(|(vector, index)| Embedding { object: embedding(), index, embedding: vector.clone() })
            .collect();
        let usage = EmbeddingUsage {
            prompt_tokens: response.usage.prompt_tokens,
            total_tokens: u64::from(response.usage.prompt_tokens),
        };
        EmbeddingsResponse { object: list(), data, model: response.model.clone(), usage }
    }

    /// The vectors in input order; there must be one for each of the `inputs` texts.
    pub fn into_port(mut self, provider: &str, inputs: usize) -> Result<port::EmbedResponse, WireError> {
        self.data.sort_by_key(|embedding| embedding.index);
        if !(self.data.iter().map(|e| e.index as usize)).eq(0..inputs) {
            return Err(WireError::new(
                "data",
                format!("does not hold one embedding for each of the {inputs} inputs"),
            ));
        }
        Ok(port::EmbedResponse {
            provider: provider.to_string(),
            model: self.model,
            embeddings: self.data.into_iter().map(|e| e.embedding).collect(),
            usage: port::Usage { prompt_tokens: self.usage.prompt_tokens, completion_tokens: 0 },
        })
    }
}

impl Model {
    pub fn from_port(info: &port::ModelInfo, created: u64) -> Self {
        Model {
            id: info.id.clone(),
            object: model(),
            created,
            owned_by: info.provider.clone(),
            max_model_len: info.context_length,
        }
    }

    /// OpenAI's list says nothing about what a model can do, so the id decides: an
    /// embedding model has "embed" in its name, anything else chats and calls tools.
    pub fn into_port(self, provider: &str) -> port::ModelInfo {
        let capabilities = if self.id.to_lowercase().contains("embed") {
            port::ModelCapabilities { embeddings: true, ..Default::default() }
        } else {
            port::ModelCapabilities { chat: true, tools: true, ..Default::default() }
        };
        port::ModelInfo {
            id: self.id,
            provider: provider.to_string(),
            context_length: self.max_model_len,
            capabilities,
            price: port::ModelPrice::default(),
        }
    }
}
