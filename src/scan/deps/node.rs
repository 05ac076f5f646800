//! npm: package.json, and import specifiers mapped to package names.

use std::collections::HashSet;
use std::sync::LazyLock;

use serde_json::Value;

use super::{data_lines, line_at, ManifestError, Resolution};
use crate::scan::report::{DeclaredDependency, Ecosystem, Manifest};

/// package.json's dependency tables, and whether each is a development one.
const TABLES: &[(&str, bool)] = &[
    ("dependencies", false),
    ("peerDependencies", false),
    ("optionalDependencies", false),
    ("devDependencies", true),
];

/// File extensions of the sources whose directories may be path aliases.
const SOURCE_EXTENSIONS: &[&str] = &["js", "jsx", "mjs", "cjs", "ts", "tsx", "mts", "cts", "vue", "svelte"];

static BUILTINS: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| data_lines(include_str!("../rules/node_builtins.txt")).collect());

pub(super) fn parse_package_json(rel: &str, text: &str) -> Result<Option<Manifest>, ManifestError> {
    let json: Value = serde_json::from_str(text)?;
    let mut declared = Vec::new();
    for &(table, dev) in TABLES {
        let Some(entries) = json.get(table).and_then(Value::as_object) else { continue };
        for (name, requirement) in entries {
            declared.push(DeclaredDependency {
                name: name.clone(),
                requirement: requirement.as_str().map(str::to_owned),
                dev,
                line: entry_line(text, table, name),
                alias: None,
                indirect: false,
            });
        }
    }
    declared.sort_by(|a, b| (a.line, &a.name).cmp(&(b.line, &b.name)));
    Ok(Some(Manifest {
        path: rel.to_owned(),
        ecosystem: Ecosystem::Npm,
        format: "package_json".to_owned(),
        name: json.get("name").and_then(Value::as_str).map(str::to_owned),
        declared,
        problems: Vec::new(),
    }))
}

/// The line of `"name":` after the table's `"table":` key (serde_json keeps no
/// positions); `None` if the text spells them differently (escapes).
fn entry_line(text: &str, table: &str, name: &str) -> Option<usize> {
    let start = find_key(text, table, 0)?;
    find_key(text, name, start).map(|at| line_at(text, at))
}

/// The offset of `"key"` followed by `:`, at or after `from`.
fn find_key(text: &str, key: &str, from: usize) -> Option<usize> {
    let quoted = format!("\"{key}\"");
    let mut at = from;
    while let Some(found) = text[at..].find(&quoted) {
        let offset = at + found;
        let after = &text[offset + quoted.len()..];
        if after.trim_start().starts_with(':') {
            return Some(offset);
        }
        at = offset + quoted.len();
    }
    None
}

/// Maps an import specifier to its package: `@scope/name/sub` → `@scope/name`,
/// `name/sub` → `name`.
pub(super) fn resolve(specifier: &str, local: &HashSet<String>) -> Resolution {
    let specifier = specifier.strip_prefix("npm:").unwrap_or(specifier);
    // Relative and absolute paths, path aliases (`@/`, `~/`, `#internal`, SvelteKit's
    // `$lib`), URLs and the built-in schemes of Node, Bun and bundlers.
    let is_path = specifier.starts_with(['.', '/', '~', '#', '$']) || specifier.starts_with("@/");
    if is_path || specifier.is_empty() || specifier.contains(':') {
        return Resolution::NotPackage;
    }
    let mut parts = specifier.split('/');
    let first = parts.next().unwrap_or("");
    let name = if first.starts_with('@') {
        match parts.next() {
            Some(second) if !second.is_empty() => format!("{first}/{second}"),
            _ => return Resolution::NotPackage,
        }
    } else {
        first.to_owned()
    };
    // `name@version` (Deno's `npm:` form).
    let name = match name.char_indices().skip(1).find(|&(_, c)| c == '@') {
        Some((at, _)) => name[..at].to_owned(),
        None => name,
    };
    if local.contains(&name) {
        return Resolution::NotPackage;
    }
    // A built-in, an aliased directory (`@components/…`) or a name npm cannot publish
    // (upper case: a `baseUrl` import) is a package only where package.json declares it.
    let aliased = first.starts_with('@') && local.contains(first);
    let maybe_local =
        BUILTINS.contains(name.as_str()) || aliased || name.chars().any(|c| c.is_ascii_uppercase());
    let shadow = (!maybe_local).then(|| name.clone());
    Resolution::Package { candidates: vec![name], shadow }
}

/// `@dir` for every directory holding JavaScript or TypeScript sources: the shape of a
/// path alias (`@components/Button`), checked only against undeclared scopes.
pub(super) fn local_modules(rel_paths: &[&str], local: &mut HashSet<String>) {
    for path in rel_paths {
        let Some((dirs, file)) = path.rsplit_once('/') else { continue };
        let is_source = file.rsplit_once('.').is_some_and(|(_, ext)| SOURCE_EXTENSIONS.contains(&ext));
        if is_source {
            local.extend(dirs.split('/').map(|d| format!("@{d}")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(name: &str, shadow: bool) -> Resolution {
        Resolution::Package { candidates: vec![name.to_owned()], shadow: shadow.then(|| name.to_owned()) }
    }

    #[test]
    fn package_json_tables_with_lines() {
        let text = r#"{
  "name": "agent-ui",
  "scripts": { "dev": "vite" },
  "dependencies": {
    "@langchain/openai": "^0.3.0",
    "openai": "^4.50.0"
  },
  "devDependencies": {
    "typescript": "^5.4.0",
    "openai": "^4.50.0"
  },
  "peerDependencies": { "react": ">=18" },
  "optionalDependencies": { "fsevents": "^2" }
}"#;
        let manifest = parse_package_json("web/package.json", text).unwrap().unwrap();
        assert_eq!(manifest.name.as_deref(), Some("agent-ui"));
        let got: Vec<_> = manifest
            .declared
            .iter()
            .map(|d| (d.name.as_str(), d.requirement.as_deref(), d.dev, d.line))
            .collect();
        assert_eq!(
            got,
            [
                ("@langchain/openai", Some("^0.3.0"), false, Some(5)),
                ("openai", Some("^4.50.0"), false, Some(6)),
                ("typescript", Some("^5.4.0"), true, Some(9)),
                ("openai", Some("^4.50.0"), true, Some(10)),
                ("react", Some(">=18"), false, Some(12)),
                ("fsevents", Some("^2"), false, Some(13)),
            ]
        );
    }

    #[test]
    fn specifiers_map_to_packages() {
        let local = HashSet::from(["@acme/shared".to_owned(), "@components".to_owned()]);
        let resolve = |s| resolve(s, &local);
        assert_eq!(resolve("@langchain/openai/chat"), package("@langchain/openai", true));
        assert_eq!(resolve("openai/resources/chat"), package("openai", true));
        assert_eq!(resolve("zod"), package("zod", true));
        assert_eq!(resolve("npm:chalk@5"), package("chalk", true));
        assert_eq!(resolve("fs/promises"), package("fs", false));
        assert_eq!(resolve("events"), package("events", false));
        assert_eq!(resolve("@components/Button"), package("@components/Button", false));
        assert_eq!(resolve("Components/Button"), package("Components", false));
        for specifier in [
            "node:fs",
            "./util",
            "../lib/x",
            "/abs",
            "@/lib/db",
            "~/utils",
            "#internal",
            "$lib/x",
            "@acme/shared/y",
            "@",
            "https://esm.sh/x",
        ] {
            assert_eq!(resolve(specifier), Resolution::NotPackage, "{specifier}");
        }
        assert!(BUILTINS.contains("child_process") && !BUILTINS.contains("express"));
    }
}
