//! Logging: tracing to stderr, `RUST_LOG` respected (default `info`), JSON on request.
//! Installed once per process; later calls (tests start many nodes) do nothing.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

pub fn init(json: bool) {
    // ractor wraps every actor's processing loop in an INFO span, entered on each poll;
    // by default those spans are off (`ractor=warn`) since entering them costs more than
    // many handlers. `RUST_LOG=info` brings them back for debugging.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,ractor=warn"));
    // Colours only for a person at a terminal, never in files or pipes.
    let ansi = std::io::stderr().is_terminal();
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr);
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}
