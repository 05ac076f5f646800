//! `mark1 serve`: a node and its HTTP edge until SIGINT/SIGTERM; a second signal exits at once.

use tokio::signal::unix::{signal, SignalKind};

use std::sync::Arc;

use super::{exit, CliError};
use crate::config::Config;
use crate::http::Edge;
use crate::node::Node;

pub async fn run(config: Config) -> Result<(), CliError> {
    // Handlers first, so a signal during start-up is a shutdown, not an abrupt exit.
    let mut term = signal(SignalKind::terminate()).map_err(io_error)?;
    let mut int = signal(SignalKind::interrupt()).map_err(io_error)?;
    let shutdown_timeout = config.node.shutdown_timeout;
    let node = Node::builder().config(config).build().await?;
    let handle = Arc::new(node.start().await?);
    let edge = match Edge::start(handle.clone()).await {
        Ok(edge) => edge,
        Err(e) => {
            handle.shutdown(shutdown_timeout).await;
            return Err(CliError { code: exit::FAILURE, message: e.to_string() });
        }
    };
    let agents = handle.agents().await.map(|a| a.len()).unwrap_or(0);
    let scheme = if handle.config().server.tls.is_some() { "https" } else { "http" };
    let runtime_workers = tokio::runtime::Handle::current().metrics().num_workers();
    tracing::info!(node = %handle.name(), agents, url = %format!("{scheme}://{}", edge.local_addr()), runtime_workers, "node running");

    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        _ = handle.stopped() => {
            return Err(CliError { code: exit::FAILURE, message: "the node stopped: a core actor failed beyond its restart intensity".into() });
        }
    }
    // A second signal while draining exits at once.
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        eprintln!("second signal: exiting now");
        std::process::exit(exit::FAILURE as i32);
    });
    // The edge is the node's intake: it stops first, so draining sees no new work.
    let started = std::time::Instant::now();
    edge.shutdown(shutdown_timeout / 2).await;
    let report = handle.shutdown(shutdown_timeout.saturating_sub(started.elapsed())).await;
    tracing::info!(?report, "node stopped");
    if report.stopped_cleanly {
        Ok(())
    } else {
        Err(CliError { code: exit::FAILURE, message: format!("shutdown was not clean: {report:?}") })
    }
}

fn io_error(e: std::io::Error) -> CliError {
    CliError { code: exit::FAILURE, message: format!("cannot install signal handlers: {e}") }
}
