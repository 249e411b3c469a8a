//! A picture the terminal draws from one escape sequence (sixel, kitty placed directly), as
//! a ratatui widget: the sequence goes in the area's first cell, counted one column wide,
//! and the rest of the area is left to the picture (ratatui neither draws nor clears it).

use ratatui::buffer::{Buffer, CellDiffOption};
use ratatui::layout::Rect;
use ratatui::widgets::Widget;

/// One frame's escape sequence, the cells it covers, and the kitty image it places (if it
/// places one: the view deletes it once another is drawn).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escape {
    pub data: String,
    pub cells: (u16, u16),
    pub kitty_id: Option<u32>,
}

impl Escape {
    /// Whether it is drawn in `area` (a picture that does not fit is left out).
    pub fn fits(&self, area: ratatui::layout::Rect) -> bool {
        let (cols, rows) = self.cells;
        cols > 0 && rows > 0 && cols <= area.width && rows <= area.height
    }
}

impl Widget for &Escape {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let (cols, rows) = self.cells;
        // A picture that does not fit is left out rather than drawn over what is beside it.
        if !self.fits(area) {
            return;
        }
        let one = CellDiffOption::ForcedWidth(std::num::NonZeroU16::new(1).expect("one"));
        for y in area.y..area.y + rows {
            for x in area.x..area.x + cols {
                if let Some(cell) = buf.cell_mut((x, y)) {
                    match (x, y) == (area.x, area.y) {
                        true => cell.set_symbol(&self.data).set_diff_option(one),
                        false => cell.set_diff_option(CellDiffOption::Skip),
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sequence_is_in_the_first_cell_and_the_rest_is_left_alone() {
        let e = Escape { data: "\x1bPq-\x1b\\".into(), cells: (3, 2), kitty_id: None };
        let mut buf = Buffer::empty(Rect::new(0, 0, 6, 3));
        (&e).render(Rect::new(1, 1, 4, 2), &mut buf);
        assert_eq!(buf[(1, 1)].symbol(), e.data);
        assert_eq!(buf[(2, 2)].diff_option, CellDiffOption::Skip);
        assert_eq!(buf[(4, 1)].diff_option, CellDiffOption::None, "beyond the picture");
        let mut small = Buffer::empty(Rect::new(0, 0, 2, 2));
        (&e).render(Rect::new(0, 0, 2, 2), &mut small);
        assert_eq!(small, Buffer::empty(Rect::new(0, 0, 2, 2)), "too small: left out");
    }
}
