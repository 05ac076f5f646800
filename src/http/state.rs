//! What every handler shares: the node, the authenticator, limits and settings.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::auth::Authenticator;
use super::limits::Limiter;
use crate::config::ServerConfig;
use crate::node::NodeHandle;

pub struct EdgeState {
    pub node: Arc<NodeHandle>,
    pub auth: Authenticator,
    pub limiter: Limiter,
    pub server: ServerConfig,
    /// Cancelled when the edge shuts down: WebSocket sessions close with 1001.
    pub stop: CancellationToken,
    /// WebSocket sessions, which outlive their upgrade request: shutdown waits for them.
    pub sessions: TaskTracker,
}
