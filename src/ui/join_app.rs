//! The participant's terminal loop: it runs on its own thread, draws [`Screen`] snapshots with
//! [`join_view`], encodes only the newest frame, and turns keys into room commands.
//! The terminal is restored on every exit path, panics included.

use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ratatui::layout::Rect;
use tokio::sync::mpsc::UnboundedSender;

use crate::core::api::Command;
use crate::player::graphics::pace::Pace;
use crate::player::picture::{Graphics, Picture};
use crate::player::screen::Screen;
use crate::ui::keys;
use crate::ui::picture_pane::PicturePane;
use crate::ui::view_state::{Input, ViewState};
use crate::ui::{join_view, term};

/// Runs the view until the user quits or the engine closes the screen, pictures paced by
/// `pace`. Blocking.
pub fn run(screen: Arc<Screen>, graphics: Graphics, pace: Pace, commands: UnboundedSender<Command>) -> io::Result<()> {
    // Ask the terminal what it can draw before taking it over.
    let mut pane = PicturePane::new(Picture::new(graphics), pace);
    let (mut terminal, count, _guard) = term::enter()?;
    let result = event_loop(&mut terminal, &count, &screen, &mut pane, graphics != Graphics::StatusOnly, &commands);
    if let Some(bye) = pane.goodbye() {
        let out = terminal.backend_mut();
        let _ = out.write_all(bye.as_bytes()).and_then(|_| out.flush());
    }
    // Whatever happened, the engine must stop too.
    let _ = commands.send(Command::Quit);
    result
}

/// What a room key does on the participant's view.
fn room_key(a: keys::Action, view: &mut ViewState, status: &crate::player::screen::Status, commands: &UnboundedSender<Command>, now: Instant) {
    if a == keys::Action::CycleQuality {
        let next = keys::next_quality(&status.now.quality_choice, &status.levels);
        view.flash(format!("quality: {next}"), now);
        let _ = commands.send(Command::Quality(next));
    } else if let Some(c) = keys::command_for(a, status.now.room_playing, status.duration_ms) {
        let _ = commands.send(c);
    }
}

fn event_loop(
    terminal: &mut term::Term,
    count: &AtomicU64,
    screen: &Screen,
    pane: &mut PicturePane,
    show_picture: bool,
    commands: &UnboundedSender<Command>,
) -> io::Result<()> {
    let mut last_draw = Instant::now() - Duration::from_secs(1);
    let mut status = screen.status();
    let mut seen_version = screen.version();
    let mut view = ViewState::for_terminal();
    // Asking the terminal its size costs a syscall: once, then from resize events.
    let mut size = terminal.size().map(|s| Rect::new(0, 0, s.width, s.height))?;
    loop {
        if screen.closed() {
            return Ok(());
        }
        let now = Instant::now();
        let mut dirty = false;
        // The status is copied only when the engine changed it.
        let version = screen.version();
        if version != seen_version {
            seen_version = version;
            status = screen.status();
            dirty = true;
        }
        match view.poll_input(&status.link, now, Duration::from_millis(10))? {
            Input::Nothing => {}
            Input::Quit => return Ok(()),
            Input::Room(a) => {
                room_key(a, &mut view, &status, commands, now);
                dirty = true;
            }
            Input::Changed => dirty = true,
            Input::Resized(r) => {
                size = r;
                pane.reset();
                dirty = true;
            }
        }
        dirty |= view.expire(now);
        if show_picture {
            dirty |= pane.fit(screen, join_view::video_area(size));
            dirty |= pane.step(screen, now);
        }
        if dirty || last_draw.elapsed() >= Duration::from_millis(500) {
            let mut shown = false;
            terminal.draw(|f| shown = join_view::draw(f, &status, pane.encoded(), show_picture, &view))?;
            last_draw = Instant::now();
            pane.drawn(last_draw, count.load(Ordering::Relaxed), shown, terminal.backend_mut())?;
        }
    }
}
