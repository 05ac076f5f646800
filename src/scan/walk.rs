//! The walk: every file under the root that .gitignore (and .ignore, and git's global
//! excludes) keeps, minus vendored and generated trees, classified by language and kind.

use std::path::{Path, PathBuf};

use ignore::WalkBuilder;

use super::report::{FileKind, Language};

/// Directories never worth scanning: dependencies, virtual environments, build outputs
/// and caches. Skipped even where no .gitignore says so.
const SKIPPED_DIRS: &[&str] = &[
    ".git",
    ".hg",
    ".svn",
    ".venv",
    "venv",
    ".env",
    ".tox",
    ".nox",
    "node_modules",
    "bower_components",
    "site-packages",
    "dist-packages",
    "__pycache__",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    "target",
    "dist",
    "build",
    "out",
    ".next",
    ".nuxt",
    ".svelte-kit",
    ".turbo",
    ".parcel-cache",
    "coverage",
    ".eggs",
    "vendor",
    "third_party",
];

/// Files larger than this are listed but not parsed: they are generated or data.
pub const MAX_PARSED_BYTES: u64 = 2 * 1024 * 1024;

/// One file the walk kept.
#[derive(Debug, Clone)]
pub struct WalkedFile {
    pub path: PathBuf,
    /// Relative to the root, `/`-separated.
    pub rel: String,
    pub language: Language,
    pub kind: FileKind,
    pub bytes: u64,
    pub manifest: bool,
}

/// Lists the files under `root` worth classifying, sorted by relative path. `root` may
/// also be a single file.
pub fn walk(root: &Path) -> std::io::Result<Vec<WalkedFile>> {
    let meta = std::fs::metadata(root)?;
    if meta.is_file() {
        let rel = root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        return Ok(classify(root.to_path_buf(), rel, meta.len()).into_iter().collect());
    }
    let mut files = Vec::new();
    let walker = WalkBuilder::new(root)
        .hidden(false)
        .git_ignore(true)
        .git_global(true)
        .git_exclude(true)
        // .gitignore counts even outside a git checkout (an unpacked archive, a fixture).
        .require_git(false)
        .filter_entry(|entry| {
            let is_dir = entry.file_type().is_some_and(|t| t.is_dir());
            !(is_dir && entry.depth() > 0 && is_skipped_dir(&entry.file_name().to_string_lossy()))
        })
        .build();
    for entry in walker {
        let Ok(entry) = entry else { continue };
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        let path = entry.path();
        let rel = path.strip_prefix(root).unwrap_or(path);
        let rel = rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/");
        let bytes = entry.metadata().map(|m| m.len()).unwrap_or(0);
        if let Some(file) = classify(path.to_path_buf(), rel, bytes) {
            files.push(file);
        }
    }
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(files)
}

fn is_skipped_dir(name: &str) -> bool {
    SKIPPED_DIRS.contains(&name) || name.ends_with(".egg-info")
}

/// Language and kind from the path alone; `None` for files the scanner has no use for
/// (images, binaries, lock files).
fn classify(path: PathBuf, rel: String, bytes: u64) -> Option<WalkedFile> {
    let name = rel.rsplit('/').next().unwrap_or(&rel).to_ascii_lowercase();
    let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    // `requirements/base.txt` as well as `requirements-dev.txt`.
    let manifest = is_manifest(&name) || (ext == "txt" && rel.rsplit('/').nth(1) == Some("requirements"));
    let language = match ext {
        "py" | "pyi" => Language::Python,
        "js" | "mjs" | "cjs" | "jsx" => Language::Javascript,
        "ts" | "mts" | "cts" => Language::Typescript,
        "tsx" => Language::Tsx,
        "rs" => Language::Rust,
        "go" => Language::Go,
        "toml" => Language::Toml,
        "yaml" | "yml" => Language::Yaml,
        "json" => Language::Json,
        "ipynb" => Language::Notebook,
        "md" | "mdx" | "rst" => Language::Markdown,
        "txt" | "cfg" | "mod" if manifest => Language::Text,
        "txt" | "adoc" => Language::Markdown,
        _ => return None,
    };
    if name.ends_with(".min.js") || name == "package-lock.json" {
        return None;
    }
    let kind = match language {
        Language::Notebook => FileKind::Notebook,
        Language::Markdown => FileKind::Docs,
        Language::Toml | Language::Yaml | Language::Json | Language::Text => FileKind::Config,
        _ if is_test(&rel, &name) => FileKind::Test,
        _ if rel.split('/').any(|d| d == "docs" || d == "doc") => FileKind::Docs,
        _ => FileKind::Source,
    };
    Some(WalkedFile { path, rel, language, kind, bytes, manifest })
}

fn is_manifest(name: &str) -> bool {
    matches!(name, "pyproject.toml" | "setup.cfg" | "package.json" | "cargo.toml" | "go.mod")
        || (name.starts_with("requirements") && name.ends_with(".txt"))
}

fn is_test(rel: &str, name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or(name);
    stem.starts_with("test_")
        || stem.ends_with("_test")
        || name.contains(".test.")
        || name.contains(".spec.")
        || stem == "conftest"
        || rel.split('/').rev().skip(1).any(|d| matches!(d, "tests" | "test" | "__tests__" | "testing"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classified(rel: &str) -> Option<(Language, FileKind, bool)> {
        classify(PathBuf::from(rel), rel.to_owned(), 1).map(|f| (f.language, f.kind, f.manifest))
    }

    #[test]
    fn classifies_by_extension_and_place() {
        assert_eq!(classified("app/main.py"), Some((Language::Python, FileKind::Source, false)));
        assert_eq!(classified("tests/test_app.py"), Some((Language::Python, FileKind::Test, false)));
        assert_eq!(classified("src/a.test.ts"), Some((Language::Typescript, FileKind::Test, false)));
        assert_eq!(classified("web/App.tsx"), Some((Language::Tsx, FileKind::Source, false)));
        assert_eq!(classified("pkg/server_test.go"), Some((Language::Go, FileKind::Test, false)));
        assert_eq!(classified("requirements-dev.txt"), Some((Language::Text, FileKind::Config, true)));
        assert_eq!(classified("go.mod"), Some((Language::Text, FileKind::Config, true)));
        assert_eq!(classified("Cargo.toml"), Some((Language::Toml, FileKind::Config, true)));
        assert_eq!(classified("nb/demo.ipynb"), Some((Language::Notebook, FileKind::Notebook, false)));
        assert_eq!(classified("README.md"), Some((Language::Markdown, FileKind::Docs, false)));
        assert_eq!(classified("logo.png"), None);
        assert_eq!(classified("web/vendor.min.js"), None);
    }

    #[test]
    fn skips_vendored_trees_and_honours_gitignore() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for rel in
            ["app.py", "node_modules/x/index.js", ".venv/lib/site.py", "gen/out.py", "pkg.egg-info/a.py"]
        {
            let path = root.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "x = 1\n").unwrap();
        }
        std::fs::write(root.join(".gitignore"), "gen/\n").unwrap();
        let files: Vec<String> = walk(root).unwrap().into_iter().map(|f| f.rel).collect();
        assert_eq!(files, vec!["app.py".to_owned()]);
    }
}
