//! Scan jobs over HTTP (`/v1/scans`): a scan of a folder under `scan.allowed_dirs` runs
//! as an actor, reports its events and stores its report; other folders are refused.

use std::time::Duration;

use serde_json::{json, Value};

use super::support::{json_of, serve, serve_with, token, Served};
use crate::support::eventually;

/// A small Python project: one OpenAI call, one tool.
pub fn python_project(dir: &std::path::Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("main.py"),
        r#"from openai import OpenAI
from agents import function_tool

client = OpenAI()


@function_tool
def lookup(city: str) -> str:
    """Looks the weather up."""
    return "sunny"


def ask(question):
    return client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": question}],
    )


if __name__ == "__main__":
    print(ask("hi"))
"#,
    )
    .unwrap();
}

async fn post_scan(s: &Served, who: &str, path: &str) -> (u16, Value) {
    json_of(
        s.http.post(s.url("/v1/scans")).bearer_auth(who).json(&json!({"path": path})).send().await.unwrap(),
    )
    .await
}

#[tokio::test]
async fn a_scan_runs_as_a_job_reports_events_and_stores_its_report() {
    let allowed = tempfile::tempdir().unwrap();
    let project = allowed.path().join("project");
    python_project(&project);
    let outside = tempfile::tempdir().unwrap();
    let dirs = vec![allowed.path().to_str().unwrap().to_string()];
    let s = serve_with(|l| l.set("scan.allowed_dirs", dirs)).await;
    let admin = token("admin", None);

    let (status, started) = post_scan(&s, &admin, project.to_str().unwrap()).await;
    assert_eq!((status, &started["status"]), (202, &json!("running")), "{started}");
    let id = started["id"].as_str().unwrap().to_string();

    let get = || async {
        json_of(s.http.get(s.url(&format!("/v1/scans/{id}"))).bearer_auth(&admin).send().await.unwrap()).await
    };
    eventually(Duration::from_secs(30), "the scan finishes", || async {
        get().await.1["status"] != "running"
    })
    .await;
    let (_, done) = get().await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["summary"]["llm_calls"], 1, "{done}");
    assert!(done["finished_at"].is_string());

    let response =
        s.http.get(s.url(&format!("/v1/scans/{id}/result"))).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let report: Value = response.json().await.unwrap();
    let call = &report["llm_calls"][0];
    assert_eq!((&call["provider"], &call["model"]), (&json!("openai"), &json!("gpt-4o-mini")), "{report}");
    assert_eq!(report["schema_version"], "1.0");

    // Listed, newest first; an operator of another namespace does not see it.
    let (_, page) = json_of(s.http.get(s.url("/v1/scans")).bearer_auth(&admin).send().await.unwrap()).await;
    assert_eq!(page["scans"][0]["id"], json!(id), "{page}");
    let operator = token("operator", Some("team-a"));
    let (status, _) =
        json_of(s.http.get(s.url(&format!("/v1/scans/{id}"))).bearer_auth(&operator).send().await.unwrap())
            .await;
    assert_eq!(status, 404, "namespaces isolate scans");

    // The events came through the node's event path.
    let (_, events) = json_of(
        s.http
            .get(s.url("/v1/events?kinds=scan.started,scan.finished"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let kinds: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["subject"] == json!(id))
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["scan.started", "scan.finished"], "{events}");

    // Outside the allow-list, or not a folder: refused, naming the key.
    let (status, problem) = post_scan(&s, &admin, outside.path().to_str().unwrap()).await;
    assert_eq!(status, 403, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("scan.allowed_dirs"), "{problem}");
    let escape =
        format!("{}/../{}", allowed.path().display(), outside.path().file_name().unwrap().to_str().unwrap());
    let (status, _) = post_scan(&s, &admin, &escape).await;
    assert!(status == 403 || status == 400, "{status}");
    let (status, _) = post_scan(&s, &admin, project.join("main.py").to_str().unwrap()).await;
    assert_eq!(status, 400);
    let (status, problem) = json_of(
        s.http
            .post(s.url("/v1/scans"))
            .bearer_auth(&admin)
            .json(&json!({"path": "/", "extra": 1}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400, "strict JSON: {problem}");

    // Only admins start scans; viewers read no reports.
    let (status, _) = post_scan(&s, &operator, project.to_str().unwrap()).await;
    assert_eq!(status, 403);
    let (status, _) = post_scan(&s, &token("viewer", Some("team-a")), project.to_str().unwrap()).await;
    assert_eq!(status, 403);

    // Audited.
    let (_, audit) = json_of(s.http.get(s.url("/v1/audit")).bearer_auth(&admin).send().await.unwrap()).await;
    let text = audit.to_string();
    assert!(text.contains("scan.start") && text.contains(&format!("scan:{id}")), "{text}");
    s.stop().await;
}

#[tokio::test]
async fn scans_over_http_are_off_until_folders_are_allowed() {
    let s = serve().await;
    let dir = tempfile::tempdir().unwrap();
    let (status, problem) = post_scan(&s, &token("admin", None), dir.path().to_str().unwrap()).await;
    assert_eq!(status, 403, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("scan.allowed_dirs"), "{problem}");
    s.stop().await;
}
