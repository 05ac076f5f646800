//! What model calls used, over real HTTP: `GET /v1/models/usage` and `mark1 models usage`
//! on the records of real calls, namespaces kept apart; budgets that survive a restart.

use std::time::Duration;

use mark1::config::ConfigLoader;
use mark1::models::scripted::ScriptedServer;
use serde_json::{json, Value};

use super::support::{json_of, serve_in, token, Served};
use crate::support::eventually;

/// One OpenAI-compatible provider `oa` on `server`.
fn with_provider(server: &ScriptedServer) -> impl Fn(ConfigLoader) -> ConfigLoader {
    let url = server.openai_url();
    move |l| l.set("models.providers.oa.kind", "openai").set("models.providers.oa.base_url", url.as_str())
}

async fn discovered(s: &Served) {
    eventually(Duration::from_secs(10), "model discovery", || async {
        let (_, body) =
            json_of(s.http.get(s.url("/v1/models")).bearer_auth(token("admin", None)).send().await.unwrap())
                .await;
        body["models"].as_array().is_some_and(|m| !m.is_empty())
    })
    .await;
}

/// A chat through the OpenAI gateway as `key`; its status and body.
async fn chat(s: &Served, key: &str, body: Value) -> (u16, Value) {
    let response =
        s.http.post(s.url("/openai/v1/chat/completions")).bearer_auth(key).json(&body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn words(n: usize) -> String {
    (0..n).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" ")
}

/// The scripted server echoes the prompt, counting a token a word: `n` words use 2n.
fn asking(words_in_prompt: usize) -> Value {
    json!({"model": "oa/llama3.1", "messages": [{"role": "user", "content": words(words_in_prompt)}]})
}

async fn usage(s: &Served, key: &str, query: &str) -> (u16, Value) {
    json_of(s.http.get(s.url(&format!("/v1/models/usage{query}"))).bearer_auth(key).send().await.unwrap())
        .await
}

fn keys_and_tokens(report: &Value) -> Vec<(Value, u64, u64)> {
    let rows = report["rows"].as_array().unwrap_or_else(|| panic!("rows: {report}"));
    rows.iter()
        .map(|r| (r["key"].clone(), r["calls"].as_u64().unwrap(), r["tokens"].as_u64().unwrap()))
        .collect()
}

#[tokio::test]
async fn usage_is_reported_by_group_and_window_and_each_team_sees_its_own() {
    let server = ScriptedServer::start().await.unwrap();
    let s = serve_in(tempfile::tempdir().unwrap(), with_provider(&server)).await;
    discovered(&s).await;
    let (a, b, admin) =
        (token("developer", Some("team-a")), token("developer", Some("team-b")), token("admin", None));
    let before = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    for (key, n) in [(&a, 3), (&a, 5), (&b, 1)] {
        let (status, answer) = chat(&s, key, asking(n)).await;
        assert_eq!(status, 200, "{answer}");
    }
    // Usage records are written in the background.
    eventually(Duration::from_secs(5), "three calls recorded", || async {
        let (_, report) = usage(&s, &admin, "").await;
        keys_and_tokens(&report).iter().map(|(_, calls, _)| calls).sum::<u64>() == 3
    })
    .await;

    let (status, report) = usage(&s, &a, "").await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(keys_and_tokens(&report), [(json!("team-a"), 2, 16)], "only team-a's calls: {report}");
    assert_eq!((&report["group_by"], &report["namespace"]), (&json!("namespace"), &json!("team-a")));
    let (_, by_model) = usage(&s, &a, "?group_by=model").await;
    assert_eq!(keys_and_tokens(&by_model), [(json!("llama3.1"), 2, 16)], "{by_model}");
    let (_, by_agent) = usage(&s, &a, "?group_by=agent").await;
    assert_eq!(keys_and_tokens(&by_agent), [(Value::Null, 2, 16)], "gateway calls have no agent: {by_agent}");
    let (status, refused) = usage(&s, &b, "?namespace=team-a").await;
    assert_eq!(status, 403, "{refused}");

    let (_, everyone) = usage(&s, &admin, "?group_by=namespace").await;
    assert_eq!(keys_and_tokens(&everyone), [(json!("team-a"), 2, 16), (json!("team-b"), 1, 2)], "{everyone}");
    let (_, only_b) = usage(&s, &admin, "?namespace=team-b&group_by=provider").await;
    assert_eq!(keys_and_tokens(&only_b), [(json!("oa"), 1, 2)], "{only_b}");

    // Windows: `since` is inclusive, `until` exclusive; an offset is understood.
    let since = format!("?since={before}&until=2999-01-01T02:00:00%2B02:00");
    assert_eq!(keys_and_tokens(&usage(&s, &admin, &since).await.1).len(), 2);
    let (status, later) = usage(&s, &admin, "?since=2999-01-01T00:00:00Z").await;
    assert_eq!((status, later["rows"].as_array().map(Vec::len)), (200, Some(0)), "{later}");
    let (_, earlier) = usage(&s, &admin, &format!("?until={before}")).await;
    assert_eq!(earlier["rows"], json!([]), "{earlier}");

    for (query, param) in [
        ("?group_by=color", "group_by: "),
        ("?since=yesterday", "since: "),
        ("?until=2025-13-01T00:00:00Z", "until: "),
        ("?since=2025-02-01T00:00:00Z&until=2025-01-01T00:00:00Z", "until: "),
        ("?limit=3", "limit"),
    ] {
        let (status, problem) = usage(&s, &a, query).await;
        assert_eq!(status, 400, "{query}: {problem}");
        assert!(problem["detail"].as_str().unwrap().contains(param), "{query} names {param}: {problem}");
    }
    cli_reports_the_same(&s, &a).await;
    s.stop().await;
}

/// `mark1 models usage` against the node `s`, as a team-a developer.
async fn cli_reports_the_same(s: &Served, key: &str) {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let mut command = crate::cli::mark1(dir.path());
        command.arg("models").arg("usage").args(args).env("MARK1_URL", &s.url).env("MARK1_API_KEY", key);
        tokio::process::Command::from(command).output()
    };
    let output = run(&["--group-by", "model", "--since", "1h", "--json"]).await.unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(keys_and_tokens(&report), [(json!("llama3.1"), 2, 16)], "{report}");
    assert!(report["since"].is_string(), "1h became a time: {report}");

    let output = run(&["--group-by", "namespace"]).await.unwrap();
    let table = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("NAMESPACE") && lines[0].contains("PROMPT TOKENS"), "{table}");
    assert!(lines[1].starts_with("team-a") && lines[1].contains("0.0000"), "{table}");

    assert_eq!(run(&["--group-by", "color"]).await.unwrap().status.code(), Some(2), "refused before asking");
    assert_eq!(run(&["--since", "yesterday"]).await.unwrap().status.code(), Some(2), "the node's 400");
    assert_eq!(run(&["--namespace", "team-b"]).await.unwrap().status.code(), Some(4), "the node's 403");
}

#[tokio::test]
async fn a_budget_survives_a_restart_on_the_same_store() {
    let server = ScriptedServer::start().await.unwrap();
    let provider = with_provider(&server);
    let tune = move |l: ConfigLoader| {
        provider(l).set("models.namespaces.team-a.tokens", 1000).set("models.default_max_tokens", 300)
    };
    let dev = token("developer", Some("team-a"));
    let s = serve_in(tempfile::tempdir().unwrap(), &tune).await;
    discovered(&s).await;
    for _ in 0..2 {
        let (status, answer) = chat(&s, &dev, asking(100)).await;
        assert_eq!(status, 200, "{answer}");
    }
    let budgets = |s: &Served| {
        let request = s.http.get(s.url("/v1/models/budgets")).bearer_auth(&dev).send();
        async move { json_of(request.await.unwrap()).await.1[0].clone() }
    };
    eventually(Duration::from_secs(5), "both calls settled", || async {
        let team = budgets(&s).await;
        team["tokens_used"] == 400 && team["tokens_reserved"] == 0
    })
    .await;
    let dir = s.stop_keeping_data().await;

    let s = serve_in(dir, &tune).await;
    let team = budgets(&s).await;
    assert_eq!((&team["namespace"], &team["tokens_used"]), (&json!("team-a"), &json!(400)), "{team}");
    let metrics = s.http.get(s.url("/metrics")).bearer_auth(&dev).send().await.unwrap().text().await.unwrap();
    let remaining = metrics.lines().find_map(|l| {
        l.strip_prefix(r#"mark1_model_budget_remaining{namespace="team-a",resource="tokens"} "#)?.parse().ok()
    });
    assert_eq!(remaining, Some(600.0), "{metrics}");
    discovered(&s).await;
    // ~5 tokens of prompt and 700 reserved for the answer: within the limit of 1000, not
    // within the 600 the first node's calls left.
    let mut over = asking(1);
    over["max_tokens"] = json!(700);
    let (status, refused) = chat(&s, &dev, over).await;
    assert_eq!(status, 429, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("token budget") && message.contains("400 of 1000"), "{refused}");
    let mut within = asking(1);
    within["max_tokens"] = json!(500);
    let (status, answer) = chat(&s, &dev, within).await;
    assert_eq!(status, 200, "what is left can still be spent: {answer}");
    s.stop().await;
}
