//! `/v1/workflows` and `/v1/runs` as a client sees them: definitions from JSON and YAML
//! with every problem at its line, runs started and waited for, changed, approved,
//! redacted for viewers, confined to their namespace, and audited.

use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::time::Duration;

use mark1::AgentSpec;
use serde_json::{json, Value};

use super::support::{json_of, serve, serve_built, token, Served};
use crate::support::{eventually, Flaky};

/// Sends `body` (JSON) with `method` to `path` as `bearer`.
async fn send(s: &Served, method: &str, path: &str, bearer: &str, body: Option<Value>) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = s.http.request(method, s.url(path)).bearer_auth(bearer);
    if let Some(body) = body {
        request = request.json(&body);
    }
    json_of(request.send().await.unwrap()).await
}

/// Posts a definition's text with a content type.
async fn post_text(s: &Served, path: &str, bearer: &str, kind: &str, text: &str) -> (u16, Value) {
    let request =
        s.http.post(s.url(path)).bearer_auth(bearer).header("content-type", kind).body(text.to_string());
    json_of(request.send().await.unwrap()).await
}

async fn create(s: &Served, bearer: &str, def: Value) -> Value {
    let (status, stored) = send(s, "POST", "/v1/workflows", bearer, Some(def)).await;
    assert_eq!(status, 201, "{stored}");
    stored
}

/// Starts a run and answers with its id.
async fn start(s: &Served, bearer: &str, body: Value) -> String {
    let (status, run) = send(s, "POST", "/v1/runs", bearer, Some(body)).await;
    assert_eq!(status, 201, "{run}");
    run["id"].as_str().unwrap().to_string()
}

/// The run once it is in `state`.
async fn until(s: &Served, bearer: &str, id: &str, state: &str) -> Value {
    let path = format!("/v1/runs/{id}");
    eventually(Duration::from_secs(20), &format!("run {id} {state}"), || async {
        send(s, "GET", &path, bearer, None).await.1["state"] == state
    })
    .await;
    send(s, "GET", &path, bearer, None).await.1
}

fn step<'a>(run: &'a Value, id: &str) -> &'a Value {
    run["steps"].as_array().unwrap().iter().find(|s| s["id"] == id).unwrap_or_else(|| panic!("{id}: {run}"))
}

/// The audit records of `target`: (action, outcome).
async fn audited(s: &Served, target: &str) -> Vec<(String, String)> {
    let (_, records) = send(s, "GET", "/v1/audit?limit=1000", &token("admin", None), None).await;
    records
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["target"] == target)
        .map(|r| (r["action"].as_str().unwrap().to_string(), r["outcome"].as_str().unwrap().to_string()))
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected.iter().map(|(a, o)| (a.to_string(), o.to_string())).collect()
}

/// Two echo steps, the second reading the first; the input must have `text`.
fn hello() -> Value {
    json!({"name": "hello", "input_schema": {"type": "object", "required": ["text"]}, "steps": [
        {"id": "a", "agent": "echo", "input": {"text": "{{ input.text }}"}},
        {"id": "b", "capability": "text.echo", "depends_on": ["a"], "input": "{{ steps.a.output.text }}"},
    ], "output": {"said": "{{ steps.b.output }}"}})
}

const HELLO_YAML: &str = "\
name: hello
description: the same, in YAML
steps:
  - id: a
    agent: echo
    input: {text: \"{{ input.text }}\"}
";

const BAD_YAML: &str = "\
name: greet
steps:
  - id: hello
    agent: ecko
  - id: summary
    capability: text.echo
    input: {text: \"{{ steps.hello.output }}\"}
";

#[tokio::test]
async fn definitions_are_stored_from_json_and_yaml_by_version_with_every_problem_at_its_line() {
    let s = serve().await;
    let dev = token("developer", Some("team-a"));
    let first = create(&s, &dev, hello()).await;
    assert_eq!(
        (&first["namespace"], &first["name"], &first["version"]),
        (&json!("team-a"), &json!("hello"), &json!(1))
    );
    assert_eq!(first["def"]["steps"][1]["depends_on"], json!(["a"]), "{first}");
    assert!(first["created_at"].as_str().unwrap().ends_with('Z'), "{first}");
    let mut same = hello();
    same["version"] = json!(1);
    let (status, again) = send(&s, "POST", "/v1/workflows", &dev, Some(same)).await;
    assert_eq!(
        (status, &again["version"]),
        (201, &json!(1)),
        "the same definition of a stored version: {again}"
    );

    for kind in ["application/yaml", "text/yaml; charset=utf-8"] {
        let (status, stored) = post_text(&s, "/v1/workflows", &dev, kind, HELLO_YAML).await;
        assert_eq!(status, 201, "{kind}: {stored}");
    }
    let (status, latest) = send(&s, "GET", "/v1/workflows/hello", &dev, None).await;
    assert_eq!((status, &latest["version"]), (200, &json!(3)), "{latest}");
    assert_eq!(latest["def"]["description"], "the same, in YAML");
    let (_, v1) = send(&s, "GET", "/v1/workflows/hello?version=1", &dev, None).await;
    assert_eq!(v1, first);
    let (status, _) = send(&s, "GET", "/v1/workflows/hello?version=9", &dev, None).await;
    assert_eq!(status, 404);
    let (status, _) = send(&s, "GET", "/v1/workflows/nothing", &dev, None).await;
    assert_eq!(status, 404);
    let (status, conflict) = send(
        &s,
        "POST",
        "/v1/workflows",
        &dev,
        Some(json!({"name": "hello", "version": 1, "steps": [{"id": "x", "agent": "echo"}]})),
    )
    .await;
    assert_eq!((status, &conflict["type"]), (409, &json!("urn:mark1:conflict")), "{conflict}");
    let (_, listed) = send(&s, "GET", "/v1/workflows", &dev, None).await;
    let versions: Vec<(&str, u64)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["name"].as_str().unwrap(), w["version"].as_u64().unwrap()))
        .collect();
    assert_eq!(versions, [("hello", 1), ("hello", 2), ("hello", 3)]);

    // Every problem, at its line and column, in the order of the text.
    let (status, problem) = post_text(&s, "/v1/workflows", &dev, "application/yaml", BAD_YAML).await;
    assert_eq!((status, &problem["type"]), (400, &json!("urn:mark1:bad_request")), "{problem}");
    let errors = problem["errors"].as_array().unwrap();
    let at: Vec<(u64, u64, &str)> = errors
        .iter()
        .map(|e| (e["line"].as_u64().unwrap(), e["column"].as_u64().unwrap(), e["pointer"].as_str().unwrap()))
        .collect();
    assert_eq!(at, [(4, 12, "/steps/0/agent"), (7, 19, "/steps/1/input/text")], "{problem}");
    assert!(errors[0]["message"].as_str().unwrap().contains("ecko"), "{problem}");
    let (status, problem) = post_text(
        &s,
        "/v1/workflows",
        &dev,
        "application/yaml",
        "name: x\nsteps:\n  - id: a\n    agent: echo\n    depend_on: [b]\n",
    )
    .await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["errors"][0]["line"], 5, "an unknown key is shown at the key: {problem}");
    assert!(problem["errors"][0]["message"].as_str().unwrap().contains("depend_on"), "{problem}");
    let (status, problem) =
        post_text(&s, "/v1/workflows", &dev, "application/json", "{\"name\": \"x\",\n \"steps\": [}").await;
    assert_eq!((status, &problem["errors"][0]["line"]), (400, &json!(2)), "syntax errors too: {problem}");
    let (status, _) = post_text(&s, "/v1/workflows", &dev, "text/plain", HELLO_YAML).await;
    assert_eq!(status, 400, "a content type other than JSON or YAML");

    // Validation without storing.
    let (status, report) = post_text(&s, "/v1/workflows/validate", &dev, "application/yaml", BAD_YAML).await;
    assert_eq!((status, &report["valid"]), (200, &json!(false)), "{report}");
    assert_eq!(report["errors"].as_array().unwrap().len(), 2, "{report}");
    assert_eq!(report["errors"][0]["line"], 4);
    let (status, report) = send(
        &s,
        "POST",
        "/v1/workflows/validate",
        &dev,
        Some(json!({"name": "fresh", "steps": [{"id": "a", "agent": "echo"}]})),
    )
    .await;
    assert_eq!((status, report), (200, json!({"valid": true, "errors": []})));
    let sub = json!({"name": "outer", "steps": [{"id": "s", "workflow": {"name": "hello", "version": 7}}]});
    let (_, report) = send(&s, "POST", "/v1/workflows/validate", &dev, Some(sub)).await;
    assert_eq!(
        report["errors"][0]["pointer"], "/steps/0/workflow/version",
        "stored workflows are known: {report}"
    );
    let (status, _) = send(&s, "GET", "/v1/workflows/fresh", &dev, None).await;
    assert_eq!(status, 404, "validation stores nothing");
    create(&s, &dev, json!({"name": "validate", "steps": [{"id": "a", "agent": "echo"}]})).await;
    let (status, named) = send(&s, "GET", "/v1/workflows/validate", &dev, None).await;
    assert_eq!(
        (status, &named["name"]),
        (200, &json!("validate")),
        "a workflow may be named validate: {named}"
    );

    let audit = audited(&s, "workflow:hello@1").await;
    assert_eq!(
        audit,
        pairs(&[
            ("workflow.create", "success"),
            ("workflow.create", "success"),
            ("workflow.create", "failure")
        ])
    );
    assert_eq!(audited(&s, "workflow:greet").await, pairs(&[("workflow.create", "failure")]));
    s.stop().await;
}

#[tokio::test]
async fn runs_start_wait_replay_by_idempotency_key_and_list_newest_first() {
    let s = serve().await;
    let dev = token("developer", Some("team-a"));
    create(&s, &dev, hello()).await;
    let (status, run) = send(
        &s,
        "POST",
        "/v1/runs?wait=10s",
        &dev,
        Some(json!({"workflow": "hello", "input": {"text": "hi"}})),
    )
    .await;
    assert_eq!(status, 200, "{run}");
    assert_eq!((&run["state"], &run["output"]), (&json!("succeeded"), &json!({"said": "hi"})), "{run}");
    assert_eq!(
        (&run["namespace"], &run["submitter"], &run["version"]),
        (&json!("team-a"), &json!("jwt:developer-user"), &json!(1))
    );
    assert_eq!(step(&run, "b")["output"], "hi");
    assert_eq!(step(&run, "a")["attempt"], 1);

    // Not waiting: 201, then read with a wait.
    let id = start(&s, &dev, json!({"workflow": "hello", "version": 1, "input": {"text": "yo"}})).await;
    let (status, done) = send(&s, "GET", &format!("/v1/runs/{id}?wait=10s"), &dev, None).await;
    assert_eq!((status, &done["output"]["said"]), (200, &json!("yo")), "{done}");

    // The same key: the first run; another input under it: 409.
    let keyed = |body: Value| {
        s.http
            .post(s.url("/v1/runs"))
            .bearer_auth(&dev)
            .header("Idempotency-Key", "deploy-7")
            .json(&body)
            .send()
    };
    let (status, first) =
        json_of(keyed(json!({"workflow": "hello", "input": {"text": "once"}})).await.unwrap()).await;
    assert_eq!(status, 201, "{first}");
    let (status, again) =
        json_of(keyed(json!({"workflow": "hello", "input": {"text": "once"}})).await.unwrap()).await;
    assert_eq!((status, &again["id"]), (200, &first["id"]), "{again}");
    let (status, same) = send(
        &s,
        "POST",
        "/v1/runs",
        &dev,
        Some(json!({"workflow": "hello", "input": {"text": "once"}, "idempotency_key": "deploy-7"})),
    )
    .await;
    assert_eq!((status, &same["id"]), (200, &first["id"]), "the body's key is the header's: {same}");
    let (status, conflict) =
        json_of(keyed(json!({"workflow": "hello", "input": {"text": "twice"}})).await.unwrap()).await;
    assert_eq!(status, 409, "{conflict}");

    // Refusals.
    let (status, problem) =
        send(&s, "POST", "/v1/runs", &dev, Some(json!({"workflow": "hello", "input": {"txt": 1}}))).await;
    assert_eq!(status, 400, "{problem}");
    assert!(problem["errors"][0]["pointer"].as_str().unwrap().starts_with("/input"), "{problem}");
    let (status, _) = send(&s, "POST", "/v1/runs", &dev, Some(json!({"workflow": "nothing"}))).await;
    assert_eq!(status, 404);
    let (status, _) = send(
        &s,
        "POST",
        "/v1/runs",
        &dev,
        Some(json!({"workflow": "hello", "version": 4, "input": {"text": ""}})),
    )
    .await;
    assert_eq!(status, 404, "an unknown version");
    let (status, problem) =
        send(&s, "POST", "/v1/runs", &dev, Some(json!({"workflow": "hello", "inputs": {}}))).await;
    assert!(status == 400 && problem["detail"].as_str().unwrap().contains("inputs"), "{problem}");
    let (status, _) = send(&s, "GET", "/v1/runs/not-a-run", &dev, None).await;
    assert_eq!(status, 404);

    // Listing: newest first, by filter, in pages.
    // A wait answers once the run's end is committed, so listings (from the store) show it.
    let (_, done) =
        send(&s, "GET", &format!("/v1/runs/{}?wait=10s", first["id"].as_str().unwrap()), &dev, None).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    let (status, page) = send(&s, "GET", "/v1/runs?limit=2", &dev, None).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["runs"][0]["id"], first["id"]);
    assert_eq!(page["runs"][1]["id"], json!(id));
    assert!(page["runs"][0].get("steps").is_none(), "listings carry no steps");
    let next = page["next"].as_str().expect("a second page");
    let (_, rest) = send(&s, "GET", &format!("/v1/runs?before={next}"), &dev, None).await;
    assert_eq!(rest["runs"].as_array().unwrap().len(), 1, "{rest}");
    assert_eq!(rest["runs"][0]["id"], run["id"]);
    assert!(rest["next"].is_null());
    let (_, filtered) = send(&s, "GET", "/v1/runs?workflow=hello&state=succeeded", &dev, None).await;
    assert_eq!(filtered["runs"].as_array().unwrap().len(), 3, "{filtered}");
    let (_, none) = send(&s, "GET", "/v1/runs?state=failed", &dev, None).await;
    assert!(none["runs"].as_array().unwrap().is_empty(), "{none}");
    let (status, _) = send(&s, "GET", "/v1/runs?state=sleeping", &dev, None).await;
    assert_eq!(status, 400);

    // The run's events, in order.
    let (status, events) = send(&s, "GET", &format!("/v1/runs/{id}/events"), &dev, None).await;
    assert_eq!(status, 200, "{events}");
    let kinds: Vec<&str> =
        events["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"run.started"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"run.succeeded"), "{kinds:?}");
    assert!(kinds.contains(&"step.succeeded"), "{kinds:?}");
    assert!(events["events"].as_array().unwrap().iter().all(|e| e["subject"] == json!(id)));
    s.stop().await;
}

fn gate() -> Value {
    json!({"name": "gate", "steps": [
        {"id": "approve", "approval": {"message": "ship?"}},
        {"id": "after", "agent": "echo", "depends_on": ["approve"], "input": "{{ steps.approve.output.comment }}"},
    ]})
}

#[tokio::test]
async fn approvals_are_approved_or_rejected_by_operators_and_audited() {
    let s = serve().await;
    let (dev, operator) = (token("developer", Some("team-a")), token("operator", Some("team-a")));
    create(&s, &dev, gate()).await;
    let yes = start(&s, &dev, json!({"workflow": "gate"})).await;
    let no = start(&s, &dev, json!({"workflow": "gate"})).await;
    for id in [&yes, &no] {
        let run = until(&s, &dev, id, "waiting_approval").await;
        assert_eq!(step(&run, "approve")["state"], "waiting_approval");
    }
    let path = |id: &str| format!("/v1/runs/{id}/approvals/approve");
    let (status, _) = send(&s, "POST", &path(&yes), &dev, Some(json!({"approved": true}))).await;
    assert_eq!(status, 403, "developers do not decide approvals");
    let (status, run) =
        send(&s, "POST", &path(&yes), &operator, Some(json!({"approved": true, "comment": "ship it"}))).await;
    assert_eq!(status, 200, "{run}");
    let run = until(&s, &dev, &yes, "succeeded").await;
    assert_eq!(step(&run, "after")["output"], "ship it");
    let (status, conflict) = send(&s, "POST", &path(&yes), &operator, Some(json!({"approved": false}))).await;
    assert_eq!(status, 409, "decided already: {conflict}");

    let (status, _) = send(
        &s,
        "POST",
        &format!("/v1/runs/{no}/approvals/after"),
        &operator,
        Some(json!({"approved": true})),
    )
    .await;
    assert_eq!(status, 409, "not an approval that waits");
    let (status, _) = send(
        &s,
        "POST",
        &format!("/v1/runs/{no}/approvals/nope"),
        &operator,
        Some(json!({"approved": true})),
    )
    .await;
    assert_eq!(status, 404, "no such step");
    let (status, _) = send(&s, "POST", &path(&no), &operator, Some(json!({"approve": false}))).await;
    assert_eq!(status, 400, "a typo is refused");
    let (status, _) =
        send(&s, "POST", &path(&no), &operator, Some(json!({"approved": false, "comment": "not today"})))
            .await;
    assert_eq!(status, 200);
    let run = until(&s, &dev, &no, "failed").await;
    assert_eq!(step(&run, "approve")["state"], "failed", "{run}");
    assert_eq!(step(&run, "after")["state"], "queued", "{run}");

    assert_eq!(
        audited(&s, &format!("run:{yes}")).await,
        pairs(&[("run.approve", "success"), ("run.reject", "failure")])
    );
    assert_eq!(
        audited(&s, &format!("run:{no}")).await,
        pairs(&[("run.approve", "failure"), ("run.approve", "failure"), ("run.reject", "success")])
    );
    s.stop().await;
}

#[tokio::test]
async fn runs_are_patched_retry_skip_add_steps_and_cancel_each_audited() {
    let flaky = Flaky { calls: Arc::new(AtomicU32::new(0)), succeed_on: 2, retryable: false };
    let s = serve_built(|l| l, |b| b.agent(AgentSpec::native("flaky").namespace("team-a"), flaky)).await;
    let (dev, operator) = (token("developer", Some("team-a")), token("operator", Some("team-a")));
    create(
        &s,
        &dev,
        json!({"name": "retry", "steps": [
            {"id": "first", "agent": "flaky"},
            {"id": "then", "agent": "echo", "depends_on": ["first"], "input": "{{ steps.first.output.key }}"},
        ]}),
    )
    .await;
    create(
        &s,
        &dev,
        json!({"name": "long", "steps": [
            {"id": "slow", "agent": "sleeper", "input": {"ms": 60000}},
            {"id": "later", "agent": "echo", "depends_on": ["slow"]},
        ]}),
    )
    .await;

    // A failed step, retried by hand: the failed run runs again.
    let failed = start(&s, &dev, json!({"workflow": "retry"})).await;
    until(&s, &dev, &failed, "failed").await;
    let path = format!("/v1/runs/{failed}");
    let (status, _) =
        send(&s, "PATCH", &path, &dev, Some(json!({"action": "retry_step", "step": "first"}))).await;
    assert_eq!(status, 403, "developers do not patch runs");
    let (status, _) =
        send(&s, "PATCH", &path, &operator, Some(json!({"action": "retry_step", "step": "then"}))).await;
    assert_eq!(status, 409, "a step that did not fail");
    let (status, run) =
        send(&s, "PATCH", &path, &operator, Some(json!({"action": "retry_step", "step": "first"}))).await;
    assert_eq!((status, &run["state"]), (200, &json!("running")), "{run}");
    let run = until(&s, &dev, &failed, "succeeded").await;
    assert_eq!(step(&run, "then")["output"], json!(format!("run:{failed}:first:2")));

    // Skip a step that has not started, add steps, then cancel.
    let long = start(&s, &dev, json!({"workflow": "long"})).await;
    let path = format!("/v1/runs/{long}");
    let patch = |body: Value| send(&s, "PATCH", &path, &operator, Some(body));
    let (status, run) = patch(json!({"action": "skip_step", "step": "later", "output": "given"})).await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(
        (&step(&run, "later")["state"], &step(&run, "later")["output"]),
        (&json!("skipped"), &json!("given"))
    );
    let (status, _) = patch(json!({"action": "skip_step", "step": "nope"})).await;
    assert_eq!(status, 404);
    let (status, run) = patch(
        json!({"action": "add_steps", "steps": [{"id": "extra", "agent": "echo", "depends_on": ["slow"]}]}),
    )
    .await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(step(&run, "extra")["state"], "queued");
    let (status, problem) = patch(json!({"action": "add_steps", "steps": [{"id": "bad", "agent": "nobody"}, {"id": "worse", "depends_on": ["void"], "agent": "echo"}]})).await;
    assert_eq!(status, 400, "{problem}");
    assert!(problem["errors"].as_array().unwrap().len() >= 2, "every problem: {problem}");
    let (status, _) = patch(json!({"action": "rename", "step": "x"})).await;
    assert_eq!(status, 400, "an unknown action");
    let (status, _) = patch(json!({"action": "retry_step", "step": "slow", "force": true})).await;
    assert_eq!(status, 400, "an unknown field");
    let (status, run) = patch(json!({"action": "cancel", "reason": "enough"})).await;
    assert_eq!(status, 200, "{run}");
    let run = until(&s, &dev, &long, "cancelled").await;
    assert_eq!(step(&run, "slow")["state"], "cancelled");
    let (status, problem) = send(&s, "POST", &format!("{path}/cancel"), &dev, None).await;
    assert_eq!(status, 409, "a finished run cannot change: {problem}");

    // POST …/cancel, by whoever may start runs, with an optional reason.
    let other = start(&s, &dev, json!({"workflow": "long"})).await;
    let (status, _) =
        send(&s, "POST", &format!("/v1/runs/{other}/cancel"), &token("viewer", Some("team-a")), None).await;
    assert_eq!(status, 403);
    let (status, run) =
        send(&s, "POST", &format!("/v1/runs/{other}/cancel"), &dev, Some(json!({"reason": "wrong input"})))
            .await;
    assert_eq!(status, 200, "{run}");
    until(&s, &dev, &other, "cancelled").await;

    assert_eq!(
        audited(&s, &format!("run:{failed}")).await,
        pairs(&[("run.patch.retry_step", "failure"), ("run.patch.retry_step", "success")])
    );
    assert_eq!(
        audited(&s, &format!("run:{long}")).await,
        pairs(&[
            ("run.patch.skip_step", "success"),
            ("run.patch.skip_step", "failure"),
            ("run.patch.add_steps", "success"),
            ("run.patch.add_steps", "failure"),
            ("run.cancel", "success"),
            ("run.cancel", "failure"),
        ])
    );
    assert_eq!(audited(&s, &format!("run:{other}")).await, pairs(&[("run.cancel", "success")]));
    s.stop().await;
}

#[tokio::test]
async fn viewers_see_no_payloads_teams_see_only_theirs_and_agents_only_their_own_runs() {
    let s = serve().await;
    let dev = token("developer", Some("team-a"));
    create(
        &s,
        &dev,
        json!({"name": "fan", "steps": [
        {"id": "each", "agent": "echo", "for_each": "input.items", "input": {"n": "{{ item }}"}},
    ], "output": "{{ steps.each.output }}"}),
    )
    .await;
    let (status, run) = send(
        &s,
        "POST",
        "/v1/runs?wait=10s",
        &dev,
        Some(json!({"workflow": "fan", "input": {"items": ["s1", "s2"]}})),
    )
    .await;
    assert_eq!((status, &run["state"]), (200, &json!("succeeded")), "{run}");
    let id = run["id"].as_str().unwrap().to_string();
    assert_eq!(step(&run, "each")["items"], json!(["s1", "s2"]));
    assert_eq!(step(&run, "each")["item_states"][1]["output"], json!({"n": "s2"}));

    let viewer = token("viewer", Some("team-a"));
    let (status, seen) = send(&s, "GET", &format!("/v1/runs/{id}"), &viewer, None).await;
    assert_eq!(status, 200, "{seen}");
    let text = seen.to_string();
    assert!(!text.contains("s1") && !text.contains("s2"), "viewers see no inputs or outputs: {seen}");
    assert_eq!(step(&seen, "each")["item_states"][0]["state"], "succeeded", "but states: {seen}");
    let (_, listed) = send(&s, "GET", "/v1/runs", &viewer, None).await;
    assert!(!listed.to_string().contains("s1"), "{listed}");
    assert_eq!(listed["runs"][0]["state"], "succeeded");

    // Another team: not found, not listed, not changed.
    let b = token("operator", Some("team-b"));
    for (method, path) in [
        ("GET", format!("/v1/runs/{id}")),
        ("GET", format!("/v1/runs/{id}/events")),
        ("POST", format!("/v1/runs/{id}/cancel")),
        ("PATCH", format!("/v1/runs/{id}")),
        ("POST", format!("/v1/runs/{id}/approvals/each")),
        ("GET", "/v1/workflows/fan".to_string()),
    ] {
        let body = match method {
            "PATCH" => Some(json!({"action": "cancel"})),
            "POST" if path.contains("approvals") => Some(json!({"approved": true})),
            _ => None,
        };
        let (status, _) = send(&s, method, &path, &b, body).await;
        assert_eq!(status, 404, "{method} {path}");
    }
    let (_, runs) = send(&s, "GET", "/v1/runs", &b, None).await;
    assert!(runs["runs"].as_array().unwrap().is_empty(), "{runs}");
    let (_, workflows) = send(&s, "GET", "/v1/workflows", &b, None).await;
    assert_eq!(workflows, json!([]));
    let (status, _) = send(&s, "GET", "/v1/runs?namespace=team-a", &b, None).await;
    assert_eq!(status, 403);
    let (status, _) =
        send(&s, "POST", "/v1/runs?namespace=team-a", &b, Some(json!({"workflow": "fan"}))).await;
    assert_eq!(status, 403, "cannot start runs in another namespace");
    let (status, _) =
        send(&s, "GET", &format!("/v1/events?runs={id}"), &token("agent", Some("team-a")), None).await;
    assert_eq!(status, 404, "role agent names only its own runs");
    let admin = token("admin", None);
    let (status, _) = send(&s, "GET", &format!("/v1/runs/{id}"), &admin, None).await;
    assert_eq!(status, 200, "admins span namespaces");
    let (_, all) = send(&s, "GET", "/v1/workflows", &admin, None).await;
    assert_eq!(all[0]["namespace"], "team-a", "{all}");

    // Role agent: only the runs it started.
    let agent = token("agent", Some("team-a"));
    let mine = start(&s, &agent, json!({"workflow": "fan", "input": {"items": []}})).await;
    let (_, page) = send(&s, "GET", "/v1/runs", &agent, None).await;
    let ids: Vec<&str> = page["runs"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [mine.as_str()]);
    let (status, _) = send(&s, "GET", &format!("/v1/runs/{id}"), &agent, None).await;
    assert_eq!(status, 404, "a developer's run");
    let (status, own) = send(&s, "GET", &format!("/v1/runs/{mine}?wait=10s"), &agent, None).await;
    assert_eq!((status, &own["submitter"]), (200, &json!("jwt:agent-user")), "{own}");
    let (status, events) = send(&s, "GET", &format!("/v1/events?runs={mine}"), &agent, None).await;
    assert_eq!(status, 200, "{events}");
    assert!(!events["events"].as_array().unwrap().is_empty());
    let (_, page) = send(&s, "GET", "/v1/runs", &dev, None).await;
    assert_eq!(page["runs"].as_array().unwrap().len(), 2, "others see every run of the namespace");
    s.stop().await;
}
