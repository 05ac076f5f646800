//! Run with: cargo run --example mcp_server
//!
//! A small MCP server speaking over its stdin and stdout, for trying the MCP tools of LLM
//! agents (and for the tests of `runtimes::llm::mcp`). Build it, then configure it:
//!
//! ```toml
//! # cargo build --example mcp_server
//! [mcp.servers.demo]
//! command = "target/debug/examples/mcp_server"
//!
//! [agents.calculator.llm]
//! model = "llama3.1"
//! tools = [{ kind = "mcp", server = "demo", tools = ["add"] }]
//! ```
//!
//! Its tools: `add` (a structured result), `fail` (a result marked as an error), `slow`
//! (waits, and stops when the call is cancelled), `env` (a variable of its environment)
//! and `pid` (its process id). It exits when its stdin closes.

use std::time::Duration;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, ServerCapabilities, ServerConfig};
use rmcp::{schemars, tool, tool_handler, tool_router, Json, ServerHandler, ServiceExt};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

#[derive(Deserialize, schemars::JsonSchema)]
struct AddArgs {
    a: i64,
    b: i64,
}

#[derive(Serialize, schemars::JsonSchema)]
struct Sum {
    sum: i64,
}

#[derive(Deserialize, schemars::JsonSchema)]
struct SlowArgs {
    /// How long to wait, in milliseconds.
    ms: u64,
}

#[derive(Deserialize, schemars::JsonSchema)]
struct EnvArgs {
    name: String,
}

#[derive(Clone)]
struct Demo {
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Demo {
    fn new() -> Self {
        Demo { tool_router: Self::tool_router() }
    }

    #[tool(description = "Adds two integers.")]
    fn add(&self, Parameters(AddArgs { a, b }): Parameters<AddArgs>) -> Json<Sum> {
        Json(Sum { sum: a + b })
    }

    #[tool(description = "Always fails.")]
    fn fail(&self) -> CallToolResult {
        CallToolResult::error(vec![ContentBlock::text("boom: this tool always fails")])
    }

    #[tool(description = "Waits for a while, then says so; stops early when cancelled.")]
    async fn slow(
        &self,
        Parameters(SlowArgs { ms }): Parameters<SlowArgs>,
        cancel: CancellationToken,
    ) -> String {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(ms)) => format!("waited {ms} ms"),
            _ = cancel.cancelled() => "cancelled".into(),
        }
    }

    #[tool(description = "The value of one of this server's environment variables.")]
    fn env(&self, Parameters(EnvArgs { name }): Parameters<EnvArgs>) -> String {
        std::env::var(&name).unwrap_or_else(|_| format!("{name} is not set"))
    }

    #[tool(description = "This server's process id.")]
    fn pid(&self) -> String {
        std::process::id().to_string()
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Demo {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = Demo::new().serve(rmcp::transport::stdio()).await?;
    server.waiting().await?;
    Ok(())
}
