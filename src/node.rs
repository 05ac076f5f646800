//! The embedding API (DESIGN §13.2): build a node from its configuration, start its
//! actor tree, drive it, and shut it down in order.
//!
//! ```no_run
//! # use mark1::{Node, AgentSpec, TaskRequest, Agent, AgentError, TaskContext};
//! # struct Echo;
//! # impl Agent for Echo {
//! #     async fn handle(&self, _: TaskContext, input: serde_json::Value) -> Result<serde_json::Value, AgentError> { Ok(input) }
//! # }
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let node = Node::builder().agent(AgentSpec::native("echo").capability("text.echo"), Echo).build().await?;
//! let handle = node.start().await?;
//! let id = handle.submit(TaskRequest::to_agent("echo", serde_json::json!({"text": "hi"}))).await?;
//! let done = handle.wait(id, std::time::Duration::from_secs(5)).await?;
//! let report = handle.shutdown(std::time::Duration::from_secs(10)).await;
//! # Ok(()) }
//! ```

mod declared;
mod handle;
mod scanned;
mod scans;
mod workflows;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mark1_actors::agents::AgentDefinition;
use mark1_actors::domain::model::ProviderSettings;
use mark1_actors::domain::AgentSpec;
use mark1_actors::health::shared_health;
use mark1_actors::metrics::{ModelCollector, ModelMetrics, TaskMetrics, TreeCollector};
use mark1_actors::node::{NodeParts, NodeSettings, NodeTree, ProviderSpec};
use mark1_actors::orchestrator::quotas::{NamespaceQuota, QuotaSettings};
use mark1_actors::ports::{Agent, AgentRuntime, Clock, ModelProvider, NativeRuntime, Store, SystemClock};
use prometheus_client::registry::Registry;

pub use handle::{NodeError, NodeHandle, ShutdownReport};

use crate::config::Config;
use crate::config::ConfigLoader;
use crate::metrics::HttpMetrics;
use crate::runtimes::process::{ProcessRuntime, SandboxPolicy};
use crate::runtimes::{LlmRuntime, McpServers};
pub use declared::DeclaredRuntimes;

/// Collects what a node is made of; [`NodeBuilder::build`] validates it.
pub struct NodeBuilder {
    config: Option<Config>,
    config_file: Option<PathBuf>,
    natives: Vec<(AgentSpec, Arc<dyn AgentRuntime>)>,
    store: Option<Arc<dyn Store>>,
    providers: Vec<ProviderSpec>,
    clock: Arc<dyn Clock>,
    settings: Option<NodeSettings>,
}

/// A validated node, ready to start.
pub struct Node {
    config: Config,
    definitions: Vec<AgentDefinition>,
    declared: DeclaredRuntimes,
    store: Arc<dyn Store>,
    providers: Vec<ProviderSpec>,
    clock: Arc<dyn Clock>,
    settings: NodeSettings,
}

impl Node {
    pub fn builder() -> NodeBuilder {
        NodeBuilder {
            config: None,
            config_file: None,
            natives: Vec::new(),
            store: None,
            providers: Vec::new(),
            clock: Arc::new(SystemClock),
            settings: None,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Spawns the actor tree. The HTTP edge is started beside it: [`crate::http::Edge`].
    pub async fn start(self) -> Result<NodeHandle, NodeError> {
        let mut registry = Registry::default();
        let metrics = Arc::new(TaskMetrics::register(&mut registry));
        let model_metrics = Arc::new(ModelMetrics::default());
        model_metrics.register(&mut registry);
        let parts = NodeParts {
            name: self.config.node.name.clone(),
            store: self.store.clone(),
            providers: self.providers,
            clock: self.clock,
            agents: self.definitions,
            settings: self.settings,
            metrics,
            model_metrics,
            health: shared_health(),
            scanner: Some(Arc::new(crate::scan::service::LocalScanner::new(
                self.config.scan.max_concurrent,
                self.config.scan.thread_count(),
            ))),
        };
        let tree = NodeTree::start(parts)
            .await
            .map_err(|e| NodeError::Start(format!("node '{}': {e}", self.config.node.name)))?;
        tree.store_writer_stats.commit.register(&mut registry);
        registry.register_collector(Box::new(TreeCollector::new(tree.stats.clone(), tree.catalog.clone())));
        registry.register_collector(Box::new(ModelCollector::new(&tree.providers, tree.budgets.clone())));
        let http = Arc::new(HttpMetrics::register(&mut registry));
        Ok(NodeHandle::new(tree, self.config, registry, self.declared, http))
    }
}

impl NodeBuilder {
    pub fn config(mut self, config: Config) -> Self {
        self.config = Some(config);
        self
    }

    /// Loads the configuration from a file at build time (environment layered on top).
    pub fn config_file(mut self, path: impl AsRef<Path>) -> Self {
        self.config_file = Some(path.as_ref().to_path_buf());
        self
    }

    /// Registers a native agent.
    pub fn agent(mut self, spec: AgentSpec, agent: impl Agent) -> Self {
        self.natives.push((spec, Arc::new(NativeRuntime::new(agent))));
        self
    }

    /// Uses this store instead of opening the configured one (benches pass a `MemoryStore`
    /// to measure the runtime without a database).
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// Adds a model provider with default settings (in addition to the configured ones).
    pub fn provider(self, adapter: Arc<dyn ModelProvider>) -> Self {
        let settings = ProviderSettings::new(adapter.name());
        self.provider_with(settings, adapter)
    }

    /// Adds a model provider with its routing settings (weight, in-flight limit, models).
    pub fn provider_with(mut self, settings: ProviderSettings, adapter: Arc<dyn ModelProvider>) -> Self {
        self.providers.push(ProviderSpec { settings, adapter });
        self
    }

    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Overrides tree settings derived from the configuration (benches, tests).
    pub fn settings(mut self, settings: NodeSettings) -> Self {
        self.settings = Some(settings);
        self
    }

    /// Validates the configuration and every agent definition, then opens the store: the
    /// one given with [`store`](Self::store), else the configured one (`store.url`, by
    /// default SQLite under `node.data_dir`), created and migrated if needed.
    pub async fn build(self) -> Result<Node, NodeError> {
        let config = match (self.config, &self.config_file) {
            (Some(config), _) => config,
            (None, Some(path)) => ConfigLoader::new().file(path).load()?,
            // Embedded without a configuration: compiled defaults, nothing read from disk.
            (None, None) => ConfigLoader::new().no_file().env(Vec::<(String, String)>::new()).load()?,
        };
        let declared = DeclaredRuntimes {
            processes: Arc::new(ProcessRuntime::new(sandbox_policy(&config))),
            llm: Arc::new(LlmRuntime::new(
                &config.node.name,
                Arc::new(McpServers::from_config(&config.mcp)),
                config.models.default_max_tokens,
            )),
        };
        let mut definitions = Vec::new();
        for spec in config.agent_specs()? {
            let name = spec.name.clone();
            let definition = declared
                .definition(spec)
                .map_err(|e| NodeError::InvalidAgent(format!("agents.{name}: {e}")))?;
            definitions.push(definition);
        }
        for (spec, runtime) in self.natives {
            spec.validate().map_err(NodeError::InvalidAgent)?;
            if definitions.iter().any(|d| d.spec.key() == spec.key()) {
                return Err(NodeError::InvalidAgent(format!("agent {} is defined twice", spec.key())));
            }
            definitions.push(AgentDefinition::new(spec, runtime));
        }
        // Agents found in `scan.agents_dir`: config and code name agents explicitly, so
        // theirs win over one of the same name found by scanning.
        for (name, agent) in scanned::scanned_agents(&config).await? {
            let invalid = |e: String| NodeError::InvalidAgent(format!("scan.agents_dir: agent {name}: {e}"));
            let spec = config.agent_spec_from(&name, agent).map_err(|e| invalid(e.to_string()))?;
            if definitions.iter().any(|d| d.spec.key() == spec.key()) {
                tracing::info!(agent = %spec.key(), "found in scan.agents_dir and also defined: the definition wins");
                continue;
            }
            definitions.push(declared.definition(spec).map_err(invalid)?);
        }
        let mut providers = crate::models::providers_from_config(&config.models)?;
        providers.extend(self.providers);
        let settings = self.settings.unwrap_or_else(|| settings_from(&config));
        let store = match self.store {
            Some(store) => store,
            None => crate::store::open_store(&config).await?,
        };
        restore_registered_agents(store.as_ref(), &declared, &mut definitions).await?;
        Ok(Node { store, config, definitions, declared, providers, clock: self.clock, settings })
    }
}

/// Brings back the process and LLM agents registered at run time by an earlier start
/// (the store keeps them). Definitions from config and code win; a stored agent this
/// node no longer allows (its command is outside the sandbox, its MCP server is gone)
/// is left out with a warning rather than stopping the node. Native agents are code:
/// the embedding program registers them again.
async fn restore_registered_agents(
    store: &dyn Store,
    declared: &DeclaredRuntimes,
    definitions: &mut Vec<AgentDefinition>,
) -> Result<(), NodeError> {
    let stored =
        store.agents().await.map_err(|e| NodeError::Start(format!("cannot read the stored agents: {e}")))?;
    for spec in stored {
        let is_native = matches!(spec.runtime, mark1_actors::domain::RuntimeSpec::Native);
        if is_native || definitions.iter().any(|d| d.spec.key() == spec.key()) {
            continue;
        }
        let key = spec.key();
        match declared.definition(spec) {
            Ok(definition) => definitions.push(definition),
            Err(error) => {
                tracing::warn!(agent = %key, %error, "stored agent left out: this node no longer allows it")
            }
        }
    }
    Ok(())
}

fn sandbox_policy(config: &Config) -> SandboxPolicy {
    let mut policy = SandboxPolicy::new(config.process.allowed_dirs.clone(), config.work_dir());
    policy.env_allow = config.process.env_allow.clone();
    policy
}

fn quota_settings(limits: &crate::config::LimitsConfig) -> QuotaSettings {
    let quota = |max_in_flight, max_running| NamespaceQuota { max_in_flight, max_running };
    QuotaSettings {
        default: quota(limits.namespace_max_in_flight, limits.namespace_max_running),
        namespaces: limits
            .namespaces
            .iter()
            .map(|(name, l)| (name.clone(), quota(l.max_in_flight, l.max_running)))
            .collect(),
    }
}

fn settings_from(config: &Config) -> NodeSettings {
    NodeSettings {
        batch_max: config.store.batch_max,
        flush_delay: config.store.flush_delay,
        lazy_delay: config.store.lazy_delay,
        store_queue_limit: config.store.queue_limit,
        max_in_flight: config.limits.max_in_flight,
        quotas: quota_settings(&config.limits),
        lease_ttl: config.node.lease_ttl,
        retention: config.store.retention,
        prune_interval: config.store.prune_interval,
        prune_batch: config.store.prune_batch,
        models: config.models.router_settings(),
        ..NodeSettings::default()
    }
}
