//! The buffer map: the file as a row of cells, like a torrent client's piece map — full cells
//! held, shaded cells partly held, dots missing — with the reader's place marked.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::widgets::Widget;

/// One row per line of `area`, the file left to right, top to bottom.
pub struct PieceMap<'a> {
    /// Percent held per slice (any count; resampled to the cells).
    pub pieces: &'a [u8],
    /// The reader's place, 0.0–1.0.
    pub read_fraction: f64,
}

impl Widget for PieceMap<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let cells = area.width as usize * area.height as usize;
        if cells == 0 {
            return;
        }
        let reader = ((self.read_fraction.clamp(0.0, 1.0) * cells as f64) as usize).min(cells - 1);
        for i in 0..cells {
            // The slices this cell covers, averaged.
            let (from, to) = (i * self.pieces.len() / cells, ((i + 1) * self.pieces.len()).div_ceil(cells));
            let part = &self.pieces[from.min(self.pieces.len())..to.min(self.pieces.len())];
            let fill = if part.is_empty() { 0 } else { part.iter().map(|&p| p as u32).sum::<u32>() / part.len() as u32 };
            let (symbol, color) = match fill {
                0 => ("·", Color::DarkGray),
                1..=49 => ("▒", Color::Green),
                50..=99 => ("▓", Color::Green),
                _ => ("█", Color::Green),
            };
            let style = if i == reader { Style::default().fg(Color::Yellow) } else { Style::default().fg(color) };
            let symbol = if i == reader { "▼" } else { symbol };
            let (x, y) = (area.x + (i % area.width as usize) as u16, area.y + (i / area.width as usize) as u16);
            buf[(x, y)].set_symbol(symbol).set_style(style);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pieces: &[u8], read: f64, width: u16) -> String {
        let area = Rect::new(0, 0, width, 1);
        let mut buf = Buffer::empty(area);
        PieceMap { pieces, read_fraction: read }.render(area, &mut buf);
        (0..width).map(|x| buf[(x, 0)].symbol().to_string()).collect()
    }

    #[test]
    fn cells_show_held_partial_missing_and_the_reader() {
        assert_eq!(row(&[100, 100, 60, 20, 0, 0, 0, 0], 0.0, 8), "▼█▓▒····");
        // Resampled: 8 slices into 4 cells, reader in the third.
        assert_eq!(row(&[100, 100, 100, 0, 0, 0, 0, 0], 0.6, 4), "█▓▼·");
        // No map yet: all missing, no panic.
        assert_eq!(row(&[], 0.0, 3), "▼··");
    }
}
