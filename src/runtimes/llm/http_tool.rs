//! HTTP tools: an endpoint the model may call, behind a host allow-list and an address
//! policy. A model's arguments fill the URL template, so the rendered URL is checked
//! before anything is sent, every address a host name resolves to is checked when the
//! connection is made (no DNS rebinding past the check), and so is every redirect.

mod address;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use mark1_actors::domain::ToolDef;
use mark1_actors::ports::model::ToolSpec;
use minijinja::{Environment, UndefinedBehavior};
use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, Url};
use serde_json::Value;

use self::address::{check_url, AddressPolicy, HostList};
use super::tools::{any_object, ArgumentSchema, Tool, ToolCallContext, ToolError};

/// Time one call may take, whatever the task's own deadline.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Most of an answer the model is shown; tools answering more are cut off.
const MAX_BODY: usize = 256 * 1024;
const MAX_REDIRECTS: usize = 5;

pub struct HttpTool {
    spec: ToolSpec,
    url: String,
    method: Method,
    policy: AddressPolicy,
    client: reqwest::Client,
    schema: ArgumentSchema,
    templates: Environment<'static>,
}

impl HttpTool {
    /// `def` is a validated `ToolDef::Http`.
    pub fn new(def: &ToolDef) -> Result<Self, String> {
        let ToolDef::Http { name, description, url, method, allow_hosts, allow_private, parameters } = def
        else {
            unreachable!("HttpTool is built from http tool definitions")
        };
        let templates = url_templates();
        templates.template_from_str(url).map_err(|e| format!("url: not a valid template: {e}"))?;
        let policy = AddressPolicy { hosts: HostList::new(allow_hosts), allow_private: *allow_private };
        let client = client(&policy).map_err(|e| format!("cannot build its HTTP client: {e}"))?;
        let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
            .map_err(|_| format!("method: {method:?} is not an HTTP method"))?;
        let parameters = parameters.clone().unwrap_or_else(any_object);
        Ok(HttpTool {
            spec: ToolSpec {
                name: name.clone(),
                description: description.clone(),
                parameters: parameters.clone(),
            },
            url: url.clone(),
            method,
            policy,
            client,
            schema: ArgumentSchema::compile(&parameters)?,
            templates,
        })
    }

    /// The URL for these arguments, checked against the policy.
    fn url(&self, arguments: &Value) -> Result<Url, ToolError> {
        let rendered = self
            .templates
            .render_str(&self.url, arguments)
            .map_err(|e| ToolError::Refused(format!("cannot build the URL from the arguments: {e}")))?;
        // The URL is not repeated: its query may hold a key the model must not see.
        let mut url = Url::parse(&rendered)
            .map_err(|e| ToolError::Refused(format!("the rendered URL is not valid: {e}")))?;
        check_url(&url, &self.policy).map_err(ToolError::Refused)?;
        // A GET whose URL takes nothing from the arguments sends them as the query.
        if self.method == Method::GET && !self.url.contains("{{") {
            if let Value::Object(fields) = arguments {
                let mut query = url.query_pairs_mut();
                for (key, value) in fields {
                    match value {
                        Value::String(text) => query.append_pair(key, text),
                        other => query.append_pair(key, &other.to_string()),
                    };
                }
            }
        }
        Ok(url)
    }

    async fn send(&self, url: Url, arguments: Value) -> Result<Value, ToolError> {
        let mut request = self.client.request(self.method.clone(), url);
        if self.method != Method::GET {
            request = request.json(&arguments);
        }
        let response = request.send().await.map_err(|e| ToolError::Failed(error_chain(&e.without_url())))?;
        let status = response.status();
        let is_json = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("json"));
        let body = read_capped(response).await?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            return Err(ToolError::Failed(format!(
                "HTTP {status}: {}",
                text.chars().take(500).collect::<String>()
            )));
        }
        if is_json {
            if let Ok(value) = serde_json::from_slice(&body) {
                return Ok(value);
            }
        }
        Ok(Value::String(String::from_utf8_lossy(&body).into_owned()))
    }
}

#[async_trait::async_trait]
impl Tool for HttpTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(&self, context: &ToolCallContext<'_>, arguments: Value) -> Result<Value, ToolError> {
        self.schema.check(&arguments)?;
        let url = self.url(&arguments)?;
        tokio::select! {
            biased;
            _ = context.task.cancel.cancelled() => Err(ToolError::Cancelled),
            result = self.send(url, arguments) => result,
        }
    }
}

/// Templates for URLs: a missing argument is an error rather than an empty string, and
/// every value is percent-encoded, so an argument cannot add path segments, a query or
/// another host; `.` and `..`, which encoding leaves alone, would move up the path and
/// are refused.
fn url_templates() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_formatter(|out, _state, value| {
        let text = match value.as_str() {
            Some(text) => text.to_string(),
            None => value.to_string(),
        };
        if text == "." || text == ".." {
            let reason = "an argument may not be a dot segment ('.' or '..')";
            return Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, reason));
        }
        out.write_str(&percent_encode(&text)).map_err(Into::into)
    });
    env
}

/// RFC 3986: everything but the unreserved characters is encoded.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(byte as char),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// A client whose resolver refuses forbidden addresses and whose redirects are checked
/// like the first URL.
fn client(policy: &AddressPolicy) -> reqwest::Result<reqwest::Client> {
    let redirect_policy = policy.clone();
    reqwest::Client::builder()
        .timeout(CALL_TIMEOUT)
        // A proxy from the environment (HTTP_PROXY…) would resolve the host itself,
        // past the resolver's check: tools connect directly.
        .no_proxy()
        .dns_resolver(Arc::new(policy.resolver()))
        .redirect(reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > MAX_REDIRECTS {
                return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
            }
            match check_url(attempt.url(), &redirect_policy) {
                Ok(()) => attempt.follow(),
                Err(reason) => attempt.error(format!("redirect refused: {reason}")),
            }
        }))
        .build()
}

async fn read_capped(response: reqwest::Response) -> Result<Vec<u8>, ToolError> {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ToolError::Failed(error_chain(&e.without_url())))?;
        let room = MAX_BODY - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() == MAX_BODY {
            break;
        }
    }
    Ok(body)
}

/// reqwest's own message hides the cause ("error sending request"); the resolver's
/// refusal is in the chain.
pub(super) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tool(url: &str, method: &str, hosts: &[&str], allow_private: bool) -> HttpTool {
        let def: ToolDef = serde_json::from_value(json!({
            "kind": "http", "name": "t", "url": url, "method": method,
            "allow_hosts": hosts, "allow_private": allow_private
        }))
        .unwrap();
        HttpTool::new(&def).unwrap()
    }

    #[test]
    fn arguments_fill_the_template_encoded() {
        let t = tool("https://api.example.com/w/{{ city }}", "GET", &["api.example.com"], false);
        let url = t.url(&json!({"city": "São Paulo/../admin?x=1"})).unwrap();
        assert_eq!(url.as_str(), "https://api.example.com/w/S%C3%A3o%20Paulo%2F..%2Fadmin%3Fx%3D1");
        // An argument cannot move the request to another host.
        let t = tool("https://{{ sub }}.example.com/", "GET", &["api.example.com"], false);
        assert!(matches!(t.url(&json!({"sub": "evil.com/x"})), Err(ToolError::Refused(_))));
        assert!(t.url(&json!({"sub": "api"})).is_ok());
        let missing = t.url(&json!({})).unwrap_err().to_string();
        assert!(missing.contains("cannot build the URL"), "{missing}");
        let t = tool("https://api.example.com/api/{{ id }}/details", "GET", &["api.example.com"], false);
        let up = t.url(&json!({"id": ".."})).unwrap_err().to_string();
        assert!(up.contains("dot segment"), "{up}");
        assert!(t.url(&json!({"id": "..."})).is_ok(), "three dots are a name");
    }

    #[test]
    fn a_plain_get_sends_arguments_as_the_query() {
        let t = tool("https://api.example.com/search", "GET", &["api.example.com"], false);
        let url = t.url(&json!({"q": "rust actors", "n": 3})).unwrap();
        assert_eq!(url.as_str(), "https://api.example.com/search?q=rust+actors&n=3");
        let t = tool("https://api.example.com/search", "POST", &["api.example.com"], false);
        assert_eq!(t.url(&json!({"q": "x"})).unwrap().as_str(), "https://api.example.com/search");
    }

    #[test]
    fn hosts_off_the_list_and_private_literals_are_refused() {
        let t = tool("http://{{ host }}/", "GET", &["*.example.com", "127.0.0.1", "10.1.2.3"], false);
        let refused = |host: &str| match t.url(&json!({"host": host})) {
            Err(ToolError::Refused(reason)) => reason,
            other => panic!("{host}: expected a refusal, got {other:?}"),
        };
        assert!(refused("example.org").contains("not in the tool's allow_hosts"));
        assert!(refused("127.0.0.1").contains("loopback"));
        assert!(refused("10.1.2.3").contains("private"));
        // Other spellings of a loopback address are normalized before the check.
        for host in ["2130706433", "0x7f.1"] {
            assert!(refused(host).contains("loopback"), "{host}");
        }
        assert!(t.url(&json!({"host": "a.example.com"})).is_ok());
        let open = tool("http://127.0.0.1:9/", "GET", &["127.0.0.1"], true);
        assert!(open.url(&json!({})).is_ok());
    }
}
