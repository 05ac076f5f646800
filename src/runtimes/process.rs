//! The `process` runtime: each agent instance is one long-lived child process speaking
//! newline-delimited JSON on stdin/stdout (DESIGN §13.6, docs/process-protocol.md),
//! started inside the node's sandbox.
//!
//! - [`protocol`]: message types and the bounded line reader.
//! - [`sandbox`]: allowed commands, environment, working directory, resource limits.
//! - [`stderr`]: stderr lines to the logs, the last ones kept for error messages.
//! - [`worker`]: one running process, one task at a time.

mod protocol;
mod sandbox;
// Crate-visible: MCP servers' stderr is logged the same way (`runtimes::llm::mcp`).
pub(crate) mod stderr;
mod worker;

#[cfg(test)]
mod tests;

use std::process::Stdio;

use mark1_actors::domain::{AgentSpec, ProcessSpec, RuntimeSpec};
use mark1_actors::ports::{AgentError, AgentRuntime, AgentWorker};
use tokio::io::BufReader;
use tokio::process::Command;
use tokio::time::timeout;

pub use protocol::{LineError, LineReader, MAX_LINE_BYTES, PROTOCOL_VERSION};
pub(crate) use sandbox::NEVER_PASSED_PREFIX;
pub use sandbox::{SandboxError, SandboxPolicy, DEFAULT_ENV_ALLOW};
pub use worker::ProcessWorker;

use protocol::{quote, AgentMessage};
use stderr::StderrTail;

/// Starts process agents inside a [`SandboxPolicy`]. One runtime serves every process
/// agent of a node: the command and its settings come from the `AgentSpec` given to
/// [`AgentRuntime::start`], so an updated spec takes effect at the next start.
#[derive(Debug)]
pub struct ProcessRuntime {
    sandbox: SandboxPolicy,
    max_line: usize,
}

impl ProcessRuntime {
    pub fn new(sandbox: SandboxPolicy) -> Self {
        ProcessRuntime { sandbox, max_line: MAX_LINE_BYTES }
    }

    /// Overrides the longest accepted line ([`MAX_LINE_BYTES`] by default).
    pub fn with_max_line(mut self, bytes: usize) -> Self {
        self.max_line = bytes;
        self
    }

    pub fn sandbox(&self) -> &SandboxPolicy {
        &self.sandbox
    }

    /// What registration can check without starting anything: the command is allowed.
    pub fn validate(&self, spec: &ProcessSpec) -> Result<(), SandboxError> {
        self.sandbox.check_command(&spec.command).map(drop)
    }

    /// Like [`AgentRuntime::start`], returning the concrete worker (its pid is useful to
    /// tests and diagnostics).
    pub async fn spawn(&self, spec: &AgentSpec) -> Result<ProcessWorker, AgentError> {
        let RuntimeSpec::Process(process) = &spec.runtime else {
            return Err(AgentError::StartFailed(format!("agent '{}' is not a process agent", spec.key())));
        };
        let mut worker = self.spawn_process(spec, process)?;
        match timeout(process.start_timeout, worker.stdout().next_line()).await {
            Ok(Ok(Some(line))) => match AgentMessage::parse(&line) {
                Ok(AgentMessage::Hello { protocol: PROTOCOL_VERSION, capabilities }) => {
                    let missing: Vec<&String> =
                        spec.capabilities.iter().filter(|c| !capabilities.contains(c)).collect();
                    if !missing.is_empty() {
                        // The spec is what selection trusts; a mismatch is worth a warning,
                        // not a refusal (an agent may not list what its shim adds).
                        tracing::warn!(agent = %spec.key(), ?missing, "agent's hello does not list capabilities of its spec");
                    }
                    tracing::info!(agent = %spec.key(), pid = worker.pid(), "agent process started");
                    Ok(worker)
                }
                Ok(AgentMessage::Hello { protocol, .. }) => {
                    let reason =
                        format!("agent speaks protocol {protocol}, this node speaks {PROTOCOL_VERSION}");
                    Err(fail(&mut worker, reason).await)
                }
                Ok(_) => {
                    Err(fail(&mut worker, format!("expected a hello line first, got {}", quote(&line))).await)
                }
                Err(e) => Err(fail(&mut worker, format!("expected a hello line: {e}")).await),
            },
            Ok(Ok(None)) => Err(AgentError::StartFailed(worker.ended("exited before hello").await)),
            Ok(Err(e)) => Err(fail(&mut worker, format!("reading hello: {e}")).await),
            Err(_) => {
                let waited = humantime::format_duration(process.start_timeout);
                Err(fail(&mut worker, format!("no hello within {waited}")).await)
            }
        }
    }

    fn spawn_process(&self, spec: &AgentSpec, process: &ProcessSpec) -> Result<ProcessWorker, AgentError> {
        let command = self.sandbox.check_command(&process.command).map_err(|e| start_failed(&e))?;
        // A fresh directory per start: a restarted instance does not inherit leftovers.
        let instance = format!("{}/{}/{}", spec.namespace, spec.name, uuid::Uuid::now_v7());
        let working_dir = self
            .sandbox
            .working_dir(process, &instance)
            .map_err(|e| AgentError::StartFailed(format!("cannot create working dir: {e}")))?;
        let env = self.sandbox.environment(process, working_dir.path(), |name| std::env::var_os(name));

        let mut cmd = Command::new(&command);
        cmd.args(&process.args)
            .env_clear()
            .envs(env)
            .current_dir(working_dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own group, so one killpg reaches everything the agent starts.
            .process_group(0)
            .kill_on_drop(true);
        sandbox::apply_rlimits_before_exec(&mut cmd, sandbox::rlimits(&process.limits));
        let mut child = cmd
            .spawn()
            .map_err(|e| AgentError::StartFailed(format!("cannot start '{}': {e}", command.display())))?;

        let pid = child.id().unwrap_or_default();
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let stderr_tail = StderrTail::default();
        let stderr_task = stderr::pump(stderr, spec.key(), pid, stderr_tail.clone());
        Ok(ProcessWorker::new(worker::Parts {
            agent: spec.key(),
            child,
            stdout: LineReader::new(BufReader::new(stdout), self.max_line),
            stderr_tail,
            stderr_task,
            cancel_grace: process.cancel_grace,
            working_dir,
        }))
    }
}

fn start_failed(e: &SandboxError) -> AgentError {
    AgentError::StartFailed(e.to_string())
}

/// Kills a process that failed to start properly and says why, with its last stderr.
async fn fail(worker: &mut ProcessWorker, reason: String) -> AgentError {
    AgentError::StartFailed(worker.kill_describing(&reason).await)
}

#[async_trait::async_trait]
impl AgentRuntime for ProcessRuntime {
    async fn start(&self, spec: &AgentSpec) -> Result<Box<dyn AgentWorker>, AgentError> {
        Ok(Box::new(self.spawn(spec).await?))
    }
}
