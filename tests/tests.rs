//! One integration-test binary: real binaries, real signaling server, real WebRTC, loopback only.

// The nesting bound (clippy.toml) is for the program; tests may nest their set-ups deeper.
#![allow(clippy::excessive_nesting)]

mod it;
