//! The host's dashboard loop: folds engine events into a [`RoomModel`], turns keys into room
//! commands through the key table, and redraws at most ten times a second. Blocking: it runs
//! on its own thread and talks to the engine only through the two channels.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossterm::event::{self, Event as TermEvent};
use ratatui::layout::Rect;
use ratatui_image::protocol::Protocol;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use super::host_view::{self, ViewState};
use super::keys::{self, Action};
use super::room::RoomModel;
use super::term;
use crate::headless::{Command, Event};
use crate::player::picture::{Graphics, Picture};
use crate::player::screen::Screen;

/// Redraw at most this often (the UI-cost budget is measured at 10 fps).
const FRAME: Duration = Duration::from_millis(100);
/// How long "link copied" stays in the footer.
const FLASH: Duration = Duration::from_secs(3);

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
    let picture = inset.as_ref().map(|i| (i.screen.clone(), Picture::new(i.graphics)));
    let (mut terminal, _guard) = term::enter()?;
    let mut model = RoomModel::default();
    for ev in &opened {
        model.apply(ev, Instant::now());
    }
    let mut proto: Option<(Protocol, Rect)> = None;
    let (mut shown_frame, mut last_target) = (0u64, None);
    let mut view = ViewState { palette256: !super::palette::truecolor_from_env(), ..ViewState::default() };
    let mut flash_until: Option<Instant> = None;
    let mut last_draw: Option<Instant> = None;
    let mut dirty = true;
    let result = loop {
        let now = Instant::now();
        match drain(&mut events, &mut model, now) {
            Ok(changed) => dirty |= changed,
            Err(()) => break Ok(()),
        }
        if event::poll(Duration::from_millis(20))? {
            match event::read()? {
                TermEvent::Key(k) => {
                    if let Some(action) = keys::action_for(&k) {
                        match action {
                            Action::Quit => break Ok(()),
                            Action::CopyLink => {
                                term::copy_to_clipboard(&model.link)?;
                                view.flash = Some("link copied to the clipboard (OSC 52)".into());
                                flash_until = Some(now + FLASH);
                            }
                            Action::ToggleLog => view.log = !view.log,
                            Action::ToggleHelp => view.help = !view.help,
                            other => {
                                if let Some(c) = keys::command_for(other, model.playing, model.file.duration_ms) {
                                    let _ = commands.send(c);
                                }
                            }
                        }
                        dirty = true;
                    }
                }
                TermEvent::Resize(..) => {
                    dirty = true;
                    last_target = None;
                    shown_frame = 0;
                }
                _ => {}
            }
        }
        if flash_until.is_some_and(|t| now >= t) {
            view.flash = None;
            flash_until = None;
            dirty = true;
        }
        if let Some((screen, picture)) = &picture {
            let size = terminal.size()?;
            let pane = host_view::video_area(Rect::new(0, 0, size.width, size.height), model.peers.len(), view.log);
            if let Some(video) = screen.video_size() {
                let (target, cells) = picture.fit(pane, video);
                if last_target != Some((target, cells)) {
                    screen.set_target(target);
                    last_target = Some((target, cells));
                    shown_frame = 0;
                }
                let (n, frame) = screen.frame();
                if n != shown_frame
                    && let Some(frame) = frame
                    && frame.width > 0
                {
                    // Only the newest frame is encoded: frames that came meanwhile are dropped.
                    proto = picture.encode(&frame, cells).map(|p| (p, cells));
                    shown_frame = n;
                    dirty = true;
                }
            }
        }
        // The playback bar moves on its own while playing: a redraw a second keeps it honest.
        let due = last_draw.is_none_or(|t| now.duration_since(t) >= if dirty { FRAME } else { Duration::from_secs(1) });
        if due {
            let video = picture.as_ref().map(|_| proto.as_ref());
            terminal.draw(|f| host_view::draw_with_video(f, &model, &view, now, video))?;
            last_draw = Some(now);
            dirty = false;
        }
    };
    // Whatever ended the loop, the engine stops too.
    let _ = commands.send(Command::Quit);
    result
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
