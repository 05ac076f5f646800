//! `mark1 models list|refresh|budgets` against a running node.

use clap::Subcommand;
use reqwest::Method;
use serde_json::Value;

use super::client::{Remote, Request};
use super::{print_json, table, text, CliError};

#[derive(Subcommand, Debug)]
pub enum ModelsCommand {
    /// Lists every provider's models with the provider's health and the model's stats.
    List {
        /// Prints JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Re-reads every provider's model list now, then lists the models.
    Refresh {
        /// Prints JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Shows each namespace's model budget for the current period.
    Budgets {
        /// Prints JSON for scripts.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(remote: &Remote, command: ModelsCommand) -> Result<(), CliError> {
    match command {
        ModelsCommand::List { json } => show(&remote.get(&["v1", "models"], vec![]).await?, json),
        ModelsCommand::Refresh { json } => {
            let (_, catalog) =
                remote.send(Method::POST, &["v1", "models", "refresh"], Request::default()).await?;
            show(&catalog, json);
        }
        ModelsCommand::Budgets { json } => {
            let budgets = remote.get(&["v1", "models", "budgets"], vec![]).await?;
            if json {
                print_json(&budgets);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = budgets.as_array().into_iter().flatten().map(budget_row).collect();
            print!(
                "{}",
                table::render(
                    &["NAMESPACE", "TOKENS", "RESERVED", "TOKEN LIMIT", "COST", "COST LIMIT"],
                    &rows
                )
            );
        }
    }
    Ok(())
}

fn show(catalog: &Value, json: bool) {
    if json {
        return print_json(catalog);
    }
    let rows: Vec<Vec<String>> = catalog["models"].as_array().into_iter().flatten().map(model_row).collect();
    let headers =
        ["PROVIDER", "MODEL", "CAPABILITIES", "CONTEXT", "BREAKER", "CALLS", "FAILURES", "LATENCY MS"];
    print!("{}", table::render(&headers, &rows));
    for provider in catalog["providers"].as_array().into_iter().flatten() {
        if let Some(error) = provider["discovery_error"].as_str() {
            eprintln!("{}: discovery failed: {error}", text(&provider["name"]));
        }
    }
}

fn model_row(model: &Value) -> Vec<String> {
    let capabilities: Vec<&str> = ["chat", "tools", "embeddings", "vision"]
        .into_iter()
        .filter(|c| model["capabilities"][c].as_bool() == Some(true))
        .collect();
    let stats = &model["stats"];
    vec![
        text(&model["provider"]),
        text(&model["id"]),
        capabilities.join(","),
        text(&model["context_length"]),
        text(&model["breaker"]),
        text(&stats["calls"]),
        text(&stats["failures"]),
        stats["latency_ms"].as_f64().map_or("-".into(), |ms| format!("{ms:.1}")),
    ]
}

fn budget_row(budget: &Value) -> Vec<String> {
    let limit = |v: &Value| if v.as_f64() == Some(0.0) { "none".into() } else { text(v) };
    vec![
        text(&budget["namespace"]),
        text(&budget["tokens_used"]),
        text(&budget["tokens_reserved"]),
        limit(&budget["tokens_limit"]),
        budget["cost_used"].as_f64().map_or("-".into(), |c| format!("{c:.4}")),
        limit(&budget["cost_limit"]),
    ]
}
