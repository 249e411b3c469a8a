//! Terminal graphics: what the terminal draws (`caps`, asked by `probe`), frames as sixel or
//! kitty escape sequences (`sixel`, `kitty`) drawn as a ratatui widget (`escape`), and how
//! often and how large pictures go out (`pace`).

pub mod caps;
pub mod escape;
pub mod kitty;
pub mod pace;
pub mod probe;
pub mod sixel;
