//! `/v1/models`: the models the router can reach, with each provider's health and
//! stats; refreshing discovery; budgets; usage ([`usage`]).

pub mod usage;

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use mark1_actors::domain::Permission;
use mark1_actors::ports::model::ModelError;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::http::auth::Caller;
use crate::http::error::{ApiError, Problem};
use crate::http::state::EdgeState;

/// Every routable model and every provider.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelCatalog {
    /// One entry per model per provider: `id`, `provider`, `context_length`,
    /// `capabilities`, `price`, the provider's `breaker` state and the model's `stats`.
    #[schema(value_type = Vec<Object>)]
    pub models: Vec<Value>,
    /// Each provider's breaker, calls in flight, latency and last discovery error.
    #[schema(value_type = Vec<Object>)]
    pub providers: Vec<Value>,
}

/// What a model-router failure means to an HTTP caller.
pub fn model_error(error: ModelError) -> ApiError {
    let message = error.to_string();
    match error {
        ModelError::UnknownModel(_) => ApiError::NotFound(message),
        ModelError::NotCapable { .. } => ApiError::BadRequest(message),
        ModelError::Rejected { status, .. } if (400..500).contains(&status) && status != 429 => {
            ApiError::BadRequest(message)
        }
        ModelError::Overloaded { .. } | ModelError::BudgetExhausted { .. } => {
            ApiError::TooManyRequests { message, retry_after: std::time::Duration::from_secs(1) }
        }
        ModelError::Timeout { .. } => ApiError::Timeout(message),
        _ => ApiError::Unavailable(message),
    }
}

async fn catalog(edge: &EdgeState, refresh: bool) -> Result<Json<ModelCatalog>, ApiError> {
    let router = edge.node.models();
    let models = if refresh { router.refresh().await } else { router.models().await }.map_err(model_error)?;
    let providers = router.providers().await.map_err(model_error)?;
    Ok(Json(ModelCatalog {
        models: models.iter().map(to_json).collect(),
        providers: providers.iter().map(to_json).collect(),
    }))
}

/// The models every provider serves, as discovered at start and every
/// `models.discovery_interval`, with config overrides applied.
#[utoipa::path(get, path = "/v1/models", tag = "models",
    responses((status = 200, body = ModelCatalog), (status = 401, body = Problem)))]
pub async fn list(
    State(edge): State<Arc<EdgeState>>,
    caller: Caller,
) -> Result<Json<ModelCatalog>, ApiError> {
    caller.require(Permission::Read, "list models")?;
    catalog(&edge, false).await
}

/// Re-reads every provider's model list now, then answers like `GET /v1/models`.
#[utoipa::path(post, path = "/v1/models/refresh", tag = "models",
    responses((status = 200, body = ModelCatalog), (status = 403, body = Problem)))]
pub async fn refresh(
    State(edge): State<Arc<EdgeState>>,
    caller: Caller,
) -> Result<Json<ModelCatalog>, ApiError> {
    caller.require(Permission::ManageAgents, "refresh the model catalog")?;
    catalog(&edge, true).await
}

/// Each namespace's budget for the current period: used, reserved by calls in flight,
/// and the limit (0: none). Non-admins see their own namespace only.
#[utoipa::path(get, path = "/v1/models/budgets", tag = "models",
    responses((status = 200, body = Vec<Object>), (status = 401, body = Problem)))]
pub async fn budgets(
    State(edge): State<Arc<EdgeState>>,
    caller: Caller,
) -> Result<Json<Vec<Value>>, ApiError> {
    caller.require(Permission::Read, "read model budgets")?;
    let budgets = edge.node.models().budgets().await.map_err(model_error)?;
    Ok(Json(
        budgets.into_iter().filter(|b| caller.principal.reaches(&b.namespace)).map(|b| to_json(&b)).collect(),
    ))
}

fn to_json(value: &impl Serialize) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}
