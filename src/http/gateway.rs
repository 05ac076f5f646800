//! The model gateways: OpenAI-compatible under `/openai/v1/…` and Ollama-compatible under
//! `/ollama/api/…`. An external agent whose base URL points here has its model calls
//! routed, metered and budgeted by the router without a code change. Authentication is
//! the edge's (an API key as the client's "API key", sent as `Authorization: Bearer`);
//! errors come back in each protocol's own error shape so its SDKs can read them.

pub mod ollama;
pub mod openai;

use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use mark1_actors::domain::Permission;
use mark1_actors::models::CallContext;
use mark1_actors::ports::model::ModelError;

use super::auth::Caller;
use super::error::ApiError;
use super::routes::models::model_error;

/// Marks an error response in a gateway protocol's own shape, which the edge's
/// problem-document rewriting leaves alone.
#[derive(Clone, Copy, Debug)]
pub struct ProtocolError;

/// A refusal in protocol-neutral terms: the status and the message.
pub struct Refusal {
    pub status: StatusCode,
    pub message: String,
}

impl From<ApiError> for Refusal {
    fn from(error: ApiError) -> Self {
        let (status, _) = error.code();
        Refusal { status, message: error.to_string() }
    }
}

impl From<ModelError> for Refusal {
    fn from(error: ModelError) -> Self {
        Refusal::from(model_error(error))
    }
}

impl Refusal {
    pub fn bad_request(message: String) -> Self {
        Refusal { status: StatusCode::BAD_REQUEST, message }
    }
}

/// Checks the caller may use the gateways; their calls are billed to their namespace
/// (an admin's, which spans all, to `default`).
pub fn context_of(caller: &Caller) -> Result<CallContext, Refusal> {
    caller.require(Permission::UseModels, "use the model gateways")?;
    let namespace =
        caller.principal.namespace.clone().unwrap_or_else(|| mark1_actors::DEFAULT_NAMESPACE.into());
    Ok(CallContext::namespace(namespace))
}

pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
