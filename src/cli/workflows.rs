//! `mark1 workflows …`. `validate FILE` works offline against the local config
//! (DESIGN §13.8): it reads a definition (YAML or JSON), checks it against the agents of
//! the config's `[agents.*]` tables, and prints every problem at its line and column.
//! Stored workflows are not known offline, so sub-workflow names are not checked here;
//! the node checks them when the definition is created. `list`, `get` and `create` talk
//! to a running node (`/v1/workflows`).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use mark1_actors::domain::workflow::{check, parse_value, KnownNames, StepKind};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::client::{refusal, Remote, Request};
use super::{exit, print_json, table, text, CliError};
use crate::config::Config;

#[derive(Subcommand, Debug)]
pub enum WorkflowsCommand {
    /// Checks a definition file against the local config's agents, with no node running;
    /// prints every problem as FILE:LINE:COLUMN: message, and exits 1 when there is one.
    Validate(ValidateArgs),
    /// Lists the stored definitions of a running node, every version.
    List {
        /// Admins only: one namespace.
        #[arg(long)]
        namespace: Option<String>,
        /// Prints JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Shows a stored definition: its latest version, or --version.
    Get {
        name: String,
        #[arg(long, value_name = "N")]
        version: Option<u32>,
        /// Admins only: the namespace to read.
        #[arg(long)]
        namespace: Option<String>,
        /// Prints JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Stores a definition file (YAML, or JSON when it ends in .json) on a running node
    /// and prints the version it got; a refused definition prints every problem as
    /// FILE:LINE:COLUMN: message and exits 2.
    Create {
        file: PathBuf,
        /// Admins only: the namespace to store it in.
        #[arg(long)]
        namespace: Option<String>,
        /// Prints JSON for scripts (on refusal, the problems as `validate --json` does).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct ValidateArgs {
    /// The definition, YAML or JSON.
    pub file: PathBuf,
    /// Prints a JSON array of problems: [{"file", "line", "column", "pointer", "message"}].
    #[arg(long)]
    pub json: bool,
    /// Knows only the agents of this namespace (default: every agent of the config).
    #[arg(long)]
    pub namespace: Option<String>,
    /// Does not check agent names and capabilities: for agents registered in code or
    /// over HTTP, which the config does not list.
    #[arg(long)]
    pub any_agent: bool,
}

pub fn validate(config: &Config, args: ValidateArgs) -> Result<(), CliError> {
    let name = args.file.display().to_string();
    let text = std::fs::read_to_string(&args.file)
        .map_err(|e| CliError { code: exit::USAGE, message: format!("cannot read {name}: {e}") })?;
    let known =
        if args.any_agent { KnownNames::unknown() } else { known_names(config, args.namespace.as_deref()) };
    let outcome = check(&text, Some(&name), &known);
    let diagnostics = outcome.as_ref().err().cloned().unwrap_or_default();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&diagnostics).expect("diagnostics serialize"));
    } else {
        for d in &diagnostics {
            println!("{d}");
        }
    }
    match outcome {
        Ok(def) => {
            if def.steps.iter().any(|s| matches!(s.kind(), Some(StepKind::Workflow(_)))) {
                eprintln!("note: sub-workflows are not checked offline; the node checks them on create");
            }
            if !args.json {
                let n = def.steps.len();
                println!("{name}: valid ({n} step{})", if n == 1 { "" } else { "s" });
            }
            Ok(())
        }
        Err(found) => {
            let n = found.len();
            let message = format!("{name}: invalid ({n} problem{})", if n == 1 { "" } else { "s" });
            Err(CliError { code: exit::FAILURE, message })
        }
    }
}

pub async fn run(remote: &Remote, command: WorkflowsCommand) -> Result<(), CliError> {
    match command {
        // cli::run gives `validate` the local config before it gets here.
        WorkflowsCommand::Validate(_) => unreachable!("validate is offline"),
        WorkflowsCommand::List { namespace, json } => {
            let query = namespace.map(|n| ("namespace", n)).into_iter().collect();
            let records = remote.get(&["v1", "workflows"], query).await?;
            if json {
                print_json(&records);
            } else {
                let rows: Vec<Vec<String>> = records.as_array().into_iter().flatten().map(row).collect();
                print!("{}", table::render(&HEADERS, &rows));
            }
            Ok(())
        }
        WorkflowsCommand::Get { name, version, namespace, json } => {
            let mut query: Vec<(&'static str, String)> = vec![];
            query.extend(version.map(|v| ("version", v.to_string())));
            query.extend(namespace.map(|n| ("namespace", n)));
            let record = remote.get(&["v1", "workflows", &name], query).await?;
            if json {
                print_json(&record);
            } else {
                print!("{}", table::render(&HEADERS, &[row(&record)]));
                println!();
                print!("{}", table::render(&STEP_HEADERS, &step_rows(&record["def"])));
            }
            Ok(())
        }
        WorkflowsCommand::Create { file, namespace, json } => create(remote, &file, namespace, json).await,
    }
}

async fn create(remote: &Remote, file: &Path, namespace: Option<String>, json: bool) -> Result<(), CliError> {
    let name = file.display().to_string();
    let source = std::fs::read_to_string(file)
        .map_err(|e| CliError { code: exit::USAGE, message: format!("cannot read {name}: {e}") })?;
    let query = namespace.map(|n| ("namespace", n)).into_iter().collect();
    let request = Request { query, text: Some((content_type(file), source.clone())), ..Request::default() };
    let (status, body) = remote.exchange(Method::POST, &["v1", "workflows"], request).await?;
    if status.is_success() {
        let record = remote.json(&["v1", "workflows"], status, &body)?;
        if json {
            print_json(&record);
        } else {
            println!("{name}: stored {} version {}", text(&record["name"]), text(&record["version"]));
        }
        return Ok(());
    }
    let problem: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(errors) = problem["errors"].as_array().filter(|_| status == StatusCode::BAD_REQUEST) else {
        return Err(refusal(status, &body));
    };
    let found = locate(&name, &source, errors, str::to_string);
    if json {
        print_json(&Value::Array(found.iter().map(Located::to_json).collect()));
    } else {
        for problem in &found {
            println!("{problem}");
        }
    }
    let n = found.len();
    let message = format!("{name}: refused by the node ({n} problem{})", if n == 1 { "" } else { "s" });
    Err(CliError { code: exit::USAGE, message })
}

/// JSON by its extension; anything else is read as YAML, which JSON is too.
fn content_type(file: &Path) -> &'static str {
    match file.extension().and_then(|e| e.to_str()) {
        Some(ext) if ext.eq_ignore_ascii_case("json") => "application/json",
        _ => "application/yaml",
    }
}

/// A problem the node found, at its place in the file.
#[derive(Debug, PartialEq)]
pub(super) struct Located {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub pointer: String,
    pub message: String,
}

impl Located {
    fn to_json(&self) -> Value {
        json!({"file": self.file, "line": self.line, "column": self.column, "pointer": self.pointer,
               "message": self.message})
    }
}

impl std::fmt::Display for Located {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file, self.line, self.column, self.message)?;
        if !self.pointer.is_empty() {
            write!(f, " (at {})", self.pointer)?;
        }
        Ok(())
    }
}

/// The node's `errors` (`{pointer, message, line?, column?}`) at their places in `text`:
/// where the node gave no line, the pointer, translated by `in_file` to the file's own
/// (a body that wraps the file has other pointers), is looked up in the file itself.
pub(super) fn locate(
    file: &str,
    text: &str,
    errors: &[Value],
    in_file: impl Fn(&str) -> String,
) -> Vec<Located> {
    let positions = parse_value(text).ok().map(|(_, positions)| positions);
    errors
        .iter()
        .map(|e| {
            let pointer = in_file(e["pointer"].as_str().unwrap_or_default());
            let given = (e["line"].as_u64(), e["column"].as_u64());
            let (line, column) = match (given, &positions) {
                ((Some(line), Some(column)), _) => (line as usize, column as usize),
                (_, Some(positions)) => {
                    let at = positions.locate(&pointer);
                    (at.line, at.column)
                }
                (_, None) => (1, 1),
            };
            let message = e["message"].as_str().map_or_else(|| e.to_string(), str::to_string);
            Located { file: file.to_string(), line, column, pointer, message }
        })
        .collect()
}

const HEADERS: [&str; 4] = ["WORKFLOW", "VERSION", "STEPS", "CREATED"];

fn row(record: &Value) -> Vec<String> {
    vec![
        format!("{}/{}", text(&record["namespace"]), text(&record["name"])),
        text(&record["version"]),
        record["def"]["steps"].as_array().map_or("-".into(), |s| s.len().to_string()),
        text(&record["created_at"]),
    ]
}

const STEP_HEADERS: [&str; 4] = ["STEP", "RUNS", "DEPENDS ON", "OPTIONS"];

/// One line per step of a definition: what it runs, its dependencies, the rest in short.
fn step_rows(def: &Value) -> Vec<Vec<String>> {
    let steps = def["steps"].as_array().map(Vec::as_slice).unwrap_or_default();
    steps
        .iter()
        .map(|step| {
            let runs = if let Some(agent) = step["agent"].as_str() {
                format!("agent {agent}")
            } else if let Some(capability) = step["capability"].as_str() {
                format!("capability {capability}")
            } else if !step["workflow"].is_null() {
                let version =
                    step["workflow"]["version"].as_u64().map(|v| format!(" v{v}")).unwrap_or_default();
                format!("workflow {}{version}", text(&step["workflow"]["name"]))
            } else if !step["approval"].is_null() {
                "approval".to_string()
            } else {
                "-".to_string()
            };
            let depends = step["depends_on"].as_array().map(|d| d.iter().map(text).collect::<Vec<_>>());
            let options: Vec<String> = ["when", "for_each", "retry", "timeout", "on_error"]
                .iter()
                .filter(|key| !step[**key].is_null())
                .map(|key| key.to_string())
                .collect();
            vec![
                text(&step["id"]),
                runs,
                depends.filter(|d| !d.is_empty()).map_or("-".into(), |d| d.join(",")),
                if options.is_empty() { "-".into() } else { options.join(",") },
            ]
        })
        .collect()
}

/// The config's agents (of one namespace, when given) and their capabilities; no stored
/// workflows, which are not known offline.
fn known_names(config: &Config, namespace: Option<&str>) -> KnownNames {
    config
        .agents
        .iter()
        .filter(|(_, agent)| namespace.is_none_or(|ns| agent.namespace == ns))
        .fold(KnownNames { workflows: None, ..KnownNames::empty() }, |known, (name, agent)| {
            known.with_agent(name, &agent.capabilities)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AgentConfig;

    #[test]
    fn known_names_are_the_config_agents_of_the_namespace() {
        let mut config = Config::default();
        let agent = |ns: &str, caps: &[&str]| AgentConfig {
            namespace: ns.into(),
            capabilities: caps.iter().map(|c| c.to_string()).collect(),
            ..AgentConfig::default()
        };
        config.agents.insert("echo".into(), agent("default", &["text.echo"]));
        config.agents.insert("review".into(), agent("team", &["code.review"]));
        let all = known_names(&config, None);
        assert_eq!(all.agents.unwrap().into_iter().collect::<Vec<_>>(), ["echo", "review"]);
        assert!(all.workflows.is_none(), "stored workflows are unknown offline");
        let team = known_names(&config, Some("team"));
        assert_eq!(team.capabilities.unwrap().into_iter().collect::<Vec<_>>(), ["code.review"]);
        let none = known_names(&config, Some("elsewhere"));
        assert_eq!(none.agents, Some(Default::default()), "known to be empty, so every agent is a problem");
    }
}
