//! Run with: cargo run --example embed
//!
//! Mark-1 embedded in a Rust program: a native agent, a task submitted and awaited, a
//! capability-routed task, the live actor tree, and an ordered shutdown.

use std::time::Duration;

use mark1::{Agent, AgentError, AgentSpec, Node, TaskContext, TaskRequest};
use serde_json::{json, Value};

/// A native agent: upper-cases `input.text`.
struct Shout;

impl Agent for Shout {
    async fn handle(&self, ctx: TaskContext, input: Value) -> Result<Value, AgentError> {
        let text = input["text"].as_str().ok_or_else(|| AgentError::failed("input.text must be a string"))?;
        ctx.report_progress(json!({"chars": text.len()}));
        Ok(json!({"text": text.to_uppercase(), "attempt": ctx.attempt}))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    mark1::telemetry::init(mark1::telemetry::LogFormat::Text);
    let node = Node::builder()
        .agent(AgentSpec::native("shout").capability("text.shout").pool_size(1, 4), Shout)
        .build()
        .await?;
    let handle = node.start().await?;

    let id = handle.submit(TaskRequest::to_agent("shout", json!({"text": "hello"}))).await?;
    let done = handle.wait(id, Duration::from_secs(5)).await?;
    println!("task {id}: {:?} -> {}", done.state, done.output.unwrap_or_default());

    let by_capability = TaskRequest::to_capabilities(["text.shout"], json!({"text": "routed by capability"}));
    let done = handle.run(by_capability, Duration::from_secs(5)).await?;
    println!(
        "capability task ran on '{}': {}",
        done.agent.unwrap_or_default(),
        done.output.unwrap_or_default()
    );

    let bad = handle.run(TaskRequest::to_agent("shout", json!({"text": 42})), Duration::from_secs(5)).await?;
    println!("bad input: {:?}: {}", bad.state, bad.error.unwrap_or_default());

    println!("{}", serde_json::to_string_pretty(&handle.tree())?);
    let report = handle.shutdown(Duration::from_secs(10)).await;
    println!("shutdown: {report:?}");
    Ok(())
}
