//! A sparkline of the newest samples, one column each, newest at the right edge.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::widgets::Sparkline;

/// Draws the last `area.width` of `samples` (oldest first), right-aligned while there are
/// fewer samples than columns.
pub fn sparkline<'a>(f: &mut Frame, area: Rect, samples: impl DoubleEndedIterator<Item = &'a u64>, color: Color) {
    let width = area.width as usize;
    let mut data: Vec<u64> = samples.rev().take(width).copied().collect();
    data.reverse();
    let pad = width.saturating_sub(data.len()) as u16;
    let area = Rect { x: area.x + pad, width: area.width - pad, ..area };
    f.render_widget(Sparkline::default().data(&data).style(Style::default().fg(color)), area);
}
