//! The openai provider adapter (being written).
