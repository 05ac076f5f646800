//! `mark1 events list|watch` (DESIGN §13.4). `watch` streams over the WebSocket and, when
//! the connection drops, resumes after the last `seq` it printed, so nothing is shown
//! twice or skipped while the node keeps the events.

use std::ops::ControlFlow;
use std::time::Duration;

use clap::{Args, Subcommand};
use futures::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

use super::client::Remote;
use super::{exit, print_json, table, text, CliError};

#[derive(Subcommand, Debug)]
pub enum EventsCommand {
    /// Lists stored and recent events, oldest first.
    List {
        #[command(flatten)]
        filter: Filter,
        /// At most this many events.
        #[arg(long)]
        limit: Option<usize>,
        /// Prints JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Streams events as they happen (one JSON event per line with --json).
    Watch {
        #[command(flatten)]
        filter: Filter,
        /// Prints JSON for scripts.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug, Clone, Default)]
pub struct Filter {
    /// Only events after this seq (resumes from there).
    #[arg(long, value_name = "SEQ")]
    after: Option<u64>,
    /// Only these kinds, e.g. task.succeeded (repeatable).
    #[arg(long = "kind", value_name = "KIND")]
    kinds: Vec<String>,
    /// Only events of these tasks (repeatable).
    #[arg(long = "task", value_name = "ID")]
    tasks: Vec<String>,
    /// Only events of these workflow runs (repeatable).
    #[arg(long = "run", value_name = "ID")]
    runs: Vec<String>,
    /// Only events of these agents (repeatable).
    #[arg(long = "agent", value_name = "AGENT")]
    agents: Vec<String>,
}

impl Filter {
    fn query(&self) -> Vec<(&'static str, String)> {
        let mut query = Vec::new();
        query.extend(self.after.map(|a| ("after", a.to_string())));
        let lists =
            [("kinds", &self.kinds), ("tasks", &self.tasks), ("runs", &self.runs), ("agents", &self.agents)];
        for (name, values) in lists {
            if !values.is_empty() {
                query.push((name, values.join(",")));
            }
        }
        query
    }
}

pub async fn run(remote: &Remote, command: EventsCommand) -> Result<(), CliError> {
    match command {
        EventsCommand::List { filter, limit, json } => {
            let mut query = filter.query();
            query.extend(limit.map(|l| ("limit", l.to_string())));
            let page = remote.get(&["v1", "events"], query).await?;
            if json {
                print_json(&page);
            } else {
                let rows: Vec<Vec<String>> =
                    page["events"].as_array().into_iter().flatten().map(row).collect();
                print!("{}", table::render(&["SEQ", "TIME", "KIND", "NAMESPACE", "SUBJECT"], &rows));
            }
            Ok(())
        }
        EventsCommand::Watch { filter, json } => {
            watch(remote, filter, |event| {
                if json {
                    println!("{event}");
                } else {
                    println!("{}", row(event).join("  "));
                }
                ControlFlow::Continue(())
            })
            .await
        }
    }
}

fn row(event: &Value) -> Vec<String> {
    ["seq", "time", "kind", "namespace", "subject"].iter().map(|f| text(&event[*f])).collect()
}

/// After a connection that worked drops, reconnections are tried for this long.
const RECONNECT_FOR: Duration = Duration::from_secs(60);

/// Streams events to `each` until it breaks, the node closes for good, or the node stays
/// unreachable for [`RECONNECT_FOR`]. The first connection is not retried: a wrong URL or
/// key should fail at once, with its exit code.
pub async fn watch(
    remote: &Remote,
    mut filter: Filter,
    mut each: impl FnMut(&Value) -> ControlFlow<()>,
) -> Result<(), CliError> {
    let mut socket = remote.websocket(&["v1", "events"], &filter.query()).await?;
    loop {
        let why = loop {
            let Some(frame) = socket.next().await else { break "the connection ended".to_string() };
            match frame {
                Ok(Message::Text(text)) => {
                    let event: Value = serde_json::from_str(&text).map_err(|e| CliError {
                        code: exit::FAILURE,
                        message: format!("the node sent an event that is not JSON: {e}"),
                    })?;
                    filter.after = event["seq"].as_u64().or(filter.after);
                    if each(&event).is_break() {
                        return Ok(());
                    }
                }
                Ok(Message::Close(frame)) => {
                    let (code, reason) = frame
                        .map(|f| (f.code, f.reason.to_string()))
                        .unwrap_or((CloseCode::Status, String::new()));
                    closed(code, &reason)?;
                    break format!("the node closed the stream ({}: {reason})", u16::from(code));
                }
                Ok(_) => {}
                Err(e) => break e.to_string(),
            }
        };
        eprintln!("events: {why}; resuming after seq {}", filter.after.map_or("-".into(), |s| s.to_string()));
        socket = remote.reconnect(&["v1", "events"], &filter.query(), Some(RECONNECT_FOR)).await?;
    }
}

/// An expired cursor is the one close that must not be resumed: events were lost. The
/// others (slow client, shutdown) resume from the last seq; a credential that stopped
/// working fails the reconnection's upgrade with its own exit code.
fn closed(code: CloseCode, reason: &str) -> Result<(), CliError> {
    if u16::from(code) == crate::http::CURSOR_EXPIRED {
        return Err(CliError {
            code: exit::FAILURE,
            message: format!(
                "events were missed: the node no longer keeps events after the cursor ({reason}); watch again \
                 without --after"
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
#[path = "events/tests.rs"]
mod tests;
