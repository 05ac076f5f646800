//! The `health` actor: probes the store, the agents and the model providers periodically
//! and keeps the latest report where `/health`, `/ready` and the CLI read it without
//! messaging.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mark1_supervisors::Addr;
use parking_lot::RwLock;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde::Serialize;

use crate::orchestrator::{AgentHealth, AgentStatus, OrchestratorMsg};
use crate::ports::{Clock, ModelProvider, Store};
use crate::store_writer::StoreWriterStats;
use std::sync::atomic::Ordering::Relaxed;

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct HealthReport {
    #[serde(with = "humantime_serde")]
    pub checked_at: Option<SystemTime>,
    pub store_ok: bool,
    pub store_error: Option<String>,
    /// Agents whose pools failed, with the reason.
    pub failed_agents: Vec<(String, String)>,
    pub agents: usize,
    /// Every model provider and whether it answered its last probe (listing its models).
    pub providers: Vec<ProviderHealth>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ProviderHealth {
    pub name: String,
    pub ok: bool,
    pub error: Option<String>,
}

impl HealthReport {
    /// Ready to take work: the store answers.
    pub fn ready(&self) -> bool {
        self.checked_at.is_some() && self.store_ok
    }
}

pub type SharedHealth = Arc<RwLock<HealthReport>>;

pub fn shared_health() -> SharedHealth {
    Arc::new(RwLock::new(HealthReport {
        checked_at: None,
        store_ok: false,
        store_error: None,
        failed_agents: Vec::new(),
        agents: 0,
        providers: Vec::new(),
    }))
}

pub enum HealthMsg {
    Check,
    /// Internal: a probe finished.
    Checked(HealthReport),
}

pub struct HealthArgs {
    pub store: Arc<dyn Store>,
    /// Resolves the orchestrator at probe time: it may have restarted since.
    pub orchestrator: Arc<dyn Fn() -> Option<Addr<OrchestratorMsg>> + Send + Sync>,
    pub clock: Arc<dyn Clock>,
    pub interval: Duration,
    pub report: SharedHealth,
    /// The store writer's view: commits failing means the store is down even if a ping
    /// gets through.
    pub writer: Arc<StoreWriterStats>,
    pub providers: Vec<Arc<dyn ModelProvider>>,
}

pub struct Health;

impl Actor for Health {
    type Msg = HealthMsg;
    type State = HealthArgs;
    type Arguments = HealthArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<HealthMsg>,
        args: HealthArgs,
    ) -> Result<HealthArgs, ActorProcessingErr> {
        myself.send_message(HealthMsg::Check)?;
        myself.send_interval(args.interval, || HealthMsg::Check);
        Ok(args)
    }

    async fn handle(
        &self,
        myself: ActorRef<HealthMsg>,
        msg: HealthMsg,
        args: &mut HealthArgs,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            HealthMsg::Check => {
                let store = args.store.clone();
                let orchestrator = (args.orchestrator)();
                let clock = args.clock.clone();
                let timeout = args.interval;
                let writer = args.writer.clone();
                let providers = args.providers.clone();
                tokio::spawn(async move {
                    let mut report = probe(store, writer, orchestrator, clock, timeout).await;
                    report.providers = probe_providers(&providers, timeout).await;
                    let _ = myself.send_message(HealthMsg::Checked(report));
                });
            }
            HealthMsg::Checked(report) => *args.report.write() = report,
        }
        Ok(())
    }
}

async fn probe(
    store: Arc<dyn Store>,
    writer: Arc<StoreWriterStats>,
    orchestrator: Option<Addr<OrchestratorMsg>>,
    clock: Arc<dyn Clock>,
    timeout: Duration,
) -> HealthReport {
    let store_result = match tokio::time::timeout(timeout, store.ping()).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    };
    let store_result = store_result.and_then(|()| match writer.store_down.load(Relaxed) {
        true => Err("commits are failing; accepted work is kept until the store takes it".to_string()),
        false => Ok(()),
    });
    let agents: Vec<AgentStatus> = match orchestrator {
        Some(o) => match o.call(|reply| OrchestratorMsg::ListAgents { reply }, Some(timeout)).await {
            Ok(ractor::rpc::CallResult::Success(list)) => list,
            _ => Vec::new(),
        },
        None => Vec::new(),
    };
    let failed_agents = agents
        .iter()
        .filter_map(|a| match &a.health {
            AgentHealth::Failed(reason) => Some((format!("{}/{}", a.namespace, a.name), reason.clone())),
            AgentHealth::Ready => None,
        })
        .collect();
    HealthReport {
        checked_at: Some(clock.now()),
        store_ok: store_result.is_ok(),
        store_error: store_result.err(),
        failed_agents,
        agents: agents.len(),
        providers: Vec::new(),
    }
}

/// Pings each provider: one that does not answer is degraded (the node runs on).
async fn probe_providers(providers: &[Arc<dyn ModelProvider>], timeout: Duration) -> Vec<ProviderHealth> {
    let probes = providers.iter().map(|provider| async move {
        let result = match tokio::time::timeout(timeout, provider.ping()).await {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(_) => Err(format!("no answer within {timeout:?}")),
        };
        ProviderHealth { name: provider.name().to_string(), ok: result.is_ok(), error: result.err() }
    });
    futures::future::join_all(probes).await
}
