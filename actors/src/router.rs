//! The model `router` actor: picks a provider for each model request over the
//! `ModelProvider` port. Real providers, policies, budgets and circuit breakers arrive
//! with the models issue; the routing seam and its message shape are here now.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::ports::{ChatRequest, ChatResponse, ModelError, ModelInfo, ModelProvider};

pub enum RouterMsg {
    Chat {
        request: ChatRequest,
        reply: RpcReplyPort<Result<ChatResponse, ModelError>>,
    },
    Models {
        reply: RpcReplyPort<Vec<ModelInfo>>,
    },
    /// Re-reads every provider's model list.
    Refresh,
    /// Internal: a provider's model list arrived.
    Discovered {
        provider: String,
        models: Result<Vec<ModelInfo>, ModelError>,
    },
}

pub struct RouterArgs {
    pub providers: Vec<Arc<dyn ModelProvider>>,
}

pub struct Router;

pub struct RouterState {
    providers: Vec<Arc<dyn ModelProvider>>,
    models: Vec<ModelInfo>,
}

impl RouterState {
    /// Providers that serve `model`, in configuration order. `provider/model` pins one.
    fn candidates(&self, model: &str) -> Vec<(Arc<dyn ModelProvider>, String)> {
        if let Some((provider, id)) = model.split_once('/') {
            if let Some(p) = self.providers.iter().find(|p| p.name() == provider) {
                return vec![(p.clone(), id.to_string())];
            }
        }
        self.providers
            .iter()
            .filter(|p| self.models.iter().any(|m| m.provider == p.name() && m.id == model))
            .map(|p| (p.clone(), model.to_string()))
            .collect()
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
        // Discovery runs in the background: a node starts fine with its providers down.
        myself.send_message(RouterMsg::Refresh)?;
        Ok(RouterState { providers: args.providers, models: Vec::new() })
    }

    async fn handle(
        &self,
        myself: ActorRef<RouterMsg>,
        msg: RouterMsg,
        state: &mut RouterState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RouterMsg::Chat { request, reply } => {
                let candidates = state.candidates(&request.model);
                if candidates.is_empty() {
                    let _ = reply.send(Err(ModelError::UnknownModel(request.model)));
                    return Ok(());
                }
                // The call runs outside the mailbox; on an unavailable provider the next
                // candidate is tried.
                tokio::spawn(async move {
                    let mut last = None;
                    for (provider, model) in candidates {
                        let attempt = ChatRequest { model, ..request.clone() };
                        match provider.chat(attempt).await {
                            Ok(response) => return drop(reply.send(Ok(response))),
                            Err(e @ ModelError::Unavailable { .. }) => last = Some(e),
                            Err(e) => return drop(reply.send(Err(e))),
                        }
                    }
                    let _ = reply.send(Err(last.expect("at least one candidate")));
                });
            }
            RouterMsg::Models { reply } => drop(reply.send(state.models.clone())),
            RouterMsg::Refresh => {
                for provider in state.providers.clone() {
                    let me = myself.clone();
                    tokio::spawn(async move {
                        let models = provider.models().await;
                        let _ = me.send_message(RouterMsg::Discovered {
                            provider: provider.name().to_string(),
                            models,
                        });
                    });
                }
            }
            RouterMsg::Discovered { provider, models } => match models {
                Ok(models) => {
                    state.models.retain(|m| m.provider != provider);
                    state.models.extend(models);
                }
                Err(error) => tracing::warn!(%provider, %error, "model discovery failed"),
            },
        }
        Ok(())
    }
}
