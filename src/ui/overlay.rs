//! The `?` help overlay, the `l` log pane and the key footer.

use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};

use super::keys;
use super::view_state::ViewState;

/// The key table in a box over the middle of `area`.
pub fn help(f: &mut Frame, area: Rect, v: &ViewState) {
    let lines: Vec<Line> = keys::help_lines(v.keys)
        .into_iter()
        .map(|(k, what)| Line::from(vec![Span::styled(format!("{k:>7}  "), Style::default().add_modifier(Modifier::BOLD)), Span::raw(what)]))
        .collect();
    let height = (lines.len() as u16 + 2).min(area.height);
    let [row] = Layout::vertical([Constraint::Length(height)]).flex(Flex::Center).areas(area);
    let [popup] = Layout::horizontal([Constraint::Length(34.min(area.width))]).flex(Flex::Center).areas(row);
    f.render_widget(Clear, popup);
    f.render_widget(Paragraph::new(lines).block(Block::bordered().title(" keys ").title_bottom(" ? closes ")), popup);
}

/// The newest log lines that fit, in a bordered pane.
pub fn log<'a>(f: &mut Frame, area: Rect, lines: impl DoubleEndedIterator<Item = &'a String>) {
    let inner = area.height.saturating_sub(2) as usize;
    let mut shown: Vec<Line> = lines.rev().take(inner).map(|l| Line::raw(l.clone())).collect();
    shown.reverse();
    f.render_widget(Paragraph::new(shown).style(Style::default().fg(Color::Gray)).block(Block::bordered().title(" log (l hides) ")), area);
}

/// The key footer, or the passing message when there is one.
pub fn footer(f: &mut Frame, area: Rect, v: &ViewState) {
    let line = match &v.flash {
        Some(msg) => Line::styled(msg.clone(), Style::default().fg(Color::Green)),
        None => Line::styled(keys::footer(area.width, v.keys), Style::default().fg(Color::DarkGray)),
    };
    f.render_widget(Paragraph::new(line), area);
}
