//! ollama-rs's errors as the port's [`ModelError`]s.
//!
//! ollama-rs turns an HTTP error answer into `OllamaError::Other(body)` and drops the
//! status, while the router needs it to tell the provider's faults (5xx, 408, 429) from
//! the request's. So the status is recovered from the body:
//!
//! - a body starting with a status, as Go's `404 page not found` or a proxy's
//!   `502 Bad Gateway` page, gives that status;
//! - otherwise the message (Ollama's `{"error": "…"}`, or the raw text) is matched
//!   against the phrases Ollama and the proxies in front of it use for each status:
//!   `not found` 404, `unauthorized` 401, `forbidden` 403, `too many requests` and
//!   `rate limit` 429, `server busy` and `unavailable` 503, `bad gateway` 502, runner
//!   crashes, `out of memory` and model load failures 500;
//! - an unmatched Ollama error body is a refused request (400); an unmatched body that
//!   is not Ollama's (empty, HTML) came from something in front of Ollama that failed
//!   (502).
//!
//! Connection failures are `Unavailable`, bodies that do not parse `InvalidResponse`.

use mark1_actors::ports::model::ModelError;
use ollama_rs::error::OllamaError;

use super::wire::ErrorBody;

pub(super) fn model_error(provider: &str, error: OllamaError) -> ModelError {
    let provider = provider.to_string();
    match error {
        OllamaError::ReqwestError(error) if error.is_connect() => {
            ModelError::Unavailable { provider, reason: format!("cannot connect: {}", chain(&error)) }
        }
        // Anything else reqwest reports happened after connecting: the answer broke off.
        OllamaError::ReqwestError(error) => ModelError::Unavailable { provider, reason: chain(&error) },
        OllamaError::JsonError(error) => ModelError::InvalidResponse { provider, reason: error.to_string() },
        OllamaError::Other(body) => rejection(provider, &body),
        OllamaError::InternalError(error) => rejection(provider, &error.message),
        // Only ollama-rs's own tool runner (the coordinator, unused here) raises these.
        OllamaError::ToolCallError(error) => ModelError::InvalidResponse { provider, reason: chain(&error) },
    }
}

/// A connection that broke off in the middle of a streamed answer.
pub(super) fn cut_short(provider: &str, detail: &str) -> ModelError {
    ModelError::Unavailable { provider: provider.into(), reason: format!("the answer broke off: {detail}") }
}

/// An error answer, whose status ollama-rs has dropped (see the module's comment).
fn rejection(provider: String, body: &str) -> ModelError {
    let (reason, from_ollama) = match serde_json::from_str::<ErrorBody>(body) {
        Ok(body) => (body.error, true),
        Err(_) => (body.trim().to_string(), false),
    };
    let status = status_of(&reason).unwrap_or(if from_ollama { 400 } else { 502 });
    ModelError::Rejected { provider, status, reason }
}

fn status_of(message: &str) -> Option<u16> {
    let leading = message.split(|c: char| !c.is_ascii_digit()).next().and_then(|n| n.parse::<u16>().ok());
    if let Some(status) = leading.filter(|s| (400..600).contains(s)) {
        return Some(status);
    }
    let message = message.to_lowercase();
    const PHRASES: &[(&str, u16)] = &[
        ("not found", 404),
        ("unauthorized", 401),
        ("forbidden", 403),
        ("too many requests", 429),
        ("rate limit", 429),
        ("server busy", 503),
        ("unavailable", 503),
        ("bad gateway", 502),
        ("runner", 500),
        ("out of memory", 500),
        ("failed to load", 500),
        ("error loading", 500),
        ("internal server error", 500),
    ];
    PHRASES.iter().find(|(phrase, _)| message.contains(phrase)).map(|(_, status)| *status)
}

/// An error with its causes: reqwest's own message ("error sending request") says little.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(body: &str) -> u16 {
        match rejection("p".into(), body) {
            ModelError::Rejected { status, .. } => status,
            other => panic!("not a rejection: {other:?}"),
        }
    }

    #[test]
    fn statuses_are_recovered_from_the_body() {
        assert_eq!(status(r#"{"error":"model \"x\" not found, try pulling it first"}"#), 404);
        assert_eq!(status(r#"{"error":"unauthorized"}"#), 401);
        let busy = r#"{"error":"server busy, please try again.  maximum pending requests exceeded"}"#;
        assert_eq!(status(busy), 503);
        assert_eq!(status(r#"{"error":"llama runner process has terminated: signal: killed"}"#), 500);
        assert_eq!(status(r#"{"error":"invalid options: num_predict"}"#), 400);
        assert_eq!(status("404 page not found"), 404);
        assert_eq!(status("<html><title>502 Bad Gateway</title></html>"), 502);
        assert_eq!(status(""), 502);
    }

    #[test]
    fn the_reason_is_ollamas_message() {
        let error = rejection("p".into(), r#"{"error":"invalid options"}"#);
        assert_eq!(
            error,
            ModelError::Rejected { provider: "p".into(), status: 400, reason: "invalid options".into() }
        );
        assert!(!error.is_provider_fault());
    }
}
