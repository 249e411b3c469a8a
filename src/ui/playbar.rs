//! The playback bar: room state, a progress line, position / duration.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

use crate::core::api::clock;

/// What the room (or this participant) is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlayState {
    /// The clock runs.
    Playing,
    /// Paused.
    Paused,
    /// The room waits for someone's data.
    Waiting,
    /// This participant waits for data.
    Buffering,
}

impl PlayState {
    fn look(self) -> (&'static str, &'static str, Color) {
        match self {
            PlayState::Playing => ("▶", "playing", Color::Green),
            PlayState::Paused => ("⏸", "paused", Color::Cyan),
            PlayState::Waiting => ("◌", "waiting", Color::Yellow),
            PlayState::Buffering => ("◌", "buffering", Color::Yellow),
        }
    }
}

/// One line: "▶ playing ━━━━━━╸────── 1:12 / 10:00  waiting for bob".
pub struct Playbar<'a> {
    /// State shown on the left.
    pub state: PlayState,
    /// Position.
    pub position_ms: u64,
    /// Duration, when known (no bar without it).
    pub duration_ms: Option<u64>,
    /// Who the room waits for.
    pub waiting: &'a [String],
}

impl Widget for Playbar<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        if area.height == 0 || area.width == 0 {
            return;
        }
        let (icon, word, color) = self.state.look();
        let label = format!("{icon} {word:<9} ");
        let times = format!(" {} / {}", clock(self.position_ms), self.duration_ms.map_or("?".into(), clock));
        let wait = if self.waiting.is_empty() { String::new() } else { format!("  waiting for {}", self.waiting.join(", ")) };
        let fixed = (label.chars().count() + times.chars().count() + wait.chars().count()) as u16;
        // The bar takes what is left, but never less than 10 cells: the waiting list gives way.
        let bar_width = area.width.saturating_sub(fixed).max(10.min(area.width)) as usize;
        let filled = match self.duration_ms {
            Some(d) if d > 0 => ((self.position_ms.min(d) as f64 / d as f64) * bar_width as f64).round() as usize,
            _ => 0,
        };
        let mut spans = vec![Span::styled(label, Style::default().fg(color).add_modifier(Modifier::BOLD))];
        if filled > 0 {
            spans.push(Span::styled("━".repeat(filled.saturating_sub(1)) + "╸", Style::default().fg(color)));
        }
        spans.push(Span::styled("─".repeat(bar_width - filled.min(bar_width)), Style::default().fg(Color::DarkGray)));
        spans.push(Span::raw(times));
        spans.push(Span::styled(wait, Style::default().fg(Color::Yellow)));
        Line::from(spans).render(area, buf);
    }
}

#[cfg(test)]
mod tests {
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    use super::*;

    fn bar(state: PlayState, position_ms: u64, duration_ms: Option<u64>, waiting: &[String], width: u16) -> String {
        let mut t = Terminal::new(TestBackend::new(width, 1)).unwrap();
        t.draw(|f| f.render_widget(Playbar { state, position_ms, duration_ms, waiting }, f.area())).unwrap();
        t.backend().to_string()
    }

    #[test]
    fn playbar_states_and_widths() {
        let bob = ["bob".to_string()];
        let lines = [
            bar(PlayState::Playing, 72_000, Some(600_000), &[], 80),
            bar(PlayState::Paused, 300_000, Some(600_000), &[], 80),
            bar(PlayState::Waiting, 72_000, Some(600_000), &bob, 80),
            bar(PlayState::Buffering, 599_000, Some(600_000), &[], 40),
            bar(PlayState::Playing, 5_000, None, &[], 40),
            bar(PlayState::Playing, 5_000, Some(10_000), &bob, 12),
        ];
        insta::assert_snapshot!(lines.join(""));
    }
}
