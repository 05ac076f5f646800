//! Dependencies: the packages a repository's manifests declare, the packages its imports
//! name, and where the two disagree. Each ecosystem's module reads its manifests and maps
//! an import to the package names that could provide it; [`analyze`] joins the two the
//! same way for all four: a declared package nobody imports is `unused` (unless it is a
//! dev dependency or works without imports), an imported package nobody declares is a
//! `shadow` dependency.
//!
//! A repository without any manifest of an ecosystem still gets shadow packages for that
//! ecosystem's imports: they are imported and declared nowhere, which is what the status
//! says (a script collection without a requirements file is the common case).

mod analyze;
mod cargo;
mod go;
mod node;
mod python;

use std::collections::HashSet;

pub use analyze::analyze;

use super::report::{Ecosystem, Language, Manifest};

/// One import of a module in a scanned file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportUse {
    pub language: Language,
    /// The module as written: `langchain_openai`, `google.generativeai`,
    /// `@langchain/openai/chat`, `node:fs`, `./util`, `async_openai::types` (or
    /// `async_openai.types`), `github.com/sashabaranov/go-openai`.
    pub module: String,
    /// The importing file, relative to the root.
    pub file: String,
}

/// Why a manifest could not be read; becomes the message of a `manifest` problem.
#[derive(Debug, thiserror::Error)]
enum ManifestError {
    #[error("invalid TOML: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("line {line}: {message}")]
    Syntax { line: usize, message: String },
}

/// Parses a manifest by its file name (`requirements*.txt` or `requirements/*.txt`,
/// `pyproject.toml`, `setup.cfg`, `package.json`, `Cargo.toml`, `go.mod`); `rel` is the
/// repository-relative path. `Ok(None)` for any other file, and for a pyproject.toml or
/// setup.cfg that only configures tools. The error is a readable message.
pub fn parse_manifest(rel: &str, text: &str) -> Result<Option<Manifest>, String> {
    let (dir, name) = rel.rsplit_once('/').unwrap_or(("", rel));
    let name = name.to_ascii_lowercase();
    let in_requirements_dir = dir.rsplit('/').next() == Some("requirements");
    let parsed = match name.as_str() {
        "pyproject.toml" => python::parse_pyproject(rel, text),
        "setup.cfg" => Ok(python::parse_setup_cfg(rel, text)),
        "package.json" => node::parse_package_json(rel, text),
        "cargo.toml" => cargo::parse_cargo_toml(rel, text),
        "go.mod" => go::parse_go_mod(rel, text).map(Some),
        n if n.ends_with(".txt") && (n.starts_with("requirements") || in_requirements_dir) => {
            Ok(Some(python::parse_requirements(rel, text)))
        }
        _ => Ok(None),
    };
    parsed.map_err(|e| e.to_string())
}

/// The importable names the repository defines itself, so that importing them is never
/// a dependency. Two kinds of entry:
/// - a plain name, importable from anywhere: a Python package or module at the root or
///   in a `src/` directory, the repository's own distributions (import form), npm
///   packages and Rust crates (with `-` → `_`), Go module paths, and `@dir` for every
///   directory holding JavaScript or TypeScript (the shape of a path alias such as
///   `@components/…`). Rust's `crate`, `self` and `super` are never crates whatever the
///   set holds, and stay out of it so a Python package of that name is still seen;
/// - `dir/name`: a Python module or package that files at or below `dir` can import by
///   its bare name (a script's own directory is on `sys.path`), and a Rust module of the
///   crate whose `src/` is `dir`. Ecosystems consult these entries for imports from files
///   under `dir` only, and a declared package of the same name still wins.
pub fn local_modules(rel_paths: &[&str], manifests: &[Manifest]) -> HashSet<String> {
    let mut local = HashSet::new();
    python::local_modules(rel_paths, &mut local);
    node::local_modules(rel_paths, &mut local);
    cargo::local_modules(rel_paths, &mut local);
    for manifest in manifests {
        let Some(name) = &manifest.name else { continue };
        local.insert(match manifest.ecosystem {
            Ecosystem::Pypi => python::normalize(name).replace('-', "_"),
            Ecosystem::Cargo => name.replace('-', "_"),
            Ecosystem::Npm | Ecosystem::Go => name.clone(),
        });
    }
    local
}

/// What an import names, as far as dependencies go.
#[derive(Debug, PartialEq, Eq)]
enum Resolution {
    /// The standard library, the repository's own code, a relative path.
    NotPackage,
    /// A package: the names a declaration of it may carry, best first (in the
    /// ecosystem's matching form, see [`match_keys`]), and the name it is reported
    /// under when none is declared. No `shadow` name: a standard-library or local name
    /// that is a package only where a manifest declares it (a polyfill, a backport).
    Package { candidates: Vec<String>, shadow: Option<String> },
}

fn ecosystem_of(language: Language) -> Option<Ecosystem> {
    match language {
        Language::Python | Language::Notebook => Some(Ecosystem::Pypi),
        Language::Javascript | Language::Typescript | Language::Tsx => Some(Ecosystem::Npm),
        Language::Rust => Some(Ecosystem::Cargo),
        Language::Go => Some(Ecosystem::Go),
        _ => None,
    }
}

fn resolve(ecosystem: Ecosystem, import: &ImportUse, local: &HashSet<String>) -> Resolution {
    let module = import.module.trim();
    match ecosystem {
        Ecosystem::Pypi => python::resolve(module, &import.file, local),
        Ecosystem::Npm => node::resolve(module, local),
        Ecosystem::Cargo => cargo::resolve(module, &import.file, local),
        Ecosystem::Go => go::resolve(module, local),
    }
}

/// The names an import's candidates are compared with, for one declared package.
fn match_keys(ecosystem: Ecosystem, name: &str, alias: Option<&str>) -> Vec<String> {
    match ecosystem {
        Ecosystem::Cargo => std::iter::once(name).chain(alias).map(|n| n.replace('-', "_")).collect(),
        Ecosystem::Pypi | Ecosystem::Npm | Ecosystem::Go => vec![name.to_owned()],
    }
}

/// Whether a local entry of the `dir/name` kind covers `name` imported from `file`:
/// `dir` is the file's directory or one of its ancestors.
fn is_local_below(local: &HashSet<String>, file: &str, name: &str) -> bool {
    let mut dir = file.rsplit_once('/').map_or("", |(d, _)| d);
    while !dir.is_empty() {
        if local.contains(&format!("{dir}/{name}")) {
            return true;
        }
        dir = dir.rsplit_once('/').map_or("", |(d, _)| d);
    }
    false
}

/// The 1-based line of a byte offset.
fn line_at(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

/// Names of a data file in `src/scan/rules/`: one per line, `#` starts a comment.
fn data_lines(text: &'static str) -> impl Iterator<Item = &'static str> {
    text.lines().map(|l| l.split('#').next().unwrap_or("").trim()).filter(|l| !l.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_are_chosen_by_file_name() {
        let req = parse_manifest("svc/requirements-dev.txt", "pytest\n").unwrap().unwrap();
        assert_eq!((req.ecosystem, req.format.as_str()), (Ecosystem::Pypi, "requirements"));
        let nested = parse_manifest("requirements/base.txt", "requests\n").unwrap().unwrap();
        assert_eq!(nested.declared[0].name, "requests");
        assert!(parse_manifest("Cargo.toml", "[package]\nname = \"x\"\n").unwrap().is_some());
        assert!(parse_manifest("notes.txt", "requests\n").unwrap().is_none());
        assert!(parse_manifest("setup.py", "").unwrap().is_none());
        let err = parse_manifest("package.json", "{ nope").unwrap_err();
        assert!(err.starts_with("invalid JSON"), "{err}");
    }

    #[test]
    fn local_modules_cover_each_language() {
        let manifests = [
            parse_manifest("pyproject.toml", "[project]\nname = \"My-Agent\"\n").unwrap().unwrap(),
            parse_manifest("crates/core/Cargo.toml", "[package]\nname = \"agent-core\"\n").unwrap().unwrap(),
            parse_manifest("go.mod", "module github.com/acme/bot\n").unwrap().unwrap(),
            parse_manifest("web/package.json", r#"{"name": "@acme/web"}"#).unwrap().unwrap(),
        ];
        let paths = [
            "main.py",
            "agents/__init__.py",
            "agents/researcher.py",
            "src/toolkit/__init__.py",
            "examples/demo/run.py",
            "examples/demo/helper.py",
            "crates/core/src/lib.rs",
            "crates/core/src/config.rs",
            "crates/core/src/net/mod.rs",
            "web/src/components/Button.tsx",
        ];
        let local = local_modules(&paths, &manifests);
        for name in [
            "main",
            "agents",
            "toolkit",
            "examples/demo/helper",
            "examples/demo/run",
            "crates/core/src/config",
            "crates/core/src/net",
            "my_agent",
            "agent_core",
            "github.com/acme/bot",
            "@acme/web",
            "@components",
        ] {
            assert!(local.contains(name), "{name} missing from {local:?}");
        }
        for name in ["researcher", "helper", "lib", "crates/core/src/lib", "config"] {
            assert!(!local.contains(name), "{name} should not be local");
        }
    }

    #[test]
    fn local_below_checks_the_ancestors_only() {
        let local = HashSet::from(["examples/demo/helper".to_owned()]);
        assert!(is_local_below(&local, "examples/demo/run.py", "helper"));
        assert!(is_local_below(&local, "examples/demo/sub/x.py", "helper"));
        assert!(!is_local_below(&local, "examples/other/run.py", "helper"));
        assert!(!is_local_below(&local, "run.py", "helper"));
    }

    #[test]
    fn line_at_counts_from_one() {
        assert_eq!(line_at("a\nb\nc", 0), 1);
        assert_eq!(line_at("a\nb\nc", 2), 2);
        assert_eq!(line_at("a\nb\nc", 99), 3);
    }
}
