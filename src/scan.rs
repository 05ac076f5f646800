//! `mark1 scan`: finds the agents, tools, LLM calls and dependencies in a repository.
//!
//! The pipeline: [`walk`] lists and classifies files (respecting .gitignore, skipping
//! vendored and generated trees); each source file is parsed with tree-sitter on
//! rayon's pool (one parser per thread) and its language's extractor lowers it to
//! [`facts::FileFacts`] through `.scm` queries; [`resolve`] maps local names to fully
//! qualified ones and follows values to their literals; the [`rules`] tables (data under
//! `src/scan/rules/`) turn resolved facts into findings; manifests and imports give the
//! dependencies. The result is one [`report::RepositoryAnalysis`].

mod analyze;
pub mod deps;
pub mod detect;
pub mod extract;
pub mod facts;
pub mod format;
pub(crate) mod notebook;
mod readme;
pub mod register;
pub mod report;
pub mod resolve;
pub mod rewrite;
pub mod rules;
pub mod service;
pub mod walk;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rayon::prelude::*;

use analyze::FileAnalysis;
use report::{FileEntry, FrameworkUse, RepositoryAnalysis, Summary, ToolInfo, SCHEMA_VERSION};
pub use rules::{RuleError, Rules};

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("cannot scan {path}: {source}")]
    Root { path: String, source: std::io::Error },
}

/// Called as files finish: (done, total).
pub type Progress<'a> = &'a (dyn Fn(usize, usize) + Sync);

/// Time spent per stage, summed over the worker threads.
#[derive(Debug, Clone, Copy, Default)]
pub struct StageTimes {
    pub parse: Duration,
    pub matching: Duration,
}

/// Scans `root` (a directory or one file) with `rules`.
pub fn scan(
    root: &Path,
    rules: &Rules,
    progress: Option<Progress<'_>>,
) -> Result<RepositoryAnalysis, ScanError> {
    scan_timed(root, rules, progress).map(|(analysis, _)| analysis)
}

/// [`scan`], also returning the time spent parsing and matching.
pub fn scan_timed(
    root: &Path,
    rules: &Rules,
    progress: Option<Progress<'_>>,
) -> Result<(RepositoryAnalysis, StageTimes), ScanError> {
    let files =
        walk::walk(root).map_err(|source| ScanError::Root { path: root.display().to_string(), source })?;
    let done = AtomicUsize::new(0);
    let analyses: Vec<FileAnalysis> = files
        .par_iter()
        .map(|file| {
            let analysis = analyze::analyze(file, rules);
            let finished = done.fetch_add(1, Ordering::Relaxed) + 1;
            if let Some(progress) = progress {
                progress(finished, files.len());
            }
            analysis
        })
        .collect();

    let mut times = StageTimes::default();
    let mut report = RepositoryAnalysis {
        schema_version: SCHEMA_VERSION.into(),
        tool: ToolInfo { name: "mark1".into(), version: env!("CARGO_PKG_VERSION").into() },
        root: root.display().to_string(),
        summary: Summary::default(),
        files: Vec::with_capacity(files.len()),
        problems: Vec::new(),
        dependencies: Default::default(),
        llm_calls: Vec::new(),
        agents: Vec::new(),
        tools: Vec::new(),
        graphs: Vec::new(),
        mcp: Vec::new(),
        frameworks: Vec::new(),
        readme: None,
    };
    let manifests = manifests(&files, &mut report.problems);
    let rel_paths: Vec<&str> = files.iter().map(|f| f.rel.as_str()).collect();
    let local = deps::local_modules(&rel_paths, &manifests);
    let mut imports = Vec::new();
    let mut framework_files: BTreeMap<&str, HashSet<&str>> = BTreeMap::new();
    for (file, analysis) in files.iter().zip(analyses) {
        times.parse += analysis.parse_time;
        times.matching += analysis.match_time;
        if analysis.parsed_bytes > 0 {
            report.summary.parsed_files += 1;
            report.summary.parsed_bytes += analysis.parsed_bytes;
        }
        for module in &analysis.imports {
            // A repository's own `agents` package is not the OpenAI Agents SDK.
            let top = module.split(['.', '/']).next().unwrap_or(module);
            if local.contains(top) {
                continue;
            }
            for framework in rules.frameworks_of(module) {
                framework_files.entry(framework).or_default().insert(&file.rel);
            }
        }
        imports.extend(analysis.imports.into_iter().map(|module| deps::ImportUse {
            language: file.language,
            module,
            file: file.rel.clone(),
        }));
        report.problems.extend(analysis.problem);
        report.llm_calls.extend(analysis.llm_calls);
        report.agents.extend(analysis.agents);
        report.tools.extend(analysis.tools);
        report.graphs.extend(analysis.graphs);
        report.mcp.extend(analysis.mcp);
        if report.readme.is_none() && readme::is_readme(&file.rel) {
            report.readme =
                std::fs::read_to_string(&file.path).ok().map(|text| readme::summarize(&file.rel, &text));
        }
        *report.summary.by_language.entry(file.language.as_str().to_owned()).or_default() += 1;
        *report.summary.by_kind.entry(file.kind.as_str().to_owned()).or_default() += 1;
        report.files.push(FileEntry {
            path: file.rel.clone(),
            language: file.language,
            kind: file.kind,
            bytes: file.bytes,
            manifest: file.manifest,
        });
    }
    report.dependencies = deps::analyze(manifests, &imports, &local);
    report.problems.sort_by(|a, b| a.path.cmp(&b.path));
    report.frameworks = framework_files
        .into_iter()
        .map(|(name, files)| FrameworkUse { name: name.to_owned(), files: files.len() })
        .collect();
    report.summary.files = report.files.len();
    report.summary.llm_calls = report.llm_calls.len();
    report.summary.agents = report.agents.len();
    report.summary.tools = report.tools.len();
    report.summary.mcp = report.mcp.len();
    report.summary.problems = report.problems.len();
    Ok((report, times))
}

/// The manifests among `files`, parsed; what cannot be read is a problem, not a failure.
fn manifests(files: &[walk::WalkedFile], problems: &mut Vec<report::FileProblem>) -> Vec<report::Manifest> {
    let mut out = Vec::new();
    for file in files.iter().filter(|f| f.manifest) {
        let problem = |message: String| report::FileProblem {
            path: file.rel.clone(),
            problem: "manifest".into(),
            message,
            line: None,
        };
        match std::fs::read_to_string(&file.path)
            .map_err(|e| e.to_string())
            .and_then(|t| deps::parse_manifest(&file.rel, &t))
        {
            Ok(Some(mut manifest)) => {
                problems.append(&mut manifest.problems);
                out.push(manifest);
            }
            Ok(None) => {}
            Err(message) => problems.push(problem(message)),
        }
    }
    out
}
