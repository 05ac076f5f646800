//! Cargo: Cargo.toml dependency tables, and `use` paths mapped to crates.

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;
use toml::{Spanned, Value};

use super::{is_local_below, line_at, ManifestError, Resolution};
use crate::scan::report::{DeclaredDependency, Ecosystem, Manifest};

/// Path roots that are never crates from a registry.
const NOT_CRATES: &[&str] = &["std", "core", "alloc", "proc_macro", "test", "crate", "self", "super"];

/// A dependency table: the key is the name code uses; the value a version string or a
/// table (`version`, `package`, `workspace`, `git`, `path`, …).
type Dependencies = BTreeMap<String, Spanned<Value>>;

/// Only the parts of Cargo.toml that declare dependencies. (No `#[serde(flatten)]`:
/// it would lose the spans.)
#[derive(Deserialize)]
struct CargoToml {
    package: Option<Package>,
    #[serde(default)]
    dependencies: Dependencies,
    #[serde(default, rename = "dev-dependencies", alias = "dev_dependencies")]
    dev_dependencies: Dependencies,
    #[serde(default, rename = "build-dependencies", alias = "build_dependencies")]
    build_dependencies: Dependencies,
    /// `[target.'cfg(…)'.dependencies]` and its dev and build variants.
    #[serde(default)]
    target: BTreeMap<String, TargetTables>,
    workspace: Option<Workspace>,
}

#[derive(Deserialize)]
struct Package {
    name: Option<String>,
}

#[derive(Deserialize)]
struct TargetTables {
    #[serde(default)]
    dependencies: Dependencies,
    #[serde(default, rename = "dev-dependencies", alias = "dev_dependencies")]
    dev_dependencies: Dependencies,
    #[serde(default, rename = "build-dependencies", alias = "build_dependencies")]
    build_dependencies: Dependencies,
}

#[derive(Deserialize)]
struct Workspace {
    #[serde(default)]
    dependencies: Dependencies,
}

/// The crates a Cargo.toml declares. Dev and build dependencies are dev ones; a
/// workspace root's `[workspace.dependencies]` count as declared by the root.
pub(super) fn parse_cargo_toml(rel: &str, text: &str) -> Result<Option<Manifest>, ManifestError> {
    let cargo: CargoToml = toml::from_str(text)?;
    let mut tables = vec![
        (&cargo.dependencies, false),
        (&cargo.dev_dependencies, true),
        (&cargo.build_dependencies, true),
    ];
    for target in cargo.target.values() {
        tables.extend([
            (&target.dependencies, false),
            (&target.dev_dependencies, true),
            (&target.build_dependencies, true),
        ]);
    }
    if let Some(workspace) = &cargo.workspace {
        tables.push((&workspace.dependencies, false));
    }
    let mut declared: Vec<DeclaredDependency> = tables
        .into_iter()
        .flat_map(|(table, dev)| table.iter().map(move |(key, value)| (key, value, dev)))
        .map(|(key, value, dev)| dependency(key, value, dev, text))
        .collect();
    declared.sort_by(|a, b| (a.line, &a.name).cmp(&(b.line, &b.name)));
    Ok(Some(Manifest {
        path: rel.to_owned(),
        ecosystem: Ecosystem::Cargo,
        format: "cargo".to_owned(),
        name: cargo.package.and_then(|p| p.name),
        declared,
        problems: Vec::new(),
    }))
}

fn dependency(key: &str, value: &Spanned<Value>, dev: bool, text: &str) -> DeclaredDependency {
    let table = value.get_ref().as_table();
    let field = |name: &str| table.and_then(|t| t.get(name));
    let renamed = field("package").and_then(Value::as_str);
    let requirement = match value.get_ref() {
        Value::String(version) => Some(version.clone()),
        _ if field("workspace").and_then(Value::as_bool) == Some(true) => Some("workspace".to_owned()),
        _ => ["version", "git", "path"]
            .into_iter()
            .find_map(|k| field(k).and_then(Value::as_str))
            .map(str::to_owned),
    };
    DeclaredDependency {
        name: renamed.unwrap_or(key).to_owned(),
        requirement,
        dev,
        line: Some(line_at(text, value.span().start)),
        alias: renamed.map(|_| key.to_owned()),
        indirect: false,
    }
}

/// Maps a path (`async_openai::types`, `async_openai.types`) to its crate.
pub(super) fn resolve(module: &str, file: &str, local: &HashSet<String>) -> Resolution {
    let path = module.trim_start_matches("::");
    let root = path.split("::").next().and_then(|p| p.split('.').next()).unwrap_or("");
    if root.is_empty() || NOT_CRATES.contains(&root) || local.contains(root) {
        return Resolution::NotPackage;
    }
    // A module of the crate, named bare from its root (`mod config; use config::X;`).
    let shadow = (!is_local_below(local, file, root)).then(|| root.to_owned());
    Resolution::Package { candidates: vec![root.to_owned()], shadow }
}

/// The modules at the top of each crate: `…/src/name.rs` and `…/src/name/` (not the
/// crate roots `lib.rs` and `main.rs`, nor `src/bin/`), as `…/src/name` entries.
pub(super) fn local_modules(rel_paths: &[&str], local: &mut HashSet<String>) {
    for path in rel_paths.iter().filter(|p| p.ends_with(".rs")) {
        let Some(at) = path.rfind("src/").filter(|&at| at == 0 || path[..at].ends_with('/')) else {
            continue;
        };
        let (src, below) = path.split_at(at + "src".len());
        let name = below[1..].split('/').next().unwrap_or("");
        let name = name.strip_suffix(".rs").unwrap_or(name);
        if !matches!(name, "lib" | "main" | "bin") {
            local.insert(format!("{src}/{name}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_and_workspace_tables() {
        let text = r#"[package]
name = "agent-core"
version = "0.1.0"

[dependencies]
tokio = { workspace = true, features = ["rt"] }
async-openai = "0.28"
http = { package = "reqwest", version = "0.12", default-features = false }
local-util = { path = "../util" }

[dependencies.serde]
version = "1"
features = ["derive"]

[target.'cfg(unix)'.dependencies]
nix = "0.30"

[dev-dependencies]
proptest = "1"

[build-dependencies]
cc = "1"

[workspace.dependencies]
tokio = "1"
"#;
        let manifest = parse_cargo_toml("crates/core/Cargo.toml", text).unwrap().unwrap();
        assert_eq!(manifest.name.as_deref(), Some("agent-core"));
        let got: Vec<_> = manifest
            .declared
            .iter()
            .map(|d| (d.name.as_str(), d.alias.as_deref(), d.requirement.as_deref(), d.dev))
            .collect();
        assert_eq!(
            got,
            [
                ("tokio", None, Some("workspace"), false),
                ("async-openai", None, Some("0.28"), false),
                ("reqwest", Some("http"), Some("0.12"), false),
                ("local-util", None, Some("../util"), false),
                ("serde", None, Some("1"), false),
                ("nix", None, Some("0.30"), false),
                ("proptest", None, Some("1"), true),
                ("cc", None, Some("1"), true),
                ("tokio", None, Some("1"), false),
            ]
        );
        let lines: Vec<_> = manifest.declared.iter().map(|d| d.line.unwrap()).collect();
        assert_eq!(&lines[..4], [6, 7, 8, 9]);
        assert!(lines.windows(2).all(|w| w[0] < w[1]), "{lines:?}");
    }

    #[test]
    fn paths_map_to_crates() {
        let local = HashSet::from(["agent_core".to_owned(), "src/config".to_owned()]);
        let resolve = |m, f| resolve(m, f, &local);
        let package = |name: &str, shadow: bool| Resolution::Package {
            candidates: vec![name.to_owned()],
            shadow: shadow.then(|| name.to_owned()),
        };
        assert_eq!(resolve("async_openai::types", "src/lib.rs"), package("async_openai", true));
        assert_eq!(
            resolve("async_openai.types.CreateChatCompletionRequest", "src/lib.rs"),
            package("async_openai", true)
        );
        assert_eq!(resolve("::serde::Deserialize", "src/lib.rs"), package("serde", true));
        assert_eq!(resolve("config::Settings", "src/main.rs"), package("config", false));
        assert_eq!(resolve("config::Settings", "tests/it.rs"), package("config", true));
        for module in
            ["std::sync::Arc", "core::fmt", "crate::scan", "self::x", "super::y", "agent_core::run", ""]
        {
            assert_eq!(resolve(module, "src/lib.rs"), Resolution::NotPackage, "{module}");
        }
    }

    #[test]
    fn crate_modules_are_local_to_their_crate() {
        let mut local = HashSet::new();
        let paths = [
            "src/main.rs",
            "src/config.rs",
            "src/net/mod.rs",
            "src/bin/tool.rs",
            "crates/a/src/lib.rs",
            "crates/a/src/store/sql.rs",
            "build.rs",
            "resrc/x.rs",
        ];
        local_modules(&paths, &mut local);
        let mut got: Vec<_> = local.into_iter().collect();
        got.sort();
        assert_eq!(got, ["crates/a/src/store", "src/config", "src/net"]);
    }
}
