//! Playing what is decoded: playback over the decoders (the room clock, the presenter), sound,
//! mpv and its local Range server, the snapshot the engine publishes for the screen, and
//! frames turned into terminal graphics (half-blocks, kitty, sixel, iTerm2).

pub mod audio;
pub mod graphics;
pub mod mpv;
pub mod picture;
pub mod playback;
pub mod range_server;
pub mod screen;
