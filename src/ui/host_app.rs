//! The host's dashboard loop: folds engine events into a [`RoomModel`], turns keys into room
//! commands through the key table, and redraws at most ten times a second. Blocking: it runs
//! on its own thread and talks to the engine only through the two channels.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ratatui::layout::Rect;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use super::host_model::RoomModel;
use super::host_view;
use super::keys;
use super::picture_pane::PicturePane;
use super::term;
use super::view_state::{Input, ViewState};
use crate::core::api::{Command, Event};
use crate::player::graphics::pace::{self, Pace};
use crate::player::picture::{Graphics, Picture};
use crate::player::screen::Screen;

/// Redraw at most this often (the UI-cost budget is measured at 10 fps).
const FRAME: Duration = Duration::from_millis(100);

/// A participant's picture shown inside the dashboard (the demo's).
pub struct Inset {
    /// Where the participant engine publishes frames.
    pub screen: Arc<Screen>,
    /// How to draw them.
    pub graphics: Graphics,
}

/// Runs the dashboard until the user quits or the engine's event stream ends. `opened` are
/// events the engine sent before the view started (the demo's `room`).
pub fn run(opened: Vec<Event>, mut events: UnboundedReceiver<Event>, commands: UnboundedSender<Command>, inset: Option<Inset>) -> io::Result<()> {
    // Ask the terminal what it can draw before taking it over.
    // The dashboard redraws at most every FRAME: so many pictures at most.
    let pace = || Pace::new(pace::MAX_FPS.min((1000 / FRAME.as_millis()) as u32), 0);
    let mut picture = inset.map(|i| (i.screen, PicturePane::new(Picture::new(i.graphics), pace())));
    let (mut terminal, count, _guard) = term::enter()?;
    let mut model = RoomModel::default();
    for ev in &opened {
        model.apply(ev, Instant::now());
    }
    let mut view = ViewState::for_terminal();
    // Asking the terminal its size costs a syscall: once, then from resize events.
    let mut size = terminal.size().map(|s| Rect::new(0, 0, s.width, s.height))?;
    let mut last_draw: Option<Instant> = None;
    let mut dirty = true;
    let result = loop {
        let now = Instant::now();
        match drain(&mut events, &mut model, now) {
            Ok(changed) => dirty |= changed,
            Err(()) => break Ok(()),
        }
        // The keys for letting people in show while someone knocks.
        view.keys = keys::Shown { host: true, knocking: model.oldest_knocking().is_some() };
        match view.poll_input(&model.link, now, Duration::from_millis(20))? {
            Input::Nothing => {}
            Input::Quit => break Ok(()),
            Input::Room(a) => {
                room_key(a, &mut view, &model, &commands, now);
                dirty = true;
            }
            Input::Changed => dirty = true,
            Input::Resized(r) => {
                dirty = true;
                size = r;
                if let Some((_, pane)) = &mut picture {
                    pane.reset();
                }
            }
        }
        dirty |= view.expire(now);
        if let Some((screen, pane)) = &mut picture {
            dirty |= pane.fit(screen, host_view::video_area(size, &model, view.log));
            dirty |= pane.step(screen, now);
        }
        // The playback bar moves on its own while playing: a redraw a second keeps it honest.
        let due = last_draw.is_none_or(|t| now.duration_since(t) >= if dirty { FRAME } else { Duration::from_secs(1) });
        if due {
            let video = picture.as_ref().map(|(_, pane)| pane.encoded());
            let mut shown = false;
            terminal.draw(|f| shown = host_view::draw_with_video(f, &model, &view, now, video))?;
            last_draw = Some(now);
            if let Some((_, pane)) = &mut picture {
                pane.drawn(now, count.load(std::sync::atomic::Ordering::Relaxed), shown, terminal.backend_mut())?;
            }
            dirty = false;
        }
    };
    if let Some(bye) = picture.as_ref().and_then(|(_, pane)| pane.goodbye()) {
        use std::io::Write;
        let out = terminal.backend_mut();
        let _ = out.write_all(bye.as_bytes()).and_then(|_| out.flush());
    }
    // Whatever ended the loop, the engine stops too.
    let _ = commands.send(Command::Quit);
    result
}

/// What a room key does on the host's dashboard.
fn room_key(a: keys::Action, view: &mut ViewState, model: &RoomModel, commands: &UnboundedSender<Command>, now: Instant) {
    if let Some(command) = super::moderation::on_key(a, view, model, now) {
        if let Some(c) = command {
            let _ = commands.send(c);
        }
        return;
    }
    match a {
        keys::Action::CycleQuality => view.flash("each participant picks its own quality (v in syncy join)".into(), now),
        a => {
            if let Some(c) = keys::command_for(a, model.playing, model.file.duration_ms) {
                let _ = commands.send(c);
            }
        }
    }
}

/// Folds every pending event; Err when the engine has gone.
fn drain(events: &mut UnboundedReceiver<Event>, model: &mut RoomModel, now: Instant) -> Result<bool, ()> {
    let mut changed = false;
    loop {
        match events.try_recv() {
            Ok(ev) => {
                tracing::debug!(?ev, "engine event");
                model.apply(&ev, now);
                changed = true;
            }
            Err(TryRecvError::Empty) => return Ok(changed),
            Err(TryRecvError::Disconnected) => return Err(()),
        }
    }
}
