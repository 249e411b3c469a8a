//! Syncy: a peer-to-peer watch party for the terminal.
//!
//! `protocol` holds wire types, `core` the sans-IO state machines, and the remaining modules are
//! the edges (signaling server, WebRTC links, ffmpeg, engines, headless output).

pub mod core;
pub mod media;
pub mod net;
pub mod participant;
pub mod playback;
pub mod player;
pub mod ui;
pub mod protocol;
pub mod server;
pub mod timer;
pub mod transcoders;
pub mod units;
pub mod headless;
pub mod bench;
pub mod bench_playback;
pub mod bench_quality;
pub mod bench_soak;
pub mod bench_ui;
pub mod cli;
pub mod demo;
pub mod plain;
pub mod host;
pub mod levels;
pub mod save;
