//! `mark1 runs watch ID`: the run's events from the `/v1/events` WebSocket, filtered to
//! the run and resumed after the last seq when the connection drops, move the
//! [`RunModel`] on; a read of the run view after each batch of events, after a
//! reconnection and every `interval` fills in the rest (and whatever events were missed).
//! `--plain` prints each [`Transition`](super::model::Transition) as a line; otherwise the
//! run is drawn full-screen ([`super::ui`]). Either way the command ends with the run:
//! 0 when it succeeded, 1 when it failed or was cancelled.

use std::io::IsTerminal;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use ratatui::crossterm::event::{KeyCode, KeyModifiers};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::model::{depends_on, RunModel};
use super::ui::{self, Header};
use crate::cli::client::{Remote, WebSocket};
use crate::cli::tree::{inputs, Input};
use crate::cli::{exit, CliError};

const EVENTS: &[&str] = &["v1", "events"];
/// After a connection that worked drops, reconnections are tried for this long.
const RECONNECT_FOR: Duration = Duration::from_secs(60);

/// What the event stream tells the watcher.
#[derive(Debug)]
enum Feed {
    Event(Value),
    /// The connection dropped; being retried.
    Lost(String),
    /// Connected again; events in between may have been missed (an expired cursor).
    Resumed,
    Fatal(CliError),
}

pub async fn run(remote: &Remote, id: &str, plain: bool, interval: Duration) -> Result<(), CliError> {
    if !plain && !std::io::stdout().is_terminal() {
        return Err(CliError {
            code: exit::USAGE,
            message: "the live view needs a terminal; use `mark1 runs watch ID --plain`".into(),
        });
    }
    let (watcher, first) = Watcher::start(remote, id, interval, plain).await?;
    if plain {
        watcher.plain(first, &mut std::io::stdout()).await
    } else {
        watcher.screen().await
    }
}

/// The filter of `/v1/events`: this run's events.
fn query(id: &str, after: Option<u64>) -> Vec<(&'static str, String)> {
    let mut query = vec![("runs", id.to_string())];
    query.extend(after.map(|a| ("after", a.to_string())));
    query
}

/// The `depends_on` of the run's definition version; none when it cannot be read (the
/// view works without them).
pub(super) async fn definition_deps(
    remote: &Remote,
    view: &Value,
) -> Option<std::collections::HashMap<String, Vec<String>>> {
    let workflow = view["workflow"].as_str()?;
    let mut query: Vec<(&'static str, String)> = vec![];
    query.extend(view["version"].as_u64().map(|v| ("version", v.to_string())));
    // The run's namespace: an admin may watch a run of any.
    query.extend(view["namespace"].as_str().map(|n| ("namespace", n.to_string())));
    let record = remote.get(&["v1", "workflows", workflow], query).await.ok()?;
    Some(depends_on(&record["def"]))
}

struct Watcher<'a> {
    remote: &'a Remote,
    follower: tokio::task::JoinHandle<()>,
    id: &'a str,
    model: RunModel,
    feed: mpsc::UnboundedReceiver<Feed>,
    interval: Duration,
    /// The state of the event stream, shown on the screen (and on stderr in plain mode,
    /// which the screen would be garbled by).
    connection: String,
    plain: bool,
}

/// What one turn of the watcher saw.
enum Turn {
    /// The model may have changed; these are the lines it printed in plain mode.
    Changed(Vec<String>),
    Quit,
}

impl Drop for Watcher<'_> {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

impl<'a> Watcher<'a> {
    /// Subscribes to the run's events, then reads the run (so nothing that happens after
    /// the read is missed) and its definition; answers what the first view shows.
    async fn start(
        remote: &'a Remote,
        id: &'a str,
        interval: Duration,
        plain: bool,
    ) -> Result<(Watcher<'a>, Vec<String>), CliError> {
        let socket = match remote.websocket(EVENTS, &query(id, None)).await {
            Ok(socket) => socket,
            // An id that is no run id is refused by the filter; a read says "not found"
            // for it, as `runs get` does.
            Err(e) if e.code == exit::USAGE => {
                remote.get(&["v1", "runs", id], vec![]).await?;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        let view = remote.get(&["v1", "runs", id], vec![]).await?;
        let mut model = RunModel::new(id);
        if let Some(deps) = definition_deps(remote, &view).await {
            model.set_depends_on(deps);
        }
        let first = model.apply_view(&view).iter().map(ToString::to_string).collect();
        let (tx, feed) = mpsc::unbounded_channel();
        let follower = tokio::spawn(follow(remote.clone(), id.to_string(), socket, tx));
        let connection = "live".into();
        Ok((Watcher { remote, follower, id, model, feed, interval, connection, plain }, first))
    }

    /// Prints `first`, then a line per transition until the run ends.
    async fn plain(mut self, first: Vec<String>, out: &mut impl std::io::Write) -> Result<(), CliError> {
        let mut tick = ticker(self.interval);
        let mut lines = first;
        loop {
            for line in lines.drain(..) {
                writeln!(out, "{line}").and_then(|_| out.flush()).map_err(|e| CliError {
                    code: exit::FAILURE,
                    message: format!("cannot write to standard output: {e}"),
                })?;
            }
            if self.model.is_final() {
                return self.outcome();
            }
            let turn = tokio::select! {
                feed = self.feed.recv() => self.on_feed(feed).await?,
                _ = tick.tick() => self.refresh().await?,
            };
            if let Turn::Changed(more) = turn {
                lines = more;
            }
        }
    }

    async fn screen(mut self) -> Result<(), CliError> {
        if self.model.is_final() {
            return self.summary();
        }
        let mut terminal = ratatui::try_init().map_err(|e| CliError {
            code: exit::FAILURE,
            message: format!("cannot set up the terminal: {e}"),
        })?;
        let outcome = self.interact(&mut terminal).await;
        ratatui::restore();
        match outcome {
            Ok(Turn::Quit) => Ok(()),
            Ok(Turn::Changed(_)) => self.summary(),
            Err(e) => Err(e),
        }
    }

    /// Draws after every change until the run ends (`Changed`) or the user quits.
    async fn interact(&mut self, terminal: &mut ratatui::DefaultTerminal) -> Result<Turn, CliError> {
        let url = self.remote.base().as_str().trim_end_matches('/').to_string();
        let mut keys = inputs();
        let mut tick = ticker(self.interval);
        let mut clock = ticker(Duration::from_secs(1));
        let mut selected = 0usize;
        while !self.model.is_final() {
            let header = Header { url: &url, connection: &self.connection };
            terminal
                .draw(|frame| ui::draw(frame, &self.model, &header, selected, SystemTime::now()))
                .map_err(|e| CliError { code: exit::FAILURE, message: format!("cannot draw: {e}") })?;
            let turn = tokio::select! {
                feed = self.feed.recv() => self.on_feed(feed).await?,
                _ = tick.tick() => self.refresh().await?,
                _ = clock.tick() => Turn::Changed(Vec::new()), // elapsed time and countdowns
                input = keys.recv() => match input {
                    Some(Input::Key(key)) => match key.code {
                        KeyCode::Char('q') | KeyCode::Esc => Turn::Quit,
                        KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => Turn::Quit,
                        KeyCode::Up | KeyCode::Char('k') => { selected = selected.saturating_sub(1); Turn::Changed(Vec::new()) }
                        KeyCode::Down | KeyCode::Char('j') => {
                            selected = (selected + 1).min(self.model.ordered().len().saturating_sub(1));
                            Turn::Changed(Vec::new())
                        }
                        _ => Turn::Changed(Vec::new()),
                    },
                    Some(Input::Resize) => Turn::Changed(Vec::new()),
                    None => Turn::Quit,
                },
            };
            if matches!(turn, Turn::Quit) {
                return Ok(Turn::Quit);
            }
        }
        Ok(Turn::Changed(Vec::new()))
    }

    /// One message of the feed, then every one already waiting, then one read of the run.
    async fn on_feed(&mut self, first: Option<Feed>) -> Result<Turn, CliError> {
        let mut lines = Vec::new();
        let mut next = first;
        loop {
            match next {
                Some(Feed::Event(event)) => {
                    lines.extend(self.model.apply_event(&event).iter().map(ToString::to_string));
                }
                Some(Feed::Lost(why)) => {
                    if self.plain {
                        eprintln!("events: {why}; reconnecting");
                    }
                    self.connection = format!("reconnecting ({why})");
                }
                Some(Feed::Resumed) => self.connection = "live".into(),
                Some(Feed::Fatal(e)) => return Err(e),
                None => {
                    return Err(CliError { code: exit::FAILURE, message: "the event stream stopped".into() })
                }
            }
            match self.feed.try_recv() {
                Ok(feed) => next = Some(feed),
                Err(_) => break,
            }
        }
        if let Turn::Changed(more) = self.refresh().await? {
            lines.extend(more);
        }
        Ok(Turn::Changed(lines))
    }

    /// Reads the run view and merges it. A node that does not answer is waited for; a run
    /// that is gone, or a key that stopped working, ends the watch.
    async fn refresh(&mut self) -> Result<Turn, CliError> {
        match self.remote.get(&["v1", "runs", self.id], vec![]).await {
            Ok(view) => {
                Ok(Turn::Changed(self.model.apply_view(&view).iter().map(ToString::to_string).collect()))
            }
            Err(e) if e.code == exit::UNAVAILABLE => {
                self.connection = format!("cannot read the run ({})", e.message);
                Ok(Turn::Changed(Vec::new()))
            }
            Err(e) => Err(e),
        }
    }

    /// The run's table once the screen is left, as `runs get` prints it.
    fn summary(&self) -> Result<(), CliError> {
        print!("{}", super::table::render(&super::RUN_HEADERS, &[self.run_row()]));
        println!();
        print!(
            "{}",
            super::table::render(&super::STEP_HEADERS, &super::step_rows(&self.model, SystemTime::now()))
        );
        self.outcome()
    }

    fn run_row(&self) -> Vec<String> {
        let m = &self.model;
        let version = m.version.map(|v| format!(" v{v}")).unwrap_or_default();
        let created = m.created_at.map_or("-".into(), |t| humantime::format_rfc3339_seconds(t).to_string());
        let error = m.error.clone().unwrap_or_else(|| "-".into());
        vec![
            m.id.clone(),
            format!("{}/{}{version}", m.namespace, m.workflow),
            m.state.clone(),
            created,
            error,
        ]
    }

    fn outcome(&self) -> Result<(), CliError> {
        let m = &self.model;
        match (m.state.as_str(), &m.error) {
            ("succeeded", _) => Ok(()),
            (state, Some(error)) => {
                Err(CliError { code: exit::FAILURE, message: format!("run {} {state}: {error}", m.id) })
            }
            (state, None) => Err(CliError { code: exit::FAILURE, message: format!("run {} {state}", m.id) }),
        }
    }
}

/// An interval whose first tick is one period away, not at once.
fn ticker(period: Duration) -> tokio::time::Interval {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick
}

/// Feeds the run's events to the watcher, reconnecting after the last seq seen while it
/// listens. An expired cursor resumes from the present: the view read on `Resumed`
/// covers the gap.
async fn follow(remote: Remote, id: String, mut socket: WebSocket, tx: mpsc::UnboundedSender<Feed>) {
    let mut after: Option<u64> = None;
    loop {
        let why = loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => {
                    let Ok(event) = serde_json::from_str::<Value>(&text) else { continue };
                    after = event["seq"].as_u64().or(after);
                    if tx.send(Feed::Event(event)).is_err() {
                        return;
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) =
                        frame.map_or((0, String::new()), |f| (u16::from(f.code), f.reason.to_string()));
                    if code == crate::http::CURSOR_EXPIRED {
                        after = None;
                    }
                    break format!("the node closed the stream ({code}: {reason})");
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => break e.to_string(),
                None => break "the connection ended".into(),
            }
        };
        if tx.send(Feed::Lost(why)).is_err() {
            return;
        }
        socket = match remote.reconnect(EVENTS, &query(&id, after), Some(RECONNECT_FOR)).await {
            Ok(socket) => socket,
            Err(e) => {
                let _ = tx.send(Feed::Fatal(e));
                return;
            }
        };
        if tx.send(Feed::Resumed).is_err() {
            return;
        }
    }
}

#[cfg(test)]
#[path = "watch/tests.rs"]
mod tests;
