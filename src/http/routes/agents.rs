//! `/v1/agents`: list, get, register (process agents), resize a pool, remove (drains).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use mark1_actors::domain::{AuditOutcome, Permission};
use mark1_actors::orchestrator::{AgentHealth, AgentStatus};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::config::AgentConfig;
use crate::http::audit::audit;
use crate::http::auth::Caller;
use crate::http::body;
use crate::http::error::{ApiError, Problem};
use crate::http::state::EdgeState;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AgentView {
    pub namespace: String,
    pub name: String,
    pub capabilities: Vec<String>,
    /// `ready`, or `failed` when its pool gave up (see `failure`).
    pub health: String,
    /// Why the pool failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    pub workers: usize,
    pub busy: usize,
    pub queued: usize,
    pub latency_ewma_us: f64,
    pub succeeded: u64,
    pub failed: u64,
}

impl From<AgentStatus> for AgentView {
    fn from(a: AgentStatus) -> Self {
        let (health, failure) = match a.health {
            AgentHealth::Ready => ("ready", None),
            AgentHealth::Failed(reason) => ("failed", Some(reason)),
        };
        AgentView {
            namespace: a.namespace,
            name: a.name,
            capabilities: a.capabilities,
            health: health.to_string(),
            failure,
            workers: a.workers,
            busy: a.busy,
            queued: a.queued,
            latency_ewma_us: a.latency_ewma_us,
            succeeded: a.succeeded,
            failed: a.failed,
        }
    }
}

/// Agents of the caller's namespaces.
#[utoipa::path(get, path = "/v1/agents", tag = "agents", responses((status = 200, body = Vec<AgentView>)))]
pub async fn list(
    State(edge): State<Arc<EdgeState>>,
    caller: Caller,
) -> Result<Json<Vec<AgentView>>, ApiError> {
    caller.require(Permission::Read, "read agents")?;
    let agents = edge.node.agents().await?;
    Ok(Json(agents.into_iter().filter(|a| caller.reaches(&a.namespace)).map(AgentView::from).collect()))
}

async fn visible_agent(
    edge: &EdgeState,
    caller: &Caller,
    namespace: &str,
    name: &str,
) -> Result<AgentStatus, ApiError> {
    let agents = edge.node.agents().await?;
    agents
        .into_iter()
        .find(|a| a.namespace == namespace && a.name == name && caller.reaches(namespace))
        .ok_or_else(|| ApiError::NotFound(format!("no agent {namespace}/{name}")))
}

#[utoipa::path(get, path = "/v1/agents/{namespace}/{name}", tag = "agents",
    params(("namespace" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = AgentView), (status = 404, body = Problem)))]
pub async fn get(
    State(edge): State<Arc<EdgeState>>,
    caller: Caller,
    Path((namespace, name)): Path<(String, String)>,
) -> Result<Json<AgentView>, ApiError> {
    caller.require(Permission::Read, "read agents")?;
    Ok(Json(visible_agent(&edge, &caller, &namespace, &name).await?.into()))
}

/// Registers a process or LLM agent: the keys of an `[agents.<name>]` table of
/// config.toml plus `name`. Operators and admins register LLM agents (`runtime: "llm"`);
/// only admins register process agents, and only with commands under
/// `process.allowed_dirs`.
#[utoipa::path(post, path = "/v1/agents", tag = "agents",
    request_body(content = Object, description = "`name` plus the keys of an [agents.<name>] config table"),
    responses((status = 201, body = AgentView), (status = 400, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub async fn register(
    State(edge): State<Arc<EdgeState>>,
    caller: Caller,
    bytes: Bytes,
) -> Result<(StatusCode, Json<AgentView>), ApiError> {
    // Authorization comes before the body is validated: the runtime alone decides which
    // permission applies (a process agent runs a command on the node).
    caller.require(Permission::ManageAgents, "register agents")?;
    if declared_runtime(&bytes).as_deref() != Some("llm") {
        caller.require(Permission::ManageProcessAgents, "register process agents")?;
    }
    let mut fields: serde_json::Map<String, Value> = body::parse(&bytes)?;
    let name = match fields.remove("name") {
        Some(Value::String(name)) => name,
        _ => return Err(ApiError::BadRequest("name: required, a string".into())),
    };
    let agent: AgentConfig = serde_json::from_value(Value::Object(fields))
        .map_err(|e| ApiError::BadRequest(format!("invalid agent: {e}")))?;
    caller.namespace(Some(&agent.namespace))?;
    let spec =
        edge.node.config().agent_spec_from(&name, agent).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if let Some(reason) = reaches_the_node(&spec) {
        caller.require(Permission::ManageProcessAgents, reason)?;
    }
    let (namespace, name) = (spec.namespace.clone(), spec.name.clone());
    let data = json!({"runtime": spec.runtime.kind(), "command": command_of(&spec)});
    let outcome = edge.node.register_declared_agent(spec).await;
    let result = if outcome.is_ok() { AuditOutcome::Success } else { AuditOutcome::Failure };
    audit(
        &edge,
        &caller,
        "agent.register",
        Some(&namespace),
        Some(&format!("agent:{namespace}/{name}")),
        result,
        data,
    )
    .await;
    outcome?;
    Ok((StatusCode::CREATED, Json(visible_agent(&edge, &caller, &namespace, &name).await?.into())))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResizePool {
    pub min: usize,
    pub max: usize,
}

/// Changes the pool's size bounds; it grows or shrinks to fit.
#[utoipa::path(patch, path = "/v1/agents/{namespace}/{name}", tag = "agents",
    params(("namespace" = String, Path), ("name" = String, Path)), request_body = ResizePool,
    responses((status = 200, body = AgentView), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn resize(
    State(edge): State<Arc<EdgeState>>,
    caller: Caller,
    Path((namespace, name)): Path<(String, String)>,
    bytes: Bytes,
) -> Result<Json<AgentView>, ApiError> {
    caller.require(Permission::ManageAgents, "change agents")?;
    let size: ResizePool = body::parse(&bytes)?;
    visible_agent(&edge, &caller, &namespace, &name).await?;
    let outcome = edge.node.resize_agent(&namespace, &name, size.min, size.max).await;
    let result = if outcome.is_ok() { AuditOutcome::Success } else { AuditOutcome::Failure };
    let data = json!({"min": size.min, "max": size.max});
    audit(
        &edge,
        &caller,
        "agent.resize",
        Some(&namespace),
        Some(&format!("agent:{namespace}/{name}")),
        result,
        data,
    )
    .await;
    outcome?;
    Ok(Json(visible_agent(&edge, &caller, &namespace, &name).await?.into()))
}

/// Removes an agent; its pool finishes the work it holds first.
#[utoipa::path(delete, path = "/v1/agents/{namespace}/{name}", tag = "agents",
    params(("namespace" = String, Path), ("name" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn remove(
    State(edge): State<Arc<EdgeState>>,
    caller: Caller,
    Path((namespace, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    caller.require(Permission::ManageAgents, "remove agents")?;
    visible_agent(&edge, &caller, &namespace, &name).await?;
    let outcome = edge.node.remove_agent(&namespace, &name).await;
    let result = if outcome.is_ok() { AuditOutcome::Success } else { AuditOutcome::Failure };
    audit(
        &edge,
        &caller,
        "agent.remove",
        Some(&namespace),
        Some(&format!("agent:{namespace}/{name}")),
        result,
        Value::Null,
    )
    .await;
    outcome?;
    Ok(StatusCode::NO_CONTENT)
}

/// The `runtime` a registration body asks for; absent means `process`, the default.
fn declared_runtime(bytes: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Runtime {
        #[serde(default = "process")]
        runtime: String,
    }
    fn process() -> String {
        "process".into()
    }
    serde_json::from_slice::<Runtime>(bytes).ok().map(|r| r.runtime)
}

/// What in an LLM agent reaches past its namespace into the node, and so is for admins
/// as process agents are: an HTTP tool allowed private addresses (the node's network,
/// cloud metadata, local model servers past the router), or MCP tools (node-wide
/// servers, a stdio one a command on the node).
fn reaches_the_node(spec: &mark1_actors::domain::AgentSpec) -> Option<&'static str> {
    use mark1_actors::domain::{RuntimeSpec, ToolDef};
    let RuntimeSpec::Llm(llm) = &spec.runtime else { return None };
    llm.tools.iter().find_map(|tool| match tool {
        ToolDef::Http { allow_private: true, .. } => Some("give an HTTP tool private addresses"),
        ToolDef::Mcp { .. } => Some("give an agent MCP tools"),
        _ => None,
    })
}

fn command_of(spec: &mark1_actors::domain::AgentSpec) -> Option<String> {
    match &spec.runtime {
        mark1_actors::domain::RuntimeSpec::Process(p) => Some(p.command.display().to_string()),
        _ => None,
    }
}
