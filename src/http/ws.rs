//! WebSocket sessions: the event stream of `/v1/events` and the tree of
//! `/v1/actors/watch`.
//!
//! A session is a producer task filling a bounded channel of text frames, and a loop
//! that writes them to the socket, pings the client, reads what it sends (pongs, close)
//! and watches for shutdown. Memory per client is bounded by the channel, tungstenite's
//! write buffer and the socket's: a client too slow for the event stream is dropped
//! rather than buffered for.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures::stream::{SplitSink, StreamExt};
use futures::SinkExt;
use mark1_actors::events::{EventsError, Subscription};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::routes::events::EventView;
use super::state::EdgeState;

/// How often the server pings; a client silent (not even a pong) for three of these is gone.
const PING_EVERY: Duration = Duration::from_secs(15);
/// A frame the socket does not take within this is a dead peer: the connection is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Close codes (RFC 6455 leaves 4000–4999 to applications).
pub const CURSOR_EXPIRED: u16 = 4001;
pub const SLOW_CLIENT: u16 = 4008;
const GOING_AWAY: u16 = 1001;
const INTERNAL: u16 = 1011;

/// How a session ends.
#[derive(Debug)]
enum Ending {
    /// With this close frame.
    Close(u16, String),
    /// The peer closed or vanished: nothing more to send.
    Gone,
}

/// Streams the subscription's events, one text frame each, in seq order.
pub async fn stream_events(
    socket: WebSocket,
    subscription: Subscription,
    payloads: bool,
    buffer: usize,
    edge: Arc<EdgeState>,
) {
    let (frames, queue) = mpsc::channel(buffer.max(1));
    let producer = tokio::spawn(pump(subscription, frames, payloads));
    drive(socket, queue, producer, &edge).await;
}

/// Moves events from the subscription into the client's queue. While the subscription
/// catches up (from the store or the ring) it waits for the client: the client set the
/// pace by asking for old events. Once live it never waits: an event that finds the
/// queue full (`server.ws_buffer` frames) means the client fell that far behind.
async fn pump(mut subscription: Subscription, frames: mpsc::Sender<Utf8Bytes>, payloads: bool) -> Ending {
    let mut live = false;
    loop {
        let event = match subscription.next().await {
            Ok(Some(event)) => event,
            Ok(None) => return Ending::Close(GOING_AWAY, "node shutting down".into()),
            Err(e @ EventsError::CursorExpired { .. }) => {
                return Ending::Close(CURSOR_EXPIRED, format!("cursor_expired: {e}"))
            }
            Err(EventsError::Store(e)) => return Ending::Close(INTERNAL, format!("unavailable: {e}")),
        };
        let frame = serde_json::to_string(&EventView::new(&event, payloads)).expect("an event serializes");
        if subscription.caught_up() && !live {
            // The catch-up may have filled the queue; the client is judged from when it
            // has taken all of it.
            if frames.reserve_many(frames.max_capacity()).await.is_err() {
                return Ending::Gone;
            }
            live = true;
        }
        live &= subscription.caught_up();
        let sent = if live {
            match frames.try_send(frame.into()) {
                Err(mpsc::error::TrySendError::Full(_)) => {
                    return Ending::Close(SLOW_CLIENT, "slow_client".into())
                }
                other => other.map_err(drop),
            }
        } else {
            frames.send(frame.into()).await.map_err(drop)
        };
        if sent.is_err() {
            return Ending::Gone;
        }
    }
}

/// Sends the tree at once and then every `interval`. A slow client delays snapshots
/// rather than queueing them: each one replaces the last.
pub async fn watch_tree(socket: WebSocket, interval: Duration, edge: Arc<EdgeState>) {
    let (frames, queue) = mpsc::channel::<Utf8Bytes>(1);
    let node = edge.node.clone();
    let producer = tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let frame = serde_json::to_string(&node.tree()).expect("a snapshot serializes");
            if frames.send(frame.into()).await.is_err() {
                return Ending::Gone;
            }
        }
    });
    drive(socket, queue, producer, &edge).await;
}

/// Writes the producer's frames until it ends, the client leaves or the node stops,
/// then closes with the reason.
async fn drive(
    socket: WebSocket,
    mut queue: mpsc::Receiver<Utf8Bytes>,
    mut producer: JoinHandle<Ending>,
    edge: &EdgeState,
) {
    let (mut sink, mut incoming) = socket.split();
    let mut ping = tokio::time::interval_at(Instant::now() + PING_EVERY, PING_EVERY);
    let mut heard = Instant::now();
    let node_stopped = edge.node.stopped();
    tokio::pin!(node_stopped);
    let shutting_down = || Ending::Close(GOING_AWAY, "node shutting down".into());
    let ending = loop {
        tokio::select! {
            // Endings first: a producer that ended is not kept waiting behind its queue.
            biased;
            _ = edge.stop.cancelled() => break shutting_down(),
            _ = &mut node_stopped => break shutting_down(),
            ended = &mut producer => {
                break ended.unwrap_or_else(|e| Ending::Close(INTERNAL, format!("internal error: {e}")))
            }
            message = incoming.next() => match message {
                Some(Ok(Message::Close(_)) | Err(_)) | None => break Ending::Gone,
                Some(Ok(_)) => heard = Instant::now(),
            },
            _ = ping.tick() => {
                if heard.elapsed() > 3 * PING_EVERY || send(&mut sink, Message::Ping(Bytes::new())).await.is_err() {
                    break Ending::Gone;
                }
            }
            Some(frame) = queue.recv() => {
                if send(&mut sink, Message::Text(frame)).await.is_err() {
                    break Ending::Gone;
                }
            }
        }
    };
    producer.abort();
    if let Ending::Close(code, reason) = ending {
        tracing::debug!(code, %reason, "websocket closed");
        let frame = CloseFrame { code, reason: truncated(reason).into() };
        let _ = send(&mut sink, Message::Close(Some(frame))).await;
    }
}

async fn send(sink: &mut SplitSink<WebSocket, Message>, message: Message) -> Result<(), ()> {
    match tokio::time::timeout(WRITE_TIMEOUT, sink.send(message)).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

/// A close reason holds at most 123 bytes (RFC 6455 §5.5).
fn truncated(mut reason: String) -> String {
    if reason.len() > 123 {
        let mut end = 123;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
    }
    reason
}

#[cfg(test)]
mod tests {
    #[test]
    fn close_reasons_fit_a_control_frame() {
        let long = "é".repeat(100);
        let cut = super::truncated(long);
        assert!(cut.len() <= 123 && cut.chars().all(|c| c == 'é'));
        assert_eq!(super::truncated("slow_client".into()), "slow_client");
    }
}
