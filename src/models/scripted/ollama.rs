//! Scripted ollama protocol (being written).

use std::sync::Arc;

use super::Script;

pub(super) fn routes() -> axum::Router<Arc<Script>> {
    axum::Router::new()
}
