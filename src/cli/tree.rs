//! `mark1 tree`: the actor tree of a running node, interactive ([`live`]) or printed once
//! (`--once`); `--local` starts the configured node in-process and prints its tree.

mod live;
mod model;
mod ui;

use std::time::{Duration, Instant};

use mark1_supervisors::ActorSnapshot;

pub use self::live::run as run_interactive;
/// Terminal keys, shared with `runs watch`.
pub(super) use self::live::{inputs, Input};
use super::client::Remote;
use super::{exit, print_json, CliError};
use crate::config::Config;
use crate::node::Node;

/// One snapshot from `GET /v1/actors`.
pub async fn run_once(remote: &Remote, json: bool) -> Result<(), CliError> {
    let tree = remote.get(&["v1", "actors"], vec![]).await?;
    if json {
        print_json(&tree);
        return Ok(());
    }
    let tree: ActorSnapshot = serde_json::from_value(tree).map_err(|e| CliError {
        code: exit::FAILURE,
        message: format!("the node sent a tree that does not parse: {e}"),
    })?;
    print!("{}", render(&tree));
    Ok(())
}

pub async fn run_local(config: Config, json: bool) -> Result<(), CliError> {
    let expected = config.agents.len();
    let node = Node::builder().config(config).build().await?;
    let handle = node.start().await?;
    // Agents start in the background; give them a moment so the tree shows their pools.
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        if handle.agents().await.map(|a| a.len() >= expected).unwrap_or(false) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let tree = handle.tree();
    if json {
        println!("{}", serde_json::to_string_pretty(&tree).expect("a snapshot serializes"));
    } else {
        print!("{}", render(&tree));
    }
    handle.shutdown(Duration::from_secs(10)).await;
    Ok(())
}

/// An indented text rendering, one actor a line.
pub fn render(tree: &ActorSnapshot) -> String {
    let mut out = String::new();
    walk(tree, "", 0, &mut out);
    out
}

/// Children are shown by their name relative to their parent (`pool:default/echo`).
fn walk(node: &ActorSnapshot, parent: &str, depth: usize, out: &mut String) {
    let short = model::relative_name(&node.name, parent);
    out.push_str(&format!(
        "{:indent$}{short}  [{status:?}] restarts={restarts} handled={handled} mailbox={depth_}\n",
        "",
        indent = depth * 2,
        status = node.status,
        restarts = node.restarts.total(),
        handled = node.messages_handled,
        depth_ = node.mailbox_depth,
    ));
    for child in &node.children {
        walk(child, &node.name, depth + 1, out);
    }
}
