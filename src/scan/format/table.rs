//! The terminal summary: one header line, then a section per non-empty part of the
//! report. Rows keep the report's order, so the same report prints the same text.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::{enum_name, model_label};
use crate::cli::table::render as columns;
use crate::scan::report::{PackageStatus, RepositoryAnalysis};

/// Descriptions longer than this are cut: a table row should fit a terminal line.
const DESCRIPTION_CHARS: usize = 60;

pub(super) fn render(analysis: &RepositoryAnalysis) -> String {
    let mut out = header(analysis);
    let sections = [
        llm_calls(analysis),
        agents(analysis),
        tools(analysis),
        graphs(analysis),
        mcp(analysis),
        dependencies(analysis),
        problems(analysis),
    ];
    for (title, body) in sections.into_iter().flatten() {
        let _ = write!(out, "\n{title}\n{body}");
    }
    out
}

type Section = Option<(String, String)>;

fn header(analysis: &RepositoryAnalysis) -> String {
    let s = &analysis.summary;
    let mut out = format!(
        "{}: {} ({}; {}), {} parsed ({}), {}\n",
        analysis.root,
        plural(s.files, "file"),
        counts(&s.by_language),
        counts(&s.by_kind),
        s.parsed_files,
        bytes(s.parsed_bytes),
        plural(s.problems, "problem"),
    );
    if !analysis.frameworks.is_empty() {
        let uses: Vec<String> =
            analysis.frameworks.iter().map(|f| format!("{} ({})", f.name, plural(f.files, "file"))).collect();
        let _ = writeln!(out, "frameworks: {}", uses.join(", "));
    }
    out
}

fn llm_calls(analysis: &RepositoryAnalysis) -> Section {
    let rows = analysis.llm_calls.iter().map(|c| {
        vec![
            c.provider.clone(),
            model_label(c),
            enum_name(c.call_kind),
            format!("{}:{}", c.file, c.line),
            c.function.clone().unwrap_or_default(),
        ]
    });
    section("LLM calls", &["PROVIDER", "MODEL", "KIND", "LOCATION", "FUNCTION"], rows)
}

fn agents(analysis: &RepositoryAnalysis) -> Section {
    let rows = analysis.agents.iter().map(|a| {
        vec![
            a.framework.clone(),
            a.name.clone(),
            a.model.clone().unwrap_or_default(),
            a.tools.len().to_string(),
            format!("{}:{}", a.file, a.line),
        ]
    });
    section("Agents", &["FRAMEWORK", "NAME", "MODEL", "TOOLS", "LOCATION"], rows)
}

fn tools(analysis: &RepositoryAnalysis) -> Section {
    let rows = analysis.tools.iter().map(|t| {
        vec![
            t.framework.clone(),
            t.name.clone(),
            truncate(t.description.as_deref().unwrap_or_default(), DESCRIPTION_CHARS),
            format!("{}:{}", t.file, t.line),
        ]
    });
    section("Tools", &["FRAMEWORK", "NAME", "DESCRIPTION", "LOCATION"], rows)
}

/// Graphs are not tabular: each is its name, its nodes, then one edge a line, `~>` for
/// an edge taken only under a condition.
fn graphs(analysis: &RepositoryAnalysis) -> Section {
    if analysis.graphs.is_empty() {
        return None;
    }
    let mut body = String::new();
    for g in &analysis.graphs {
        let _ = writeln!(body, "{} ({}, {}:{}): {}", g.name, g.framework, g.file, g.line, g.nodes.join(", "));
        for e in &g.edges {
            let arrow = if e.conditional { "~>" } else { "->" };
            let _ = writeln!(body, "  {} {arrow} {}", e.from, e.to);
        }
    }
    Some((format!("Graphs ({})", analysis.graphs.len()), body))
}

fn mcp(analysis: &RepositoryAnalysis) -> Section {
    let rows = analysis.mcp.iter().map(|m| {
        vec![
            m.kind.clone(),
            m.name.clone().unwrap_or_default(),
            m.transport.clone().unwrap_or_default(),
            m.tools.join(", "),
            format!("{}:{}", m.file, m.line),
        ]
    });
    section("MCP", &["KIND", "NAME", "TRANSPORT", "TOOLS", "LOCATION"], rows)
}

/// Counts for every package, but rows only for the ones that need a look: used
/// packages are the expected case.
fn dependencies(analysis: &RepositoryAnalysis) -> Section {
    let deps = &analysis.dependencies;
    if deps.packages.is_empty() {
        return None;
    }
    let count = |status| deps.packages.iter().filter(|p| p.status == status).count();
    let mut body = format!(
        "{} in {}: {} used, {} unused, {} shadow\n",
        plural(deps.packages.len(), "package"),
        plural(deps.manifests.len(), "manifest"),
        count(PackageStatus::Used),
        count(PackageStatus::Unused),
        count(PackageStatus::Shadow),
    );
    let rows: Vec<Vec<String>> = deps
        .packages
        .iter()
        .filter(|p| p.status != PackageStatus::Used)
        .map(|p| {
            let (status, files) = match p.status {
                PackageStatus::Shadow => ("shadow: imported, not declared", &p.imported_in),
                _ => ("unused: declared, not imported", &p.declared_in),
            };
            vec![p.name.clone(), enum_name(p.ecosystem), status.into(), files.join(", ")]
        })
        .collect();
    if !rows.is_empty() {
        body.push_str(&columns(&["PACKAGE", "ECOSYSTEM", "STATUS", "FILES"], &rows));
    }
    Some(("Dependencies".into(), body))
}

fn problems(analysis: &RepositoryAnalysis) -> Section {
    let rows = analysis.problems.iter().map(|p| {
        let at = p.line.map_or_else(|| p.path.clone(), |line| format!("{}:{line}", p.path));
        vec![at, p.problem.clone(), one_line(&p.message)]
    });
    section("Problems", &["FILE", "PROBLEM", "MESSAGE"], rows)
}

/// A titled table, or nothing when there are no rows.
fn section(title: &str, headers: &[&str], rows: impl Iterator<Item = Vec<String>>) -> Section {
    let rows: Vec<Vec<String>> = rows.collect();
    (!rows.is_empty()).then(|| (format!("{title} ({})", rows.len()), columns(headers, &rows)))
}

fn counts(map: &BTreeMap<String, usize>) -> String {
    map.iter().map(|(name, n)| format!("{name} {n}")).collect::<Vec<_>>().join(", ")
}

fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Cells are one line: a docstring's line breaks would break the columns.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn truncate(text: &str, max: usize) -> String {
    let text = one_line(text);
    if text.chars().count() <= max {
        return text;
    }
    let cut: String = text.chars().take(max - 1).collect();
    format!("{}…", cut.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::format::tests::sample;

    #[test]
    fn the_summary_lists_every_section() {
        let text = render(&sample());
        let expected_lines = [
            "/home/me/support-bot/: 6 files (json 1, python 4, text 1; config 2, source 4), 4 parsed (8.0 KiB), 1 problem",
            "frameworks: openai_agents (2 files)",
            "LLM calls (4)",
            "openai     gpt-4o",
            "anthropic  <dynamic: env:CLAUDE_MODEL> claude-3-5-sonnet  client     src/agents.py:5  answer",
            "openai     <default>",
            "triage      gpt-4o   2      src/agents.py:20",
            "Look up an order by its id and return its status, items, sh…",
            "workflow (langgraph, src/agents.py:50): triage, billing",
            "  triage ~> billing",
            "  billing -> __end__",
            "mcp_server  orders  stdio            lookup_order  src/tools.py:3",
            "5 packages in 2 manifests: 2 used, 2 unused, 1 shadow",
            "langgraph  pypi       shadow: imported, not declared  src/agents.py",
            "left-pad   npm        unused: declared, not imported  package.json",
            "src/broken.py:3  syntax_errors  2 syntax errors",
        ];
        for line in expected_lines {
            assert!(text.lines().any(|l| l.contains(line)), "no line with {line:?} in\n{text}");
        }
        assert!(!text.contains("openai     pypi"), "used packages get no row:\n{text}");
        assert_eq!(text, render(&sample()), "the same report prints the same text");
    }

    #[test]
    fn empty_sections_are_left_out() {
        let mut analysis = sample();
        analysis.llm_calls.clear();
        analysis.graphs.clear();
        analysis.dependencies.packages.clear();
        analysis.problems.clear();
        let text = render(&analysis);
        for title in ["LLM calls", "Graphs", "Dependencies", "Problems"] {
            assert!(!text.contains(title), "{title} printed for nothing:\n{text}");
        }
        assert!(text.contains("Agents (3)"));
    }

    #[test]
    fn long_and_multi_line_text_fits_one_cell() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("a  b\nc", 10), "a b c");
        assert_eq!(truncate("abcdefghijkl", 5), "abcd…");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 * 1024 * 1024 / 2), "1.5 MiB");
    }
}
