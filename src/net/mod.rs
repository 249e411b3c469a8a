//! Network edges: the signaling client and the WebRTC peer link.

pub mod accept;
pub mod addrs;
pub mod diagnose;
pub mod http;
pub mod links;
pub mod natpmp;
pub use crate::core::path;
mod pc_guard;
pub mod peer;
pub mod portmap;
pub mod runtime;
pub mod signal_client;
pub mod stun_probe;
pub mod tls;
pub mod turn_tls;
