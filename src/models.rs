//! Model providers: adapters from the `ModelProvider` port to real model servers, and a
//! scripted server speaking their protocols for tests and benches.

pub mod ollama;
pub mod openai;
pub mod scripted;
