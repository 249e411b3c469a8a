//! A participant's picture inside a view: keeps the decoder scaling to the pane, encodes only
//! the newest frame and only when the view draws, and draws it.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::widgets::Paragraph;
use ratatui_image::Image;
use ratatui_image::protocol::Protocol;

use super::palette;
use crate::player::picture::Picture;
use crate::player::screen::Screen;

/// The encoded picture and the cells it covers.
pub type Encoded = (Protocol, Rect);

/// Follows a [`Screen`]'s frames for one pane.
pub struct PicturePane {
    picture: Picture,
    encoded: Option<Encoded>,
    shown: u64,
    fitted: Option<((u32, u32), Rect)>,
}

impl PicturePane {
    /// A pane drawing with `picture`.
    pub fn new(picture: Picture) -> PicturePane {
        PicturePane { picture, encoded: None, shown: 0, fitted: None }
    }

    /// The terminal changed size: fit and encode again.
    pub fn reset(&mut self) {
        self.fitted = None;
        self.shown = 0;
    }

    /// Fits the picture to `pane`, telling the decoder the size to scale to; true when the
    /// fit changed (the next frame must be drawn).
    pub fn fit(&mut self, screen: &Screen, pane: Rect) -> bool {
        let Some(video) = screen.video_size() else { return false };
        if pane.is_empty() {
            return false;
        }
        let fit = self.picture.fit(pane, video);
        if self.fitted == Some(fit) {
            return false;
        }
        screen.set_target(fit.0);
        self.fitted = Some(fit);
        self.shown = 0;
        true
    }

    /// A frame newer than the one encoded is waiting.
    pub fn pending(&self, screen: &Screen) -> bool {
        self.fitted.is_some() && screen.frame_number() != self.shown
    }

    /// Encodes the newest frame (frames that came meanwhile are dropped, never the clock).
    pub fn encode_newest(&mut self, screen: &Screen) {
        let Some((_, cells)) = self.fitted else { return };
        let (n, frame) = screen.frame();
        if n != self.shown
            && let Some(frame) = frame
            && frame.width > 0
        {
            self.encoded = self.picture.encode(&frame, cells).map(|p| (p, cells));
            self.shown = n;
        }
    }

    /// The encoded picture, once a frame came.
    pub fn encoded(&self) -> Option<&Encoded> {
        self.encoded.as_ref()
    }
}

/// Draws `encoded` into `pane`, or `waiting` centred while there is none. With an overlay
/// up, a kitty/sixel/iTerm2 picture is left out: the terminal paints those over any cell, so
/// the overlay would vanish under the next frame. Pure.
pub fn render(f: &mut Frame, pane: Rect, encoded: Option<&Encoded>, waiting: &str, palette256: bool, overlay: bool) {
    match encoded {
        Some((p, _)) if overlay && !matches!(p, Protocol::Halfblocks(_)) => {}
        Some((p, cells)) => {
            let cells = cells.intersection(pane);
            f.render_widget(Image::new(p), cells);
            // Only half-blocks carry picture colours in cells; kitty keeps its image id in the
            // foreground colour, which must stay as it is.
            if palette256 && matches!(p, Protocol::Halfblocks(_)) {
                palette::quantize(f.buffer_mut(), cells);
            }
        }
        None => {
            let text = Paragraph::new(waiting).style(Style::default().fg(Color::DarkGray)).centered();
            f.render_widget(text, Rect { y: pane.y + pane.height / 2, height: 1.min(pane.height), ..pane });
        }
    }
}
