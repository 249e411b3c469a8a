//! The signaling server: rooms, admission by join token, SDP/ICE relay, limits.
//!
//! It sees room ids, peer ids, names, SDP and ICE — never media and never the room key. Every
//! refusal is an `error` message to the client followed by a close.

mod conn;
mod rooms;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;

pub use rooms::Rooms;

/// Server limits; all configurable from the command line.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Participants per room (the host is not counted).
    pub max_peers: usize,
    /// Rooms per server.
    pub max_rooms: usize,
    /// Largest message, in bytes.
    pub max_message: usize,
    /// Sustained messages per second per connection.
    pub msg_rate: f64,
    /// Messages a connection may send in a burst.
    pub msg_burst: f64,
    /// A connection that sends nothing for this long is closed (clients ping well within it).
    pub idle_timeout: Duration,
    /// A connection must create or join a room within this time.
    pub join_timeout: Duration,
    /// Serve `wss://` with this certificate (`--tls-cert/--tls-key`); plain `ws://` without.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_peers: 20,
            max_rooms: 1000,
            max_message: crate::protocol::signal::DEFAULT_MAX_MESSAGE,
            msg_rate: 50.0,
            msg_burst: 200.0,
            idle_timeout: Duration::from_secs(120),
            join_timeout: Duration::from_secs(10),
            tls: None,
        }
    }
}

/// A running server.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Binds `addr` and serves in the background.
    pub async fn start(addr: SocketAddr, cfg: ServerConfig) -> std::io::Result<Server> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let rooms = Arc::new(Mutex::new(Rooms::new(cfg.clone())));
        let cfg = Arc::new(cfg);
        let task = tokio::spawn(async move {
            loop {
                let (stream, peer_addr) = match listener.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let (rooms, cfg) = (rooms.clone(), cfg.clone());
                match cfg.tls.clone() {
                    None => drop(tokio::spawn(conn::serve(stream, peer_addr, rooms, cfg))),
                    Some(tls) => drop(tokio::spawn(async move {
                        // The TLS handshake counts against the time to create or join.
                        let accept = tokio_rustls::TlsAcceptor::from(tls).accept(stream);
                        match tokio::time::timeout(cfg.join_timeout, accept).await {
                            Ok(Ok(stream)) => conn::serve(stream, peer_addr, rooms, cfg).await,
                            Ok(Err(e)) => tracing::debug!(%peer_addr, "TLS handshake failed: {e}"),
                            Err(_) => tracing::debug!(%peer_addr, "TLS handshake timed out"),
                        }
                    })),
                }
            }
        });
        tracing::info!("signaling server listening on {addr}");
        Ok(Server { addr, task })
    }

    /// Runs until the task ends (never, unless aborted).
    pub async fn wait(mut self) {
        let _ = (&mut self.task).await;
    }

    /// Stops accepting and drops the listener.
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}
