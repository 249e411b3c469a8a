//! The `?` help overlay and the `l` log pane.

use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};

use super::keys;

/// The key table in a box over the middle of `area`.
pub fn help(f: &mut Frame, area: Rect) {
    let lines: Vec<Line> = keys::help_lines()
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
