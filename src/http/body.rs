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
