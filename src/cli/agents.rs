//! `mark1 agents list|get|register|resize|remove` against a running node.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};

use super::client::{Remote, Request};
use super::{exit, print_json, table, text, CliError};

#[derive(Subcommand, Debug)]
pub enum AgentsCommand {
    /// Lists the agents of the namespaces the key reaches.
    List {
        /// Prints JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Shows one agent.
    Get {
        #[arg(value_name = "NAMESPACE/NAME")]
        agent: String,
        /// Prints JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Registers process agents from a file: a table with `name` and the keys of an
    /// `[agents.<name>]` table of config.toml, or `[agents.<name>]` tables (TOML or JSON).
    Register {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Prints JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Changes an agent's pool size bounds.
    Resize {
        #[arg(value_name = "NAMESPACE/NAME")]
        agent: String,
        #[arg(long)]
        min: usize,
        #[arg(long)]
        max: usize,
        /// Prints JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Removes an agent; its pool finishes the work it holds first.
    Remove {
        #[arg(value_name = "NAMESPACE/NAME")]
        agent: String,
        /// Prints JSON for scripts.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(remote: &Remote, command: AgentsCommand) -> Result<(), CliError> {
    match command {
        AgentsCommand::List { json } => {
            let agents = remote.get(&["v1", "agents"], vec![]).await?;
            show(&agents, json);
        }
        AgentsCommand::Get { agent, json } => {
            let (namespace, name) = split(&agent)?;
            show(&remote.get(&["v1", "agents", namespace, name], vec![]).await?, json);
        }
        AgentsCommand::Register { file, json } => {
            let mut registered = Vec::new();
            for body in definitions(&file)? {
                let request = Request { body: Some(body), ..Request::default() };
                registered.push(remote.send(Method::POST, &["v1", "agents"], request).await?.1);
            }
            show(&Value::Array(registered), json);
        }
        AgentsCommand::Resize { agent, min, max, json } => {
            let (namespace, name) = split(&agent)?;
            let request = Request { body: Some(json!({"min": min, "max": max})), ..Request::default() };
            let (_, view) = remote.send(Method::PATCH, &["v1", "agents", namespace, name], request).await?;
            show(&view, json);
        }
        AgentsCommand::Remove { agent, json } => {
            let (namespace, name) = split(&agent)?;
            remote.send(Method::DELETE, &["v1", "agents", namespace, name], Request::default()).await?;
            if json {
                print_json(&json!({"namespace": namespace, "name": name, "removed": true}));
            } else {
                eprintln!("removed {namespace}/{name}");
            }
        }
    }
    Ok(())
}

/// `NAMESPACE/NAME`, both non-empty.
fn split(agent: &str) -> Result<(&str, &str), CliError> {
    match agent.split_once('/') {
        Some((namespace, name)) if !namespace.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((namespace, name))
        }
        _ => Err(CliError {
            code: exit::USAGE,
            message: format!("{agent:?}: name the agent as NAMESPACE/NAME, e.g. default/echo"),
        }),
    }
}

/// The request bodies a definition file holds, one per agent.
fn definitions(file: &Path) -> Result<Vec<Value>, CliError> {
    let usage = |message: String| CliError { code: exit::USAGE, message };
    let content =
        std::fs::read_to_string(file).map_err(|e| usage(format!("cannot read {}: {e}", file.display())))?;
    let parsed: Value = if file.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&content).map_err(|e| usage(format!("{}: not JSON: {e}", file.display())))?
    } else {
        let table: toml::Table =
            toml::from_str(&content).map_err(|e| usage(format!("{}: not TOML: {e}", file.display())))?;
        serde_json::to_value(table).expect("TOML values are JSON values")
    };
    let Value::Object(mut top) = parsed else {
        return Err(usage(format!("{}: expected a table", file.display())));
    };
    match top.remove("agents") {
        // `[agents.<name>]` tables, as in config.toml.
        Some(Value::Object(agents)) if top.is_empty() => agents
            .into_iter()
            .map(|(name, fields)| match fields {
                Value::Object(mut fields) => {
                    fields.insert("name".into(), Value::String(name));
                    Ok(Value::Object(fields))
                }
                _ => Err(usage(format!("{}: agents.{name} is not a table", file.display()))),
            })
            .collect(),
        Some(other) => {
            top.insert("agents".into(), other);
            Ok(vec![Value::Object(top)])
        }
        None => Ok(vec![Value::Object(top)]),
    }
}

fn show(agents: &Value, json: bool) {
    if json {
        return print_json(agents);
    }
    let list = match agents {
        Value::Array(list) => list.clone(),
        one => vec![one.clone()],
    };
    let rows: Vec<Vec<String>> = list.iter().map(row).collect();
    let headers = ["AGENT", "HEALTH", "WORKERS", "BUSY", "QUEUED", "SUCCEEDED", "FAILED", "CAPABILITIES"];
    print!("{}", table::render(&headers, &rows));
}

fn row(agent: &Value) -> Vec<String> {
    let capabilities: Vec<String> =
        agent["capabilities"].as_array().into_iter().flatten().map(text).collect();
    vec![
        format!("{}/{}", text(&agent["namespace"]), text(&agent["name"])),
        text(&agent["health"]),
        text(&agent["workers"]),
        text(&agent["busy"]),
        text(&agent["queued"]),
        text(&agent["succeeded"]),
        text(&agent["failed"]),
        capabilities.join(","),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn definitions_of(name: &str, content: &str) -> Result<Vec<Value>, CliError> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(name);
        std::fs::write(&file, content).unwrap();
        definitions(&file)
    }

    #[test]
    fn a_flat_table_or_agents_tables_become_bodies() {
        let flat =
            definitions_of("a.toml", "name = \"x\"\ncommand = \"c\"\npool = { min = 1, max = 2 }\n").unwrap();
        assert_eq!(flat, [json!({"name": "x", "command": "c", "pool": {"min": 1, "max": 2}})]);
        let tables =
            definitions_of("a.toml", "[agents.x]\ncommand = \"c\"\n[agents.y]\ncommand = \"d\"\n").unwrap();
        assert_eq!(tables, [json!({"name": "x", "command": "c"}), json!({"name": "y", "command": "d"})]);
        let from_json = definitions_of("a.json", r#"{"name": "x", "command": "c"}"#).unwrap();
        assert_eq!(from_json, [json!({"name": "x", "command": "c"})]);
        assert_eq!(definitions_of("a.toml", "name = ").unwrap_err().code, exit::USAGE);
        assert_eq!(definitions_of("a.json", "[1]").unwrap_err().code, exit::USAGE);
    }

    #[test]
    fn agents_are_named_namespace_slash_name() {
        assert_eq!(split("default/echo").unwrap(), ("default", "echo"));
        for bad in ["echo", "/echo", "default/", "a/b/c"] {
            assert_eq!(split(bad).unwrap_err().code, exit::USAGE, "{bad}");
        }
    }
}
