//! Changes to a run (DESIGN §5, §13.7): cancel, retry or skip a step, add steps, decide
//! an approval. Each is journaled by the run, and audited here with its outcome.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::Json;
use mark1_actors::domain::workflow::StepDef;
use mark1_actors::domain::{AuditOutcome, Permission};
use mark1_actors::workflows::RunChange;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::{visible_run, RunView};
use crate::http::audit::audit;
use crate::http::auth::Caller;
use crate::http::body;
use crate::http::error::{ApiError, Problem};
use crate::http::state::EdgeState;

/// Why a run is cancelled.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRun {
    pub reason: Option<String>,
}

/// A change to a run, named by `action`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum PatchRun {
    /// Cancels the run; steps in flight are cancelled.
    Cancel { reason: Option<String> },
    /// Runs a failed step again (its next attempt); a failed run runs again.
    RetryStep { step: String },
    /// Skips a step that has not started (or waits for approval), giving its output.
    SkipStep {
        step: String,
        #[schema(value_type = Option<Object>)]
        output: Option<Value>,
    },
    /// Adds steps to the running run, checked as a definition's steps are.
    AddSteps {
        #[schema(value_type = Vec<Object>)]
        steps: Vec<StepDef>,
    },
}

/// A decision on an approval step.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    pub approved: bool,
    /// What the step's output carries as `comment`.
    pub comment: Option<String>,
}

fn cancel_reason(reason: Option<String>) -> String {
    reason.unwrap_or_else(|| "cancelled through the API".into())
}

/// Applies `change` to the run `id` the caller may see, and audits it as `action`.
async fn change(
    edge: &EdgeState,
    caller: &Caller,
    id: &str,
    change: RunChange,
    action: &str,
    mut data: Value,
) -> Result<Json<RunView>, ApiError> {
    let run = visible_run(edge, caller, id).await?.record;
    let outcome = edge.node.change_run(run.id, change, &caller.principal.subject).await;
    let result = match &outcome {
        Ok(_) => AuditOutcome::Success,
        Err(e) => {
            data["error"] = json!(e.to_string());
            AuditOutcome::Failure
        }
    };
    let target = format!("run:{}", run.id);
    audit(edge, caller, action, Some(&run.namespace), Some(&target), result, data).await;
    Ok(Json(RunView::of(outcome?, caller)))
}

/// Cancels a run; answers with the run as it is then. The body is optional.
#[utoipa::path(post, path = "/v1/runs/{id}/cancel", tag = "runs", params(("id" = String, Path)),
    request_body(content = Option<CancelRun>),
    responses((status = 200, body = RunView), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn cancel(
    State(edge): State<Arc<EdgeState>>,
    caller: Caller,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Json<RunView>, ApiError> {
    caller.require(Permission::Submit, "cancel runs")?;
    let request: CancelRun = if bytes.is_empty() { CancelRun::default() } else { body::parse(&bytes)? };
    let reason = cancel_reason(request.reason);
    let data = json!({"reason": reason});
    change(&edge, &caller, &id, RunChange::Cancel { reason }, "run.cancel", data).await
}

/// Changes a running run: `{"action": "cancel", "reason"?}`, `{"action": "retry_step",
/// "step"}`, `{"action": "skip_step", "step", "output"?}` or `{"action": "add_steps",
/// "steps": [...]}`. `404` for an unknown step, `409` when the step's or the run's state
/// does not allow it, `400` with `errors` for added steps that break the rules (their
/// pointers index the run's definition with the steps appended).
#[utoipa::path(patch, path = "/v1/runs/{id}", tag = "runs", params(("id" = String, Path)), request_body = PatchRun,
    responses((status = 200, body = RunView), (status = 400, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem)))]
pub async fn patch(
    State(edge): State<Arc<EdgeState>>,
    caller: Caller,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Json<RunView>, ApiError> {
    caller.require(Permission::PatchRuns, "patch runs")?;
    let (run_change, action, data) = match body::parse(&bytes)? {
        PatchRun::Cancel { reason } => {
            let reason = cancel_reason(reason);
            let data = json!({"reason": reason});
            (RunChange::Cancel { reason }, "run.cancel", data)
        }
        PatchRun::RetryStep { step } => {
            let data = json!({"step": step});
            (RunChange::RetryStep { step }, "run.patch.retry_step", data)
        }
        PatchRun::SkipStep { step, output } => {
            let data = json!({"step": step});
            (RunChange::SkipStep { step, output: output.unwrap_or(Value::Null) }, "run.patch.skip_step", data)
        }
        PatchRun::AddSteps { steps } => {
            let data = json!({"steps": steps.iter().map(|s| s.id.as_str()).collect::<Vec<_>>()});
            (RunChange::AddSteps { steps }, "run.patch.add_steps", data)
        }
    };
    change(&edge, &caller, &id, run_change, action, data).await
}

/// Approves or rejects an approval step that waits. A rejection fails the step, and its
/// `on_error` applies.
#[utoipa::path(post, path = "/v1/runs/{id}/approvals/{step}", tag = "runs",
    params(("id" = String, Path), ("step" = String, Path)), request_body = Decision,
    responses((status = 200, body = RunView), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn decide(
    State(edge): State<Arc<EdgeState>>,
    caller: Caller,
    Path((id, step)): Path<(String, String)>,
    bytes: Bytes,
) -> Result<Json<RunView>, ApiError> {
    caller.require(Permission::PatchRuns, "approve or reject runs")?;
    let decision: Decision = body::parse(&bytes)?;
    let comment = decision.comment.unwrap_or_default();
    let action = if decision.approved { "run.approve" } else { "run.reject" };
    let data = json!({"step": step, "comment": comment});
    let decide = RunChange::Decide { step, approved: decision.approved, comment };
    change(&edge, &caller, &id, decide, action, data).await
}
