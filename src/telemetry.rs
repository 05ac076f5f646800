//! Logging: tracing to stderr, `RUST_LOG` respected (default `info`), text or JSON lines.
//! Installed once per process; later calls (tests start many nodes) do nothing.
//! With the `otlp` cargo feature, spans are also exported over OTLP ([`otlp`]).

#[cfg(feature = "otlp")]
pub mod otlp;

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// How log lines are written (`--log-format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, span fields included.
    Json,
}

pub fn init(format: LogFormat) {
    // ractor wraps every actor's processing loop in an INFO span, entered on each poll;
    // by default those spans are off (`ractor=warn`) since entering them costs more than
    // many handlers. `RUST_LOG=info` brings them back for debugging.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,ractor=warn"));
    // Colours only for a person at a terminal, never in files or pipes.
    let ansi = std::io::stderr().is_terminal();
    let fmt = tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(std::io::stderr);
    let fmt = match format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt.json().boxed(),
    };
    let registry = tracing_subscriber::registry().with(filter).with(fmt);
    #[cfg(feature = "otlp")]
    let registry = registry.with(otlp::layer());
    let _ = registry.try_init();
}

/// Flushes exported spans (with the `otlp` feature); call once before exiting.
pub fn shutdown() {
    #[cfg(feature = "otlp")]
    otlp::shutdown();
}
