//! `/metrics` after real traffic: the families, and labels that never name an instance
//! or a raw path.

use serde_json::json;

use super::support::{json_of, serve, token};

/// The value of the sample whose line starts with `series` (name and labels, exact).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.split(' ').next()?.parse().ok())
}

#[tokio::test]
async fn metrics_count_requests_by_matched_route_tasks_actors_pools_and_commits() {
    let s = serve().await;
    let developer = token("developer", Some("team-a"));
    let admin = token("admin", None);
    let body = json!({"agent": "echo", "input": {"text": "hi"}});
    let mut ids = Vec::new();
    for _ in 0..3 {
        let response =
            s.http.post(s.url("/v1/tasks?wait=5s")).bearer_auth(&developer).json(&body).send().await;
        let (status, task) = json_of(response.unwrap()).await;
        assert_eq!(status, 200, "{task}");
        ids.push(task["id"].as_str().unwrap().to_string());
    }
    for id in &ids {
        let (status, _) = json_of(
            s.http.get(s.url(&format!("/v1/tasks/{id}"))).bearer_auth(&developer).send().await.unwrap(),
        )
        .await;
        assert_eq!(status, 200);
    }
    let (status, _) = json_of(s.http.get(s.url("/no/such/route/123")).send().await.unwrap()).await;
    assert_eq!(status, 404);
    let (status, _) = json_of(s.http.get(s.url("/v1/whoami")).send().await.unwrap()).await;
    assert_eq!(status, 401);

    let response = s.http.get(s.url("/metrics")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let has = |series: &str| sample(&text, series);

    // HTTP, by matched template and final status.
    assert_eq!(
        has(r#"mark1_http_requests_total{method="POST",route="/v1/tasks",status="200"}"#),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        has(r#"mark1_http_requests_total{method="GET",route="/v1/tasks/{id}",status="200"}"#),
        Some(3.0)
    );
    assert_eq!(has(r#"mark1_http_requests_total{method="GET",route="unmatched",status="404"}"#), Some(1.0));
    assert_eq!(has(r#"mark1_http_requests_total{method="GET",route="/v1/whoami",status="401"}"#), Some(1.0));
    assert_eq!(
        has(r#"mark1_http_request_duration_seconds_count{method="POST",route="/v1/tasks",status="200"}"#),
        Some(3.0)
    );
    assert!(!ids.iter().any(|id| text.contains(id.as_str())), "no raw path (task id) in any label");
    assert!(!text.contains("/no/such/route"), "no unmatched raw path in any label");

    // Tasks by outcome and latency.
    assert!(has(r#"mark1_tasks_finished_total{state="succeeded"}"#).unwrap() >= 3.0);
    assert!(has("mark1_task_duration_seconds_count").unwrap() >= 3.0);

    // Actors and pools, computed at scrape time; never per instance.
    for actor in ["orchestrator", "store_writer", "audit", "agents", "agents/pool:team-a/echo"] {
        assert!(
            has(&format!(r#"mark1_actor_mailbox_depth{{actor="{actor}"}}"#)).is_some(),
            "{actor}: {text}"
        );
        for cause in ["failed", "start_failed", "stopped", "killed"] {
            let series = format!(r#"mark1_actor_restarts_total{{actor="{actor}",cause="{cause}"}}"#);
            assert_eq!(has(&series), Some(0.0), "{series}");
        }
    }
    assert!(has(r#"mark1_actor_messages_handled_total{actor="orchestrator"}"#).unwrap() > 0.0);
    assert_eq!(has(r#"mark1_pool_queue_length{agent="team-a/echo"}"#), Some(0.0));
    assert!(has(r#"mark1_pool_workers{agent="team-b/sleeper"}"#).unwrap() >= 1.0);
    assert!(!text.contains("worker-"), "no series per agent instance");

    // The store writer's commits (durable tasks commit before they are accepted).
    assert!(has("mark1_store_commit_duration_seconds_count").unwrap() >= 1.0);
    assert!(has("mark1_store_commit_writes_sum").unwrap() >= 3.0);
    s.stop().await;
}
