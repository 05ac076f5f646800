//! `[mcp.servers.<name>]`: the MCP servers whose tools LLM agents may use (a tool
//! definition `{ kind = "mcp", server = "<name>" }`). A server is a child process spoken
//! to over its stdio, or a streamable HTTP endpoint.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue, AUTHORIZATION};
use serde::{Deserialize, Serialize};

use super::check_var_name;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct McpConfig {
    /// `[mcp.servers.<name>]`; the key is the name tool definitions use.
    pub servers: BTreeMap<String, McpServerConfig>,
}

/// One MCP server: `command` (stdio) or `url` (streamable HTTP), never both.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct McpServerConfig {
    /// stdio: the executable. A bare name (`npx`) is looked up on the child's `PATH`; a
    /// path (`servers/files.py`) is relative to the config file's folder.
    pub command: Option<PathBuf>,
    pub args: Vec<String>,
    /// Fixed variables given to the child. Not for secrets: pass those with `env_allow`.
    pub env: BTreeMap<String, String>,
    /// Variables of the node's environment passed to the child (never `MARK1_*`); all
    /// others are cleared.
    /// stdio only.
    pub env_allow: Vec<String>,
    /// The child's working directory; the node's current directory when unset.
    pub working_dir: Option<PathBuf>,
    /// Streamable HTTP: the endpoint, `http://` or `https://`.
    pub url: Option<String>,
    /// Environment variable holding a token sent as `Authorization: Bearer`.
    pub api_key_env: Option<String>,
    /// Further headers sent with every request. Not for secrets.
    pub headers: BTreeMap<String, String>,
    /// Longest one tool call (or connecting, or listing the tools) may take.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for McpServerConfig {
    fn default() -> Self {
        McpServerConfig {
            command: None,
            args: Vec::new(),
            env: BTreeMap::new(),
            env_allow: ["PATH", "HOME", "LANG", "LC_ALL", "TZ"].map(String::from).to_vec(),
            working_dir: None,
            url: None,
            api_key_env: None,
            headers: BTreeMap::new(),
            timeout: Duration::from_secs(30),
        }
    }
}

/// How to reach a server.
#[derive(Debug)]
pub enum McpTransport<'a> {
    Stdio { command: &'a Path },
    Http { url: &'a str },
}

impl McpServerConfig {
    /// `None` unless exactly one of `command` and `url` is set (which validation ensures).
    pub fn transport(&self) -> Option<McpTransport<'_>> {
        match (&self.command, &self.url) {
            (Some(command), None) => Some(McpTransport::Stdio { command }),
            (None, Some(url)) => Some(McpTransport::Http { url }),
            _ => None,
        }
    }
}

impl McpConfig {
    /// Makes relative command paths and working directories absolute; a bare command
    /// name stays as it is, for the child's `PATH`.
    pub(super) fn resolve_paths(&mut self, resolve: impl Fn(&Path) -> PathBuf) {
        for server in self.servers.values_mut() {
            if let Some(command) = &mut server.command {
                if command.components().count() > 1 {
                    *command = resolve(command);
                }
            }
            if let Some(dir) = &mut server.working_dir {
                *dir = resolve(dir);
            }
        }
    }

    /// Checks names, transports and limits; the `Err` is (key, message).
    pub(super) fn check(&self) -> Result<(), (String, String)> {
        for (name, server) in &self.servers {
            let table = format!("mcp.servers.{name}");
            let key = |field: &str| format!("{table}.{field}");
            if !mark1_actors::domain::valid_name(name) {
                return Err((table, "a server name must match [a-z][a-z0-9_-]*".into()));
            }
            match (&server.command, &server.url) {
                (Some(_), Some(_)) => {
                    return Err((
                        table,
                        "set command (a stdio server) or url (an HTTP server), not both".into(),
                    ))
                }
                (None, None) => {
                    return Err((table, "set command (a stdio server) or url (an HTTP server)".into()))
                }
                (Some(command), None) => {
                    if command.as_os_str().is_empty() {
                        return Err((key("command"), "must not be empty".into()));
                    }
                    let http_keys = [
                        ("api_key_env", server.api_key_env.is_some()),
                        ("headers", !server.headers.is_empty()),
                    ];
                    if let Some((field, _)) = http_keys.iter().find(|(_, set)| *set) {
                        return Err((key(field), "only for an HTTP server (url)".into()));
                    }
                }
                (None, Some(url)) => {
                    if !(url.starts_with("http://") || url.starts_with("https://")) {
                        return Err((key("url"), format!("'{url}' must start with http:// or https://")));
                    }
                    let stdio_keys = [
                        ("args", !server.args.is_empty()),
                        ("env", !server.env.is_empty()),
                        ("working_dir", server.working_dir.is_some()),
                    ];
                    if let Some((field, _)) = stdio_keys.iter().find(|(_, set)| *set) {
                        return Err((key(field), "only for a stdio server (command)".into()));
                    }
                }
            }
            for (field, vars) in [
                ("env", server.env.keys().collect::<Vec<_>>()),
                ("env_allow", server.env_allow.iter().collect()),
                ("api_key_env", server.api_key_env.iter().collect()),
            ] {
                for var in vars {
                    check_var_name(var).map_err(|m| (key(field), m))?;
                }
            }
            for (header, value) in &server.headers {
                check_header(header, value).map_err(|m| (key(&format!("headers.{header}")), m))?;
            }
            if server.timeout.is_zero() {
                return Err((key("timeout"), "must be greater than zero".into()));
            }
        }
        Ok(())
    }
}

fn check_header(name: &str, value: &str) -> Result<(), String> {
    let name =
        HeaderName::from_bytes(name.as_bytes()).map_err(|_| "not a valid HTTP header name".to_string())?;
    if name == AUTHORIZATION {
        return Err("a token does not belong in config text: set api_key_env".into());
    }
    HeaderValue::from_str(value).map_err(|_| "not a valid HTTP header value".to_string())?;
    Ok(())
}
