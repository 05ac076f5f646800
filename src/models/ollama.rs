//! The ollama provider adapter (being written).
