//! Ollama's answer lines (from `/api/chat` or `/api/generate`) as the port's whole answers
//! and streams.
//!
//! A stream ends with exactly one `Done`, or with an error: ollama-rs skips lines it cannot
//! parse and simply ends when the body does, so a stream that ends without Ollama's last
//! (`done`) line is reported as an invalid answer here, never as a finished one.

use std::collections::VecDeque;

use futures::stream::{self, BoxStream, StreamExt};
use mark1_actors::ports::model::{ChatChunk, ChatMessage, ChatResponse, ChatStream, ModelError, Role, Usage};
use ollama_rs::generation::chat::ChatMessageResponse;
use ollama_rs::generation::completion::GenerationResponse;
use ollama_rs::generation::tools;

use super::convert;

/// One line of an answer; a whole answer is a single line with `done`.
pub(super) struct Line {
    content: String,
    tool_calls: Vec<tools::ToolCall>,
    /// Prompt and answer tokens, on the last line.
    counts: Option<(u64, u64)>,
    done: bool,
}

impl From<ChatMessageResponse> for Line {
    fn from(response: ChatMessageResponse) -> Self {
        Line {
            content: response.message.content,
            tool_calls: response.message.tool_calls,
            counts: response.final_data.map(|end| (end.prompt_eval_count, end.eval_count)),
            done: response.done,
        }
    }
}

impl From<GenerationResponse> for Line {
    fn from(response: GenerationResponse) -> Self {
        Line {
            content: response.response,
            tool_calls: Vec::new(),
            counts: response.prompt_eval_count.zip(response.eval_count),
            done: response.done,
        }
    }
}

/// What the answer needs besides its lines.
pub(super) struct Call {
    pub provider: String,
    pub max_tokens: Option<u32>,
}

impl Call {
    fn usage(&self, counts: Option<(u64, u64)>) -> Usage {
        counts.map(|(prompt, answer)| convert::usage(prompt, answer)).unwrap_or_default()
    }

    /// The answer to a call that did not stream.
    pub(super) fn complete(&self, model: String, line: Line) -> ChatResponse {
        let tool_calls = convert::tool_calls(line.tool_calls, 0);
        let usage = self.usage(line.counts);
        let finish_reason = convert::finish_reason(!tool_calls.is_empty(), &usage, self.max_tokens);
        let message = ChatMessage { tool_calls, ..ChatMessage::new(Role::Assistant, line.content) };
        ChatResponse { provider: self.provider.clone(), model, message, usage, finish_reason, cost: 0.0 }
    }

    /// The port's stream for a stream of lines.
    pub(super) fn stream(self, lines: BoxStream<'static, Result<Line, ModelError>>) -> ChatStream {
        let state = Streaming { call: self, lines, calls: 0, ready: VecDeque::new(), over: false };
        stream::unfold(state, |mut state| async move {
            loop {
                if let Some(chunk) = state.ready.pop_front() {
                    return Some((chunk, state));
                }
                if state.over {
                    return None;
                }
                match state.lines.next().await {
                    Some(Ok(line)) => state.take(line),
                    Some(Err(error)) => state.end(Err(error)),
                    None => state.end(Err(ModelError::InvalidResponse {
                        provider: state.call.provider.clone(),
                        reason: "the answer ended before its last (done) line".into(),
                    })),
                }
            }
        })
        .boxed()
    }
}

struct Streaming {
    call: Call,
    lines: BoxStream<'static, Result<Line, ModelError>>,
    /// Tool calls so far, to number the next ones.
    calls: usize,
    ready: VecDeque<Result<ChatChunk, ModelError>>,
    over: bool,
}

impl Streaming {
    fn take(&mut self, line: Line) {
        let tool_calls = convert::tool_calls(line.tool_calls, self.calls);
        self.calls += tool_calls.len();
        if !line.content.is_empty() || !tool_calls.is_empty() {
            self.ready.push_back(Ok(ChatChunk::Delta { content: line.content, tool_calls }));
        }
        if line.done {
            let usage = self.call.usage(line.counts);
            let finish_reason = convert::finish_reason(self.calls > 0, &usage, self.call.max_tokens);
            self.end(Ok(ChatChunk::Done { usage, finish_reason }));
        }
    }

    /// The last item; lines after it are not read.
    fn end(&mut self, last: Result<ChatChunk, ModelError>) {
        self.ready.push_back(last);
        self.over = true;
    }
}
