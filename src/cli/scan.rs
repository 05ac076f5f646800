//! `mark1 scan PATH`: scans local files only (no node, no config) and prints the
//! analysis as a summary table, JSON, SARIF or CycloneDX.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use super::client::{Remote, RemoteArgs, Request};
use super::{exit, table, CliError};
use reqwest::Method;

use crate::scan::{self, format, register, Rules};

#[derive(Args, Debug)]
pub struct ScanArgs {
    /// The directory (or file) to scan.
    #[arg(value_name = "PATH", required_unless_present = "schema")]
    path: Option<PathBuf>,
    /// What to print.
    #[arg(long, value_enum, default_value_t = ScanFormat::Table)]
    format: ScanFormat,
    /// Same as `--format json`.
    #[arg(long, conflicts_with = "format")]
    json: bool,
    /// Prints the JSON Schema of the JSON output and exits.
    #[arg(long)]
    schema: bool,
    /// Extra rule files (TOML, the shape of src/scan/rules/*.toml), added to the built-in rules.
    #[arg(long = "rules", value_name = "FILE")]
    rules: Vec<PathBuf>,
    /// Shows the `process` agents PATH holds (each subfolder with an entry point, each
    /// runnable script) and, with --yes, registers them on the running node.
    #[arg(long)]
    register: bool,
    /// With --register: registers the agents shown (through the node's POST /v1/agents:
    /// an admin key, commands under the node's process.allowed_dirs).
    #[arg(long, requires = "register")]
    yes: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ScanFormat {
    /// A human summary.
    Table,
    /// The versioned RepositoryAnalysis (`mark1 scan --schema` describes it).
    Json,
    /// SARIF 2.1.0, for code-scanning UIs.
    Sarif,
    /// A CycloneDX 1.6 bill of materials: models, agents, tools, MCP servers, packages.
    Cyclonedx,
}

pub async fn run(args: ScanArgs, remote: &RemoteArgs) -> Result<(), CliError> {
    if args.schema {
        super::print_json(&format::json_schema());
        return Ok(());
    }
    let path = args.path.expect("clap requires PATH without --schema");
    if !path.exists() {
        return Err(CliError {
            code: exit::NOT_FOUND,
            message: format!("{} does not exist", path.display()),
        });
    }
    let rules =
        Rules::load(&args.rules).map_err(|e| CliError { code: exit::USAGE, message: e.to_string() })?;
    if args.register {
        return register(&path, rules, args.yes, args.json, remote).await;
    }
    let format = if args.json { ScanFormat::Json } else { args.format };
    // The scan is CPU work on rayon's pool; keep it off the async runtime's workers.
    let analysis = tokio::task::spawn_blocking(move || {
        let bar = std::io::stderr().is_terminal().then(progress_bar);
        let progress = |done: usize, total: usize| {
            if let Some(bar) = &bar {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            }
        };
        let analysis = scan::scan(&path, &rules, Some(&progress));
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        analysis
    })
    .await
    .map_err(|e| CliError { code: exit::FAILURE, message: format!("the scan stopped: {e}") })?
    .map_err(|e| CliError { code: exit::FAILURE, message: e.to_string() })?;
    match format {
        ScanFormat::Table => print!("{}", format::table(&analysis)),
        // Serialized directly (not through a JSON value) so confidences print as written.
        ScanFormat::Json => {
            println!("{}", serde_json::to_string_pretty(&analysis).expect("the analysis serializes"))
        }
        ScanFormat::Sarif => super::print_json(&format::sarif(&analysis)),
        ScanFormat::Cyclonedx => super::print_json(&format::cyclonedx(&analysis)),
    }
    Ok(())
}

fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("scanning {bar:30} {pos}/{len} files").expect("the template is valid"),
    );
    bar
}

/// Shows the agents `dir` holds; with `yes`, registers each through the node, which
/// decides (admins only, commands under its `process.allowed_dirs`).
async fn register(
    dir: &Path,
    rules: Rules,
    yes: bool,
    json: bool,
    remote: &RemoteArgs,
) -> Result<(), CliError> {
    let dir = dir.to_path_buf();
    let proposals = tokio::task::spawn_blocking(move || register::propose(&dir, &rules))
        .await
        .map_err(|e| CliError { code: exit::FAILURE, message: format!("the scan stopped: {e}") })?
        .map_err(|e| CliError { code: exit::FAILURE, message: e.to_string() })?;
    if json {
        super::print_json(&serde_json::to_value(&proposals).expect("proposals serialize"));
    } else {
        let rows: Vec<Vec<String>> = proposals
            .iter()
            .map(|p| vec![p.name.clone(), p.command.display().to_string(), p.capabilities.join(",")])
            .collect();
        print!("{}", table::render(&["NAME", "COMMAND", "CAPABILITIES"], &rows));
    }
    if !yes {
        eprintln!(
            "nothing registered: add --yes to register these {} agent(s) as process agents",
            proposals.len()
        );
        return Ok(());
    }
    let remote = Remote::new(remote)?;
    let mut refused: Option<CliError> = None;
    let mut failures = 0;
    for proposal in &proposals {
        let request = Request { body: Some(proposal.request()), ..Request::default() };
        match remote.send(Method::POST, &["v1", "agents"], request).await {
            Ok(_) => eprintln!("registered {}", proposal.name),
            Err(e) => {
                eprintln!("{}: not registered: {}", proposal.name, e.message);
                failures += 1;
                refused.get_or_insert(e);
            }
        }
    }
    match refused {
        None => Ok(()),
        Some(first) => Err(CliError {
            code: first.code,
            message: format!(
                "{failures} of {} agent(s) not registered (first: {})",
                proposals.len(),
                first.message
            ),
        }),
    }
}
