//! Syncy: a peer-to-peer watch party for the terminal.
//!
//! The pipeline, one line per hop (host's file to participant's screen):
//!
//! ```text
//! file ─ media/probe ─► engine/host ─ core::host (core::scheduler, core::room, core::renditions)
//!      ─ net/peer (WebRTC data channels) ─► engine/join ─ core::participant (core::buffer,
//!        core::clock, core::level_switch, core::quality; its presenter picks the frame)
//!      ─ media/store_source + avio + decode ─► player/playback ─► player/screen ─► ui/join_app
//! control flows back: ui/keys → engine::Command → protocol::stream::Command → core::room
//! ```
//!
//! - `core` (its own crate, `syncy-core`): the sans-IO machines, the wire `protocol`, and the
//!   engines' `Event`/`Command` API; no IO, no clock (the build enforces it).
//! - `engine`: the host and participant drivers: IO in, core decides, IO out.
//! - `net`: signaling client, WebRTC links, TLS, NAT traversal, the HTTP fallback.
//! - `media`: ffmpeg (probe, demux over the chunk store, decode, transcode, the sample clip).
//! - `player`: the decoders the presenter drives, sound, mpv.
//! - `ui`: the terminal dashboards; `output`: the headless JSON lines and plain text.
//! - `server`: the signaling server; `cli` and `commands`: the command line and its commands.

// The nesting bound (clippy.toml) is for the program; tests may nest their set-ups deeper.
#![cfg_attr(test, allow(clippy::excessive_nesting))]

pub mod cli;
pub mod commands;
/// The sans-IO core (its own crate, so the build keeps IO out of it).
pub use syncy_core as core;
pub mod engine;
pub mod error;
pub mod media;
pub mod net;
pub mod netlab;
pub mod output;
pub mod player;
pub use syncy_core::protocol;
pub mod secret;
pub mod server;
pub mod ui;
pub mod xlab;
