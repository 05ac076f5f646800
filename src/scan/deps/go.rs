//! Go: go.mod's `module` and `require` directives, and import paths mapped to modules.

use std::collections::HashSet;

use super::{ManifestError, Resolution};
use crate::scan::report::{DeclaredDependency, Ecosystem, Manifest};

/// Hosts whose module paths have three elements (`github.com/owner/repo`).
const THREE_ELEMENT_HOSTS: &[&str] =
    &["github.com", "gitlab.com", "bitbucket.org", "golang.org", "codeberg.org", "gitee.com"];

/// The requirements of a go.mod, single-line and in blocks. `// indirect` ones are
/// marked so; modules that provide a `tool` directive's command are dev ones.
pub(super) fn parse_go_mod(rel: &str, text: &str) -> Result<Manifest, ManifestError> {
    let mut manifest = Manifest {
        path: rel.to_owned(),
        ecosystem: Ecosystem::Go,
        format: "go_mod".to_owned(),
        name: None,
        declared: Vec::new(),
        problems: Vec::new(),
    };
    let mut tools = Vec::new();
    // The directive of the `( … )` block being read.
    let mut block: Option<String> = None;
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let (code, comment) = raw.split_once("//").unwrap_or((raw, ""));
        let mut tokens: Vec<&str> = code.split_whitespace().map(|t| t.trim_matches('"')).collect();
        if tokens.is_empty() {
            continue;
        }
        let directive = match &block {
            Some(_) if tokens == [")"] => {
                block = None;
                continue;
            }
            Some(directive) => directive.clone(),
            None => {
                let directive = tokens.remove(0).to_owned();
                if tokens == ["("] {
                    block = Some(directive);
                    continue;
                }
                directive
            }
        };
        match (directive.as_str(), tokens.as_slice()) {
            ("module", [path, ..]) => manifest.name = Some((*path).to_owned()),
            ("require", [path, version, ..]) => manifest.declared.push(DeclaredDependency {
                name: (*path).to_owned(),
                requirement: Some((*version).to_owned()),
                dev: false,
                line: Some(line),
                alias: None,
                indirect: comment.split(';').any(|c| c.trim() == "indirect"),
            }),
            ("require", _) => {
                let message = format!("a requirement needs a module path and a version: `{}`", raw.trim());
                return Err(ManifestError::Syntax { line, message });
            }
            ("tool", [path, ..]) => tools.push((*path).to_owned()),
            _ => {}
        }
    }
    for dep in &mut manifest.declared {
        dep.dev = tools.iter().any(|tool| is_within(tool, &dep.name));
    }
    Ok(manifest)
}

/// Whether `path` is `module` or below it.
fn is_within(path: &str, module: &str) -> bool {
    path.strip_prefix(module).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Maps an import path to its module: the standard library when the first element has
/// no dot; the repository's own module (in `local`); else any module along the path
/// (longest first) that go.mod requires, reported undeclared as a best guess of the
/// module path.
pub(super) fn resolve(import: &str, local: &HashSet<String>) -> Resolution {
    let import = import.trim_matches('"');
    let parts: Vec<&str> = import.split('/').collect();
    let is_local = (1..=parts.len()).any(|n| local.contains(&parts[..n].join("/")));
    if !parts[0].contains('.') || is_local {
        return Resolution::NotPackage;
    }
    let candidates = (2..=parts.len()).rev().map(|n| parts[..n].join("/")).collect();
    Resolution::Package { candidates, shadow: Some(guess_module(&parts)) }
}

/// `github.com/owner/repo[/vN]`, `golang.org/x/name`; two elements elsewhere
/// (`gopkg.in/yaml.v3`, `google.golang.org/grpc`).
fn guess_module(parts: &[&str]) -> String {
    let elements = if THREE_ELEMENT_HOSTS.contains(&parts[0]) { 3 } else { 2 };
    let mut n = elements.min(parts.len());
    let is_major =
        |p: &str| p.strip_prefix('v').is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()));
    if parts.get(n).is_some_and(|p| is_major(p)) {
        n += 1;
    }
    parts[..n].join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_requires_blocks_indirect_and_tools() {
        let text = r#"module github.com/acme/agent

go 1.24

require github.com/sashabaranov/go-openai v1.36.0

require (
	github.com/spf13/cobra v1.8.1
	golang.org/x/sync v0.10.0 // indirect
	"github.com/google/uuid" v1.6.0
	golang.org/x/tools v0.29.0
)

replace github.com/spf13/cobra => ../cobra

tool golang.org/x/tools/cmd/stringer
"#;
        let manifest = parse_go_mod("go.mod", text).unwrap();
        assert_eq!(manifest.name.as_deref(), Some("github.com/acme/agent"));
        let got: Vec<_> = manifest
            .declared
            .iter()
            .map(|d| (d.name.as_str(), d.requirement.as_deref(), d.line, d.indirect, d.dev))
            .collect();
        assert_eq!(
            got,
            [
                ("github.com/sashabaranov/go-openai", Some("v1.36.0"), Some(5), false, false),
                ("github.com/spf13/cobra", Some("v1.8.1"), Some(8), false, false),
                ("golang.org/x/sync", Some("v0.10.0"), Some(9), true, false),
                ("github.com/google/uuid", Some("v1.6.0"), Some(10), false, false),
                ("golang.org/x/tools", Some("v0.29.0"), Some(11), false, true),
            ]
        );
        let err = parse_go_mod("go.mod", "module x\nrequire (\n\tgithub.com/a/b\n)\n").unwrap_err();
        assert!(err.to_string().starts_with("line 3:"), "{err}");
    }

    #[test]
    fn imports_map_to_modules() {
        let local = HashSet::from(["github.com/acme/agent".to_owned()]);
        let resolve = |i| resolve(i, &local);
        let Resolution::Package { candidates, shadow } =
            resolve("github.com/sashabaranov/go-openai/jsonschema")
        else {
            panic!("a package");
        };
        assert_eq!(
            candidates,
            [
                "github.com/sashabaranov/go-openai/jsonschema",
                "github.com/sashabaranov/go-openai",
                "github.com/sashabaranov"
            ]
        );
        assert_eq!(shadow.as_deref(), Some("github.com/sashabaranov/go-openai"));
        let shadow_of = |i| match resolve(i) {
            Resolution::Package { shadow, .. } => shadow,
            Resolution::NotPackage => None,
        };
        assert_eq!(shadow_of("github.com/jackc/pgx/v5/pgxpool").as_deref(), Some("github.com/jackc/pgx/v5"));
        assert_eq!(shadow_of("gopkg.in/yaml.v3").as_deref(), Some("gopkg.in/yaml.v3"));
        assert_eq!(shadow_of("google.golang.org/genai").as_deref(), Some("google.golang.org/genai"));
        for import in ["fmt", "net/http", "github.com/acme/agent", "github.com/acme/agent/internal/llm"] {
            assert_eq!(resolve(import), Resolution::NotPackage, "{import}");
        }
        assert_eq!(shadow_of("github.com/acme/agentx"), Some("github.com/acme/agentx".to_owned()));
    }
}
