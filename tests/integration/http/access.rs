//! Authorization as DESIGN §13.5 writes it: the whole route × role matrix, API keys end
//! to end, process agents for admins only, and the audit trail of what was refused.

use std::time::Duration;

use serde_json::{json, Value};

use super::support::{json_of, serve, serve_with, token, Served};
use crate::support::eventually;

const ROLES: [&str; 5] = ["admin", "operator", "developer", "viewer", "agent"];

/// Whether each role may use a route, in the order of [`ROLES`], straight from §13.5.
const READ: [bool; 5] = [true, true, true, true, true];
const SUBMIT: [bool; 5] = [true, true, true, false, true];
const WRITE_WORKFLOWS: [bool; 5] = [true, true, true, false, false];
const PATCH_RUNS: [bool; 5] = [true, true, false, false, false];
const MANAGE_AGENTS: [bool; 5] = [true, true, false, false, false];
const ADMIN_ONLY: [bool; 5] = [true, false, false, false, false];
const USE_MODELS: [bool; 5] = [true, true, true, false, true];
/// Scans: every role but `agent` reads them; viewers see no reports.
const READ_SCANS: [bool; 5] = [true, true, true, true, false];
const READ_SCAN_REPORTS: [bool; 5] = [true, true, true, false, false];

struct Route {
    method: &'static str,
    path: String,
    body: Option<Value>,
    allowed: [bool; 5],
}

fn route(method: &'static str, path: &str, body: Option<Value>, allowed: [bool; 5]) -> Route {
    Route { method, path: path.to_string(), body, allowed }
}

/// A scan id no scan has.
const NO_SCAN: &str = "01900000-0000-7000-8000-000000000000";

fn matrix(task: &str, run: &str) -> Vec<Route> {
    let agent = "/v1/agents/team-a/missing";
    let definition = json!({"name": "matrix", "steps": [{"id": "a", "agent": "echo"}]});
    vec![
        route("GET", "/metrics", None, READ),
        route("GET", "/v1/whoami", None, READ),
        route("GET", "/v1/actors", None, READ),
        route("GET", "/v1/actors/nobody", None, READ),
        route("GET", "/v1/actors/watch", None, READ),
        route("GET", &format!("/v1/events?tasks={task}"), None, READ),
        route("GET", "/v1/tasks", None, READ),
        route("GET", &format!("/v1/tasks/{task}"), None, READ),
        route("POST", "/v1/tasks", Some(json!({"agent": "echo", "input": 1})), SUBMIT),
        route("POST", &format!("/v1/tasks/{task}/cancel"), None, SUBMIT),
        route("POST", "/v1/workflows", Some(definition.clone()), WRITE_WORKFLOWS),
        route("POST", "/v1/workflows/validate", Some(definition), WRITE_WORKFLOWS),
        route("GET", "/v1/workflows", None, READ),
        route("GET", "/v1/workflows/gate", None, READ),
        route("POST", "/v1/runs", Some(json!({"workflow": "gate"})), SUBMIT),
        route("GET", "/v1/runs", None, READ),
        route("GET", &format!("/v1/runs/{run}"), None, READ),
        route("GET", &format!("/v1/runs/{run}/events"), None, READ),
        route("GET", &format!("/v1/events?runs={run}"), None, READ),
        route(
            "POST",
            &format!("/v1/runs/{run}/approvals/approve"),
            Some(json!({"approved": true})),
            PATCH_RUNS,
        ),
        route(
            "PATCH",
            &format!("/v1/runs/{run}"),
            Some(json!({"action": "skip_step", "step": "b"})),
            PATCH_RUNS,
        ),
        route("POST", &format!("/v1/runs/{run}/cancel"), None, SUBMIT),
        route("GET", "/v1/agents", None, READ),
        route("GET", "/v1/agents/team-a/echo", None, READ),
        route("POST", "/v1/agents", Some(json!({"name": "nameless-command"})), ADMIN_ONLY),
        route("PATCH", agent, Some(json!({"min": 1, "max": 2})), MANAGE_AGENTS),
        route("DELETE", agent, None, MANAGE_AGENTS),
        route("POST", "/v1/scans", Some(json!({"path": "relative/folder"})), ADMIN_ONLY),
        route("GET", "/v1/scans", None, READ_SCANS),
        route("GET", &format!("/v1/scans/{NO_SCAN}"), None, READ_SCANS),
        route("GET", &format!("/v1/scans/{NO_SCAN}/result"), None, READ_SCAN_REPORTS),
        route("GET", "/v1/models", None, READ),
        route("GET", "/v1/models/budgets", None, READ),
        route("GET", "/v1/models/usage?group_by=model", None, READ),
        route("POST", "/v1/models/refresh", None, MANAGE_AGENTS),
        route("GET", "/openai/v1/models", None, USE_MODELS),
        route("POST", "/openai/v1/chat/completions", Some(json!({"model": "m", "messages": []})), USE_MODELS),
        route("POST", "/openai/v1/embeddings", Some(json!({"model": "m", "input": "x"})), USE_MODELS),
        route("GET", "/ollama/api/tags", None, USE_MODELS),
        route("POST", "/ollama/api/chat", Some(json!({"model": "m", "messages": []})), USE_MODELS),
        route("POST", "/ollama/api/generate", Some(json!({"model": "m", "prompt": "x"})), USE_MODELS),
        route("POST", "/ollama/api/embed", Some(json!({"model": "m", "input": "x"})), USE_MODELS),
        route("POST", "/ollama/api/show", Some(json!({"model": "m"})), USE_MODELS),
        route("POST", "/v1/keys", Some(json!({"role": "viewer", "namespace": "team-a"})), ADMIN_ONLY),
        route("GET", "/v1/keys", None, ADMIN_ONLY),
        route("DELETE", "/v1/keys/000000000000", None, ADMIN_ONLY),
        route("GET", "/v1/audit", None, ADMIN_ONLY),
    ]
}

async fn call(s: &Served, route: &Route, token: Option<&str>) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(route.method.as_bytes()).unwrap();
    let mut request = s.http.request(method, s.url(&route.path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = &route.body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap();
    if !(route.path.starts_with("/openai/") || route.path.starts_with("/ollama/")) {
        return json_of(response).await;
    }
    // The gateways answer errors in their protocols' shapes, not as problem documents.
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn every_route_answers_every_role_as_the_role_table_says() {
    // Scans allowed somewhere, so an admin's scan request reaches its body's check.
    let allowed = vec![std::env::temp_dir().to_str().unwrap().to_string()];
    let s = serve_with(|l| l.set("scan.allowed_dirs", allowed)).await;
    let (_, task) = json_of(
        s.http
            .post(s.url("/v1/tasks"))
            .bearer_auth(token("agent", Some("team-a")))
            .json(&json!({"agent": "echo"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let gate = json!({"name": "gate", "steps": [
        {"id": "approve", "approval": {}}, {"id": "b", "agent": "echo", "depends_on": ["approve"]}]});
    let (status, stored) = json_of(
        s.http
            .post(s.url("/v1/workflows"))
            .bearer_auth(token("developer", Some("team-a")))
            .json(&gate)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{stored}");
    let (status, run) = json_of(
        s.http
            .post(s.url("/v1/runs"))
            .bearer_auth(token("agent", Some("team-a")))
            .json(&json!({"workflow": "gate"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{run}");
    let routes = matrix(task["id"].as_str().unwrap(), run["id"].as_str().unwrap());
    for route in &routes {
        let (status, body) = call(&s, route, None).await;
        assert_eq!(status, 401, "anonymous {} {}: {body}", route.method, route.path);
        for (role, allowed) in ROLES.into_iter().zip(route.allowed) {
            let namespace = (role != "admin").then_some("team-a");
            let (status, body) = call(&s, route, Some(&token(role, namespace))).await;
            if allowed {
                assert!(
                    status != 401 && status != 403,
                    "{role} may {} {}: {status} {body}",
                    route.method,
                    route.path
                );
            } else {
                assert_eq!(status, 403, "{role} may not {} {}: {body}", route.method, route.path);
            }
        }
    }
    s.stop().await;
}

#[tokio::test]
async fn api_keys_are_shown_once_work_in_both_headers_and_die_when_revoked() {
    let s = serve().await;
    let admin = token("admin", None);
    let (status, created) = json_of(
        s.http
            .post(s.url("/v1/keys"))
            .bearer_auth(&admin)
            .json(&json!({"role": "developer", "namespace": "team-a", "name": "ci"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap().to_string();
    let id = created["id"].as_str().unwrap().to_string();
    assert!(key.starts_with("mk1_") && key.contains(&id));

    let (_, listed) = json_of(s.http.get(s.url("/v1/keys")).bearer_auth(&admin).send().await.unwrap()).await;
    let text = listed.to_string();
    assert!(
        text.contains(&id) && !text.contains(&key[key.len() - 20..]),
        "listings never show the secret: {text}"
    );

    let (status, me) =
        json_of(s.http.get(s.url("/v1/whoami")).header("X-API-Key", &key).send().await.unwrap()).await;
    assert_eq!((status, &me["subject"]), (200, &json!(format!("key:{id}"))), "{me}");
    let (status, _) = json_of(s.http.get(s.url("/v1/whoami")).bearer_auth(&key).send().await.unwrap()).await;
    assert_eq!(status, 200);
    // Change the secret's last character to another valid one (never to itself, so the
    // check cannot pass by chance; the last character carries only 4 bits of the secret).
    let last = if key.ends_with('A') { 'Q' } else { 'A' };
    let forged = format!("{}{last}", &key[..key.len() - 1]);
    let (status, _) =
        json_of(s.http.get(s.url("/v1/whoami")).bearer_auth(&forged).send().await.unwrap()).await;
    assert_eq!(status, 401, "a key with a changed secret is refused");

    let (status, _) =
        json_of(s.http.delete(s.url(&format!("/v1/keys/{id}"))).bearer_auth(&admin).send().await.unwrap())
            .await;
    assert_eq!(status, 204);
    let (status, body) =
        json_of(s.http.get(s.url("/v1/whoami")).bearer_auth(&key).send().await.unwrap()).await;
    assert_eq!(status, 401, "a revoked key is refused at once: {body}");
    assert!(body["detail"].as_str().unwrap().contains("revoked"), "{body}");

    // The edge audits keys as `mark1 keys` does: one search by target finds both records.
    let (_, audit) = json_of(s.http.get(s.url("/v1/audit")).bearer_auth(&admin).send().await.unwrap()).await;
    let of_key: Vec<(&str, &str)> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["target"] == json!(format!("key:{id}")))
        .map(|r| (r["action"].as_str().unwrap(), r["namespace"].as_str().unwrap_or("-")))
        .collect();
    assert_eq!(of_key, [("key.create", "team-a"), ("key.revoke", "team-a")], "{audit}");
    s.stop().await;
}

#[tokio::test]
async fn operators_register_llm_agents_and_developers_do_not() {
    let s = serve().await;
    let llm = json!({"name": "writer", "namespace": "team-a", "runtime": "llm", "capabilities": ["text.write"],
                     "llm": {"model": "llama3.1", "system": "You write.", "max_steps": 3}});
    let post = |role: &str, namespace: Option<&str>, body: &serde_json::Value| {
        s.http.post(s.url("/v1/agents")).bearer_auth(token(role, namespace)).json(body).send()
    };
    let (status, _) = json_of(post("developer", Some("team-a"), &llm).await.unwrap()).await;
    assert_eq!(status, 403, "developers do not register agents");
    let (status, _) = json_of(post("operator", Some("team-b"), &llm).await.unwrap()).await;
    assert_eq!(status, 403, "nor do operators of another namespace");
    let mut bad = llm.clone();
    bad["llm"]["max_steps"] = json!(0);
    let (status, body) = json_of(post("operator", Some("team-a"), &bad).await.unwrap()).await;
    assert!(status == 400 && body["detail"].as_str().unwrap().contains("llm.max_steps"), "{body}");
    let mut mcp = llm.clone();
    mcp["llm"]["tools"] = json!([{"kind": "mcp", "server": "files"}]);
    let (status, _) = json_of(post("operator", Some("team-a"), &mcp).await.unwrap()).await;
    assert_eq!(status, 403, "MCP servers are the node's: admins only");
    let (status, body) = json_of(post("admin", None, &mcp).await.unwrap()).await;
    assert!(status == 400 && body["detail"].as_str().unwrap().contains("no MCP server 'files'"), "{body}");
    let mut private = llm.clone();
    private["llm"]["tools"] = json!([{"kind": "http", "name": "meta", "url": "http://169.254.169.254/",
                                      "allow_hosts": ["169.254.169.254"], "allow_private": true}]);
    let (status, _) = json_of(post("operator", Some("team-a"), &private).await.unwrap()).await;
    assert_eq!(status, 403, "private addresses are the node's network: admins only");
    let mut itself = llm.clone();
    itself["llm"]["tools"] = json!([{"kind": "agent", "agent": "writer"}]);
    let (status, body) = json_of(post("operator", Some("team-a"), &itself).await.unwrap()).await;
    assert!(
        status == 400 && body["detail"].as_str().unwrap().contains("may not call its own agent"),
        "{body}"
    );
    let mut bad_schema = llm.clone();
    bad_schema["llm"]["tools"] = json!([{"kind": "agent", "agent": "other", "parameters": {"type": 12}}]);
    let (status, body) = json_of(post("operator", Some("team-a"), &bad_schema).await.unwrap()).await;
    assert!(status == 400 && body["detail"].as_str().unwrap().contains("parameters"), "{body}");

    let (status, agent) = json_of(post("operator", Some("team-a"), &llm).await.unwrap()).await;
    assert_eq!(status, 201, "{agent}");
    assert_eq!(agent["capabilities"], json!(["text.write"]), "{agent}");
    let node = s.node.clone();
    eventually(Duration::from_secs(10), "the agent kept for the next start", || async {
        node.store().agents().await.unwrap().iter().any(|a| a.key() == "team-a/writer")
    })
    .await;
    s.stop().await;
}

#[tokio::test]
async fn only_admins_register_process_agents_and_only_from_allowed_folders() {
    let s = serve().await;
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/agents");
    let allowed = json!({"name": "echo-proc", "namespace": "team-a", "command": examples.join("echo.py"), "capabilities": ["text.echo"]});
    let (status, _) = json_of(
        s.http
            .post(s.url("/v1/agents"))
            .bearer_auth(token("operator", Some("team-a")))
            .json(&allowed)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403, "operators may not run commands on the node");
    let admin = token("admin", None);
    let outside = json!({"name": "sh", "namespace": "team-a", "command": "/bin/sh"});
    let (status, body) =
        json_of(s.http.post(s.url("/v1/agents")).bearer_auth(&admin).json(&outside).send().await.unwrap())
            .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("allowed_dirs"), "{body}");
    let typo = json!({"name": "echo-proc", "namespace": "team-a", "command": examples.join("echo.py"), "capabilites": []});
    let (status, body) =
        json_of(s.http.post(s.url("/v1/agents")).bearer_auth(&admin).json(&typo).send().await.unwrap()).await;
    assert!(status == 400 && body["detail"].as_str().unwrap().contains("capabilites"), "{body}");

    let (status, agent) =
        json_of(s.http.post(s.url("/v1/agents")).bearer_auth(&admin).json(&allowed).send().await.unwrap())
            .await;
    assert_eq!(status, 201, "{agent}");
    let dev = token("developer", Some("team-a"));
    let (status, task) = json_of(
        s.http
            .post(s.url("/v1/tasks?wait=20s"))
            .bearer_auth(&dev)
            .json(&json!({"agent": "echo-proc", "input": {"n": 1}}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, &task["state"]), (200, &json!("succeeded")), "{task}");

    let operator = token("operator", Some("team-a"));
    let (status, resized) = json_of(
        s.http
            .patch(s.url("/v1/agents/team-a/echo-proc"))
            .bearer_auth(&operator)
            .json(&json!({"min": 2, "max": 3}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{resized}");
    let node = s.node.clone();
    eventually(Duration::from_secs(20), "the pool grew to its new minimum", || async {
        node.agents().await.unwrap().iter().any(|a| a.name == "echo-proc" && a.workers == 2)
    })
    .await;
    let (status, _) = json_of(
        s.http.delete(s.url("/v1/agents/team-a/echo-proc")).bearer_auth(&operator).send().await.unwrap(),
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) =
        json_of(s.http.get(s.url("/v1/agents/team-a/echo-proc")).bearer_auth(&dev).send().await.unwrap())
            .await;
    assert_eq!(status, 404);

    let (_, audit) =
        json_of(s.http.get(s.url("/v1/audit?limit=1000")).bearer_auth(&admin).send().await.unwrap()).await;
    let actions: Vec<(&str, &str)> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["action"].as_str().unwrap(), r["outcome"].as_str().unwrap()))
        .collect();
    for expected in [("agent.register", "success"), ("agent.resize", "success"), ("agent.remove", "success")]
    {
        assert!(actions.contains(&expected), "{expected:?} in {actions:?}");
    }
    s.stop().await;
}

#[tokio::test]
async fn refused_requests_are_audited_with_who_and_what() {
    let s = serve().await;
    let viewer = token("viewer", Some("team-a"));
    let (status, _) = json_of(s.http.get(s.url("/v1/keys")).bearer_auth(&viewer).send().await.unwrap()).await;
    assert_eq!(status, 403);
    let (status, _) =
        json_of(s.http.get(s.url("/v1/tasks")).bearer_auth("mk1_000000000000_nope").send().await.unwrap())
            .await;
    assert_eq!(status, 401);
    let admin = token("admin", None);
    let audit = || async {
        let (_, records) =
            json_of(s.http.get(s.url("/v1/audit")).bearer_auth(&admin).send().await.unwrap()).await;
        records.as_array().unwrap().clone()
    };
    eventually(Duration::from_secs(5), "both refusals audited", || async { audit().await.len() >= 2 }).await;
    let records = audit().await;
    let denied: Vec<(&str, &str)> = records
        .iter()
        .filter(|r| r["action"] == "http.denied" && r["outcome"] == "denied")
        .map(|r| (r["actor"].as_str().unwrap(), r["target"].as_str().unwrap()))
        .collect();
    assert!(denied.contains(&("jwt:viewer-user", "GET /v1/keys")), "{records:?}");
    assert!(denied.contains(&("anonymous", "GET /v1/tasks")), "{records:?}");
    assert!(records.iter().all(|r| r["request_id"].is_string()), "request ids recorded: {records:?}");
    s.stop().await;
}
