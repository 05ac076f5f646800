//! `mark1 runs …`: workflow runs on a running node (DESIGN §5, §13.7). `start`, `list`,
//! `get` and `events` read and start runs; `cancel`, `retry`, `skip`, `add-steps`,
//! `approve` and `reject` change a running one; `watch` follows one live ([`watch`]).

mod model;
mod ui;
mod watch;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use clap::{Args, Subcommand};
use mark1_actors::domain::workflow::parse_value;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use self::model::RunModel;
use super::client::{refusal, Remote, Request};
use super::workflows::locate;
use super::{exit, print_json, table, text, CliError};

#[derive(Subcommand, Debug)]
pub enum RunsCommand {
    /// Starts a run of a stored workflow (its latest version, or --version).
    Start(Start),
    /// Lists runs, newest first.
    List {
        #[arg(long)]
        workflow: Option<String>,
        /// running, waiting_approval, succeeded, failed or cancelled.
        #[arg(long)]
        state: Option<String>,
        /// Admins only: one namespace.
        #[arg(long)]
        namespace: Option<String>,
        /// Runs per page (at most 1000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Follows the pages to the last.
        #[arg(long)]
        all: bool,
        /// Prints JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Shows a run and its steps; with --wait, waits for it to end.
    Get {
        id: String,
        /// Waits up to this long (e.g. 30s) for the run to end; exits 1 unless it succeeded.
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        wait: Option<Duration>,
        /// Prints JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Lists a run's events (its step transitions), oldest first.
    Events {
        id: String,
        /// Only events after this seq.
        #[arg(long, value_name = "SEQ")]
        after: Option<u64>,
        /// At most this many events.
        #[arg(long)]
        limit: Option<usize>,
        /// Prints JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Cancels a run; steps still running are cancelled.
    Cancel {
        id: String,
        #[arg(long)]
        reason: Option<String>,
        /// Prints JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Runs a failed step again (a failed run runs again with it).
    Retry {
        id: String,
        step: String,
        /// Prints JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Skips a step that has not finished, with the output its dependents will see.
    Skip {
        id: String,
        step: String,
        /// The step's output, as JSON (default: null).
        #[arg(long, value_name = "JSON")]
        output: Option<String>,
        /// Prints JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Adds steps to a running run from a file: a YAML or JSON list of steps (or
    /// `steps:` and that list).
    AddSteps {
        id: String,
        file: PathBuf,
        /// Prints JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Approves a step waiting for approval.
    Approve(Decide),
    /// Rejects a step waiting for approval (the step fails, and its on_error applies).
    Reject(Decide),
    /// Follows a run live until it ends: its steps in dependency order, their states,
    /// attempts, items and errors (q quits). Exits 0 when the run succeeded, 1 when it
    /// failed or was cancelled.
    Watch {
        id: String,
        /// Prints one line per transition instead of a full-screen view (for scripts, logs
        /// and terminals without a screen).
        #[arg(long)]
        plain: bool,
        /// How often the run is read again besides on its events.
        #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = humantime::parse_duration)]
        interval: Duration,
    },
}

#[derive(Args, Debug)]
pub struct Start {
    workflow: String,
    /// The definition version (default: the latest).
    #[arg(long, value_name = "N")]
    version: Option<u32>,
    /// The run's input: JSON text, @FILE, or - for standard input.
    #[arg(long, value_name = "JSON|@FILE|-", conflicts_with = "input_file")]
    input: Option<String>,
    /// The run's input from a YAML or JSON file.
    #[arg(long, value_name = "FILE")]
    input_file: Option<PathBuf>,
    /// Makes starting safe to repeat: the same key answers with the first run.
    #[arg(long, value_name = "KEY")]
    idempotency_key: Option<String>,
    /// Admins only: the namespace to start the run in.
    #[arg(long)]
    namespace: Option<String>,
    /// Journals in the background: faster, but a crash may lose the run's last steps.
    #[arg(long)]
    no_durable: bool,
    /// Waits up to this long (e.g. 30s) for the run to end; exits 1 unless it succeeded.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    wait: Option<Duration>,
    /// Prints JSON for scripts.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct Decide {
    id: String,
    step: String,
    #[arg(long)]
    comment: Option<String>,
    /// Prints JSON for scripts.
    #[arg(long)]
    json: bool,
}

pub async fn run(remote: &Remote, command: RunsCommand) -> Result<(), CliError> {
    match command {
        RunsCommand::Start(start) => {
            let (wait, json) = (start.wait, start.json);
            let request = start_request(start)?;
            let (_, view) = remote.send(Method::POST, &["v1", "runs"], request).await?;
            show(remote, &view, json).await;
            wait.map_or(Ok(()), |wait| finished(&view, Some(wait)))
        }
        RunsCommand::List { workflow, state, namespace, limit, all, json } => {
            let mut query: Vec<(&'static str, String)> = vec![("limit", limit.to_string())];
            query.extend(workflow.map(|w| ("workflow", w)));
            query.extend(state.map(|s| ("state", s)));
            query.extend(namespace.map(|n| ("namespace", n)));
            list(remote, query, all, json).await
        }
        RunsCommand::Get { id, wait, json } => {
            let query = wait_query(wait);
            let request = Request { query, wait, ..Request::default() };
            let (_, view) = remote.send(Method::GET, &["v1", "runs", &id], request).await?;
            show(remote, &view, json).await;
            wait.map_or(Ok(()), |wait| finished(&view, Some(wait)))
        }
        RunsCommand::Events { id, after, limit, json } => {
            let mut query = Vec::new();
            query.extend(after.map(|a| ("after", a.to_string())));
            query.extend(limit.map(|l| ("limit", l.to_string())));
            let page = remote.get(&["v1", "runs", &id, "events"], query).await?;
            if json {
                print_json(&page);
            } else {
                let events = page.get("events").unwrap_or(&page);
                let rows: Vec<Vec<String>> = events.as_array().into_iter().flatten().map(event_row).collect();
                print!("{}", table::render(&["SEQ", "TIME", "KIND", "STEP", "ATTEMPT", "DETAIL"], &rows));
            }
            Ok(())
        }
        RunsCommand::Cancel { id, reason, json } => {
            let body = reason.map_or(json!({}), |reason| json!({"reason": reason}));
            let request = Request { body: Some(body), ..Request::default() };
            let (_, view) = remote.send(Method::POST, &["v1", "runs", &id, "cancel"], request).await?;
            show(remote, &view, json).await;
            Ok(())
        }
        RunsCommand::Retry { id, step, json } => {
            change(remote, &id, json!({"action": "retry_step", "step": step}), json).await
        }
        RunsCommand::Skip { id, step, output, json } => {
            let mut body = json!({"action": "skip_step", "step": step});
            if let Some(output) = output {
                body["output"] = serde_json::from_str(&output).map_err(|e| CliError {
                    code: exit::USAGE,
                    message: format!("--output is not JSON: {e}"),
                })?;
            }
            change(remote, &id, body, json).await
        }
        RunsCommand::AddSteps { id, file, json } => add_steps(remote, &id, &file, json).await,
        RunsCommand::Approve(decide) => decide_step(remote, decide, true).await,
        RunsCommand::Reject(decide) => decide_step(remote, decide, false).await,
        RunsCommand::Watch { id, plain, interval } => watch::run(remote, &id, plain, interval).await,
    }
}

fn wait_query(wait: Option<Duration>) -> Vec<(&'static str, String)> {
    wait.map(|w| ("wait", humantime::format_duration(w).to_string())).into_iter().collect()
}

fn start_request(s: Start) -> Result<Request, CliError> {
    let mut body = json!({"workflow": s.workflow});
    if let Some(version) = s.version {
        body["version"] = json!(version);
    }
    if let Some(input) = &s.input {
        body["input"] = super::tasks::input_value(input)?;
    } else if let Some(file) = &s.input_file {
        body["input"] = read_yaml(file)?.0;
    }
    if s.no_durable {
        body["durable"] = json!(false);
    }
    if let Some(key) = s.idempotency_key {
        body["idempotency_key"] = json!(key);
    }
    let mut query = wait_query(s.wait);
    query.extend(s.namespace.map(|n| ("namespace", n)));
    Ok(Request { query, body: Some(body), wait: s.wait, ..Request::default() })
}

/// A YAML or JSON file as a value, and its text.
fn read_yaml(file: &Path) -> Result<(Value, String), CliError> {
    let name = file.display();
    let usage = |message: String| CliError { code: exit::USAGE, message };
    let text = std::fs::read_to_string(file).map_err(|e| usage(format!("cannot read {name}: {e}")))?;
    let (value, _) = parse_value(&text).map_err(|d| usage(format!("{name}:{d}")))?;
    Ok((value, text))
}

async fn list(
    remote: &Remote,
    query: Vec<(&'static str, String)>,
    all: bool,
    json: bool,
) -> Result<(), CliError> {
    let (runs, next) = remote.listing(&["v1", "runs"], query, "runs", "before", all).await?;
    if json {
        print_json(&json!({"runs": runs, "next": next}));
    } else {
        print!("{}", table::render(&RUN_HEADERS, &runs.iter().map(run_row).collect::<Vec<_>>()));
        if let Some(next) = next.as_str() {
            eprintln!("more runs: --all, or the API's before={next}");
        }
    }
    Ok(())
}

async fn change(remote: &Remote, id: &str, body: Value, json: bool) -> Result<(), CliError> {
    let request = Request { body: Some(body), ..Request::default() };
    let (_, view) = remote.send(Method::PATCH, &["v1", "runs", id], request).await?;
    show(remote, &view, json).await;
    Ok(())
}

async fn decide_step(remote: &Remote, d: Decide, approved: bool) -> Result<(), CliError> {
    let mut body = json!({"approved": approved});
    if let Some(comment) = d.comment {
        body["comment"] = json!(comment);
    }
    let request = Request { body: Some(body), ..Request::default() };
    let (_, view) = remote.send(Method::POST, &["v1", "runs", &d.id, "approvals", &d.step], request).await?;
    show(remote, &view, d.json).await;
    Ok(())
}

/// `add-steps`: the file's list goes as `steps`; problems the node finds are shown at
/// their place in the file.
async fn add_steps(remote: &Remote, id: &str, file: &Path, json: bool) -> Result<(), CliError> {
    let name = file.display().to_string();
    let (value, text) = read_yaml(file)?;
    let (steps, listed) = match value {
        Value::Array(_) => (value, true),
        Value::Object(mut map) if map.len() == 1 && map.contains_key("steps") => {
            (map.remove("steps").unwrap_or_default(), false)
        }
        _ => {
            return Err(CliError {
                code: exit::USAGE,
                message: format!("{name}: expected a list of steps, or `steps:` and a list"),
            })
        }
    };
    // The node's pointers index the run's steps with the new ones appended.
    let before = remote.get(&["v1", "runs", id], vec![]).await?;
    let offset = before["steps"].as_array().map_or(0, Vec::len);
    let body = json!({"action": "add_steps", "steps": steps});
    let request = Request { body: Some(body), ..Request::default() };
    let (status, answer) = remote.exchange(Method::PATCH, &["v1", "runs", id], request).await?;
    if status.is_success() {
        show(remote, &remote.json(&["v1", "runs", id], status, &answer)?, json).await;
        return Ok(());
    }
    let problem: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
    let Some(errors) = problem["errors"].as_array().filter(|_| status == StatusCode::BAD_REQUEST) else {
        return Err(refusal(status, &answer));
    };
    let found = locate(&name, &text, errors, |pointer| added_pointer(pointer, offset, listed));
    for problem in &found {
        println!("{problem}");
    }
    let n = found.len();
    let message = format!("{name}: refused by the node ({n} problem{})", if n == 1 { "" } else { "s" });
    Err(CliError { code: exit::USAGE, message })
}

/// A pointer of the run's steps with the added ones appended (`/steps/5/agent`) as one of
/// the file that lists the added ones (`/0/agent` for a list, `/steps/0/agent` under
/// `steps:`); other pointers as they are.
fn added_pointer(pointer: &str, offset: usize, listed: bool) -> String {
    let Some(rest) = pointer.strip_prefix("/steps/") else { return pointer.to_string() };
    let (index, tail) = rest.split_once('/').unwrap_or((rest, ""));
    match index.parse::<usize>().ok().and_then(|i| i.checked_sub(offset)) {
        Some(i) if listed => format!("/{i}{}{tail}", if tail.is_empty() { "" } else { "/" }),
        Some(i) => format!("/steps/{i}{}{tail}", if tail.is_empty() { "" } else { "/" }),
        None => pointer.to_string(),
    }
}

/// After a wait, a run that did not succeed is a failure of the command (exit 1); the
/// run itself was printed already.
fn finished(view: &Value, wait: Option<Duration>) -> Result<(), CliError> {
    let (id, state) = (text(&view["id"]), text(&view["state"]));
    let message = match state.as_str() {
        "succeeded" => return Ok(()),
        "running" | "waiting_approval" => match wait {
            Some(wait) => format!("run {id} is still {state} after {}", humantime::format_duration(wait)),
            None => format!("run {id} is {state}"),
        },
        _ => match view["error"].as_str() {
            Some(error) => format!("run {id} {state}: {error}"),
            None => format!("run {id} {state}"),
        },
    };
    Err(CliError { code: exit::FAILURE, message })
}

const RUN_HEADERS: [&str; 5] = ["ID", "WORKFLOW", "STATE", "CREATED", "ERROR"];

fn run_row(run: &Value) -> Vec<String> {
    let version = run["version"].as_u64().map(|v| format!(" v{v}")).unwrap_or_default();
    vec![
        text(&run["id"]),
        format!("{}/{}{version}", text(&run["namespace"]), text(&run["workflow"])),
        text(&run["state"]),
        text(&run["created_at"]),
        text(&run["error"]),
    ]
}

const STEP_HEADERS: [&str; 6] = ["STEP", "DEPENDS ON", "STATE", "ATTEMPT", "ITEMS", "DETAIL"];

/// The steps of a run as table rows, in dependency order.
fn step_rows(model: &RunModel, now: SystemTime) -> Vec<Vec<String>> {
    model
        .ordered()
        .into_iter()
        .map(|step| {
            vec![
                step.id.clone(),
                step.depends_text(),
                step.state.clone(),
                step.attempt.to_string(),
                step.item_progress().unwrap_or_else(|| "-".into()),
                step.detail(now),
            ]
        })
        .collect()
}

/// A run view: as JSON, or as tables (its steps in dependency order, which a read of
/// its definition gives).
async fn show(remote: &Remote, view: &Value, json: bool) {
    if json {
        return print_json(view);
    }
    print!("{}", table::render(&RUN_HEADERS, &[run_row(view)]));
    let mut model = RunModel::of_view(view);
    if let Some(deps) = watch::definition_deps(remote, view).await {
        model.set_depends_on(deps);
    }
    if model.ordered().is_empty() {
        return;
    }
    println!();
    print!("{}", table::render(&STEP_HEADERS, &step_rows(&model, SystemTime::now())));
    if let Some(output) = view.get("output").filter(|o| !o.is_null()) {
        println!("\noutput: {output}");
    }
}

fn event_row(event: &Value) -> Vec<String> {
    let data = &event["data"];
    let detail: Vec<String> = ["state", "index", "approved", "by", "reason", "error"]
        .iter()
        .filter(|key| !data[**key].is_null())
        .map(|key| format!("{key}={}", text(&data[*key])))
        .collect();
    vec![
        text(&event["seq"]),
        text(&event["time"]),
        text(&event["kind"]),
        text(&data["step"]),
        text(&data["attempt"]),
        detail.join(" "),
    ]
}

#[cfg(test)]
#[path = "runs/tests.rs"]
mod tests;
