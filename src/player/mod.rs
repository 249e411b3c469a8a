//! Showing the picture: the snapshot the engine publishes for the screen, turning frames into
//! terminal graphics (half-blocks, kitty, sixel, iTerm2), and the participant's terminal view.

pub mod audio;
pub mod http;
pub mod mpv;
pub mod picture;
pub mod screen;
pub mod tui;
