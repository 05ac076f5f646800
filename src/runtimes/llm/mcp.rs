//! MCP tools: the tools of the MCP servers configured under `[mcp.servers.<name>]`.

use std::sync::Arc;

use super::tools::Tool;

/// The node's configured MCP servers.
#[derive(Default)]
pub struct McpServers {}

impl McpServers {
    pub fn has(&self, _server: &str) -> bool {
        false
    }

    /// The tools of `server` named in `only` (all of them when empty).
    pub async fn tools(&self, server: &str, _only: &[String]) -> Result<Vec<Arc<dyn Tool>>, String> {
        Err(format!("no MCP server '{server}' is configured (mcp.servers)"))
    }
}
