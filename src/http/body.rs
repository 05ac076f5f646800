//! Strict request bodies: unknown fields are refused where a typo would silently change
//! meaning, and every parse error names what is wrong. Handlers check the caller's
//! permission first and parse the body after, so a forbidden caller learns nothing
//! about the body's shape.

use std::time::{Duration, SystemTime};

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
pub fn duration(what: &str, text: &str) -> Result<Duration, ApiError> {
    humantime::parse_duration(text)
        .map_err(|e| ApiError::BadRequest(format!("{what}: {text:?} is not a duration such as 30s ({e})")))
}

/// A `?wait=` duration, at most the node's `server.max_wait`.
pub fn wait(text: Option<&str>, max: Duration) -> Result<Option<Duration>, ApiError> {
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

/// An RFC 3339 time such as `2025-01-31T09:00:00Z` or `2025-01-31T11:00:00+02:00`, for
/// query parameters.
pub fn time(what: &str, text: &str) -> Result<SystemTime, ApiError> {
    let bad = |why: &str| {
        ApiError::BadRequest(format!(
            "{what}: {text:?} is not an RFC 3339 time such as 2025-01-31T09:00:00Z ({why}; in a query \
             string, `+` is written %2B)"
        ))
    };
    // humantime reads UTC only: an offset is split off here and applied after.
    let (utc, east_of_utc) = split_offset(text);
    let local = humantime::parse_rfc3339_weak(utc).map_err(|e| bad(&e.to_string()))?;
    let shifted = if east_of_utc >= 0 {
        local.checked_sub(Duration::from_secs(east_of_utc.unsigned_abs()))
    } else {
        local.checked_add(Duration::from_secs(east_of_utc.unsigned_abs()))
    };
    shifted.ok_or_else(|| bad("out of range"))
}

/// The text before a trailing `+HH:MM`/`-HH:MM`, and that offset in seconds east of UTC
/// (0 when there is none).
fn split_offset(text: &str) -> (&str, i64) {
    let b = text.as_bytes();
    let Some(tail) = b.len().checked_sub(6).map(|at| &b[at..]) else { return (text, 0) };
    let digits = |i: usize, j: usize| -> Option<i64> {
        let (x, y) = (char::from(tail[i]).to_digit(10)?, char::from(tail[j]).to_digit(10)?);
        Some(i64::from(x * 10 + y))
    };
    let sign = match tail[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return (text, 0),
    };
    match (digits(1, 2), tail[3], digits(4, 5)) {
        // The sign is ASCII, so the split falls on a character boundary.
        (Some(hours), b':', Some(minutes)) => (&text[..b.len() - 6], sign * (hours * 3600 + minutes * 60)),
        _ => (text, 0),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn times_take_utc_or_an_offset_and_name_the_parameter_when_wrong() {
        let utc = super::time("since", "2025-01-31T09:00:00Z").unwrap();
        assert_eq!(utc, UNIX_EPOCH + Duration::from_secs(1_738_314_000));
        assert_eq!(super::time("since", "2025-01-31T11:00:00+02:00").unwrap(), utc);
        assert_eq!(super::time("since", "2025-01-31T04:30:00-04:30").unwrap(), utc);
        assert_eq!(
            super::time("since", "2025-01-31T09:00:00.250Z").unwrap(),
            utc + Duration::from_millis(250)
        );
        for wrong in ["yesterday", "2025-01-31T11:00:00 02:00", "2025-13-01T00:00:00Z", "ééééééé"] {
            let error = super::time("until", wrong).unwrap_err().to_string();
            assert!(error.starts_with("until: ") && error.contains("RFC 3339"), "{wrong}: {error}");
        }
    }
}
