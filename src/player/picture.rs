//! Frames into terminal graphics with `ratatui-image`: which protocol the terminal speaks,
//! what pixel size to ask the decoder for, and the widget for a frame.

use image::{DynamicImage, RgbImage};
use ratatui::layout::{Rect, Size};
use ratatui_image::picker::{Picker, ProtocolType};
use ratatui_image::protocol::Protocol;
use ratatui_image::protocol::halfblocks::Halfblocks;
use ratatui_image::{FontSize, Resize};

use crate::media::decode::VideoFrame;

/// The graphics protocol to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Graphics {
    /// Decide from the terminal.
    Auto,
    /// Kitty graphics.
    Kitty,
    /// Sixel.
    Sixel,
    /// Unicode half blocks.
    Halfblocks,
    /// No picture in the terminal (another player shows it): status only.
    StatusOnly,
}

/// Turns frames into widgets for one terminal.
pub struct Picture {
    picker: Picker,
}

/// Whether a terminal query is safe and useful: a real terminal, not tmux (which would need
/// passthrough and answers for itself) and not a dumb one.
fn query_worthwhile() -> bool {
    use std::io::IsTerminal;
    let term = std::env::var("TERM").unwrap_or_default();
    std::io::stdin().is_terminal()
        && std::io::stdout().is_terminal()
        && !term.is_empty()
        && term != "dumb"
        && std::env::var_os("TMUX").is_none()
        && !term.starts_with("screen")
        && !term.starts_with("tmux")
}

impl Picture {
    /// Picks the protocol. Call before the TUI takes over the terminal: `Auto` queries the
    /// terminal (bounded by a timeout) where that is safe, and falls back to half-blocks.
    pub fn new(graphics: Graphics) -> Picture {
        let picker = match graphics {
            Graphics::Halfblocks | Graphics::StatusOnly => Picker::halfblocks(),
            Graphics::Auto if !query_worthwhile() => Picker::halfblocks(),
            _ => {
                let opts = ratatui_image::picker::cap_parser::QueryStdioOptions { timeout: std::time::Duration::from_millis(800), ..Default::default() };
                let mut p = Picker::from_query_stdio_with_options(opts).unwrap_or_else(|e| {
                    tracing::info!("terminal graphics query failed ({e}); using half-blocks");
                    Picker::halfblocks()
                });
                match graphics {
                    Graphics::Kitty => p.set_protocol_type(ProtocolType::Kitty),
                    Graphics::Sixel => p.set_protocol_type(ProtocolType::Sixel),
                    _ => {}
                }
                p
            }
        };
        tracing::info!("picture protocol: {:?}", picker.protocol_type());
        Picture { picker }
    }

    /// The protocol in use.
    pub fn protocol(&self) -> ProtocolType {
        self.picker.protocol_type()
    }

    fn cell_pixels(&self) -> FontSize {
        match self.picker.protocol_type() {
            // One cell is one pixel wide and two tall.
            ProtocolType::Halfblocks => FontSize { width: 1, height: 2 },
            _ => self.picker.font_size(),
        }
    }

    /// The pixel size to decode to so a `video` fits `area` with its aspect ratio (even numbers,
    /// as the scaler likes), and the cells it then covers.
    pub fn fit(&self, area: Rect, video: (u32, u32)) -> ((u32, u32), Rect) {
        let fs = self.cell_pixels();
        let (fw, fh) = (fs.width.max(1) as f64, fs.height.max(1) as f64);
        let (aw, ah) = (area.width as f64 * fw, area.height as f64 * fh);
        let (vw, vh) = (video.0.max(1) as f64, video.1.max(1) as f64);
        let scale = (aw / vw).min(ah / vh);
        let even = |x: f64| ((x as u32) & !1).max(2);
        let (pw, ph) = (even(vw * scale), even(vh * scale));
        let cols = ((pw as f64 / fw).ceil() as u16).min(area.width).max(1);
        let rows = ((ph as f64 / fh).ceil() as u16).min(area.height).max(1);
        // An empty area (a 0×0 terminal) still gets a 1×1 answer, placed at its corner.
        let x = area.x + area.width.saturating_sub(cols) / 2;
        let y = area.y + area.height.saturating_sub(rows) / 2;
        ((pw, ph), Rect::new(x, y, cols, rows))
    }

    /// The protocol (widget data) for a frame in `cells`.
    pub fn encode(&self, frame: &VideoFrame, cells: Rect) -> Option<Protocol> {
        let img = RgbImage::from_raw(frame.width, frame.height, frame.rgb.clone())?;
        let img = DynamicImage::ImageRgb8(img);
        let size = Size::new(cells.width, cells.height);
        match self.picker.protocol_type() {
            ProtocolType::Halfblocks => Halfblocks::new(img, size).ok().map(Protocol::Halfblocks),
            _ => self.picker.new_protocol(img, size, Resize::Fit(None)).ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_keeping_the_aspect_ratio_in_half_blocks() {
        let p = Picture::new(Graphics::Halfblocks);
        // 16:9 video into 160x45 cells = 160x90 half-block pixels: exactly fits.
        let ((w, h), cells) = p.fit(Rect::new(0, 0, 160, 45), (1280, 720));
        assert_eq!((w, h), (160, 90));
        assert_eq!(cells, Rect::new(0, 0, 160, 45));
        // In 80x24 (minus nothing): height-bound 48 px → 84 px wide would not fit; width-bound.
        let ((w, h), cells) = p.fit(Rect::new(0, 0, 80, 24), (1280, 720));
        assert_eq!((w, h), (80, 44));
        assert_eq!((cells.width, cells.height), (80, 22));
        assert_eq!(cells.y, 1, "centred vertically");
        // A 0×0 terminal (some exec'd ptys report that): no underflow, a 1×1 answer.
        let (_, cells) = p.fit(Rect::new(3, 4, 0, 0), (1280, 720));
        assert_eq!(cells, Rect::new(3, 4, 1, 1));
    }
}
