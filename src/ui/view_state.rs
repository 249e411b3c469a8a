//! What a view toggles by itself (not engine state): overlays and a passing message, and the
//! keys that only touch those.

use std::io;
use std::time::{Duration, Instant};

use super::keys::Action;
use super::term;

/// How long "link copied" stays in the footer.
const FLASH: Duration = Duration::from_secs(3);

/// View-only state, shared by the host and participant views.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ViewState {
    /// The `?` overlay is up.
    pub help: bool,
    /// The log pane is shown.
    pub log: bool,
    /// A short message for the footer line ("link copied").
    pub flash: Option<String>,
    /// The terminal lacks 24-bit colour: the picture is drawn in the 256-colour palette.
    pub palette256: bool,
    /// When the passing message goes.
    pub flash_until: Option<Instant>,
    /// Which keys the footer and help show (the host's own; letting people in while someone
    /// knocks).
    pub keys: super::keys::Shown,
    /// The host's selected participant (Tab), whom `k` and `b` act on.
    pub selected: Option<u64>,
    /// `b` was pressed once for this participant, until then: a second `b` bans.
    pub ban_armed: Option<(u64, Instant)>,
}

/// What a key leaves for the caller once the view has taken its share.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KeyOutcome {
    /// The view handled it.
    Done,
    /// Leave.
    Quit,
    /// A room action (play, pause, seek) for the engine.
    Room(Action),
}

/// What the terminal said, once the view has taken its share.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Input {
    /// Nothing (or nothing the view cares about) within the wait.
    Nothing,
    /// A key the view handled: draw again.
    Changed,
    /// Leave.
    Quit,
    /// A room action for the engine.
    Room(Action),
    /// The terminal has this size now.
    Resized(ratatui::layout::Rect),
}

impl ViewState {
    /// Waits up to `wait` for a key or a resize and handles the view's own keys.
    pub fn poll_input(&mut self, link: &str, now: Instant, wait: Duration) -> io::Result<Input> {
        use crossterm::event::{self, Event as TermEvent};
        if !event::poll(wait)? {
            return Ok(Input::Nothing);
        }
        Ok(match event::read()? {
            TermEvent::Key(k) => match super::keys::action_for(&k) {
                Some(action) => match self.handle(action, link, now)? {
                    KeyOutcome::Quit => Input::Quit,
                    KeyOutcome::Room(a) => Input::Room(a),
                    KeyOutcome::Done => Input::Changed,
                },
                None => Input::Nothing,
            },
            TermEvent::Resize(w, h) => Input::Resized(ratatui::layout::Rect::new(0, 0, w, h)),
            _ => Input::Nothing,
        })
    }

    /// For this terminal: 256 colours unless it says it takes 24-bit colour.
    pub fn for_terminal() -> ViewState {
        ViewState { palette256: !super::palette::truecolor_from_env(), ..ViewState::default() }
    }

    /// Handles the view's own keys (copy link, log, help); returns what is left.
    pub fn handle(&mut self, action: Action, link: &str, now: Instant) -> io::Result<KeyOutcome> {
        match action {
            Action::Quit => return Ok(KeyOutcome::Quit),
            Action::CopyLink => {
                term::copy_to_clipboard(link)?;
                self.flash("link copied to the clipboard (OSC 52)".into(), now);
            }
            Action::ToggleLog => self.log = !self.log,
            Action::ToggleHelp => self.help = !self.help,
            room => return Ok(KeyOutcome::Room(room)),
        }
        Ok(KeyOutcome::Done)
    }

    /// Shows a passing message.
    pub fn flash(&mut self, text: String, now: Instant) {
        self.flash = Some(text);
        self.flash_until = Some(now + FLASH);
    }

    /// Drops the passing message once its time is up; true if it did.
    pub fn expire(&mut self, now: Instant) -> bool {
        if self.flash_until.is_some_and(|t| now >= t) {
            self.flash = None;
            self.flash_until = None;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_view_takes_its_keys_and_leaves_room_keys_and_quit() {
        let t = Instant::now();
        let mut v = ViewState::default();
        assert_eq!(v.handle(Action::ToggleHelp, "l", t).unwrap(), KeyOutcome::Done);
        assert!(v.help);
        assert_eq!(v.handle(Action::ToggleLog, "l", t).unwrap(), KeyOutcome::Done);
        assert!(v.log);
        assert_eq!(v.handle(Action::TogglePlay, "l", t).unwrap(), KeyOutcome::Room(Action::TogglePlay));
        assert_eq!(v.handle(Action::SeekBy(10.0), "l", t).unwrap(), KeyOutcome::Room(Action::SeekBy(10.0)));
        assert_eq!(v.handle(Action::Quit, "l", t).unwrap(), KeyOutcome::Quit);
    }

    #[test]
    fn the_passing_message_goes_after_its_time() {
        let t = Instant::now();
        let mut v = ViewState { flash: Some("copied".into()), flash_until: Some(t + FLASH), ..ViewState::default() };
        assert!(!v.expire(t + Duration::from_secs(1)));
        assert!(v.expire(t + FLASH));
        assert_eq!(v.flash, None);
        assert!(!v.expire(t + FLASH), "once");
    }
}
