//! `mark1 models list|refresh|budgets|usage` against a running node.

use std::time::SystemTime;

use clap::Subcommand;
use mark1_actors::ports::UsageGroup;
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
    /// Sums the model calls of a time window per namespace, agent, task, run, provider or
    /// model, the costliest first.
    Usage {
        /// Calls from this time: RFC 3339 (2025-01-31T09:00:00Z) or a duration back from
        /// now (24h, 7days).
        #[arg(long, value_name = "TIME|DURATION")]
        since: Option<String>,
        /// Calls before this time, written as for --since.
        #[arg(long, value_name = "TIME|DURATION")]
        until: Option<String>,
        /// What a row sums: namespace, agent, task, run, provider or model.
        #[arg(long, value_name = "GROUP", default_value_t = UsageGroup::Namespace)]
        group_by: UsageGroup,
        /// One namespace (admins; everyone else sees their own).
        #[arg(long)]
        namespace: Option<String>,
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
        ModelsCommand::Usage { since, until, group_by, namespace, json } => {
            let mut query = vec![("group_by", group_by.to_string())];
            query.extend(since.map(|t| ("since", time_arg(&t))));
            query.extend(until.map(|t| ("until", time_arg(&t))));
            query.extend(namespace.map(|n| ("namespace", n)));
            let report = remote.get(&["v1", "models", "usage"], query).await?;
            if json {
                print_json(&report);
                return Ok(());
            }
            let rows: Vec<Vec<String>> =
                report["rows"].as_array().into_iter().flatten().map(usage_row).collect();
            let group = group_by.as_str().to_uppercase();
            let headers = [group.as_str(), "CALLS", "PROMPT TOKENS", "COMPLETION TOKENS", "COST"];
            print!("{}", table::render(&headers, &rows));
        }
    }
    Ok(())
}

/// A duration (`24h`) means that long before now; anything else goes to the node as
/// written, which names it if it is not an RFC 3339 time.
fn time_arg(text: &str) -> String {
    match humantime::parse_duration(text) {
        Ok(back) => {
            let at = SystemTime::now().checked_sub(back).unwrap_or(SystemTime::UNIX_EPOCH);
            humantime::format_rfc3339_seconds(at).to_string()
        }
        Err(_) => text.to_string(),
    }
}

fn usage_row(row: &Value) -> Vec<String> {
    vec![
        text(&row["key"]),
        text(&row["calls"]),
        text(&row["prompt_tokens"]),
        text(&row["completion_tokens"]),
        row["cost"].as_f64().map_or("-".into(), |c| format!("{c:.4}")),
    ]
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
