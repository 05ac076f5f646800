//! The `mark1` binary as a user runs it: config discovery, env overrides, signals,
//! exit codes, the tree and the benches.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod client;
mod keys;
mod register;
mod rewrite;
mod runs;
mod workflows;

/// The `mark1` binary run in `dir`, with no `MARK1_` variable of the test's environment.
pub(crate) fn mark1(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mark1"));
    cmd.current_dir(dir).env_remove("RUST_LOG");
    for (name, _) in std::env::vars() {
        if name.starts_with("MARK1_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// A config.toml in `dir` running the example echo agent.
fn write_config(dir: &Path) {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/agents");
    let text = format!(
        "[node]\nname = \"cli\"\n\n[process]\nallowed_dirs = [\"{e}\"]\n\n[agents.echo]\ncommand = \"{e}/echo.py\"\ncapabilities = [\"text.echo\"]\n",
        e = examples.display()
    );
    std::fs::write(dir.join("config.toml"), text).unwrap();
}

#[test]
fn serve_finds_config_toml_takes_env_overrides_and_stops_on_sigint() {
    let dir = tempfile::tempdir().unwrap();
    let listen = free_port();
    write_config(dir.path());
    let child = mark1(dir.path())
        .arg("serve")
        .env("MARK1_SERVER__LISTEN", &listen)
        .env("MARK1_API_KEY", "not config, never rejected")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let mut lines = BufReader::new(child.0.stderr.take().unwrap()).lines();
    let until = Instant::now() + Duration::from_secs(30);
    let mut running = None;
    while Instant::now() < until {
        let Some(Ok(line)) = lines.next() else { break };
        if line.contains("node running") {
            running = Some(line);
            break;
        }
    }
    let line = running.expect("the node reported it runs");
    assert!(line.contains(&format!("http://{listen}")), "the env override reached the config: {line}");
    assert!(line.contains("agents=1"), "config.toml was found: {line}");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.0.id() as i32), nix::sys::signal::Signal::SIGINT)
        .unwrap();
    let status = wait_with_timeout(&mut child.0, Duration::from_secs(20));
    assert_eq!(status.code(), Some(0));
}

/// Kills the child if the test fails before it exits.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_with_timeout(child: &mut std::process::Child, timeout: Duration) -> std::process::ExitStatus {
    let until = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > until {
            let _ = child.kill();
            panic!("mark1 did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_bad_config_key_is_a_usage_error_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.toml"), "[server]\nlisen = \"127.0.0.1:1\"\n").unwrap();
    let out = mark1(dir.path()).args(["serve", "--config", "bad.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("server.lisen") && stderr.contains("bad.toml"), "{stderr}");

    let out = mark1(dir.path()).arg("serve").env("MARK1_SERVER__LISEN", "x").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("MARK1_SERVER__LISEN"));

    let out = mark1(dir.path()).args(["serve", "--config", "missing.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));

    let out = mark1(dir.path()).arg("frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "unknown command is a usage error");
}

#[test]
fn tree_local_prints_the_configured_node_as_json() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path());
    let out = mark1(dir.path()).args(["tree", "--local", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let tree: Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(tree["name"], "cli");
    let agents = tree["children"].as_array().unwrap().iter().find(|c| c["name"] == "cli/agents").unwrap();
    let pool = &agents["children"][0];
    assert_eq!(pool["name"], "cli/agents/pool:default/echo");
    assert_eq!(pool["children"][0]["status"], "running");

    let text = mark1(dir.path()).args(["tree", "--local"]).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("pool:default/echo") && text.contains("orchestrator"), "{text}");
}

#[test]
fn migrate_creates_the_default_store_and_reports_its_version() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path());
    let out = mark1(dir.path()).args(["migrate", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    let file = dir.path().join("data/mark1.db");
    assert_eq!(report["url"], format!("sqlite://{}", file.display()));
    assert_eq!(report["backend"], "sqlite");
    assert_eq!(report["version"], mark1::store::newest_schema_version());
    assert!(file.is_file());
    // Again: nothing left to apply, same version.
    let again = mark1(dir.path()).args(["migrate", "--json"]).output().unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&again.stdout).unwrap(), report);

    let out = mark1(dir.path())
        .arg("migrate")
        .env("MARK1_STORE__URL", "postgres://mark1@127.0.0.1:1/mark1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "an unreachable database is 'unavailable'");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("postgres://mark1@127.0.0.1:1/mark1"), "{stderr}");
}

/// Runs `mark1 bench …` and checks it succeeds and prints the report envelope (§13.9).
fn bench(dir: &Path, args: &[&str]) -> Value {
    let out = mark1(dir).args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    for key in ["bench", "git_sha", "profile", "params", "baseline", "ratio", "work"] {
        assert!(report.get(key).is_some(), "{args:?} report has {key}: {report}");
    }
    assert_eq!(report["bench"], args[1]);
    report
}

/// Benches are never timed tests; this only checks each one runs and reports its shape.
#[test]
fn benches_print_their_report() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        vec!["bench", "dispatch", "--json", "--tasks", "2000", "--rounds", "1", "--open-loop-secs", "0.2"],
        vec!["bench", "spawn", "--json", "--n", "500", "--per-pool", "100", "--rounds", "1"],
        vec!["bench", "restart", "--json", "--restarts", "50"],
    ] {
        let report = bench(dir.path(), &args);
        if args[1] == "dispatch" {
            // Read from the orchestrator's own counters: it handled every task's messages.
            let share = report["orchestrator_busy_share"].as_f64().expect("a busy share");
            assert!(share > 0.0 && share <= 1.0, "{report}");
        }
    }
}

/// The model gateway bench reports its figures against the direct baseline, says which
/// targets are met, and counts every gateway call through router, provider, budget and
/// usage records (figures are not checked against the targets: never a timed test).
#[test]
fn the_models_bench_reports_added_latency_and_the_work_behind_it() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["bench", "models", "--json", "--requests", "200", "--connections", "4"];
    let report = bench(dir.path(), &[&args[..], &["--latency-requests", "50", "--rounds", "2"]].concat());
    for key in
        ["added_p50_us", "added_p99_us", "gateway_p50_us", "gateway_p99_us", "added_cpu_us_per_request"]
    {
        assert!(report[key].is_f64(), "{key}: {report}");
    }
    assert!(report["gateway_rps"].as_f64().unwrap() > 0.0, "{report}");
    assert!(report["baseline"]["direct_rps"].as_f64().unwrap() > 0.0, "{report}");
    let (gateway, direct) = (&report["gateway_p50_us"], &report["baseline"]["direct_p50_us"]);
    assert!(gateway.as_f64().unwrap() > direct.as_f64().unwrap(), "a hop more takes longer: {report}");
    for target in ["added_p50_us", "added_p99_us", "gateway_rps"] {
        assert!(report["targets"][target]["met"].is_boolean(), "{target}: {report}");
    }
    let work = &report["work"];
    // Warm-up (a tenth of each phase) plus two rounds of both phases, per side.
    let per_side = 20 + 5 + 2 * (200 + 50);
    assert_eq!(work["gateway_requests"], per_side, "{work}");
    assert_eq!(work["direct_requests"], per_side, "{work}");
    assert_eq!(work["router_calls"], per_side, "{work}");
    assert_eq!(work["usage_records"], per_side, "{work}");
    assert_eq!(work["provider_calls"], 2 * per_side, "{work}");
    assert_eq!(work["budget_tokens_reserved"], 0, "{work}");
    assert!(work["budget_tokens_settled"].as_u64().unwrap() >= per_side, "{work}");
}

/// An address with a port nothing listens on now (the OS picked it, then it was freed).
pub fn free_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}
