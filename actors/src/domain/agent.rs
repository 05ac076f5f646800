//! Agent definitions.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod llm;

pub use llm::{valid_tool_name, LlmSpec, ToolDef};

/// What an agent is, what it can do and how it runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    pub namespace: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Capability strings such as `code.review`.
    #[serde(default)]
    pub capabilities: Vec<String>,
    pub runtime: RuntimeSpec,
    #[serde(default)]
    pub pool: PoolSpec,
    /// Tasks waiting for a free instance before submissions are refused.
    #[serde(default = "default_queue_limit")]
    pub queue_limit: usize,
    /// Time one attempt may take.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(default)]
    pub retries: RetryPolicy,
    /// Relative cost of one task, used by selection.
    #[serde(default)]
    pub cost: f64,
}

fn default_queue_limit() -> usize {
    1024
}

fn default_timeout() -> Duration {
    Duration::from_secs(60)
}

impl AgentSpec {
    /// A native agent in the `default` namespace; chain the builder methods to refine it.
    pub fn native(name: impl Into<String>) -> Self {
        Self::new(name, RuntimeSpec::Native)
    }

    pub fn process(name: impl Into<String>, process: ProcessSpec) -> Self {
        Self::new(name, RuntimeSpec::Process(Box::new(process)))
    }

    pub fn llm(name: impl Into<String>, llm: LlmSpec) -> Self {
        Self::new(name, RuntimeSpec::Llm(Box::new(llm)))
    }

    fn new(name: impl Into<String>, runtime: RuntimeSpec) -> Self {
        AgentSpec {
            namespace: crate::DEFAULT_NAMESPACE.to_string(),
            name: name.into(),
            description: String::new(),
            capabilities: Vec::new(),
            runtime,
            pool: PoolSpec::default(),
            queue_limit: default_queue_limit(),
            timeout: default_timeout(),
            retries: RetryPolicy::default(),
            cost: 0.0,
        }
    }

    pub fn capability(mut self, capability: impl Into<String>) -> Self {
        self.capabilities.push(capability.into());
        self
    }

    /// What the agent does, in a sentence: listings show it, and plan steps show it to
    /// the model that plans.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    pub fn pool_size(mut self, min: usize, max: usize) -> Self {
        self.pool.min = min;
        self.pool.max = max;
        self
    }

    pub fn queue_limit(mut self, limit: usize) -> Self {
        self.queue_limit = limit;
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn retries(mut self, attempts: u32, backoff: Duration) -> Self {
        self.retries = RetryPolicy { attempts, backoff };
        self
    }

    pub fn cost(mut self, cost: f64) -> Self {
        self.cost = cost;
        self
    }

    /// `<namespace>/<name>`, unique in a node.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    pub fn has_capabilities(&self, wanted: &[String]) -> bool {
        wanted.iter().all(|w| self.capabilities.iter().any(|c| c == w))
    }

    /// Checks what can be checked without the outside world. Errors name the field.
    pub fn validate(&self) -> Result<(), String> {
        if !super::valid_name(&self.name) {
            return Err(format!("agent name '{}' must match [a-z][a-z0-9_-]*", self.name));
        }
        if !super::valid_name(&self.namespace) {
            return Err(format!("namespace '{}' must match [a-z][a-z0-9_-]*", self.namespace));
        }
        if self.pool.max == 0 || self.pool.min > self.pool.max {
            return Err(format!(
                "agent '{}': pool needs 0 <= min <= max and max >= 1 (got min {}, max {})",
                self.name, self.pool.min, self.pool.max
            ));
        }
        if self.timeout.is_zero() {
            return Err(format!("agent '{}': timeout must be greater than zero", self.name));
        }
        if !(self.cost.is_finite() && self.cost >= 0.0) {
            return Err(format!("agent '{}': cost must be a finite number >= 0", self.name));
        }
        match &self.runtime {
            RuntimeSpec::Process(p) if p.command.as_os_str().is_empty() => {
                Err(format!("agent '{}': process.command is empty", self.name))
            }
            RuntimeSpec::Llm(llm) => {
                llm.validate().map_err(|e| format!("agent '{}': {e}", self.name))?;
                // A task calling its own agent waits for a worker it may itself hold.
                let calls_itself = llm
                    .tools
                    .iter()
                    .any(|t| matches!(t, ToolDef::Agent { agent: Some(agent), .. } if *agent == self.name));
                if calls_itself {
                    return Err(format!(
                        "agent '{}': llm.tools: an agent tool may not call its own agent",
                        self.name
                    ));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// How an agent's instances run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RuntimeSpec {
    /// A Rust type implementing `Agent`, registered through the embedding API.
    Native,
    /// A long-lived child process speaking the process protocol (docs/process-protocol.md).
    Process(Box<ProcessSpec>),
    /// A tool-calling loop through the model router.
    Llm(Box<LlmSpec>),
}

impl RuntimeSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            RuntimeSpec::Native => "native",
            RuntimeSpec::Process(_) => "process",
            RuntimeSpec::Llm(_) => "llm",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSpec {
    pub min: usize,
    pub max: usize,
}

impl Default for PoolSpec {
    fn default() -> Self {
        PoolSpec { min: 1, max: 4 }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Extra attempts after the first, for retryable failures.
    pub attempts: u32,
    /// Delay before the first retry; doubles with each further one.
    #[serde(with = "humantime_serde")]
    pub backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { attempts: 0, backoff: Duration::from_millis(200) }
    }
}

/// A process agent: the command, its environment and its sandbox.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessSpec {
    /// Executable (absolute, or relative to the config file's folder). Must lie under
    /// one of the node's allowed directories.
    pub command: PathBuf,
    #[serde(default)]
    pub args: Vec<String>,
    /// Working directory of the child; a fresh one under the node's data dir when unset.
    #[serde(default)]
    pub working_dir: Option<PathBuf>,
    /// Fixed variables given to the child.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Names of the node's own variables passed through to the child (the allow-list).
    #[serde(default)]
    pub env_allow: Vec<String>,
    #[serde(default)]
    pub limits: ResourceLimits,
    /// How long a cancelled task may take to stop before the process is killed.
    #[serde(default = "default_grace", with = "humantime_serde")]
    pub cancel_grace: Duration,
    /// How long the process may take to say hello.
    #[serde(default = "default_start_timeout", with = "humantime_serde")]
    pub start_timeout: Duration,
}

fn default_grace() -> Duration {
    Duration::from_secs(2)
}

fn default_start_timeout() -> Duration {
    Duration::from_secs(10)
}

impl ProcessSpec {
    pub fn new(command: impl Into<PathBuf>) -> Self {
        ProcessSpec {
            command: command.into(),
            args: Vec::new(),
            working_dir: None,
            env: BTreeMap::new(),
            env_allow: Vec::new(),
            limits: ResourceLimits::default(),
            cancel_grace: default_grace(),
            start_timeout: default_start_timeout(),
        }
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }
}

/// Resource limits applied to the child before exec (setrlimit). `None` keeps the node's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceLimits {
    /// Address space (RLIMIT_AS), in MiB.
    pub memory_mb: Option<u64>,
    /// CPU time (RLIMIT_CPU), in seconds.
    pub cpu_seconds: Option<u64>,
    /// Open files (RLIMIT_NOFILE).
    pub open_files: Option<u64>,
    /// Processes of the user (RLIMIT_NPROC).
    pub processes: Option<u64>,
}

impl Default for ResourceLimits {
    fn default() -> Self {
        ResourceLimits {
            memory_mb: Some(1024),
            cpu_seconds: Some(3600),
            open_files: Some(256),
            processes: None,
        }
    }
}
