//! CrewAI's `@CrewBase` crews keep their agents' role, goal and backstory in YAML
//! (`agents_config = "config/agents.yaml"`, relative to the crew's file), keyed by the
//! `@agent` method's name.

use std::collections::HashMap;
use std::path::Path;

use mark1_actors::domain::workflow::source::parse_value;
use serde_json::Value;

use crate::scan::facts::Expr;
use crate::scan::resolve::Resolver;

/// One agent's entry in a crew's agents YAML.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentConfig {
    pub role: Option<String>,
    pub goal: Option<String>,
    pub backstory: Option<String>,
    pub llm: Option<String>,
}

/// The agent configs of the crews in a file, by agent key; `dir` is the file's folder.
pub fn agent_configs(dir: &Path, resolver: &Resolver<'_>) -> HashMap<String, AgentConfig> {
    let mut out = HashMap::new();
    for binding in &resolver.facts().bindings {
        let (true, None, Expr::Str(rel)) =
            (binding.name.ends_with(".agents_config"), &binding.function, &binding.value)
        else {
            continue;
        };
        // A config the scan cannot read leaves the agents as the code states them.
        let Ok(text) = std::fs::read_to_string(dir.join(rel)) else { continue };
        let Ok((Value::Object(agents), _)) = parse_value(&text) else { continue };
        for (key, entry) in agents {
            let field = |name: &str| entry.get(name).and_then(Value::as_str).map(|s| s.trim().to_owned());
            let config = AgentConfig {
                role: field("role"),
                goal: field("goal"),
                backstory: field("backstory"),
                llm: field("llm"),
            };
            out.insert(key, config);
        }
    }
    out
}

/// The key of `config=self.agents_config["researcher"]`.
pub fn config_key(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Subscript(base, key) => match (&**base, &**key) {
            (Expr::Name(base), Expr::Str(key)) if base.ends_with("agents_config") => Some(key),
            _ => None,
        },
        _ => None,
    }
}
