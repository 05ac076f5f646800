//! Connecting to one MCP server: a child process spoken to over its stdio, or a
//! streamable HTTP endpoint; then the MCP handshake.

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};
use rmcp::model::{ClientCapabilities, ClientConfig, Implementation};
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};

use super::McpError;
use crate::config::{read_secret, McpServerConfig, McpTransport};
use crate::runtimes::llm::http_tool::error_chain;
use crate::runtimes::process::stderr::{self, StderrTail};
use crate::runtimes::process::NEVER_PASSED_PREFIX;

/// A running MCP client session; dropping the last handle closes it.
pub(super) type Client = RunningService<RoleClient, ClientConfig>;

/// How long a failed start waits for the rest of the child's stderr, for the error.
const STDERR_GRACE: Duration = Duration::from_millis(500);

/// Connects and completes the handshake. The caller bounds the time it may take.
pub(super) async fn connect(name: &str, config: &McpServerConfig) -> Result<Client, McpError> {
    let unavailable = |cause: String| McpError::Unavailable { server: name.to_string(), cause };
    match config.transport() {
        Some(McpTransport::Stdio { command }) => stdio(name, command, config).await.map_err(unavailable),
        Some(McpTransport::Http { url }) => http(url, config).await.map_err(unavailable),
        None => Err(unavailable(format!("mcp.servers.{name}: set command or url, not both"))),
    }
}

/// Who this client says it is.
fn client_config() -> ClientConfig {
    ClientConfig::new(ClientCapabilities::default(), Implementation::new("mark1", env!("CARGO_PKG_VERSION")))
}

async fn stdio(name: &str, command: &Path, config: &McpServerConfig) -> Result<Client, String> {
    let mut cmd = tokio::process::Command::new(command);
    cmd.args(&config.args).env_clear();
    for var in config.env_allow.iter().filter(|var| !var.starts_with(NEVER_PASSED_PREFIX)) {
        if let Some(value) = std::env::var_os(var) {
            cmd.env(var, value);
        }
    }
    cmd.envs(&config.env);
    if let Some(dir) = &config.working_dir {
        cmd.current_dir(dir);
    }
    // rmcp stops the child from a task when the session ends; if the runtime is going
    // away and that task never runs, dropping the child still kills it.
    cmd.kill_on_drop(true);
    let (transport, stderr) = TokioChildProcess::builder(cmd)
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", command.display()))?;
    let tail = StderrTail::default();
    let pump = stderr.map(|stderr| {
        stderr::pump(stderr, format!("mcp:{name}"), transport.id().unwrap_or_default(), tail.clone())
    });
    match client_config().serve(transport).await {
        Ok(client) => Ok(client),
        Err(error) => {
            // The child is gone with the failed session; its last words explain why.
            if let Some(pump) = pump {
                let _ = tokio::time::timeout(STDERR_GRACE, pump).await;
            }
            Err(format!("{}{}", error_chain(&error), tail.describe()))
        }
    }
}

async fn http(url: &str, config: &McpServerConfig) -> Result<Client, String> {
    use_ring_for_tls();
    let mut transport = StreamableHttpClientTransportConfig::with_uri(url);
    if let Some(var) = &config.api_key_env {
        let token = read_secret(Some(var), None).map_err(|e| e.to_string())?.unwrap_or_default();
        transport = transport.auth_header(token);
    }
    let headers: HashMap<HeaderName, HeaderValue> = config
        .headers
        .iter()
        .map(|(name, value)| {
            let name = HeaderName::from_bytes(name.as_bytes()).expect("validated header name");
            (name, HeaderValue::from_str(value).expect("validated header value"))
        })
        .collect();
    let transport = StreamableHttpClientTransport::from_config(transport.custom_headers(headers));
    client_config().serve(transport).await.map_err(|e| error_chain(&e))
}

/// rmcp's HTTP client is built on rustls without a crypto provider of its own (the
/// node's TLS is on ring, and one provider means no aws-lc build); it takes the
/// process default, so ring must be it. Installing fails only when a default is set
/// already, which is as good.
fn use_ring_for_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
