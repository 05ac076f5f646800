//! The interactive tree's view model, free of any terminal: which actors are expanded,
//! the visible rows in order, and the selection, kept by actor name across snapshots.

use std::collections::HashMap;

use mark1_supervisors::ActorSnapshot;

/// Levels shown expanded until the user says otherwise: the node and its core actors,
/// so a node with thousands of workers opens on a screenful of pools.
const OPEN_DEPTH: usize = 2;

/// One visible line of the tree.
#[derive(Debug)]
pub struct Row<'a> {
    pub depth: usize,
    /// The name relative to the parent (`pool:default/echo`), as the tree shows it.
    pub label: &'a str,
    pub actor: &'a ActorSnapshot,
    pub expanded: bool,
}

#[derive(Debug)]
pub struct TreeView {
    snapshot: ActorSnapshot,
    /// Expansions the user chose, by actor name; the rest follow [`OPEN_DEPTH`].
    toggled: HashMap<String, bool>,
    /// The selected actor's name; `index` is where it was, for when it disappears.
    selected: String,
    index: usize,
}

impl TreeView {
    pub fn new(snapshot: ActorSnapshot) -> TreeView {
        let selected = snapshot.name.clone();
        TreeView { snapshot, toggled: HashMap::new(), selected, index: 0 }
    }

    /// A fresh snapshot: the selection stays on the same actor, or where it was when
    /// that actor is gone.
    pub fn update(&mut self, snapshot: ActorSnapshot) {
        self.snapshot = snapshot;
        let rows = self.rows();
        match rows.iter().position(|r| r.actor.name == self.selected) {
            Some(i) => self.index = i,
            None => {
                let i = self.index.min(rows.len() - 1);
                let name = rows[i].actor.name.clone();
                self.index = i;
                self.selected = name;
            }
        }
    }

    pub fn snapshot(&self) -> &ActorSnapshot {
        &self.snapshot
    }

    fn is_expanded(&self, actor: &ActorSnapshot, depth: usize) -> bool {
        self.toggled.get(&actor.name).copied().unwrap_or(depth < OPEN_DEPTH)
    }

    /// The visible rows, depth first.
    pub fn rows(&self) -> Vec<Row<'_>> {
        let mut rows = Vec::new();
        self.walk(&self.snapshot, "", 0, &mut rows);
        rows
    }

    fn walk<'a>(&'a self, actor: &'a ActorSnapshot, parent: &str, depth: usize, rows: &mut Vec<Row<'a>>) {
        let label = relative_name(&actor.name, parent);
        let expanded = self.is_expanded(actor, depth);
        rows.push(Row { depth, label, actor, expanded });
        if expanded {
            for child in &actor.children {
                self.walk(child, &actor.name, depth + 1, rows);
            }
        }
    }

    pub fn selected_index(&self) -> usize {
        self.index
    }

    pub fn selected(&self) -> &ActorSnapshot {
        self.snapshot.find(&self.selected).unwrap_or(&self.snapshot)
    }

    /// Moves the selection by `delta` rows, stopping at either end.
    pub fn move_by(&mut self, delta: isize) {
        let rows = self.rows();
        let i = self.index.saturating_add_signed(delta).min(rows.len() - 1);
        self.selected = rows[i].actor.name.clone();
        self.index = i;
    }

    pub fn toggle(&mut self) {
        let (name, expanded) = self.current();
        self.set_expanded(name, !expanded);
    }

    /// → opens a closed actor, else steps to its first child.
    pub fn expand(&mut self) {
        let (name, expanded) = self.current();
        if !expanded {
            self.set_expanded(name, true);
        } else if !self.selected().children.is_empty() {
            self.move_by(1);
        }
    }

    /// ← closes an open actor, else steps to its parent.
    pub fn collapse(&mut self) {
        let (name, expanded) = self.current();
        if expanded && !self.selected().children.is_empty() {
            return self.set_expanded(name, false);
        }
        let rows = self.rows();
        let depth = rows[self.index].depth;
        if let Some(parent) = rows[..self.index].iter().rposition(|r| r.depth < depth) {
            self.selected = rows[parent].actor.name.clone();
            self.index = parent;
        }
    }

    fn current(&self) -> (String, bool) {
        let row = &self.rows()[self.index];
        (row.actor.name.clone(), row.expanded)
    }

    fn set_expanded(&mut self, name: String, expanded: bool) {
        self.toggled.insert(name, expanded);
    }
}

/// An actor's name as shown under its parent: `pool:default/echo` under `mark1/agents`.
pub fn relative_name<'a>(name: &'a str, parent: &str) -> &'a str {
    name.strip_prefix(parent).and_then(|n| n.strip_prefix('/')).unwrap_or(name)
}

#[cfg(test)]
pub(crate) mod tests {
    use mark1_supervisors::{Restarts, Status};

    use super::*;

    pub fn actor(name: &str, children: Vec<ActorSnapshot>) -> ActorSnapshot {
        ActorSnapshot {
            name: name.into(),
            actor_id: 1,
            status: Status::Running,
            restarts: Restarts::default(),
            mailbox_depth: 0,
            messages_sent: 0,
            messages_handled: 0,
            busy_us: 0,
            children,
        }
    }

    /// n → {store_writer, agents → pool:default/echo → {worker-0, worker-1}}
    pub fn node() -> ActorSnapshot {
        let workers = vec![
            actor("n/agents/pool:default/echo/worker-0", vec![]),
            actor("n/agents/pool:default/echo/worker-1", vec![]),
        ];
        let pool = actor("n/agents/pool:default/echo", workers);
        actor("n", vec![actor("n/store_writer", vec![]), actor("n/agents", vec![pool])])
    }

    fn labels(view: &TreeView) -> Vec<String> {
        view.rows().iter().map(|r| format!("{}{}", " ".repeat(r.depth), r.label)).collect()
    }

    #[test]
    fn rows_flatten_the_open_levels_with_relative_names() {
        let view = TreeView::new(node());
        assert_eq!(labels(&view), ["n", " store_writer", " agents", "  pool:default/echo"]);
        assert_eq!(view.selected().name, "n");
    }

    #[test]
    fn arrows_move_expand_and_collapse() {
        let mut view = TreeView::new(node());
        view.move_by(-1);
        assert_eq!(view.selected_index(), 0, "stops at the top");
        view.move_by(3);
        assert_eq!(view.selected().name, "n/agents/pool:default/echo");
        view.expand();
        assert_eq!(labels(&view).len(), 6, "the pool opened: {:?}", labels(&view));
        view.expand();
        assert_eq!(
            view.selected().name,
            "n/agents/pool:default/echo/worker-0",
            "→ on an open actor steps in"
        );
        view.move_by(10);
        assert_eq!(view.selected().name, "n/agents/pool:default/echo/worker-1", "stops at the bottom");
        view.collapse();
        assert_eq!(view.selected().name, "n/agents/pool:default/echo", "← on a leaf goes to the parent");
        view.collapse();
        assert_eq!(labels(&view).len(), 4, "← on an open actor closes it");
        view.move_by(-1);
        view.toggle();
        assert_eq!(labels(&view), ["n", " store_writer", " agents"]);
        view.toggle();
        assert_eq!(labels(&view).len(), 4);
    }

    #[test]
    fn the_selection_follows_its_actor_across_snapshots() {
        let mut view = TreeView::new(node());
        view.move_by(2);
        assert_eq!(view.selected().name, "n/agents");
        let mut fresh = node();
        fresh.children.remove(0);
        fresh.children[0].messages_handled = 7;
        view.update(fresh);
        assert_eq!((view.selected().name.as_str(), view.selected_index()), ("n/agents", 1));
        assert_eq!(view.selected().messages_handled, 7);
        // The selected actor goes away: the selection stays at its row, within bounds.
        view.move_by(1);
        let mut fresh = node();
        fresh.children[1].children.clear();
        view.update(fresh);
        assert_eq!((view.selected().name.as_str(), view.selected_index()), ("n/agents", 2));
    }
}
