//! A participant's picture inside a view: keeps the decoder scaling to the pane, has the
//! newest frame encoded on a thread of its own (a sixel or kitty frame takes milliseconds to
//! encode: the view keeps answering keys meanwhile), paced (`graphics::pace`: a frame rate
//! cap and a byte budget), and draws it. Frames that come while one is being encoded or
//! while the pace holds are dropped; the clock is not the view's and never waits.

use std::io::Write;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};
use std::thread::JoinHandle;
use std::time::Instant;

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::widgets::Paragraph;
use ratatui_image::Image;

use super::palette;
use crate::media::decode::VideoFrame;
use crate::player::graphics::kitty::{self, OnScreen};
use crate::player::graphics::pace::Pace;
use crate::player::picture::{Drawing, Kind, Picture};
use crate::player::screen::Screen;

/// The drawing and the cells it covers.
pub type Encoded = (Drawing, Rect);

/// A frame to encode: its number, the frame, the pixel size it should have, the cells, the
/// kitty image id it takes.
type Job = (u64, Arc<VideoFrame>, (u32, u32), Rect, u32);

/// The encoding thread.
struct Painter {
    jobs: Option<SyncSender<Job>>,
    done: Receiver<(u64, Option<Drawing>, Rect)>,
    thread: Option<JoinHandle<()>>,
}

impl Painter {
    fn start(picture: Picture) -> Painter {
        // One job at a time: the pane sends the next only once the last came back.
        let (jobs, rx) = std::sync::mpsc::sync_channel::<Job>(1);
        let (tx, done) = std::sync::mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name(super::term::PICTURE_THREAD.into())
            .spawn(move || {
                while let Ok((n, frame, px, cells, id)) = rx.recv() {
                    // A panic in an encoder is a frame not drawn, not a view gone (the panic
                    // hook would give the terminal back under the running view).
                    let drawing = std::panic::catch_unwind(|| picture.encode(&sized(frame, px), cells, id)).unwrap_or_else(|_| {
                        tracing::warn!("encoding a frame failed");
                        None
                    });
                    if tx.send((n, drawing, cells)).is_err() {
                        return;
                    }
                }
            })
            .map_err(|e| tracing::warn!("no picture thread: {e}"))
            .ok();
        Painter { jobs: Some(jobs), done, thread }
    }
}

impl Drop for Painter {
    fn drop(&mut self) {
        self.jobs = None;
        // Let a frame being encoded finish (milliseconds), so its thread is not left behind.
        while self.done.recv().is_ok() {}
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `frame` at `px`: as it is, or scaled there (a frame decoded before the view's size was
/// known, or before a resize, and shown while the room is paused, is not decoded again).
fn sized(frame: Arc<VideoFrame>, px: (u32, u32)) -> Arc<VideoFrame> {
    if (frame.width, frame.height) == px {
        return frame;
    }
    let Some(img) = image::RgbImage::from_raw(frame.width, frame.height, frame.rgb.clone()) else { return frame };
    let scaled = image::imageops::resize(&img, px.0, px.1, image::imageops::FilterType::Triangle);
    Arc::new(VideoFrame { pts_us: frame.pts_us, width: px.0, height: px.1, rgb: scaled.into_raw() })
}

/// Follows a [`Screen`]'s frames for one pane.
pub struct PicturePane {
    picture: Picture,
    painter: Painter,
    pace: Pace,
    encoded: Option<Encoded>,
    /// The frame last sent to be encoded, and whether it is still with the painter.
    shown: u64,
    busy: bool,
    /// A new drawing came and has not been drawn yet.
    fresh: bool,
    fitted: Option<((u32, u32), Rect)>,
    scale: f64,
    /// The kitty image placed on the screen (deleted when another is, or none is drawn).
    on_screen: OnScreen,
    /// The terminal's byte count after the last draw.
    written: u64,
    /// What went to the terminal since `since` (said in the log once a second): bytes, pictures.
    tally: (Instant, u64, u32),
}

impl PicturePane {
    /// A pane drawing with `picture`, paced by `pace`.
    pub fn new(picture: Picture, pace: Pace) -> PicturePane {
        let painter = Painter::start(picture);
        PicturePane {
            picture,
            painter,
            pace,
            encoded: None,
            shown: 0,
            busy: false,
            fresh: false,
            fitted: None,
            scale: 1.0,
            on_screen: OnScreen::default(),
            written: 0,
            tally: (Instant::now(), 0, 0),
        }
    }

    /// The terminal changed size: fit and encode again.
    pub fn reset(&mut self) {
        self.fitted = None;
        self.shown = 0;
        // Drawn at the old size, it would land on the new layout.
        self.encoded = None;
    }

    /// Fits the picture to `pane`, telling the decoder the size to scale to; true when the
    /// fit changed (the next frame must be drawn).
    pub fn fit(&mut self, screen: &Screen, pane: Rect) -> bool {
        let Some(video) = screen.video_size() else { return false };
        if pane.is_empty() {
            return false;
        }
        self.scale = self.pace.scale();
        let fit = self.picture.fit(pane, video, self.scale);
        if self.fitted == Some(fit) {
            return false;
        }
        screen.set_target(fit.0);
        // The old drawing belongs to the old place (the next frame, or the current one scaled,
        // follows at once).
        self.encoded = None;
        // Where the picture is, for whoever checks the screen (the terminal tests do).
        tracing::info!("picture at cells {},{} {}×{}, frames of {}×{} px", fit.1.x, fit.1.y, fit.1.width, fit.1.height, fit.0.0, fit.0.1);
        self.fitted = Some(fit);
        self.shown = 0;
        true
    }

    /// Moves the picture on: takes a drawing the painter finished, and hands it the newest
    /// frame when the pace allows. True when there is something new to draw.
    pub fn step(&mut self, screen: &Screen, now: Instant) -> bool {
        match self.painter.done.try_recv() {
            Ok((n, drawing, cells)) => {
                self.busy = false;
                // A drawing for a fit that is gone (a resize meanwhile) is not drawn.
                if let Some(d) = drawing.filter(|_| self.fitted.is_some_and(|(_, c)| c == cells) && n == self.shown) {
                    self.encoded = Some((d, cells));
                    self.fresh = true;
                }
            }
            Err(TryRecvError::Empty) => {}
            Err(TryRecvError::Disconnected) => self.busy = false,
        }
        let Some((px, cells)) = self.fitted else { return self.fresh };
        // Not while a drawing waits to be drawn: its bytes pay the pace first, and the next
        // frame's kitty id must be the one neither showing nor about to.
        if !self.busy && !self.fresh && screen.frame_number() != self.shown && self.pace.ready(now) {
            let (n, frame) = screen.frame();
            if let Some(frame) = frame.filter(|f| f.width > 0)
                && let Some(jobs) = &self.painter.jobs
                && jobs.try_send((n, frame, px, cells, self.on_screen.next_id())).is_ok()
            {
                self.busy = true;
                self.shown = n;
            }
        }
        self.fresh
    }

    /// The encoded picture, once a frame came.
    pub fn encoded(&self) -> Option<&Encoded> {
        self.encoded.as_ref()
    }

    /// After a draw: the terminal's byte count now (`Counted`), and whether the picture was
    /// in it. The bytes pay the pace (a new picture also starts its frame interval); a
    /// graphic left out is taken off the screen.
    pub fn drawn(&mut self, now: Instant, count: u64, shown: bool, out: &mut impl Write) -> std::io::Result<()> {
        let bytes = count.saturating_sub(self.written);
        self.written = count;
        let picture = std::mem::take(&mut self.fresh) && shown;
        match picture {
            true => self.pace.sent(now, bytes),
            false => self.pace.spent(now, bytes),
        }
        self.tally(now, bytes, picture);
        if !self.picture.placed() {
            return Ok(());
        }
        let placed = match &self.encoded {
            Some((Drawing::Escape(e), _)) if shown => e.kitty_id,
            _ => None,
        };
        if let Some(seq) = self.on_screen.drawn(placed) {
            out.write_all(seq.as_bytes())?;
            out.flush()?;
        }
        Ok(())
    }

    /// Says in the log, once a second, what went to the terminal (the byte bound is checked
    /// against it).
    fn tally(&mut self, now: Instant, bytes: u64, picture: bool) {
        let (since, total, pictures) = &mut self.tally;
        *total += bytes;
        *pictures += u32::from(picture);
        let secs = now.duration_since(*since).as_secs_f64();
        if secs >= 1.0 {
            tracing::info!("to the terminal: {total} B in {secs:.3} s, {pictures} pictures at scale {}", self.pace.scale());
            self.tally = (now, 0, 0);
        }
    }

    /// What leaves the terminal without our pictures (at exit).
    pub fn goodbye(&self) -> Option<String> {
        matches!(self.picture.kind(), Kind::Kitty { .. }).then(kitty::delete_all)
    }
}

/// Draws `encoded` into `pane`, or `waiting` centred while there is none; true when the
/// picture was drawn. With an overlay up, a kitty/sixel picture is left out: the terminal
/// paints those over any cell, so the overlay would vanish under the next frame. Pure.
pub fn render(f: &mut Frame, pane: Rect, encoded: Option<&Encoded>, waiting: &str, palette256: bool, overlay: bool) -> bool {
    match encoded {
        Some((d, _)) if overlay && d.is_graphic() => false,
        Some((Drawing::Escape(e), cells)) => {
            let area = cells.intersection(pane);
            f.render_widget(e, area);
            e.fits(area)
        }
        Some((Drawing::Cells(p), cells)) => {
            let cells = cells.intersection(pane);
            f.render_widget(Image::new(p), cells);
            // Only half-blocks carry picture colours in cells; kitty keeps its image id in the
            // foreground colour, which must stay as it is.
            if palette256 && !encoded.is_some_and(|(d, _)| d.is_graphic()) {
                palette::quantize(f.buffer_mut(), cells);
            }
            true
        }
        None => {
            let text = Paragraph::new(waiting).style(Style::default().fg(Color::DarkGray)).centered();
            f.render_widget(text, Rect { y: pane.y + pane.height / 2, height: 1.min(pane.height), ..pane });
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_of_another_size_is_scaled_to_the_fit_and_one_that_fits_is_kept() {
        let frame = Arc::new(VideoFrame { pts_us: 7, width: 4, height: 2, rgb: vec![200; 24] });
        assert!(Arc::ptr_eq(&sized(frame.clone(), (4, 2)), &frame));
        let big = sized(frame, (8, 4));
        assert_eq!((big.pts_us, big.width, big.height, big.rgb.len()), (7, 8, 4, 96));
        assert!(big.rgb.iter().all(|&v| v == 200));
    }
}
