//! Findings from resolved facts, driven by the rule tables.

pub mod llm;
