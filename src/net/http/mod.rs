//! HTTP at the edges: the request-head reader and Range parsing both servers share, the host's
//! fallback server and the participant's client of it.

pub mod fallback_client;
pub mod fallback_server;
pub mod head;
pub mod range;
