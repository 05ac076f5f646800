//! `mark1 scan`: finds the agents, tools, LLM calls and dependencies in a repository.
//!
//! The pipeline: [`walk`] lists and classifies files (respecting .gitignore, skipping
//! vendored and generated trees); each source file is parsed with tree-sitter on
//! rayon's pool (one parser per thread) and its language's extractor lowers it to
//! [`facts::FileFacts`] through `.scm` queries; resolution maps local names to fully
//! qualified ones and follows values to their literals; the rule tables (data under
//! `src/scan/rules/`) turn resolved facts into findings; manifests and imports give the
//! dependencies. The result is one [`report::RepositoryAnalysis`].

pub mod deps;
pub mod facts;
pub mod report;
pub mod walk;
