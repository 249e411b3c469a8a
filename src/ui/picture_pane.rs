//! A participant's picture inside a view: keeps the decoder scaling to the pane, encodes only
//! the newest frame (frames that came meanwhile are dropped, never the clock), and draws it.

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

    /// Takes the newest frame for `pane` (telling the decoder the size to scale to); true when
    /// there is something new to draw.
    pub fn update(&mut self, screen: &Screen, pane: Rect) -> bool {
        let Some(video) = screen.video_size() else { return false };
        let mut changed = false;
        let fit = self.picture.fit(pane, video);
        if self.fitted != Some(fit) {
            screen.set_target(fit.0);
            self.fitted = Some(fit);
            self.shown = 0;
            changed = true;
        }
        let (n, frame) = screen.frame();
        if n != self.shown
            && let Some(frame) = frame
            && frame.width > 0
        {
            self.encoded = self.picture.encode(&frame, fit.1).map(|p| (p, fit.1));
            self.shown = n;
            changed = true;
        }
        changed
    }

    /// The encoded picture, once a frame came.
    pub fn encoded(&self) -> Option<&Encoded> {
        self.encoded.as_ref()
    }
}

/// Draws `encoded` into `pane`, or `waiting` centred while there is none. Pure.
pub fn render(f: &mut Frame, pane: Rect, encoded: Option<&Encoded>, waiting: &str, palette256: bool) {
    match encoded {
        Some((p, cells)) => {
            let cells = cells.intersection(pane);
            f.render_widget(Image::new(p), cells);
            if palette256 {
                palette::quantize(f.buffer_mut(), cells);
            }
        }
        None => {
            let text = Paragraph::new(waiting).style(Style::default().fg(Color::DarkGray)).centered();
            f.render_widget(text, Rect { y: pane.y + pane.height / 2, height: 1.min(pane.height), ..pane });
        }
    }
}
