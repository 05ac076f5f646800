//! Streamed answers: the port's chunks to OpenAI's (a server streaming), and OpenAI's
//! chunks back to the port's (a client reading), where tool calls arrive in fragments.

use std::collections::BTreeMap;

use mark1_actors::ports::model::{self as port, ChatChunk};

use super::convert::{finish_reason, parse_arguments};
use super::*;

/// Writes one stream's chunks: every chunk carries the same id, time and model, and the
/// first names the assistant role.
#[derive(Debug)]
pub struct ChunkEncoder {
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    role_sent: bool,
    tool_calls: u32,
}

impl ChunkEncoder {
    /// `include_usage` is the request's `stream_options.include_usage`.
    pub fn new(id: impl Into<String>, created: u64, model: impl Into<String>, include_usage: bool) -> Self {
        ChunkEncoder {
            id: id.into(),
            created,
            model: model.into(),
            include_usage,
            role_sent: false,
            tool_calls: 0,
        }
    }

    /// A delta gives one chunk; `Done` gives the finish chunk, then the usage chunk if
    /// the client asked for it. Tool calls go whole, each under the next index.
    pub fn encode(&mut self, chunk: &ChatChunk) -> Vec<ChatCompletionChunk> {
        match chunk {
            ChatChunk::Delta { content, tool_calls } => {
                let tool_calls = (tool_calls.iter())
                    .map(|call| {
                        self.tool_calls += 1;
                        ToolCallDelta {
                            index: self.tool_calls - 1,
                            id: Some(call.id.clone()),
                            kind: Some("function".into()),
                            function: FunctionDelta {
                                name: Some(call.name.clone()),
                                arguments: Some(call.arguments.to_string()),
                            },
                        }
                    })
                    .collect();
                let content = (!content.is_empty()).then(|| content.clone());
                vec![self.delta(Delta { role: None, content, tool_calls })]
            }
            ChatChunk::Done { usage, finish_reason } => {
                let finish = ChunkChoice {
                    index: 0,
                    delta: Delta::default(),
                    finish_reason: Some((*finish_reason).into()),
                };
                let mut chunks = vec![self.chunk(vec![finish], None)];
                if self.include_usage {
                    chunks.push(self.chunk(Vec::new(), Some((*usage).into())));
                }
                chunks
            }
        }
    }

    /// A chunk of choice 0 with this delta (for a server that sends its own fragments).
    pub fn delta(&mut self, mut delta: Delta) -> ChatCompletionChunk {
        if !self.role_sent {
            self.role_sent = true;
            delta.role = Some(Role::Assistant);
        }
        self.chunk(vec![ChunkChoice { index: 0, delta, finish_reason: None }], None)
    }

    fn chunk(&self, choices: Vec<ChunkChoice>, usage: Option<Usage>) -> ChatCompletionChunk {
        ChatCompletionChunk {
            id: self.id.clone(),
            object: chat_completion_chunk(),
            created: self.created,
            model: self.model.clone(),
            choices,
            usage,
        }
    }
}

/// Reads one stream's chunks: text passes through as it comes, tool-call fragments are
/// gathered by index and given out whole at the end, with the finish reason and usage.
#[derive(Debug, Default)]
pub struct ChunkDecoder {
    calls: BTreeMap<u32, PartialCall>,
    finish: Option<FinishReason>,
    usage: Option<Usage>,
}

#[derive(Debug, Default)]
struct PartialCall {
    id: String,
    name: String,
    arguments: String,
}

impl ChunkDecoder {
    /// The text delta to pass on now, if this chunk has text. Only choice 0 is read.
    pub fn push(&mut self, chunk: ChatCompletionChunk) -> Option<ChatChunk> {
        if chunk.usage.is_some() {
            self.usage = chunk.usage;
        }
        let choice = chunk.choices.into_iter().find(|choice| choice.index == 0)?;
        if choice.finish_reason.is_some() {
            self.finish = choice.finish_reason;
        }
        for fragment in choice.delta.tool_calls {
            let call = self.calls.entry(fragment.index).or_default();
            if let Some(id) = fragment.id.filter(|id| !id.is_empty()) {
                call.id = id;
            }
            // OpenAI sends the name once; some servers split it like the arguments.
            call.name.push_str(fragment.function.name.as_deref().unwrap_or_default());
            call.arguments.push_str(fragment.function.arguments.as_deref().unwrap_or_default());
        }
        let content = choice.delta.content.filter(|content| !content.is_empty())?;
        Some(ChatChunk::Delta { content, tool_calls: Vec::new() })
    }

    /// Whether a finish reason has come: the answer is complete.
    pub fn finished(&self) -> bool {
        self.finish.is_some()
    }

    /// The stream's end: a delta with the tool calls, if any, then `Done`. A server that
    /// ignores `include_usage` reports no usage, counted as zero tokens.
    pub fn finish(self) -> Result<Vec<ChatChunk>, WireError> {
        let tool_calls = (self.calls.into_iter())
            .map(|(index, call)| {
                let field = || format!("choices[0].delta.tool_calls[{index}].function.arguments");
                Ok(port::ToolCall {
                    // Ids only tie results to calls within one answer, so the index will do.
                    id: if call.id.is_empty() { format!("call_{index}") } else { call.id },
                    arguments: parse_arguments(&call.arguments, field)?,
                    name: call.name,
                })
            })
            .collect::<Result<Vec<_>, WireError>>()?;
        let finish_reason = finish_reason(self.finish, !tool_calls.is_empty());
        let done = ChatChunk::Done { usage: self.usage.map(Into::into).unwrap_or_default(), finish_reason };
        Ok(if tool_calls.is_empty() {
            vec![done]
        } else {
            vec![ChatChunk::Delta { content: String::new(), tool_calls }, done]
        })
    }
}
