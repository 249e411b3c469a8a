//! Terminals without 24-bit colour: the picture's RGB cells mapped to the xterm 256-colour
//! palette (6×6×6 cube plus the grey ramp), so half-blocks stay recognisable instead of turning
//! into whatever a terminal makes of an escape it does not know.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Color;

/// Whether the terminal says it takes 24-bit colour (`COLORTERM=truecolor` or `24bit`, which
/// SSH does not forward by default: then the picture uses 256 colours).
pub fn truecolor_from_env() -> bool {
    std::env::var("COLORTERM").is_ok_and(|v| v == "truecolor" || v == "24bit")
}

/// The nearest xterm-256 colour for an RGB colour; other colours unchanged.
pub fn to_256(c: Color) -> Color {
    let Color::Rgb(r, g, b) = c else { return c };
    // Cube levels are 0, 95, 135, 175, 215, 255.
    let level = |v: u8| if v < 48 { 0 } else if v < 115 { 1 } else { (v as u16 - 35) / 40 } as u8;
    let value = |l: u8| if l == 0 { 0 } else { 55 + 40 * l as i32 };
    let (lr, lg, lb) = (level(r), level(g), level(b));
    let cube = 16 + 36 * lr + 6 * lg + lb;
    let cube_err = (value(lr) - r as i32).pow(2) + (value(lg) - g as i32).pow(2) + (value(lb) - b as i32).pow(2);
    // Grey ramp 232–255: 8, 18, …, 238.
    let avg = (r as i32 + g as i32 + b as i32) / 3;
    let step = ((avg - 8).max(0) / 10).min(23);
    let grey = 8 + 10 * step;
    let grey_err = (grey - r as i32).pow(2) + (grey - g as i32).pow(2) + (grey - b as i32).pow(2);
    Color::Indexed(if grey_err < cube_err { 232 + step as u8 } else { cube })
}

/// Maps every RGB foreground and background inside `area` to 256 colours.
pub fn quantize(buf: &mut Buffer, area: Rect) {
    let area = area.intersection(buf.area);
    for y in area.top()..area.bottom() {
        for x in area.left()..area.right() {
            let cell = &mut buf[(x, y)];
            cell.fg = to_256(cell.fg);
            cell.bg = to_256(cell.bg);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primaries_and_greys_land_on_their_palette_entries() {
        assert_eq!(to_256(Color::Rgb(255, 0, 0)), Color::Indexed(196));
        assert_eq!(to_256(Color::Rgb(0, 0, 255)), Color::Indexed(21));
        assert_eq!(to_256(Color::Rgb(0, 0, 0)), Color::Indexed(16));
        assert_eq!(to_256(Color::Rgb(255, 255, 255)), Color::Indexed(231));
        assert_eq!(to_256(Color::Rgb(128, 128, 128)), Color::Indexed(244));
        assert_eq!(to_256(Color::Green), Color::Green, "named colours stay");
    }

    #[test]
    fn every_rgb_maps_into_the_palette() {
        for r in (0..=255).step_by(17) {
            for g in (0..=255).step_by(17) {
                for b in (0..=255).step_by(17) {
                    assert!(matches!(to_256(Color::Rgb(r, g, b)), Color::Indexed(16..=255)));
                }
            }
        }
    }
}
