//! The port's requests as ollama-rs's, and ollama-rs's answers as the port's.
//!
//! ollama-rs drops `done_reason`, so the finish reason is inferred: tool calls in the
//! answer mean `ToolCalls`; as many tokens as `max_tokens` allowed means `Length`.

use mark1_actors::ports::model::{
    ChatMessage, ChatRequest, FinishReason, GenerateRequest, GenerationOptions, ModelError, ResponseFormat,
    Role, ToolCall, ToolSpec, Usage,
};
use ollama_rs::generation::chat::{self, request::ChatMessageRequest, MessageRole};
use ollama_rs::generation::completion::request::GenerationRequest;
use ollama_rs::generation::images::Image;
use ollama_rs::generation::parameters::FormatType;
use ollama_rs::generation::tools::{self, ToolFunctionInfo, ToolInfo, ToolType};
use ollama_rs::models::ModelOptions;
use serde_json::Value;

use super::wire::call_id;

/// A request the adapter cannot put on the wire: a schema that is not a JSON Schema.
/// Ollama would refuse it with 400, so it is reported as that refusal.
fn unsendable(provider: &str, field: &str, error: serde_json::Error) -> ModelError {
    ModelError::Rejected { provider: provider.into(), status: 400, reason: format!("{field}: {error}") }
}

pub(super) fn chat_request(provider: &str, request: ChatRequest) -> Result<ChatMessageRequest, ModelError> {
    let messages = request.messages.into_iter().map(message).collect();
    let tools = request.tools.into_iter().map(|spec| tool(provider, spec)).collect::<Result<_, _>>()?;
    let mut wire =
        ChatMessageRequest::new(request.model, messages).options(options(&request.options)).tools(tools);
    if let Some(format) = request.format {
        wire = wire.format(format_type(provider, format)?);
    }
    Ok(wire)
}

pub(super) fn generation_request(
    provider: &str,
    request: GenerateRequest,
) -> Result<GenerationRequest<'static>, ModelError> {
    let mut wire = GenerationRequest::new(request.model, request.prompt)
        .options(options(&request.options))
        .images(request.images.into_iter().map(Image::from_base64).collect());
    if let Some(system) = request.system {
        wire = wire.system(system);
    }
    if let Some(format) = request.format {
        wire = wire.format(format_type(provider, format)?);
    }
    Ok(wire)
}

fn message(message: ChatMessage) -> chat::ChatMessage {
    let role = match message.role {
        Role::System => MessageRole::System,
        Role::User => MessageRole::User,
        Role::Assistant => MessageRole::Assistant,
        // Ollama pairs a result with its call by order; the id has no place on its wire.
        Role::Tool => MessageRole::Tool,
    };
    let mut wire = chat::ChatMessage::new(role, message.content);
    wire.tool_calls = message
        .tool_calls
        .into_iter()
        .map(|call| tools::ToolCall {
            function: tools::ToolCallFunction { name: call.name, arguments: call.arguments },
        })
        .collect();
    if !message.images.is_empty() {
        wire = wire.with_images(message.images.into_iter().map(Image::from_base64).collect());
    }
    wire
}

fn tool(provider: &str, spec: ToolSpec) -> Result<ToolInfo, ModelError> {
    let field = format!("tools.{}.parameters", spec.name);
    let parameters = serde_json::from_value(spec.parameters).map_err(|e| unsendable(provider, &field, e))?;
    Ok(ToolInfo {
        tool_type: ToolType::Function,
        function: ToolFunctionInfo { name: spec.name, description: spec.description, parameters },
    })
}

fn format_type(provider: &str, format: ResponseFormat) -> Result<FormatType, ModelError> {
    match format {
        ResponseFormat::Json => Ok(FormatType::Json),
        ResponseFormat::JsonSchema(schema) => {
            let schema = serde_json::from_value(schema).map_err(|e| unsendable(provider, "format", e))?;
            Ok(FormatType::StructuredJson(Box::new(schema)))
        }
    }
}

fn options(options: &GenerationOptions) -> ModelOptions {
    let mut wire = ModelOptions::default();
    if let Some(temperature) = options.temperature {
        wire = wire.temperature(temperature);
    }
    if let Some(top_p) = options.top_p {
        wire = wire.top_p(top_p);
    }
    if let Some(max_tokens) = options.max_tokens {
        wire = wire.num_predict(i32::try_from(max_tokens).unwrap_or(i32::MAX));
    }
    if !options.stop.is_empty() {
        wire = wire.stop(options.stop.clone());
    }
    if let Some(seed) = options.seed {
        // ollama-rs types the seed as i32; Ollama takes any int, so it goes through as is.
        wire = wire.extra("seed", seed);
    }
    wire
}

/// The port's tool calls for ollama-rs's; `first` numbers them on from earlier chunks.
pub(super) fn tool_calls(calls: Vec<tools::ToolCall>, first: usize) -> Vec<ToolCall> {
    calls
        .into_iter()
        .enumerate()
        .map(|(i, call)| ToolCall {
            id: call_id(first + i),
            name: call.function.name,
            arguments: match call.function.arguments {
                Value::Null => Value::Object(Default::default()),
                arguments => arguments,
            },
        })
        .collect()
}

/// Token counts as the port counts them.
pub(super) fn usage(prompt_eval_count: u64, eval_count: u64) -> Usage {
    let tokens = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
    Usage { prompt_tokens: tokens(prompt_eval_count), completion_tokens: tokens(eval_count) }
}

pub(super) fn finish_reason(called_tools: bool, usage: &Usage, max_tokens: Option<u32>) -> FinishReason {
    if called_tools {
        FinishReason::ToolCalls
    } else if max_tokens.is_some_and(|max| usage.completion_tokens >= max) {
        FinishReason::Length
    } else {
        FinishReason::Stop
    }
}
