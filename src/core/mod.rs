//! Sans-IO state machines. Nothing here touches sockets, files, tokio, webrtc or ffmpeg; time is
//! always passed in. Each machine takes inputs with `handle_*` and yields outputs with `poll_*`.

pub mod buffer;
pub mod clock;
pub mod quality;
pub mod rate;
pub mod renditions;
pub mod room;
pub mod scheduler;
