//! Which providers can serve a call, and in what order to try them: the catalog of
//! discovered models (with config overrides) and the routing policies. Pure functions.

use std::collections::BTreeMap;

use rand::Rng;

use super::call::Needs;
use crate::domain::model::{ProviderSettings, RoutePolicy};
use crate::ports::model::{ModelCapabilities, ModelError, ModelInfo};

/// Every provider's models, as discovered and corrected by config.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    by_provider: BTreeMap<String, Vec<ModelInfo>>,
}

/// A model at a provider the call may go to.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub provider: String,
    pub model: ModelInfo,
}

impl Catalog {
    /// Replaces `provider`'s models by `discovered`, corrected by its overrides; a model
    /// only in the overrides is served too.
    pub fn set(&mut self, provider: &ProviderSettings, discovered: Vec<ModelInfo>) {
        let mut models = discovered;
        for model in &mut models {
            if let Some(o) = provider.models.get(&model.id) {
                model.context_length = o.context_length.or(model.context_length);
                model.capabilities = o.capabilities.unwrap_or(model.capabilities);
                model.price = o.price.unwrap_or(model.price);
            }
        }
        for (id, o) in &provider.models {
            if !models.iter().any(|m| &m.id == id) {
                models.push(ModelInfo {
                    id: id.clone(),
                    provider: provider.name.clone(),
                    context_length: o.context_length,
                    capabilities: o
                        .capabilities
                        .unwrap_or(ModelCapabilities { chat: true, ..Default::default() }),
                    price: o.price.unwrap_or_default(),
                });
            }
        }
        for model in &mut models {
            model.provider = provider.name.clone();
        }
        self.by_provider.insert(provider.name.clone(), models);
    }

    pub fn models(&self) -> impl Iterator<Item = &ModelInfo> {
        self.by_provider.values().flatten()
    }

    /// The providers that may serve `requested` for a call with `needs`, in configuration
    /// order. `requested` is a bare id (every provider serving it), or `provider/id` when
    /// the part before the first `/` is a configured provider (ids like `org/model` stay
    /// bare). `allowed` limits the providers; empty allows all.
    pub fn candidates(
        &self,
        requested: &str,
        providers: &[String],
        allowed: &[String],
        needs: &Needs,
    ) -> Result<Vec<Candidate>, ModelError> {
        let is_allowed = |p: &str| allowed.is_empty() || allowed.iter().any(|a| a == p);
        if let Some((provider, id)) = requested.split_once('/') {
            if providers.iter().any(|p| p == provider) {
                if !is_allowed(provider) {
                    return Err(ModelError::NotCapable {
                        model: requested.into(),
                        reason: format!("this namespace may not use provider '{provider}'"),
                    });
                }
                // A pinned model the catalog does not list is tried anyway: discovery may
                // have failed, and the provider answers for itself.
                let model = self.find(provider, id).cloned().unwrap_or_else(|| ModelInfo {
                    id: id.into(),
                    provider: provider.into(),
                    context_length: None,
                    capabilities: needs.capabilities,
                    price: Default::default(),
                });
                check(requested, &model, needs)?;
                return Ok(vec![Candidate { provider: provider.into(), model }]);
            }
        }
        let serving: Vec<&ModelInfo> = providers.iter().filter_map(|p| self.find(p, requested)).collect();
        if serving.is_empty() {
            return Err(ModelError::UnknownModel(requested.into()));
        }
        let mut reasons = Vec::new();
        let mut candidates = Vec::new();
        for model in serving {
            if !is_allowed(&model.provider) {
                reasons.push(format!("this namespace may not use provider '{}'", model.provider));
            } else if let Err(ModelError::NotCapable { reason, .. }) = check(requested, model, needs) {
                reasons.push(format!("{}: {reason}", model.provider));
            } else {
                candidates.push(Candidate { provider: model.provider.clone(), model: model.clone() });
            }
        }
        if candidates.is_empty() {
            return Err(ModelError::NotCapable { model: requested.into(), reason: reasons.join("; ") });
        }
        Ok(candidates)
    }

    fn find(&self, provider: &str, id: &str) -> Option<&ModelInfo> {
        self.by_provider.get(provider)?.iter().find(|m| m.id == id)
    }
}

fn check(requested: &str, model: &ModelInfo, needs: &Needs) -> Result<(), ModelError> {
    let missing = model.capabilities.missing(&needs.capabilities);
    if !missing.is_empty() {
        let reason = format!("the model lacks {}", missing.join(", "));
        return Err(ModelError::NotCapable { model: requested.into(), reason });
    }
    if let Some(limit) = model.context_length {
        if needs.context_tokens > limit {
            let reason = format!(
                "about {} tokens of prompt and answer exceed its context of {limit}",
                needs.context_tokens
            );
            return Err(ModelError::NotCapable { model: requested.into(), reason });
        }
    }
    Ok(())
}

/// What the policies compare about one candidate.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Standing {
    /// `None`: never called (tried first under `latency`, so every provider gets measured).
    pub latency_us: Option<u64>,
    pub in_flight: usize,
    pub weight: u32,
}

/// Orders candidates best first under `policy`; ties keep configuration order.
pub fn order(
    policy: RoutePolicy,
    candidates: Vec<(Candidate, Standing)>,
    rng: &mut impl Rng,
) -> Vec<Candidate> {
    let mut ranked = candidates;
    match policy {
        RoutePolicy::Latency => ranked.sort_by_key(|(_, s)| s.latency_us.unwrap_or(0)),
        RoutePolicy::LeastInFlight => ranked.sort_by_key(|(_, s)| s.in_flight),
        RoutePolicy::Cost => ranked.sort_by(|(a, _), (b, _)| {
            let price = |c: &Candidate| c.model.price.input_per_mtok + c.model.price.output_per_mtok;
            price(a).total_cmp(&price(b))
        }),
        RoutePolicy::Weighted => {
            // Weighted sampling without replacement: each draw picks the next provider in
            // proportion to its weight among those left.
            let mut left = ranked;
            ranked = Vec::with_capacity(left.len());
            while !left.is_empty() {
                let total: u64 = left.iter().map(|(_, s)| u64::from(s.weight)).sum();
                let index = if total == 0 {
                    0
                } else {
                    let mut pick = rng.random_range(0..total);
                    left.iter()
                        .position(|(_, s)| {
                            let w = u64::from(s.weight);
                            if pick < w {
                                true
                            } else {
                                pick -= w;
                                false
                            }
                        })
                        .unwrap_or(0)
                };
                ranked.push(left.remove(index));
            }
        }
    }
    ranked.into_iter().map(|(c, _)| c).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::ModelOverride;
    use crate::ports::model::ModelPrice;

    fn info(provider: &str, id: &str, caps: ModelCapabilities, context: Option<u32>) -> ModelInfo {
        ModelInfo {
            id: id.into(),
            provider: provider.into(),
            context_length: context,
            capabilities: caps,
            price: Default::default(),
        }
    }

    const CHAT: ModelCapabilities =
        ModelCapabilities { chat: true, tools: false, embeddings: false, vision: false };
    const TOOLS: ModelCapabilities =
        ModelCapabilities { chat: true, tools: true, embeddings: false, vision: false };

    fn catalog() -> (Catalog, Vec<String>) {
        let providers = vec![ProviderSettings::new("a"), ProviderSettings::new("b")];
        let mut catalog = Catalog::default();
        catalog.set(
            &providers[0],
            vec![info("a", "llama3.1", CHAT, Some(8192)), info("a", "org/model", CHAT, None)],
        );
        catalog.set(&providers[1], vec![info("b", "llama3.1", TOOLS, Some(128_000))]);
        (catalog, providers.into_iter().map(|p| p.name).collect())
    }

    fn needs(capabilities: ModelCapabilities, context_tokens: u32) -> Needs {
        Needs { capabilities, context_tokens }
    }

    #[test]
    fn filters_by_capability_and_context() {
        let (c, p) = catalog();
        let all = c.candidates("llama3.1", &p, &[], &needs(CHAT, 100)).unwrap();
        assert_eq!(all.iter().map(|c| c.provider.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        let tools = c.candidates("llama3.1", &p, &[], &needs(TOOLS, 100)).unwrap();
        assert_eq!(tools.len(), 1);
        assert_eq!(tools[0].provider, "b");
        let long = c.candidates("llama3.1", &p, &[], &needs(CHAT, 10_000)).unwrap();
        assert_eq!(long[0].provider, "b", "a's 8k context is too small");
        let e = c
            .candidates("llama3.1", &p, &[], &needs(ModelCapabilities { vision: true, ..TOOLS }, 1))
            .unwrap_err();
        assert!(e.to_string().contains("lacks vision"), "{e}");
        assert!(matches!(
            c.candidates("mistral", &p, &[], &needs(CHAT, 1)),
            Err(ModelError::UnknownModel(_))
        ));
    }

    #[test]
    fn pinning_allow_lists_and_slashed_ids() {
        let (c, p) = catalog();
        let pinned = c.candidates("b/llama3.1", &p, &[], &needs(CHAT, 1)).unwrap();
        assert_eq!((pinned.len(), pinned[0].model.id.as_str()), (1, "llama3.1"));
        let unlisted = c.candidates("a/phi3", &p, &[], &needs(CHAT, 1)).unwrap();
        assert_eq!(unlisted[0].model.id, "phi3", "a pinned model discovery missed is tried");
        let org = c.candidates("org/model", &p, &[], &needs(CHAT, 1)).unwrap();
        assert_eq!(org[0].model.id, "org/model", "'org' is no provider, so the id stays whole");
        let only_b = c.candidates("llama3.1", &p, &["b".into()], &needs(CHAT, 1)).unwrap();
        assert_eq!(only_b.len(), 1);
        let e = c.candidates("a/llama3.1", &p, &["b".into()], &needs(CHAT, 1)).unwrap_err();
        assert!(e.to_string().contains("may not use provider 'a'"), "{e}");
    }

    #[test]
    fn overrides_correct_discovery_and_add_models() {
        let mut settings = ProviderSettings::new("a");
        let price = ModelPrice { input_per_mtok: 1.0, output_per_mtok: 2.0 };
        settings.models.insert(
            "llama3.1".into(),
            ModelOverride { context_length: Some(4096), price: Some(price), ..Default::default() },
        );
        settings.models.insert("extra".into(), ModelOverride::default());
        let mut c = Catalog::default();
        c.set(&settings, vec![info("ignored", "llama3.1", TOOLS, Some(8192))]);
        let models: Vec<_> = c.models().collect();
        assert_eq!(models.len(), 2);
        assert_eq!(
            (models[0].context_length, models[0].price, models[0].capabilities),
            (Some(4096), price, TOOLS)
        );
        assert_eq!((models[1].id.as_str(), models[1].capabilities), ("extra", CHAT));
        assert!(models.iter().all(|m| m.provider == "a"));
    }

    fn candidate(provider: &str, cost: f64) -> Candidate {
        let mut model = info(provider, "m", CHAT, None);
        model.price = ModelPrice { input_per_mtok: cost, output_per_mtok: cost };
        Candidate { provider: provider.into(), model }
    }

    fn names(list: &[Candidate]) -> Vec<&str> {
        list.iter().map(|c| c.provider.as_str()).collect()
    }

    #[test]
    fn policies_order_candidates() {
        let mut rng = rand::rng();
        let standing = |latency: Option<u64>, in_flight: usize, weight: u32| Standing {
            latency_us: latency,
            in_flight,
            weight,
        };
        let list = || {
            vec![
                (candidate("slow", 1.0), standing(Some(900), 0, 1)),
                (candidate("fast", 3.0), standing(Some(100), 5, 1)),
                (candidate("new", 2.0), standing(None, 2, 1)),
            ]
        };
        assert_eq!(names(&order(RoutePolicy::Latency, list(), &mut rng)), ["new", "fast", "slow"]);
        assert_eq!(names(&order(RoutePolicy::LeastInFlight, list(), &mut rng)), ["slow", "new", "fast"]);
        assert_eq!(names(&order(RoutePolicy::Cost, list(), &mut rng)), ["slow", "new", "fast"]);

        let mut firsts = BTreeMap::<String, u32>::new();
        for _ in 0..4000 {
            let list = vec![
                (candidate("heavy", 0.0), standing(None, 0, 3)),
                (candidate("light", 0.0), standing(None, 0, 1)),
            ];
            let ordered = order(RoutePolicy::Weighted, list, &mut rng);
            assert_eq!(ordered.len(), 2);
            *firsts.entry(ordered[0].provider.clone()).or_default() += 1;
        }
        let heavy = f64::from(firsts["heavy"]) / 4000.0;
        assert!((0.70..0.80).contains(&heavy), "weight 3 of 4 goes first about 75% of the time: {heavy}");
    }
}
