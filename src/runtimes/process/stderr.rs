//! An agent's stderr: every line goes to the logs, and the last few are kept so a start
//! failure or a crash can say what the agent said last.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::io::{AsyncRead, BufReader};
use tokio::task::JoinHandle;

use super::protocol::LineReader;

/// Longer stderr lines are cut: a log line is for people, not for payloads.
const MAX_STDERR_LINE: usize = 8 * 1024;
/// Lines kept for error messages.
const TAIL_LINES: usize = 10;
/// Characters of the tail quoted in an error message.
const TAIL_CHARS: usize = 2000;

/// The last lines an agent wrote to stderr.
#[derive(Clone, Debug, Default)]
pub struct StderrTail(Arc<Mutex<VecDeque<String>>>);

impl StderrTail {
    fn push(&self, line: String) {
        let mut lines = self.0.lock();
        if lines.len() == TAIL_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    /// `"; stderr: a | b"` with the last lines, or `""` when there were none; ready to be
    /// appended to an error reason.
    pub fn describe(&self) -> String {
        let lines = self.0.lock();
        if lines.is_empty() {
            return String::new();
        }
        let joined = lines.iter().map(String::as_str).collect::<Vec<_>>().join(" | ");
        let skip = joined.chars().count().saturating_sub(TAIL_CHARS);
        let tail: String = joined.chars().skip(skip).collect();
        format!("; stderr: {}{tail}", if skip > 0 { "…" } else { "" })
    }
}

/// Reads `stderr` until it closes, logging each line under target `mark1::agent_stderr`.
pub fn pump(
    stderr: impl AsyncRead + Unpin + Send + 'static,
    agent: String,
    pid: u32,
    tail: StderrTail,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut reader = LineReader::new(BufReader::new(stderr), MAX_STDERR_LINE);
        loop {
            match reader.next_line_truncated().await {
                Ok(Some(line)) => {
                    let line = String::from_utf8_lossy(&line).into_owned();
                    tracing::info!(target: "mark1::agent_stderr", agent = %agent, pid, line = %line, "agent stderr");
                    tail.push(line);
                }
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(agent = %agent, pid, error = %e, "cannot read agent stderr");
                    return;
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keeps_the_last_lines_and_cuts_long_ones() {
        let tail = StderrTail::default();
        let mut input: Vec<u8> = (0..15).flat_map(|i| format!("line {i}\n").into_bytes()).collect();
        input.extend_from_slice(&vec![b'x'; MAX_STDERR_LINE * 2]);
        input.extend_from_slice(b"\nlast\n");
        pump(std::io::Cursor::new(input), "t".into(), 0, tail.clone()).await.unwrap();
        let lines = tail.0.lock().clone();
        assert_eq!(lines.len(), TAIL_LINES);
        assert_eq!(lines[0], "line 7");
        assert!(lines[8].ends_with("[truncated]") && lines[8].len() < MAX_STDERR_LINE + 20);
        assert_eq!(lines[9], "last");
        let described = tail.describe();
        assert!(described.starts_with("; stderr: …") && described.ends_with("| last"), "{described}");
    }

    #[test]
    fn describes_nothing_when_silent() {
        assert_eq!(StderrTail::default().describe(), "");
    }
}
