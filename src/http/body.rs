//! Strict request bodies: unknown fields are refused where a typo would silently change
//! meaning, and every parse error names what is wrong. Handlers check the caller's
//! permission first and parse the body after, so a forbidden caller learns nothing
//! about the body's shape.

use axum::body::Bytes;
use serde::de::DeserializeOwned;

use super::error::ApiError;

pub fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    if body.is_empty() {
        return Err(ApiError::BadRequest("the request needs a JSON body".into()));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}

/// A duration such as `30s` or `1m 30s`, for query parameters and bodies.
pub fn duration(what: &str, text: &str) -> Result<std::time::Duration, ApiError> {
    humantime::parse_duration(text)
        .map_err(|e| ApiError::BadRequest(format!("{what}: {text:?} is not a duration such as 30s ({e})")))
}

/// A `?wait=` duration, at most the node's `server.max_wait`.
pub fn wait(text: Option<&str>, max: std::time::Duration) -> Result<Option<std::time::Duration>, ApiError> {
    let Some(text) = text else { return Ok(None) };
    let wait = duration("wait", text)?;
    if wait > max {
        return Err(ApiError::BadRequest(format!(
            "wait: {text} is longer than this node's server.max_wait ({})",
            humantime::format_duration(max)
        )));
    }
    Ok(Some(wait))
}
