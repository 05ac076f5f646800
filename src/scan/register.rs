//! `mark1 scan DIR --register`: the `process` agents a folder of agents holds. Each
//! subfolder with an entry point (`main.py`, `agent.py`, `index.js`…) is one agent named
//! after the folder; a script directly in a folder without one (a Python file with a
//! `__main__` guard, or any script starting with `#!`) is one agent named after the file.
//! Capabilities are the scanned tools and agents (`tool.<name>`, `agent.<name>`).
//! Registration itself goes through the node's `POST /v1/agents`, so the node's rules
//! (admins only, commands under `process.allowed_dirs`) decide.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{json, Value};

use super::{scan, Rules, ScanError};

/// Files that make a folder one agent, in order of preference.
const ENTRY_FILES: &[&str] =
    &["__main__.py", "main.py", "agent.py", "app.py", "index.js", "index.mjs", "main.js"];

/// One agent the folder holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Proposal {
    pub name: String,
    /// Absolute path of the entry point, the agent's command.
    pub command: PathBuf,
    pub capabilities: Vec<String>,
    pub description: Option<String>,
}

impl Proposal {
    /// The body of `POST /v1/agents` registering it.
    pub fn request(&self) -> Value {
        let mut body = json!({"name": self.name, "runtime": "process", "command": self.command, "capabilities": self.capabilities});
        if let Some(description) = &self.description {
            body["description"] = json!(description);
        }
        body
    }
}

/// The agents under `dir` (the folder itself and its immediate subfolders), by name.
pub fn propose(dir: &Path, rules: &Rules) -> Result<Vec<Proposal>, ScanError> {
    let root =
        dir.canonicalize().map_err(|source| ScanError::Root { path: dir.display().to_string(), source })?;
    let mut folders = vec![root.clone()];
    let mut children: Vec<PathBuf> = std::fs::read_dir(&root)
        .map_err(|source| ScanError::Root { path: root.display().to_string(), source })?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_dir() && !is_hidden_or_vendored(path))
        .collect();
    children.sort();
    folders.extend(children);
    let mut out = Vec::new();
    for folder in folders {
        match ENTRY_FILES.iter().map(|f| folder.join(f)).find(|f| f.is_file()) {
            Some(entry) => out.push(proposal(&folder, entry, rules)?),
            None => {
                for script in scripts(&folder) {
                    out.push(proposal(&script, script.clone(), rules)?);
                }
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out.dedup_by(|a, b| a.name == b.name);
    Ok(out)
}

fn is_hidden_or_vendored(path: &Path) -> bool {
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    name.starts_with('.')
        || matches!(name.as_ref(), "node_modules" | "__pycache__" | "venv" | "target" | "dist" | "build")
}

/// Scripts directly in `folder` that run on their own.
fn scripts(folder: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(folder) else { return Vec::new() };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|path| path.is_file())
        .filter(|path| {
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            let Ok(text) = std::fs::read_to_string(path) else { return false };
            match ext {
                "py" => {
                    text.starts_with("#!")
                        || text.contains("if __name__ == \"__main__\"")
                        || text.contains("if __name__ == '__main__'")
                }
                "js" | "mjs" | "ts" | "sh" => text.starts_with("#!"),
                _ => false,
            }
        })
        .collect();
    out.sort();
    out
}

/// The proposal for the agent at `scanned` (a folder or one script) run by `entry`.
fn proposal(scanned: &Path, entry: PathBuf, rules: &Rules) -> Result<Proposal, ScanError> {
    let analysis = scan(scanned, rules, None)?;
    let mut capabilities: Vec<String> = analysis
        .tools
        .iter()
        .map(|t| format!("tool.{}", slug(&t.name)))
        .chain(analysis.agents.iter().map(|a| format!("agent.{}", slug(&a.name))))
        .collect();
    capabilities.sort();
    capabilities.dedup();
    let stem = scanned.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let description = analysis
        .readme
        .and_then(|r| r.summary.or(r.title))
        .or_else(|| analysis.agents.iter().find_map(|a| a.role.clone()));
    Ok(Proposal { name: agent_name(&stem), command: entry, capabilities, description })
}

/// An agent name the node accepts (`[a-z][a-z0-9_-]*`).
fn agent_name(raw: &str) -> String {
    let name = slug(raw).replace('.', "-");
    let name = name.trim_start_matches(|c: char| !c.is_ascii_lowercase());
    if name.is_empty() {
        "agent".into()
    } else {
        name.to_owned()
    }
}

/// Lowercase letters, digits, `_`, `-` and `.`; anything else becomes `_`.
fn slug(raw: &str) -> String {
    raw.trim()
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') { c } else { '_' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn folders_with_entry_points_and_runnable_scripts_become_agents() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(
            &root.join("Research Bot/main.py"),
            "from langchain_core.tools import tool\n\n@tool(\"web_search\")\ndef search(q: str) -> str:\n    \"\"\"Searches.\"\"\"\n    return q\n",
        );
        write(&root.join("Research Bot/helpers.py"), "if __name__ == \"__main__\":\n    pass\n");
        write(&root.join("summarize.py"), "#!/usr/bin/env python3\nprint('hi')\n");
        write(&root.join("lib.py"), "X = 1\n");
        write(&root.join(".venv/main.py"), "print(1)\n");
        write(&root.join("web/index.js"), "console.log(1)\n");
        let proposals = propose(root, Rules::built_in()).unwrap();
        let names: Vec<&str> = proposals.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["research_bot", "summarize", "web"]);
        let bot = &proposals[0];
        assert!(bot.command.is_absolute() && bot.command.ends_with("Research Bot/main.py"));
        assert_eq!(bot.capabilities, ["tool.web_search"]);
        let body = bot.request();
        assert_eq!(
            (body["runtime"].as_str(), body["name"].as_str()),
            (Some("process"), Some("research_bot"))
        );
        assert!(proposals[1].command.ends_with("summarize.py"));
    }

    #[test]
    fn names_are_what_the_node_accepts() {
        assert_eq!(agent_name("My Agent.v2"), "my_agent-v2");
        assert_eq!(agent_name("42-bot"), "bot");
        assert_eq!(agent_name("___"), "agent");
    }
}
