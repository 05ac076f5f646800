//! The sandbox as a child process sees it.

use mark1_actors::domain::ResourceLimits;
use nix::sys::resource::{getrlimit, Resource};

use super::*;
use crate::runtimes::process::SandboxError;

/// An agent that answers every task with what `expr` (Python) evaluates to.
fn reporter(fx: &Fixture, name: &str, expr: &str) -> PathBuf {
    fx.script(
        name,
        &format!("hello()\nfor m in tasks():\n    send({{'type':'result','id':m['id'],'output':{expr}}})\n"),
    )
}

#[tokio::test]
async fn commands_outside_the_allowed_dirs_never_start() {
    let fx = Fixture::new();
    let outside = tempfile::tempdir().unwrap();
    let cmd = outside.path().join("agent.py");
    std::fs::write(&cmd, format!("{PRELUDE}hello()\ntime.sleep(60)\n")).unwrap();
    std::fs::set_permissions(&cmd, std::fs::Permissions::from_mode(0o755)).unwrap();

    assert!(matches!(fx.runtime.validate(&process(&cmd)), Err(SandboxError::NotAllowed { .. })));
    let reason = start_failed(fx.spawn_spec(process(&cmd)).await);
    assert!(reason.contains("is not under an allowed directory"), "{reason}");

    // Nor through a symlink placed inside an allowed dir.
    let link = fx.dir.path().join("bin/link.py");
    std::os::unix::fs::symlink(&cmd, &link).unwrap();
    let reason = start_failed(fx.spawn_spec(process(&link)).await);
    assert!(reason.contains("is not under an allowed directory"), "{reason}");
}

#[tokio::test]
async fn the_environment_is_cleared_to_the_allow_list() {
    // Set once for the whole test binary; no other test reads these names.
    std::env::set_var("PROC_TEST_SECRET", "s3cret");
    std::env::set_var("PROC_TEST_ALLOWED", "visible");
    std::env::set_var("MARK1_PROC_TEST_KEY", "node-credential");
    let fx = Fixture::new();
    let mut spec = process(&reporter(&fx, "env.py", "dict(os.environ)"));
    spec.env_allow = vec!["PROC_TEST_ALLOWED".into(), "MARK1_PROC_TEST_KEY".into()];
    spec.env.insert("FIXED".into(), "1".into());
    let mut worker = fx.spawn_spec(spec).await.unwrap();
    let env = run(&mut worker, json!({})).await.unwrap();

    assert_eq!(env["PROC_TEST_ALLOWED"], "visible");
    assert_eq!(env["FIXED"], "1");
    // (A pyenv shim may prepend its own directories.)
    assert!(env["PATH"].as_str().unwrap().ends_with(&std::env::var("PATH").unwrap()), "{}", env["PATH"]);
    for hidden in ["PROC_TEST_SECRET", "MARK1_PROC_TEST_KEY", "CARGO_MANIFEST_DIR"] {
        assert!(env.get(hidden).is_none(), "{hidden} leaked into the agent");
    }
    // HOME is the instance's own directory, not the node user's.
    let home = PathBuf::from(env["HOME"].as_str().unwrap());
    assert!(home.starts_with(fx.work_root()), "{home:?}");
    shutdown(worker).await;
}

#[tokio::test]
async fn resource_limits_are_set_before_exec() {
    let fx = Fixture::new();
    let expr = "{n: __import__('resource').getrlimit(getattr(__import__('resource'), n)) \
                for n in ['RLIMIT_AS','RLIMIT_CPU','RLIMIT_NOFILE','RLIMIT_NPROC']}";
    let mut spec = process(&reporter(&fx, "limits.py", expr));
    spec.limits = ResourceLimits {
        memory_mb: Some(512),
        cpu_seconds: Some(30),
        open_files: Some(64),
        processes: Some(400),
    };
    let mut worker = fx.spawn_spec(spec).await.unwrap();
    let got = run(&mut worker, json!({})).await.unwrap();

    // Values above the node's own hard limit are lowered to it.
    let expect = |resource, value: u64| {
        let limit = value.min(getrlimit(resource).unwrap().1);
        json!([limit, limit])
    };
    assert_eq!(got["RLIMIT_AS"], expect(Resource::RLIMIT_AS, 512 * 1024 * 1024));
    assert_eq!(got["RLIMIT_CPU"], expect(Resource::RLIMIT_CPU, 30));
    assert_eq!(got["RLIMIT_NOFILE"], expect(Resource::RLIMIT_NOFILE, 64));
    assert_eq!(got["RLIMIT_NPROC"], expect(Resource::RLIMIT_NPROC, 400));
    shutdown(worker).await;
}

#[tokio::test]
async fn the_memory_limit_stops_an_agent_from_allocating_past_it() {
    let fx = Fixture::new();
    let body = "hello()\nfor m in tasks():\n    try:\n        b = bytearray(400 * 1024 * 1024)\n        \
                send({'type':'result','id':m['id'],'output':'allocated'})\n    except MemoryError:\n        \
                send({'type':'error','id':m['id'],'message':'out of memory'})\n";
    let mut spec = process(&fx.script("hog.py", body));
    spec.limits.memory_mb = Some(200);
    let mut worker = fx.spawn_spec(spec).await.unwrap();
    assert_eq!(run(&mut worker, json!({})).await, Err(AgentError::failed("out of memory")));
    shutdown(worker).await;
}

#[tokio::test]
async fn the_agent_works_in_its_configured_directory() {
    let fx = Fixture::new();
    let configured = tempfile::tempdir().unwrap();
    let mut spec = process(&reporter(&fx, "cwd.py", "os.getcwd()"));
    spec.working_dir = Some(configured.path().to_path_buf());
    let mut worker = fx.spawn_spec(spec).await.unwrap();
    let cwd = run(&mut worker, json!({})).await.unwrap();
    assert_eq!(PathBuf::from(cwd.as_str().unwrap()), configured.path().canonicalize().unwrap());
    shutdown(worker).await;
    assert!(configured.path().is_dir(), "a configured working dir is kept");
}

#[tokio::test]
async fn without_a_configured_directory_each_instance_gets_a_fresh_one() {
    let fx = Fixture::new();
    let cmd = reporter(&fx, "cwd.py", "os.getcwd()");
    let mut first = fx.spawn(&cmd).await;
    let mut second = fx.spawn(&cmd).await;
    let a = PathBuf::from(run(&mut first, json!({})).await.unwrap().as_str().unwrap());
    let b = PathBuf::from(run(&mut second, json!({})).await.unwrap().as_str().unwrap());
    let root = fx.work_root().join("default/test").canonicalize().unwrap();
    assert!(a.starts_with(&root) && b.starts_with(&root) && a != b, "{a:?} {b:?}");
    shutdown(first).await;
    shutdown(second).await;
    assert!(!a.exists() && !b.exists(), "instance dirs are removed when the instance ends");
}
