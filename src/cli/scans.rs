//! `mark1 scans start|list|get|result` against a running node: scan jobs of folders on
//! the node's disk (`POST /v1/scans`, admins only, folders under `scan.allowed_dirs`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};

use super::client::{Remote, Request};
use super::{exit, print_json, table, text, CliError};

#[derive(Subcommand, Debug)]
pub enum ScansCommand {
    /// Starts a scan of a folder on the node (an absolute path under scan.allowed_dirs).
    Start {
        #[arg(value_name = "PATH")]
        path: PathBuf,
        /// Waits for the scan to end; exits 1 when it failed.
        #[arg(long)]
        wait: bool,
        /// How long --wait waits at most.
        #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = humantime::parse_duration)]
        timeout: Duration,
        /// Prints JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Lists scan jobs, newest first.
    List {
        /// `running`, `succeeded` or `failed`.
        #[arg(long)]
        status: Option<String>,
        /// Follows every page.
        #[arg(long)]
        all: bool,
        /// Prints JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Shows one scan job: status and counts.
    Get {
        id: String,
        /// Prints JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Prints a finished scan's report (the RepositoryAnalysis JSON).
    Result { id: String },
}

pub async fn run(remote: &Remote, command: ScansCommand) -> Result<(), CliError> {
    match command {
        ScansCommand::Start { path, wait, timeout, json } => {
            // The node checks the path against its allow-list; a relative one is made
            // absolute here, where it was meant.
            let path = std::path::absolute(&path).unwrap_or(path);
            let request = Request { body: Some(json!({"path": path})), ..Request::default() };
            let (_, mut scan) = remote.send(Method::POST, &["v1", "scans"], request).await?;
            if wait {
                scan = wait_for(remote, &text(&scan["id"]), timeout).await?;
            }
            show(&scan, json);
            if scan["status"] == "failed" {
                return Err(CliError {
                    code: exit::FAILURE,
                    message: format!("the scan failed: {}", text(&scan["error"])),
                });
            }
        }
        ScansCommand::List { status, all, json } => {
            let query = status.map(|s| vec![("status", s)]).unwrap_or_default();
            let (scans, next) = remote.listing(&["v1", "scans"], query, "scans", "before", all).await?;
            if json {
                print_json(&json!({"scans": scans, "next": next}));
            } else {
                show(&Value::Array(scans), false);
            }
        }
        ScansCommand::Get { id, json } => show(&remote.get(&["v1", "scans", &id], vec![]).await?, json),
        ScansCommand::Result { id } => {
            let (status, bytes) =
                remote.exchange(Method::GET, &["v1", "scans", &id, "result"], Request::default()).await?;
            if !status.is_success() {
                return Err(super::client::refusal(status, &bytes));
            }
            println!("{}", String::from_utf8_lossy(&bytes));
        }
    }
    Ok(())
}

/// Polls the scan until it is no longer running.
async fn wait_for(remote: &Remote, id: &str, timeout: Duration) -> Result<Value, CliError> {
    let until = Instant::now() + timeout;
    loop {
        let scan = remote.get(&["v1", "scans", id], vec![]).await?;
        if scan["status"] != "running" {
            return Ok(scan);
        }
        if Instant::now() >= until {
            return Err(CliError {
                code: exit::UNAVAILABLE,
                message: format!("scan {id} still runs after {}", humantime::format_duration(timeout)),
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn show(scans: &Value, json: bool) {
    if json {
        return print_json(scans);
    }
    let list = match scans {
        Value::Array(list) => list.clone(),
        one => vec![one.clone()],
    };
    let count = |scan: &Value, key: &str| scan["summary"].get(key).map(text).unwrap_or_else(|| "-".into());
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|s| {
            vec![
                text(&s["id"]),
                text(&s["status"]),
                text(&s["path"]),
                count(s, "files"),
                count(s, "llm_calls"),
                count(s, "agents"),
                count(s, "tools"),
                text(&s["created_at"]),
            ]
        })
        .collect();
    let headers = ["ID", "STATUS", "PATH", "FILES", "LLM CALLS", "AGENTS", "TOOLS", "CREATED"];
    print!("{}", table::render(&headers, &rows));
    for scan in list.iter().filter(|s| s["status"] == "failed") {
        eprintln!("scan {} failed: {}", text(&scan["id"]), text(&scan["error"]));
    }
}
