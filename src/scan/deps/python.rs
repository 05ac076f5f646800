//! Python: requirements files, pyproject.toml and setup.cfg; imports mapped to the
//! distributions that provide them (PEP 503 names) through the table in
//! `src/scan/rules/python_imports.toml`.

mod pyproject;
mod requirements;

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::LazyLock;

use pep508_rs::{PackageName, Requirement};
use serde::Deserialize;

pub(super) use pyproject::parse_pyproject;
pub(super) use requirements::{parse_requirements, parse_setup_cfg};

use super::{data_lines, is_local_below, Resolution};
use crate::scan::report::{DeclaredDependency, FileProblem};

/// A PEP 503 normalized name: lowercase, runs of `-`, `_` and `.` become one `-`.
pub(super) fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// One PEP 508 requirement as a declaration. A requirement PEP 508 rejects still declares
/// its leading name when that is a valid one (`torch==latest`), and is reported.
fn declare(
    spec: &str,
    dev: bool,
    line: usize,
    path: &str,
    problems: &mut Vec<FileProblem>,
) -> Option<DeclaredDependency> {
    let (name, requirement) = match Requirement::<pep508_rs::VerbatimUrl>::from_str(spec) {
        Ok(req) => (req.name.to_string(), req.version_or_url.map(|v| v.to_string())),
        Err(err) => {
            problems.push(FileProblem {
                path: path.to_owned(),
                problem: "manifest".to_owned(),
                message: format!("invalid requirement `{spec}`: {}", err.message),
                line: Some(line),
            });
            let end = spec.find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')));
            let name = PackageName::from_str(&spec[..end.unwrap_or(spec.len())]).ok()?;
            (name.to_string(), None)
        }
    };
    Some(DeclaredDependency { name, requirement, dev, line: Some(line), alias: None, indirect: false })
}

/// `src/scan/rules/python_imports.toml`.
#[derive(Deserialize)]
struct ImportTable {
    modules: HashMap<String, Vec<String>>,
    namespaces: Vec<Namespace>,
}

/// Distributions named after the import path below a namespace package.
#[derive(Deserialize)]
struct Namespace {
    namespace: String,
    prefix: String,
    /// First components below the namespace whose distributions take two components.
    #[serde(default)]
    deep: Vec<String>,
}

impl Namespace {
    /// How many of the module's components the rule covers, and the candidate
    /// distributions (the rule's own name first, then every other depth, longest first).
    fn candidates(&self, parts: &[&str]) -> Option<(usize, Vec<String>)> {
        let ns: Vec<&str> = self.namespace.split('.').collect();
        let rest = parts.strip_prefix(ns.as_slice()).filter(|r| !r.is_empty())?;
        let depth = if self.deep.iter().any(|d| d == rest[0]) { 2 } else { 1 }.min(rest.len());
        let name = |k: usize| format!("{}{}", self.prefix, normalize(&rest[..k].join("-")));
        let others = (1..=rest.len()).rev().filter(|&k| k != depth).map(name);
        Some((ns.len() + depth, std::iter::once(name(depth)).chain(others).collect()))
    }
}

static IMPORT_TABLE: LazyLock<ImportTable> = LazyLock::new(|| {
    toml::from_str(include_str!("../rules/python_imports.toml"))
        .expect("src/scan/rules/python_imports.toml is valid")
});

static STDLIB: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| data_lines(include_str!("../rules/python_stdlib.txt")).collect());

/// The distributions that may provide `module`, best first, from the table; else the
/// top-level name and its `python-` form (`jose` → `python-jose`).
fn candidates(module: &str) -> Vec<String> {
    let parts: Vec<&str> = module.split('.').collect();
    let table = &*IMPORT_TABLE;
    let listed = (1..=parts.len())
        .rev()
        .find_map(|n| table.modules.get(&parts[..n].join(".")).map(|dists| (n, dists.clone())));
    let namespaced = table.namespaces.iter().filter_map(|ns| ns.candidates(&parts)).max_by_key(|(n, _)| *n);
    match (listed, namespaced) {
        (Some((n, dists)), Some((m, _))) if n >= m => dists,
        (_, Some((_, dists))) | (Some((_, dists)), None) => dists,
        (None, None) => {
            let top = normalize(parts[0]);
            vec![top.clone(), format!("python-{top}")]
        }
    }
}

/// Maps a Python import to its distribution.
pub(super) fn resolve(module: &str, file: &str, local: &HashSet<String>) -> Resolution {
    let top = module.split('.').next().unwrap_or("");
    if top.is_empty() || matches!(top, "__future__" | "__main__") || local.contains(top) {
        return Resolution::NotPackage;
    }
    if STDLIB.contains(top) || is_local_below(local, file, top) {
        return Resolution::Package { candidates: vec![normalize(top)], shadow: None };
    }
    let candidates = candidates(module);
    let shadow = candidates.first().cloned();
    Resolution::Package { candidates, shadow }
}

/// Modules the repository's Python files define, for the directories they are
/// importable from by a bare name. A package (a directory with `__init__.py`) or module
/// is top-level below the nearest directory that is not a package; a script's own
/// directory is on `sys.path` too, so every module and package is also importable from
/// its parent directory. Entries are plain for the root or a `src/` at the root,
/// `dir/name` otherwise (and also `parent/name` for a `parent/src/`).
pub(super) fn local_modules(rel_paths: &[&str], local: &mut HashSet<String>) {
    let python: Vec<&str> =
        rel_paths.iter().copied().filter(|p| p.ends_with(".py") || p.ends_with(".pyi")).collect();
    let packages: HashSet<&str> = python
        .iter()
        .filter_map(|p| p.rsplit_once('/'))
        .filter(|(_, file)| matches!(*file, "__init__.py" | "__init__.pyi"))
        .map(|(dir, _)| dir)
        .collect();
    for path in python {
        let (mut dir, file) = path.rsplit_once('/').unwrap_or(("", path));
        let mut name = file.rsplit_once('.').map_or(file, |(stem, _)| stem);
        loop {
            if name != "__init__" {
                local.insert(qualified(dir, name));
                // A `src/` layout installs its packages: importable from anywhere in the project.
                if let Some(project) = dir.strip_suffix("src").filter(|p| p.is_empty() || p.ends_with('/')) {
                    local.insert(qualified(project.trim_end_matches('/'), name));
                }
            }
            if !packages.contains(dir) {
                break;
            }
            (dir, name) = dir.rsplit_once('/').unwrap_or(("", dir));
        }
    }
}

/// `name` as a local entry for files at or below `dir`.
fn qualified(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(module: &str) -> Resolution {
        resolve(module, "app/main.py", &HashSet::new())
    }

    fn package(candidates: &[&str]) -> Resolution {
        let candidates: Vec<String> = candidates.iter().map(|c| (*c).to_owned()).collect();
        Resolution::Package { shadow: candidates.first().cloned(), candidates }
    }

    #[test]
    fn normalizes_per_pep_503() {
        assert_eq!(normalize("Foo.Bar__baz-_-qux"), "foo-bar-baz-qux");
        assert_eq!(normalize("langchain_openai"), "langchain-openai");
    }

    #[test]
    fn maps_imports_through_the_table() {
        assert_eq!(resolved("yaml"), package(&["pyyaml"]));
        assert_eq!(resolved("PIL.Image"), package(&["pillow"]));
        assert_eq!(resolved("sklearn.linear_model"), package(&["scikit-learn"]));
        assert_eq!(resolved("google.generativeai"), package(&["google-generativeai"]));
        assert_eq!(resolved("google.genai.types"), package(&["google-genai"]));
        assert_eq!(
            resolved("google.cloud.storage.blob"),
            package(&["google-cloud-storage", "google-cloud-storage-blob"])
        );
        assert_eq!(resolved("llama_index.llms.openai"), package(&["llama-index-llms-openai", "llama-index"]));
        assert_eq!(
            resolved("llama_index.vector_stores.qdrant"),
            package(&["llama-index-vector-stores-qdrant", "llama-index-vector-stores"])
        );
        assert_eq!(resolved("llama_index.core.agent"), package(&["llama-index-core", "llama-index"]));
        assert_eq!(resolved("llama_index"), package(&["llama-index", "llama-index-core"]));
        assert_eq!(resolved("agents"), package(&["openai-agents"]));
        assert_eq!(resolved("crewai_tools"), package(&["crewai-tools"]));
        assert_eq!(resolved("azure.storage.blob"), package(&["azure-storage-blob", "azure-storage"]));
        assert_eq!(resolved("azure.identity.aio"), package(&["azure-identity", "azure-identity-aio"]));
    }

    #[test]
    fn unknown_imports_use_their_top_level_name() {
        assert_eq!(
            resolved("langchain_openai.chat_models"),
            package(&["langchain-openai", "python-langchain-openai"])
        );
        assert_eq!(
            resolved("autogen_agentchat.agents"),
            package(&["autogen-agentchat", "python-autogen-agentchat"])
        );
    }

    #[test]
    fn stdlib_relative_and_local_are_not_packages() {
        let stdlib = Resolution::Package { candidates: vec!["asyncio".to_owned()], shadow: None };
        assert_eq!(resolved("asyncio.subprocess"), stdlib);
        assert_eq!(resolved("__future__"), Resolution::NotPackage);
        assert_eq!(resolved(".tools"), Resolution::NotPackage);
        assert_eq!(resolved(""), Resolution::NotPackage);
        let local = HashSet::from(["agents".to_owned()]);
        assert_eq!(resolve("agents.writer", "main.py", &local), Resolution::NotPackage);
        for name in ["sys", "os", "typing", "tomllib", "distutils", "asyncio"] {
            assert!(STDLIB.contains(name), "{name}");
        }
        assert!(!STDLIB.contains("requests"));
    }

    #[test]
    fn local_modules_follow_packages_to_their_root() {
        let mut local = HashSet::new();
        let paths = [
            "setup.py",
            "pkg/__init__.py",
            "pkg/sub/__init__.py",
            "pkg/sub/mod.py",
            "src/lib_a/__init__.py",
            "backend/src/lib_b/__init__.py",
            "backend/app/__init__.py",
            "backend/app/api/routes.py",
            "scripts/tool.py",
            "README.md",
        ];
        local_modules(&paths, &mut local);
        let mut got: Vec<_> = local.into_iter().collect();
        got.sort();
        assert_eq!(
            got,
            [
                "backend/app",
                "backend/app/api/routes",
                "backend/lib_b",
                "backend/src/lib_b",
                "lib_a",
                "pkg",
                "pkg/sub",
                "pkg/sub/mod",
                "scripts/tool",
                "setup",
                "src/lib_a"
            ]
        );
    }
}
