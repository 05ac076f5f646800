//! pyproject.toml: PEP 621 `[project]`, PEP 735 `[dependency-groups]` and Poetry's
//! `[tool.poetry]` tables.

use std::collections::BTreeMap;
use std::str::FromStr;

use pep508_rs::PackageName;
use serde::Deserialize;
use toml::{Spanned, Value};

use super::{declare, normalize};
use crate::scan::deps::{line_at, ManifestError};
use crate::scan::report::{DeclaredDependency, Ecosystem, Manifest};

#[derive(Deserialize)]
struct PyProject {
    project: Option<Project>,
    /// Entries are requirements or `{include-group = "…"}` tables.
    #[serde(rename = "dependency-groups")]
    dependency_groups: Option<BTreeMap<String, Vec<Spanned<Value>>>>,
    tool: Option<Tool>,
}

#[derive(Deserialize)]
struct Project {
    name: Option<String>,
    #[serde(default)]
    dependencies: Vec<Spanned<String>>,
    #[serde(default, rename = "optional-dependencies")]
    optional_dependencies: BTreeMap<String, Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
struct Tool {
    poetry: Option<Poetry>,
}

/// Poetry's dependency tables map a name to a version string, a table (`version`,
/// `git`, `path`, `optional`, …) or a list of such tables.
type PoetryDependencies = BTreeMap<String, Spanned<Value>>;

#[derive(Deserialize)]
struct Poetry {
    name: Option<String>,
    #[serde(default)]
    dependencies: PoetryDependencies,
    #[serde(default, rename = "dev-dependencies")]
    dev_dependencies: PoetryDependencies,
    #[serde(default)]
    group: BTreeMap<String, PoetryGroup>,
}

#[derive(Deserialize)]
struct PoetryGroup {
    #[serde(default)]
    dependencies: PoetryDependencies,
}

/// The dependencies a pyproject.toml declares; `None` when it has none of the tables
/// above (it only configures tools). Optional dependencies, dependency groups and
/// Poetry's groups are dev ones.
pub(in crate::scan::deps) fn parse_pyproject(
    rel: &str,
    text: &str,
) -> Result<Option<Manifest>, ManifestError> {
    let parsed: PyProject = toml::from_str(text)?;
    let poetry = parsed.tool.and_then(|t| t.poetry);
    if parsed.project.is_none() && parsed.dependency_groups.is_none() && poetry.is_none() {
        return Ok(None);
    }
    let mut manifest = Manifest {
        path: rel.to_owned(),
        ecosystem: Ecosystem::Pypi,
        format: "pyproject".to_owned(),
        name: None,
        declared: Vec::new(),
        problems: Vec::new(),
    };
    let requirement = |spec: &Spanned<String>, dev: bool, manifest: &mut Manifest| {
        let line = line_at(text, spec.span().start);
        manifest.declared.extend(declare(spec.get_ref(), dev, line, rel, &mut manifest.problems));
    };
    if let Some(project) = parsed.project {
        manifest.name = project.name;
        for spec in &project.dependencies {
            requirement(spec, false, &mut manifest);
        }
        for spec in project.optional_dependencies.values().flatten() {
            requirement(spec, true, &mut manifest);
        }
    }
    for entry in parsed.dependency_groups.iter().flat_map(|groups| groups.values().flatten()) {
        if let Value::String(spec) = entry.get_ref() {
            requirement(&Spanned::new(entry.span(), spec.clone()), true, &mut manifest);
        }
    }
    if let Some(poetry) = poetry {
        let pep621 = manifest.declared.len();
        let groups = poetry.group.values().map(|g| (&g.dependencies, true));
        for (table, dev) in
            [(&poetry.dependencies, false), (&poetry.dev_dependencies, true)].into_iter().chain(groups)
        {
            for (name, value) in table {
                if !name.eq_ignore_ascii_case("python") {
                    manifest.declared.push(poetry_dependency(name, value, dev, text));
                }
            }
        }
        if pep621 == 0 && !manifest.declared.is_empty() {
            manifest.format = "poetry".to_owned();
        }
        manifest.name = manifest.name.or(poetry.name);
    }
    manifest.declared.sort_by(|a, b| (a.line, &a.name).cmp(&(b.line, &b.name)));
    Ok(Some(manifest))
}

fn poetry_dependency(name: &str, value: &Spanned<Value>, dev: bool, text: &str) -> DeclaredDependency {
    // A list of tables gives alternatives by platform or Python version.
    let table = match value.get_ref() {
        Value::Array(alternatives) => alternatives.first(),
        other => Some(other),
    };
    let requirement = table.and_then(|t| match t {
        Value::String(version) => Some(version.clone()),
        Value::Table(t) => ["version", "git", "url", "path"]
            .into_iter()
            .find_map(|k| t.get(k).and_then(Value::as_str))
            .map(str::to_owned),
        _ => None,
    });
    let optional = table.and_then(|t| t.get("optional")).and_then(Value::as_bool) == Some(true);
    DeclaredDependency {
        name: PackageName::from_str(name).map_or_else(|_| normalize(name), |n| n.to_string()),
        requirement,
        dev: dev || optional,
        line: Some(line_at(text, value.span().start)),
        alias: None,
        indirect: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declared(manifest: &Manifest) -> Vec<(&str, Option<&str>, bool, Option<usize>)> {
        manifest.declared.iter().map(|d| (d.name.as_str(), d.requirement.as_deref(), d.dev, d.line)).collect()
    }

    #[test]
    fn pep_621_optional_dependencies_and_dependency_groups() {
        let text = r#"[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "research-agent"
dependencies = [
    "langgraph>=0.2",
    "langchain_openai",
    "google-genai; python_version >= '3.10'",
]

[project.optional-dependencies]
server = ["fastapi[standard]>=0.110"]

[dependency-groups]
test = ["pytest>=8", {include-group = "lint"}]
lint = ["ruff"]

[tool.ruff]
line-length = 100
"#;
        let manifest = parse_pyproject("pyproject.toml", text).unwrap().unwrap();
        assert_eq!(manifest.format, "pyproject");
        assert_eq!(manifest.name.as_deref(), Some("research-agent"));
        assert_eq!(
            declared(&manifest),
            [
                ("langgraph", Some(">=0.2"), false, Some(8)),
                ("langchain-openai", None, false, Some(9)),
                ("google-genai", None, false, Some(10)),
                ("fastapi", Some(">=0.110"), true, Some(14)),
                ("pytest", Some(">=8"), true, Some(17)),
                ("ruff", None, true, Some(18)),
            ]
        );
    }

    #[test]
    fn poetry_main_dev_and_group_dependencies() {
        let text = r#"[tool.poetry]
name = "crew-bot"
version = "0.1.0"

[tool.poetry.dependencies]
python = "^3.11"
crewai = {extras = ["tools"], version = "^0.80"}
Pillow = "^10"
weaviate-client = { version = "^4", optional = true }
swarm = { git = "https://github.com/openai/swarm.git" }

[tool.poetry.dev-dependencies]
black = "^24"

[tool.poetry.group.test.dependencies]
pytest-mock = "*"
"#;
        let manifest = parse_pyproject("pyproject.toml", text).unwrap().unwrap();
        assert_eq!(manifest.format, "poetry");
        assert_eq!(manifest.name.as_deref(), Some("crew-bot"));
        assert_eq!(
            declared(&manifest),
            [
                ("crewai", Some("^0.80"), false, Some(7)),
                ("pillow", Some("^10"), false, Some(8)),
                ("weaviate-client", Some("^4"), true, Some(9)),
                ("swarm", Some("https://github.com/openai/swarm.git"), false, Some(10)),
                ("black", Some("^24"), true, Some(13)),
                ("pytest-mock", Some("*"), true, Some(16)),
            ]
        );
    }

    #[test]
    fn tool_only_and_broken_files() {
        assert!(parse_pyproject("pyproject.toml", "[tool.black]\nline-length = 88\n").unwrap().is_none());
        let err = parse_pyproject("pyproject.toml", "[project\nname = 1").unwrap_err();
        assert!(err.to_string().starts_with("invalid TOML"), "{err}");
    }
}
