//! `mark1 scan DIR --register` against a real `mark1 serve` child: the proposal is shown,
//! nothing is sent without `--yes`, and the node's rules decide what is registered (an
//! admin key; a process agent's command under `process.allowed_dirs`).

use std::path::Path;

use serde_json::Value;

use super::client::{serve, stdout_json};
use super::mark1;

fn agents_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/agents")
}

fn agent_names(served: &super::client::Served) -> Vec<String> {
    let out = mark1(served.dir.path())
        .args(["agents", "list", "--json", "--url", &served.url, "--api-key", &served.key])
        .output()
        .unwrap();
    let agents = stdout_json(&out);
    let mut names: Vec<String> =
        agents.as_array().unwrap().iter().filter_map(|a| a["name"].as_str().map(str::to_owned)).collect();
    names.sort();
    names
}

#[test]
fn register_shows_then_registers_through_the_node_with_an_admin_key_only() {
    let served = serve();
    let dir = agents_dir();
    let dir = dir.to_str().unwrap();

    // Without --yes: the proposal, nothing sent.
    let shown = mark1(served.dir.path()).args(["scan", dir, "--register", "--json"]).output().unwrap();
    assert!(shown.status.success(), "{}", String::from_utf8_lossy(&shown.stderr));
    let proposals: Value = stdout_json(&shown);
    let names: Vec<&str> =
        proposals.as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["echo", "wordcount"]);
    assert!(proposals[1]["command"].as_str().unwrap().ends_with("examples/agents/wordcount.py"));
    assert_eq!(agent_names(&served), ["echo"]);

    // An operator may not register process agents: refused by the node, exit 4.
    let operator = stdout_json(
        &mark1(served.dir.path())
            .args(["keys", "create", "--role", "operator", "--namespace", "default", "--json"])
            .output()
            .unwrap(),
    );
    let operator = operator["key"].as_str().unwrap();
    let refused = mark1(served.dir.path())
        .args(["scan", dir, "--register", "--yes", "--url", &served.url, "--api-key", operator])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(4), "{}", String::from_utf8_lossy(&refused.stderr));
    assert_eq!(agent_names(&served), ["echo"]);

    // An admin registers what is new; the agent the config already runs is refused by
    // name, and said so, and the exit code says not everything was registered.
    let registered = mark1(served.dir.path())
        .args(["scan", dir, "--register", "--yes", "--url", &served.url, "--api-key", &served.key])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&registered.stderr);
    assert!(stderr.contains("registered wordcount"), "{stderr}");
    assert!(stderr.contains("echo: not registered"), "{stderr}");
    assert!(!registered.status.success());
    assert_eq!(agent_names(&served), ["echo", "wordcount"]);
}
