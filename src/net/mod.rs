//! Network edges: the signaling client and the WebRTC peer link.

pub mod http_fallback;
pub mod http_head;
pub mod http_link;
pub mod peer;
pub mod runtime;
pub mod signal_client;
pub mod tls;
