//! `mark1 tasks submit|get|list|cancel` against a running node (DESIGN §13.3).

use std::io::Read;
use std::time::Duration;

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Value};

use super::client::{Remote, Request};
use super::{exit, print_json, table, text, CliError};

#[derive(Subcommand, Debug)]
pub enum TasksCommand {
    /// Submits a task to an agent, or to any agent with the given capabilities.
    Submit(Submit),
    /// Shows a task; with --wait, waits for it to finish.
    Get {
        id: String,
        /// Waits up to this long (e.g. 30s) for the task to finish.
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        wait: Option<Duration>,
        /// Prints JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Lists tasks, newest first.
    List {
        /// queued, running, succeeded, failed, cancelled or timed_out.
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        agent: Option<String>,
        /// Admins only: one namespace.
        #[arg(long)]
        namespace: Option<String>,
        /// Tasks per page (at most 1000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Follows the pages to the last.
        #[arg(long)]
        all: bool,
        /// Prints JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Cancels a task and shows it as it is then.
    Cancel {
        id: String,
        /// Prints JSON for scripts.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct Submit {
    /// The agent to run the task; or give --capability instead.
    #[arg(required_unless_present = "capability", conflicts_with = "capability")]
    agent: Option<String>,
    /// The input: JSON text, @FILE, or - for standard input.
    #[arg(long, value_name = "JSON|@FILE|-")]
    input: Option<String>,
    /// Any agent with every one of these capabilities (repeatable).
    #[arg(long = "capability", value_name = "CAPABILITY")]
    capability: Vec<String>,
    /// Waits up to this long (e.g. 30s) for the task to finish; exits 1 unless it succeeded.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    wait: Option<Duration>,
    /// Makes resubmission safe: the same key answers with the first task.
    #[arg(long, value_name = "KEY")]
    idempotency_key: Option<String>,
    /// 0..=9, higher first.
    #[arg(long)]
    priority: Option<u8>,
    /// Admins only: the namespace to submit in.
    #[arg(long)]
    namespace: Option<String>,
    /// Kept in memory only: faster, but lost if the node dies.
    #[arg(long)]
    no_durable: bool,
    /// Prints JSON for scripts.
    #[arg(long)]
    json: bool,
}

pub async fn run(remote: &Remote, command: TasksCommand) -> Result<(), CliError> {
    match command {
        TasksCommand::Submit(submit) => {
            let wait = submit.wait;
            let json = submit.json;
            let request = submission(submit)?;
            let (_, task) = remote.send(Method::POST, &["v1", "tasks"], request).await?;
            show(&task, json);
            wait.map_or(Ok(()), |wait| finished(&task, wait))
        }
        TasksCommand::Get { id, wait, json } => {
            let query =
                wait.map(|w| ("wait", humantime::format_duration(w).to_string())).into_iter().collect();
            let request = Request { query, wait, ..Request::default() };
            let (_, task) = remote.send(Method::GET, &["v1", "tasks", &id], request).await?;
            show(&task, json);
            wait.map_or(Ok(()), |wait| finished(&task, wait))
        }
        TasksCommand::List { state, agent, namespace, limit, all, json } => {
            let mut query: Vec<(&'static str, String)> = vec![("limit", limit.to_string())];
            query.extend(state.map(|s| ("state", s)));
            query.extend(agent.map(|a| ("agent", a)));
            query.extend(namespace.map(|n| ("namespace", n)));
            let (tasks, next) = remote.listing(&["v1", "tasks"], query, "tasks", "cursor", all).await?;
            if json {
                print_json(&json!({"tasks": tasks, "next": next}));
            } else {
                print!("{}", table::render(&HEADERS, &tasks.iter().map(row).collect::<Vec<_>>()));
                if let Some(next) = next.as_str() {
                    eprintln!("more tasks: --all, or the API's cursor={next}");
                }
            }
            Ok(())
        }
        TasksCommand::Cancel { id, json } => {
            let (_, task) =
                remote.send(Method::POST, &["v1", "tasks", &id, "cancel"], Request::default()).await?;
            show(&task, json);
            Ok(())
        }
    }
}

fn submission(s: Submit) -> Result<Request, CliError> {
    let mut body = json!({});
    match s.agent {
        Some(agent) => body["agent"] = json!(agent),
        None => body["capabilities"] = json!(s.capability),
    }
    if let Some(input) = &s.input {
        body["input"] = input_value(input)?;
    }
    if let Some(priority) = s.priority {
        body["priority"] = json!(priority);
    }
    if let Some(namespace) = s.namespace {
        body["namespace"] = json!(namespace);
    }
    if s.no_durable {
        body["durable"] = json!(false);
    }
    let query = s.wait.map(|w| ("wait", humantime::format_duration(w).to_string())).into_iter().collect();
    let headers = s.idempotency_key.map(|k| ("idempotency-key", k)).into_iter().collect();
    Ok(Request { query, body: Some(body), headers, wait: s.wait, ..Request::default() })
}

/// `--input`: inline JSON, `@FILE`, or `-` for standard input.
pub(super) fn input_value(input: &str) -> Result<Value, CliError> {
    let usage = |message: String| CliError { code: exit::USAGE, message };
    let (text, source) = if input == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| usage(format!("cannot read standard input: {e}")))?;
        (text, "standard input".to_string())
    } else if let Some(path) = input.strip_prefix('@') {
        let text = std::fs::read_to_string(path).map_err(|e| usage(format!("cannot read {path}: {e}")))?;
        (text, path.to_string())
    } else {
        (input.to_string(), "--input".to_string())
    };
    serde_json::from_str(&text).map_err(|e| usage(format!("{source} is not JSON: {e}")))
}

/// After a wait, a task that did not succeed is a failure of the command (exit 1), so a
/// script can rely on the exit code; the task itself was printed already.
fn finished(task: &Value, wait: Duration) -> Result<(), CliError> {
    let (id, state) = (text(&task["id"]), text(&task["state"]));
    let message = match state.as_str() {
        "succeeded" => return Ok(()),
        "queued" | "running" => {
            format!("task {id} is still {state} after {}", humantime::format_duration(wait))
        }
        _ => match task["error"].as_str() {
            Some(error) => format!("task {id} {state}: {error}"),
            None => format!("task {id} {state}"),
        },
    };
    Err(CliError { code: exit::FAILURE, message })
}

const HEADERS: [&str; 6] = ["ID", "STATE", "AGENT", "ATTEMPT", "CREATED", "ERROR"];

fn row(task: &Value) -> Vec<String> {
    let agent = if task["agent"].is_null() { &task["target_agent"] } else { &task["agent"] };
    vec![
        text(&task["id"]),
        text(&task["state"]),
        format!("{}/{}", text(&task["namespace"]), text(agent)),
        format!("{}/{}", text(&task["attempt"]), text(&task["max_attempts"])),
        text(&task["created_at"]),
        text(&task["error"]),
    ]
}

fn show(task: &Value, json: bool) {
    if json {
        return print_json(task);
    }
    print!("{}", table::render(&HEADERS, &[row(task)]));
    if let Some(output) = task.get("output").filter(|o| !o.is_null()) {
        println!("output: {output}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        tasks: TasksCommand,
    }

    fn submit(args: &[&str]) -> Result<Request, CliError> {
        let cli = Cli::try_parse_from(std::iter::once("t").chain(args.iter().copied()))
            .map_err(|e| CliError { code: exit::USAGE, message: e.to_string() })?;
        let TasksCommand::Submit(s) = cli.tasks else { panic!("a submit") };
        submission(s)
    }

    #[test]
    fn a_submission_becomes_the_api_body_query_and_headers() {
        let args = [
            "submit",
            "echo",
            "--input",
            r#"{"text":"hi"}"#,
            "--wait",
            "30s",
            "--idempotency-key",
            "k1",
            "--priority",
            "7",
            "--no-durable",
        ];
        let r = submit(&args).unwrap();
        assert_eq!(
            r.body.unwrap(),
            json!({"agent": "echo", "input": {"text": "hi"}, "priority": 7, "durable": false})
        );
        assert_eq!(r.query, [("wait", "30s".to_string())]);
        assert_eq!(r.headers, [("idempotency-key", "k1".to_string())]);
        assert_eq!(r.wait, Some(Duration::from_secs(30)));

        let r = submit(&["submit", "--capability", "a", "--capability", "b"]).unwrap();
        assert_eq!(r.body.unwrap(), json!({"capabilities": ["a", "b"]}));
    }

    #[test]
    fn bad_submissions_are_usage_errors() {
        for args in [
            &["submit"][..],
            &["submit", "echo", "--capability", "a"],
            &["submit", "echo", "--input", "{not json"],
            &["submit", "echo", "--input", "@/no/such/file"],
            &["submit", "echo", "--wait", "soon"],
        ] {
            assert_eq!(submit(args).err().map(|e| e.code), Some(exit::USAGE), "{args:?}");
        }
    }

    #[test]
    fn only_a_succeeded_task_ends_a_wait_well() {
        let wait = Duration::from_secs(1);
        assert!(finished(&json!({"id": "t", "state": "succeeded"}), wait).is_ok());
        let failed = finished(&json!({"id": "t", "state": "failed", "error": "boom"}), wait).unwrap_err();
        assert_eq!((failed.code, failed.message.as_str()), (exit::FAILURE, "task t failed: boom"));
        let running = finished(&json!({"id": "t", "state": "running"}), wait).unwrap_err();
        assert!(running.message.contains("still running after 1s"), "{}", running.message);
    }
}
