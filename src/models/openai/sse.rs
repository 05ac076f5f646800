//! Reading a streamed chat answer: server-sent events, each `data:` a chunk, until
//! `data: [DONE]`.

use std::collections::VecDeque;

use eventsource_stream::{EventStreamError, Eventsource};
use futures::{Stream, StreamExt};
use mark1_actors::ports::model::{ChatChunk, ModelError};
use serde::Deserialize;

use super::wire::{ChatCompletionChunk, ChunkDecoder, ErrorBody, DONE};

/// One event's data: a chunk, or an error the server reports after the 200 was sent.
#[derive(Deserialize)]
#[serde(untagged)]
enum StreamEvent {
    Error(ErrorBody),
    Chunk(ChatCompletionChunk),
}

/// The port's chunks from a response body. The stream ends after `Done` or after the
/// first error; dropping it drops the body, which closes the connection.
pub(super) fn chat_chunks<B, E>(
    provider: String,
    body: impl Stream<Item = Result<B, E>> + Send + Unpin + 'static,
) -> impl Stream<Item = Result<ChatChunk, ModelError>> + Send + 'static
where
    B: AsRef<[u8]> + Send + 'static,
    E: std::error::Error + Send + 'static,
{
    let reader = Reader {
        provider,
        events: body.eventsource(),
        decoder: ChunkDecoder::default(),
        queue: VecDeque::new(),
        ended: false,
    };
    futures::stream::unfold(Some(reader), |reader| async move {
        let mut reader = reader?;
        loop {
            if let Some(chunk) = reader.queue.pop_front() {
                return Some((Ok(chunk), Some(reader)));
            }
            if reader.ended {
                return None;
            }
            if let Err(error) = reader.step().await {
                return Some((Err(error), None));
            }
        }
    })
}

struct Reader<S> {
    provider: String,
    events: eventsource_stream::EventStream<S>,
    decoder: ChunkDecoder,
    queue: VecDeque<ChatChunk>,
    ended: bool,
}

impl<S, B, E> Reader<S>
where
    S: Stream<Item = Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
    E: std::error::Error + 'static,
{
    /// Reads one event and queues what it gives.
    async fn step(&mut self) -> Result<(), ModelError> {
        let event = match self.events.next().await {
            Some(Ok(event)) => event,
            // The body was cut: the server (or the path to it) went away mid-answer,
            // which another provider may not do; the answer itself was well formed.
            Some(Err(EventStreamError::Transport(e))) => return Err(unavailable(&self.provider, &e)),
            Some(Err(e)) => return Err(self.invalid(format!("the stream is not server-sent events: {e}"))),
            None if self.decoder.finished() => return self.end(),
            // The body ended cleanly but the answer did not: the server broke the protocol.
            None => return Err(self.invalid("the stream ended before the answer finished")),
        };
        let data = event.data.trim();
        if data == DONE {
            return self.end();
        }
        if data.is_empty() {
            return Ok(());
        }
        match serde_json::from_str(data) {
            Ok(StreamEvent::Chunk(chunk)) => self.queue.extend(self.decoder.push(chunk)),
            Ok(StreamEvent::Error(body)) => {
                let reason = format!("the server failed mid-answer: {}", body.error.message);
                return Err(ModelError::Unavailable { provider: self.provider.clone(), reason });
            }
            Err(e) => return Err(self.invalid(format!("a stream event is not a chunk: {e}"))),
        }
        Ok(())
    }

    fn end(&mut self) -> Result<(), ModelError> {
        self.ended = true;
        let chunks = std::mem::take(&mut self.decoder).finish().map_err(|e| self.invalid(e))?;
        self.queue.extend(chunks);
        Ok(())
    }

    fn invalid(&self, reason: impl ToString) -> ModelError {
        ModelError::InvalidResponse { provider: self.provider.clone(), reason: reason.to_string() }
    }
}

/// A transport failure: refused, reset or cut. The innermost cause says which
/// ("Connection refused"); reqwest's own text stops at "error sending request".
pub(super) fn unavailable(provider: &str, error: &(dyn std::error::Error + 'static)) -> ModelError {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    ModelError::Unavailable { provider: provider.to_string(), reason: cause.to_string() }
}
