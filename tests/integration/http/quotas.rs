//! Per-namespace quotas in shared capacity, and per-credential rate limits, as a client
//! meets them: 429 with `Retry-After`, and other teams unaffected.

use std::time::Duration;

use serde_json::json;

use super::support::{claims, json_of, serve_with, sign, token};
use crate::support::eventually;

#[tokio::test]
async fn a_namespace_over_its_quota_waits_or_is_refused_while_others_run() {
    let s = serve_with(|l| {
        l.set("limits.namespaces.team-a.max_running", 1).set("limits.namespaces.team-a.max_in_flight", 3)
    })
    .await;
    let a = token("developer", Some("team-a"));
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (status, task) = json_of(
            s.http
                .post(s.url("/v1/tasks"))
                .bearer_auth(&a)
                .json(&json!({"agent": "sleeper", "input": {"ms": 300}}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 201, "{task}");
        ids.push(task["id"].as_str().unwrap().to_string());
    }
    let response = s
        .http
        .post(s.url("/v1/tasks"))
        .bearer_auth(&a)
        .json(&json!({"agent": "sleeper", "input": {"ms": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["retry-after"], "1");
    let (status, body) = json_of(response).await;
    assert_eq!(status, 429, "a fourth task exceeds team-a's in-flight quota: {body}");
    assert!(body["detail"].as_str().unwrap().contains("team-a"), "{body}");

    let b = token("developer", Some("team-b"));
    let (status, done) = json_of(
        s.http
            .post(s.url("/v1/tasks?wait=5s"))
            .bearer_auth(&b)
            .json(&json!({"agent": "sleeper", "input": {"ms": 1}}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, &done["state"]), (200, &json!("succeeded")), "team-b is not held back: {done}");

    // The sleeper pool could run all three at once; the quota lets one run at a time.
    let states = || async {
        let mut running = 0;
        for id in &ids {
            let (_, task) =
                json_of(s.http.get(s.url(&format!("/v1/tasks/{id}"))).bearer_auth(&a).send().await.unwrap())
                    .await;
            running += (task["state"] == "running") as usize;
            assert!(running <= 1, "at most one team-a task runs: {task}");
        }
        running
    };
    eventually(Duration::from_secs(5), "one task running", || async { states().await == 1 }).await;
    for id in &ids {
        let (_, task) = json_of(
            s.http.get(s.url(&format!("/v1/tasks/{id}?wait=10s"))).bearer_auth(&a).send().await.unwrap(),
        )
        .await;
        assert_eq!(task["state"], "succeeded", "waiting tasks run in turn: {task}");
    }
    s.stop().await;
}

#[tokio::test]
async fn a_credential_over_its_rate_gets_429_with_retry_after() {
    let s = serve_with(|l| l.set("limits.rate_per_sec", 1).set("limits.rate_burst", 2)).await;
    let viewer = token("viewer", Some("team-a"));
    let whoami = || s.http.get(s.url("/v1/whoami")).bearer_auth(&viewer).send();
    assert_eq!(whoami().await.unwrap().status(), 200);
    assert_eq!(whoami().await.unwrap().status(), 200);
    let response = whoami().await.unwrap();
    assert!(response.headers().contains_key("retry-after"));
    let (status, body) = json_of(response).await;
    assert_eq!(status, 429, "{body}");
    let mut claims = claims("viewer", Some("team-a"));
    claims["sub"] = json!("someone-else");
    let other = sign(&claims);
    assert_eq!(
        s.http.get(s.url("/v1/whoami")).bearer_auth(&other).send().await.unwrap().status(),
        200,
        "limits are per credential"
    );
    s.stop().await;
}
