//! The one key table: every key the views understand, with its help text. Footers and help
//! are generated from it; nothing else matches on key codes.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::core::api::Command;

/// What a key asks for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Action {
    /// Play if paused, pause if playing (for the whole room).
    TogglePlay,
    /// Seek by seconds (signed).
    SeekBy(f64),
    /// Jump to a fraction of the duration (0.0–0.9).
    SeekFraction(f64),
    /// Copy the join link to the clipboard (OSC 52: works over SSH and in tmux).
    CopyLink,
    /// The participant's next quality choice (auto → high → medium → low → auto).
    CycleQuality,
    /// Host under `--approve`: let in who has waited longest.
    LetIn,
    /// Host under `--approve`: turn away who has waited longest.
    TurnAway,
    /// Host: select the next participant in the table (for kick and ban).
    SelectNext,
    /// Host: send the selected participant away.
    Kick,
    /// Host: ban the selected participant's key for the room's life (pressed twice).
    Ban,
    /// Show or hide the log pane.
    ToggleLog,
    /// Show or hide the key help.
    ToggleHelp,
    /// Leave.
    Quit,
}

/// One binding.
#[derive(Debug, Clone, Copy)]
pub struct Binding {
    /// The key.
    pub code: KeyCode,
    /// Modifiers that must be held (exactly).
    pub mods: KeyModifiers,
    /// What it does.
    pub action: Action,
    /// Key as shown in the footer.
    pub label: &'static str,
    /// What it does, for the footer and help.
    pub help: &'static str,
    /// Where it is shown.
    pub scope: Scope,
}

/// Which views show a binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every view.
    All,
    /// The host's, in the footer and help, while someone knocks.
    Knocking,
    /// The host's, in the help only (the footer has no room).
    Host,
}

const fn key(code: KeyCode, action: Action, label: &'static str, help: &'static str) -> Binding {
    Binding { code, mods: KeyModifiers::NONE, action, label, help, scope: Scope::All }
}

const fn knock_key(code: KeyCode, action: Action, label: &'static str, help: &'static str) -> Binding {
    Binding { code, mods: KeyModifiers::NONE, action, label, help, scope: Scope::Knocking }
}

const fn host_key(code: KeyCode, action: Action, label: &'static str, help: &'static str) -> Binding {
    Binding { code, mods: KeyModifiers::NONE, action, label, help, scope: Scope::Host }
}

/// Every binding, in footer order. Digits 0–9 jump to 0–90%.
pub const KEYS: &[Binding] = &[
    key(KeyCode::Char(' '), Action::TogglePlay, "space", "play/pause"),
    key(KeyCode::Left, Action::SeekBy(-10.0), "←/→", "±10 s"),
    key(KeyCode::Right, Action::SeekBy(10.0), "", ""),
    key(KeyCode::Down, Action::SeekBy(-60.0), "↓/↑", "±60 s"),
    key(KeyCode::Up, Action::SeekBy(60.0), "", ""),
    key(KeyCode::Char('y'), Action::CopyLink, "y", "copy link"),
    key(KeyCode::Char('v'), Action::CycleQuality, "v", "quality"),
    knock_key(KeyCode::Char('a'), Action::LetIn, "a/d", "let in/turn away"),
    knock_key(KeyCode::Char('d'), Action::TurnAway, "", ""),
    host_key(KeyCode::Tab, Action::SelectNext, "tab", "select a participant"),
    host_key(KeyCode::Char('k'), Action::Kick, "k", "send them away"),
    host_key(KeyCode::Char('b'), Action::Ban, "b b", "ban them for the room"),
    key(KeyCode::Char('l'), Action::ToggleLog, "l", "log"),
    key(KeyCode::Char('?'), Action::ToggleHelp, "?", "help"),
    key(KeyCode::Char('q'), Action::Quit, "q", "quit"),
    Binding { code: KeyCode::Char('c'), mods: KeyModifiers::CONTROL, action: Action::Quit, label: "", help: "", scope: Scope::All },
];

/// The action for a key press, if any.
pub fn action_for(ev: &KeyEvent) -> Option<Action> {
    if ev.kind == KeyEventKind::Release {
        return None;
    }
    if let KeyCode::Char(c @ '0'..='9') = ev.code
        && ev.modifiers.difference(KeyModifiers::SHIFT).is_empty()
    {
        return Some(Action::SeekFraction((c as u8 - b'0') as f64 / 10.0));
    }
    // Shift may come with some keys from some terminals; compare without it.
    let mods = ev.modifiers.difference(KeyModifiers::SHIFT);
    KEYS.iter().find(|b| b.code == ev.code && b.mods == mods).map(|b| b.action)
}

/// The room command a key action asks for, given whether the room plays and how long the
/// media is (digits need the duration). Keys that only change the view give none.
pub fn command_for(action: Action, playing: bool, duration_ms: Option<u64>) -> Option<Command> {
    match action {
        Action::TogglePlay => Some(if playing { Command::Pause } else { Command::Play }),
        Action::SeekBy(s) => Some(Command::SeekBy(s)),
        Action::SeekFraction(f) => duration_ms.map(|d| Command::SeekTo(d as f64 / 1000.0 * f)),
        Action::Quit => Some(Command::Quit),
        // The participant's own choice, not the room's: see `next_quality`.
        Action::CopyLink
        | Action::CycleQuality
        | Action::LetIn
        | Action::TurnAway
        | Action::SelectNext
        | Action::Kick
        | Action::Ban
        | Action::ToggleLog
        | Action::ToggleHelp => None,
    }
}

/// The quality choice after `choice` (`auto` or a level) among the room's `levels`: auto,
/// then each offered level best first, then auto again.
pub fn next_quality(choice: &str, levels: &[String]) -> String {
    let order: Vec<&str> = std::iter::once("auto").chain(["high", "medium", "low"].into_iter().filter(|l| levels.iter().any(|o| o == l))).collect();
    let at = order.iter().position(|c| *c == choice).unwrap_or(0);
    order[(at + 1) % order.len()].to_string()
}

/// What a view shows keys for: whose view, and whether someone knocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Shown {
    /// The host's dashboard.
    pub host: bool,
    /// Someone waits to be let in.
    pub knocking: bool,
}

/// The bindings a view shows (`help`: in the help overlay, which has room for all).
fn shown(v: Shown, help: bool) -> impl Iterator<Item = &'static Binding> {
    KEYS.iter().filter(move |b| {
        !b.label.is_empty()
            && match b.scope {
                Scope::All => true,
                Scope::Knocking => v.knocking,
                Scope::Host => v.host && help,
            }
    })
}

/// Footer entries in order: "space play/pause", …, "? help", "q quit".
fn entries(v: Shown) -> Vec<String> {
    let mut parts: Vec<String> = shown(v, false).map(|b| format!("{} {}", b.label, b.help)).collect();
    // The digits are one entry, after the arrows.
    let after_arrows = shown(v, false).position(|b| b.action == Action::CopyLink).unwrap_or(parts.len());
    parts.insert(after_arrows, "0-9 jump".into());
    parts
}

/// The footer line for `width` columns: as many entries as fit, "? help" and "q quit" always.
pub fn footer(width: u16, v: Shown) -> String {
    let parts = entries(v);
    let (head, tail) = parts.split_at(parts.len() - 2);
    let mut chosen: Vec<&str> = tail.iter().map(String::as_str).collect();
    let len = |v: &[&str]| v.iter().map(|p| p.chars().count()).sum::<usize>() + 3 * v.len().saturating_sub(1);
    for (i, p) in head.iter().enumerate() {
        let mut trial = chosen.clone();
        trial.insert(i, p);
        if len(&trial) > width as usize {
            break;
        }
        chosen = trial;
    }
    chosen.join(" · ")
}

/// The help overlay's lines: key and what it does, one per line.
pub fn help_lines(v: Shown) -> Vec<(String, &'static str)> {
    let mut lines: Vec<(String, &'static str)> = shown(v, true).map(|b| (b.label.to_string(), b.help)).collect();
    let at = lines.iter().position(|(k, _)| k == "y").unwrap_or(lines.len());
    lines.insert(at, ("0–9".into(), "jump to 0–90%"));
    lines.push(("Ctrl-C".into(), "quit, always"));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(code: KeyCode, mods: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, mods)
    }

    #[test]
    fn keys_map_to_actions() {
        assert_eq!(action_for(&press(KeyCode::Char(' '), KeyModifiers::NONE)), Some(Action::TogglePlay));
        assert_eq!(action_for(&press(KeyCode::Left, KeyModifiers::NONE)), Some(Action::SeekBy(-10.0)));
        assert_eq!(action_for(&press(KeyCode::Up, KeyModifiers::NONE)), Some(Action::SeekBy(60.0)));
        assert_eq!(action_for(&press(KeyCode::Char('c'), KeyModifiers::CONTROL)), Some(Action::Quit));
        assert_eq!(action_for(&press(KeyCode::Char('q'), KeyModifiers::NONE)), Some(Action::Quit));
        assert_eq!(action_for(&press(KeyCode::Char('5'), KeyModifiers::NONE)), Some(Action::SeekFraction(0.5)));
        assert_eq!(action_for(&press(KeyCode::Char('c'), KeyModifiers::NONE)), None);
        assert_eq!(action_for(&press(KeyCode::Char('q'), KeyModifiers::CONTROL)), None);
    }

    #[test]
    fn footer_comes_from_the_table_and_fits_the_width() {
        let (plain, knocking) = (Shown::default(), Shown { host: true, knocking: true });
        assert_eq!(footer(200, plain), "space play/pause · ←/→ ±10 s · ↓/↑ ±60 s · 0-9 jump · y copy link · v quality · l log · ? help · q quit");
        assert_eq!(
            footer(200, knocking),
            "space play/pause · ←/→ ±10 s · ↓/↑ ±60 s · 0-9 jump · y copy link · v quality · a/d let in/turn away · l log · ? help · q quit"
        );
        assert_eq!(footer(200, Shown { host: true, knocking: false }), footer(200, plain), "kick and ban are in the help only");
        let narrow = footer(80, plain);
        assert!(narrow.chars().count() <= 80, "{narrow}");
        assert!(narrow.starts_with("space play/pause") && narrow.ends_with("? help · q quit"), "{narrow}");
        assert_eq!(footer(10, knocking), "? help · q quit");
    }

    #[test]
    fn actions_become_room_commands() {
        assert_eq!(command_for(Action::TogglePlay, true, None), Some(Command::Pause));
        assert_eq!(command_for(Action::TogglePlay, false, None), Some(Command::Play));
        assert_eq!(command_for(Action::SeekFraction(0.5), false, Some(600_000)), Some(Command::SeekTo(300.0)));
        assert_eq!(command_for(Action::SeekFraction(0.5), false, None), None);
        assert_eq!(command_for(Action::SeekBy(-10.0), false, None), Some(Command::SeekBy(-10.0)));
        assert_eq!(command_for(Action::ToggleHelp, false, None), None);
    }

    #[test]
    fn the_quality_key_cycles_through_what_the_room_offers() {
        let all: Vec<String> = ["high", "medium", "low"].map(String::from).to_vec();
        let mut c = "auto".to_string();
        let mut seen = vec![];
        for _ in 0..4 {
            c = next_quality(&c, &all);
            seen.push(c.clone());
        }
        assert_eq!(seen, ["high", "medium", "low", "auto"]);
        assert_eq!(next_quality("auto", &["high".into()]), "high");
        assert_eq!(next_quality("high", &["high".into()]), "auto");
        assert_eq!(next_quality("medium", &["high".into()]), "high", "an unknown choice starts over");
        assert_eq!(command_for(Action::CycleQuality, true, None), None);
        assert_eq!(action_for(&press(KeyCode::Char('v'), KeyModifiers::NONE)), Some(Action::CycleQuality));
    }

    #[test]
    fn help_lists_every_key() {
        let keys: Vec<String> = help_lines(Shown::default()).into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["space", "←/→", "↓/↑", "0–9", "y", "v", "l", "?", "q", "Ctrl-C"]);
        let keys: Vec<String> = help_lines(Shown { host: true, knocking: true }).into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["space", "←/→", "↓/↑", "0–9", "y", "v", "a/d", "tab", "k", "b b", "l", "?", "q", "Ctrl-C"]);
        let keys: Vec<String> = help_lines(Shown { host: true, knocking: false }).into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["space", "←/→", "↓/↑", "0–9", "y", "v", "tab", "k", "b b", "l", "?", "q", "Ctrl-C"]);
        assert_eq!(action_for(&press(KeyCode::Tab, KeyModifiers::NONE)), Some(Action::SelectNext));
        assert_eq!(action_for(&press(KeyCode::Char('k'), KeyModifiers::NONE)), Some(Action::Kick));
        assert_eq!(action_for(&press(KeyCode::Char('b'), KeyModifiers::NONE)), Some(Action::Ban));
        assert_eq!(action_for(&press(KeyCode::Char('a'), KeyModifiers::NONE)), Some(Action::LetIn));
        assert_eq!(action_for(&press(KeyCode::Char('d'), KeyModifiers::NONE)), Some(Action::TurnAway));
        assert_eq!(action_for(&press(KeyCode::Char('y'), KeyModifiers::NONE)), Some(Action::CopyLink));
        assert_eq!(action_for(&press(KeyCode::Char('?'), KeyModifiers::SHIFT)), Some(Action::ToggleHelp));
    }
}
