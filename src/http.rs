//! The HTTP edge (DESIGN §9): a thin axum layer that turns requests into actor messages.
//! Handlers extract, authorize, send one message or make one store read, and map the
//! answer; errors become `application/problem+json` in one place ([`error`]).
//!
//! | route | module |
//! |---|---|
//! | `/health`, `/ready`, `/metrics`, `/v1/whoami`, `/v1/actors…` | [`routes::system`] |
//! | `/v1/events` (list or WebSocket), `/v1/actors/watch` (WebSocket) | [`routes::events`], [`ws`] |
//! | `/v1/tasks…` | [`routes::tasks`] |
//! | `/v1/agents…` | [`routes::agents`] |
//! | `/v1/workflows…` | [`routes::workflows`] |
//! | `/v1/runs…` | [`routes::runs`], [`routes::runs::changes`] |
//! | `/v1/models…` | [`routes::models`], [`routes::models::usage`] |
//! | `/v1/scans…` | [`routes::scans`] |
//! | `/v1/keys…`, `/v1/audit` | [`routes::admin`] |
//! | `/openapi.json` | generated from the handlers' annotations |
//!
//! ```no_run
//! # async fn demo(node: std::sync::Arc<mark1::NodeHandle>) -> Result<(), Box<dyn std::error::Error>> {
//! let edge = mark1::http::Edge::start(node.clone()).await?;
//! println!("listening on {}", edge.local_addr());
//! edge.shutdown(std::time::Duration::from_secs(5)).await;
//! # Ok(()) }
//! ```

mod audit;
pub mod auth;
mod body;
pub mod error;
mod gateway;
mod limits;
mod observe;
pub(crate) mod query;
pub mod routes;
mod state;
pub mod tls;
mod ws;

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::http::{header, Request, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use self::auth::jwt::{JwtSetupError, JwtVerifier};
use self::auth::Authenticator;
use self::error::ApiError;
use self::limits::Limiter;
pub use self::state::EdgeState;
pub use self::ws::{CURSOR_EXPIRED, SLOW_CLIENT};

/// Whether a request asks to become a WebSocket.
fn wants_websocket(headers: &axum::http::HeaderMap) -> bool {
    headers.get(header::UPGRADE).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
}

/// The request's `x-request-id` (set by the edge when the client sent none).
fn request_id(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers.get("x-request-id").and_then(|v| v.to_str().ok())
}
use crate::node::NodeHandle;

#[derive(OpenApi)]
#[openapi(
    info(title = "Mark-1", description = "An orchestrator for AI agents, built as an actor-model runtime."),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags((name = "tasks"), (name = "workflows"), (name = "runs"), (name = "scans"), (name = "events"), (name = "agents"), (name = "models"), (name = "gateways"), (name = "actors"), (name = "admin"), (name = "system"))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

/// The router and its OpenAPI document, both built from the same handler list.
pub fn app(state: Arc<EdgeState>) -> Router {
    let (router, api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(routes::system::health))
        .routes(routes!(routes::system::ready))
        .routes(routes!(routes::system::metrics))
        .routes(routes!(routes::system::whoami))
        .routes(routes!(routes::system::tree))
        .routes(routes!(routes::system::actor))
        .routes(routes!(routes::events::watch_tree))
        .routes(routes!(routes::events::events))
        .routes(routes!(routes::tasks::submit, routes::tasks::list))
        .routes(routes!(routes::tasks::get))
        .routes(routes!(routes::tasks::cancel))
        .routes(routes!(routes::workflows::create, routes::workflows::list))
        .routes(routes!(routes::workflows::validate))
        .routes(routes!(routes::workflows::get))
        .routes(routes!(routes::runs::start, routes::runs::list))
        .routes(routes!(routes::runs::get, routes::runs::changes::patch))
        .routes(routes!(routes::runs::events))
        .routes(routes!(routes::runs::changes::cancel))
        .routes(routes!(routes::runs::changes::decide))
        .routes(routes!(routes::scans::start, routes::scans::list))
        .routes(routes!(routes::scans::get))
        .routes(routes!(routes::scans::result))
        .routes(routes!(routes::agents::list, routes::agents::register))
        .routes(routes!(routes::agents::get, routes::agents::resize, routes::agents::remove))
        .routes(routes!(routes::models::list))
        .routes(routes!(routes::models::refresh))
        .routes(routes!(routes::models::budgets))
        .routes(routes!(routes::models::usage::report))
        .routes(routes!(gateway::openai::chat_completions))
        .routes(routes!(gateway::openai::embeddings))
        .routes(routes!(gateway::openai::models))
        .routes(routes!(gateway::ollama::chat))
        .routes(routes!(gateway::ollama::generate))
        .routes(routes!(gateway::ollama::embed))
        .routes(routes!(gateway::ollama::tags))
        .routes(routes!(gateway::ollama::show))
        .routes(routes!(gateway::ollama::version))
        .routes(routes!(routes::admin::create, routes::admin::list))
        .routes(routes!(routes::admin::revoke))
        .routes(routes!(routes::admin::audit_log))
        .split_for_parts();
    let api = Arc::new(api);
    let max_body = state.server.max_body_bytes;
    let metrics = state.node.http_metrics().clone();
    router
        .route("/v1/workflows/validate", get(routes::workflows::get_named_validate))
        .route("/openapi.json", get(move || async move { Json(api.as_ref().clone()) }))
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .layer(middleware::from_fn_with_state(state.clone(), audit::audit_denials))
        .with_state(state)
        .layer(middleware::from_fn(problem_for_every_error))
        .layer(middleware::from_fn_with_state(metrics, observe::count))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http().make_span_with(observe::span))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

/// Errors raised by axum itself (an oversized body, a bad query string, a wrong method)
/// come as plain text; they are rewritten here so every error a client sees is a problem
/// document from the one mapping. The gateways' errors keep their protocols' shapes.
async fn problem_for_every_error(request: Request<Body>, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if status.is_success()
        || status.is_redirection()
        || is_problem
        || response.extensions().get::<gateway::ProtocolError>().is_some()
        || status == StatusCode::SWITCHING_PROTOCOLS
    {
        return response;
    }
    let detail = match axum::body::to_bytes(response.into_body(), 4096).await {
        Ok(bytes) if !bytes.is_empty() => String::from_utf8_lossy(&bytes).into_owned(),
        _ => status.canonical_reason().unwrap_or("error").to_lowercase(),
    };
    let error = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(detail),
        StatusCode::NOT_FOUND => ApiError::NotFound(detail),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::BadRequest(format!("method not allowed: {detail}")),
        StatusCode::UNSUPPORTED_MEDIA_TYPE | StatusCode::UNPROCESSABLE_ENTITY => ApiError::BadRequest(detail),
        s if s.is_client_error() => ApiError::BadRequest(detail),
        _ => ApiError::Internal(detail),
    };
    error.into_response()
}

#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error("server.listen is not set: this node has no HTTP edge")]
    NoListenAddress,
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Jwt(#[from] JwtSetupError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

/// A running HTTP edge. Stop it before the node: it is the node's intake.
pub struct Edge {
    addr: SocketAddr,
    stop: CancellationToken,
    sessions: TaskTracker,
    server: JoinHandle<std::io::Result<()>>,
}

impl Edge {
    /// Binds `server.listen` of the node's configuration and serves until shut down.
    pub async fn start(node: Arc<NodeHandle>) -> Result<Edge, EdgeError> {
        let addr = node.config().server.listen.ok_or(EdgeError::NoListenAddress)?;
        let listener = TcpListener::bind(addr).await.map_err(|source| EdgeError::Bind { addr, source })?;
        Self::start_on(node, listener).await
    }

    /// Serves on a listener the caller bound (tests bind port 0).
    pub async fn start_on(node: Arc<NodeHandle>, listener: TcpListener) -> Result<Edge, EdgeError> {
        let config = node.config().clone();
        let jwt = JwtVerifier::new(&config.auth.jwt)?;
        let stop = CancellationToken::new();
        let sessions = TaskTracker::new();
        let state = Arc::new(EdgeState {
            auth: Authenticator::new(node.store(), jwt),
            limiter: Limiter::new(config.limits.rate_per_sec, config.limits.rate_burst),
            server: config.server.clone(),
            stop: stop.clone(),
            sessions: sessions.clone(),
            node,
        });
        let addr = listener.local_addr().map_err(|source| EdgeError::Bind {
            addr: config.server.listen.unwrap_or(([0, 0, 0, 0], 0).into()),
            source,
        })?;
        let tls = config.server.tls.as_ref().map(tls::server_config).transpose()?;
        let app = app(state.clone());
        let stopped = stop.clone().cancelled_owned();
        // Both arms run the same `axum::serve`, so graceful shutdown works alike.
        let serve: BoxFuture<'static, std::io::Result<()>> = match tls {
            None => {
                let listener = listener.tap_io(|tcp| {
                    let _ = tcp.set_nodelay(true);
                });
                Box::pin(axum::serve(listener, app).with_graceful_shutdown(stopped).into_future())
            }
            Some(tls) => {
                let listener = tls::TlsListener::new(listener, tls)
                    .map_err(|source| EdgeError::Bind { addr, source })?;
                Box::pin(axum::serve(listener, app).with_graceful_shutdown(stopped).into_future())
            }
        };
        let server = tokio::spawn(async move {
            let mut sweep = tokio::time::interval(Duration::from_secs(60));
            let forget_idle_credentials = async {
                loop {
                    sweep.tick().await;
                    state.limiter.retain_recent();
                }
            };
            tokio::select! {
                result = serve => result,
                never = forget_idle_credentials => never,
            }
        });
        tracing::info!(%addr, https = config.server.tls.is_some(), "http edge listening");
        Ok(Edge { addr, stop, sessions, server })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections, closes WebSocket sessions (1001) and lets requests
    /// in flight finish, up to `timeout`.
    pub async fn shutdown(self, timeout: Duration) {
        self.stop.cancel();
        self.sessions.close();
        let abort = self.server.abort_handle();
        let finished = async {
            let _ = self.server.await;
            self.sessions.wait().await;
        };
        if tokio::time::timeout(timeout, finished).await.is_err() {
            tracing::warn!("http edge: requests still open at the shutdown timeout were dropped");
            abort.abort();
        }
    }
}
