//! Drawing `mark1 runs watch`: the run on top (workflow, state, elapsed time), its steps
//! in dependency order below, the run's error or output at the bottom. ASCII only, like
//! the tree, and laid out for 80×24 and up.

use std::time::SystemTime;

use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Row, Table, TableState, Wrap};
use ratatui::Frame;

use super::model::{is_final_step_state, short, RunModel};

/// What the screen says besides the run: where it is watched from and how.
pub struct Header<'a> {
    pub url: &'a str,
    /// `live`, or why not (reconnecting…).
    pub connection: &'a str,
}

pub fn draw(frame: &mut Frame, model: &RunModel, header: &Header, selected: usize, now: SystemTime) {
    let [title, status, steps, footer, help] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(2),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    let version = model.version.map(|v| format!(" v{v}")).unwrap_or_default();
    let text = format!("mark1 runs watch  {}/{}{version}  {}", model.namespace, model.workflow, model.id);
    frame.render_widget(Paragraph::new(text).style(Style::new().add_modifier(Modifier::BOLD)), title);

    let ordered = model.ordered();
    let done = ordered.iter().filter(|s| is_final_step_state(&s.state)).count();
    let elapsed = model.elapsed(now).map_or("-".into(), short);
    let line = Line::from(vec![
        "run ".into(),
        ratatui::text::Span::styled(model.state.clone(), state_style(&model.state)),
        format!("  elapsed {elapsed}  steps {done}/{}  {}  {}", ordered.len(), header.url, header.connection)
            .into(),
    ]);
    frame.render_widget(Paragraph::new(line), status);

    let rows = ordered.iter().map(|step| {
        Row::new(vec![
            Line::from(step.id.clone()),
            Line::from(step.depends_text()),
            Line::from(step.state.clone()).style(state_style(&step.state)),
            Line::from(step.attempt.to_string()).right_aligned(),
            Line::from(step.item_progress().unwrap_or_default()).right_aligned(),
            Line::from(step.detail(now)),
        ])
    });
    // Room for `waiting_approval` and `10000/10000`; the detail gets the rest.
    let widths = [
        Constraint::Length(14),
        Constraint::Length(14),
        Constraint::Length(16),
        Constraint::Length(7),
        Constraint::Length(11),
        Constraint::Fill(1),
    ];
    let heading = ["STEP", "DEPENDS ON", "STATE", "ATTEMPT", "ITEMS", "DETAIL"];
    let table = Table::new(rows, widths)
        .header(
            Row::new(heading.iter().enumerate().map(|(i, h)| {
                let line = Line::from(*h);
                if i == 3 || i == 4 {
                    line.right_aligned()
                } else {
                    line
                }
            }))
            .style(Style::new().add_modifier(Modifier::BOLD)),
        )
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
        .highlight_symbol(">");
    let mut state = TableState::new().with_selected(Some(selected.min(ordered.len().saturating_sub(1))));
    frame.render_stateful_widget(table, steps, &mut state);

    let outcome = match (&model.error, &model.output) {
        (Some(error), _) => format!("error: {error}"),
        (None, Some(output)) if !output.is_null() => format!("output: {output}"),
        _ => String::new(),
    };
    frame.render_widget(Paragraph::new(outcome).wrap(Wrap { trim: true }), footer);
    let keys = "up/down move  q quit  (the run goes on)";
    frame.render_widget(Paragraph::new(keys).style(Style::new().fg(Color::DarkGray)), help);
}

fn state_style(state: &str) -> Style {
    match state {
        "succeeded" => Style::new().fg(Color::Green),
        "running" => Style::new().fg(Color::Cyan),
        "waiting_approval" => Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
        "failed" | "timed_out" | "cancelled" => Style::new().fg(Color::Red),
        "skipped" | "queued" => Style::new().fg(Color::DarkGray),
        _ => Style::new(),
    }
}

#[cfg(test)]
mod tests {
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;
    use serde_json::json;

    use super::super::model::{depends_on, tests};
    use super::*;

    fn screen(model: &RunModel, now: SystemTime) -> Vec<String> {
        let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
        let header = Header { url: "http://127.0.0.1:8080", connection: "live" };
        terminal.draw(|frame| draw(frame, model, &header, 0, now)).unwrap();
        let buffer = terminal.backend().buffer();
        (0..24).map(|y| (0..80).map(|x| buffer[(x, y)].symbol()).collect::<String>()).collect()
    }

    #[test]
    fn an_80_by_24_screen_shows_the_run_its_steps_and_keys() {
        let mut model = RunModel::of_view(&tests::view());
        model.set_depends_on(depends_on(&tests::def()));
        let now = model.created_at.unwrap() + std::time::Duration::from_secs(75);
        let lines = screen(&model, now);
        assert!(lines[0].starts_with("mark1 runs watch  default/flow v1  0190a000-"), "{}", lines[0]);
        assert!(
            lines[1].starts_with("run running  elapsed 1m 15s  steps 1/4  http://127.0.0.1:8080  live"),
            "{}",
            lines[1]
        );
        assert!(lines[2].contains("STEP") && lines[2].contains("DEPENDS ON") && lines[2].contains("DETAIL"));
        let steps: Vec<Vec<&str>> = lines[3..7].iter().map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(steps[0], [">fetch", "-", "succeeded", "1"], "{lines:#?}");
        assert_eq!(steps[1], ["each", "fetch", "running", "1", "2/3"]);
        assert_eq!(steps[2], ["approve", "fetch", "waiting_approval", "1"]);
        assert_eq!(steps[3], ["report", "each,approve", "queued", "0"]);
        assert!(lines[23].starts_with("up/down move  q quit"), "{}", lines[23]);
        assert!(lines.iter().all(|l| l.is_ascii()), "ASCII only: {lines:#?}");

        let mut failed = tests::view();
        failed["state"] = json!("failed");
        failed["error"] = json!("step report failed: boom");
        let lines = screen(&RunModel::of_view(&failed), now);
        assert!(lines[21].starts_with("error: step report failed: boom"), "{lines:#?}");
        assert!(lines[1].contains("elapsed 5s"), "a final run's time stops at its end: {}", lines[1]);
    }
}
