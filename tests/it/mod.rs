mod harness;
mod mpv;
mod playback;
mod quality;
mod streaming;
mod trust;
mod tmux;
mod server;
