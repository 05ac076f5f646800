//! LLM agents (`runtime = "llm"`): the tool-calling loop through the real router and
//! provider adapter, against the scripted, protocol-faithful model server.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mark1::config::ConfigLoader;
use mark1::models::scripted::{Answer, ScriptedServer};
use mark1::{AgentSpec, Node, NodeHandle, TaskRequest, TaskState};
use mark1_actors::domain::{LlmSpec, Target, ToolDef};
use mark1_actors::ports::model::ToolCall;
use serde_json::{json, Value};

use crate::support::*;

/// A node under `dir` whose one provider `oa` speaks OpenAI's protocol to `server`;
/// `tune` sets more keys. Native agents `lookup` (answers `{"found": <q>}`) and `echo`.
async fn node(
    dir: &std::path::Path,
    server: &ScriptedServer,
    tune: impl FnOnce(ConfigLoader) -> ConfigLoader,
) -> NodeHandle {
    let loader = ConfigLoader::new()
        .no_file()
        .env(Vec::<(String, String)>::new())
        .set("node.name", unique("llm").as_str())
        .set("node.data_dir", dir.to_str().unwrap())
        .set("models.providers.oa.kind", "openai")
        .set("models.providers.oa.base_url", server.openai_url().as_str())
        .set("models.retry_backoff", "1ms");
    let config = tune(loader).load().expect("test config loads");
    started(
        Node::builder()
            .config(config)
            .agent(AgentSpec::native("lookup"), Lookup)
            .agent(AgentSpec::native("echo"), Echo),
        2,
    )
    .await
}

struct Lookup;

impl mark1::Agent for Lookup {
    async fn handle(&self, _: mark1::TaskContext, input: Value) -> Result<Value, mark1::AgentError> {
        Ok(json!({"found": input["q"]}))
    }
}

fn call(id: &str, name: &str, arguments: Value) -> ToolCall {
    ToolCall { id: id.into(), name: name.into(), arguments }
}

fn agent_tool(agent: &str) -> ToolDef {
    serde_json::from_value(json!({"kind": "agent", "agent": agent, "description": "Looks things up"}))
        .unwrap()
}

async fn register(handle: &NodeHandle, name: &str, llm: LlmSpec) {
    handle.register_declared_agent(AgentSpec::llm(name, llm)).await.expect("llm agent registers");
    agents_ready(handle, 3).await;
}

async fn run(handle: &NodeHandle, agent: &str, input: Value) -> mark1::TaskRecord {
    let mut request = TaskRequest::to_agent(agent, input);
    request.submitter = Some("key:alice".into());
    handle.run(request, Duration::from_secs(20)).await.expect("task runs")
}

/// The `tool` messages the model was sent, in order.
fn tool_messages(server: &ScriptedServer) -> Vec<String> {
    server
        .script
        .requests()
        .iter()
        .flat_map(|r| r["messages"].as_array().cloned().unwrap_or_default())
        .filter(|m| m["role"] == "tool")
        .map(|m| m["content"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_calling_agent_calls_other_agents_as_its_submitter_and_answers() {
    let dir = tempfile::tempdir().unwrap();
    let server = ScriptedServer::start().await.unwrap();
    let handle = node(dir.path(), &server, |l| l).await;
    let mut llm = LlmSpec::new("oa/llama3.1");
    llm.system = "You answer with the help of your tools.".into();
    llm.tools = vec![agent_tool("lookup")];
    register(&handle, "assistant", llm).await;

    server.script.push(Answer::ToolCalls(vec![call("c1", "lookup", json!({"q": "rust"}))]));
    server.script.push(Answer::ToolCalls(vec![
        call("c2", "lookup", json!({"q": "tokio"})),
        call("c3", "nope", json!({})),
    ]));
    server.script.push(Answer::Text("rust and tokio".into()));
    let done = run(&handle, "assistant", json!("what are rust and tokio?")).await;
    assert_eq!(done.state, TaskState::Succeeded, "{:?}", done.error);
    assert_eq!(done.output.as_deref(), Some(&json!("rust and tokio")));

    let requests = server.script.requests();
    assert_eq!(requests.len(), 3, "three steps");
    assert_eq!(requests[0]["messages"][0]["role"], "system");
    assert_eq!(requests[0]["messages"][1]["content"], "what are rust and tokio?");
    assert_eq!(requests[0]["tools"][0]["function"]["name"], "lookup", "{}", requests[0]);
    let tools = tool_messages(&server);
    assert_eq!(tools[0], r#"{"found":"rust"}"#);
    // The second request repeats the first answer; the third adds two tool answers.
    assert!(tools.contains(&r#"{"found":"tokio"}"#.to_string()), "{tools:?}");
    let unknown = tools.iter().find(|t| t.contains("no tool 'nope'")).expect("unknown tool answered");
    assert!(unknown.contains("lookup"), "the model hears which tools exist: {unknown}");

    // The sub-tasks ran through the orchestrator, as the submitter of the task.
    let query = mark1_actors::ports::TaskQuery { agent: Some("lookup".into()), ..Default::default() };
    let subtasks: Vec<_> = handle
        .store()
        .list_tasks(&query)
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.target == Target::Agent("lookup".into()))
        .collect();
    assert_eq!(subtasks.len(), 2, "{subtasks:?}");
    assert!(subtasks.iter().all(|t| t.submitter.as_deref() == Some("key:alice") && t.namespace == "default"));
    assert!(subtasks.iter().all(|t| t.idempotency_key.as_deref().unwrap().contains(":tool:")));

    // Every model call is billed to the task and the agent.
    let usage = |group_by| {
        let store = handle.store();
        async move {
            let query = mark1_actors::ports::UsageQuery { group_by, ..Default::default() };
            eventually(Duration::from_secs(10), "usage recorded", || {
                let store = store.clone();
                let query = query.clone();
                async move { store.usage_report(&query).await.unwrap().iter().map(|r| r.calls).sum::<u64>() == 3 }
            })
            .await;
            store.usage_report(&query).await.unwrap()
        }
    };
    let by_task = usage(mark1_actors::ports::UsageGroup::Task).await;
    assert_eq!((by_task[0].key.clone(), by_task[0].calls), (Some(done.id.to_string()), 3), "{by_task:?}");
    let by_agent = usage(mark1_actors::ports::UsageGroup::Agent).await;
    assert_eq!(by_agent[0].key.as_deref(), Some("assistant"), "{by_agent:?}");
    stop(handle).await;
}

/// A loopback HTTP endpoint counting its hits.
async fn endpoint() -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = axum::Router::new().route(
        "/weather",
        axum::routing::get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async { axum::Json(json!({"sky": "clear"})) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/weather", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, hits)
}

fn http_tool(url: &str, hosts: &[&str], allow_private: bool) -> ToolDef {
    serde_json::from_value(json!({
        "kind": "http", "name": "weather", "url": url,
        "allow_hosts": hosts, "allow_private": allow_private
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_tool_refuses_private_addresses_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let server = ScriptedServer::start().await.unwrap();
    let handle = node(dir.path(), &server, |l| l).await;
    let (url, hits) = endpoint().await;
    let localhost = url.replace("127.0.0.1", "localhost");
    let mut strict = LlmSpec::new("oa/llama3.1");
    strict.tools = vec![http_tool(&url, &["127.0.0.1", "localhost"], false)];
    register(&handle, "strict", strict.clone()).await;

    // The address written in the URL, then a name that resolves to it.
    server.script.push(Answer::ToolCalls(vec![call("c1", "weather", json!({"city": "x"}))]));
    server.script.push(Answer::Text("could not".into()));
    assert_eq!(run(&handle, "strict", json!("weather?")).await.state, TaskState::Succeeded);
    strict.tools = vec![http_tool(&localhost, &["127.0.0.1", "localhost"], false)];
    handle.register_declared_agent(AgentSpec::llm("strict-dns", strict)).await.unwrap();
    agents_ready(&handle, 4).await;
    server.script.push(Answer::ToolCalls(vec![call("c2", "weather", json!({}))]));
    server.script.push(Answer::Text("could not".into()));
    assert_eq!(run(&handle, "strict-dns", json!("weather?")).await.state, TaskState::Succeeded);
    let refusals = tool_messages(&server);
    assert!(refusals[0].contains("refused") && refusals[0].contains("loopback"), "{refusals:?}");
    assert!(refusals[1].contains("loopback") && refusals[1].contains("allow_private"), "{refusals:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 0, "nothing reached the endpoint");

    let mut open = LlmSpec::new("oa/llama3.1");
    open.tools = vec![http_tool(&url, &["127.0.0.1"], true)];
    handle.register_declared_agent(AgentSpec::llm("open", open)).await.unwrap();
    agents_ready(&handle, 5).await;
    server.script.push(Answer::ToolCalls(vec![call("c3", "weather", json!({"city": "Oslo"}))]));
    server.script.push(Answer::Text("clear".into()));
    assert_eq!(run(&handle, "open", json!("weather?")).await.output.as_deref(), Some(&json!("clear")));
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert_eq!(tool_messages(&server)[2], r#"{"sky":"clear"}"#);
    stop(handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_output_schema_is_enforced_with_one_repair() {
    let dir = tempfile::tempdir().unwrap();
    let server = ScriptedServer::start().await.unwrap();
    let handle = node(dir.path(), &server, |l| l).await;
    let mut llm = LlmSpec::new("oa/llama3.1");
    llm.output_schema = Some(json!({
        "type": "object", "required": ["score"],
        "properties": {"score": {"type": "integer", "minimum": 0, "maximum": 10}}
    }));
    register(&handle, "grader", llm).await;

    server.script.push(Answer::Text("I think it is a 7".into()));
    server.script.push(Answer::Text("```json\n{\"score\": 7}\n```".into()));
    let done = run(&handle, "grader", json!({"essay": "…"})).await;
    assert_eq!(done.output.as_deref(), Some(&json!({"score": 7})), "{:?}", done.error);
    let repair = &server.script.requests()[1];
    let last =
        repair["messages"].as_array().unwrap().last().unwrap()["content"].as_str().unwrap().to_string();
    assert!(last.contains("not JSON") && last.contains("\"score\""), "the repair prompt says why: {last}");
    assert_eq!(repair["response_format"]["type"], "json_schema", "{repair}");

    server.script.push(Answer::Text(r#"{"score": 11}"#.into()));
    server.script.push(Answer::Text(r#"{"grade": "A"}"#.into()));
    let failed = run(&handle, "grader", json!({"essay": "…"})).await;
    assert_eq!(failed.state, TaskState::Failed);
    let error = failed.error.unwrap();
    assert!(error.contains("output_schema") && error.contains("score"), "{error}");
    assert_eq!(server.script.requests().len(), 4, "exactly one repair each");
    stop(handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_step_limit_and_the_token_cap_end_a_task() {
    let dir = tempfile::tempdir().unwrap();
    let server = ScriptedServer::start().await.unwrap();
    let handle = node(dir.path(), &server, |l| l).await;
    let mut looping = LlmSpec::new("oa/llama3.1");
    looping.tools = vec![agent_tool("lookup")];
    looping.max_steps = 2;
    register(&handle, "looping", looping).await;
    for i in 0..2 {
        server.script.push(Answer::ToolCalls(vec![call(&format!("c{i}"), "lookup", json!({"q": i}))]));
    }
    let done = run(&handle, "looping", json!("go")).await;
    assert_eq!(done.state, TaskState::Failed);
    assert!(done.error.as_deref().unwrap().contains("step limit: 2"), "{:?}", done.error);
    assert_eq!(server.script.requests().len(), 2);

    let mut capped = LlmSpec::new("oa/llama3.1");
    capped.max_tokens = Some(20);
    handle.register_declared_agent(AgentSpec::llm("capped", capped)).await.unwrap();
    agents_ready(&handle, 4).await;
    let long = "word ".repeat(100);
    let done = run(&handle, "capped", json!(long)).await;
    assert_eq!(done.state, TaskState::Failed);
    assert!(done.error.as_deref().unwrap().contains("token cap"), "{:?}", done.error);
    assert_eq!(server.script.requests().len(), 2, "refused before calling the model");

    // A large cap does not make every answer as large: an answer is the usual size, and
    // only the last calls of a task near its cap get less.
    let mut roomy = LlmSpec::new("oa/llama3.1");
    roomy.max_tokens = Some(50_000);
    roomy.tools = vec![agent_tool("lookup")];
    handle.register_declared_agent(AgentSpec::llm("roomy", roomy)).await.unwrap();
    agents_ready(&handle, 5).await;
    server.script.push(Answer::ToolCalls(vec![call("r1", "lookup", json!({"q": "x"}))]));
    let done = run(&handle, "roomy", json!("short")).await;
    assert_eq!(done.state, TaskState::Succeeded, "{:?}", done.error);
    let requests = server.script.requests();
    let sizes: Vec<&Value> = requests[2..].iter().map(|r| &r["max_tokens"]).collect();
    assert_eq!(sizes, [&json!(1024), &json!(1024)], "models.default_max_tokens each time");
    stop(handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_task_aborts_its_model_call_and_releases_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let server = ScriptedServer::start().await.unwrap();
    let handle = node(dir.path(), &server, |l| l.set("models.namespaces.default.tokens", 100_000)).await;
    register(&handle, "slow", LlmSpec::new("oa/llama3.1")).await;
    server.script.push(Answer::Hang);
    let id = handle.submit(TaskRequest::to_agent("slow", json!("think hard"))).await.unwrap();
    let router = handle.models();
    eventually(Duration::from_secs(10), "call reserved", || async {
        router.budgets().await.unwrap().iter().any(|b| b.tokens_reserved > 0)
    })
    .await;
    let cancelled = handle.cancel(id).await.unwrap();
    assert_eq!(cancelled.state, TaskState::Cancelled);
    eventually(Duration::from_secs(10), "reservation released", || async {
        router.budgets().await.unwrap().iter().all(|b| b.tokens_reserved == 0 && b.tokens_used == 0)
    })
    .await;
    stop(handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_llm_agent_registered_at_run_time_comes_back_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = ScriptedServer::start().await.unwrap();
    let first = node(dir.path(), &server, |l| l).await;
    let mut llm = LlmSpec::new("oa/llama3.1");
    llm.tools = vec![agent_tool("lookup")];
    register(&first, "assistant", llm.clone()).await;
    stop(first).await;

    let second = node(dir.path(), &server, |l| l).await;
    agents_ready(&second, 3).await;
    let agents = second.agents().await.unwrap();
    let restored = agents.iter().find(|a| a.name == "assistant").expect("restored from the store");
    assert!(restored.workers > 0);
    let answer = run(&second, "assistant", json!("hello")).await;
    assert_eq!(
        answer.output.as_deref(),
        Some(&json!("hello")),
        "the scripted model echoes: {:?}",
        answer.error
    );
    stop(second).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cost_cap_counts_the_models_prices() {
    let dir = tempfile::tempdir().unwrap();
    let server = ScriptedServer::start().await.unwrap();
    // One cost unit per prompt token: the scripted server counts words.
    let price = json!({"llama3.1": {"price": {"input_per_mtok": 1_000_000.0, "output_per_mtok": 0.0}}});
    let handle = node(dir.path(), &server, |l| l.set("models.providers.oa.models", price)).await;
    eventually(Duration::from_secs(10), "models discovered", || async {
        handle.models().models().await.unwrap().iter().any(|m| m.info.id == "llama3.1")
    })
    .await;
    let mut llm = LlmSpec::new("llama3.1");
    llm.tools = vec![agent_tool("lookup")];
    llm.max_cost = Some(3.0);
    register(&handle, "frugal", llm).await;
    for i in 0..3 {
        server.script.push(Answer::ToolCalls(vec![call(&format!("c{i}"), "lookup", json!({"q": i}))]));
    }
    let done = run(&handle, "frugal", json!("one two")).await;
    assert_eq!(done.state, TaskState::Failed);
    let error = done.error.unwrap();
    assert!(error.contains("cost cap") && error.contains("llm.max_cost"), "{error}");
    assert_eq!(server.script.requests().len(), 2, "2 + 2 words cost 4 > 3: no third call");
    stop(handle).await;
}
