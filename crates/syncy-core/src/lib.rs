//! Syncy's sans-IO core. Nothing here touches sockets, files, threads, tokio, webrtc or ffmpeg,
//! and nothing reads the clock: time is always passed in (clippy.toml refuses the rest). Each
//! machine takes inputs with `handle_*`, yields outputs with `poll_*`, and says when it next
//! wants to be woken with `poll_timeout`.
//!
//! - `protocol`: the wire types (signaling, the peer stream, links, room keys);
//! - `host`: the host as one machine, composed of `scheduler`, `room`, `renditions`, `rate`
//!   and `backoff`;
//! - `participant`: the participant as one machine, composed of `buffer`, `clock`,
//!   `quality`, `level_switch` and `cadence`;
//! - `api`: the events the engines report and the commands they take (DESIGN §9);
//! - `path`: which network path carries a link (reported, never decided here).

pub mod api;
pub mod backoff;
pub mod buffer;
pub mod cadence;
pub mod clock;
pub mod host;
pub mod level_switch;
pub mod participant;
pub mod path;
pub mod protocol;
pub mod quality;
pub mod rate;
pub mod renditions;
pub mod room;
pub mod scheduler;
pub mod sim;
pub mod units;

/// Test support: the one place tests take a real `Instant` to start simulated time from.
#[cfg(test)]
pub(crate) mod testing {
    use std::time::Instant;

    /// An arbitrary start for simulated time.
    #[allow(clippy::disallowed_methods)]
    pub fn t0() -> Instant {
        Instant::now()
    }
}
