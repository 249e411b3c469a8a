mod harness;
mod playback;
mod streaming;
mod tmux;
mod server;
