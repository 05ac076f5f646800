//! Models: the `router` actor every model call goes through, and the `provider:<name>`
//! actors that own the adapters. Both live under the `models` supervisor.

pub mod breaker;
pub mod budget;
pub mod call;
mod dispatch;
pub mod provider;
pub mod router;
pub mod select;
pub mod stats;
#[cfg(test)]
mod tests;

pub use call::{CallContext, ModelCall, ModelOutput};
pub use router::{ModelRouter, ModelView, ProviderEntry, ProviderView, Router, RouterArgs, RouterMsg};
