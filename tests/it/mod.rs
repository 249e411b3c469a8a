mod harness;
mod mpv;
mod playback;
mod streaming;
mod tmux;
mod server;
