//! `[models]`: the providers the router sends model calls to, how it picks among them,
//! and each namespace's allowance.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use mark1_actors::domain::model::{
    BreakerSettings, ModelOverride, NamespaceModels, ProviderSettings, RoutePolicy, RouterSettings,
};
use serde::{Deserialize, Serialize};

use super::{check_var_name, read_secret, ConfigError};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelsConfig {
    pub policy: RoutePolicy,
    /// Longest one attempt at one provider may take.
    #[serde(with = "humantime_serde")]
    pub attempt_timeout: Duration,
    /// Further attempts after a provider fails, each at the next-best provider.
    pub retries: u32,
    #[serde(with = "humantime_serde")]
    pub retry_backoff: Duration,
    pub breaker: BreakerSettings,
    /// How often every provider's model list is re-read (also on `mark1 models refresh`).
    #[serde(with = "humantime_serde")]
    pub discovery_interval: Duration,
    /// Budget period, aligned to the Unix epoch: "1day" resets at midnight UTC.
    #[serde(with = "humantime_serde")]
    pub budget_period: Duration,
    /// Tokens a budget reserves for the answer of a request that sets no max_tokens.
    pub default_max_tokens: u32,
    /// `[models.providers.<name>]`.
    pub providers: BTreeMap<String, ProviderConfig>,
    /// `[models.namespaces.<namespace>]`: allowed providers and budgets.
    pub namespaces: BTreeMap<String, NamespaceModels>,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        let router = RouterSettings::default();
        ModelsConfig {
            policy: router.policy,
            attempt_timeout: router.attempt_timeout,
            retries: router.retries,
            retry_backoff: router.retry_backoff,
            breaker: router.breaker,
            discovery_interval: router.discovery_interval,
            budget_period: router.budget_period,
            default_max_tokens: router.default_max_tokens,
            providers: BTreeMap::new(),
            namespaces: BTreeMap::new(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Ollama's native API.
    Ollama,
    /// Any OpenAI-compatible server: vLLM, llama.cpp's server, LM Studio, hosted APIs.
    Openai,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub kind: ProviderKind,
    /// Ollama: `http://HOST:11434`; OpenAI-compatible: the URL ending in `/v1`.
    pub base_url: String,
    /// Environment variable holding the API key, sent as `Authorization: Bearer`.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// File holding the API key (set this or api_key_env, not both).
    #[serde(default)]
    pub api_key_file: Option<PathBuf>,
    /// Share of calls under the `weighted` policy.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Calls in flight at once; more are tried at another provider.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// Per-model corrections to discovery (context length, capabilities, price), keyed
    /// by model id; a model listed here is served even if discovery does not report it.
    #[serde(default)]
    pub models: BTreeMap<String, ModelOverride>,
}

fn default_weight() -> u32 {
    ProviderSettings::new("").weight
}

fn default_max_in_flight() -> usize {
    ProviderSettings::new("").max_in_flight
}

impl ProviderConfig {
    /// The API key from `api_key_env` or `api_key_file`, if either is set.
    pub fn api_key(&self) -> Result<Option<String>, ConfigError> {
        read_secret(self.api_key_env.as_deref(), self.api_key_file.as_deref())
    }

    pub fn settings(&self, name: &str) -> ProviderSettings {
        ProviderSettings {
            name: name.to_string(),
            weight: self.weight,
            max_in_flight: self.max_in_flight,
            models: self.models.clone(),
        }
    }
}

impl ModelsConfig {
    pub fn router_settings(&self) -> RouterSettings {
        RouterSettings {
            policy: self.policy,
            attempt_timeout: self.attempt_timeout,
            retries: self.retries,
            retry_backoff: self.retry_backoff,
            breaker: self.breaker,
            discovery_interval: self.discovery_interval,
            budget_period: self.budget_period,
            default_max_tokens: self.default_max_tokens,
            namespaces: self.namespaces.clone(),
        }
    }

    /// Checks names, URLs and limits; the `Err` is (key, message).
    pub(super) fn check(&self) -> Result<(), (String, String)> {
        for (key, value) in [
            ("models.attempt_timeout", self.attempt_timeout),
            ("models.discovery_interval", self.discovery_interval),
            ("models.budget_period", self.budget_period),
            ("models.breaker.open_for", self.breaker.open_for),
        ] {
            if value.is_zero() {
                return Err((key.into(), "must be greater than zero".into()));
            }
        }
        if self.breaker.failures == 0 {
            return Err(("models.breaker.failures".into(), "must be at least 1".into()));
        }
        for (name, provider) in &self.providers {
            let key = |field: &str| format!("models.providers.{name}.{field}");
            if !mark1_actors::domain::valid_name(name) {
                return Err((
                    format!("models.providers.{name}"),
                    "a provider name must match [a-z][a-z0-9_-]*".into(),
                ));
            }
            if !(provider.base_url.starts_with("http://") || provider.base_url.starts_with("https://")) {
                return Err((
                    key("base_url"),
                    format!("'{}' must start with http:// or https://", provider.base_url),
                ));
            }
            if let Some(var) = &provider.api_key_env {
                check_var_name(var).map_err(|m| (key("api_key_env"), m))?;
            }
            if provider.api_key_env.is_some() && provider.api_key_file.is_some() {
                return Err((key("api_key_env"), "set api_key_env or api_key_file, not both".into()));
            }
            if provider.max_in_flight == 0 {
                return Err((key("max_in_flight"), "must be at least 1".into()));
            }
        }
        for (namespace, allowance) in &self.namespaces {
            if !mark1_actors::domain::valid_name(namespace) {
                return Err((
                    format!("models.namespaces.{namespace}"),
                    "a namespace name must match [a-z][a-z0-9_-]*".into(),
                ));
            }
            if let Some(unknown) = allowance.providers.iter().find(|p| !self.providers.contains_key(*p)) {
                return Err((
                    format!("models.namespaces.{namespace}.providers"),
                    format!("'{unknown}' is not a configured provider (models.providers.<name>)"),
                ));
            }
            if allowance.cost.is_nan() || allowance.cost < 0.0 {
                return Err((format!("models.namespaces.{namespace}.cost"), "must be zero or more".into()));
            }
        }
        Ok(())
    }
}
