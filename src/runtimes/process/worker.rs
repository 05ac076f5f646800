//! One running agent process: sends tasks, relays progress, enforces cancellation, and
//! turns every way a process can misbehave into an [`AgentError`].

use std::time::Duration;

use mark1_actors::ports::{AgentError, AgentWorker, TaskContext};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, timeout, timeout_at, Instant};

use super::protocol::{encode, quote, AgentMessage, LineError, LineReader, NodeMessage, WireContext};
use super::sandbox::WorkingDir;
use super::stderr::StderrTail;

/// How long a process that closed stdout may take to exit before it is killed.
const EXIT_WAIT: Duration = Duration::from_secs(1);
/// How long to wait for stderr to drain so an error can quote its last lines.
const STDERR_DRAIN: Duration = Duration::from_millis(500);
/// After SIGKILL a process is gone at once unless stuck in the kernel; don't wait forever.
const REAP_WAIT: Duration = Duration::from_secs(5);

/// The worker of one process agent instance. After a crash, a protocol error or a kill
/// (a cancel the agent ignored) the process is gone and every later `run` returns
/// `AgentError::Crashed` at once, so the instance gets replaced.
pub struct ProcessWorker {
    agent: String,
    pid: u32,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: LineReader<BufReader<ChildStdout>>,
    stderr_tail: StderrTail,
    stderr_task: JoinHandle<()>,
    cancel_grace: Duration,
    next_id: u64,
    /// Set once the process can no longer be used; says why.
    broken: Option<String>,
    /// Declared last: removed only after `Drop` has killed the process group.
    _working_dir: WorkingDir,
}

/// The parts [`ProcessWorker::new`] is built from.
pub(super) struct Parts {
    pub agent: String,
    pub child: Child,
    pub stdout: LineReader<BufReader<ChildStdout>>,
    pub stderr_tail: StderrTail,
    pub stderr_task: JoinHandle<()>,
    pub cancel_grace: Duration,
    pub working_dir: WorkingDir,
}

enum Event {
    Line(Result<Option<Vec<u8>>, LineError>),
    Cancel,
    GraceOver,
}

impl ProcessWorker {
    pub(super) fn new(mut parts: Parts) -> Self {
        let pid = parts.child.id().expect("a just spawned child has a pid");
        let stdin = parts.child.stdin.take();
        ProcessWorker {
            agent: parts.agent,
            pid,
            child: parts.child,
            stdin,
            stdout: parts.stdout,
            stderr_tail: parts.stderr_tail,
            stderr_task: parts.stderr_task,
            cancel_grace: parts.cancel_grace,
            next_id: 0,
            broken: None,
            _working_dir: parts.working_dir,
        }
    }

    /// The process id, which is also its process group id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub(super) fn stdout(&mut self) -> &mut LineReader<BufReader<ChildStdout>> {
        &mut self.stdout
    }

    /// Kills the whole process group and reaps the child. Safe to call repeatedly.
    pub(super) async fn kill(&mut self, reason: &str) {
        if self.broken.is_none() {
            self.broken = Some(reason.to_string());
        }
        self.kill_group();
        if timeout(REAP_WAIT, self.child.wait()).await.is_err() {
            tracing::error!(agent = %self.agent, pid = self.pid, "agent process did not die after SIGKILL");
        }
    }

    /// SIGKILL to the group reaches whatever the agent started too. Only while the child
    /// is unreaped (or was reaped just now) can the pid not belong to someone else.
    fn kill_group(&self) {
        let _ = killpg(Pid::from_raw(self.pid as i32), Signal::SIGKILL);
    }

    /// For a process that closed stdout or exited: waits briefly for it to exit (killing
    /// it if it does not), then describes how it ended, with its last stderr lines.
    pub(super) async fn ended(&mut self, what: &str) -> String {
        let status = match timeout(EXIT_WAIT, self.child.wait()).await {
            Ok(Ok(status)) => status.to_string(),
            Ok(Err(e)) => format!("unknown status ({e})"),
            Err(_) => {
                self.kill(what).await;
                "still running after closing stdout; killed".to_string()
            }
        };
        // Leftover children would keep stderr open and outlive the agent.
        self.kill_group();
        let _ = timeout(STDERR_DRAIN, &mut self.stderr_task).await;
        let reason = format!("{what} ({status}){}", self.stderr_tail.describe());
        self.broken.get_or_insert_with(|| reason.clone());
        reason
    }

    /// Kills the process for `reason` and returns the reason with its last stderr lines.
    pub(super) async fn kill_describing(&mut self, reason: &str) -> String {
        self.kill(reason).await;
        let _ = timeout(STDERR_DRAIN, &mut self.stderr_task).await;
        format!("{reason}{}", self.stderr_tail.describe())
    }

    async fn crashed(&mut self, what: &str) -> AgentError {
        AgentError::Crashed(self.ended(what).await)
    }

    async fn protocol_error(&mut self, message: String) -> AgentError {
        tracing::warn!(agent = %self.agent, pid = self.pid, error = %message, "agent broke the protocol; killing it");
        self.kill(&format!("protocol error: {message}")).await;
        AgentError::Protocol(message)
    }

    async fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        let stdin = self.stdin.as_mut().ok_or(std::io::ErrorKind::BrokenPipe)?;
        stdin.write_all(line).await?;
        stdin.flush().await
    }

    // One span per task here (a process round trip dwarfs it); native agents get none, as
    // their tasks are the hot path.
    #[tracing::instrument(skip_all, fields(task_id = %ctx.task_id, attempt = ctx.attempt, agent = %self.agent, pid = self.pid))]
    async fn exchange(&mut self, ctx: &TaskContext, input: &Value) -> Result<Value, AgentError> {
        self.next_id += 1;
        let id = self.next_id.to_string();
        let task = encode(&NodeMessage::Task { id: &id, input, context: WireContext::new(ctx) });
        let cancel = ctx.cancel.clone();
        // A large input can fill the pipe while the agent is not reading: keep watching
        // for cancellation while writing.
        tokio::select! {
            biased;
            written = self.write_line(&task) => if written.is_err() {
                // A closed pipe means the process went away; stdout's EOF tells how.
                return Err(self.crashed("exited before taking the task").await);
            },
            _ = cancel.cancelled() => {
                // Half a line may have been written: the process cannot be trusted.
                self.kill("cancelled while the task was being written").await;
                return Err(AgentError::Cancelled);
            }
        }

        let mut grace_until: Option<Instant> = None;
        loop {
            let event = tokio::select! {
                biased;
                line = self.stdout.next_line() => Event::Line(line),
                _ = cancel.cancelled(), if grace_until.is_none() => Event::Cancel,
                _ = sleep_until(grace_until.unwrap_or_else(Instant::now)), if grace_until.is_some() => Event::GraceOver,
            };
            match event {
                Event::Line(Ok(Some(line))) => {
                    let message = match AgentMessage::parse(&line) {
                        Ok(message) => message,
                        Err(e) => return Err(self.protocol_error(format!("malformed message: {e}")).await),
                    };
                    match message {
                        AgentMessage::Progress { id: got, data } if got == id => ctx.report_progress(data),
                        // Even after a cancel: the work is done, and "the result, if it came
                        // first" is what the port asks for.
                        AgentMessage::Result { id: got, output } if got == id => return Ok(output),
                        AgentMessage::Error { id: got, .. } if got == id && grace_until.is_some() => {
                            return Err(AgentError::Cancelled)
                        }
                        AgentMessage::Error { id: got, message, retryable } if got == id => {
                            return Err(AgentError::Failed { message, retryable })
                        }
                        AgentMessage::Hello { .. } => {
                            let message = format!("unexpected hello while running task '{id}'");
                            return Err(self.protocol_error(message).await);
                        }
                        AgentMessage::Progress { id: got, .. }
                        | AgentMessage::Result { id: got, .. }
                        | AgentMessage::Error { id: got, .. } => {
                            let message =
                                format!("message for id '{got}' while running '{id}': {}", quote(&line));
                            return Err(self.protocol_error(message).await);
                        }
                    }
                }
                Event::Line(Ok(None)) => return Err(self.crashed("exited while running a task").await),
                Event::Line(Err(e @ LineError::TooLong(_))) => {
                    return Err(self.protocol_error(e.to_string()).await)
                }
                Event::Line(Err(LineError::Io(e))) => {
                    return Err(self.crashed(&format!("stdout failed ({e})")).await)
                }
                Event::Cancel => {
                    let deadline = Instant::now() + self.cancel_grace;
                    grace_until = Some(deadline);
                    let line = encode(&NodeMessage::Cancel { id: &id });
                    // A failed write means the process is going away; EOF on stdout follows.
                    if timeout_at(deadline, self.write_line(&line)).await.is_err() {
                        self.kill("cancelled and not reading stdin").await;
                        return Err(AgentError::Cancelled);
                    }
                }
                Event::GraceOver => {
                    let reason = format!(
                        "killed: task not stopped within {} of cancel",
                        humantime::format_duration(self.cancel_grace)
                    );
                    tracing::warn!(agent = %self.agent, pid = self.pid, "{reason}");
                    self.kill(&reason).await;
                    return Err(AgentError::Cancelled);
                }
            }
        }
    }
}

#[async_trait::async_trait]
impl AgentWorker for ProcessWorker {
    async fn run(&mut self, ctx: TaskContext, input: Value) -> Result<Value, AgentError> {
        if let Some(reason) = &self.broken {
            return Err(AgentError::Crashed(format!("worker unusable: {reason}")));
        }
        if ctx.cancel.is_cancelled() {
            return Err(AgentError::Cancelled);
        }
        if let Ok(Some(_)) = self.child.try_wait() {
            return Err(self.crashed("exited while idle").await);
        }
        self.exchange(&ctx, &input).await
    }

    /// Closes stdin (the agent's cue to exit), waits up to the cancel grace, then kills.
    async fn shutdown(mut self: Box<Self>) {
        self.stdin = None;
        if timeout(self.cancel_grace, self.child.wait()).await.is_err() {
            tracing::warn!(agent = %self.agent, pid = self.pid, "agent did not exit on stdin close; killing it");
        }
        self.kill("shut down").await;
        let _ = timeout(STDERR_DRAIN, &mut self.stderr_task).await;
    }
}

impl Drop for ProcessWorker {
    fn drop(&mut self) {
        // `kill_on_drop` reaches only the leader; this reaches what it started. Skipped
        // once reaped, when the group id could in principle be reused.
        if self.child.id().is_some() {
            self.kill_group();
        }
        self.stderr_task.abort();
    }
}
