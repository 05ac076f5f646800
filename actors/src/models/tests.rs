//! The router with in-memory providers: routing, fallback, breakers, budgets, deadlines.
//! (The real adapters against a protocol-faithful server are tested in the `mark1` crate.)

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use parking_lot::Mutex;
use ractor::Actor;

use super::provider::{Provider, ProviderArgs};
use super::stats::ProviderStats;
use super::*;
use crate::domain::model::{
    BreakerSettings, NamespaceModels, ProviderSettings, RoutePolicy, RouterSettings, UsageRecord,
};
use crate::ports::model::*;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Answer,
    Down,
    Hang,
    Refuse,
}

struct Fake {
    name: String,
    mode: Mutex<Mode>,
    calls: AtomicUsize,
    /// Calls whose future was dropped before they finished.
    abandoned: Arc<AtomicUsize>,
}

struct Abandon(Arc<AtomicUsize>, bool);

impl Drop for Abandon {
    fn drop(&mut self) {
        if !self.1 {
            self.0.fetch_add(1, SeqCst);
        }
    }
}

impl Fake {
    fn new(name: &str, mode: Mode) -> Arc<Fake> {
        Arc::new(Fake {
            name: name.into(),
            mode: Mutex::new(mode),
            calls: AtomicUsize::new(0),
            abandoned: Arc::default(),
        })
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock() = mode;
    }

    async fn answer(&self) -> Result<(), ModelError> {
        self.calls.fetch_add(1, SeqCst);
        let mut guard = Abandon(self.abandoned.clone(), false);
        let mode = *self.mode.lock();
        let result = match mode {
            Mode::Answer => Ok(()),
            Mode::Down => Err(ModelError::Unavailable { provider: self.name.clone(), reason: "down".into() }),
            Mode::Refuse => {
                Err(ModelError::Rejected { provider: self.name.clone(), status: 400, reason: "bad".into() })
            }
            Mode::Hang => std::future::pending().await,
        };
        guard.1 = true;
        result
    }
}

#[async_trait::async_trait]
impl ModelProvider for Fake {
    fn name(&self) -> &str {
        &self.name
    }
    async fn models(&self) -> Result<Vec<ModelInfo>, ModelError> {
        let capabilities = ModelCapabilities { chat: true, tools: true, ..Default::default() };
        let price = ModelPrice { input_per_mtok: 1_000_000.0, output_per_mtok: 1_000_000.0 };
        Ok(vec![ModelInfo {
            id: "m".into(),
            provider: self.name.clone(),
            context_length: Some(4096),
            capabilities,
            price,
        }])
    }
    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, ModelError> {
        self.answer().await?;
        Ok(ChatResponse {
            provider: self.name.clone(),
            model: request.model,
            message: ChatMessage::new(Role::Assistant, "hi"),
            usage: Usage { prompt_tokens: 3, completion_tokens: 2 },
            finish_reason: FinishReason::Stop,
            cost: 0.0,
        })
    }
    async fn chat_stream(&self, _: ChatRequest) -> Result<ChatStream, ModelError> {
        self.answer().await?;
        let chunks = vec![
            Ok(ChatChunk::Delta { content: "h".into(), tool_calls: vec![] }),
            Ok(ChatChunk::Delta { content: "i".into(), tool_calls: vec![] }),
            Ok(ChatChunk::Done {
                usage: Usage { prompt_tokens: 3, completion_tokens: 2 },
                finish_reason: FinishReason::Stop,
            }),
        ];
        Ok(futures::stream::iter(chunks).chain(futures::stream::pending()).boxed())
    }
    async fn embed(&self, _: EmbedRequest) -> Result<EmbedResponse, ModelError> {
        Err(ModelError::Rejected { provider: self.name.clone(), status: 400, reason: "no".into() })
    }
}

struct Harness {
    router: ModelRouter,
    stats: Vec<Arc<ProviderStats>>,
    usage: Arc<Mutex<Vec<UsageRecord>>>,
    actors: Vec<ractor::ActorCell>,
    registry: prometheus_client::registry::Registry,
}

impl Harness {
    /// The value of the sample `series` (name and labels, exact) in the router's metrics.
    fn sample(&self, series: &str) -> Option<f64> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).unwrap();
        text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        for actor in &self.actors {
            actor.stop(None);
        }
    }
}

async fn harness(fakes: &[Arc<Fake>], settings: RouterSettings) -> Harness {
    harness_on(fakes, settings, None).await
}

/// As [`harness`], with budgets read back from `store` at start.
async fn harness_on(
    fakes: &[Arc<Fake>],
    settings: RouterSettings,
    store: Option<Arc<dyn crate::ports::Store>>,
) -> Harness {
    let prefix = format!("models-test-{}", uuid::Uuid::now_v7());
    let mut entries = Vec::new();
    let mut actors = Vec::new();
    for fake in fakes {
        let stats = Arc::new(ProviderStats::new(settings.breaker));
        let actor = format!("{prefix}/provider:{}", fake.name);
        let args = ProviderArgs { adapter: fake.clone(), stats: stats.clone(), max_in_flight: 8 };
        let (provider, _) = Actor::spawn(Some(actor.clone()), Provider, args).await.unwrap();
        actors.push(provider.get_cell());
        entries.push(ProviderEntry { settings: ProviderSettings::new(fake.name.clone()), stats, actor });
    }
    let usage = Arc::new(Mutex::new(Vec::new()));
    let sink = usage.clone();
    let metrics = Arc::new(crate::metrics::ModelMetrics::default());
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.register(&mut registry);
    let args = RouterArgs {
        budgets: budget::BudgetBook::from_settings(&settings),
        settings,
        providers: entries.clone(),
        usage: Some(Arc::new(move |record| sink.lock().push(record))),
        store,
        metrics,
    };
    let name = format!("{prefix}/router");
    let (router, _) = Actor::spawn(Some(name.clone()), Router, args).await.unwrap();
    actors.push(router.get_cell());
    let router = ModelRouter::new(name);
    router.refresh().await.unwrap();
    Harness { router, stats: entries.into_iter().map(|e| e.stats).collect(), usage, actors, registry }
}

fn chat() -> ChatRequest {
    ChatRequest::new("m", vec![ChatMessage::new(Role::User, "hello")])
}

fn ns(namespace: &str) -> CallContext {
    CallContext::namespace(namespace)
}

fn fast() -> RouterSettings {
    RouterSettings {
        retry_backoff: Duration::from_millis(1),
        attempt_timeout: Duration::from_secs(5),
        breaker: BreakerSettings { failures: 2, open_for: Duration::from_millis(200) },
        ..RouterSettings::default()
    }
}

#[tokio::test]
async fn falls_back_past_a_failing_provider_and_records_usage() {
    let (a, b) = (Fake::new("a", Mode::Down), Fake::new("b", Mode::Answer));
    let h = harness(&[a.clone(), b.clone()], RouterSettings { policy: RoutePolicy::Cost, ..fast() }).await;
    let answer = h.router.chat(chat(), ns("team")).await.unwrap();
    assert_eq!(answer.provider, "b");
    assert_eq!(a.calls.load(SeqCst), 1, "a was tried first (configuration order at equal cost)");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let usage = h.usage.lock().clone();
    assert_eq!(usage.len(), 1);
    assert_eq!(
        (usage[0].provider.as_str(), usage[0].namespace.as_str(), usage[0].prompt_tokens),
        ("b", "team", 3)
    );
    assert!((usage[0].cost - 5.0).abs() < 1e-9, "5 tokens at 1 per token: {}", usage[0].cost);

    let e = h.router.chat(ChatRequest::new("unknown", vec![]), ns("team")).await.unwrap_err();
    assert!(matches!(e, ModelError::UnknownModel(_)), "{e}");
    let e = h.router.chat(ChatRequest::new("a/m", vec![]), ns("team")).await.unwrap_err();
    assert!(matches!(e, ModelError::Unavailable { .. }), "pinned: no fallback: {e}");
}

#[tokio::test]
async fn a_request_fault_is_not_retried_elsewhere() {
    let (a, b) = (Fake::new("a", Mode::Refuse), Fake::new("b", Mode::Answer));
    let h = harness(&[a.clone(), b.clone()], RouterSettings { policy: RoutePolicy::Cost, ..fast() }).await;
    let e = h.router.chat(chat(), ns("team")).await.unwrap_err();
    assert!(matches!(e, ModelError::Rejected { status: 400, .. }), "{e}");
    assert_eq!(b.calls.load(SeqCst), 0);
}

#[tokio::test]
async fn the_breaker_opens_after_failures_and_closes_after_a_good_trial() {
    let a = Fake::new("a", Mode::Down);
    let h = harness(std::slice::from_ref(&a), RouterSettings { retries: 0, ..fast() }).await;
    for _ in 0..2 {
        assert!(h.router.chat(chat(), ns("team")).await.is_err());
    }
    let e = h.router.chat(chat(), ns("team")).await.unwrap_err();
    assert!(e.to_string().contains("circuit breaker"), "{e}");
    assert_eq!(a.calls.load(SeqCst), 2, "an open breaker sends nothing");
    assert_eq!(h.stats[0].breaker_state(std::time::Instant::now()), breaker::BreakerState::Open);

    a.set(Mode::Answer);
    tokio::time::sleep(Duration::from_millis(250)).await;
    h.router.chat(chat(), ns("team")).await.expect("the half-open trial goes through");
    assert_eq!(h.stats[0].breaker_state(std::time::Instant::now()), breaker::BreakerState::Closed);
    let providers = h.router.providers().await.unwrap();
    assert_eq!(providers[0].breaker, breaker::BreakerState::Closed);
}

fn budgeted(tokens: u64) -> RouterSettings {
    let team = NamespaceModels { providers: vec![], tokens, cost: 0.0 };
    RouterSettings { namespaces: [("team".to_string(), team)].into(), default_max_tokens: 100, ..fast() }
}

#[tokio::test]
async fn an_exhausted_budget_refuses_and_a_cancelled_call_releases_its_reservation() {
    let a = Fake::new("a", Mode::Hang);
    let h = harness(std::slice::from_ref(&a), budgeted(150)).await;
    // "hello" and the message overhead is ~6 tokens, plus 100 reserved for the answer.
    let pending = tokio::spawn({
        let router = h.router.clone();
        async move { router.chat(chat(), ns("team")).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let status = h.router.budgets().await.unwrap();
    assert!(status[0].tokens_reserved > 100, "{status:?}");
    let e = h.router.chat(chat(), ns("team")).await.unwrap_err();
    assert!(matches!(e, ModelError::BudgetExhausted { resource: BudgetResource::Tokens, .. }), "{e}");

    pending.abort();
    let _ = pending.await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        h.router.budgets().await.unwrap()[0].tokens_reserved,
        0,
        "the cancelled call released its reservation"
    );
    assert!(a.abandoned.load(SeqCst) >= 1, "the provider call was dropped, not left running");
    assert_eq!(h.stats[0].in_flight(), 0);

    a.set(Mode::Answer);
    h.router.chat(chat(), ns("team")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let status = &h.router.budgets().await.unwrap()[0];
    assert_eq!((status.tokens_used, status.tokens_reserved), (5, 0), "settled at the real usage");
}

#[tokio::test]
async fn a_hanging_provider_gives_a_typed_timeout_within_the_deadline() {
    let a = Fake::new("a", Mode::Hang);
    let h = harness(
        std::slice::from_ref(&a),
        RouterSettings { retries: 0, attempt_timeout: Duration::from_millis(100), ..fast() },
    )
    .await;
    let started = std::time::Instant::now();
    let e = h.router.chat(chat(), ns("team")).await.unwrap_err();
    assert!(matches!(e, ModelError::Timeout { .. }), "{e}");
    assert!(started.elapsed() < Duration::from_secs(3));
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(h.stats[0].in_flight(), 0, "the timed-out call was stopped");
    assert_eq!(a.abandoned.load(SeqCst), 1);

    let deadline =
        CallContext { deadline: Some(tokio::time::Instant::now() + Duration::from_millis(50)), ..ns("team") };
    let h2 = harness(&[Fake::new("b", Mode::Hang)], fast()).await;
    let started = std::time::Instant::now();
    let e = h2.router.chat(chat(), deadline).await.unwrap_err();
    assert!(matches!(e, ModelError::Timeout { .. }), "{e}");
    assert!(started.elapsed() < Duration::from_secs(1), "the caller's deadline bounds the call");
}

#[tokio::test]
async fn a_dropped_stream_releases_and_a_finished_one_settles() {
    let a = Fake::new("a", Mode::Answer);
    let h = harness(std::slice::from_ref(&a), budgeted(1000)).await;
    let mut stream = h.router.chat_stream(chat(), ns("team")).await.unwrap();
    let mut text = String::new();
    while let Some(chunk) = stream.next().await {
        match chunk.unwrap() {
            ChatChunk::Delta { content, .. } => text.push_str(&content),
            ChatChunk::Done { .. } => break,
        }
    }
    assert_eq!(text, "hi");
    assert_eq!(h.stats[0].in_flight(), 1, "the stream still holds its slot");
    drop(stream);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let status = &h.router.budgets().await.unwrap()[0];
    assert_eq!((status.tokens_used, status.tokens_reserved), (5, 0));
    assert_eq!(h.stats[0].in_flight(), 0);
    assert_eq!(h.usage.lock().len(), 1);

    let stream = h.router.chat_stream(chat(), ns("team")).await.unwrap();
    drop(stream);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let status = &h.router.budgets().await.unwrap()[0];
    assert_eq!((status.tokens_used, status.tokens_reserved), (5, 0), "dropped unread: released");
}

#[tokio::test]
async fn capability_needs_and_namespace_allow_lists_filter() {
    let (a, b) = (Fake::new("a", Mode::Answer), Fake::new("b", Mode::Answer));
    let only_b = NamespaceModels { providers: vec!["b".into()], tokens: 0, cost: 0.0 };
    let settings = RouterSettings { namespaces: [("team".to_string(), only_b)].into(), ..fast() };
    let h = harness(&[a.clone(), b.clone()], settings).await;
    for _ in 0..3 {
        assert_eq!(h.router.chat(chat(), ns("team")).await.unwrap().provider, "b");
    }
    assert_eq!(a.calls.load(SeqCst), 0);
    let e = h
        .router
        .embed(EmbedRequest { model: "m".into(), input: vec!["x".into()] }, ns("x"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("lacks embeddings"), "{e}");
    let mut huge = chat();
    huge.messages[0].content = "x".repeat(20_000);
    let e = h.router.chat(huge, ns("x")).await.unwrap_err();
    assert!(e.to_string().contains("exceed its context of 4096"), "{e}");
}

#[tokio::test]
async fn a_half_open_trial_given_up_by_its_caller_frees_the_trial_slot() {
    let a = Fake::new("a", Mode::Down);
    let h = harness(std::slice::from_ref(&a), RouterSettings { retries: 0, ..fast() }).await;
    for _ in 0..2 {
        assert!(h.router.chat(chat(), ns("team")).await.is_err());
    }
    tokio::time::sleep(Duration::from_millis(250)).await;
    a.set(Mode::Hang);
    let trial = tokio::spawn({
        let router = h.router.clone();
        async move { router.chat(chat(), ns("team")).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    trial.abort();
    let _ = trial.await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    a.set(Mode::Answer);
    h.router.chat(chat(), ns("team")).await.expect("the abandoned trial proved nothing; another may go");
    assert_eq!(h.stats[0].breaker_state(std::time::Instant::now()), breaker::BreakerState::Closed);
}

#[tokio::test]
async fn budgets_start_from_the_usage_the_store_holds_for_this_period() {
    use crate::ports::{MemoryStore, Store, Write};
    let store = Arc::new(MemoryStore::new());
    let now_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let usage = |team: &str, at_ms: i64| {
        Write::PutUsage(Box::new(UsageRecord {
            id: uuid::Uuid::now_v7(),
            at_ms,
            namespace: team.into(),
            task: None,
            run: None,
            agent: None,
            provider: "a".into(),
            model: "m".into(),
            prompt_tokens: 60,
            completion_tokens: 20,
            cost: 0.0,
            latency_ms: 1,
            first_token_ms: None,
        }))
    };
    // One record of this period (the period is a day), one of long ago.
    store.write_batch(&[usage("team", now_ms), usage("team", 1_000)]).await.unwrap();
    let h = harness_on(&[Fake::new("a", Mode::Answer)], budgeted(150), Some(store)).await;
    assert_eq!(h.router.budgets().await.unwrap()[0].tokens_used, 80, "only this period's usage counts");
    let e = h.router.chat(chat(), ns("team")).await.unwrap_err();
    assert!(matches!(e, ModelError::BudgetExhausted { .. }), "80 used + ~106 reserved > 150: {e}");
}

#[tokio::test]
async fn metrics_count_calls_by_how_they_end_and_attempts_by_provider() {
    let (a, b) = (Fake::new("a", Mode::Down), Fake::new("b", Mode::Answer));
    let h = harness(&[a.clone(), b.clone()], RouterSettings { policy: RoutePolicy::Cost, ..fast() }).await;
    h.router.chat(chat(), ns("team")).await.unwrap();
    let mut stream = h.router.chat_stream(chat(), ns("team")).await.unwrap();
    while let Some(chunk) = stream.next().await {
        if let ChatChunk::Done { .. } = chunk.unwrap() {
            break;
        }
    }
    drop(stream);
    // The breaker of `a` is open now (two failures): the next calls go to `b` only.
    let unread = h.router.chat_stream(chat(), ns("team")).await.unwrap();
    drop(unread);
    h.router.chat(ChatRequest::new("unknown", vec![]), ns("team")).await.unwrap_err();

    let calls = |outcome: &str| h.sample(&format!(r#"mark1_model_calls_total{{outcome="{outcome}"}}"#));
    assert_eq!(calls("success"), Some(2.0));
    assert_eq!(calls("cancelled"), Some(1.0), "a stream dropped before its end");
    assert_eq!(calls("unknown_model"), Some(1.0), "refused by the router");
    let errors = r#"mark1_model_errors_total{provider="a",model="m",kind="unavailable"}"#;
    assert_eq!(h.sample(errors), Some(2.0), "each failed attempt at a");
    let series = r#"{provider="b",model="m"}"#;
    assert_eq!(h.sample(&format!("mark1_model_call_duration_seconds_count{series}")), Some(2.0));
    assert_eq!(h.sample(&format!("mark1_model_time_to_first_token_seconds_count{series}")), Some(1.0));
    let tokens = r#"mark1_model_tokens_total{provider="b",model="m",direction="out"}"#;
    assert_eq!(h.sample(tokens), Some(4.0), "two answers of 2 tokens");
}
