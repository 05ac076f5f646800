//! Drawing the interactive tree. ASCII only (markers `+`/`-`, `>` for the selection,
//! `-` rules), so it reads the same over any SSH session; laid out for 80×24 and up.

use mark1_supervisors::{ActorSnapshot, Status};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table, TableState};
use ratatui::Frame;

use super::model::TreeView;

/// Lines of the details pane, its title rule included.
const DETAILS_HEIGHT: u16 = 5;

/// What the screen says about the connection.
pub struct Header<'a> {
    pub url: &'a str,
    pub state: &'a str,
}

pub fn draw(frame: &mut Frame, view: &TreeView, header: &Header) {
    let [top, tree, details, help] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(DETAILS_HEIGHT),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    let title = format!("mark1 tree  {}  {}  {} actors", header.url, header.state, view.snapshot().count());
    frame.render_widget(Paragraph::new(title).style(Style::new().add_modifier(Modifier::BOLD)), top);
    draw_tree(frame, view, tree);
    draw_details(frame, view.selected(), details);
    let keys = "up/down move  left/right close/open  enter/space toggle  q quit";
    frame.render_widget(Paragraph::new(keys).style(Style::new().fg(Color::DarkGray)), help);
}

fn draw_tree(frame: &mut Frame, view: &TreeView, area: Rect) {
    let rows = view.rows().into_iter().map(|row| {
        let marker = match (row.actor.children.is_empty(), row.expanded) {
            (true, _) => ' ',
            (false, true) => '-',
            (false, false) => '+',
        };
        let a = row.actor;
        Row::new(vec![
            Line::from(format!("{:indent$}{marker} {}", "", row.label, indent = row.depth * 2)),
            Line::from(status_text(a.status)).style(status_style(a.status)),
            Line::from(a.mailbox_depth.to_string()).right_aligned(),
            Line::from(a.messages_handled.to_string()).right_aligned(),
            Line::from(a.restarts.total().to_string()).right_aligned(),
        ])
    });
    let widths = [
        Constraint::Fill(1),
        Constraint::Length(10),
        Constraint::Length(7),
        Constraint::Length(9),
        Constraint::Length(8),
    ];
    let table = Table::new(rows, widths)
        .header(
            Row::new([
                Line::from("ACTOR"),
                Line::from("STATUS"),
                Line::from("MAILBOX").right_aligned(),
                Line::from("HANDLED").right_aligned(),
                Line::from("RESTARTS").right_aligned(),
            ])
            .style(Style::new().add_modifier(Modifier::BOLD)),
        )
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
        .highlight_symbol(">");
    let mut state = TableState::new().with_selected(Some(view.selected_index()));
    frame.render_stateful_widget(table, area, &mut state);
}

fn draw_details(frame: &mut Frame, actor: &ActorSnapshot, area: Rect) {
    let r = actor.restarts;
    let lines = vec![
        Line::from(format!(
            "status {}   actor id {}   children {}",
            status_text(actor.status),
            actor.actor_id,
            actor.children.len()
        )),
        Line::from(format!(
            "restarts {}: failed {}  start_failed {}  stopped {}  killed {}",
            r.total(),
            r.failed,
            r.start_failed,
            r.stopped,
            r.killed
        )),
        Line::from(format!(
            "mailbox {}   sent {}   handled {}",
            actor.mailbox_depth, actor.messages_sent, actor.messages_handled
        )),
        Line::from(format!(
            "busy {}",
            humantime::format_duration(std::time::Duration::from_millis(actor.busy_us / 1000))
        )),
    ];
    // A plain `-` rule rather than box-drawing characters: some SSH terminals lack them.
    let rule = ratatui::symbols::border::Set { horizontal_top: "-", ..ratatui::symbols::border::PLAIN };
    let block = Block::new().borders(Borders::TOP).border_set(rule).title(format!(" {} ", actor.name));
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn status_text(status: Status) -> &'static str {
    match status {
        Status::Starting => "starting",
        Status::Running => "running",
        Status::Restarting => "restarting",
        Status::Stopping => "stopping",
        Status::Stopped => "stopped",
        Status::Failed => "failed",
    }
}

fn status_style(status: Status) -> Style {
    match status {
        Status::Running => Style::new().fg(Color::Green),
        Status::Starting | Status::Restarting | Status::Stopping => Style::new().fg(Color::Yellow),
        Status::Failed => Style::new().fg(Color::Red),
        Status::Stopped => Style::new().fg(Color::DarkGray),
    }
}

#[cfg(test)]
mod tests {
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    use super::super::model::tests::node;
    use super::*;

    fn screen(view: &TreeView) -> Vec<String> {
        let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
        let header = Header { url: "http://127.0.0.1:8080", state: "live" };
        terminal.draw(|frame| draw(frame, view, &header)).unwrap();
        let buffer = terminal.backend().buffer();
        (0..24).map(|y| (0..80).map(|x| buffer[(x, y)].symbol()).collect::<String>()).collect()
    }

    #[test]
    fn an_80_by_24_screen_shows_the_tree_details_and_keys() {
        let mut snapshot = node();
        let pool = &mut snapshot.children[1].children[0];
        pool.mailbox_depth = 12;
        pool.messages_handled = 3456;
        pool.restarts.failed = 2;
        pool.restarts.killed = 1;
        pool.status = Status::Restarting;
        let mut view = TreeView::new(snapshot);
        view.move_by(3);
        let lines = screen(&view);
        assert!(lines[0].starts_with("mark1 tree  http://127.0.0.1:8080  live  6 actors"), "{}", lines[0]);
        assert!(
            lines[1].contains("ACTOR") && lines[1].trim_end().ends_with("MAILBOX   HANDLED RESTARTS"),
            "{}",
            lines[1]
        );
        assert!(lines[2].starts_with(" - n ") && lines[2].contains("running"), "{}", lines[2]);
        assert!(lines[3].starts_with("     store_writer"), "{}", lines[3]);
        let pool = &lines[5];
        assert!(pool.starts_with(">    + pool:default/echo"), "{pool}");
        let columns: Vec<&str> = pool.split_whitespace().collect();
        assert_eq!(columns[columns.len() - 4..], ["restarting", "12", "3456", "3"], "{pool}");
        let details = &lines[24 - 1 - 5..23];
        assert!(details[0].starts_with(" n/agents/pool:default/echo ---"), "{}", details[0]);
        assert!(
            details[2].contains("restarts 3: failed 2  start_failed 0  stopped 0  killed 1"),
            "{}",
            details[2]
        );
        assert!(details[3].contains("mailbox 12   sent 0   handled 3456"), "{}", details[3]);
        assert!(lines[23].starts_with("up/down move"), "{}", lines[23]);
        assert!(lines.iter().all(|l| l.is_ascii()), "ASCII only: {lines:#?}");
    }

    #[test]
    fn a_long_tree_scrolls_to_keep_the_selection_visible() {
        let mut snapshot = node();
        let pool = &mut snapshot.children[1].children[0];
        pool.children = (0..40)
            .map(|i| {
                super::super::model::tests::actor(&format!("n/agents/pool:default/echo/worker-{i}"), vec![])
            })
            .collect();
        let mut view = TreeView::new(snapshot);
        view.move_by(3);
        view.expand();
        view.move_by(100);
        let lines = screen(&view);
        assert!(lines.iter().any(|l| l.starts_with(">        worker-39")), "{lines:#?}");
    }
}
