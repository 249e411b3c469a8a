//! The accept loop's one step, shared by Syncy's servers (signaling, the HTTPS fallback, the
//! range server for mpv): an error (out of descriptors, an aborted handshake) is waited out,
//! never a spin and never the server's end.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

/// The next connection; `what` names the server in the log.
pub async fn next(listener: &TcpListener, what: &str) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(x) => return x,
            Err(e) => {
                tracing::warn!("{what}: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
