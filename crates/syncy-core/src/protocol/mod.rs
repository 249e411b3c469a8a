//! Wire types only: what travels between peers and the signaling server, and between peers.
//! Nothing here does I/O; every decoder is total (bad input is an error, never a panic).

pub mod auth;
pub mod guest;
pub mod hashes;
pub mod have;
pub mod identity;
pub mod link;
pub mod relay;
pub mod signal;
pub mod stream;
