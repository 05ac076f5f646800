//! Tests against real processes: the example agents and small Python scripts written to
//! a temporary directory. Every test checks that the processes it started are gone.

mod sandbox;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mark1_actors::domain::{AgentSpec, Event, EventKind, ProcessSpec, TaskId};
use mark1_actors::ports::{AgentError, AgentRuntime, AgentWorker, EventSink, Progress, TaskContext};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::{ProcessRuntime, ProcessWorker, SandboxPolicy};

/// Generous bound that only proves "does not hang".
const NO_HANG: Duration = Duration::from_secs(10);

/// Python helpers every test script starts with.
const PRELUDE: &str = r#"#!/usr/bin/env python3
import json, os, sys, time
def send(m):
    sys.stdout.write(json.dumps(m) + "\n"); sys.stdout.flush()
def hello():
    send({"type": "hello", "protocol": 1, "capabilities": ["test"]})
def tasks():
    for line in sys.stdin:
        m = json.loads(line)
        if m["type"] == "task":
            yield m
"#;

/// A temp dir holding test scripts (the allowed dir) and the work root.
struct Fixture {
    dir: tempfile::TempDir,
    runtime: ProcessRuntime,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        let policy = SandboxPolicy::new(vec![dir.path().join("bin"), examples()], dir.path().join("work"));
        Fixture { runtime: ProcessRuntime::new(policy), dir }
    }

    fn work_root(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    /// Writes an executable script: the prelude, then `body`.
    fn script(&self, name: &str, body: &str) -> PathBuf {
        let path = self.dir.path().join("bin").join(name);
        std::fs::write(&path, format!("{PRELUDE}{body}")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    async fn spawn(&self, command: &Path) -> ProcessWorker {
        self.spawn_spec(process(command)).await.expect("agent starts")
    }

    async fn spawn_spec(&self, spec: ProcessSpec) -> Result<ProcessWorker, AgentError> {
        tokio::time::timeout(NO_HANG, self.runtime.spawn(&AgentSpec::process("test", spec)))
            .await
            .expect("start does not hang")
    }
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/agents")
}

fn process(command: &Path) -> ProcessSpec {
    let mut spec = ProcessSpec::new(command);
    spec.start_timeout = Duration::from_secs(10);
    spec.cancel_grace = Duration::from_secs(10);
    spec
}

/// Records progress events.
#[derive(Default)]
struct Recorder(Mutex<Vec<Value>>);

impl EventSink for Recorder {
    fn emit(&self, kind: EventKind, namespace: Arc<str>, subject: Arc<str>, data: Arc<Value>) -> Arc<Event> {
        assert_eq!(kind, EventKind::TaskProgress);
        self.0.lock().push(Value::clone(&data));
        let time = std::time::SystemTime::now();
        Arc::new(Event { seq: 0, time, kind, namespace, subject, data })
    }
}

fn context() -> (TaskContext, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::default());
    let task_id = TaskId::new();
    let ctx = TaskContext {
        task_id,
        attempt: 1,
        idempotency_key: format!("{task_id}:1"),
        deadline: None,
        namespace: "default".into(),
        traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
        submitter: None,
        cancel: CancellationToken::new(),
        progress: Some(Progress::new(recorder.clone(), task_id, "default".into())),
        tasks: None,
    };
    (ctx, recorder)
}

async fn run(worker: &mut ProcessWorker, input: Value) -> Result<Value, AgentError> {
    let (ctx, _) = context();
    tokio::time::timeout(NO_HANG, worker.run(ctx, input)).await.expect("run does not hang")
}

async fn shutdown(worker: ProcessWorker) {
    let pid = worker.pid();
    tokio::time::timeout(NO_HANG, Box::new(worker).shutdown()).await.expect("shutdown does not hang");
    assert_gone(pid).await;
}

/// Waits until `pid` no longer runs (gone, or a zombie its new parent has yet to reap).
async fn assert_gone(pid: u32) {
    let deadline = tokio::time::Instant::now() + NO_HANG;
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"));
        let running = match stat {
            Err(_) => false,
            // The state follows the parenthesised command name.
            Ok(stat) => !stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        };
        if !running {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "process {pid} still runs");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Test scripts print `pid=<n>` to stderr so a start failure's reason reveals it.
async fn assert_pid_in_reason_gone(reason: &str) {
    let pid = reason.split("pid=").nth(1).and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next());
    let pid: u32 = pid.and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("no pid in '{reason}'"));
    assert_gone(pid).await;
}

fn start_failed(result: Result<ProcessWorker, AgentError>) -> String {
    match result {
        Err(AgentError::StartFailed(reason)) => reason,
        Err(other) => panic!("expected StartFailed, got {other:?}"),
        Ok(worker) => panic!("expected StartFailed, agent {} started", worker.pid()),
    }
}

#[tokio::test]
async fn echo_round_trips_tasks_through_the_trait_object() {
    let fx = Fixture::new();
    let spec = AgentSpec::process("echo", process(&examples().join("echo.py"))).capability("text.echo");
    let mut worker: Box<dyn AgentWorker> = fx.runtime.start(&spec).await.unwrap();
    for n in 0..3 {
        let (ctx, _) = context();
        let input = json!({"text": "hi", "n": n, "nested": {"ü": [1, 2.5, null]}});
        assert_eq!(worker.run(ctx, input.clone()).await, Ok(input));
    }
    tokio::time::timeout(NO_HANG, worker.shutdown()).await.unwrap();
}

#[tokio::test]
async fn the_agent_receives_the_task_context() {
    let fx = Fixture::new();
    let cmd = fx.script(
        "ctx.py",
        "hello()\nfor m in tasks():\n    send({'type':'result','id':m['id'],'output':m})\n",
    );
    let mut worker = fx.spawn(&cmd).await;
    let (mut ctx, _) = context();
    ctx.deadline = Some(std::time::UNIX_EPOCH + Duration::from_secs(2_000_000_000));
    let got = worker.run(ctx.clone(), json!(42)).await.unwrap();
    assert_eq!(got["input"], json!(42));
    assert_eq!(
        got["context"],
        json!({"task_id": ctx.task_id.to_string(), "attempt": 1, "idempotency_key": ctx.idempotency_key,
               "deadline": "2033-05-18T03:33:20.000Z", "namespace": "default",
               "traceparent": ctx.traceparent})
    );
    shutdown(worker).await;
}

#[tokio::test]
async fn progress_is_relayed_before_the_result() {
    let fx = Fixture::new();
    let mut worker = fx.spawn(&examples().join("wordcount.py")).await;
    let text = "the cat\n".repeat(2500);
    let (ctx, recorder) = context();
    let output = worker.run(ctx, json!({ "text": text })).await.unwrap();
    assert_eq!(output["lines"], 2500);
    assert_eq!(output["words"], 5000);
    let done: Vec<Value> = recorder.0.lock().iter().map(|d| d["lines_done"].clone()).collect();
    assert_eq!(done, vec![json!(0), json!(1000), json!(2000)]);
    shutdown(worker).await;
}

#[tokio::test]
async fn agent_errors_keep_their_retryable_flag_and_the_worker() {
    let fx = Fixture::new();
    let cmd = fx.script(
        "err.py",
        "hello()\nfor m in tasks():\n    i = m['input']\n    \
         send({'type':'error','id':m['id'],'message':i['say'],'retryable':i['retry']})\n",
    );
    let mut worker = fx.spawn(&cmd).await;
    let got = run(&mut worker, json!({"say": "busy", "retry": true})).await;
    assert_eq!(got, Err(AgentError::Failed { message: "busy".into(), retryable: true }));
    let got = run(&mut worker, json!({"say": "bad input", "retry": false})).await;
    assert_eq!(got, Err(AgentError::failed("bad input")));
    shutdown(worker).await;
}

#[tokio::test]
async fn a_process_exiting_at_start_fails_with_its_status_and_stderr() {
    let fx = Fixture::new();
    let cmd = fx.script("die.py", "print('config missing', file=sys.stderr)\nsys.exit(3)\n");
    let reason = start_failed(fx.spawn_spec(process(&cmd)).await);
    assert!(reason.contains("exited before hello"), "{reason}");
    assert!(reason.contains("exit status: 3"), "{reason}");
    assert!(reason.contains("stderr: config missing"), "{reason}");
}

#[tokio::test]
async fn garbage_instead_of_hello_fails_the_start_and_kills_the_process() {
    let fx = Fixture::new();
    let body = "print(f'pid={os.getpid()}', file=sys.stderr, flush=True)\nprint('hello world', flush=True)\n\
                time.sleep(60)\n";
    let reason = start_failed(fx.spawn_spec(process(&fx.script("garbage.py", body))).await);
    assert!(reason.contains("expected a hello line") && reason.contains("'hello world'"), "{reason}");
    assert_pid_in_reason_gone(&reason).await;

    let body = "print(f'pid={os.getpid()}', file=sys.stderr, flush=True)\n\
                send({'type':'hello','protocol':2})\ntime.sleep(60)\n";
    let reason = start_failed(fx.spawn_spec(process(&fx.script("v2.py", body))).await);
    assert!(reason.contains("agent speaks protocol 2, this node speaks 1"), "{reason}");
    assert_pid_in_reason_gone(&reason).await;
}

#[tokio::test]
async fn a_silent_process_fails_after_the_start_timeout() {
    let fx = Fixture::new();
    let body = "print(f'pid={os.getpid()}', file=sys.stderr, flush=True)\ntime.sleep(60)\n";
    let mut spec = process(&fx.script("mute.py", body));
    spec.start_timeout = Duration::from_millis(500);
    let reason = start_failed(fx.spawn_spec(spec).await);
    assert!(reason.starts_with("no hello within 500ms"), "{reason}");
    assert_pid_in_reason_gone(&reason).await;
}

#[tokio::test]
async fn a_line_over_the_limit_is_a_protocol_error_and_breaks_the_worker() {
    let mut fx = Fixture::new();
    fx.runtime = ProcessRuntime::new(fx.runtime.sandbox().clone()).with_max_line(1024);
    let body =
        "hello()\nfor m in tasks():\n    send({'type':'result','id':m['id'],'output':'x'*m['input']})\n";
    let mut worker = fx.spawn(&fx.script("big.py", body)).await;
    assert_eq!(run(&mut worker, json!(900)).await, Ok(json!("x".repeat(900))));
    let got = run(&mut worker, json!(2000)).await;
    assert_eq!(got, Err(AgentError::Protocol("line longer than 1024 bytes".into())));
    assert_gone(worker.pid()).await;
    let again = run(&mut worker, json!(1)).await;
    assert!(matches!(&again, Err(AgentError::Crashed(r)) if r.contains("worker unusable")), "{again:?}");
}

#[tokio::test]
async fn a_line_over_16_mib_is_refused_without_buffering_it_all() {
    let fx = Fixture::new();
    // 17 MiB without a newline, then the agent keeps the pipe open: only the bound can
    // end the read.
    let body = "hello()\nfor m in tasks():\n    sys.stdout.write('{\"type\":\"result\",\"id\":\"1\",\"output\":\"')\n    \
                sys.stdout.write('a' * (17 * 1024 * 1024)); sys.stdout.flush(); time.sleep(60)\n";
    let mut worker = fx.spawn(&fx.script("huge.py", body)).await;
    let (ctx, _) = context();
    let got = tokio::time::timeout(Duration::from_secs(30), worker.run(ctx, json!(null))).await.unwrap();
    assert_eq!(got, Err(AgentError::Protocol("line longer than 16 MiB".into())));
    assert_gone(worker.pid()).await;
}

#[tokio::test]
async fn malformed_unknown_and_misaddressed_messages_are_protocol_errors() {
    let fx = Fixture::new();
    let cases = [
        ("print('{not json', flush=True)", "malformed message"),
        ("send({'type':'shout','id':m['id']})", "unknown variant `shout`"),
        ("send({'type':'result','id':m['id']})", "missing field `output`"),
        ("send({'type':'result','id':'other','output':1})", "message for id 'other' while running '1'"),
    ];
    for (n, (reply, expected)) in cases.into_iter().enumerate() {
        let cmd = fx.script(&format!("bad{n}.py"), &format!("hello()\nfor m in tasks():\n    {reply}\n"));
        let mut worker = fx.spawn(&cmd).await;
        match run(&mut worker, json!({})).await {
            Err(AgentError::Protocol(message)) => assert!(message.contains(expected), "{message}"),
            other => panic!("expected a protocol error with '{expected}', got {other:?}"),
        }
        assert_gone(worker.pid()).await;
    }
}

#[tokio::test]
async fn a_crash_mid_task_is_reported_with_status_and_stderr() {
    let fx = Fixture::new();
    let body = "hello()\nfor m in tasks():\n    send({'type':'progress','id':m['id'],'data':1})\n    \
                print('segfault, sort of', file=sys.stderr, flush=True)\n    os._exit(7)\n";
    let mut worker = fx.spawn(&fx.script("crash.py", body)).await;
    match run(&mut worker, json!({})).await {
        Err(AgentError::Crashed(reason)) => {
            assert!(reason.contains("exited while running a task (exit status: 7)"), "{reason}");
            assert!(reason.contains("segfault, sort of"), "{reason}");
        }
        other => panic!("expected Crashed, got {other:?}"),
    }
    assert_gone(worker.pid()).await;
    assert!(matches!(run(&mut worker, json!({})).await, Err(AgentError::Crashed(_))));
}

#[tokio::test]
async fn a_process_gone_while_idle_crashes_the_next_task() {
    let fx = Fixture::new();
    let body =
        "hello()\nfor m in tasks():\n    send({'type':'result','id':m['id'],'output':1})\n    sys.exit(0)\n";
    let mut worker = fx.spawn(&fx.script("once.py", body)).await;
    assert_eq!(run(&mut worker, json!({})).await, Ok(json!(1)));
    assert_gone(worker.pid()).await;
    let got = run(&mut worker, json!({})).await;
    assert!(matches!(&got, Err(AgentError::Crashed(r)) if r.contains("exit status: 0")), "{got:?}");
}

#[tokio::test]
async fn a_cancel_the_agent_honours_keeps_the_worker() {
    let fx = Fixture::new();
    let mut worker = fx.spawn(&examples().join("echo.py")).await;
    let (ctx, _) = context();
    let cancel = ctx.cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        cancel.cancel();
    });
    // The grace is 10 s and the agent would sleep 60 s: only the agent's own answer to
    // the cancel ends this in time, and the next task proves no kill happened.
    let got = tokio::time::timeout(Duration::from_secs(5), worker.run(ctx, json!({"delay": 60}))).await;
    assert_eq!(got.expect("cancel is prompt"), Err(AgentError::Cancelled));
    assert_eq!(run(&mut worker, json!({"after": "cancel"})).await, Ok(json!({"after": "cancel"})));
    shutdown(worker).await;
}

#[tokio::test]
async fn a_cancel_the_agent_ignores_kills_its_whole_group_after_the_grace() {
    let fx = Fixture::new();
    // The agent starts a grandchild, reports its pid, then ignores everything.
    let body = "import subprocess\nhello()\nfor m in tasks():\n    \
                child = subprocess.Popen(['sleep', '60'])\n    \
                send({'type':'progress','id':m['id'],'data':child.pid})\n    time.sleep(60)\n";
    let mut spec = process(&fx.script("stubborn.py", body));
    spec.cancel_grace = Duration::from_millis(300);
    let mut worker = fx.spawn_spec(spec).await.unwrap();
    let (ctx, recorder) = context();
    let cancel = ctx.cancel.clone();
    let progress = recorder.clone();
    tokio::spawn(async move {
        while progress.0.lock().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        cancel.cancel();
    });
    let got = tokio::time::timeout(NO_HANG, worker.run(ctx, json!({}))).await.unwrap();
    assert_eq!(got, Err(AgentError::Cancelled));
    let grandchild = recorder.0.lock()[0].as_u64().unwrap() as u32;
    assert_gone(worker.pid()).await;
    assert_gone(grandchild).await;
    let next = run(&mut worker, json!({})).await;
    assert!(
        matches!(&next, Err(AgentError::Crashed(r)) if r.contains("not stopped within 300ms")),
        "{next:?}"
    );
}

#[tokio::test]
async fn an_already_cancelled_task_is_not_sent() {
    let fx = Fixture::new();
    let mut worker = fx.spawn(&examples().join("echo.py")).await;
    let (ctx, _) = context();
    ctx.cancel.cancel();
    assert_eq!(worker.run(ctx, json!({})).await, Err(AgentError::Cancelled));
    assert_eq!(run(&mut worker, json!(1)).await, Ok(json!(1)));
    shutdown(worker).await;
}

#[tokio::test]
async fn shutdown_kills_an_agent_that_ignores_stdin_closing() {
    let fx = Fixture::new();
    let mut spec = process(&fx.script("deaf.py", "hello()\ntime.sleep(60)\n"));
    spec.cancel_grace = Duration::from_millis(200);
    let worker = fx.spawn_spec(spec).await.unwrap();
    shutdown(worker).await;
}

#[tokio::test]
async fn dropping_a_worker_kills_its_process_group() {
    let fx = Fixture::new();
    let body = "import subprocess\nsubprocess.Popen(['sleep', '60'])\nhello()\ntime.sleep(60)\n";
    let worker = fx.spawn(&fx.script("parent.py", body)).await;
    let pid = worker.pid();
    let grandchild = grandchild_pid(pid).await;
    drop(worker);
    assert_gone(pid).await;
    assert_gone(grandchild).await;
    let leftovers = std::fs::read_dir(fx.work_root().join("default/test")).unwrap().count();
    assert_eq!(leftovers, 0, "the instance's working dir is removed");
}

/// The first child of `pid`, found through /proc.
async fn grandchild_pid(pid: u32) -> u32 {
    let path = format!("/proc/{pid}/task/{pid}/children");
    for _ in 0..250 {
        let children = std::fs::read_to_string(&path).unwrap_or_default();
        if let Some(child) = children.split_whitespace().next() {
            return child.parse().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("agent {pid} started no child");
}

#[test]
fn the_definition_in_the_protocol_guide_parses() {
    let guide = include_str!("../../../docs/process-protocol.md");
    let json = guide.rsplit("```json\n").next().unwrap().split("```").next().unwrap();
    let spec: AgentSpec = serde_json::from_str(json).expect("the guide's example is a valid AgentSpec");
    let mark1_actors::domain::RuntimeSpec::Process(process) = spec.runtime else {
        panic!("not a process agent")
    };
    assert_eq!(process.cancel_grace, Duration::from_secs(2));
    assert_eq!(process.limits.memory_mb, Some(512));
}
