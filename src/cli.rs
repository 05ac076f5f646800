//! The `mark1` command line (DESIGN §13.8). Data goes to stdout, diagnostics to stderr.

mod migrate;
mod serve;
mod tree;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::bench::BenchCommand;
use crate::config::{Config, ConfigError, ConfigLoader};
use crate::node::NodeError;
use crate::store::StoreOpenError;

#[derive(Parser, Debug)]
#[command(name = "mark1", version, about = "An orchestrator for AI agents, built as an actor-model runtime")]
pub struct Cli {
    /// Configuration file (default: ./config.toml when it exists).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log as JSON lines instead of text.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs a node until SIGINT or SIGTERM (a second signal exits at once).
    Serve {
        /// Overrides server.listen.
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Creates the configured store if needed, applies its migrations, prints its schema version.
    Migrate {
        /// Prints JSON: {"url", "backend", "version"}.
        #[arg(long)]
        json: bool,
    },
    /// Prints the live actor tree.
    Tree {
        /// Starts the configured node in-process and prints its tree.
        #[arg(long)]
        local: bool,
        /// Prints JSON.
        #[arg(long)]
        json: bool,
        /// Prints once and exits (the interactive inspector comes with the edge).
        #[arg(long)]
        once: bool,
    },
    /// Runs a benchmark in-process and prints its figures.
    Bench(BenchCommand),
}

/// Exit codes of DESIGN §13.8.
pub mod exit {
    pub const FAILURE: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const NOT_FOUND: u8 = 3;
    pub const UNAVAILABLE: u8 = 5;
}

/// A failure of a command, with the exit code it maps to.
#[derive(Debug)]
pub struct CliError {
    pub code: u8,
    pub message: String,
}

impl From<NodeError> for CliError {
    fn from(e: NodeError) -> Self {
        use mark1_actors::orchestrator::TaskError;
        if let NodeError::Store(e) = e {
            return e.into();
        }
        let code = match &e {
            NodeError::Config(_) | NodeError::InvalidAgent(_) => exit::USAGE,
            NodeError::Task(TaskError::UnknownAgent { .. } | TaskError::NotFound(_)) => exit::NOT_FOUND,
            NodeError::Unavailable(_) | NodeError::Task(TaskError::Unavailable(_)) => exit::UNAVAILABLE,
            _ => exit::FAILURE,
        };
        CliError { code, message: e.to_string() }
    }
}

impl From<StoreOpenError> for CliError {
    fn from(e: StoreOpenError) -> Self {
        let code = match &e {
            StoreOpenError::Password(_) | StoreOpenError::InvalidUrl { .. } => exit::USAGE,
            e if e.is_unavailable() => exit::UNAVAILABLE,
            _ => exit::FAILURE,
        };
        CliError { code, message: e.to_string() }
    }
}

impl From<ConfigError> for CliError {
    fn from(e: ConfigError) -> Self {
        CliError { code: exit::USAGE, message: e.to_string() }
    }
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { exit::USAGE } else { 0 });
        }
    };
    crate::telemetry::init(cli.log_json);
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if matches!(cli.command, Command::Serve { .. }) && std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        runtime.worker_threads(serve_workers());
    }
    let runtime = match runtime.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.message);
            ExitCode::from(e.code)
        }
    }
}

/// Runtime workers for `serve`: one per core but one, at least one (`TOKIO_WORKER_THREADS`
/// overrides it). The store commits on its own thread and process agents are processes
/// of their own, so a worker per core leaves them none, and on two cores the node spent
/// 25-40 % more CPU per task with two workers, in hand-offs between them (figures in
/// docs/architecture.md, Measuring). Benches keep one worker per core: they measure
/// the peak.
fn serve_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
}

async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Serve { listen } => {
            let mut overrides = Vec::new();
            if let Some(listen) = listen {
                overrides.push(("server.listen".to_string(), listen));
            }
            serve::run(load_config(cli.config.as_deref(), &overrides)?).await
        }
        Command::Migrate { json } => migrate::run(load_config(cli.config.as_deref(), &[])?, json).await,
        Command::Tree { local, json, once: _ } => {
            if !local {
                return Err(CliError {
                    code: exit::USAGE,
                    message: "only `mark1 tree --local` is available until the HTTP edge lands".into(),
                });
            }
            tree::run_local(load_config(cli.config.as_deref(), &[])?, json).await
        }
        Command::Bench(command) => command.run().await,
    }
}

fn load_config(path: Option<&std::path::Path>, overrides: &[(String, String)]) -> Result<Config, CliError> {
    let mut loader = ConfigLoader::new();
    if let Some(path) = path {
        loader = loader.file(path);
    }
    for (key, value) in overrides {
        loader = loader.set_str(key.clone(), value);
    }
    Ok(loader.load()?)
}
