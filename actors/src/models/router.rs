//! The model `router` actor: the one place every model call goes through. For each call
//! it finds the providers whose models can serve it (capabilities, context length, the
//! namespace's allowed providers), drops those whose circuit breaker is open, orders the
//! rest by policy, reserves the namespace's budget, and hands the call to a task of its
//! own (see [`super::dispatch`]), so a slow model never holds up the mailbox.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::Serialize;

use super::breaker::BreakerState;
use super::budget::{BudgetBook, BudgetStatus, Budgets, ReservationId, Spend};
use super::call::{CallContext, ModelCall, ModelOutput};
use super::dispatch::{self, Plan, Reply, Route};
use super::provider::ProviderMsg;
use super::select::{self, Catalog, Standing};
use super::stats::{ModelStats, ProviderStats};
use crate::domain::model::{ProviderSettings, RouterSettings, UsageRecord};
use crate::metrics::{ModelMetrics, ModelSeries};
use crate::ports::model::{
    ChatRequest, ChatResponse, ChatStream, EmbedRequest, EmbedResponse, GenerateRequest, ModelError,
    ModelInfo,
};
use crate::ports::Store;

pub enum RouterMsg {
    /// Routes one call. The reply is a plain oneshot sender so the call task can notice
    /// when the caller stops waiting (ractor's reply port cannot be awaited for that).
    Call {
        call: ModelCall,
        context: CallContext,
        reply: Reply,
    },
    Models {
        reply: RpcReplyPort<Vec<ModelView>>,
    },
    Providers {
        reply: RpcReplyPort<Vec<ProviderView>>,
    },
    Budgets {
        reply: RpcReplyPort<Vec<BudgetStatus>>,
    },
    /// Re-reads every provider's model list; replies when all have answered.
    Refresh {
        reply: Option<RpcReplyPort<()>>,
    },
    /// Internal: a provider's model list arrived.
    Discovered {
        provider: String,
        models: Result<Vec<ModelInfo>, ModelError>,
    },
    /// Internal: a call ended; `spend` settles its reservation, `None` releases it.
    Settled {
        reservation: Option<ReservationId>,
        namespace: String,
        spend: Option<Spend>,
        record: Option<UsageRecord>,
    },
}

/// A provider the router sends to: its settings, its live stats, its actor's name.
#[derive(Clone)]
pub struct ProviderEntry {
    pub settings: ProviderSettings,
    pub stats: Arc<ProviderStats>,
    /// Registry name of its `provider:<name>` actor.
    pub actor: String,
}

/// Where usage records go (the store writer, in a node).
pub type UsageSink = Arc<dyn Fn(UsageRecord) + Send + Sync>;

pub struct RouterArgs {
    pub settings: RouterSettings,
    pub providers: Vec<ProviderEntry>,
    pub usage: Option<UsageSink>,
    /// Where usage already spent this period is read back from at start, so budgets
    /// survive restarts.
    pub store: Option<Arc<dyn Store>>,
    /// The budgets' limits and ledgers, made by the node so `/metrics` reads them (see
    /// [`BudgetBook`]); [`BudgetBook::from_settings`] of `settings`.
    pub budgets: BudgetBook,
    pub metrics: Arc<ModelMetrics>,
}

/// One model as `/v1/models` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct ModelView {
    #[serde(flatten)]
    pub info: ModelInfo,
    pub breaker: BreakerState,
    pub stats: ModelStats,
}

#[derive(Clone, Debug, Serialize)]
pub struct ProviderView {
    pub name: String,
    pub breaker: BreakerState,
    pub in_flight: usize,
    pub latency_ms: Option<f64>,
    /// Why the last discovery failed; `None` when it worked.
    pub discovery_error: Option<String>,
    pub models: usize,
}

pub struct Router;

pub struct RouterState {
    settings: RouterSettings,
    providers: Vec<ProviderEntry>,
    /// The providers' names in configuration order (the catalog's tie order).
    names: Vec<String>,
    catalog: Catalog,
    budgets: Budgets,
    usage: Option<UsageSink>,
    metrics: Arc<ModelMetrics>,
    /// Each model's metric series by provider, then model id: resolved at a model's first
    /// call, so later calls skip the metric families' locks.
    series: HashMap<String, HashMap<String, Arc<ModelSeries>>>,
}

fn unix_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl RouterState {
    /// Everything up to handing the call to its task: candidates, breakers, policy, budget.
    fn plan(
        &mut self,
        call: ModelCall,
        context: CallContext,
        router: ActorRef<RouterMsg>,
    ) -> Result<Plan, ModelError> {
        let allowed =
            self.settings.namespaces.get(&context.namespace).map(|n| n.providers.as_slice()).unwrap_or(&[]);
        let prompt_tokens = call.prompt_tokens();
        let candidates =
            self.catalog.candidates(call.model(), &self.names, allowed, &call.needs(prompt_tokens))?;
        let now = Instant::now();
        let mut open = Vec::new();
        let mut standing = Vec::with_capacity(candidates.len());
        for candidate in candidates {
            let entry = self.entry(&candidate.provider);
            if !entry.stats.available(now) {
                open.push(candidate.provider);
                continue;
            }
            let latency_us = entry.stats.latency().map(|d| d.as_micros() as u64);
            let s =
                Standing { latency_us, in_flight: entry.stats.in_flight(), weight: entry.settings.weight };
            standing.push((candidate, s));
        }
        if standing.is_empty() {
            return Err(ModelError::Unavailable {
                provider: open.join(", "),
                reason: "every provider of this model has its circuit breaker open after repeated failures; \
                         each is tried again after models.breaker.open_for"
                    .into(),
            });
        }
        let ordered = select::order(self.settings.policy, standing, &mut rand::rng());
        let reservation = if self.budgets.limited(&context.namespace) {
            let prompt = u64::from(prompt_tokens);
            let answer = u64::from(call.answer_tokens(self.settings.default_max_tokens));
            // The dearest candidate's price: the call may end up there.
            let cost = ordered
                .iter()
                .map(|c| {
                    let p = c.model.price;
                    (prompt as f64 * p.input_per_mtok + answer as f64 * p.output_per_mtok) / 1e6
                })
                .fold(0.0, f64::max);
            Some(self.budgets.reserve(
                &context.namespace,
                Spend { tokens: prompt + answer, cost },
                unix_secs(),
            )?)
        } else {
            None
        };
        let routes = ordered
            .into_iter()
            .map(|candidate| {
                let series = self.series(&candidate.provider, &candidate.model.id);
                let entry = self.entry(&candidate.provider);
                Route { stats: entry.stats.clone(), actor: entry.actor.clone(), series, candidate }
            })
            .collect();
        Ok(Plan {
            call,
            context,
            routes,
            retries: self.settings.retries,
            backoff: self.settings.retry_backoff,
            attempt_timeout: self.settings.attempt_timeout,
            reservation,
            router,
            metrics: self.metrics.clone(),
        })
    }

    fn series(&mut self, provider: &str, model: &str) -> Arc<ModelSeries> {
        if let Some(series) = self.series.get(provider).and_then(|models| models.get(model)) {
            return series.clone();
        }
        let series = Arc::new(self.metrics.series(provider, model));
        let models = self.series.entry(provider.to_string()).or_default();
        models.insert(model.to_string(), series.clone());
        series
    }

    fn entry(&self, provider: &str) -> &ProviderEntry {
        self.providers
            .iter()
            .find(|p| p.settings.name == provider)
            .expect("candidates come from configured providers")
    }

    fn models(&self) -> Vec<ModelView> {
        let now = Instant::now();
        self.catalog
            .models()
            .map(|info| {
                let entry = self.entry(&info.provider);
                ModelView {
                    breaker: entry.stats.breaker_state(now),
                    stats: entry.stats.model_stats(&info.id),
                    info: info.clone(),
                }
            })
            .collect()
    }

    fn providers(&self) -> Vec<ProviderView> {
        let now = Instant::now();
        self.providers
            .iter()
            .map(|p| ProviderView {
                name: p.settings.name.clone(),
                breaker: p.stats.breaker_state(now),
                in_flight: p.stats.in_flight(),
                latency_ms: p.stats.latency().map(|d| d.as_secs_f64() * 1e3),
                discovery_error: p.stats.discovery_error(),
                models: self.catalog.models().filter(|m| m.provider == p.settings.name).count(),
            })
            .collect()
    }

    fn refresh(&self, router: ActorRef<RouterMsg>, reply: Option<RpcReplyPort<()>>) {
        let providers = self.providers.clone();
        tokio::spawn(async move {
            let lists = providers.iter().map(|p| async {
                let models = match ractor::registry::where_is(p.actor.clone()) {
                    None => Err(ModelError::Unavailable {
                        provider: p.settings.name.clone(),
                        reason: "its actor is restarting".into(),
                    }),
                    Some(actor) => {
                        let (tx, rx) = tokio::sync::oneshot::channel();
                        let _ = ActorRef::<ProviderMsg>::from(actor)
                            .send_message(ProviderMsg::Discover { reply: tx });
                        rx.await.unwrap_or_else(|_| {
                            Err(ModelError::Unavailable {
                                provider: p.settings.name.clone(),
                                reason: "its actor stopped".into(),
                            })
                        })
                    }
                };
                (p.settings.name.clone(), models)
            });
            for (provider, models) in futures::future::join_all(lists).await {
                let _ = router.send_message(RouterMsg::Discovered { provider, models });
            }
            if let Some(reply) = reply {
                let _ = reply.send(());
            }
        });
    }
}

impl Actor for Router {
    type Msg = RouterMsg;
    type State = RouterState;
    type Arguments = RouterArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<RouterMsg>,
        args: RouterArgs,
    ) -> Result<RouterState, ActorProcessingErr> {
        let mut budgets = Budgets::new(args.budgets);
        let now = unix_secs();
        // Only namespaces with limits keep a ledger: without any, nothing to read back.
        let limited = args.settings.namespaces.keys().any(|namespace| budgets.limited(namespace));
        if let (Some(store), true) = (&args.store, limited) {
            let since = UNIX_EPOCH + std::time::Duration::from_secs(budgets.period_start(now));
            match store.usage_totals(since).await {
                Ok(totals) => {
                    for total in totals {
                        budgets.restore(
                            &total.namespace,
                            Spend { tokens: total.tokens, cost: total.cost },
                            now,
                        );
                    }
                }
                // The node runs on; budgets start from what this start spends.
                Err(error) => tracing::warn!(%error, "cannot read this period's model usage back"),
            }
        }
        let mut catalog = Catalog::default();
        // Models known from config alone are routable before discovery answers.
        for provider in &args.providers {
            catalog.set(&provider.settings, Vec::new());
        }
        // Discovery runs in the background and then periodically: a node starts fine with
        // its providers down.
        myself.send_interval(args.settings.discovery_interval, || RouterMsg::Refresh { reply: None });
        myself.send_message(RouterMsg::Refresh { reply: None })?;
        Ok(RouterState {
            settings: args.settings,
            names: args.providers.iter().map(|p| p.settings.name.clone()).collect(),
            providers: args.providers,
            catalog,
            budgets,
            usage: args.usage,
            metrics: args.metrics,
            series: HashMap::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<RouterMsg>,
        msg: RouterMsg,
        state: &mut RouterState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RouterMsg::Call { call, context, reply } => match state.plan(call, context, myself) {
                Ok(plan) => drop(tokio::spawn(dispatch::run(plan, reply))),
                Err(error) => {
                    state.metrics.call_failed(&error);
                    drop(reply.send(Err(error)));
                }
            },
            RouterMsg::Models { reply } => drop(reply.send(state.models())),
            RouterMsg::Providers { reply } => drop(reply.send(state.providers())),
            RouterMsg::Budgets { reply } => drop(reply.send(state.budgets.status(unix_secs()))),
            RouterMsg::Refresh { reply } => state.refresh(myself, reply),
            RouterMsg::Discovered { provider, models } => {
                let Some(entry) = state.providers.iter().find(|p| p.settings.name == provider) else {
                    return Ok(());
                };
                match models {
                    Ok(models) => {
                        entry.stats.set_discovery_error(None);
                        state.catalog.set(&entry.settings, models);
                    }
                    Err(error) => {
                        // The models it served before stay routable; its breaker decides.
                        tracing::warn!(%provider, %error, "model discovery failed");
                        entry.stats.set_discovery_error(Some(error.to_string()));
                    }
                }
            }
            RouterMsg::Settled { reservation, namespace, spend, record } => {
                let now = unix_secs();
                match (reservation, spend) {
                    (Some(id), Some(spend)) => state.budgets.settle(id, spend, now),
                    (Some(id), None) => state.budgets.release(id),
                    (None, Some(spend)) => state.budgets.record(&namespace, spend, now),
                    (None, None) => {}
                }
                if let (Some(record), Some(sink)) = (record, &state.usage) {
                    sink(record);
                }
            }
        }
        Ok(())
    }
}

/// The router's address with typed calls: what the edge, LLM agents and benches use.
/// It finds the router by name on every call, so it outlives the router's restarts.
#[derive(Clone, Debug)]
pub struct ModelRouter {
    name: String,
}

impl ModelRouter {
    /// The router registered as `name`.
    pub fn new(name: impl Into<String>) -> Self {
        ModelRouter { name: name.into() }
    }

    fn actor(&self) -> Result<ActorRef<RouterMsg>, ModelError> {
        ractor::registry::where_is(self.name.clone()).map(ActorRef::from).ok_or_else(router_down)
    }

    /// Routes `call`; dropping the returned future cancels it (and releases its budget).
    pub async fn call(&self, call: ModelCall, context: CallContext) -> Result<ModelOutput, ModelError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.actor()?.send_message(RouterMsg::Call { call, context, reply }).map_err(|_| router_down())?;
        answer.await.map_err(|_| router_down())?
    }

    pub async fn chat(&self, request: ChatRequest, context: CallContext) -> Result<ChatResponse, ModelError> {
        self.call(ModelCall::Chat(request), context).await.map(ModelOutput::into_response)
    }

    pub async fn chat_stream(
        &self,
        request: ChatRequest,
        context: CallContext,
    ) -> Result<ChatStream, ModelError> {
        self.call(ModelCall::ChatStream(request), context).await.map(ModelOutput::into_stream)
    }

    pub async fn generate(
        &self,
        request: GenerateRequest,
        context: CallContext,
    ) -> Result<ChatResponse, ModelError> {
        self.call(ModelCall::Generate(request), context).await.map(ModelOutput::into_response)
    }

    pub async fn generate_stream(
        &self,
        request: GenerateRequest,
        context: CallContext,
    ) -> Result<ChatStream, ModelError> {
        self.call(ModelCall::GenerateStream(request), context).await.map(ModelOutput::into_stream)
    }

    pub async fn embed(
        &self,
        request: EmbedRequest,
        context: CallContext,
    ) -> Result<EmbedResponse, ModelError> {
        self.call(ModelCall::Embed(request), context).await.map(ModelOutput::into_embeddings)
    }

    pub async fn models(&self) -> Result<Vec<ModelView>, ModelError> {
        ractor::call!(self.actor()?, |reply| RouterMsg::Models { reply }).map_err(|_| router_down())
    }

    pub async fn providers(&self) -> Result<Vec<ProviderView>, ModelError> {
        ractor::call!(self.actor()?, |reply| RouterMsg::Providers { reply }).map_err(|_| router_down())
    }

    pub async fn budgets(&self) -> Result<Vec<BudgetStatus>, ModelError> {
        ractor::call!(self.actor()?, |reply| RouterMsg::Budgets { reply }).map_err(|_| router_down())
    }

    /// Re-reads every provider's models and returns the catalog afterwards.
    pub async fn refresh(&self) -> Result<Vec<ModelView>, ModelError> {
        ractor::call!(self.actor()?, |reply| RouterMsg::Refresh { reply: Some(reply) })
            .map_err(|_| router_down())?;
        self.models().await
    }
}

fn router_down() -> ModelError {
    ModelError::Unavailable { provider: "router".into(), reason: "the model router is restarting".into() }
}
