//! The repository's README: its title and first paragraph of prose.

use super::report::ReadmeSummary;

/// The longest summary kept, in characters.
const MAX_SUMMARY: usize = 600;

/// Whether `rel` is the top-level README.
pub fn is_readme(rel: &str) -> bool {
    !rel.contains('/') && rel.to_ascii_lowercase().starts_with("readme")
}

pub fn summarize(path: &str, text: &str) -> ReadmeSummary {
    let mut title = None;
    let mut paragraph: Vec<&str> = Vec::new();
    let mut in_code = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        if let Some(heading) = line.strip_prefix('#') {
            if title.is_none() && paragraph.is_empty() {
                title = Some(heading.trim_start_matches('#').trim().to_owned()).filter(|t| !t.is_empty());
            }
            if !paragraph.is_empty() {
                break;
            }
            continue;
        }
        // Badges, images, HTML and tables are not prose.
        let decoration = ["[![", "![", "<", "|", "---", "==="].iter().any(|p| line.starts_with(p));
        if line.is_empty() || decoration {
            if !paragraph.is_empty() {
                break;
            }
            continue;
        }
        paragraph.push(line);
    }
    let summary = (!paragraph.is_empty()).then(|| {
        let text = paragraph.join(" ");
        match text.char_indices().nth(MAX_SUMMARY) {
            Some((cut, _)) => format!("{}…", &text[..cut]),
            None => text,
        }
    });
    ReadmeSummary { path: path.to_owned(), title, summary }
}

#[cfg(test)]
mod tests {
    #[test]
    fn title_and_first_paragraph_skip_badges_and_code() {
        let text =
            "# Research Crew\n\n[![ci](x.svg)](y)\n\nA crew of agents that\nresearches topics.\n\nMore.\n";
        let summary = super::summarize("README.md", text);
        assert_eq!(summary.title.as_deref(), Some("Research Crew"));
        assert_eq!(summary.summary.as_deref(), Some("A crew of agents that researches topics."));
        assert!(super::is_readme("README.md") && !super::is_readme("docs/README.md"));
    }
}
