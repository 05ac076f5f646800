//! `mark1 workflows …`. `validate FILE` works offline against the local config
//! (DESIGN §13.8): it reads a definition (YAML or JSON), checks it against the agents of
//! the config's `[agents.*]` tables, and prints every problem at its line and column.
//! Stored workflows are not known offline, so sub-workflow names are not checked here;
//! the node checks them when the definition is created.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use mark1_actors::domain::workflow::{check, KnownNames, StepKind};

use super::{exit, CliError};
use crate::config::Config;

#[derive(Subcommand, Debug)]
pub enum WorkflowsCommand {
    /// Checks a definition file against the local config's agents, with no node running;
    /// prints every problem as FILE:LINE:COLUMN: message, and exits 1 when there is one.
    Validate(ValidateArgs),
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
