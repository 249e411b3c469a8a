//! Syncy: a peer-to-peer watch party for the terminal.
//!
//! `protocol` holds wire types, `core` the sans-IO state machines, and the remaining modules are
//! the edges (signaling server, WebRTC links, ffmpeg, engines, headless output).

pub mod bench;
pub mod bench_networks;
pub mod bench_playback;
pub mod bench_quality;
pub mod bench_soak;
pub mod bench_ui;
pub mod cli;
pub mod config;
/// The sans-IO core (its own crate, so the build keeps IO out of it).
pub use syncy_core as core;
pub mod demo;
pub mod doctor;
pub mod error;
pub mod headless;
pub mod host;
pub mod levels;
pub mod media;
pub mod net;
pub mod netlab;
pub mod participant;
pub mod plain;
pub mod playback;
pub mod player;
pub use syncy_core::protocol;
pub mod rendezvous;
pub mod save;
pub mod secret;
pub mod server;
pub mod stdout;
pub mod timer;
pub mod transcoders;
pub mod ui;
pub mod units;
