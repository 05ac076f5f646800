//! Layered configuration (DESIGN §13.1).
//!
//! Layers, later ones winning: compiled defaults → the TOML file (`--config FILE`, else
//! `./config.toml` when it exists) → `MARK1_<SECTION>__<KEY>` environment variables →
//! overrides from command-line flags. The merged result is deserialized once with
//! `deny_unknown_fields` everywhere, relative paths are made absolute against the config
//! file's folder, and [`Config::validate`] runs once. Every key has a default, so an empty
//! file (or none) is a valid configuration that needs no other service.
//!
//! ```no_run
//! use mark1::config::ConfigLoader;
//! let config = ConfigLoader::new().set("server.listen", "127.0.0.1:9000").load()?;
//! let agents = config.agent_specs()?;
//! # Ok::<(), mark1::config::ConfigError>(())
//! ```

mod agents;
mod edge;
mod error;
mod load;
mod mcp;
mod models;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use agents::{AgentConfig, AgentLimitsConfig, PoolConfig, RetriesConfig};
pub use edge::{AuthConfig, JwtConfig, PublicKeyAlgorithm, PublicKeyConfig, ServerConfig, TlsConfig};
pub use error::{read_secret, ConfigError};
pub use load::ConfigLoader;
pub use mcp::{McpConfig, McpServerConfig, McpTransport};
pub use models::{ModelsConfig, ProviderConfig, ProviderKind};

/// The top-level sections, in the order of the documented config.toml. Environment
/// variables naming any other section are errors (see [`ConfigLoader`]).
pub const SECTIONS: &[&str] =
    &["node", "server", "auth", "store", "limits", "process", "scan", "models", "mcp", "agents"];

/// The whole node configuration. After [`ConfigLoader::load`] every path in it is absolute.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub node: NodeConfig,
    pub server: ServerConfig,
    pub auth: AuthConfig,
    pub store: StoreConfig,
    pub limits: LimitsConfig,
    pub process: ProcessConfig,
    /// Scans run by the node (`POST /v1/scans`) and agents found by scanning at start.
    pub scan: ScanConfig,
    pub models: ModelsConfig,
    /// `[mcp.servers.<name>]`: MCP servers whose tools LLM agents may use.
    pub mcp: McpConfig,
    /// `[agents.<name>]` tables; the key is the agent's name.
    pub agents: BTreeMap<String, AgentConfig>,
    /// Folder relative paths were resolved against: the config file's, else the cwd.
    #[serde(skip)]
    base_dir: PathBuf,
    /// The file that was read, if any.
    #[serde(skip)]
    file: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            node: NodeConfig::default(),
            server: ServerConfig::default(),
            auth: AuthConfig::default(),
            store: StoreConfig::default(),
            limits: LimitsConfig::default(),
            process: ProcessConfig::default(),
            scan: ScanConfig::default(),
            models: ModelsConfig::default(),
            mcp: McpConfig::default(),
            agents: BTreeMap::new(),
            base_dir: PathBuf::new(),
            file: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// The node's identity; prefixes actor names in the registry. `[a-z][a-z0-9_-]*`.
    pub name: String,
    /// Where the node keeps its files (the SQLite database, work directories).
    pub data_dir: PathBuf,
    /// How long a graceful shutdown may take before the node exits anyway.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// How long a node start's lease lasts without a heartbeat (renewed every third of
    /// it); after that, other nodes may claim its unfinished tasks.
    #[serde(with = "humantime_serde")]
    pub lease_ttl: Duration,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            name: "mark1".into(),
            data_dir: "data".into(),
            shutdown_timeout: Duration::from_secs(10),
            lease_ttl: Duration::from_secs(30),
        }
    }
}

/// SQLite's `synchronous` setting (DESIGN §13.10).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// An accepted task survives power loss.
    Full,
    /// An accepted task survives a crash of the process, not of the machine.
    Normal,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `sqlite://PATH` or `postgres://USER@HOST/DB`; `None` means the SQLite file under
    /// `node.data_dir` (see [`Config::store_url`]). Never holds a password.
    pub url: Option<String>,
    /// Name of the environment variable holding the database password.
    pub password_env: Option<String>,
    /// File holding the database password.
    pub password_file: Option<PathBuf>,
    pub sync: SyncMode,
    /// How long writes nobody waits for are gathered before they commit; a write someone
    /// waits for commits as soon as no other commit is in flight.
    #[serde(with = "humantime_serde")]
    pub flush_delay: Duration,
    /// How long the rows of non-durable tasks (written once, when they finish, and never
    /// waited for) gather apart before they join the next commit, so they do not lengthen
    /// every commit someone waits for.
    #[serde(with = "humantime_serde")]
    pub lazy_delay: Duration,
    /// Most writes in one transaction.
    pub batch_max: usize,
    /// Writes waiting for the store writer before callers are refused (503).
    pub queue_limit: usize,
    /// Finished tasks and runs, events and model usage records older than this are
    /// deleted in the background (budgets restart from the usage that is left).
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// How often pruning runs.
    #[serde(with = "humantime_serde")]
    pub prune_interval: Duration,
    /// Rows deleted per transaction while pruning, so a purge never holds the database long.
    pub prune_batch: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: None,
            password_env: None,
            password_file: None,
            sync: SyncMode::Full,
            flush_delay: Duration::from_millis(2),
            lazy_delay: Duration::from_millis(50),
            batch_max: 512,
            queue_limit: 65536,
            retention: Duration::from_secs(7 * 24 * 3600),
            prune_interval: Duration::from_secs(60),
            prune_batch: 1000,
        }
    }
}

impl StoreConfig {
    /// Reads the database password from `password_env` or `password_file`, if either is set.
    pub fn password(&self) -> Result<Option<String>, ConfigError> {
        read_secret(self.password_env.as_deref(), self.password_file.as_deref())
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Tasks accepted but not finished, node-wide, before intake answers 429.
    pub max_in_flight: usize,
    /// Queue limit of an agent pool whose definition does not set one.
    pub default_queue_limit: usize,
    /// Requests per second each credential may make over HTTP (a token bucket); 0: unlimited.
    pub rate_per_sec: u32,
    /// Requests a credential may make in a burst above its rate.
    pub rate_burst: u32,
    /// Tasks one namespace may have accepted and unfinished (429 beyond); 0: no limit.
    pub namespace_max_in_flight: usize,
    /// Tasks of one namespace handed to agents at once; the rest wait in order; 0: no limit.
    pub namespace_max_running: usize,
    /// Per-namespace overrides of the two limits above.
    pub namespaces: BTreeMap<String, NamespaceLimits>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NamespaceLimits {
    pub max_in_flight: usize,
    pub max_running: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_in_flight: 100_000,
            default_queue_limit: 1024,
            rate_per_sec: 0,
            rate_burst: 100,
            namespace_max_in_flight: 0,
            namespace_max_running: 0,
            namespaces: BTreeMap::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessConfig {
    /// Process agents' commands must lie under one of these folders.
    pub allowed_dirs: Vec<PathBuf>,
    /// Variables of the node's environment every process agent receives (its
    /// `env_allow` adds to these).
    pub env_allow: Vec<String>,
    /// Parent of the per-instance working directories; `None` means `{data_dir}/work`
    /// (see [`Config::work_dir`]).
    pub work_dir: Option<PathBuf>,
}

impl Default for ProcessConfig {
    fn default() -> Self {
        ProcessConfig {
            allowed_dirs: vec!["examples/agents".into()],
            env_allow: ["PATH", "LANG", "LC_ALL", "TZ"].map(String::from).to_vec(),
            work_dir: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScanConfig {
    /// Folders the node may scan over the API; empty (the default): scans over HTTP are
    /// refused. A scan reads every file under the folder it is given.
    pub allowed_dirs: Vec<PathBuf>,
    /// Scans running at once; more wait for a slot.
    pub max_concurrent: usize,
    /// Threads that parse the files of running scans; `0`: half the cores, at least one.
    pub threads: usize,
    /// A folder of agents (`mark1 scan DIR --register` shows what it holds).
    pub agents_dir: Option<PathBuf>,
    /// Registers the agents found in `agents_dir` as process agents when the node starts,
    /// under the rule every process agent meets (commands under `process.allowed_dirs`).
    /// Off by default: a node runs only the agents it is told to.
    pub register_at_start: bool,
}

impl Default for ScanConfig {
    fn default() -> Self {
        ScanConfig {
            allowed_dirs: Vec::new(),
            max_concurrent: 1,
            threads: 0,
            agents_dir: None,
            register_at_start: false,
        }
    }
}

impl ScanConfig {
    /// `threads`, or half the cores (at least one) when it is 0.
    pub fn thread_count(&self) -> usize {
        if self.threads > 0 {
            return self.threads;
        }
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        (cores / 2).max(1)
    }
}

impl Config {
    /// Loads with the usual layers: `path` (or `./config.toml` when it exists), the
    /// process environment, no flag overrides. The CLI uses [`ConfigLoader`] for flags.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut loader = ConfigLoader::new();
        if let Some(path) = path {
            loader = loader.file(path);
        }
        loader.load()
    }

    /// The store URL: `store.url`, or `sqlite://{node.data_dir}/mark1.db`.
    pub fn store_url(&self) -> String {
        match &self.store.url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.node.data_dir.join("mark1.db").display()),
        }
    }

    /// Parent of process agents' working directories: `process.work_dir`, or `{data_dir}/work`.
    pub fn work_dir(&self) -> PathBuf {
        self.process.work_dir.clone().unwrap_or_else(|| self.node.data_dir.join("work"))
    }

    /// Folder that relative paths were resolved against.
    pub fn base_dir(&self) -> &Path {
        &self.base_dir
    }

    /// The config file that was read, if any (for the startup log line).
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// `scan.agents_dir` is a folder, set when `scan.register_at_start` asks for it, and
    /// then under `process.allowed_dirs`: what it holds runs as process agents.
    fn check_scanned_agents(&self) -> Result<(), ConfigError> {
        let invalid = |message: String| {
            Err(ConfigError::InvalidValue { key: "scan.agents_dir".into(), message, origin: String::new() })
        };
        let Some(dir) = &self.scan.agents_dir else {
            if self.scan.register_at_start {
                return invalid(
                    "required when scan.register_at_start = true: the folder of agents to \
                                register at start"
                        .into(),
                );
            }
            return Ok(());
        };
        if !dir.is_dir() {
            return invalid(format!("{} is not a directory", dir.display()));
        }
        if self.scan.register_at_start && !self.process.allowed_dirs.iter().any(|a| dir.starts_with(a)) {
            return invalid(format!(
                "{} is not under process.allowed_dirs ({}): the agents found there run as process \
                 agents, whose commands must be allowed; add the folder there",
                dir.display(),
                self.process
                    .allowed_dirs
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        Ok(())
    }

    /// Checks the whole configuration; [`ConfigLoader::load`] calls it once after layering.
    /// Errors name the dotted key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| {
            Err(ConfigError::InvalidValue { key: key.into(), message, origin: String::new() })
        };
        if !mark1_actors::domain::valid_name(&self.node.name) {
            return invalid("node.name", format!("'{}' must match [a-z][a-z0-9_-]*", self.node.name));
        }
        for (key, value) in [
            ("node.shutdown_timeout", self.node.shutdown_timeout),
            ("node.lease_ttl", self.node.lease_ttl),
            ("store.retention", self.store.retention),
            ("store.prune_interval", self.store.prune_interval),
            ("server.call_timeout", self.server.call_timeout),
            ("server.max_wait", self.server.max_wait),
        ] {
            if value.is_zero() {
                return invalid(key, "must be greater than zero".into());
            }
        }
        if let Some(url) = &self.store.url {
            check_store_url(url).or_else(|m| invalid("store.url", m))?;
        }
        if let Some(var) = &self.store.password_env {
            check_var_name(var).or_else(|m| invalid("store.password_env", m))?;
        }
        if self.store.password_env.is_some() && self.store.password_file.is_some() {
            return invalid("store.password_env", "set password_env or password_file, not both".into());
        }
        for (key, value) in [
            ("store.batch_max", self.store.batch_max),
            ("store.queue_limit", self.store.queue_limit),
            ("store.prune_batch", self.store.prune_batch),
            ("limits.max_in_flight", self.limits.max_in_flight),
            ("limits.default_queue_limit", self.limits.default_queue_limit),
            ("server.max_body_bytes", self.server.max_body_bytes),
            ("server.ws_buffer", self.server.ws_buffer),
            ("scan.max_concurrent", self.scan.max_concurrent),
        ] {
            if value == 0 {
                return invalid(key, "must be at least 1".into());
            }
        }
        if let Err((key, message)) = self.auth.jwt.check() {
            return invalid(&format!("auth.jwt.{key}"), message);
        }
        if self.limits.rate_burst == 0 && self.limits.rate_per_sec > 0 {
            return invalid("limits.rate_burst", "must be at least 1 when limits.rate_per_sec is set".into());
        }
        for name in self.limits.namespaces.keys() {
            if !mark1_actors::domain::valid_name(name) {
                return invalid(
                    &format!("limits.namespaces.{name}"),
                    "a namespace name must match [a-z][a-z0-9_-]*".into(),
                );
            }
        }
        if let Err((key, message)) = self.models.check() {
            return invalid(&key, message);
        }
        if let Err((key, message)) = self.mcp.check() {
            return invalid(&key, message);
        }
        for var in &self.process.env_allow {
            check_var_name(var).or_else(|m| invalid("process.env_allow", m))?;
        }
        for dir in &self.scan.allowed_dirs {
            if !dir.is_dir() {
                return invalid("scan.allowed_dirs", format!("{} is not a directory", dir.display()));
            }
        }
        self.check_scanned_agents()?;
        self.agent_specs().map(drop)
    }
}

/// Only the schemes the store has adapters for, and no password in the text (§13.1: secrets
/// only through `*_env` / `*_file`). Messages never repeat the URL, which may hold one.
fn check_store_url(url: &str) -> Result<(), String> {
    let rest =
        if let Some(rest) = url.strip_prefix("postgres://").or_else(|| url.strip_prefix("postgresql://")) {
            rest
        } else if url.starts_with("sqlite:") {
            return Ok(());
        } else {
            return Err("unsupported URL; use sqlite://PATH or postgres://USER@HOST/DB".into());
        };
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    if let Some((userinfo, _)) = authority.rsplit_once('@') {
        if userinfo.contains(':') {
            return Err("the URL contains a password; remove it and set store.password_env or \
                        store.password_file instead"
                .into());
        }
    }
    Ok(())
}

fn check_var_name(var: &str) -> Result<(), String> {
    if var.is_empty() || var.contains(['=', '\0']) {
        Err(format!("{var:?} is not a valid environment variable name"))
    } else {
        Ok(())
    }
}
