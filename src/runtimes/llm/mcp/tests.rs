//! Against real MCP servers: rmcp's server in this process over streamable HTTP, and
//! examples/mcp_server.rs as a child process over stdio.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use mark1_actors::domain::TaskId;
use mark1_actors::ports::TaskContext;
use mark1_actors::testing::eventually;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{schemars, tool, tool_handler, tool_router, Json, ServerHandler};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::runtimes::llm::tools::{ToolCallContext, ToolError};

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct AddArgs {
    a: i64,
    b: i64,
}

#[derive(serde::Serialize, schemars::JsonSchema)]
struct Sum {
    sum: i64,
}

/// The server run in this process; counts the calls it saw cancelled.
#[derive(Clone)]
struct Calc {
    tool_router: ToolRouter<Self>,
    cancelled: Arc<AtomicU32>,
}

#[tool_router]
impl Calc {
    #[tool(description = "Adds two integers.")]
    fn add(&self, Parameters(AddArgs { a, b }): Parameters<AddArgs>) -> Json<Sum> {
        Json(Sum { sum: a + b })
    }

    #[tool(description = "Always fails.")]
    fn fail(&self) -> CallToolResult {
        CallToolResult::error(vec![ContentBlock::text("boom: this tool always fails")])
    }

    #[tool(description = "Waits until cancelled.")]
    async fn slow(&self, cancel: CancellationToken) -> String {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(60)) => "waited".into(),
            _ = cancel.cancelled() => {
                self.cancelled.fetch_add(1, Ordering::SeqCst);
                "cancelled".into()
            }
        }
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Calc {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

/// A [`Calc`] served over streamable HTTP on a free port until dropped.
struct HttpServer {
    url: String,
    cancelled: Arc<AtomicU32>,
    stop: CancellationToken,
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn http_server() -> HttpServer {
    let cancelled = Arc::new(AtomicU32::new(0));
    let stop = CancellationToken::new();
    let calc = Calc { tool_router: Calc::tool_router(), cancelled: cancelled.clone() };
    let service: StreamableHttpService<Calc, LocalSessionManager> = StreamableHttpService::new(
        move || Ok(calc.clone()),
        Default::default(),
        StreamableHttpServerConfig::default().with_cancellation_token(stop.child_token()),
    );
    let router = axum::Router::new().nest_service("/mcp", service);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let shutdown = stop.clone();
    tokio::spawn(async move {
        axum::serve(listener, router).with_graceful_shutdown(shutdown.cancelled_owned()).await
    });
    HttpServer { url, cancelled, stop }
}

/// examples/mcp_server.rs, built once per test run (cargo only relinks it when it
/// changed), so `cargo test --lib` needs no separate build step.
fn example_server() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let output = std::process::Command::new(cargo)
            .args(["build", "--quiet", "--example", "mcp_server", "--message-format=json"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stderr(std::process::Stdio::inherit())
            .output()
            .expect("cargo runs");
        assert!(output.status.success(), "cargo build --example mcp_server failed");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "mcp_server")
            .and_then(|m| m["executable"].as_str().map(PathBuf::from))
            .expect("cargo names the example's executable")
    })
    .clone()
}

fn http(url: &str) -> McpServerConfig {
    McpServerConfig { url: Some(url.into()), ..McpServerConfig::default() }
}

fn stdio() -> McpServerConfig {
    McpServerConfig { command: Some(example_server()), ..McpServerConfig::default() }
}

fn servers(list: impl IntoIterator<Item = (&'static str, McpServerConfig)>) -> McpServers {
    let servers = list.into_iter().map(|(name, server)| (name.to_string(), server)).collect();
    McpServers::from_config(&McpConfig { servers })
}

fn task() -> TaskContext {
    let task_id = TaskId::new();
    TaskContext {
        task_id,
        attempt: 1,
        idempotency_key: format!("{task_id}:1"),
        deadline: None,
        namespace: "default".into(),
        traceparent: None,
        submitter: None,
        cancel: CancellationToken::new(),
        progress: None,
        tasks: None,
    }
}

async fn call(tool: &Arc<dyn Tool>, task: &TaskContext, arguments: Value) -> Result<Value, ToolError> {
    tool.call(&ToolCallContext { task, step: 1 }, arguments).await
}

fn names(tools: &[Arc<dyn Tool>]) -> Vec<&str> {
    tools.iter().map(|t| t.spec().name.as_str()).collect()
}

fn named<'a>(tools: &'a [Arc<dyn Tool>], name: &str) -> &'a Arc<dyn Tool> {
    tools.iter().find(|t| t.spec().name == name).unwrap_or_else(|| panic!("no tool {name}"))
}

#[tokio::test]
async fn an_http_servers_tools_are_listed_and_called() {
    let server = http_server().await;
    let mcp = servers([("calc", http(&server.url))]);
    assert!(mcp.has("calc") && !mcp.has("other"));
    let tools = mcp.tools("calc", &[]).await.unwrap();
    assert_eq!(names(&tools), ["add", "fail", "slow"]);
    let add = named(&tools, "add");
    assert_eq!(add.spec().description, "Adds two integers.");
    assert_eq!(add.spec().parameters["properties"]["a"]["type"], "integer");

    let task = task();
    assert_eq!(call(add, &task, json!({"a": 2, "b": 3})).await.unwrap(), json!({"sum": 5}));
    // Arguments that break the tool's schema never reach the server.
    let refused = call(add, &task, json!({"a": "two", "b": 3})).await.unwrap_err();
    assert!(matches!(&refused, ToolError::Refused(m) if m.contains("at '/a'")), "{refused}");
    let failed = call(named(&tools, "fail"), &task, json!({})).await.unwrap_err();
    assert!(matches!(&failed, ToolError::Failed(m) if m == "boom: this tool always fails"), "{failed}");
}

#[tokio::test]
async fn only_picks_tools_and_unknown_names_are_errors() {
    let server = http_server().await;
    let mcp = servers([("calc", http(&server.url))]);
    let only = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    let tools = mcp.tools("calc", &only(&["slow", "add"])).await.unwrap();
    assert_eq!(names(&tools), ["add", "slow"], "in the server's order");

    let error = mcp.tools("calc", &only(&["add", "mul", "div"])).await.err().unwrap();
    assert!(matches!(&error, McpError::UnknownTools { missing, .. } if missing == &["mul", "div"]));
    assert_eq!(
        error.to_string(),
        "MCP server 'calc' has no tool named mul, div; its tools are: add, fail, slow"
    );
    let error = mcp.tools("files", &[]).await.err().unwrap();
    assert_eq!(error.to_string(), "no MCP server 'files' is configured (mcp.servers)");
}

#[tokio::test]
async fn a_server_that_is_down_is_unavailable_by_name() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let missing =
        McpServerConfig { command: Some("/nonexistent/mcp-server".into()), ..McpServerConfig::default() };
    let mcp = servers([("down", http(&format!("http://{closed}/mcp"))), ("gone", missing)]);
    match mcp.tools("down", &[]).await.err().unwrap() {
        McpError::Unavailable { server, cause } => assert!(server == "down" && !cause.is_empty(), "{cause}"),
        other => panic!("expected unavailable, got {other}"),
    }
    let error = mcp.tools("gone", &[]).await.err().unwrap();
    assert!(matches!(&error, McpError::Unavailable { server, .. } if server == "gone"));
    assert!(error.to_string().contains("cannot start /nonexistent/mcp-server"), "{error}");
}

#[tokio::test]
async fn cancelling_the_task_stops_a_slow_call_at_the_server_too() {
    let server = http_server().await;
    let mcp = servers([("calc", http(&server.url))]);
    let tools = mcp.tools("calc", &[]).await.unwrap();
    let task = task();
    let cancel = task.cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        cancel.cancel();
    });
    let start = Instant::now();
    let result = call(named(&tools, "slow"), &task, json!({})).await;
    assert!(matches!(result, Err(ToolError::Cancelled)), "{result:?}");
    assert!(start.elapsed() < Duration::from_secs(5), "returned at once: {:?}", start.elapsed());
    eventually("the server to see the cancellation", || server.cancelled.load(Ordering::SeqCst) == 1).await;
}

#[tokio::test]
async fn a_call_past_the_timeout_fails_naming_it() {
    let server = http_server().await;
    let config = McpServerConfig { timeout: Duration::from_millis(500), ..http(&server.url) };
    let mcp = servers([("calc", config)]);
    let tools = mcp.tools("calc", &["slow".to_string()]).await.unwrap();
    let error = call(&tools[0], &task(), json!({})).await.unwrap_err();
    assert!(
        matches!(&error, ToolError::Failed(m) if m.contains("did not answer within 500ms (mcp.servers.calc.timeout)")),
        "{error}"
    );
}

#[tokio::test]
async fn a_stdio_server_gets_its_environment_and_one_process_serves_all() {
    let config = McpServerConfig {
        env: [("GREETING".to_string(), "hello".to_string())].into(),
        env_allow: vec!["PATH".into()],
        ..stdio()
    };
    let mcp = servers([("demo", config)]);
    let (first, second) = tokio::join!(mcp.tools("demo", &[]), mcp.tools("demo", &[]));
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(names(&first), ["add", "env", "fail", "pid", "slow"]);
    let task = task();
    let env = named(&first, "env");
    assert_eq!(call(env, &task, json!({"name": "GREETING"})).await.unwrap(), json!("hello"));
    // The node's own variables stay out unless env_allow names them.
    let (node_var, _) =
        std::env::vars().find(|(name, _)| name != "PATH").expect("the test has some variable");
    assert_eq!(
        call(env, &task, json!({"name": node_var})).await.unwrap(),
        json!(format!("{node_var} is not set"))
    );
    let pid = call(named(&first, "pid"), &task, json!({})).await.unwrap();
    assert_eq!(call(named(&second, "pid"), &task, json!({})).await.unwrap(), pid, "one process");
}

#[tokio::test]
async fn a_stdio_server_that_died_is_started_again_on_the_next_call() {
    let mcp = servers([("demo", stdio())]);
    let tools = mcp.tools("demo", &[]).await.unwrap();
    let (task, pid_tool) = (task(), named(&tools, "pid"));
    let pid = call(pid_tool, &task, json!({})).await.unwrap();
    let raw: i32 = pid.as_str().unwrap().parse().unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), nix::sys::signal::Signal::SIGKILL).unwrap();
    let slot = &mcp.servers["demo"].client;
    eventually("the session to notice", || {
        slot.try_lock().is_ok_and(|c| c.as_ref().is_some_and(|c| c.is_transport_closed()))
    })
    .await;
    let again = call(pid_tool, &task, json!({})).await.unwrap();
    assert_ne!(again, pid, "a new process");
}

#[tokio::test]
async fn closing_the_servers_stops_the_child_while_tools_are_held() {
    let mcp = servers([("demo", stdio())]);
    let tools = mcp.tools("demo", &[]).await.unwrap();
    let pid = call(named(&tools, "pid"), &task(), json!({})).await.unwrap();
    let proc = PathBuf::from(format!("/proc/{}", pid.as_str().unwrap()));
    assert!(proc.exists());
    mcp.close().await;
    eventually("the child to exit", || !proc.exists()).await;
    drop(tools);
}

#[tokio::test]
async fn dropping_the_servers_stops_the_child() {
    let mcp = servers([("demo", stdio())]);
    let tools = mcp.tools("demo", &[]).await.unwrap();
    let pid = call(named(&tools, "pid"), &task(), json!({})).await.unwrap();
    let proc = PathBuf::from(format!("/proc/{}", pid.as_str().unwrap()));
    assert!(proc.exists());
    drop(tools);
    drop(mcp);
    // Closed stdin ends the server, and rmcp waits for it (no zombie left behind).
    eventually("the child to exit", || !proc.exists()).await;
}
