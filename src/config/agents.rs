//! `[agents.<name>]` tables and their conversion to [`AgentSpec`]: process agents (a
//! command) and LLM agents (an `[agents.<name>.llm]` table).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mark1_actors::domain::{AgentSpec, LlmSpec, PoolSpec, ProcessSpec, ResourceLimits, RetryPolicy};
use serde::{Deserialize, Serialize};

use super::{Config, ConfigError};

/// One agent defined in config. Defaults come from the domain types, so a table with
/// only `command` makes the same agent as `AgentSpec::process(name, command)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    pub namespace: String,
    pub description: String,
    pub capabilities: Vec<String>,
    /// `"process"` (the default) or `"llm"`; native agents are Rust types, registered in
    /// code.
    pub runtime: String,
    /// Executable; must lie under one of `process.allowed_dirs`. Required for a process
    /// agent.
    pub command: Option<PathBuf>,
    pub args: Vec<String>,
    /// The child's working directory; a fresh one under `process.work_dir` when unset.
    pub working_dir: Option<PathBuf>,
    /// Fixed variables given to the child. Not for secrets.
    pub env: BTreeMap<String, String>,
    /// Node variables passed through, in addition to `process.env_allow`.
    pub env_allow: Vec<String>,
    pub limits: AgentLimitsConfig,
    pub pool: PoolConfig,
    /// `None` means `limits.default_queue_limit`.
    pub queue_limit: Option<usize>,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    pub retries: RetriesConfig,
    pub cost: f64,
    #[serde(with = "humantime_serde")]
    pub cancel_grace: Duration,
    #[serde(with = "humantime_serde")]
    pub start_timeout: Duration,
    /// The model, prompt, tools and limits of an LLM agent. Required for one.
    pub llm: Option<LlmSpec>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        // Taken from the domain constructors so the defaults live in one place.
        let spec = AgentSpec::native("default");
        let process = ProcessSpec::new("");
        AgentConfig {
            namespace: spec.namespace,
            description: String::new(),
            capabilities: Vec::new(),
            runtime: "process".into(),
            command: None,
            args: Vec::new(),
            working_dir: None,
            env: BTreeMap::new(),
            env_allow: Vec::new(),
            limits: AgentLimitsConfig::default(),
            pool: PoolConfig::default(),
            queue_limit: None,
            timeout: spec.timeout,
            retries: RetriesConfig::default(),
            cost: spec.cost,
            cancel_grace: process.cancel_grace,
            start_timeout: process.start_timeout,
            llm: None,
        }
    }
}

/// Resource limits of the child. TOML has no null, so `0` means "no limit" (keep the node's);
/// an absent key takes the default of [`ResourceLimits`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentLimitsConfig {
    pub memory_mb: u64,
    pub cpu_seconds: u64,
    pub open_files: u64,
    pub processes: u64,
}

impl Default for AgentLimitsConfig {
    fn default() -> Self {
        let d = ResourceLimits::default();
        AgentLimitsConfig {
            memory_mb: d.memory_mb.unwrap_or(0),
            cpu_seconds: d.cpu_seconds.unwrap_or(0),
            open_files: d.open_files.unwrap_or(0),
            processes: d.processes.unwrap_or(0),
        }
    }
}

impl From<&AgentLimitsConfig> for ResourceLimits {
    fn from(c: &AgentLimitsConfig) -> Self {
        let limit = |v: u64| (v != 0).then_some(v);
        ResourceLimits {
            memory_mb: limit(c.memory_mb),
            cpu_seconds: limit(c.cpu_seconds),
            open_files: limit(c.open_files),
            processes: limit(c.processes),
        }
    }
}

/// Like [`PoolSpec`], but either key may be left out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolConfig {
    pub min: usize,
    pub max: usize,
}

impl Default for PoolConfig {
    fn default() -> Self {
        let d = PoolSpec::default();
        PoolConfig { min: d.min, max: d.max }
    }
}

/// Like [`RetryPolicy`], but either key may be left out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetriesConfig {
    pub attempts: u32,
    #[serde(with = "humantime_serde")]
    pub backoff: Duration,
}

impl Default for RetriesConfig {
    fn default() -> Self {
        let d = RetryPolicy::default();
        RetriesConfig { attempts: d.attempts, backoff: d.backoff }
    }
}

impl Config {
    /// The `[agents.*]` tables as domain specs (name = table key), each validated with
    /// [`AgentSpec::validate`]. Errors start with `agents.<name>`.
    pub fn agent_specs(&self) -> Result<Vec<AgentSpec>, ConfigError> {
        self.agents.iter().map(|(name, agent)| self.agent_spec(name, agent)).collect()
    }

    /// An agent registered at run time (over HTTP) from the keys of an `[agents.<name>]`
    /// table: checked as config is, relative paths resolved against the config's folder.
    pub fn agent_spec_from(&self, name: &str, mut agent: AgentConfig) -> Result<AgentSpec, ConfigError> {
        let base = self.base_dir().to_path_buf();
        resolve_agent_paths(&mut agent, |p| super::load::absolute(&base, p));
        self.agent_spec(name, &agent)
    }

    fn agent_spec(&self, name: &str, agent: &AgentConfig) -> Result<AgentSpec, ConfigError> {
        let err = |message: String| ConfigError::Agent { name: name.to_string(), message };
        let spec = match agent.runtime.as_str() {
            "process" => {
                if agent.llm.is_some() {
                    return Err(err("llm: only for runtime = \"llm\"".into()));
                }
                AgentSpec::process(name, self.process_spec(agent).map_err(err)?)
            }
            "llm" => {
                let process_keys = [
                    ("command", agent.command.is_some()),
                    ("args", !agent.args.is_empty()),
                    ("working_dir", agent.working_dir.is_some()),
                    ("env", !agent.env.is_empty()),
                    ("env_allow", !agent.env_allow.is_empty()),
                ];
                if let Some((key, _)) = process_keys.iter().find(|(_, set)| *set) {
                    return Err(err(format!(
                        "{key}: only for runtime = \"process\"; an llm agent runs no command"
                    )));
                }
                let llm = agent.llm.clone().ok_or_else(|| {
                    err("llm: required for runtime = \"llm\" (a table with at least model)".into())
                })?;
                AgentSpec::llm(name, llm)
            }
            "native" => {
                return Err(err("runtime \"native\" cannot be configured in a file: native agents are Rust \
                                types registered in code through the embedding API; use runtime = \
                                \"process\" with a command, or \"llm\", here"
                    .into()))
            }
            other => {
                return Err(err(format!(
                    "runtime: unknown runtime {other:?}; use \"process\" or \"llm\" in config"
                )))
            }
        };
        let mut spec = spec
            .namespace(&agent.namespace)
            .pool_size(agent.pool.min, agent.pool.max)
            .queue_limit(agent.queue_limit.unwrap_or(self.limits.default_queue_limit))
            .timeout(agent.timeout)
            .retries(agent.retries.attempts, agent.retries.backoff)
            .cost(agent.cost);
        spec.description = agent.description.clone();
        spec.capabilities = agent.capabilities.clone();
        spec.validate().map_err(|e| err(strip_agent_prefix(name, e)))?;
        if spec.queue_limit == 0 {
            return Err(err("queue_limit: must be at least 1".into()));
        }
        Ok(spec)
    }

    fn process_spec(&self, agent: &AgentConfig) -> Result<ProcessSpec, String> {
        let command = agent.command.as_ref().ok_or("command: required for a process agent")?;
        if !command.as_os_str().is_empty()
            && !self.process.allowed_dirs.iter().any(|dir| command.starts_with(dir))
        {
            return Err(format!(
                "command: {} is outside process.allowed_dirs ({}); move it or add its folder there",
                command.display(),
                show_paths(&self.process.allowed_dirs)
            ));
        }
        for var in agent.env.keys().chain(&agent.env_allow) {
            super::check_var_name(var).map_err(|m| format!("env: {m}"))?;
        }
        let mut env_allow = self.process.env_allow.clone();
        env_allow.extend(agent.env_allow.iter().filter(|v| !self.process.env_allow.contains(v)).cloned());
        Ok(ProcessSpec {
            command: command.clone(),
            args: agent.args.clone(),
            working_dir: agent.working_dir.clone(),
            env: agent.env.clone(),
            env_allow,
            limits: (&agent.limits).into(),
            cancel_grace: agent.cancel_grace,
            start_timeout: agent.start_timeout,
        })
    }
}

/// `AgentSpec::validate` names the agent; the config error names it already.
fn strip_agent_prefix(name: &str, message: String) -> String {
    message.strip_prefix(&format!("agent '{name}': ")).map(str::to_string).unwrap_or(message)
}

fn show_paths(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

/// Used by the loader: the agent keys whose values are paths.
pub(super) fn resolve_agent_paths(agent: &mut AgentConfig, resolve: impl Fn(&Path) -> PathBuf) {
    if let Some(command) = &mut agent.command {
        if !command.as_os_str().is_empty() {
            *command = resolve(command);
        }
    }
    if let Some(dir) = &mut agent.working_dir {
        *dir = resolve(dir);
    }
}
