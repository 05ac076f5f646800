//! The line-oriented Python manifests: pip requirements files and setup.cfg.

use std::str::FromStr;

use pep508_rs::PackageName;

use super::declare;
use crate::scan::report::{DeclaredDependency, Ecosystem, Manifest};

/// Words in a requirements file's name that make its packages development ones
/// (`requirements-dev.txt`, `requirements_test.txt`, `requirements/lint.txt`).
const DEV_WORDS: &[&str] =
    &["dev", "develop", "development", "test", "tests", "testing", "lint", "docs", "doc", "ci", "typing"];

/// A pip requirements file: one PEP 508 requirement a line; comments, options (`-r`,
/// `-c`, `--index-url`, …) and plain paths or URLs skipped; an editable or URL line
/// declares the package its `#egg=` names.
pub(in crate::scan::deps) fn parse_requirements(rel: &str, text: &str) -> Manifest {
    let file = rel.rsplit('/').next().unwrap_or(rel);
    let stem = file.rsplit_once('.').map_or(file, |(s, _)| s).to_ascii_lowercase();
    let words = stem.strip_prefix("requirements").unwrap_or(&stem);
    let dev = words.split(['-', '_', '.']).any(|w| DEV_WORDS.contains(&w));
    let mut manifest = manifest(rel, "requirements");
    for (line, entry) in logical_lines(text) {
        let entry = strip_comment(&entry);
        if entry.is_empty() {
            continue;
        }
        if let Some(option) = entry.strip_prefix('-') {
            let editable = option.strip_prefix("-editable").or_else(|| option.strip_prefix('e'));
            if let Some(target) = editable.map(|t| t.trim_start_matches([' ', '=']).trim()) {
                manifest.declared.extend(egg(target, dev, line));
            }
            continue;
        }
        // Per-requirement options (`--hash=…`) follow the requirement.
        let spec = entry.find(" --").map_or(entry, |i| &entry[..i]).trim();
        if is_path_or_url(spec) {
            manifest.declared.extend(egg(spec, dev, line));
            continue;
        }
        manifest.declared.extend(declare(spec, dev, line, rel, &mut manifest.problems));
    }
    manifest
}

/// setup.cfg's `[options] install_requires` and `[options.extras_require]` (dev), or
/// `None` when it states neither nor a `[metadata] name` (a file that only configures
/// tools).
pub(in crate::scan::deps) fn parse_setup_cfg(rel: &str, text: &str) -> Option<Manifest> {
    let mut manifest = manifest(rel, "setup_cfg");
    let mut relevant = false;
    let mut section = String::new();
    // The key whose (possibly multi-line) value is being read, and whether its entries are dev ones.
    let mut reading: Option<bool> = None;
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with(['#', ';']) {
            continue;
        }
        let continuation = raw.starts_with([' ', '\t']);
        let value = if continuation {
            trimmed
        } else if let Some(name) = trimmed.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            section = name.trim().to_ascii_lowercase();
            relevant |= matches!(section.as_str(), "options" | "options.extras_require");
            reading = None;
            continue;
        } else {
            let Some((key, value)) = trimmed.split_once(['=', ':']) else { continue };
            let key = key.trim().to_ascii_lowercase();
            reading = match (section.as_str(), key.as_str()) {
                ("options", "install_requires") => Some(false),
                ("options", "tests_require") | ("options.extras_require", _) => Some(true),
                _ => None,
            };
            if section == "metadata" && key == "name" {
                manifest.name = Some(value.trim().to_owned());
                relevant = true;
            }
            value.trim()
        };
        // `file: requirements.txt` points at a file parsed on its own.
        if value.starts_with("file:") {
            reading = None;
        }
        if let Some(dev) = reading.filter(|_| !value.is_empty()) {
            manifest.declared.extend(declare(value, dev, line, rel, &mut manifest.problems));
        }
    }
    relevant.then_some(manifest)
}

fn manifest(rel: &str, format: &str) -> Manifest {
    Manifest {
        path: rel.to_owned(),
        ecosystem: Ecosystem::Pypi,
        format: format.to_owned(),
        name: None,
        declared: Vec::new(),
        problems: Vec::new(),
    }
}

/// Lines with `\` continuations joined, each with the 1-based number of its first line.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    let mut open = false;
    for (index, line) in text.lines().enumerate() {
        let (body, continues) = match line.strip_suffix('\\') {
            Some(body) => (body, true),
            None => (line, false),
        };
        match out.last_mut() {
            Some((_, joined)) if open => joined.push_str(body),
            _ => out.push((index + 1, body.to_owned())),
        }
        open = continues;
    }
    out
}

/// pip's comment rule: `#` at the start or after whitespace (a URL's `#egg=` stays).
fn strip_comment(line: &str) -> &str {
    let cut = line
        .char_indices()
        .find(|&(i, c)| c == '#' && (i == 0 || line[..i].ends_with([' ', '\t'])))
        .map_or(line.len(), |(i, _)| i);
    line[..cut].trim()
}

fn is_path_or_url(spec: &str) -> bool {
    let scheme = spec.split_once("://").map(|(s, _)| s);
    spec.starts_with(['.', '/', '~'])
        || scheme.is_some_and(|s| s.chars().all(|c| c.is_ascii_alphanumeric() || c == '+'))
        || spec.starts_with("file:")
}

/// The package an editable, path or URL requirement names: its `#egg=` fragment, or a
/// wheel's file name. A plain local path names none.
fn egg(target: &str, dev: bool, line: usize) -> Option<DeclaredDependency> {
    let name = match target.split_once("#egg=") {
        Some((_, egg)) => egg.split(['&', ' ', '[']).next().unwrap_or(""),
        None => {
            let file = target.rsplit('/').next().unwrap_or("");
            file.strip_suffix(".whl").and_then(|w| w.split('-').next())?
        }
    };
    let name = PackageName::from_str(name).ok()?;
    Some(DeclaredDependency {
        name: name.to_string(),
        requirement: Some(target.to_owned()),
        dev,
        line: Some(line),
        alias: None,
        indirect: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(manifest: &Manifest) -> Vec<(&str, Option<&str>, bool, Option<usize>)> {
        manifest.declared.iter().map(|d| (d.name.as_str(), d.requirement.as_deref(), d.dev, d.line)).collect()
    }

    #[test]
    fn requirements_with_options_markers_extras_and_urls() {
        let text = "\
# core
-r base.txt
-c constraints.txt
--index-url https://example.invalid/simple
-e .
-e git+https://github.com/acme/tools.git@main#egg=acme_tools
langchain-openai>=0.1,<0.3  # the OpenAI chat models
PyYAML==6.0.1 ; python_version >= \"3.8\"
uvicorn[standard]>=0.29
Requests \\
    >=2.31
git+https://github.com/openai/swarm.git
./libs/local_pkg
https://files.example.invalid/torch-2.3.0-cp311-none-linux_x86_64.whl
numpy==1.26.4 --hash=sha256:abcdef
torch==latest
";
        let manifest = parse_requirements("requirements.txt", text);
        assert_eq!(
            names(&manifest),
            [
                (
                    "acme-tools",
                    Some("git+https://github.com/acme/tools.git@main#egg=acme_tools"),
                    false,
                    Some(6)
                ),
                ("langchain-openai", Some(">=0.1, <0.3"), false, Some(7)),
                ("pyyaml", Some("==6.0.1"), false, Some(8)),
                ("uvicorn", Some(">=0.29"), false, Some(9)),
                ("requests", Some(">=2.31"), false, Some(10)),
                (
                    "torch",
                    Some("https://files.example.invalid/torch-2.3.0-cp311-none-linux_x86_64.whl"),
                    false,
                    Some(14)
                ),
                ("numpy", Some("==1.26.4"), false, Some(15)),
                ("torch", None, false, Some(16)),
            ]
        );
        assert_eq!(manifest.problems.len(), 1);
        assert_eq!(manifest.problems[0].line, Some(16));
        assert_eq!(manifest.format, "requirements");
    }

    #[test]
    fn dev_requirements_by_file_name() {
        for (rel, dev) in [
            ("requirements-dev.txt", true),
            ("requirements_test.txt", true),
            ("ci/requirements.tests.txt", true),
            ("requirements/dev.txt", true),
            ("requirements-prod.txt", false),
            ("requirements.txt", false),
            ("requirements-devops.txt", false),
        ] {
            let manifest = parse_requirements(rel, "pytest\n");
            assert_eq!(manifest.declared[0].dev, dev, "{rel}");
        }
    }

    #[test]
    fn setup_cfg_install_requires_and_extras() {
        let text = "\
[metadata]
name = acme-agent

[options]
packages = find:
install_requires =
    openai>=1.0
    # a comment
    tenacity; python_version >= \"3.9\"
python_requires = >=3.9

[options.extras_require]
dev =
    pytest>=8
docs = sphinx

[flake8]
max-line-length = 100
";
        let manifest = parse_setup_cfg("setup.cfg", text).unwrap();
        assert_eq!(manifest.name.as_deref(), Some("acme-agent"));
        assert_eq!(
            names(&manifest),
            [
                ("openai", Some(">=1.0"), false, Some(7)),
                ("tenacity", None, false, Some(9)),
                ("pytest", Some(">=8"), true, Some(14)),
                ("sphinx", None, true, Some(15)),
            ]
        );
        assert!(parse_setup_cfg("setup.cfg", "[flake8]\nmax-line-length = 100\n").is_none());
        let from_file =
            parse_setup_cfg("setup.cfg", "[options]\ninstall_requires = file: requirements.txt\n");
        assert!(from_file.unwrap().declared.is_empty());
    }
}
