//! Package identity for the BOM: package URLs, CycloneDX's group and name, and which
//! declared requirements pin one exact version.

use crate::scan::report::Ecosystem;

/// A package URL: `pkg:type/namespace/name@version`, each segment percent-encoded (an
/// npm scope's `@` becomes `%40`).
pub(super) fn purl(ecosystem: Ecosystem, name: &str, version: Option<&str>) -> String {
    let kind = match ecosystem {
        Ecosystem::Pypi => "pypi",
        Ecosystem::Npm => "npm",
        Ecosystem::Cargo => "cargo",
        Ecosystem::Go => "golang",
    };
    let path: Vec<String> = name.split('/').map(encode).collect();
    let version = version.map(|v| format!("@{}", encode(v))).unwrap_or_default();
    format!("pkg:{kind}/{}{version}", path.join("/"))
}

/// CycloneDX's group is the purl namespace: an npm scope (`@scope`), or a Go module
/// path up to its last segment.
pub(super) fn group_and_name(ecosystem: Ecosystem, package: &str) -> (Option<&str>, &str) {
    let namespaced = match ecosystem {
        Ecosystem::Npm => package.starts_with('@'),
        Ecosystem::Go => true,
        Ecosystem::Pypi | Ecosystem::Cargo => false,
    };
    match package.rsplit_once('/') {
        Some((group, name)) if namespaced => (Some(group), name),
        _ => (None, package),
    }
}

/// The version a requirement pins exactly, if it does. A bare `1.2.3` is exact for npm
/// but means `^1.2.3` for Cargo; a go.mod `require` names one module version.
pub(super) fn exact_version(ecosystem: Ecosystem, requirement: &str) -> Option<String> {
    let requirement = requirement.trim();
    let version = match ecosystem {
        Ecosystem::Pypi => requirement.strip_prefix("==").filter(|v| !v.starts_with('='))?,
        Ecosystem::Npm => requirement.strip_prefix('=').unwrap_or(requirement),
        Ecosystem::Cargo => requirement.strip_prefix('=')?,
        Ecosystem::Go => requirement,
    }
    .trim();
    // Go versions start with `v`; the release numbers run up to the first other character.
    let unprefixed = version.strip_prefix('v').unwrap_or(version);
    let release = unprefixed.split(|c: char| !c.is_ascii_digit() && c != '.').next().unwrap_or_default();
    let numbers: Vec<&str> = release.split('.').collect();
    // PEP 440 releases have any number of parts (`1.2`, `2024.1.0.3`); the others are semver.
    let parts_ok = ecosystem == Ecosystem::Pypi || numbers.len() == 3;
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | '!');
    (parts_ok && numbers.iter().all(|n| !n.is_empty()) && version.chars().all(plain))
        .then(|| version.to_string())
}

/// Percent-encodes all but RFC 3986's unreserved characters.
fn encode(segment: &str) -> String {
    let mut out = String::new();
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'-' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ecosystem::*;

    #[test]
    fn purls_per_ecosystem() {
        assert_eq!(purl(Pypi, "openai", Some("1.51.0")), "pkg:pypi/openai@1.51.0");
        assert_eq!(purl(Npm, "@modelcontextprotocol/sdk", None), "pkg:npm/%40modelcontextprotocol/sdk");
        assert_eq!(purl(Cargo, "serde", None), "pkg:cargo/serde");
        assert_eq!(
            purl(Go, "github.com/sashabaranov/go-openai", Some("v1.20.0")),
            "pkg:golang/github.com/sashabaranov/go-openai@v1.20.0"
        );
        assert_eq!(purl(Npm, "left-pad", Some("1.0.0+build.1")), "pkg:npm/left-pad@1.0.0%2Bbuild.1");
    }

    #[test]
    fn groups_are_npm_scopes_and_go_paths() {
        assert_eq!(group_and_name(Npm, "@scope/pkg"), (Some("@scope"), "pkg"));
        assert_eq!(group_and_name(Npm, "left-pad"), (None, "left-pad"));
        assert_eq!(group_and_name(Go, "github.com/a/b"), (Some("github.com/a"), "b"));
        assert_eq!(group_and_name(Pypi, "openai"), (None, "openai"));
    }

    #[test]
    fn only_exact_pins_become_versions() {
        let cases = [
            (Pypi, "==1.2.3", Some("1.2.3")),
            (Pypi, "==2.0rc1", Some("2.0rc1")),
            (Pypi, ">=1.2", None),
            (Pypi, "===1.2", None),
            (Pypi, "==1.*", None),
            (Npm, "1.2.3", Some("1.2.3")),
            (Npm, "^1.2.3", None),
            (Npm, "1.x", None),
            (Npm, "1.2", None),
            (Cargo, "1.2.3", None),
            (Cargo, "=1.2.3", Some("1.2.3")),
            (Go, "v1.20.0", Some("v1.20.0")),
        ];
        for (ecosystem, requirement, expected) in cases {
            assert_eq!(
                exact_version(ecosystem, requirement).as_deref(),
                expected,
                "{ecosystem:?} {requirement}"
            );
        }
    }
}
