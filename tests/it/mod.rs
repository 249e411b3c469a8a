mod harness;
mod mpv;
mod playback;
mod quality;
mod streaming;
mod tmux;
mod server;
