//! `mark1 rewrite PATH --to ollama|mark1`: points the OpenAI-style clients of local files
//! at a local Ollama or at Mark-1's gateway (no node, no config). Prints a unified diff
//! (or JSON) on stdout; writes only with `--write`; what it leaves is listed on stderr.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::{exit, CliError};
use crate::scan::rewrite::{self, Options, Plan, Target};
use crate::scan::Rules;

#[derive(Args, Debug)]
pub struct RewriteArgs {
    /// The directory (or file) to rewrite.
    #[arg(value_name = "PATH")]
    path: PathBuf,
    /// Where the clients should point.
    #[arg(long, value_enum)]
    to: TargetArg,
    /// The model to put in place of the model literals at the rewritten call sites
    /// (without it they are left as they are).
    #[arg(long, value_name = "M")]
    model: Option<String>,
    /// The base URL to use instead of the target's default.
    #[arg(long, value_name = "URL")]
    base_url: Option<String>,
    /// Writes the files (without it nothing is written).
    #[arg(long)]
    write: bool,
    /// Prints {"files": [{"path", "changes"}], "skipped"} instead of a diff.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum TargetArg {
    /// A local Ollama's OpenAI-compatible API (http://localhost:11434/v1).
    Ollama,
    /// Mark-1's OpenAI-compatible gateway (http://127.0.0.1:8080/openai/v1), key from MARK1_API_KEY.
    Mark1,
}

pub async fn run(args: RewriteArgs) -> Result<(), CliError> {
    let usage = |message: String| CliError { code: exit::USAGE, message };
    let target = match args.to {
        TargetArg::Ollama => Target::Ollama,
        TargetArg::Mark1 => Target::Mark1,
    };
    let mut options = Options::new(target);
    if let Some(url) = args.base_url {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(usage(format!("--base-url {url:?} is not an http:// or https:// URL")));
        }
        options.base_url = url;
    }
    if let Some(model) = args.model {
        if model.trim().is_empty() {
            return Err(usage("--model is empty".into()));
        }
        options.model = Some(model);
    }
    if !args.path.exists() {
        return Err(CliError {
            code: exit::NOT_FOUND,
            message: format!("{} does not exist", args.path.display()),
        });
    }
    let path = args.path;
    // Parsing is CPU work; keep it off the async runtime's workers.
    let plan = tokio::task::spawn_blocking(move || rewrite::rewrite(&path, &options, Rules::built_in()))
        .await
        .map_err(|e| CliError { code: exit::FAILURE, message: format!("the rewrite stopped: {e}") })?
        .map_err(failure)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&plan).expect("the plan serializes"));
    } else {
        for file in &plan.files {
            print!("{}", file.diff());
        }
    }
    for skipped in &plan.skipped {
        match skipped.line {
            Some(line) => eprintln!("skipped {}:{line}: {}", skipped.path, skipped.reason),
            None => eprintln!("skipped {}: {}", skipped.path, skipped.reason),
        }
    }
    plan.check().map_err(failure)?;
    summarize(&plan, args.write)
}

fn summarize(plan: &Plan, write: bool) -> Result<(), CliError> {
    let changes: usize = plan.files.iter().map(|f| f.changes.len()).sum();
    let files = plan.files.len();
    if files == 0 {
        eprintln!("nothing to rewrite");
    } else if write {
        plan.write().map_err(failure)?;
        eprintln!("rewrote {files} file(s), {changes} change(s)");
    } else {
        eprintln!(
            "{files} file(s) would change ({changes} change(s)); nothing written: pass --write to write them"
        );
    }
    Ok(())
}

fn failure(e: rewrite::RewriteError) -> CliError {
    CliError { code: exit::FAILURE, message: e.to_string() }
}
