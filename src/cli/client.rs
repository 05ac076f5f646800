//! The command line's client of a running node (DESIGN §13.8): base URL and API key from
//! `--url`/`--api-key` or `MARK1_URL`/`MARK1_API_KEY`, problem documents turned into
//! [`CliError`]s with the exit codes of §13.8.

use std::time::Duration;

use clap::Args;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::{exit, CliError};

/// Where the node is and who is asking. Global, so they may follow the subcommand.
#[derive(Args, Debug, Clone)]
pub struct RemoteArgs {
    /// The node's base URL.
    #[arg(
        long,
        global = true,
        env = "MARK1_URL",
        default_value = "http://127.0.0.1:8080",
        value_name = "URL"
    )]
    pub url: String,
    /// An API key (`mk1_…`) or a JWT, sent as `Authorization: Bearer`.
    #[arg(long, global = true, env = "MARK1_API_KEY", hide_env_values = true, value_name = "KEY")]
    pub api_key: Option<String>,
}

/// Requests that are not waiting for a task get this long; a request that waits gets its
/// wait on top.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub type WebSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One request's parts besides its method and path.
#[derive(Default)]
pub struct Request {
    pub query: Vec<(&'static str, String)>,
    pub body: Option<Value>,
    /// A body sent as it is, with its content type (a definition file's YAML text);
    /// instead of `body`.
    pub text: Option<(&'static str, String)>,
    pub headers: Vec<(&'static str, String)>,
    /// Added to the request timeout: the server holds the answer this long.
    pub wait: Option<Duration>,
}

#[derive(Clone)]
pub struct Remote {
    base: Url,
    key: Option<String>,
    http: reqwest::Client,
}

impl Remote {
    pub fn new(args: &RemoteArgs) -> Result<Remote, CliError> {
        let usage = |message: String| CliError { code: exit::USAGE, message };
        let base =
            Url::parse(&args.url).map_err(|e| usage(format!("--url {:?} is not a URL: {e}", args.url)))?;
        match base.scheme() {
            "http" => {}
            // The WebSocket client (events watch, tree) has no TLS yet, so the commands
            // refuse https alike rather than half work.
            "https" => {
                return Err(usage(
                    "https URLs are not supported by the mark1 client yet; reach the node over http:// \
                     (for example on 127.0.0.1, or through a TLS-terminating proxy)"
                        .into(),
                ))
            }
            other => return Err(usage(format!("--url: unsupported scheme {other:?}; use http://HOST:PORT"))),
        }
        let http = reqwest::Client::builder().connect_timeout(CONNECT_TIMEOUT).build().map_err(|e| {
            CliError { code: exit::FAILURE, message: format!("cannot build the HTTP client: {e}") }
        })?;
        Ok(Remote { base, key: args.api_key.clone().filter(|k| !k.is_empty()), http })
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    /// `segments` are percent-encoded one by one, so an id or a name can never change the path.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut().expect("an http URL has a path").pop_if_empty().extend(segments);
        url
    }

    pub async fn get(
        &self,
        segments: &[&str],
        query: Vec<(&'static str, String)>,
    ) -> Result<Value, CliError> {
        Ok(self.send(Method::GET, segments, Request { query, ..Request::default() }).await?.1)
    }

    /// A paged listing: the `items` of the first page, or of every page with `all`
    /// (following `next` through the `cursor` query parameter), and the last `next`.
    pub async fn listing(
        &self,
        segments: &[&str],
        query: Vec<(&'static str, String)>,
        items: &str,
        cursor: &'static str,
        all: bool,
    ) -> Result<(Vec<Value>, Value), CliError> {
        let mut listed = Vec::new();
        let mut page = self.get(segments, query.clone()).await?;
        loop {
            listed.extend(page[items].as_array().cloned().unwrap_or_default());
            let Some(next) = page["next"].as_str().filter(|_| all).map(str::to_string) else { break };
            let mut query = query.clone();
            query.push((cursor, next));
            page = self.get(segments, query).await?;
        }
        Ok((listed, page["next"].clone()))
    }

    /// Sends a request; answers the status and the JSON body (`Null` when empty).
    pub async fn send(
        &self,
        method: Method,
        segments: &[&str],
        request: Request,
    ) -> Result<(StatusCode, Value), CliError> {
        let (status, bytes) = self.exchange(method, segments, request).await?;
        if !status.is_success() {
            return Err(refusal(status, &bytes));
        }
        Ok((status, self.json(segments, status, &bytes)?))
    }

    /// Sends a request; answers the status and the body whatever the status, for callers
    /// that read a refusal's problem document themselves. Only transport failures are
    /// errors here.
    pub async fn exchange(
        &self,
        method: Method,
        segments: &[&str],
        request: Request,
    ) -> Result<(StatusCode, Vec<u8>), CliError> {
        let url = self.url(segments);
        let mut builder = self
            .http
            .request(method, url)
            .query(&request.query)
            .headers(self.auth_headers()?)
            .timeout(REQUEST_TIMEOUT + request.wait.unwrap_or_default());
        for (name, value) in request.headers {
            builder = builder.header(name, value);
        }
        if let Some(body) = &request.body {
            builder = builder.json(body);
        } else if let Some((content_type, text)) = request.text {
            builder = builder.header(CONTENT_TYPE, content_type).body(text);
        }
        let response = builder.send().await.map_err(|e| transport_error(&self.base, e))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| transport_error(&self.base, e))?;
        Ok((status, bytes.to_vec()))
    }

    /// A successful answer's body as JSON (`Null` when empty).
    pub fn json(&self, segments: &[&str], status: StatusCode, bytes: &[u8]) -> Result<Value, CliError> {
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(bytes).map_err(|e| CliError {
            code: exit::FAILURE,
            message: format!("{} answered {status} with a body that is not JSON: {e}", self.url(segments)),
        })
    }

    fn auth_headers(&self) -> Result<HeaderMap, CliError> {
        let mut headers = HeaderMap::new();
        if let Some(key) = &self.key {
            let value = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| CliError {
                code: exit::USAGE,
                message: "--api-key / MARK1_API_KEY holds characters a header cannot carry".into(),
            })?;
            headers.insert(AUTHORIZATION, value);
        }
        Ok(headers)
    }

    /// Opens a WebSocket on `segments` (same authentication as every request); a refused
    /// upgrade is mapped like any HTTP error.
    pub async fn websocket(
        &self,
        segments: &[&str],
        query: &[(&'static str, String)],
    ) -> Result<WebSocket, CliError> {
        let mut url = self.url(segments);
        url.query_pairs_mut().extend_pairs(query);
        url.set_scheme("ws").expect("http and ws URLs have the same shape");
        let mut request = url.as_str().into_client_request().map_err(|e| CliError {
            code: exit::USAGE,
            message: format!("{url} is not a WebSocket URL: {e}"),
        })?;
        request.headers_mut().extend(self.auth_headers()?);
        let connect = tokio_tungstenite::connect_async(request);
        match tokio::time::timeout(REQUEST_TIMEOUT, connect).await {
            Ok(Ok((socket, _))) => Ok(socket),
            Ok(Err(tungstenite::Error::Http(response))) => {
                let status =
                    StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
                Err(refusal(status, response.body().as_deref().unwrap_or_default()))
            }
            Ok(Err(tungstenite::Error::Io(e))) => Err(unreachable(&self.base, &e.to_string())),
            Ok(Err(e)) => Err(CliError { code: exit::UNAVAILABLE, message: format!("WebSocket {url}: {e}") }),
            Err(_) => Err(unreachable(&self.base, "no answer in time")),
        }
    }

    /// Opens a WebSocket again after one that worked dropped: retries while the node is
    /// unreachable, with backoff, for `give_up` (or until the caller stops waiting).
    pub async fn reconnect(
        &self,
        segments: &[&str],
        query: &[(&'static str, String)],
        give_up: Option<Duration>,
    ) -> Result<WebSocket, CliError> {
        let until = give_up.map(|d| std::time::Instant::now() + d);
        let mut delay = Duration::from_millis(100);
        loop {
            tokio::time::sleep(delay).await;
            match self.websocket(segments, query).await {
                Ok(socket) => return Ok(socket),
                Err(e)
                    if e.code == exit::UNAVAILABLE && until.is_none_or(|u| std::time::Instant::now() < u) =>
                {
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

fn unreachable(base: &Url, why: &str) -> CliError {
    CliError { code: exit::UNAVAILABLE, message: format!("cannot reach the node at {base}: {why}") }
}

fn transport_error(base: &Url, e: reqwest::Error) -> CliError {
    if e.is_timeout() {
        return unreachable(base, "it did not answer in time");
    }
    // reqwest's own text stops at "error sending request"; the innermost cause says why
    // ("Connection refused").
    let mut cause: &dyn std::error::Error = &e;
    while let Some(source) = cause.source() {
        cause = source;
    }
    unreachable(base, &cause.to_string())
}

/// The exit code of an HTTP status (DESIGN §13.8).
pub fn exit_code(status: StatusCode) -> u8 {
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => exit::UNAUTHORIZED,
        StatusCode::NOT_FOUND => exit::NOT_FOUND,
        StatusCode::TOO_MANY_REQUESTS
        | StatusCode::SERVICE_UNAVAILABLE
        | StatusCode::GATEWAY_TIMEOUT
        | StatusCode::BAD_GATEWAY => exit::UNAVAILABLE,
        // What the user typed was refused: a bad flag value, a body the node rejects.
        StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE | StatusCode::UNPROCESSABLE_ENTITY => {
            exit::USAGE
        }
        _ => exit::FAILURE,
    }
}

/// A `application/problem+json` answer (or any other error body) as a [`CliError`].
pub fn refusal(status: StatusCode, body: &[u8]) -> CliError {
    let detail = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("detail").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string());
    let mut message = format!("{status}: {detail}");
    if status == StatusCode::UNAUTHORIZED {
        message.push_str(" (pass --api-key or set MARK1_API_KEY; `mark1 keys create` makes one)");
    }
    CliError { code: exit_code(status), message }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(url: &str) -> Result<Remote, CliError> {
        Remote::new(&RemoteArgs { url: url.into(), api_key: Some("k".into()) })
    }

    #[test]
    fn statuses_map_to_the_exit_codes_of_the_design() {
        let cases =
            [(401, 4), (403, 4), (404, 3), (429, 5), (503, 5), (504, 5), (400, 2), (409, 1), (500, 1)];
        for (status, code) in cases {
            assert_eq!(exit_code(StatusCode::from_u16(status).unwrap()), code, "{status}");
        }
    }

    #[test]
    fn a_problem_document_gives_its_detail() {
        let body = br#"{"type":"urn:mark1:not_found","title":"Not Found","status":404,"detail":"no task x"}"#;
        let e = refusal(StatusCode::NOT_FOUND, body);
        assert_eq!((e.code, e.message.as_str()), (3, "404 Not Found: no task x"));
        let e = refusal(StatusCode::BAD_GATEWAY, b"upstream down\n");
        assert_eq!((e.code, e.message.as_str()), (5, "502 Bad Gateway: upstream down"));
        assert!(refusal(StatusCode::UNAUTHORIZED, b"{}").message.contains("MARK1_API_KEY"));
    }

    #[test]
    fn path_segments_are_encoded_and_the_base_path_kept() {
        let r = remote("http://h:1/prefix/").unwrap();
        assert_eq!(r.url(&["v1", "tasks", "a/b?c"]).as_str(), "http://h:1/prefix/v1/tasks/a%2Fb%3Fc");
        let r = remote("http://h:1").unwrap();
        assert_eq!(r.url(&["v1", "whoami"]).as_str(), "http://h:1/v1/whoami");
    }

    #[test]
    fn bad_urls_are_usage_errors() {
        for url in ["not a url", "ftp://h/", "https://h/"] {
            assert_eq!(remote(url).err().map(|e| e.code), Some(exit::USAGE), "{url}");
        }
    }
}
