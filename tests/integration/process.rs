//! Process agents through a whole node, defined in a config file as a user would:
//! the example agents, and agents that misbehave in every way the protocol allows.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mark1::config::ConfigLoader;
use mark1::{Node, NodeError, NodeHandle, TaskRequest, TaskState};
use mark1_actors::domain::EventKind;
use mark1_actors::events::EventFilter;
use mark1_actors::orchestrator::AgentHealth;
use serde_json::json;

use crate::support::*;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/agents")
}

/// Writes a config file into `dir` allowing the examples and `dir/agents`, plus `agents`.
fn write_config(dir: &Path, agents: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("agents")).unwrap();
    let text = format!(
        "[node]\nname = \"{name}\"\ndata_dir = \"data\"\n\n[process]\nallowed_dirs = [\"{examples}\", \"agents\"]\n\n{agents}",
        name = unique("proc"),
        examples = examples().display(),
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A Python agent script in `dir/agents`.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir.join("agents")).unwrap();
    let path = dir.join("agents").join(name);
    std::fs::write(&path, format!("#!/usr/bin/env python3\nimport json, sys\n{body}")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

const HELLO: &str = "print(json.dumps({'type': 'hello', 'protocol': 1}), flush=True)\n";

async fn node(config: &Path) -> Result<NodeHandle, NodeError> {
    let config = ConfigLoader::new().file(config).env(Vec::<(String, String)>::new()).load()?;
    Node::builder().config(config).build().await?.start().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_agents_run_from_config_with_progress_events() {
    let dir = tempfile::tempdir().unwrap();
    let examples = examples();
    let config = write_config(
        dir.path(),
        &format!(
            "[agents.echo]\ncommand = \"{e}/echo.py\"\ncapabilities = [\"text.echo\"]\n\n\
             [agents.wordcount]\ncommand = \"{e}/wordcount.py\"\ncapabilities = [\"text.stats\"]\n",
            e = examples.display()
        ),
    );
    let handle = node(&config).await.unwrap();
    agents_ready(&handle, 2).await;
    let done = handle
        .run(TaskRequest::to_agent("echo", json!({"text": "hi"})), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!((done.state, done.output.as_deref()), (TaskState::Succeeded, Some(&json!({"text": "hi"}))));

    let mut progress = handle
        .subscribe(EventFilter { kinds: vec![EventKind::TaskProgress], ..Default::default() }, None)
        .await
        .unwrap();
    let req = TaskRequest::to_capabilities(["text.stats"], json!({"text": "one two three\nfour"}));
    let done = handle.run(req, Duration::from_secs(10)).await.unwrap();
    assert_eq!(done.state, TaskState::Succeeded, "{:?}", done.error);
    assert_eq!(done.output.as_ref().unwrap()["words"], json!(4));
    let event =
        tokio::time::timeout(Duration::from_secs(5), progress.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(*event.subject, *done.id.to_string());
    stop(handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_process_task_reaches_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let config =
        write_config(dir.path(), &format!("[agents.echo]\ncommand = \"{}/echo.py\"\n", examples().display()));
    let handle = node(&config).await.unwrap();
    agents_ready(&handle, 1).await;
    let id = handle.submit(TaskRequest::to_agent("echo", json!({"delay": 60}))).await.unwrap();
    running(&handle, id).await;
    assert_eq!(handle.cancel(id).await.unwrap().state, TaskState::Cancelled);
    // The process answered the cancel and stays usable: the next task runs at once.
    let done =
        handle.run(TaskRequest::to_agent("echo", json!({"n": 1})), Duration::from_secs(5)).await.unwrap();
    assert_eq!(done.state, TaskState::Succeeded);
    let pool = format!("{}/agents/pool:default/echo", handle.name());
    let restarts: u64 = handle.tree().find(&pool).unwrap().children.iter().map(|c| c.restarts.total()).sum();
    assert_eq!(restarts, 0, "an honoured cancel does not cost a restart");
    stop(handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_exits_at_start_is_failed_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    script(dir.path(), "dies.py", "print('missing API key', file=sys.stderr)\nsys.exit(3)\n");
    let config = write_config(dir.path(), "[agents.dies]\ncommand = \"agents/dies.py\"\n");
    let handle = node(&config).await.unwrap();
    eventually(Duration::from_secs(30), "agent failed", || async {
        handle.agents().await.unwrap().iter().any(|a| matches!(a.health, AgentHealth::Failed(_)))
    })
    .await;
    let agents = handle.agents().await.unwrap();
    let AgentHealth::Failed(reason) = &agents[0].health else { unreachable!() };
    assert!(reason.contains("missing API key") && reason.contains("3"), "the reason says why: {reason}");
    let err = handle.submit(TaskRequest::to_agent("dies", json!(1))).await.unwrap_err();
    assert!(err.to_string().contains("is failed"), "{err}");
    assert!(handle.is_running());
    stop(handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_oversized_output_fail_the_task_with_a_protocol_error() {
    let dir = tempfile::tempdir().unwrap();
    script(
        dir.path(),
        "garbage.py",
        &format!("{HELLO}for line in sys.stdin:\n    print('this is not json', flush=True)\n"),
    );
    script(
        dir.path(),
        "huge.py",
        &format!("{HELLO}for line in sys.stdin:\n    sys.stdout.write('x' * (17 * 1024 * 1024) + '\\n')\n    sys.stdout.flush()\n"),
    );
    let config = write_config(
        dir.path(),
        "[agents.garbage]\ncommand = \"agents/garbage.py\"\n\n[agents.huge]\ncommand = \"agents/huge.py\"\n",
    );
    let handle = node(&config).await.unwrap();
    agents_ready(&handle, 2).await;
    let done = handle.run(TaskRequest::to_agent("garbage", json!(1)), Duration::from_secs(10)).await.unwrap();
    assert_eq!(done.state, TaskState::Failed);
    let error = done.error.unwrap();
    assert!(error.contains("protocol error") && error.contains("this is not json"), "{error}");

    let done = handle.run(TaskRequest::to_agent("huge", json!(1)), Duration::from_secs(30)).await.unwrap();
    assert_eq!(done.state, TaskState::Failed);
    assert!(done.error.as_deref().unwrap().contains("longer than 16 MiB"), "{:?}", done.error);
    // Broken workers are replaced: the garbage agent's instance was restarted.
    let pool = format!("{}/agents/pool:default/garbage", handle.name());
    eventually(Duration::from_secs(10), "instance restarted", || async {
        handle
            .tree()
            .find(&pool)
            .map(|p| p.children.iter().map(|c| c.restarts.failed).sum::<u64>() >= 1)
            .unwrap_or(false)
    })
    .await;
    stop(handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_mid_task_is_retried_on_a_fresh_process() {
    let dir = tempfile::tempdir().unwrap();
    // Crashes on its first task; the restarted process answers (a marker file remembers).
    script(
        dir.path(),
        "crashy.py",
        &format!(
            "import os\nmarker = os.path.join({dir:?}, 'crashed')\n{HELLO}for line in sys.stdin:\n    task = json.loads(line)\n    \
             if not os.path.exists(marker):\n        open(marker, 'w').close()\n        os._exit(9)\n    \
             print(json.dumps({{'type': 'result', 'id': task['id'], 'output': task['context']['attempt']}}), flush=True)\n",
            dir = dir.path().display().to_string()
        ),
    );
    let config = write_config(
        dir.path(),
        "[agents.crashy]\ncommand = \"agents/crashy.py\"\nretries = {attempts = 2, backoff = \"10ms\"}\n",
    );
    let handle = node(&config).await.unwrap();
    agents_ready(&handle, 1).await;
    let done = handle.run(TaskRequest::to_agent("crashy", json!(1)), Duration::from_secs(20)).await.unwrap();
    assert_eq!(done.state, TaskState::Succeeded, "{:?}", done.error);
    assert_eq!(
        (done.attempt, done.output.as_deref()),
        (2, Some(&json!(2))),
        "the second attempt ran on a new process"
    );
    stop(handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_outside_the_allowed_directories_is_refused_at_build() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "[agents.shell]\ncommand = \"/bin/sh\"\n");
    let err = node(&config).await.err().expect("refused");
    let message = err.to_string();
    assert!(message.contains("agents.shell") && message.contains("/bin/sh"), "{message}");
    assert!(message.contains("allowed"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_agent_registered_at_run_time_comes_back_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let spec = mark1::AgentSpec::process("late", mark1::ProcessSpec::new(examples().join("echo.py")));
    let first = node(&config).await.unwrap();
    let outside = mark1::AgentSpec::process("outside", mark1::ProcessSpec::new("/bin/cat"));
    let refused = first.register_declared_agent(outside).await;
    assert!(matches!(refused, Err(NodeError::InvalidAgent(_))), "the sandbox applies: {refused:?}");
    first.register_declared_agent(spec).await.unwrap();
    let done = first.run(TaskRequest::to_agent("late", json!({"text": "hi"})), Duration::from_secs(20)).await;
    assert_eq!(done.unwrap().state, TaskState::Succeeded);
    stop(first).await;

    let second = node(&config).await.unwrap();
    agents_ready(&second, 1).await;
    let done =
        second.run(TaskRequest::to_agent("late", json!({"text": "again"})), Duration::from_secs(20)).await;
    assert_eq!(done.unwrap().state, TaskState::Succeeded, "the stored agent is back");
    second.remove_agent("default", "late").await.unwrap();
    stop(second).await;

    let third = node(&config).await.unwrap();
    assert!(third.agents().await.unwrap().is_empty(), "a removed agent stays removed");
    stop(third).await;
}

/// `scan.register_at_start` with the examples folder as `scan.agents_dir`, and `echo`
/// also defined in config.
fn scanning_config(dir: &Path, register_at_start: bool) -> PathBuf {
    write_config(
        dir,
        &format!(
            "[scan]\nagents_dir = \"{e}\"\nregister_at_start = {register_at_start}\n\n\
             [agents.echo]\ncommand = \"{e}/echo.py\"\ncapabilities = [\"text.echo\"]\n",
            e = examples().display()
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_found_in_the_agents_folder_are_registered_at_start_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let handle = node(&scanning_config(dir.path(), false)).await.unwrap();
    agents_ready(&handle, 1).await;
    let names: Vec<String> = handle.agents().await.unwrap().into_iter().map(|a| a.name).collect();
    assert_eq!(names, ["echo"], "off by default: only what config defines");
    stop(handle).await;

    let dir = tempfile::tempdir().unwrap();
    let handle = node(&scanning_config(dir.path(), true)).await.unwrap();
    agents_ready(&handle, 2).await;
    let mut agents = handle.agents().await.unwrap();
    agents.sort_by(|a, b| a.name.cmp(&b.name));
    let names: Vec<&str> = agents.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["echo", "wordcount"]);
    assert_eq!(agents[0].capabilities, ["text.echo"], "the config's definition wins over the scanned one");
    let req = TaskRequest::to_agent("wordcount", json!({"text": "one two three"}));
    let done = handle.run(req, Duration::from_secs(10)).await.unwrap();
    assert_eq!(done.state, TaskState::Succeeded, "{:?}", done.error);
    assert_eq!(done.output.unwrap()["words"], json!(3));
    stop(handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agents_folder_outside_the_allowed_directories_is_refused_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!("[scan]\nagents_dir = \"{}\"\nregister_at_start = true\n", elsewhere.path().display()),
    );
    let message = node(&config).await.err().expect("refused").to_string();
    assert!(message.contains("scan.agents_dir") && message.contains("process.allowed_dirs"), "{message}");

    let config = write_config(dir.path(), "[scan]\nregister_at_start = true\n");
    let message = node(&config).await.err().expect("refused").to_string();
    assert!(message.contains("scan.agents_dir") && message.contains("required"), "{message}");
}
