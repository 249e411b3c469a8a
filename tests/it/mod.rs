mod harness;
mod playback;
mod streaming;
mod server;
