//! The HTTP edge as a client sees it: real HTTP over loopback to a node on port 0.

mod access;
mod events;
mod jwt;
mod model_usage;
mod models;
mod quotas;
mod scans;
mod support;
mod telemetry;
mod tls;
mod workflows;

use serde_json::json;

use support::{claims, json_of, serve, serve_with, sign, sign_with, token};

#[tokio::test]
async fn health_and_ready_need_no_credential_but_everything_else_does() {
    let s = serve().await;
    let health = || async { json_of(s.http.get(s.url("/health")).send().await.unwrap()).await };
    let (status, body) = health().await;
    assert_eq!(status, 200);
    assert!(body["status"] == "ok" || body["status"] == "starting", "{body}");
    crate::support::eventually(std::time::Duration::from_secs(10), "the first health check", || async {
        health().await.1["status"] == "ok"
    })
    .await;
    let (status, body) = json_of(s.http.get(s.url("/ready")).send().await.unwrap()).await;
    assert_eq!((status, &body["ready"]), (200, &json!(true)), "{body}");
    for path in ["/metrics", "/v1/whoami", "/v1/tasks", "/v1/agents", "/v1/actors", "/v1/events"] {
        let response = s.http.get(s.url(path)).send().await.unwrap();
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let (status, body) = json_of(response).await;
        assert_eq!(status, 401, "{path}: {body}");
        assert_eq!(body["type"], "urn:mark1:unauthorized");
    }
    s.stop().await;
}

#[tokio::test]
async fn tokens_are_checked_for_signature_issuer_audience_and_lifetime() {
    let s = serve().await;
    let whoami = |token: String| s.http.get(s.url("/v1/whoami")).bearer_auth(token).send();
    let (status, body) = json_of(whoami(token("developer", Some("team-a"))).await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"subject": "jwt:developer-user", "role": "developer", "namespace": "team-a"}));

    let now = claims("developer", Some("team-a"))["iat"].as_u64().unwrap();
    let mut expired = claims("developer", Some("team-a"));
    expired["exp"] = json!(now - 3600);
    let mut early = claims("developer", Some("team-a"));
    early["nbf"] = json!(now + 3600);
    let mut wrong_audience = claims("developer", Some("team-a"));
    wrong_audience["aud"] = json!("someone-else");
    let mut wrong_issuer = claims("developer", Some("team-a"));
    wrong_issuer["iss"] = json!("evil");
    let mut no_namespace = claims("developer", None);
    no_namespace.as_object_mut().unwrap().remove("namespace");
    let mut unknown_role = claims("root", Some("team-a"));
    unknown_role["role"] = json!("root");
    // An admin's claims under a developer token's signature.
    let developer = token("developer", Some("team-a"));
    let admin = token("admin", None);
    let (d, a): (Vec<&str>, Vec<&str>) = (developer.split('.').collect(), admin.split('.').collect());
    let tampered = format!("{}.{}.{}", d[0], a[1], d[2]);
    let cases = [
        ("expired", sign(&expired), "ExpiredSignature"),
        ("not yet valid", sign(&early), "ImmatureSignature"),
        ("wrong audience", sign(&wrong_audience), "InvalidAudience"),
        ("wrong issuer", sign(&wrong_issuer), "InvalidIssuer"),
        (
            "other secret",
            sign_with(&claims("admin", None), "another secret entirely, also long"),
            "InvalidSignature",
        ),
        ("tampered", tampered, "InvalidSignature"),
        ("no namespace", sign(&no_namespace), "namespace"),
        ("unknown role", sign(&unknown_role), "unknown role"),
        ("garbage", "not.a.token".to_string(), "malformed"),
    ];
    for (what, token, reason) in cases {
        let (status, body) = json_of(whoami(token).await.unwrap()).await;
        assert_eq!(status, 401, "{what}: {body}");
        assert!(body["detail"].as_str().unwrap().contains(reason), "{what}: {body}");
    }
    s.stop().await;
}

#[tokio::test]
async fn submit_wait_get_and_list_a_task() {
    let s = serve().await;
    let dev = token("developer", Some("team-a"));
    let response = s
        .http
        .post(s.url("/v1/tasks?wait=5s"))
        .bearer_auth(&dev)
        .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        .json(&json!({"agent": "echo", "input": {"text": "hi"}}))
        .send()
        .await
        .unwrap();
    let (status, task) = json_of(response).await;
    assert_eq!(status, 200, "{task}");
    assert_eq!(task["state"], "succeeded");
    assert_eq!(task["output"], json!({"text": "hi"}));
    assert_eq!(task["namespace"], "team-a");
    assert_eq!(task["submitter"], "jwt:developer-user");
    let id = task["id"].as_str().unwrap().to_string();

    let (status, queued) = json_of(
        s.http
            .post(s.url("/v1/tasks"))
            .bearer_auth(&dev)
            .json(&json!({"capabilities": ["text.echo"], "input": 2}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{queued}");
    let (status, got) = json_of(
        s.http
            .get(s.url(&format!("/v1/tasks/{}?wait=5s", queued["id"].as_str().unwrap())))
            .bearer_auth(&dev)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, &got["output"]), (200, &json!(2)), "{got}");

    let (status, page) =
        json_of(s.http.get(s.url("/v1/tasks?limit=1")).bearer_auth(&dev).send().await.unwrap()).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["tasks"].as_array().unwrap().len(), 1);
    assert_eq!(page["tasks"][0]["id"], got["id"], "newest first");
    let next = page["next"].as_str().expect("a second page").to_string();
    let (_, page) = json_of(
        s.http
            .get(s.url(&format!("/v1/tasks?limit=1&cursor={next}")))
            .bearer_auth(&dev)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(page["tasks"][0]["id"], json!(id));

    let viewer = token("viewer", Some("team-a"));
    let (status, seen) =
        json_of(s.http.get(s.url(&format!("/v1/tasks/{id}"))).bearer_auth(&viewer).send().await.unwrap())
            .await;
    assert_eq!(status, 200);
    assert!(seen.get("input").is_none() && seen.get("output").is_none(), "viewers see no payloads: {seen}");
    s.stop().await;
}

#[tokio::test]
async fn idempotency_replays_the_first_task_and_refuses_a_different_body() {
    let s = serve().await;
    let dev = token("developer", Some("team-a"));
    let post = |body: serde_json::Value| {
        s.http
            .post(s.url("/v1/tasks"))
            .bearer_auth(&dev)
            .header("Idempotency-Key", "order-17")
            .json(&body)
            .send()
    };
    let (status, first) = json_of(post(json!({"agent": "echo", "input": 1})).await.unwrap()).await;
    assert_eq!(status, 201, "{first}");
    let (status, again) = json_of(post(json!({"agent": "echo", "input": 1})).await.unwrap()).await;
    assert_eq!((status, &again["id"]), (200, &first["id"]), "{again}");
    let (status, conflict) = json_of(post(json!({"agent": "echo", "input": 2})).await.unwrap()).await;
    assert_eq!(status, 409, "{conflict}");
    assert_eq!(conflict["type"], "urn:mark1:conflict");
    s.stop().await;
}

#[tokio::test]
async fn namespaces_isolate_teams() {
    let s = serve().await;
    let a = token("developer", Some("team-a"));
    let b = token("developer", Some("team-b"));
    let (_, task) = json_of(
        s.http
            .post(s.url("/v1/tasks"))
            .bearer_auth(&a)
            .json(&json!({"agent": "echo", "input": "secret"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let path = format!("/v1/tasks/{}", task["id"].as_str().unwrap());
    let (status, _) = json_of(s.http.get(s.url(&path)).bearer_auth(&b).send().await.unwrap()).await;
    assert_eq!(status, 404, "team b cannot see team a's task");
    let (status, _) =
        json_of(s.http.post(s.url(&format!("{path}/cancel"))).bearer_auth(&b).send().await.unwrap()).await;
    assert_eq!(status, 404, "nor cancel it");
    let (_, page) = json_of(s.http.get(s.url("/v1/tasks")).bearer_auth(&b).send().await.unwrap()).await;
    assert!(page["tasks"].as_array().unwrap().is_empty(), "{page}");
    let (status, _) =
        json_of(s.http.get(s.url("/v1/tasks?namespace=team-a")).bearer_auth(&b).send().await.unwrap()).await;
    assert_eq!(status, 403);
    let (status, _) = json_of(
        s.http
            .post(s.url("/v1/tasks"))
            .bearer_auth(&b)
            .json(&json!({"agent": "echo", "namespace": "team-a"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403, "cannot submit into another namespace");
    let (_, agents) = json_of(s.http.get(s.url("/v1/agents")).bearer_auth(&b).send().await.unwrap()).await;
    assert!(agents.as_array().unwrap().iter().all(|a| a["namespace"] == "team-b"), "{agents}");
    assert!(agents.as_array().unwrap().iter().all(|a| a["health"] == "ready"), "{agents}");
    let (status, _) =
        json_of(s.http.get(s.url("/v1/agents/team-a/echo")).bearer_auth(&b).send().await.unwrap()).await;
    assert_eq!(status, 404);
    let admin = token("admin", None);
    let (status, _) = json_of(s.http.get(s.url(&path)).bearer_auth(&admin).send().await.unwrap()).await;
    assert_eq!(status, 200, "admins span namespaces");
    s.stop().await;
}

#[tokio::test]
async fn bad_bodies_get_clear_problems_and_permission_comes_first() {
    let s = serve_with(|l| l.set("server.max_body_bytes", 1024)).await;
    let dev = token("developer", Some("team-a"));
    let post = |body: &'static str, token: &str| {
        s.http
            .post(s.url("/v1/tasks"))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let (status, body) = json_of(post("{not json", &dev).await.unwrap()).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("invalid JSON body"), "{body}");
    let (status, body) = json_of(post(r#"{"agent": "echo", "priorty": 9}"#, &dev).await.unwrap()).await;
    assert_eq!(status, 400);
    assert!(body["detail"].as_str().unwrap().contains("unknown field `priorty`"), "a typo is named: {body}");
    let (status, _) = json_of(post(r#"{"agent": "echo", "capabilities": ["x"]}"#, &dev).await.unwrap()).await;
    assert_eq!(status, 400);
    let (status, body) = json_of(post("{not json", &token("viewer", Some("team-a"))).await.unwrap()).await;
    assert_eq!(status, 403, "the role is checked before the body: {body}");
    let big = format!(r#"{{"agent": "echo", "input": "{}"}}"#, "x".repeat(4096));
    let (status, body) =
        json_of(s.http.post(s.url("/v1/tasks")).bearer_auth(&dev).body(big).send().await.unwrap()).await;
    assert_eq!(status, 413, "{body}");
    let (status, body) = json_of(post(r#"{"agent": "nobody"}"#, &dev).await.unwrap()).await;
    assert_eq!(status, 404, "{body}");
    let (status, _) =
        json_of(s.http.get(s.url("/v1/tasks?wait=forever")).bearer_auth(&dev).send().await.unwrap()).await;
    assert_eq!(status, 400, "unknown query parameters are refused");
    let (status, _) = json_of(s.http.get(s.url("/v1/nowhere")).bearer_auth(&dev).send().await.unwrap()).await;
    assert_eq!(status, 404);
    s.stop().await;
}

#[tokio::test]
async fn openapi_documents_every_route() {
    let s = serve().await;
    let (status, doc) = json_of(s.http.get(s.url("/openapi.json")).send().await.unwrap()).await;
    assert_eq!(status, 200);
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/health", "get"),
        ("/ready", "get"),
        ("/metrics", "get"),
        ("/v1/whoami", "get"),
        ("/v1/tasks", "post"),
        ("/v1/tasks", "get"),
        ("/v1/tasks/{id}", "get"),
        ("/v1/tasks/{id}/cancel", "post"),
        ("/v1/agents", "get"),
        ("/v1/agents", "post"),
        ("/v1/agents/{namespace}/{name}", "get"),
        ("/v1/agents/{namespace}/{name}", "patch"),
        ("/v1/agents/{namespace}/{name}", "delete"),
        ("/v1/actors", "get"),
        ("/v1/actors/{name}", "get"),
        ("/v1/actors/watch", "get"),
        ("/v1/events", "get"),
        ("/v1/workflows", "post"),
        ("/v1/workflows", "get"),
        ("/v1/workflows/validate", "post"),
        ("/v1/workflows/{name}", "get"),
        ("/v1/runs", "post"),
        ("/v1/runs", "get"),
        ("/v1/runs/{id}", "get"),
        ("/v1/runs/{id}", "patch"),
        ("/v1/runs/{id}/events", "get"),
        ("/v1/runs/{id}/cancel", "post"),
        ("/v1/runs/{id}/approvals/{step}", "post"),
        ("/v1/models/usage", "get"),
    ] {
        assert!(paths.get(path).and_then(|p| p.get(method)).is_some(), "{method} {path} is documented");
    }
    let list = &paths["/v1/events"]["get"]["responses"]["200"]["content"]["application/json"]["schema"];
    assert_eq!(list["$ref"], "#/components/schemas/EventList", "{list}");
    let problem = &doc["components"]["schemas"]["Problem"]["properties"];
    assert!(problem.get("errors").is_some(), "invalid requests list their problems: {problem}");
    let yaml = &paths["/v1/workflows"]["post"]["requestBody"]["content"];
    assert!(yaml.get("application/yaml").is_some(), "definitions may be YAML: {yaml}");
    s.stop().await;
}

#[tokio::test]
async fn a_wait_that_ends_first_answers_202_with_the_task_still_running() {
    let s = serve().await;
    let dev = token("developer", Some("team-a"));
    let started = std::time::Instant::now();
    let (status, task) = json_of(
        s.http
            .post(s.url("/v1/tasks?wait=200ms"))
            .bearer_auth(&dev)
            .json(&json!({"agent": "sleeper", "input": {"ms": 1500}}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 202, "{task}");
    assert!(task["state"] == "running" || task["state"] == "queued", "{task}");
    assert!(
        started.elapsed() < std::time::Duration::from_millis(1400),
        "the answer came when the wait ended"
    );
    let path = format!("/v1/tasks/{}?wait=5s", task["id"].as_str().unwrap());
    let (status, done) = json_of(s.http.get(s.url(&path)).bearer_auth(&dev).send().await.unwrap()).await;
    assert_eq!((status, &done["state"]), (200, &json!("succeeded")), "{done}");
    s.stop().await;
}

#[tokio::test]
async fn health_names_a_provider_that_does_not_answer_and_the_node_runs_on() {
    let server = mark1::models::scripted::ScriptedServer::start().await.unwrap();
    let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (up, down) = (server.ollama_url(), format!("http://{unused}"));
    let s = support::serve_with(move |l| {
        l.set("models.providers.local.kind", "ollama")
            .set("models.providers.local.base_url", up.as_str())
            .set("models.providers.remote.kind", "openai")
            .set("models.providers.remote.base_url", down.as_str())
    })
    .await;
    let health = || async { json_of(s.http.get(s.url("/health")).send().await.unwrap()).await.1 };
    crate::support::eventually(std::time::Duration::from_secs(10), "the first health check", || async {
        health().await["status"] != "starting"
    })
    .await;
    let body = health().await;
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["providers"][0], json!({"name": "local", "ok": true, "error": null}), "{body}");
    assert_eq!(body["providers"][1]["ok"], false, "{body}");
    assert!(
        body["providers"][1]["error"].as_str().unwrap().to_lowercase().contains("connection refused"),
        "{body}"
    );
    let (status, _) = json_of(s.http.get(s.url("/ready")).send().await.unwrap()).await;
    assert_eq!(status, 200, "a degraded provider does not make the node unready");
    s.stop().await;
}
