//! The OpenAI-compatible provider adapter (being written).

pub mod wire;
