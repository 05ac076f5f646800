//! The `provider:<name>` actor: owns one provider adapter, runs its calls outside the
//! mailbox under an in-flight limit, and stops them when their caller gives up.

use std::sync::Arc;

use futures::StreamExt;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::call::{ModelCall, ModelOutput};
use super::stats::ProviderStats;
use crate::ports::model::{ModelError, ModelInfo, ModelProvider};

pub enum ProviderMsg {
    /// Runs one attempt of a call; `cancel` stops it (and drops its HTTP request).
    Call {
        call: Box<ModelCall>,
        cancel: CancellationToken,
        reply: oneshot::Sender<Result<ModelOutput, ModelError>>,
    },
    /// Reads the provider's model list.
    Discover { reply: oneshot::Sender<Result<Vec<ModelInfo>, ModelError>> },
}

pub struct ProviderArgs {
    pub adapter: Arc<dyn ModelProvider>,
    pub stats: Arc<ProviderStats>,
    pub max_in_flight: usize,
}

pub struct Provider;

/// Holds an in-flight slot until dropped (for a stream: until the stream is dropped).
struct Slot(Arc<ProviderStats>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.end();
    }
}

impl Actor for Provider {
    type Msg = ProviderMsg;
    type State = ProviderArgs;
    type Arguments = ProviderArgs;

    async fn pre_start(
        &self,
        _: ActorRef<ProviderMsg>,
        args: ProviderArgs,
    ) -> Result<ProviderArgs, ActorProcessingErr> {
        Ok(args)
    }

    async fn handle(
        &self,
        _: ActorRef<ProviderMsg>,
        msg: ProviderMsg,
        state: &mut ProviderArgs,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ProviderMsg::Call { call, cancel, reply } => {
                if !state.stats.try_begin(state.max_in_flight) {
                    let provider = state.adapter.name().to_string();
                    let _ = reply.send(Err(ModelError::Overloaded { provider, limit: state.max_in_flight }));
                    return Ok(());
                }
                let slot = Slot(state.stats.clone());
                let adapter = state.adapter.clone();
                tokio::spawn(async move {
                    let result = tokio::select! {
                        result = execute(adapter.as_ref(), *call) => result,
                        () = cancel.cancelled() => Err(ModelError::Cancelled),
                    };
                    let result = result.map(|output| match output {
                        // The slot stays taken while the answer streams.
                        ModelOutput::Stream(stream) => ModelOutput::Stream(
                            stream
                                .map(move |chunk| {
                                    let _slot = &slot;
                                    chunk
                                })
                                .boxed(),
                        ),
                        other => other,
                    });
                    let _ = reply.send(result);
                });
            }
            ProviderMsg::Discover { reply } => {
                let adapter = state.adapter.clone();
                tokio::spawn(async move {
                    let _ = reply.send(adapter.models().await);
                });
            }
        }
        Ok(())
    }
}

async fn execute(adapter: &dyn ModelProvider, call: ModelCall) -> Result<ModelOutput, ModelError> {
    Ok(match call {
        ModelCall::Chat(request) => ModelOutput::Chat(adapter.chat(request).await?),
        ModelCall::ChatStream(request) => ModelOutput::Stream(adapter.chat_stream(request).await?),
        ModelCall::Generate(request) => ModelOutput::Chat(adapter.generate(request).await?),
        ModelCall::GenerateStream(request) => ModelOutput::Stream(adapter.generate_stream(request).await?),
        ModelCall::Embed(request) => ModelOutput::Embed(adapter.embed(request).await?),
    })
}
