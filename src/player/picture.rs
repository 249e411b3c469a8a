//! Frames into terminal graphics: which protocol the terminal really draws (asked, see
//! `graphics::caps`), what pixel size to ask the decoder for, and the drawing of a frame
//! (half-blocks and kitty placeholders through `ratatui-image`, sixel and kitty placed
//! directly as one escape sequence).

use image::{DynamicImage, RgbImage};
use ratatui::layout::{Rect, Size};
use ratatui_image::protocol::Protocol;
use ratatui_image::protocol::halfblocks::Halfblocks;
use ratatui_image::protocol::kitty::Kitty;

use super::graphics::caps::{self, Place, Wanted};
use super::graphics::escape::Escape;
use super::graphics::{kitty, probe, sixel};
use crate::media::decode::VideoFrame;

pub use super::graphics::caps::Protocol as Kind;

/// The graphics protocol to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Graphics {
    /// Decide from the terminal's answers.
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

/// A frame ready to draw.
#[derive(Clone)]
pub enum Drawing {
    /// Drawn in cells by ratatui-image (half-blocks, kitty with Unicode placeholders).
    Cells(Protocol),
    /// One escape sequence the terminal draws from (sixel, kitty placed directly).
    Escape(Escape),
}

impl Drawing {
    /// Whether the terminal paints it over cells (an overlay would vanish under it).
    pub fn is_graphic(&self) -> bool {
        !matches!(self, Drawing::Cells(Protocol::Halfblocks(_)))
    }
}

/// The most pixels a picture is drawn with (4 MP: 2560×1600): a terminal's answers, honest
/// or not, never make a frame larger.
const MAX_PIXELS: f64 = 4_194_304.0;

/// Turns frames into drawings for one terminal.
#[derive(Debug, Clone, Copy)]
pub struct Picture {
    kind: Kind,
    /// One cell, pixels (half-blocks: one pixel wide, two tall).
    cell: (u32, u32),
}

impl Picture {
    /// Picks the protocol. Call before the TUI takes over the terminal: `Auto` (or a named
    /// protocol) asks the terminal, where its answer would be its own (`caps::choose`).
    pub fn new(graphics: Graphics) -> Picture {
        let place = Place::from_env(|k| std::env::var(k).ok());
        let wanted = match graphics {
            Graphics::Halfblocks | Graphics::StatusOnly => return Picture::with(Kind::Halfblocks, (1, 2)),
            Graphics::Auto => Wanted::Best,
            Graphics::Kitty => Wanted::Kitty,
            Graphics::Sixel => Wanted::Sixel,
        };
        let replies = match probe::worthwhile(place) {
            true => probe::ask(probe::TIMEOUT).unwrap_or_else(|e| {
                tracing::info!("cannot ask the terminal what it draws ({e})");
                Default::default()
            }),
            false => Default::default(),
        };
        let kind = caps::choose(&replies, place, wanted);
        let size = crossterm::terminal::size().unwrap_or((80, 24));
        let cell = caps::cell_pixels(&replies, size, probe::window_pixels());
        tracing::info!("picture: {kind:?}, cells of {}×{} px ({place:?})", cell.0, cell.1);
        Picture::with(kind, cell)
    }

    /// Draws with `kind`, cells of `cell` pixels (half-blocks are always 1×2).
    pub fn with(kind: Kind, cell: (u32, u32)) -> Picture {
        let cell = if kind == Kind::Halfblocks { (1, 2) } else { (cell.0.max(1), cell.1.max(1)) };
        Picture { kind, cell }
    }

    /// The protocol in use.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The pixel size to decode to so a `video` fits `area` with its aspect ratio (even
    /// numbers, as the scaler likes) and the terminal's largest image, at `scale` of that
    /// (a picture made smaller to fit a byte budget), and the cells it covers.
    pub fn fit(&self, area: Rect, video: (u32, u32), scale: f64) -> ((u32, u32), Rect) {
        let (fw, fh) = (self.cell.0 as f64, self.cell.1 as f64);
        let (mut aw, mut ah) = (area.width as f64 * fw, area.height as f64 * fh);
        if let Kind::Sixel { max, .. } = self.kind {
            // A sixel image past the terminal's largest is not drawn at all.
            (aw, ah) = (aw.min(max.0 as f64), ah.min(max.1 as f64));
        }
        let (vw, vh) = (video.0.max(1) as f64, video.1.max(1) as f64);
        let mut fill = (aw / vw).min(ah / vh).min((MAX_PIXELS / (vw * vh)).sqrt());
        if let Kind::Kitty { .. } = self.kind {
            // Kitty scales the image into its cells: more pixels than the video has are waste.
            fill = fill.min(1.0);
        }
        let even = |x: f64| ((x as u32) & !1).max(2);
        let (pw, ph) = (even(vw * fill), even(vh * fill));
        let cols = ((pw as f64 / fw).ceil() as u16).min(area.width).max(1);
        let rows = ((ph as f64 / fh).ceil() as u16).min(area.height).max(1);
        // An empty area (a 0×0 terminal) still gets a 1×1 answer, placed at its corner.
        let x = area.x + area.width.saturating_sub(cols) / 2;
        let y = area.y + area.height.saturating_sub(rows) / 2;
        let scale = if self.kind == Kind::Halfblocks { 1.0 } else { scale.clamp(0.1, 1.0) };
        let scaled = (even(pw as f64 * scale), even(ph as f64 * scale));
        ((scaled.0.min(pw), scaled.1.min(ph)), Rect::new(x, y, cols, rows))
    }

    /// The drawing of a frame in `cells`; kitty images go under `kitty_id` (one of
    /// `kitty::IDS`: the caller alternates them, so the frame on screen stays until the next
    /// is placed).
    pub fn encode(&self, frame: &VideoFrame, cells: Rect, kitty_id: u32) -> Option<Drawing> {
        let (px, size) = ((frame.width, frame.height), (cells.width, cells.height));
        match self.kind {
            Kind::Halfblocks => Halfblocks::new(image(frame)?, Size::new(size.0, size.1)).ok().map(|p| Drawing::Cells(Protocol::Halfblocks(p))),
            Kind::Sixel { colours, .. } => {
                // A frame made smaller (`fit`'s scale) covers fewer cells.
                let used = (px.0.div_ceil(self.cell.0).min(size.0 as u32) as u16, px.1.div_ceil(self.cell.1).min(size.1 as u32) as u16);
                sixel::encode(&frame.rgb, px, used, colours).map(|data| Drawing::Escape(Escape { data, cells: used, kitty_id: None }))
            }
            Kind::Kitty { placeholders: true } => {
                Kitty::new(image(frame)?, Size::new(size.0, size.1), kitty_id, false, false).ok().map(|k| Drawing::Cells(Protocol::Kitty(k)))
            }
            Kind::Kitty { placeholders: false } => {
                kitty::place(&frame.rgb, px, size, kitty_id).map(|data| Drawing::Escape(Escape { data, cells: size, kitty_id: Some(kitty_id) }))
            }
        }
    }

    /// Whether images are placed over the text and stay until deleted (kitty placed
    /// directly): the view then deletes what it no longer draws.
    pub fn placed(&self) -> bool {
        self.kind == Kind::Kitty { placeholders: false }
    }
}

fn image(frame: &VideoFrame) -> Option<DynamicImage> {
    RgbImage::from_raw(frame.width, frame.height, frame.rgb.clone()).map(DynamicImage::ImageRgb8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_keeping_the_aspect_ratio_in_half_blocks() {
        let p = Picture::new(Graphics::Halfblocks);
        assert_eq!(p.kind(), Kind::Halfblocks);
        // 16:9 video into 160x45 cells = 160x90 half-block pixels: exactly fits.
        let ((w, h), cells) = p.fit(Rect::new(0, 0, 160, 45), (1280, 720), 1.0);
        assert_eq!((w, h), (160, 90));
        assert_eq!(cells, Rect::new(0, 0, 160, 45));
        // In 80x24 (minus nothing): height-bound 48 px → 84 px wide would not fit; width-bound.
        let ((w, h), cells) = p.fit(Rect::new(0, 0, 80, 24), (1280, 720), 0.5);
        assert_eq!((w, h), (80, 44));
        assert_eq!((cells.width, cells.height), (80, 22));
        assert_eq!(cells.y, 1, "centred vertically");
        // A 0×0 terminal (some exec'd ptys report that): no underflow, a 1×1 answer.
        let (_, cells) = p.fit(Rect::new(3, 4, 0, 0), (1280, 720), 1.0);
        assert_eq!(cells, Rect::new(3, 4, 1, 1));
    }

    fn frame(w: u32, h: u32) -> VideoFrame {
        VideoFrame { pts_us: 0, width: w, height: h, rgb: vec![128; (w * h * 3) as usize] }
    }

    #[test]
    fn a_sixel_picture_stays_within_the_terminals_largest_image() {
        // xterm at 150×48 with 8×16 cells: 1200×768 px of room, 1000×1000 at most.
        let p = Picture::with(Kind::Sixel { max: (1000, 1000), colours: 256 }, (8, 16));
        let ((w, h), cells) = p.fit(Rect::new(0, 0, 150, 48), (1280, 720), 1.0);
        assert!(w <= 1000 && h <= 1000, "{w}×{h}");
        assert_eq!((w, h), (1000, 562));
        assert_eq!((cells.width, cells.height), (125, 36));
        // Made smaller for a byte budget: fewer pixels, the same place.
        let ((w2, h2), cells2) = p.fit(Rect::new(0, 0, 150, 48), (1280, 720), 0.5);
        assert_eq!(((w2, h2), cells2), ((500, 280), cells));
        // Half-blocks take no scale: a cell is a cell.
        let hb = Picture::with(Kind::Halfblocks, (9, 9));
        assert_eq!(hb.fit(Rect::new(0, 0, 80, 24), (1280, 720), 0.25).0, (80, 44));
    }

    #[test]
    fn a_smaller_sixel_frame_covers_fewer_cells() {
        let p = Picture::with(Kind::Sixel { max: (1000, 1000), colours: 16 }, (8, 16));
        let Some(Drawing::Escape(e)) = p.encode(&frame(40, 32), Rect::new(0, 0, 10, 4), kitty::IDS[0]) else { panic!("an escape") };
        assert_eq!((e.cells, e.kitty_id), ((5, 2), None));
        assert!(!p.placed());
    }

    #[test]
    fn kitty_frames_go_under_the_id_given_placed_directly_or_with_placeholders() {
        let p = Picture::with(Kind::Kitty { placeholders: false }, (8, 16));
        assert!(p.placed());
        let cells = Rect::new(0, 0, 4, 2);
        let [_, b] = kitty::IDS;
        let Some(Drawing::Escape(e)) = p.encode(&frame(32, 32), cells, b) else { panic!("placed directly") };
        assert!(e.data.contains(&format!("i={b},")) && !e.data.contains("a=d"), "deleting is the view's, after the draw");
        assert_eq!((e.kitty_id, e.cells), (Some(b), (4, 2)));
        // With placeholders, ratatui-image draws it in cells.
        let p = Picture::with(Kind::Kitty { placeholders: true }, (8, 16));
        assert!(matches!(p.encode(&frame(32, 32), cells, b), Some(Drawing::Cells(Protocol::Kitty(_)))));
        assert!(p.encode(&frame(32, 32), cells, b).unwrap().is_graphic() && !p.placed());
    }

    #[test]
    fn no_answer_makes_a_picture_larger_than_4_megapixels_nor_kitty_larger_than_the_video() {
        // A terminal claiming huge cells and a huge sixel limit.
        let p = Picture::with(Kind::Sixel { max: (u32::MAX, u32::MAX), colours: 256 }, (256, 512));
        let ((w, h), _) = p.fit(Rect::new(0, 0, 200, 60), (1280, 720), 1.0);
        assert!((w as u64 * h as u64) <= 4_194_304, "{w}×{h}");
        let p = Picture::with(Kind::Kitty { placeholders: false }, (32, 64));
        assert_eq!(p.fit(Rect::new(0, 0, 200, 60), (640, 360), 1.0).0, (640, 360));
    }
}
