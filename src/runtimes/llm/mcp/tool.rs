//! One tool of an MCP server as a [`Tool`]: offered to the model under the server's
//! name, description and input schema, called with `tools/call`.

use std::sync::Arc;

use mark1_actors::domain::agent::valid_tool_name;
use mark1_actors::ports::model::ToolSpec;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ContentBlock, ResourceContents, Tool as McpToolInfo,
};
use serde_json::Value;

use super::{McpError, Server};
use crate::runtimes::llm::tools::{ArgumentSchema, Tool, ToolCallContext, ToolError};

/// Most of a result's text the model is shown, as for HTTP tools.
const MAX_TEXT: usize = 256 * 1024;

pub(super) struct McpTool {
    server: Arc<Server>,
    spec: ToolSpec,
    /// `None` when the server's schema does not compile here (a draft or a remote
    /// reference the validator does not take): the server checks the arguments then.
    schema: Option<ArgumentSchema>,
}

impl McpTool {
    pub(super) fn new(server: Arc<Server>, tool: McpToolInfo) -> Result<Self, McpError> {
        let name = tool.name.to_string();
        if !valid_tool_name(&name) {
            return Err(McpError::UnusableTool {
                server: server.name.clone(),
                tool: name,
                reason: "models take names of 1 to 64 characters from [A-Za-z0-9_-]; leave it out with \
                         tools = [...]"
                    .into(),
            });
        }
        let parameters = Value::Object(tool.input_schema.as_ref().clone());
        let schema = match ArgumentSchema::compile(&parameters) {
            Ok(schema) => Some(schema),
            Err(error) => {
                tracing::debug!(server = %server.name, tool = %name, %error, "mcp tool schema not checked here");
                None
            }
        };
        let spec =
            ToolSpec { name, description: tool.description.unwrap_or_default().into_owned(), parameters };
        Ok(McpTool { server, spec, schema })
    }

    async fn send(&self, arguments: serde_json::Map<String, Value>) -> Result<CallToolResult, McpError> {
        let server = &self.server;
        server
            .within_timeout(async {
                let client = server.client().await?;
                let request = CallToolRequestParams::new(self.spec.name.clone()).with_arguments(arguments);
                client.call_tool(request).await.map_err(|e| server.request_error(e))
            })
            .await
    }
}

#[async_trait::async_trait]
impl Tool for McpTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(&self, context: &ToolCallContext<'_>, arguments: Value) -> Result<Value, ToolError> {
        if let Some(schema) = &self.schema {
            schema.check(&arguments)?;
        }
        let arguments = match arguments {
            Value::Object(fields) => fields,
            Value::Null => serde_json::Map::new(),
            _ => return Err(ToolError::Refused("the arguments must be a JSON object".into())),
        };
        // Dropping the request on cancellation tells the server to stop it
        // (`notifications/cancelled`).
        let result = tokio::select! {
            biased;
            _ = context.task.cancel.cancelled() => return Err(ToolError::Cancelled),
            result = self.send(arguments) => result,
        };
        result_value(result.map_err(|e| ToolError::Failed(e.to_string()))?)
    }
}

/// The result the model sees: the structured content when there is some, else the
/// content's text; a result marked as an error is the tool's failure.
fn result_value(result: CallToolResult) -> Result<Value, ToolError> {
    let mut text = result.content.iter().map(block_text).collect::<Vec<_>>().join("\n");
    if text.len() > MAX_TEXT {
        let mut end = MAX_TEXT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str(" … (cut)");
    }
    if result.is_error == Some(true) {
        return Err(ToolError::Failed(if text.is_empty() {
            "the tool reported an error".into()
        } else {
            text
        }));
    }
    Ok(result.structured_content.unwrap_or(Value::String(text)))
}

/// Text as it is; other content (images, audio, binary resources) is named, not shown:
/// the model reads text.
fn block_text(block: &ContentBlock) -> String {
    match block {
        ContentBlock::Text(content) => content.text.clone(),
        ContentBlock::Resource(embedded) => match &embedded.resource {
            ResourceContents::TextResourceContents { text, .. } => text.clone(),
            other => format!("[resource {} not shown]", resource_uri(other)),
        },
        other => {
            let kind = serde_json::to_value(other).ok().and_then(|v| v["type"].as_str().map(str::to_string));
            format!("[{} content not shown]", kind.unwrap_or_else(|| "other".into()))
        }
    }
}

fn resource_uri(resource: &ResourceContents) -> String {
    serde_json::to_value(resource)
        .ok()
        .and_then(|v| v["uri"].as_str().map(str::to_string))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn result(value: Value) -> CallToolResult {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn results_become_what_the_model_reads() {
        let text = result(json!({"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}));
        assert_eq!(result_value(text).unwrap(), json!("a\nb"));
        let structured = result(
            json!({"content": [{"type": "text", "text": "{\"x\":1}"}], "structuredContent": {"x": 1}}),
        );
        assert_eq!(result_value(structured).unwrap(), json!({"x": 1}));
        let image = result(json!({"content": [{"type": "image", "data": "AA==", "mimeType": "image/png"}]}));
        assert_eq!(result_value(image).unwrap(), json!("[image content not shown]"));
        let error = result(json!({"content": [{"type": "text", "text": "no such file"}], "isError": true}));
        assert!(matches!(result_value(error), Err(ToolError::Failed(m)) if m == "no such file"));
        let long = result(json!({"content": [{"type": "text", "text": "é".repeat(MAX_TEXT)}]}));
        let cut = result_value(long).unwrap();
        assert!(cut.as_str().unwrap().ends_with("(cut)") && cut.as_str().unwrap().len() < MAX_TEXT + 20);
    }
}
