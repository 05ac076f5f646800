//! A local model server speaking Ollama's and OpenAI's HTTP APIs with scripted answers.
//!
//! No model server runs where the tests and benches do, so they run this one: it serves
//! the real wire protocols (JSON and streaming) on a real socket, and the real provider
//! adapters talk to it exactly as they would talk to Ollama or vLLM. Each call takes the
//! next scripted [`Answer`]; with none queued it echoes the last user message, with zero
//! think time (what `mark1 bench models` measures against).

mod ollama;
mod openai;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use mark1_actors::ports::model::{ModelCapabilities, ToolCall, Usage};
use parking_lot::Mutex;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// What the server does with one call.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    /// A text reply; streamed as one chunk per word.
    Text(String),
    /// A request to call these tools.
    ToolCalls(Vec<ToolCall>),
    /// An HTTP error with this status and message, in the protocol's error shape.
    Error { status: u16, message: String },
    /// A 200 whose body is not the protocol's JSON.
    Garbage,
    /// Accepts the request and never answers.
    Hang,
    /// Waits, then answers.
    Slow(Duration, Box<Answer>),
    /// Sends the headers and the first part of the answer, then drops the connection.
    Drop,
}

/// A model the server lists, with what its metadata reports.
#[derive(Clone, Debug, PartialEq)]
pub struct ScriptedModel {
    pub id: String,
    pub capabilities: ModelCapabilities,
    pub context_length: u32,
}

impl ScriptedModel {
    /// A chat model with tools and an 8k context.
    pub fn chat(id: &str) -> Self {
        let capabilities = ModelCapabilities { chat: true, tools: true, ..Default::default() };
        ScriptedModel { id: id.into(), capabilities, context_length: 8192 }
    }

    pub fn embedding(id: &str) -> Self {
        let capabilities = ModelCapabilities { embeddings: true, ..Default::default() };
        ScriptedModel { id: id.into(), capabilities, context_length: 512 }
    }
}

/// The shared state behind both protocols: the queue of answers, the models, and every
/// request body received (for assertions).
#[derive(Debug, Default)]
pub struct Script {
    answers: Mutex<VecDeque<Answer>>,
    models: Mutex<Vec<ScriptedModel>>,
    requests: Mutex<Vec<Value>>,
    /// Bodies are not kept: a bench's millions of calls would only grow memory.
    forget_requests: AtomicBool,
    /// Model calls answered (or refused by the script), kept or not.
    calls: AtomicU64,
    /// API key callers must send as `Authorization: Bearer`, if any.
    api_key: Mutex<Option<String>>,
}

impl Script {
    pub fn push(&self, answer: Answer) {
        self.answers.lock().push_back(answer);
    }

    pub fn set_models(&self, models: Vec<ScriptedModel>) {
        *self.models.lock() = models;
    }

    pub fn require_api_key(&self, key: &str) {
        *self.api_key.lock() = Some(key.into());
    }

    /// The JSON bodies of every call so far (model calls only, not listings), unless
    /// [`Script::forget_requests`] was called.
    pub fn requests(&self) -> Vec<Value> {
        self.requests.lock().clone()
    }

    /// Stops keeping request bodies; [`Script::calls`] still counts them.
    pub fn forget_requests(&self) {
        self.forget_requests.store(true, Relaxed);
    }

    /// How many model calls reached the script (not listings).
    pub fn calls(&self) -> u64 {
        self.calls.load(Relaxed)
    }

    pub(crate) fn models(&self) -> Vec<ScriptedModel> {
        self.models.lock().clone()
    }

    /// Records the request and takes the next answer; none queued: echo `last_user`.
    pub(crate) fn next(&self, request: Value, last_user: &str) -> Answer {
        self.calls.fetch_add(1, Relaxed);
        if !self.forget_requests.load(Relaxed) {
            self.requests.lock().push(request);
        }
        self.answers.lock().pop_front().unwrap_or_else(|| Answer::Text(last_user.to_string()))
    }

    /// Whether `header` (the Authorization header's value) carries the required key.
    pub(crate) fn authorized(&self, header: Option<&str>) -> bool {
        match &*self.api_key.lock() {
            None => true,
            Some(key) => header.and_then(|h| h.strip_prefix("Bearer ")) == Some(key.as_str()),
        }
    }
}

/// Token counts the way the server reports them: one token per whitespace-separated word.
pub(crate) fn count_tokens(text: &str) -> u32 {
    text.split_whitespace().count() as u32
}

pub(crate) fn usage(prompt: &str, completion: &str) -> Usage {
    Usage { prompt_tokens: count_tokens(prompt), completion_tokens: count_tokens(completion) }
}

/// A deterministic embedding of `text`: eight numbers derived from its bytes.
pub(crate) fn embed(text: &str) -> Vec<f32> {
    let mut vector = [0f32; 8];
    for (i, byte) in text.bytes().enumerate() {
        vector[i % 8] += f32::from(byte) / 255.0;
    }
    vector.to_vec()
}

/// A running scripted server; stops when dropped.
pub struct ScriptedServer {
    pub addr: SocketAddr,
    pub script: Arc<Script>,
    stop: CancellationToken,
}

impl ScriptedServer {
    /// Serves both protocols on a free loopback port: Ollama's under `/api`, OpenAI's
    /// under `/v1`. Lists `llama3.1` (chat, tools) and `nomic-embed-text` (embeddings).
    pub async fn start() -> std::io::Result<ScriptedServer> {
        let script = Arc::new(Script::default());
        script
            .set_models(vec![ScriptedModel::chat("llama3.1"), ScriptedModel::embedding("nomic-embed-text")]);
        let app = openai::routes().merge(ollama::routes()).with_state(script.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        // As model servers do: a small answer is not held back waiting for an ACK.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).with_graceful_shutdown(stopped.cancelled_owned()).await;
        });
        Ok(ScriptedServer { addr, script, stop })
    }

    /// Base URL for an `ollama` provider.
    pub fn ollama_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Base URL for an `openai` provider.
    pub fn openai_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
