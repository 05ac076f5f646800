//! Process agent protocol v1 (DESIGN §13.6, docs/process-protocol.md): the message
//! types and a line reader that never buffers more than its limit.

use std::time::SystemTime;

use mark1_actors::ports::TaskContext;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// The protocol version this node speaks; an agent's hello must name it.
pub const PROTOCOL_VERSION: u32 = 1;

/// Longest line either side may send, newline excluded.
pub const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// How much of an offending line an error message quotes.
const QUOTE_CHARS: usize = 200;

/// node → agent.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NodeMessage<'a> {
    Task { id: &'a str, input: &'a Value, context: WireContext<'a> },
    Cancel { id: &'a str },
}

/// What the agent learns about its task: [`TaskContext`] minus the in-process handles.
#[derive(Debug, Serialize)]
pub struct WireContext<'a> {
    pub task_id: String,
    pub attempt: u32,
    pub idempotency_key: &'a str,
    /// RFC 3339 (UTC, milliseconds), or null.
    pub deadline: Option<String>,
    pub namespace: &'a str,
    pub traceparent: Option<&'a str>,
}

impl<'a> WireContext<'a> {
    pub fn new(ctx: &'a TaskContext) -> Self {
        WireContext {
            task_id: ctx.task_id.to_string(),
            attempt: ctx.attempt,
            idempotency_key: &ctx.idempotency_key,
            deadline: ctx.deadline.map(rfc3339),
            namespace: &ctx.namespace,
            traceparent: ctx.traceparent.as_deref(),
        }
    }
}

fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

/// agent → node. Unknown fields are ignored so agents may run ahead of the node;
/// unknown types and missing required fields are protocol errors.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentMessage {
    Hello {
        protocol: u32,
        #[serde(default)]
        capabilities: Vec<String>,
    },
    Progress {
        id: String,
        #[serde(default)]
        data: Value,
    },
    Result {
        id: String,
        output: Value,
    },
    Error {
        id: String,
        message: String,
        #[serde(default)]
        retryable: bool,
    },
}

impl AgentMessage {
    /// Parses one line; the error quotes the (truncated) line so the author can find it.
    pub fn parse(line: &[u8]) -> Result<AgentMessage, String> {
        serde_json::from_slice(line).map_err(|e| format!("{e} in line {}", quote(line)))
    }
}

/// Encodes a message as one protocol line, newline included.
pub fn encode(message: &NodeMessage<'_>) -> Vec<u8> {
    // Serializing borrowed strings and `Value`s cannot fail.
    let mut line = serde_json::to_vec(message).expect("node messages always serialize");
    line.push(b'\n');
    line
}

/// The first [`QUOTE_CHARS`] characters of a line, quoted, lossily decoded.
pub fn quote(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let mut quoted: String = text.chars().take(QUOTE_CHARS).collect();
    if quoted.len() < text.len() {
        quoted.push('…');
    }
    format!("'{quoted}'")
}

/// Why no line came out of a [`LineReader`].
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    #[error("line longer than {}", human_bytes(*.0))]
    TooLong(usize),
    #[error("reading failed: {0}")]
    Io(#[from] std::io::Error),
}

fn human_bytes(n: usize) -> String {
    if n >= 1024 * 1024 && n.is_multiple_of(1024 * 1024) {
        format!("{} MiB", n / (1024 * 1024))
    } else {
        format!("{n} bytes")
    }
}

/// Reads newline-terminated lines of at most `max` bytes. Unlike `read_line`, memory
/// stays bounded whatever the other side sends.
///
/// Cancel safe: a partial line is kept in `self`, so `next_line` may lose a `select!`
/// and be called again without losing bytes.
#[derive(Debug)]
pub struct LineReader<R> {
    inner: R,
    max: usize,
    partial: Vec<u8>,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    pub fn new(inner: R, max: usize) -> Self {
        LineReader { inner, max, partial: Vec::new() }
    }

    /// The next line without its newline, or `None` at end of input. A final line
    /// without a newline is still returned.
    pub async fn next_line(&mut self) -> Result<Option<Vec<u8>>, LineError> {
        loop {
            let available = self.inner.fill_buf().await?;
            if available.is_empty() {
                if self.partial.is_empty() {
                    return Ok(None);
                }
                return Ok(Some(std::mem::take(&mut self.partial)));
            }
            // No await between copying and consuming: that is what keeps this cancel safe.
            let (chunk, found) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => (&available[..i], Some(i + 1)),
                None => (available, None),
            };
            if self.partial.len() + chunk.len() > self.max {
                return Err(LineError::TooLong(self.max));
            }
            self.partial.extend_from_slice(chunk);
            let used = found.unwrap_or(available.len());
            self.inner.consume(used);
            if found.is_some() {
                return Ok(Some(std::mem::take(&mut self.partial)));
            }
        }
    }

    /// Like [`next_line`](Self::next_line) but cuts long lines at the limit instead of
    /// failing, dropping the rest of the line: for logs, where losing the tail is fine.
    pub async fn next_line_truncated(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        match self.next_line().await {
            Ok(line) => Ok(line),
            Err(LineError::Io(e)) => Err(e),
            Err(LineError::TooLong(_)) => {
                let mut head = std::mem::take(&mut self.partial);
                head.extend_from_slice(b" [truncated]");
                self.skip_to_newline().await?;
                Ok(Some(head))
            }
        }
    }

    async fn skip_to_newline(&mut self) -> std::io::Result<()> {
        loop {
            let available = self.inner.fill_buf().await?;
            if available.is_empty() {
                return Ok(());
            }
            match available.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.inner.consume(i + 1);
                    return Ok(());
                }
                None => {
                    let n = available.len();
                    self.inner.consume(n);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    async fn lines(input: &[u8], max: usize) -> Vec<Result<Vec<u8>, String>> {
        let mut reader = LineReader::new(input, max);
        let mut out = Vec::new();
        loop {
            match reader.next_line().await {
                Ok(Some(line)) => out.push(Ok(line)),
                Ok(None) => return out,
                Err(e) => {
                    out.push(Err(e.to_string()));
                    return out;
                }
            }
        }
    }

    #[tokio::test]
    async fn splits_lines_and_keeps_a_final_unterminated_one() {
        let got = lines(b"a\n\nbc\nd", 10).await;
        let want: Vec<Result<Vec<u8>, String>> =
            vec![Ok(b"a".to_vec()), Ok(vec![]), Ok(b"bc".to_vec()), Ok(b"d".to_vec())];
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn a_line_of_exactly_the_limit_passes_one_more_byte_fails() {
        assert_eq!(lines(b"12345\n", 5).await, vec![Ok(b"12345".to_vec())]);
        assert_eq!(lines(b"123456\n", 5).await, vec![Err("line longer than 5 bytes".to_string())]);
        assert_eq!(lines(b"123456", 5).await, vec![Err("line longer than 5 bytes".to_string())]);
    }

    #[tokio::test]
    async fn limit_holds_across_small_buffer_refills() {
        // A tiny BufReader capacity forces many fill_buf rounds per line.
        let data = b"0123456789\nabc\n".to_vec();
        let mut reader = LineReader::new(tokio::io::BufReader::with_capacity(3, &data[..]), 9);
        assert!(matches!(reader.next_line().await, Err(LineError::TooLong(9))));
        let mut reader = LineReader::new(tokio::io::BufReader::with_capacity(3, &data[..]), 10);
        assert_eq!(reader.next_line().await.unwrap(), Some(b"0123456789".to_vec()));
        assert_eq!(reader.next_line().await.unwrap(), Some(b"abc".to_vec()));
        assert_eq!(reader.next_line().await.unwrap(), None);
    }

    #[tokio::test]
    async fn truncated_reading_cuts_and_resumes_at_the_next_line() {
        let data = b"0123456789\nok\n".to_vec();
        let mut reader = LineReader::new(tokio::io::BufReader::with_capacity(4, &data[..]), 4);
        let first = reader.next_line_truncated().await.unwrap().unwrap();
        assert!(first.starts_with(b"0123") && first.ends_with(b"[truncated]"), "{first:?}");
        assert_eq!(reader.next_line_truncated().await.unwrap(), Some(b"ok".to_vec()));
    }

    #[test]
    fn the_default_limit_reads_as_16_mib() {
        assert_eq!(LineError::TooLong(MAX_LINE_BYTES).to_string(), "line longer than 16 MiB");
    }

    #[test]
    fn parses_agent_messages_and_tolerates_unknown_fields() {
        let hello = AgentMessage::parse(br#"{"type":"hello","protocol":1,"capabilities":["a"],"x":2}"#);
        assert_eq!(hello, Ok(AgentMessage::Hello { protocol: 1, capabilities: vec!["a".into()] }));
        let progress = AgentMessage::parse(br#"{"type":"progress","id":"1"}"#);
        assert_eq!(progress, Ok(AgentMessage::Progress { id: "1".into(), data: Value::Null }));
        let error = AgentMessage::parse(br#"{"type":"error","id":"1","message":"no"}"#);
        assert_eq!(error, Ok(AgentMessage::Error { id: "1".into(), message: "no".into(), retryable: false }));
    }

    #[test]
    fn rejects_unknown_types_missing_fields_and_garbage_quoting_the_line() {
        let unknown = AgentMessage::parse(br#"{"type":"shout","id":"1"}"#).unwrap_err();
        assert!(unknown.contains("unknown variant `shout`") && unknown.contains("shout\",\"id"), "{unknown}");
        let missing = AgentMessage::parse(br#"{"type":"result","id":"1"}"#).unwrap_err();
        assert!(missing.contains("missing field `output`"), "{missing}");
        let long = format!("not json {}", "x".repeat(1000));
        let garbage = AgentMessage::parse(long.as_bytes()).unwrap_err();
        assert!(garbage.contains("'not json xxx") && garbage.ends_with("…'"), "{garbage}");
        assert!(garbage.len() < 400, "quote is truncated: {}", garbage.len());
    }

    #[test]
    fn encodes_tasks_with_the_full_context() {
        let ctx = TaskContext {
            task_id: mark1_actors::domain::TaskId::new(),
            attempt: 2,
            idempotency_key: "k".into(),
            deadline: Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_500)),
            namespace: "default".into(),
            traceparent: None,
            submitter: None,
            cancel: Default::default(),
            progress: None,
            tasks: None,
        };
        let input = json!({"text": "hi"});
        let line = encode(&NodeMessage::Task { id: "7", input: &input, context: WireContext::new(&ctx) });
        assert_eq!(line.last(), Some(&b'\n'));
        let back: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(
            back,
            json!({"type": "task", "id": "7", "input": {"text": "hi"}, "context": {
                "task_id": ctx.task_id.to_string(), "attempt": 2, "idempotency_key": "k",
                "deadline": "1970-01-01T00:00:01.500Z", "namespace": "default", "traceparent": null}})
        );
        let cancel: Value = serde_json::from_slice(&encode(&NodeMessage::Cancel { id: "7" })).unwrap();
        assert_eq!(cancel, json!({"type": "cancel", "id": "7"}));
    }
}
