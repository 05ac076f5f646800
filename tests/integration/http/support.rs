//! A node with its HTTP edge on port 0, and credentials for every role.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mark1::config::ConfigLoader;
use mark1::http::Edge;
use mark1::{AgentSpec, Node, NodeHandle};
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::support::{agents_ready, unique, Echo, Sleeper};

pub const ISSUER: &str = "mark1-test-issuer";
pub const AUDIENCE: &str = "mark1-test";
pub const SECRET: &str = "a test secret of enough length for HS256 signing";

pub struct Served {
    pub node: Arc<NodeHandle>,
    pub edge: Edge,
    pub url: String,
    pub http: reqwest::Client,
    dir: tempfile::TempDir,
}

/// A node with `echo` and `sleeper` agents in namespaces `team-a` and `team-b`, accepting
/// HS256 tokens; `tune` adjusts the configuration.
/// Two OpenAI-protocol providers `a` and `b`, chosen by cost (equal, so in order), whose
/// breaker opens after two failures; retries wait 1 ms.
pub fn two_providers(l: ConfigLoader, a_url: &str, b_url: &str) -> ConfigLoader {
    l.set("models.providers.a.kind", "openai")
        .set("models.providers.a.base_url", a_url)
        .set("models.providers.b.kind", "openai")
        .set("models.providers.b.base_url", b_url)
        .set("models.policy", "cost")
        .set("models.breaker.failures", 2)
        .set("models.retry_backoff", "1ms")
}

pub async fn serve_with(tune: impl FnOnce(ConfigLoader) -> ConfigLoader) -> Served {
    serve_in(tempfile::tempdir().unwrap(), tune).await
}

/// As [`serve_with`], with `extend` adding to the node (providers, agents).
pub async fn serve_built(
    tune: impl FnOnce(ConfigLoader) -> ConfigLoader,
    extend: impl FnOnce(mark1::NodeBuilder) -> mark1::NodeBuilder,
) -> Served {
    start(tempfile::tempdir().unwrap(), tune, extend).await
}

/// Like [`serve_with`], on the data (the SQLite store) of `dir`: a node started again.
pub async fn serve_in(dir: tempfile::TempDir, tune: impl FnOnce(ConfigLoader) -> ConfigLoader) -> Served {
    start(dir, tune, |b| b).await
}

async fn start(
    dir: tempfile::TempDir,
    tune: impl FnOnce(ConfigLoader) -> ConfigLoader,
    extend: impl FnOnce(mark1::NodeBuilder) -> mark1::NodeBuilder,
) -> Served {
    let secret_file = dir.path().join("jwt.secret");
    std::fs::write(&secret_file, SECRET).unwrap();
    let loader = ConfigLoader::new()
        .no_file()
        .env(Vec::<(String, String)>::new())
        .set("node.name", unique("http"))
        .set("node.data_dir", dir.path().to_str().unwrap())
        .set("auth.jwt.hs256_secret_file", secret_file.to_str().unwrap())
        .set("auth.jwt.issuer", ISSUER)
        .set("auth.jwt.audience", AUDIENCE);
    let config = tune(loader).load().expect("test config loads");
    let mut builder = Node::builder().config(config);
    for namespace in ["team-a", "team-b"] {
        builder = builder
            .agent(AgentSpec::native("echo").namespace(namespace).capability("text.echo"), Echo)
            .agent(
                // Room for several at once, so quotas, not the pool, limit them.
                AgentSpec::native("sleeper").namespace(namespace).pool_size(1, 4),
                Sleeper { cancelled: Default::default() },
            );
    }
    let node =
        Arc::new(extend(builder).build().await.expect("node builds").start().await.expect("node starts"));
    agents_ready(&node, 4).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let edge = Edge::start_on(node.clone(), listener).await.expect("edge starts");
    let url = format!("http://{}", edge.local_addr());
    Served { node, edge, url, http: reqwest::Client::new(), dir }
}

pub async fn serve() -> Served {
    serve_with(|l| l).await
}

impl Served {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    pub async fn stop(self) {
        self.stop_keeping_data().await;
    }

    /// Stops the edge and the node cleanly; the data folder outlives them.
    pub async fn stop_keeping_data(self) -> tempfile::TempDir {
        self.edge.shutdown(Duration::from_secs(5)).await;
        let report = self.node.shutdown(Duration::from_secs(10)).await;
        assert!(report.stopped_cleanly, "clean shutdown: {report:?}");
        self.dir
    }
}

/// Claims of a valid token; tests change them to make bad ones.
pub fn claims(role: &str, namespace: Option<&str>) -> Value {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let mut claims = json!({
        "sub": format!("{role}-user"), "role": role, "iss": ISSUER, "aud": AUDIENCE,
        "exp": now + 300, "nbf": now - 5, "iat": now,
    });
    if let Some(ns) = namespace {
        claims["namespace"] = json!(ns);
    }
    claims
}

pub fn sign(claims: &Value) -> String {
    sign_with(claims, SECRET)
}

pub fn sign_with(claims: &Value, secret: &str) -> String {
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), claims, &key).unwrap()
}

/// A bearer token for `role` in `namespace` (admins: `None` spans every namespace).
pub fn token(role: &str, namespace: Option<&str>) -> String {
    sign(&claims(role, namespace))
}

/// The response's status and JSON body; asserts errors are problem documents.
pub async fn json_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let problem = response
        .headers()
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap().starts_with("application/problem+json"));
    let body = response.text().await.unwrap();
    if status >= 400 {
        assert!(problem, "an error is a problem document: {status} {body}");
    }
    let value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&body).unwrap_or(Value::String(body))
    };
    (status, value)
}
