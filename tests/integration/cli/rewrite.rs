//! `mark1 rewrite` on a copy of tests/fixtures/rewrite: a diff and nothing written, then
//! `--write`, then a second run that finds nothing left to change.

use std::path::Path;
use std::process::Output;

use mark1::scan::extract::parse;
use mark1::scan::report::Language;
use serde_json::Value;

use super::mark1;

const FILES: &[&str] = &["app.py", "legacy.py", "web/client.ts"];

fn copy_fixture(to: &Path) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rewrite");
    for file in FILES.iter().chain(&["README.md"]) {
        let target = to.join(file);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(from.join(file), target).unwrap();
    }
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap()
}

fn rewrite(dir: &Path, args: &[&str]) -> Output {
    let out = mark1(dir).arg("rewrite").arg(dir).args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[test]
fn rewrite_prints_a_diff_writes_with_write_and_then_has_nothing_left() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    copy_fixture(dir);
    let originals: Vec<String> = FILES.iter().map(|f| read(dir, f)).collect();

    let out = rewrite(dir, &["--to", "ollama"]);
    let diff = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(diff.contains("--- a/app.py\n+++ b/app.py\n"), "{diff}");
    assert!(diff.contains("+    base_url=\"http://localhost:11434/v1\",\n"), "{diff}");
    assert!(diff.contains("-    api_key=\"sk-not-a-real-key\",\n+    api_key=\"ollama\",\n"), "{diff}");
    assert!(diff.contains("--- a/web/client.ts\n+++ b/web/client.ts\n"), "{diff}");
    assert!(!diff.contains("legacy.py"), "{diff}");
    assert!(stderr.contains("legacy.py:3") && stderr.contains("openai.ChatCompletion.create"), "{stderr}");
    assert!(stderr.contains("\"gpt-4o\" left unchanged"), "{stderr}");
    assert!(stderr.contains("nothing written"), "{stderr}");
    for (file, original) in FILES.iter().zip(&originals) {
        assert_eq!(&read(dir, file), original, "{file} is not written without --write");
    }

    let out = rewrite(dir, &["--to", "ollama", "--model", "llama3.2", "--json"]);
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    let paths: Vec<&str> =
        plan["files"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["app.py", "web/client.ts"]);
    let model =
        plan["files"][0]["changes"].as_array().unwrap().iter().find(|c| c["kind"] == "model").unwrap();
    assert_eq!((model["line"].as_u64(), model["before"].as_str()), (Some(4), Some("\"gpt-4o-mini\"")));
    assert_eq!(plan["skipped"][0]["path"], "legacy.py");
    assert_eq!(read(dir, "app.py"), originals[0], "--json does not write either");

    let out = rewrite(dir, &["--to", "ollama", "--model", "llama3.2", "--write"]);
    assert!(text(&out.stderr).contains("rewrote 2 file(s)"), "{}", text(&out.stderr));
    let app = read(dir, "app.py");
    assert!(app.contains("MODEL = \"llama3.2\"\n"), "{app}");
    assert!(app.contains("    timeout=30,\n    base_url=\"http://localhost:11434/v1\",\n)"), "{app}");
    let ts = read(dir, "web/client.ts");
    assert!(ts.contains("  apiKey: \"ollama\",\n  baseURL: \"http://localhost:11434/v1\",\n});"), "{ts}");
    assert!(ts.contains("model: \"llama3.2\","), "{ts}");
    assert_eq!(read(dir, "legacy.py"), originals[1]);
    for (file, language) in [("app.py", Language::Python), ("web/client.ts", Language::Typescript)] {
        let tree = parse(language, &read(dir, file)).unwrap();
        assert!(!tree.root_node().has_error(), "{file} still parses");
    }

    let out = rewrite(dir, &["--to", "ollama", "--model", "llama3.2"]);
    assert_eq!(text(&out.stdout), "", "a second run has no diff");
    assert!(text(&out.stderr).contains("nothing to rewrite"));
}

#[test]
fn rewrite_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let missing = mark1(dir.path()).args(["rewrite", "no-such-dir", "--to", "ollama"]).output().unwrap();
    assert_eq!(missing.status.code(), Some(3));
    let usage = mark1(dir.path()).args(["rewrite", ".", "--to", "elsewhere"]).output().unwrap();
    assert_eq!(usage.status.code(), Some(2));
    let url =
        mark1(dir.path()).args(["rewrite", ".", "--to", "mark1", "--base-url", "gateway"]).output().unwrap();
    assert_eq!(url.status.code(), Some(2));
}
