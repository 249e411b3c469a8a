//! One integration-test binary: real binaries, real signaling server, real WebRTC, loopback only.

mod it;
