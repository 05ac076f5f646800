//! `scan`: the codebase scanner's whole pipeline (`scan::scan_timed`: walk, read, parse,
//! lower to facts, resolve, match the rules, assemble the report) against parse-only:
//! reading and tree-sitter parsing the same files on the same rayon pool, nothing else.
//! The ratio says what the scanner adds to the parser it cannot do without.
//!
//! Without a PATH the bench scans a synthetic corpus ([`corpus`]) generated into a temp
//! folder and removed afterwards, so a bare `mark1 bench scan --json` is the reference
//! run. One untimed read pass warms the page cache first, so both sides read from memory.
//! Each side runs in its own child process (this binary, `--role`) and rounds alternate
//! them: peak RSS is a process's high-water mark and never goes down, so only a process
//! of its own shows the pipeline's peak rather than whichever side peaked first.

mod corpus;

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, ValueEnum};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{median, peak_rss_bytes, report, round3};
use crate::scan::report::Language;
use crate::scan::walk::{self, WalkedFile, MAX_PARSED_BYTES};
use crate::scan::{self, extract, notebook, Rules};

#[derive(Args, Debug, Clone)]
pub struct Params {
    /// The directory to scan; without one, a synthetic corpus generated for the run.
    #[arg(value_name = "PATH")]
    path: Option<PathBuf>,
    /// Size of the synthetic corpus in megabytes (without PATH).
    #[arg(long, default_value_t = 32.0)]
    corpus_mb: f64,
    /// Alternating rounds of subject and baseline.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Runs both sides in this process instead of a child process each: quicker to start,
    /// but the peak RSS then covers both sides and every round.
    #[arg(long)]
    same_process: bool,
    /// Internal: run one side over PATH in this process and print its figures.
    #[arg(long, value_enum, hide = true)]
    role: Option<Role>,
    /// Accepted for the contract (`--json`); output is always JSON.
    #[arg(long)]
    json: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Subject,
    Baseline,
}

/// What one side measured in one round.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
struct Side {
    wall_s: f64,
    files_parsed: usize,
    bytes_parsed: u64,
    peak_rss_bytes: u64,
    threads: usize,
    /// The pipeline's own counts; `None` for the baseline.
    pipeline: Option<Pipeline>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
struct Pipeline {
    /// CPU seconds summed over rayon's workers, not wall time.
    parse_s: f64,
    match_s: f64,
    files_walked: usize,
    /// LLM calls, agents, tools and MCP servers found.
    findings: usize,
}

/// The files both sides work through, as the warm-up pass saw them.
#[derive(Debug, Clone, Copy)]
struct Corpus {
    files: usize,
    bytes: u64,
    /// The largest file the pipeline reads to parse.
    largest_parsed: u64,
}

pub async fn run(p: Params) -> Result<Value, String> {
    // Parsing is CPU work on rayon's pool: keep it off the async runtime's workers.
    tokio::task::spawn_blocking(move || measure(&p)).await.map_err(|e| format!("the bench stopped: {e}"))?
}

fn measure(p: &Params) -> Result<Value, String> {
    if let Some(role) = p.role {
        let path = p.path.as_deref().ok_or("--role needs PATH")?;
        let side = side(role, path)?;
        return serde_json::to_value(side).map_err(|e| e.to_string());
    }
    match &p.path {
        Some(path) => compare(p, path, json!(path.display().to_string())),
        None => {
            // Removed when `dir` drops, whatever the outcome.
            let dir = tempfile::Builder::new()
                .prefix("mark1-bench-scan-")
                .tempdir()
                .map_err(|e| format!("cannot create the corpus folder: {e}"))?;
            corpus::write(dir.path(), corpus::SEED, (p.corpus_mb * 1e6) as u64)
                .map_err(|e| format!("cannot write the corpus: {e}"))?;
            compare(p, dir.path(), json!("synthetic"))
        }
    }
}

fn compare(p: &Params, root: &Path, path: Value) -> Result<Value, String> {
    let corpus = warm(root)?;
    let (mut subject, mut baseline) = (Vec::new(), Vec::new());
    for _ in 0..p.rounds.max(1) {
        for (role, sides) in [(Role::Subject, &mut subject), (Role::Baseline, &mut baseline)] {
            sides.push(if p.same_process { side(role, root)? } else { child(role, root)? });
        }
    }
    let processes = if p.same_process { "one for both sides" } else { "one per side and round" };
    summarize(
        json!({"path": path, "rounds": p.rounds.max(1), "processes": processes}),
        corpus,
        &subject,
        &baseline,
    )
}

/// The report from every round's sides: medians of the timings, the highest peak RSS,
/// and an error if the two sides did not parse the same files.
fn summarize(
    mut params: Value,
    corpus: Corpus,
    subject: &[Side],
    baseline: &[Side],
) -> Result<Value, String> {
    let first = subject.first().ok_or("no rounds ran")?;
    let pipeline = first.pipeline.ok_or("the subject reported no pipeline figures")?;
    for (s, b) in subject.iter().zip(baseline) {
        if (s.files_parsed, s.bytes_parsed) != (b.files_parsed, b.bytes_parsed) {
            return Err(format!(
                "the sides parsed different work: pipeline {} files ({} bytes), parse-only {} files ({} bytes)",
                s.files_parsed, s.bytes_parsed, b.files_parsed, b.bytes_parsed
            ));
        }
    }
    let wall = |sides: &[Side]| median(&mut sides.iter().map(|s| s.wall_s).collect::<Vec<_>>());
    let stage = |f: fn(&Pipeline) -> f64| {
        median(&mut subject.iter().filter_map(|s| s.pipeline.as_ref().map(f)).collect::<Vec<_>>())
    };
    let peak = |sides: &[Side]| sides.iter().map(|s| s.peak_rss_bytes).max().unwrap_or(0);
    let (wall_s, base_wall_s) = (wall(subject), wall(baseline));
    let (bytes, files) = (first.bytes_parsed as f64, first.files_parsed as f64);
    let (rate, base_rate) = (bytes / wall_s, bytes / base_wall_s);
    if let Value::Object(params) = &mut params {
        params.extend([
            ("corpus_files".into(), json!(corpus.files)),
            ("corpus_bytes".into(), json!(corpus.bytes)),
            ("max_parsed_bytes".into(), json!(MAX_PARSED_BYTES)),
            ("stage_times".into(), json!("parse_s and match_s: CPU seconds summed over rayon's workers")),
            ("peak_rss".into(), json!("VmHWM of each side's process, the highest over rounds")),
        ]);
    }
    Ok(report(
        "scan",
        params,
        json!({
            "bytes_per_sec": rate.round(),
            "files_per_sec": round3(files / wall_s),
            "wall_s": round3(wall_s),
            "parse_s": round3(stage(|p| p.parse_s)),
            "match_s": round3(stage(|p| p.match_s)),
            "peak_rss_bytes": peak(subject),
            "largest_file_bytes": corpus.largest_parsed,
            "threads": first.threads,
        }),
        json!({
            "bytes_per_sec": base_rate.round(),
            "files_per_sec": round3(files / base_wall_s),
            "wall_s": round3(base_wall_s),
            "peak_rss_bytes": peak(baseline),
        }),
        json!({
            "pipeline_vs_parse_only": round3(rate / base_rate),
            "peak_rss_bytes": round3(peak(subject) as f64 / peak(baseline).max(1) as f64),
        }),
        json!({
            "files_walked": pipeline.files_walked,
            "files_parsed": first.files_parsed,
            "bytes_parsed": first.bytes_parsed,
            "findings": pipeline.findings,
            "rounds": subject.len(),
        }),
    ))
}

/// One untimed pass reading every file the walk keeps, so both sides find them in the
/// page cache.
fn warm(root: &Path) -> Result<Corpus, String> {
    let files = walk::walk(root).map_err(|e| format!("cannot scan {}: {e}", root.display()))?;
    files.par_iter().for_each(|file| drop(std::fs::read(&file.path)));
    Ok(Corpus {
        files: files.len(),
        bytes: files.iter().map(|f| f.bytes).sum(),
        largest_parsed: files.iter().filter(|f| is_parsed(f)).map(|f| f.bytes).max().unwrap_or(0),
    })
}

/// Runs one side in a fresh process of this binary and reads its figures.
fn child(role: Role, root: &Path) -> Result<Side, String> {
    let name = match role {
        Role::Subject => "subject",
        Role::Baseline => "baseline",
    };
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = std::process::Command::new(exe)
        .args(["bench", "scan", "--role", name])
        .arg(root)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run the {name} process: {e}"))?;
    if !out.status.success() {
        return Err(format!("the {name} process failed with {}", out.status));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("the {name} process printed no figures: {e}"))
}

fn side(role: Role, root: &Path) -> Result<Side, String> {
    match role {
        Role::Subject => subject(root),
        Role::Baseline => baseline(root),
    }
}

/// The whole pipeline, walk included: that is what `mark1 scan` costs.
fn subject(root: &Path) -> Result<Side, String> {
    let rules = Rules::built_in();
    let started = Instant::now();
    let (analysis, times) = scan::scan_timed(root, rules, None).map_err(|e| e.to_string())?;
    let wall_s = started.elapsed().as_secs_f64();
    let summary = &analysis.summary;
    Ok(Side {
        wall_s,
        files_parsed: summary.parsed_files,
        bytes_parsed: summary.parsed_bytes,
        peak_rss_bytes: peak_rss_bytes(),
        threads: rayon::current_num_threads(),
        pipeline: Some(Pipeline {
            parse_s: times.parse.as_secs_f64(),
            match_s: times.matching.as_secs_f64(),
            files_walked: summary.files,
            findings: summary.llm_calls + summary.agents + summary.tools + summary.mcp,
        }),
    })
}

/// Read and parse only. The file list comes from the same walk, taken before the clock
/// starts: listing files is the pipeline's work, not the parser's.
fn baseline(root: &Path) -> Result<Side, String> {
    let files = walk::walk(root).map_err(|e| format!("cannot scan {}: {e}", root.display()))?;
    let started = Instant::now();
    let (files_parsed, bytes_parsed) = files
        .par_iter()
        .filter(|file| is_parsed(file))
        .filter_map(parse_only)
        .map(|bytes| (1, bytes))
        .reduce(|| (0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    let wall_s = started.elapsed().as_secs_f64();
    Ok(Side {
        wall_s,
        files_parsed,
        bytes_parsed,
        peak_rss_bytes: peak_rss_bytes(),
        threads: rayon::current_num_threads(),
        pipeline: None,
    })
}

/// Whether the pipeline reads `file` to parse it: the test of `scan::analyze`, kept in
/// step with it by the check in [`summarize`] that both sides parsed the same bytes.
fn is_parsed(file: &WalkedFile) -> bool {
    (file.language.is_parsed() || file.language == Language::Notebook) && file.bytes <= MAX_PARSED_BYTES
}

/// Reads and parses one file as the pipeline does (notebooks as their code cells);
/// the bytes parsed, or `None` when nothing was.
fn parse_only(file: &WalkedFile) -> Option<u64> {
    let text = String::from_utf8(std::fs::read(&file.path).ok()?).ok()?;
    let source = match file.language {
        Language::Notebook => notebook::code(&text).ok()?,
        _ => text,
    };
    extract::parse(file.language, &source).map(|_| source.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIGURES: [&str; 8] = [
        "bytes_per_sec",
        "files_per_sec",
        "wall_s",
        "parse_s",
        "match_s",
        "peak_rss_bytes",
        "largest_file_bytes",
        "threads",
    ];
    const BASELINE: [&str; 4] = ["bytes_per_sec", "files_per_sec", "wall_s", "peak_rss_bytes"];
    const WORK: [&str; 4] = ["files_walked", "files_parsed", "bytes_parsed", "findings"];

    fn side(wall_s: f64, bytes_parsed: u64, pipeline: bool) -> Side {
        Side {
            wall_s,
            files_parsed: 10,
            bytes_parsed,
            peak_rss_bytes: 1 << 20,
            threads: 2,
            pipeline: pipeline.then_some(Pipeline {
                parse_s: 1.5,
                match_s: 0.5,
                files_walked: 12,
                findings: 3,
            }),
        }
    }

    fn assert_complete(report: &Value) {
        for key in FIGURES {
            assert!(report[key].is_number(), "figure {key} in {report}");
        }
        for key in BASELINE {
            assert!(report["baseline"][key].is_number(), "baseline {key} in {report}");
        }
        for key in WORK {
            assert!(report["work"][key].is_number(), "work {key} in {report}");
        }
        assert!(report["ratio"]["pipeline_vs_parse_only"].is_number(), "{report}");
        for key in ["path", "rounds", "corpus_files", "corpus_bytes", "max_parsed_bytes"] {
            assert!(!report["params"][key].is_null(), "param {key} in {report}");
        }
    }

    #[test]
    fn the_report_takes_medians_and_has_every_field() {
        let corpus = Corpus { files: 12, bytes: 3_000_000, largest_parsed: 500_000 };
        let subject = [side(1.0, 2_000_000, true), side(4.0, 2_000_000, true), side(2.0, 2_000_000, true)];
        let baseline =
            [side(1.0, 2_000_000, false), side(1.0, 2_000_000, false), side(9.0, 2_000_000, false)];
        let report =
            summarize(json!({"path": "synthetic", "rounds": 3}), corpus, &subject, &baseline).unwrap();
        assert_complete(&report);
        assert_eq!(report["bytes_per_sec"], 1_000_000.0);
        assert_eq!(report["baseline"]["bytes_per_sec"], 2_000_000.0);
        assert_eq!(report["ratio"]["pipeline_vs_parse_only"], 0.5);
        assert_eq!(report["largest_file_bytes"], 500_000);
    }

    #[test]
    fn sides_that_parsed_different_bytes_are_an_error() {
        let corpus = Corpus { files: 12, bytes: 3_000_000, largest_parsed: 500_000 };
        let err = summarize(json!({}), corpus, &[side(1.0, 2_000_000, true)], &[side(1.0, 1_999_999, false)])
            .unwrap_err();
        assert!(err.contains("different work"), "{err}");
    }

    #[tokio::test]
    async fn a_small_synthetic_run_reports_real_work() {
        let params =
            Params { path: None, corpus_mb: 0.3, rounds: 1, same_process: true, role: None, json: true };
        let report = run(params).await.unwrap();
        assert_complete(&report);
        assert_eq!(report["params"]["path"], "synthetic");
        assert!(report["work"]["bytes_parsed"].as_u64().unwrap() > 0, "{report}");
        assert!(report["work"]["files_parsed"].as_u64().unwrap() > 0, "{report}");
        assert!(report["work"]["findings"].as_u64().unwrap() > 0, "the corpus has LLM calls: {report}");
    }
}
