//! `mark1 serve`: a node until SIGINT/SIGTERM; a second signal exits at once.

use tokio::signal::unix::{signal, SignalKind};

use super::{exit, CliError};
use crate::config::Config;
use crate::node::Node;

pub async fn run(config: Config) -> Result<(), CliError> {
    // Handlers first, so a signal during start-up is a shutdown, not an abrupt exit.
    let mut term = signal(SignalKind::terminate()).map_err(io_error)?;
    let mut int = signal(SignalKind::interrupt()).map_err(io_error)?;
    let shutdown_timeout = config.node.shutdown_timeout;
    let node = Node::builder().config(config).build().await?;
    let handle = node.start().await?;
    let agents = handle.agents().await.map(|a| a.len()).unwrap_or(0);
    let listen = handle.config().server.listen.map(|a| a.to_string()).unwrap_or_else(|| "none".into());
    // The HTTP edge binds `listen` once it lands; the address is logged so it can be checked.
    let runtime_workers = tokio::runtime::Handle::current().metrics().num_workers();
    tracing::info!(node = %handle.name(), agents, listen, runtime_workers, "node running");

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
    let report = handle.shutdown(shutdown_timeout).await;
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
