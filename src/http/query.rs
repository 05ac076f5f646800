//! The query-string extractor of every route.
//!
//! axum's own `Query` deserializes through `serde_path_to_error`, which copies each key
//! it meets into a path: allocations on every request for the sake of an error message.
//! This one parses plainly and only on failure parses again, with the path, so a bad
//! parameter is still named (`wait: …`, `kinds: unknown variant …`).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// A request's query string as `T`.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let text = parts.uri.query().unwrap_or_default();
        serde_urlencoded::from_str(text).map(Query).map_err(|_| named_error::<T>(text))
    }
}

/// The error of `text` as `T`, naming the parameter at fault.
fn named_error<T: DeserializeOwned>(text: &str) -> ApiError {
    let parsed = serde_path_to_error::deserialize::<_, T>(serde_urlencoded::Deserializer::new(
        form_urlencoded::parse(text.as_bytes()),
    ));
    let detail = match parsed {
        Err(e) if e.path().iter().next().is_some() => format!("{}: {}", e.path(), e.inner()),
        Err(e) => e.inner().to_string(),
        // Unreachable: the same text failed a moment ago.
        Ok(_) => "the query string could not be read".into(),
    };
    ApiError::BadRequest(format!("invalid query string: {detail}"))
}

#[cfg(test)]
mod tests {
    use axum::http::Request;
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Params {
        wait: Option<String>,
        limit: Option<u32>,
    }

    async fn extract(uri: &str) -> Result<Params, String> {
        let (mut parts, ()) = Request::builder().uri(uri).body(()).unwrap().into_parts();
        match Query::<Params>::from_request_parts(&mut parts, &()).await {
            Ok(Query(params)) => Ok(params),
            Err(ApiError::BadRequest(detail)) => Err(detail),
            Err(other) => panic!("not a bad request: {other:?}"),
        }
    }

    #[tokio::test]
    async fn parameters_are_read_and_a_bad_one_is_named() {
        let ok = extract("/v1/tasks?wait=5s&limit=3").await.unwrap();
        assert_eq!(ok, Params { wait: Some("5s".into()), limit: Some(3) });
        assert_eq!(extract("/v1/tasks").await.unwrap(), Params { wait: None, limit: None });
        let bad = extract("/v1/tasks?limit=many").await.unwrap_err();
        assert!(bad.starts_with("invalid query string: limit: "), "{bad}");
        let unknown = extract("/v1/tasks?wiat=5s").await.unwrap_err();
        assert!(unknown.contains("unknown field `wiat`"), "{unknown}");
    }
}
