//! Model providers: adapters from the `ModelProvider` port to real model servers, and a
//! scripted server speaking their protocols for tests and benches.

pub mod ollama;
pub mod openai;
pub mod scripted;

use std::sync::Arc;

use mark1_actors::node::ProviderSpec;
use mark1_actors::ports::ModelProvider;

use crate::config::{ConfigError, ModelsConfig, ProviderKind};

/// The adapters of every `[models.providers.<name>]`, with their routing settings.
/// Nothing is contacted here: a provider that is down only shows as degraded later.
pub fn providers_from_config(models: &ModelsConfig) -> Result<Vec<ProviderSpec>, ConfigError> {
    models
        .providers
        .iter()
        .map(|(name, provider)| {
            let invalid = |message: String| ConfigError::InvalidValue {
                key: format!("models.providers.{name}"),
                message,
                origin: String::new(),
            };
            let api_key = provider.api_key()?;
            let adapter: Arc<dyn ModelProvider> = match provider.kind {
                ProviderKind::Ollama => Arc::new(
                    ollama::OllamaProvider::new(name.clone(), &provider.base_url, api_key)
                        .map_err(|e| invalid(e.to_string()))?,
                ),
                ProviderKind::Openai => Arc::new(
                    openai::OpenAiProvider::new(name.clone(), &provider.base_url, api_key)
                        .map_err(|e| invalid(e.to_string()))?,
                ),
            };
            Ok(ProviderSpec { settings: provider.settings(name), adapter })
        })
        .collect()
}
