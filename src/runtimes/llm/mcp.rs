//! MCP tools: the tools of the MCP servers configured under `[mcp.servers.<name>]`.
//!
//! A node holds one [`McpServers`]. Building it does no I/O; a server is connected to
//! (its process started, or its endpoint reached) when an agent first needs its tools,
//! and that one connection is shared by every agent and call using the server. A
//! connection found dead is made again once, on the next use. Dropping the last handle
//! on a server closes it: a child process gets its stdin closed, then SIGTERM, then
//! SIGKILL (rmcp's shutdown order).
//!
//! - [`connect`]: the transports (a child's stdio, streamable HTTP) and the handshake;
//! - [`tool`]: one MCP tool as a [`Tool`] of an agent's toolbox.

mod connect;
#[cfg(test)]
mod tests;
mod tool;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rmcp::model::Tool as McpToolInfo;
use rmcp::ServiceError;
use tokio::sync::Mutex;

use self::connect::Client;
use self::tool::McpTool;
use super::tools::Tool;
use crate::config::{McpConfig, McpServerConfig};

/// Why a server's tools could not be had. Messages name the server.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    #[error("no MCP server '{0}' is configured (mcp.servers)")]
    NotConfigured(String),
    /// The process did not start, the endpoint did not answer, or the handshake failed.
    #[error("MCP server '{server}' is unavailable: {cause}")]
    Unavailable { server: String, cause: String },
    #[error("MCP server '{server}' did not answer within {} (mcp.servers.{server}.timeout)", humantime::format_duration(*timeout))]
    Timeout { server: String, timeout: Duration },
    /// The server answered a request with an error.
    #[error("MCP server '{server}': {cause}")]
    Request { server: String, cause: String },
    #[error("MCP server '{server}' has no tool named {}; its tools are: {available}", missing.join(", "))]
    UnknownTools { server: String, missing: Vec<String>, available: String },
    #[error("MCP server '{server}': tool '{tool}' cannot be offered to a model: {reason}")]
    UnusableTool { server: String, tool: String, reason: String },
}

/// The node's configured MCP servers.
pub struct McpServers {
    servers: HashMap<String, Arc<Server>>,
}

impl McpServers {
    /// The servers of `[mcp.servers]`, none of them connected yet.
    pub fn from_config(config: &McpConfig) -> Self {
        let servers = config
            .servers
            .iter()
            .map(|(name, config)| {
                let server = Server { name: name.clone(), config: config.clone(), client: Mutex::new(None) };
                (name.clone(), Arc::new(server))
            })
            .collect();
        McpServers { servers }
    }

    pub fn has(&self, server: &str) -> bool {
        self.servers.contains_key(server)
    }

    /// Ends every connection (a stdio server's process with it), as part of the node's
    /// shutdown, even while agents' tools still refer to the servers. A tool called
    /// afterwards would connect again.
    pub async fn close(&self) {
        for server in self.servers.values() {
            if server.client.lock().await.take().is_some() {
                tracing::debug!(server = %server.name, "mcp server connection closed at shutdown");
            }
        }
    }

    /// The tools of `server` named in `only` (all of them when empty), in the server's
    /// order. Connects to the server if it is not connected yet.
    pub async fn tools(&self, server: &str, only: &[String]) -> Result<Vec<Arc<dyn Tool>>, McpError> {
        let server = self.servers.get(server).ok_or_else(|| McpError::NotConfigured(server.to_string()))?;
        let listed = server.list_tools().await?;
        let missing: Vec<String> =
            only.iter().filter(|name| !listed.iter().any(|t| t.name == name.as_str())).cloned().collect();
        if !missing.is_empty() {
            return Err(McpError::UnknownTools {
                server: server.name.clone(),
                missing,
                available: listed.iter().map(|t| t.name.as_ref()).collect::<Vec<_>>().join(", "),
            });
        }
        listed
            .into_iter()
            .filter(|t| only.is_empty() || only.iter().any(|name| t.name == name.as_str()))
            .map(|t| Ok(Arc::new(McpTool::new(server.clone(), t)?) as Arc<dyn Tool>))
            .collect()
    }
}

/// One configured server and its connection, shared by every tool using it.
struct Server {
    name: String,
    config: McpServerConfig,
    /// Held while connecting, so concurrent first uses start one process, not several.
    client: Mutex<Option<Arc<Client>>>,
}

impl Server {
    /// The live connection: the current one, or a new one when there is none or the
    /// current one has closed (the process exited, the session ended).
    async fn client(&self) -> Result<Arc<Client>, McpError> {
        let mut slot = self.client.lock().await;
        if let Some(client) = slot.as_ref() {
            if !client.is_transport_closed() {
                return Ok(client.clone());
            }
            tracing::info!(server = %self.name, "mcp server connection closed; connecting again");
        }
        *slot = None;
        let client = Arc::new(connect::connect(&self.name, &self.config).await?);
        *slot = Some(client.clone());
        Ok(client)
    }

    async fn list_tools(&self) -> Result<Vec<McpToolInfo>, McpError> {
        self.within_timeout(async {
            let client = self.client().await?;
            client.list_all_tools().await.map_err(|e| self.request_error(e))
        })
        .await
    }

    /// Bounds `work` (connecting included) by the server's timeout.
    async fn within_timeout<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, McpError>>,
    ) -> Result<T, McpError> {
        tokio::time::timeout(self.config.timeout, work)
            .await
            .map_err(|_| McpError::Timeout { server: self.name.clone(), timeout: self.config.timeout })?
    }

    /// A request that failed: the server said no, or the connection broke under it.
    fn request_error(&self, error: ServiceError) -> McpError {
        let server = self.name.clone();
        match error {
            ServiceError::McpError(error) => McpError::Request { server, cause: error.message.into_owned() },
            ServiceError::TransportClosed => {
                McpError::Unavailable { server, cause: "the connection closed during the request".into() }
            }
            error => McpError::Unavailable { server, cause: error.to_string() },
        }
    }
}
