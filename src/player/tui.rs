//! The participant's terminal loop: it runs on its own thread, draws [`Screen`] snapshots with
//! [`join_view`], encodes only the newest frame, and turns keys into room commands.
//! The terminal is restored on every exit path, panics included.

use std::io::{self, Stdout};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossterm::event::{self, Event as TermEvent};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::layout::Rect;
use ratatui_image::protocol::Protocol;
use tokio::sync::mpsc::UnboundedSender;

use super::picture::{Graphics, Picture};
use super::screen::{Screen, Status};
use crate::headless::Command;
use crate::ui::keys::{self, Action};
use crate::ui::view_state::ViewState;
use crate::ui::{join_view, term};

/// Runs the view until the user quits or the engine closes the screen. Blocking.
pub fn run(screen: Arc<Screen>, graphics: Graphics, commands: UnboundedSender<Command>) -> io::Result<()> {
    // Ask the terminal what it can draw before taking it over.
    let picture = Picture::new(graphics);
    let (mut terminal, _guard) = crate::ui::term::enter()?;
    let result = event_loop(&mut terminal, &screen, &picture, graphics != Graphics::StatusOnly, &commands);
    // Whatever happened, the engine must stop too.
    let _ = commands.send(Command::Quit);
    result
}

fn event_loop(terminal: &mut Terminal<CrosstermBackend<Stdout>>, screen: &Screen, picture: &Picture, show_picture: bool, commands: &UnboundedSender<Command>) -> io::Result<()> {
    let mut shown_frame = 0u64;
    let mut proto: Option<(Protocol, Rect)> = None;
    let mut last_target = None;
    let mut last_draw = Instant::now() - Duration::from_secs(1);
    let mut last_status = Status::default();
    let mut view = ViewState { palette256: !crate::ui::palette::truecolor_from_env(), ..ViewState::default() };
    let mut flash_until: Option<Instant> = None;
    loop {
        if screen.closed() {
            return Ok(());
        }
        let status = screen.status();
        let mut dirty = false;
        if event::poll(Duration::from_millis(10))? {
            match event::read()? {
                TermEvent::Key(k) => {
                    if let Some(action) = keys::action_for(&k) {
                        match action {
                            Action::Quit => return Ok(()),
                            Action::CopyLink => {
                                term::copy_to_clipboard(&status.link)?;
                                view.flash = Some("link copied to the clipboard (OSC 52)".into());
                                flash_until = Some(Instant::now() + Duration::from_secs(3));
                            }
                            Action::ToggleLog => view.log = !view.log,
                            Action::ToggleHelp => view.help = !view.help,
                            other => {
                                if let Some(c) = keys::command_for(other, status.room_playing, status.duration_ms) {
                                    let _ = commands.send(c);
                                }
                            }
                        }
                        dirty = true;
                    }
                }
                TermEvent::Resize(..) => {
                    last_target = None;
                    shown_frame = 0;
                }
                _ => {}
            }
        }
        if flash_until.is_some_and(|t| Instant::now() >= t) {
            view.flash = None;
            flash_until = None;
            dirty = true;
        }
        let size = terminal.size()?;
        let video_area = join_view::video_area(Rect::new(0, 0, size.width, size.height));
        if let Some(video) = screen.video_size().filter(|_| show_picture) {
            let (target, cells) = picture.fit(video_area, video);
            if last_target != Some(target) {
                screen.set_target(target);
                last_target = Some(target);
                dirty = true;
            }
            let (n, frame) = screen.frame();
            if n != shown_frame
                && let Some(frame) = frame
                && frame.width > 0
            {
                // Only the newest frame is encoded: frames that arrived meanwhile are dropped.
                proto = picture.encode(&frame, cells).map(|p| (p, cells));
                shown_frame = n;
                dirty = true;
            }
        }
        if dirty || status != last_status || last_draw.elapsed() >= Duration::from_millis(500) {
            terminal.draw(|f| join_view::draw(f, &status, proto.as_ref(), show_picture, &view))?;
            last_draw = Instant::now();
            last_status = status;
        }
    }
}
