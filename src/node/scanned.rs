//! `scan.register_at_start`: the agents of `scan.agents_dir`, found as
//! `mark1 scan DIR --register` finds them, become process agents of the node. They are
//! found again at every start rather than stored: the folder is the source of truth.

use crate::config::{AgentConfig, Config};
use crate::scan::{register, Rules};
use crate::NodeError;

/// The agent configs the folder holds, by name; none unless `register_at_start` is on.
pub async fn scanned_agents(config: &Config) -> Result<Vec<(String, AgentConfig)>, NodeError> {
    let Some(dir) = config.scan.agents_dir.clone().filter(|_| config.scan.register_at_start) else {
        return Ok(Vec::new());
    };
    let shown = dir.display().to_string();
    // Scanning reads and parses files: blocking work, off the runtime's workers.
    let proposals = tokio::task::spawn_blocking(move || register::propose(&dir, Rules::built_in()))
        .await
        .map_err(|e| NodeError::Start(format!("scan.agents_dir: the scan stopped: {e}")))?
        .map_err(|e| NodeError::Start(format!("scan.agents_dir: cannot scan {shown}: {e}")))?;
    Ok(proposals
        .into_iter()
        .map(|p| {
            let agent = AgentConfig {
                command: Some(p.command),
                capabilities: p.capabilities,
                description: p.description.unwrap_or_default(),
                ..AgentConfig::default()
            };
            (p.name, agent)
        })
        .collect())
}
