//! The join of declarations and imports, the same for every ecosystem.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::LazyLock;

use serde::Deserialize;

use super::{ecosystem_of, match_keys, resolve, ImportUse, Resolution};
use crate::scan::report::{Dependencies, Ecosystem, Manifest, Package, PackageStatus};

/// Files listed per package, and modules.
const MAX_IMPORTED_IN: usize = 5;
const MAX_MODULES: usize = 10;

/// Joins manifests and imports: every declared or imported third-party package once per
/// ecosystem, with status Used / Unused / Shadow, sorted by (ecosystem, name); manifests
/// sorted by path. `local_modules` comes from [`super::local_modules`].
pub fn analyze(
    mut manifests: Vec<Manifest>,
    imports: &[ImportUse],
    local_modules: &HashSet<String>,
) -> Dependencies {
    manifests.sort_by(|a, b| a.path.cmp(&b.path));
    let mut packages: BTreeMap<(Ecosystem, String), Joined> = BTreeMap::new();
    // (ecosystem, matching key) → declared name; the first manifest by path wins a clash.
    let mut declared_by_key: HashMap<(Ecosystem, String), String> = HashMap::new();
    // The repository's own packages, declared by its other manifests (a workspace
    // member, `-e .`): imported as local code, so never unused.
    let own: HashSet<(Ecosystem, String)> = manifests
        .iter()
        .filter_map(|m| m.name.as_deref().map(|name| (m.ecosystem, declared_form(m.ecosystem, name))))
        .collect();
    for manifest in &manifests {
        for dep in &manifest.declared {
            let joined = packages.entry((manifest.ecosystem, dep.name.clone())).or_default();
            joined.declared_in.insert(manifest.path.clone());
            joined.all_dev = joined.all_dev.map_or(Some(dep.dev), |d| Some(d && dep.dev));
            joined.indirect |= dep.indirect;
            for key in match_keys(manifest.ecosystem, &dep.name, dep.alias.as_deref()) {
                declared_by_key.entry((manifest.ecosystem, key)).or_insert_with(|| dep.name.clone());
            }
        }
    }
    for import in imports {
        let Some(ecosystem) = ecosystem_of(import.language) else { continue };
        let Resolution::Package { candidates, shadow } = resolve(ecosystem, import, local_modules) else {
            continue;
        };
        let declared = candidates.into_iter().find_map(|c| declared_by_key.get(&(ecosystem, c)).cloned());
        let Some(name) = declared.or(shadow) else { continue };
        let joined = packages.entry((ecosystem, name)).or_default();
        joined.imported_in.insert(import.file.clone());
        joined.modules.insert(import.module.trim().to_owned());
    }
    let packages = packages
        .into_iter()
        .map(|((ecosystem, name), joined)| {
            let status = if joined.declared_in.is_empty() {
                PackageStatus::Shadow
            } else if !joined.imported_in.is_empty()
                || joined.all_dev == Some(true)
                || joined.indirect
                || own.contains(&(ecosystem, name.clone()))
                || works_without_import(ecosystem, &name)
            {
                PackageStatus::Used
            } else {
                PackageStatus::Unused
            };
            Package {
                status,
                ecosystem,
                declared_in: joined.declared_in.into_iter().collect(),
                imported_in: joined.imported_in.into_iter().take(MAX_IMPORTED_IN).collect(),
                modules: joined.modules.into_iter().take(MAX_MODULES).collect(),
                dev: joined.all_dev == Some(true),
                name,
            }
        })
        .collect();
    Dependencies { manifests, packages }
}

/// A package's own name as declarations spell it (PEP 503 for Python).
fn declared_form(ecosystem: Ecosystem, name: &str) -> String {
    match ecosystem {
        Ecosystem::Pypi => super::python::normalize(name),
        Ecosystem::Npm | Ecosystem::Cargo | Ecosystem::Go => name.to_owned(),
    }
}

/// What is known of one package so far.
#[derive(Default)]
struct Joined {
    declared_in: BTreeSet<String>,
    /// `None` until a declaration is seen.
    all_dev: Option<bool>,
    indirect: bool,
    imported_in: BTreeSet<String>,
    modules: BTreeSet<String>,
}

/// `src/scan/rules/used_without_import.toml`.
#[derive(Deserialize)]
struct UsedWithoutImport {
    pypi: NameList,
    npm: NameList,
    cargo: NameList,
    go: NameList,
}

#[derive(Deserialize)]
struct NameList {
    names: HashSet<String>,
    prefixes: Vec<String>,
}

static USED_WITHOUT_IMPORT: LazyLock<UsedWithoutImport> = LazyLock::new(|| {
    toml::from_str(include_str!("../rules/used_without_import.toml"))
        .expect("src/scan/rules/used_without_import.toml is valid")
});

/// Servers, CLI tools, plugins, stubs: declared packages that are used without imports.
fn works_without_import(ecosystem: Ecosystem, name: &str) -> bool {
    let table = &*USED_WITHOUT_IMPORT;
    let list = match ecosystem {
        Ecosystem::Pypi => &table.pypi,
        Ecosystem::Npm => &table.npm,
        Ecosystem::Cargo => &table.cargo,
        Ecosystem::Go => &table.go,
    };
    list.names.contains(name) || list.prefixes.iter().any(|p| name.starts_with(p.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::deps::{local_modules, parse_manifest};
    use crate::scan::report::Language;

    fn import(language: Language, module: &str, file: &str) -> ImportUse {
        ImportUse { language, module: module.to_owned(), file: file.to_owned() }
    }

    fn manifest(rel: &str, text: &str) -> Manifest {
        parse_manifest(rel, text).unwrap().unwrap()
    }

    /// Runs the analysis with the local modules the paths (and manifests) define.
    fn run(manifests: Vec<Manifest>, imports: &[ImportUse], paths: &[&str]) -> Dependencies {
        let local = local_modules(paths, &manifests);
        analyze(manifests, imports, &local)
    }

    fn status(deps: &Dependencies, ecosystem: Ecosystem, name: &str) -> Option<PackageStatus> {
        deps.packages.iter().find(|p| p.ecosystem == ecosystem && p.name == name).map(|p| p.status)
    }

    #[test]
    fn python_used_unused_shadow_through_the_mapping_table() {
        let requirements = "PyYAML>=6\nrequests\nopenai\nuvicorn[standard]\nbeautifulsoup4\nllama-index\n";
        let dev = "pytest-asyncio\nfreezegun\n";
        let manifests =
            vec![manifest("requirements.txt", requirements), manifest("requirements-dev.txt", dev)];
        let imports = [
            import(Language::Python, "yaml", "app/config.py"),
            import(Language::Python, "bs4", "app/scrape.py"),
            import(Language::Python, "openai", "app/llm.py"),
            import(Language::Python, "openai.types.chat", "app/llm.py"),
            import(Language::Python, "llama_index.core", "app/rag.py"),
            import(Language::Python, "llama_index.llms.anthropic", "app/rag.py"),
            import(Language::Python, "langchain_openai", "app/chain.py"),
            import(Language::Python, "google.generativeai", "app/gemini.py"),
            import(Language::Python, "os", "app/llm.py"),
            import(Language::Python, "__future__", "app/llm.py"),
            import(Language::Python, ".util", "app/llm.py"),
            import(Language::Python, "app.config", "main.py"),
            import(Language::Python, "helper", "examples/demo/run.py"),
        ];
        let paths = [
            "main.py",
            "app/__init__.py",
            "app/config.py",
            "examples/demo/run.py",
            "examples/demo/helper.py",
        ];
        let deps = run(manifests, &imports, &paths);
        let pypi = |name| status(&deps, Ecosystem::Pypi, name);
        assert_eq!(pypi("pyyaml"), Some(PackageStatus::Used));
        assert_eq!(pypi("beautifulsoup4"), Some(PackageStatus::Used));
        assert_eq!(pypi("openai"), Some(PackageStatus::Used));
        assert_eq!(pypi("llama-index"), Some(PackageStatus::Used), "llama_index.core comes with it");
        assert_eq!(pypi("requests"), Some(PackageStatus::Unused));
        assert_eq!(pypi("uvicorn"), Some(PackageStatus::Used), "a server is used without imports");
        assert_eq!(pypi("freezegun"), Some(PackageStatus::Used), "dev dependencies are never unused");
        assert_eq!(pypi("llama-index-llms-anthropic"), Some(PackageStatus::Shadow));
        assert_eq!(pypi("langchain-openai"), Some(PackageStatus::Shadow));
        assert_eq!(pypi("google-generativeai"), Some(PackageStatus::Shadow));
        for name in ["os", "__future__", "app", "util", "helper"] {
            assert_eq!(pypi(name), None, "{name} is not a package");
        }
        let openai = deps.packages.iter().find(|p| p.name == "openai").unwrap();
        assert_eq!(openai.modules, ["openai", "openai.types.chat"]);
        assert_eq!(openai.imported_in, ["app/llm.py"]);
        assert_eq!(openai.declared_in, ["requirements.txt"]);
        let freezegun = deps.packages.iter().find(|p| p.name == "freezegun").unwrap();
        assert!(freezegun.dev && freezegun.imported_in.is_empty());
    }

    #[test]
    fn a_declared_package_wins_over_a_sibling_module_of_the_same_name() {
        // llm/openai.py sits next to the importing file, yet `import openai` there means
        // the package when the repository declares it.
        let manifests = vec![manifest("requirements.txt", "openai\n")];
        let imports = [import(Language::Python, "openai", "llm/client.py")];
        let deps = run(manifests, &imports, &["llm/client.py", "llm/openai.py"]);
        assert_eq!(status(&deps, Ecosystem::Pypi, "openai"), Some(PackageStatus::Used));
        let deps = run(vec![], &imports, &["llm/client.py", "llm/openai.py"]);
        assert!(deps.packages.is_empty(), "undeclared, the sibling module is meant: {:?}", deps.packages);
    }

    #[test]
    fn the_repositorys_own_packages_are_never_unused() {
        let manifests = vec![
            manifest("pyproject.toml", "[project]\nname = \"Acme_Agents\"\n"),
            manifest("examples/twilio/requirements.txt", "acme-agents\nfastapi\n"),
            manifest("crates/core/Cargo.toml", "[package]\nname = \"agent-core\"\n"),
            manifest(
                "crates/cli/Cargo.toml",
                "[package]\nname = \"agent-cli\"\n[dependencies]\nagent-core = { path = \"../core\" }\n",
            ),
        ];
        let imports = [
            import(Language::Python, "acme_agents", "examples/twilio/server.py"),
            import(Language::Rust, "agent_core::run", "crates/cli/src/main.rs"),
        ];
        let paths = ["src/acme_agents/__init__.py", "examples/twilio/server.py", "crates/cli/src/main.rs"];
        let deps = run(manifests, &imports, &paths);
        assert_eq!(status(&deps, Ecosystem::Pypi, "acme-agents"), Some(PackageStatus::Used));
        assert_eq!(status(&deps, Ecosystem::Pypi, "fastapi"), Some(PackageStatus::Unused));
        assert_eq!(status(&deps, Ecosystem::Cargo, "agent-core"), Some(PackageStatus::Used));
    }

    #[test]
    fn shadow_without_any_manifest() {
        let imports =
            [import(Language::Python, "cv2", "detect.py"), import(Language::Python, "json", "detect.py")];
        let deps = run(vec![], &imports, &["detect.py"]);
        assert_eq!(deps.packages.len(), 1);
        assert_eq!(status(&deps, Ecosystem::Pypi, "opencv-python"), Some(PackageStatus::Shadow));
    }

    #[test]
    fn npm_used_unused_shadow() {
        let package_json = r#"{
  "name": "@acme/app",
  "dependencies": {"@langchain/openai": "^0.3", "zod": "^3", "lodash": "^4", "react": "^18", "buffer": "^6"},
  "devDependencies": {"vitest": "^2", "@types/node": "^22", "msw": "^2"},
  "peerDependencies": {"@types/express": "^4"}
}"#;
        let imports = [
            import(Language::Typescript, "@langchain/openai/chat", "src/a.ts"),
            import(Language::Typescript, "zod", "src/a.ts"),
            import(Language::Typescript, "node:fs", "src/a.ts"),
            import(Language::Typescript, "path", "src/a.ts"),
            import(Language::Typescript, "buffer", "src/a.ts"),
            import(Language::Typescript, "./util", "src/a.ts"),
            import(Language::Typescript, "@/lib/db", "src/a.ts"),
            import(Language::Typescript, "@components/Button", "src/a.ts"),
            import(Language::Typescript, "@acme/app/server", "src/a.ts"),
            import(Language::Javascript, "axios", "src/b.js"),
            import(Language::Tsx, "@anthropic-ai/sdk/resources", "src/c.tsx"),
        ];
        let paths = ["src/a.ts", "src/b.js", "src/c.tsx", "src/components/Button.tsx"];
        let deps = run(vec![manifest("package.json", package_json)], &imports, &paths);
        let npm = |name| status(&deps, Ecosystem::Npm, name);
        assert_eq!(npm("@langchain/openai"), Some(PackageStatus::Used));
        assert_eq!(npm("zod"), Some(PackageStatus::Used));
        assert_eq!(npm("buffer"), Some(PackageStatus::Used), "a declared polyfill of a built-in");
        assert_eq!(npm("lodash"), Some(PackageStatus::Unused));
        assert_eq!(npm("react"), Some(PackageStatus::Used), "JSX uses React without importing it");
        assert_eq!(npm("msw"), Some(PackageStatus::Used), "dev dependency");
        assert_eq!(npm("@types/express"), Some(PackageStatus::Used), "type stubs are never unused");
        assert_eq!(npm("axios"), Some(PackageStatus::Shadow));
        assert_eq!(npm("@anthropic-ai/sdk"), Some(PackageStatus::Shadow));
        for name in ["fs", "node:fs", "path", "@/lib", "@components/Button", "@acme/app", "./util"] {
            assert_eq!(npm(name), None, "{name} is not a package");
        }
    }

    #[test]
    fn cargo_used_unused_shadow_with_renames_and_workspaces() {
        let root = r#"
[workspace]
members = ["crates/*"]
[workspace.dependencies]
tokio = { version = "1", features = ["full"] }
"#;
        let member = r#"
[package]
name = "agent-core"
[dependencies]
tokio = { workspace = true }
async-openai = "0.28"
serde_json = "1"
http_client = { package = "reqwest", version = "0.12" }
[dev-dependencies]
proptest = "1"
"#;
        let manifests = vec![manifest("Cargo.toml", root), manifest("crates/core/Cargo.toml", member)];
        let imports = [
            import(Language::Rust, "tokio::sync", "crates/core/src/lib.rs"),
            import(Language::Rust, "async_openai::types", "crates/core/src/lib.rs"),
            import(Language::Rust, "http_client.Client", "crates/core/src/lib.rs"),
            import(Language::Rust, "std::collections", "crates/core/src/lib.rs"),
            import(Language::Rust, "crate::config", "crates/core/src/lib.rs"),
            import(Language::Rust, "config::Settings", "crates/core/src/lib.rs"),
            import(Language::Rust, "agent_core::run", "crates/core/tests/it.rs"),
            import(Language::Rust, "anyhow::Result", "crates/core/src/lib.rs"),
        ];
        let paths = ["crates/core/src/lib.rs", "crates/core/src/config.rs", "crates/core/tests/it.rs"];
        let deps = run(manifests, &imports, &paths);
        let cargo = |name| status(&deps, Ecosystem::Cargo, name);
        assert_eq!(cargo("tokio"), Some(PackageStatus::Used));
        assert_eq!(cargo("async-openai"), Some(PackageStatus::Used));
        assert_eq!(cargo("reqwest"), Some(PackageStatus::Used), "imported by its renamed key");
        assert_eq!(cargo("serde_json"), Some(PackageStatus::Unused));
        assert_eq!(cargo("proptest"), Some(PackageStatus::Used), "dev dependency");
        assert_eq!(cargo("anyhow"), Some(PackageStatus::Shadow));
        for name in ["std", "crate", "config", "agent_core", "agent-core"] {
            assert_eq!(cargo(name), None, "{name} is not a package");
        }
        let tokio = deps.packages.iter().find(|p| p.name == "tokio").unwrap();
        assert_eq!(tokio.declared_in, ["Cargo.toml", "crates/core/Cargo.toml"]);
    }

    #[test]
    fn go_used_unused_shadow() {
        let go_mod = r#"module github.com/acme/bot

go 1.22

require (
	github.com/sashabaranov/go-openai v1.20.0
	github.com/spf13/cobra v1.8.0
	golang.org/x/sync v0.7.0 // indirect
	github.com/stretchr/testify v1.9.0
)
"#;
        let imports = [
            import(Language::Go, "github.com/sashabaranov/go-openai", "main.go"),
            import(Language::Go, "github.com/sashabaranov/go-openai/jsonschema", "tools.go"),
            import(Language::Go, "fmt", "main.go"),
            import(Language::Go, "net/http", "main.go"),
            import(Language::Go, "github.com/acme/bot/internal/agent", "main.go"),
            import(Language::Go, "github.com/anthropics/anthropic-sdk-go/option", "main.go"),
            import(Language::Go, "gopkg.in/yaml.v3", "main.go"),
        ];
        let deps = run(vec![manifest("go.mod", go_mod)], &imports, &["main.go", "tools.go"]);
        let go = |name| status(&deps, Ecosystem::Go, name);
        assert_eq!(go("github.com/sashabaranov/go-openai"), Some(PackageStatus::Used));
        assert_eq!(go("github.com/spf13/cobra"), Some(PackageStatus::Unused));
        assert_eq!(go("github.com/stretchr/testify"), Some(PackageStatus::Unused));
        assert_eq!(
            go("golang.org/x/sync"),
            Some(PackageStatus::Used),
            "indirect requirements are never unused"
        );
        assert_eq!(go("github.com/anthropics/anthropic-sdk-go"), Some(PackageStatus::Shadow));
        assert_eq!(go("gopkg.in/yaml.v3"), Some(PackageStatus::Shadow));
        assert_eq!(deps.packages.iter().filter(|p| p.ecosystem == Ecosystem::Go).count(), 6);
        let openai = deps.packages.iter().find(|p| p.name.ends_with("go-openai")).unwrap();
        assert_eq!(openai.imported_in, ["main.go", "tools.go"]);
    }

    #[test]
    fn output_is_sorted_and_capped() {
        let manifests = vec![
            manifest("web/package.json", r#"{"dependencies": {"zod": "3"}}"#),
            manifest("a/requirements.txt", "requests\n"),
        ];
        let mut imports: Vec<ImportUse> = (0..8)
            .map(|i| import(Language::Python, &format!("requests.m{i}"), &format!("f{i}.py")))
            .collect();
        imports.extend((0..12).map(|i| import(Language::Python, &format!("requests.x{i:02}"), "f0.py")));
        let deps = run(manifests, &imports, &[]);
        let paths: Vec<_> = deps.manifests.iter().map(|m| m.path.as_str()).collect();
        assert_eq!(paths, ["a/requirements.txt", "web/package.json"]);
        let names: Vec<_> = deps.packages.iter().map(|p| (p.ecosystem, p.name.as_str())).collect();
        assert_eq!(names, [(Ecosystem::Pypi, "requests"), (Ecosystem::Npm, "zod")]);
        let requests = &deps.packages[0];
        assert_eq!(requests.imported_in, ["f0.py", "f1.py", "f2.py", "f3.py", "f4.py"]);
        assert_eq!(requests.modules.len(), MAX_MODULES);
        assert_eq!(requests.modules[0], "requests.m0");
    }

    #[test]
    fn the_used_without_import_table_loads() {
        assert!(works_without_import(Ecosystem::Pypi, "types-requests"));
        assert!(works_without_import(Ecosystem::Npm, "@types/node"));
        assert!(!works_without_import(Ecosystem::Pypi, "requests"));
        assert!(!works_without_import(Ecosystem::Go, "github.com/spf13/cobra"));
    }
}
