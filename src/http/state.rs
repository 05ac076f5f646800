//! What every handler shares: the node, the authenticator, limits and settings.

use std::sync::Arc;

use super::auth::Authenticator;
use super::limits::Limiter;
use crate::config::ServerConfig;
use crate::node::NodeHandle;

pub struct EdgeState {
    pub node: Arc<NodeHandle>,
    pub auth: Authenticator,
    pub limiter: Limiter,
    pub server: ServerConfig,
}
