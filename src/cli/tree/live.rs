//! The interactive `mark1 tree`: snapshots from `/v1/actors/watch`, keys from the
//! terminal, one redraw after each. The terminal is restored on every way out, panics
//! included (ratatui's `try_init` installs a hook that restores it first).

use std::io::IsTerminal;
use std::ops::ControlFlow;
use std::time::Duration;

use futures::StreamExt;
use mark1_supervisors::ActorSnapshot;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::model::TreeView;
use super::ui::{self, Header};
use crate::cli::client::{Remote, WebSocket};
use crate::cli::{exit, CliError};

enum Feed {
    Snapshot(Box<ActorSnapshot>),
    /// The connection dropped; the text says why and that it is being retried.
    Lost(String),
    Fatal(CliError),
}

pub(crate) enum Input {
    Key(KeyEvent),
    Resize,
}

pub async fn run(remote: Remote, interval: Duration) -> Result<(), CliError> {
    if !std::io::stdout().is_terminal() {
        return Err(CliError {
            code: exit::USAGE,
            message: "the interactive tree needs a terminal; use `mark1 tree --once [--json]`".into(),
        });
    }
    let query = vec![("interval", humantime::format_duration(interval).to_string())];
    // Connected and with a first snapshot before the screen is taken over, so a wrong URL
    // or key is reported as plain text with its exit code.
    let mut socket = remote.websocket(WATCH, &query).await?;
    let first = match next_snapshot(&mut socket).await {
        Ok(snapshot) => snapshot,
        Err(why) => return Err(CliError { code: exit::UNAVAILABLE, message: why }),
    };
    let (tx, feed) = mpsc::channel(4);
    let url = remote.base().as_str().trim_end_matches('/').to_string();
    let follower = tokio::spawn(follow(remote, query, socket, tx));
    let mut terminal = ratatui::try_init()
        .map_err(|e| CliError { code: exit::FAILURE, message: format!("cannot set up the terminal: {e}") })?;
    let outcome = interact(&mut terminal, TreeView::new(first), &url, feed, inputs()).await;
    ratatui::restore();
    follower.abort();
    outcome
}

const WATCH: &[&str] = &["v1", "actors", "watch"];

async fn interact(
    terminal: &mut ratatui::DefaultTerminal,
    mut view: TreeView,
    url: &str,
    mut feed: mpsc::Receiver<Feed>,
    mut inputs: mpsc::UnboundedReceiver<Input>,
) -> Result<(), CliError> {
    let mut state = "live".to_string();
    loop {
        terminal
            .draw(|frame| ui::draw(frame, &view, &Header { url, state: &state }))
            .map_err(|e| CliError { code: exit::FAILURE, message: format!("cannot draw: {e}") })?;
        tokio::select! {
            input = inputs.recv() => match input {
                Some(Input::Key(key)) => if on_key(&mut view, key).is_break() { return Ok(()) },
                Some(Input::Resize) => {}
                None => return Ok(()),
            },
            update = feed.recv() => match update {
                Some(Feed::Snapshot(snapshot)) => { view.update(*snapshot); state = "live".into(); }
                Some(Feed::Lost(why)) => state = why,
                Some(Feed::Fatal(e)) => return Err(e),
                None => return Ok(()),
            },
        }
    }
}

/// What a key does; `Break` quits.
fn on_key(view: &mut TreeView, key: KeyEvent) -> ControlFlow<()> {
    match key.code {
        KeyCode::Char('q') | KeyCode::Esc => return ControlFlow::Break(()),
        // Raw mode turns Ctrl-C into a key instead of a signal.
        KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => return ControlFlow::Break(()),
        KeyCode::Up | KeyCode::Char('k') => view.move_by(-1),
        KeyCode::Down | KeyCode::Char('j') => view.move_by(1),
        KeyCode::PageUp => view.move_by(-10),
        KeyCode::PageDown => view.move_by(10),
        KeyCode::Home => view.move_by(isize::MIN),
        KeyCode::End => view.move_by(isize::MAX),
        KeyCode::Left | KeyCode::Char('h') => view.collapse(),
        KeyCode::Right | KeyCode::Char('l') => view.expand(),
        KeyCode::Enter | KeyCode::Char(' ') => view.toggle(),
        _ => {}
    }
    ControlFlow::Continue(())
}

/// Terminal events, read on a thread of their own: crossterm's reads block.
pub(crate) fn inputs() -> mpsc::UnboundedReceiver<Input> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || loop {
        let input = match event::poll(Duration::from_millis(200)) {
            Ok(true) => match event::read() {
                Ok(Event::Key(key)) if key.kind == KeyEventKind::Press => Input::Key(key),
                Ok(Event::Resize(..)) => Input::Resize,
                Ok(_) => continue,
                Err(_) => return,
            },
            Ok(false) if tx.is_closed() => return,
            Ok(false) => continue,
            Err(_) => return,
        };
        if tx.send(input).is_err() {
            return;
        }
    });
    rx
}

async fn next_snapshot(socket: &mut WebSocket) -> Result<ActorSnapshot, String> {
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) => {
                return serde_json::from_str(&text)
                    .map_err(|e| format!("the node sent a tree that does not parse: {e}"))
            }
            Some(Ok(Message::Close(frame))) => {
                return Err(frame
                    .map_or("closed".into(), |f| format!("closed ({}: {})", u16::from(f.code), f.reason)))
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("the connection ended".into()),
        }
    }
}

/// Feeds snapshots to the screen, reconnecting while it stays open.
async fn follow(
    remote: Remote,
    query: Vec<(&'static str, String)>,
    mut socket: WebSocket,
    tx: mpsc::Sender<Feed>,
) {
    loop {
        let why = loop {
            match next_snapshot(&mut socket).await {
                Ok(snapshot) => {
                    if tx.send(Feed::Snapshot(Box::new(snapshot))).await.is_err() {
                        return;
                    }
                }
                Err(why) => break why,
            }
        };
        if tx.send(Feed::Lost(format!("reconnecting ({why})"))).await.is_err() {
            return;
        }
        socket = match remote.reconnect(WATCH, &query, None).await {
            Ok(socket) => socket,
            Err(e) => {
                let _ = tx.send(Feed::Fatal(e)).await;
                return;
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use axum::extract::ws::{Message as WsMessage, WebSocketUpgrade};
    use axum::routing::get;

    use super::super::model::tests::{actor, node};
    use super::*;
    use crate::cli::client::RemoteArgs;

    /// A stand-in for `/v1/actors/watch`: each connection sends one tree named after its
    /// number, then closes.
    async fn stand_in() -> Remote {
        let connections = Arc::new(AtomicUsize::new(0));
        let app = axum::Router::new().route(
            "/v1/actors/watch",
            get(move |upgrade: WebSocketUpgrade| {
                let n = connections.fetch_add(1, Ordering::Relaxed);
                async move {
                    upgrade.on_upgrade(move |mut socket| async move {
                        let tree = serde_json::to_string(&actor(&format!("n{n}"), vec![])).unwrap();
                        let _ = socket.send(WsMessage::Text(tree.into())).await;
                        let _ = socket.send(WsMessage::Close(None)).await;
                    })
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Remote::new(&RemoteArgs { url, api_key: None }).unwrap()
    }

    #[tokio::test]
    async fn the_feed_reconnects_when_the_watch_drops() {
        let remote = stand_in().await;
        let mut socket = remote.websocket(WATCH, &[]).await.unwrap();
        assert_eq!(next_snapshot(&mut socket).await.unwrap().name, "n0");
        let (tx, mut feed) = mpsc::channel(4);
        let follower = tokio::spawn(follow(remote, vec![], socket, tx));
        let mut seen = Vec::new();
        while seen.len() < 3 {
            match tokio::time::timeout(Duration::from_secs(10), feed.recv()).await.expect("in time") {
                Some(Feed::Snapshot(s)) => seen.push(s.name),
                Some(Feed::Lost(why)) => seen.push(format!("lost: {why}")),
                Some(Feed::Fatal(e)) => panic!("{}", e.message),
                None => panic!("the feed ended"),
            }
        }
        assert!(seen[0].starts_with("lost: reconnecting"), "{seen:?}");
        assert_eq!(seen[1], "n1");
        assert!(seen[2].starts_with("lost: reconnecting"), "{seen:?}");
        follower.abort();
    }

    fn press(view: &mut TreeView, code: KeyCode) -> ControlFlow<()> {
        on_key(view, KeyEvent::new(code, KeyModifiers::NONE))
    }

    #[test]
    fn keys_move_toggle_and_quit() {
        let mut view = TreeView::new(node());
        assert!(press(&mut view, KeyCode::End).is_continue());
        assert_eq!(view.selected().name, "n/agents/pool:default/echo");
        assert!(press(&mut view, KeyCode::Enter).is_continue());
        assert!(press(&mut view, KeyCode::Down).is_continue());
        assert_eq!(view.selected().name, "n/agents/pool:default/echo/worker-0");
        assert!(press(&mut view, KeyCode::Home).is_continue());
        assert_eq!(view.selected_index(), 0);
        assert!(press(&mut view, KeyCode::Char('q')).is_break());
        assert!(press(&mut view, KeyCode::Esc).is_break());
        assert!(on_key(&mut view, KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)).is_break());
    }
}
