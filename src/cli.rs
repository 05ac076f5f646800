//! The `mark1` command line (DESIGN §13.8). Data goes to stdout, diagnostics to stderr.
//! `serve`, `migrate`, `keys`, `audit` and `workflows validate` work on the local config
//! and store; `agents`, `tasks`, `events`, `workflows list|get|create`, `runs`, `whoami`
//! and `tree` talk to a running node ([`client`]); `scan PATH` and `rewrite PATH` talk to
//! nothing: they read (and `rewrite --write` writes) local files only.

mod agents;
mod audit;
mod client;
mod events;
mod keys;
mod migrate;
mod models;
mod rewrite;
mod runs;
mod scan;
mod scans;
mod serve;
pub(crate) mod table;
mod tasks;
mod tree;
mod workflows;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use mark1_actors::ports::StoreError;

use crate::bench::BenchCommand;
use crate::config::{Config, ConfigError, ConfigLoader};
use crate::node::NodeError;
use crate::store::StoreOpenError;
use crate::telemetry::LogFormat;

#[derive(Parser, Debug)]
#[command(name = "mark1", version, about = "An orchestrator for AI agents, built as an actor-model runtime")]
pub struct Cli {
    /// Configuration file (default: ./config.toml when it exists).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Same as `--log-format json` (kept for scripts written before `--log-format`).
    #[arg(long, global = true, hide = true)]
    log_json: bool,
    #[command(flatten)]
    remote: client::RemoteArgs,
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
    /// Shows a running node's live actor tree (interactive; q quits).
    Tree {
        /// Starts the configured node in-process and prints its tree instead.
        #[arg(long)]
        local: bool,
        /// Prints JSON (implies --once).
        #[arg(long)]
        json: bool,
        /// Prints one snapshot and exits.
        #[arg(long)]
        once: bool,
        /// How often the interactive view refreshes.
        #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = humantime::parse_duration)]
        interval: Duration,
    },
    /// Registers, lists, resizes and removes agents of a running node.
    Agents {
        #[command(subcommand)]
        command: agents::AgentsCommand,
    },
    /// Lists a running node's models, refreshes discovery, shows budgets and usage.
    Models {
        #[command(subcommand)]
        command: models::ModelsCommand,
    },
    /// Submits, shows, lists and cancels tasks on a running node.
    Tasks {
        #[command(subcommand)]
        command: tasks::TasksCommand,
    },
    /// Lists or streams a running node's events.
    Events {
        #[command(subcommand)]
        command: events::EventsCommand,
    },
    /// Shows who the API key authenticates as.
    Whoami {
        /// Prints JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Creates, lists and revokes API keys in the configured store (no server needed).
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Checks the audit log in the configured store.
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Checks workflow definitions (offline), stores and shows them on a running node.
    Workflows {
        #[command(subcommand)]
        command: workflows::WorkflowsCommand,
    },
    /// Starts, shows, changes and watches workflow runs on a running node.
    Runs {
        #[command(subcommand)]
        command: runs::RunsCommand,
    },
    /// Finds the agents, tools, LLM calls and dependencies in a repository (local files only).
    Scan(scan::ScanArgs),
    /// Points the OpenAI-style clients of local files at Ollama or Mark-1's gateway (a codemod).
    Rewrite(rewrite::RewriteArgs),
    /// Starts scans of folders on a running node and reads their reports.
    Scans {
        #[command(subcommand)]
        command: scans::ScansCommand,
    },
    /// Runs a benchmark in-process and prints its figures.
    Bench(BenchCommand),
}

/// Exit codes of DESIGN §13.8.
pub mod exit {
    pub const FAILURE: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const NOT_FOUND: u8 = 3;
    pub const UNAUTHORIZED: u8 = 4;
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
            NodeError::Unavailable(_)
            | NodeError::Timeout(_)
            | NodeError::Task(TaskError::Unavailable(_)) => exit::UNAVAILABLE,
            NodeError::Audit(e) if e.is_unavailable() => exit::UNAVAILABLE,
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

/// A store that did not answer is "unavailable" (5); one that refused the work, a failure.
fn store_error(e: StoreError) -> CliError {
    let code = match e {
        StoreError::Unavailable(_) => exit::UNAVAILABLE,
        StoreError::Rejected(_) => exit::FAILURE,
    };
    CliError { code, message: e.to_string() }
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
    crate::telemetry::init(if cli.log_json { LogFormat::Json } else { cli.log_format });
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
    let outcome = runtime.block_on(run(cli));
    crate::telemetry::shutdown();
    match outcome {
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
        Command::Tree { local: true, json, .. } => {
            tree::run_local(load_config(cli.config.as_deref(), &[])?, json).await
        }
        Command::Tree { once, json, .. } if once || json => {
            tree::run_once(&client::Remote::new(&cli.remote)?, json).await
        }
        Command::Tree { interval, .. } => {
            tree::run_interactive(client::Remote::new(&cli.remote)?, interval).await
        }
        Command::Agents { command } => agents::run(&client::Remote::new(&cli.remote)?, command).await,
        Command::Models { command } => models::run(&client::Remote::new(&cli.remote)?, command).await,
        Command::Tasks { command } => tasks::run(&client::Remote::new(&cli.remote)?, command).await,
        Command::Events { command } => events::run(&client::Remote::new(&cli.remote)?, command).await,
        Command::Whoami { json } => whoami(&client::Remote::new(&cli.remote)?, json).await,
        Command::Keys { command } => keys::run(load_config(cli.config.as_deref(), &[])?, command).await,
        Command::Audit { command } => audit::run(load_config(cli.config.as_deref(), &[])?, command).await,
        Command::Workflows { command: workflows::WorkflowsCommand::Validate(args) } => {
            workflows::validate(&load_config(cli.config.as_deref(), &[])?, args)
        }
        Command::Workflows { command } => workflows::run(&client::Remote::new(&cli.remote)?, command).await,
        Command::Runs { command } => runs::run(&client::Remote::new(&cli.remote)?, command).await,
        Command::Scan(args) => scan::run(args, &cli.remote).await,
        Command::Rewrite(args) => rewrite::run(args).await,
        Command::Scans { command } => scans::run(&client::Remote::new(&cli.remote)?, command).await,
        Command::Bench(command) => command.run().await,
    }
}

async fn whoami(remote: &client::Remote, json: bool) -> Result<(), CliError> {
    let me = remote.get(&["v1", "whoami"], vec![]).await?;
    if json {
        print_json(&me);
    } else {
        let row = vec![text(&me["subject"]), text(&me["role"]), text(&me["namespace"])];
        print!("{}", table::render(&["SUBJECT", "ROLE", "NAMESPACE"], &[row]));
    }
    Ok(())
}

/// One JSON document on stdout.
fn print_json(value: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(value).expect("a JSON value serializes"));
}

/// A JSON value as a table cell: strings without quotes, null as `-`.
fn text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => "-".into(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
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
