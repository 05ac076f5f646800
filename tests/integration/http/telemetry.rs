//! `/metrics` after real traffic: the families, and labels that never name an instance,
//! a raw path or a caller's model name.

use serde_json::json;

use super::support::{json_of, serve, serve_with, token};

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

#[tokio::test]
async fn model_metrics_count_tokens_errors_outcomes_breakers_and_budgets() {
    use mark1::models::scripted::{Answer, ScriptedServer};

    let (a, b) = (ScriptedServer::start().await.unwrap(), ScriptedServer::start().await.unwrap());
    let (a_url, b_url) = (a.openai_url(), b.openai_url());
    let s = serve_with(move |l| {
        super::support::two_providers(l, &a_url, &b_url).set("models.namespaces.team-a.tokens", 100_000)
    })
    .await;
    let developer = token("developer", Some("team-a"));
    let scrape = || async {
        let response = s.http.get(s.url("/metrics")).bearer_auth(&developer).send().await.unwrap();
        response.text().await.unwrap()
    };
    crate::support::eventually(std::time::Duration::from_secs(10), "discovery", || async {
        let response = s.http.get(s.url("/v1/models")).bearer_auth(&developer).send().await.unwrap();
        json_of(response).await.1["models"].as_array().is_some_and(|m| m.len() == 4)
    })
    .await;
    let remaining = r#"mark1_model_budget_remaining{namespace="team-a",resource="tokens"}"#;
    assert_eq!(sample(&scrape().await, remaining), Some(100_000.0), "nothing spent yet");

    let chat = |body: serde_json::Value| {
        s.http.post(s.url("/openai/v1/chat/completions")).bearer_auth(&developer).json(&body).send()
    };
    let mut tokens = (0, 0);
    // `a` comes first (configuration order at equal cost) and fails twice: its breaker opens.
    for text in ["one two", "three four five"] {
        a.script.push(Answer::Error { status: 503, message: "overloaded".into() });
        let response = chat(json!({"model": "llama3.1", "messages": [{"role": "user", "content": text}]}));
        let answer: serde_json::Value = response.await.unwrap().json().await.unwrap();
        tokens.0 += answer["usage"]["prompt_tokens"].as_u64().unwrap();
        tokens.1 += answer["usage"]["completion_tokens"].as_u64().unwrap();
    }
    let streamed = json!({"model": "llama3.1", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "six seven"}]});
    let body = chat(streamed).await.unwrap().text().await.unwrap();
    let usage = body
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l.strip_prefix("data: ")?).ok())
        .find(|chunk| chunk["usage"].is_object())
        .unwrap_or_else(|| panic!("the stream ends with its usage: {body}"))["usage"]
        .clone();
    tokens.0 += usage["prompt_tokens"].as_u64().unwrap();
    tokens.1 += usage["completion_tokens"].as_u64().unwrap();
    let response = chat(json!({"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]}));
    assert_eq!(response.await.unwrap().status(), 404);
    crate::support::eventually(std::time::Duration::from_secs(5), "usage settled", || async {
        let response = s.http.get(s.url("/v1/models/budgets")).bearer_auth(&developer).send().await;
        let team = json_of(response.unwrap()).await.1[0].clone();
        team["tokens_used"] == tokens.0 + tokens.1 && team["tokens_reserved"] == 0
    })
    .await;

    let text = scrape().await;
    let has = |series: &str| sample(&text, series);
    let b_llama = r#"provider="b",model="llama3.1""#;
    assert_eq!(
        has(&format!(r#"mark1_model_tokens_total{{{b_llama},direction="in"}}"#)),
        Some(tokens.0 as f64)
    );
    assert_eq!(
        has(&format!(r#"mark1_model_tokens_total{{{b_llama},direction="out"}}"#)),
        Some(tokens.1 as f64)
    );
    assert_eq!(has(&format!("mark1_model_call_duration_seconds_count{{{b_llama}}}")), Some(3.0), "{text}");
    assert_eq!(has(&format!("mark1_model_time_to_first_token_seconds_count{{{b_llama}}}")), Some(1.0));
    let a_errors = r#"mark1_model_errors_total{provider="a",model="llama3.1",kind="rejected"}"#;
    assert_eq!(has(a_errors), Some(2.0), "each 503 of a: {text}");
    assert_eq!(has(r#"mark1_model_breaker_state{provider="a"}"#), Some(1.0), "open");
    assert_eq!(has(r#"mark1_model_breaker_state{provider="b"}"#), Some(0.0), "closed");
    assert_eq!(has(r#"mark1_model_in_flight{provider="b"}"#), Some(0.0));
    assert_eq!(has(r#"mark1_model_calls_total{outcome="success"}"#), Some(3.0));
    assert_eq!(has(r#"mark1_model_calls_total{outcome="unknown_model"}"#), Some(1.0));
    assert_eq!(has(remaining), Some(100_000.0 - (tokens.0 + tokens.1) as f64), "spent from the budget");
    assert!(!text.contains("no-such-model"), "a caller's model name is never a label");
    s.stop().await;
}
