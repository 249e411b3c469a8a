//! The one key table: every key the views understand, with its help text. Footers and help
//! are generated from it; nothing else matches on key codes.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

/// What a key asks for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Action {
    /// Play if paused, pause if playing (for the whole room).
    TogglePlay,
    /// Seek by seconds (signed).
    SeekBy(f64),
    /// Jump to a fraction of the duration (0.0–0.9).
    SeekFraction(f64),
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
}

const fn key(code: KeyCode, action: Action, label: &'static str, help: &'static str) -> Binding {
    Binding { code, mods: KeyModifiers::NONE, action, label, help }
}

/// Every binding, in footer order. Digits 0–9 jump to 0–90%.
pub const KEYS: &[Binding] = &[
    key(KeyCode::Char(' '), Action::TogglePlay, "space", "play/pause"),
    key(KeyCode::Left, Action::SeekBy(-10.0), "←/→", "±10 s"),
    key(KeyCode::Right, Action::SeekBy(10.0), "", ""),
    key(KeyCode::Down, Action::SeekBy(-60.0), "↓/↑", "±60 s"),
    key(KeyCode::Up, Action::SeekBy(60.0), "", ""),
    key(KeyCode::Char('q'), Action::Quit, "q", "quit"),
    Binding { code: KeyCode::Char('c'), mods: KeyModifiers::CONTROL, action: Action::Quit, label: "", help: "" },
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

/// The footer line: "space play/pause · ←/→ ±10 s · …".
pub fn footer() -> String {
    let mut parts: Vec<String> = KEYS.iter().filter(|b| !b.label.is_empty()).map(|b| format!("{} {}", b.label, b.help)).collect();
    parts.insert(parts.len() - 1, "0-9 jump".into());
    parts.join(" · ")
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
    fn footer_comes_from_the_table() {
        assert_eq!(footer(), "space play/pause · ←/→ ±10 s · ↓/↑ ±60 s · 0-9 jump · q quit");
    }
}
