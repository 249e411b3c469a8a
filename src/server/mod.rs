//! The signaling server: rooms, admission by join token, SDP/ICE relay, limits.
//!
//! It sees room ids, peer ids, names, SDP and ICE — never media and never the room key. Every
//! refusal is an `error` message to the client followed by a close.

pub mod cluster;
mod conn;
#[cfg(fuzzing)]
pub mod fuzzing;
mod outbox;
mod rooms;
mod slots;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;

use cluster::Cluster;
pub use rooms::Rooms;
pub use slots::{Slots, Source};

/// Server limits; all configurable from the command line.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Participants per room (the host is not counted).
    pub max_peers: usize,
    /// Rooms per server.
    pub max_rooms: usize,
    /// Rooms opened from one source (an IPv4 address or an IPv6 /64).
    pub max_rooms_per_source: usize,
    /// Connections in all, joined or not (clamped to what the process may open).
    pub max_conns: usize,
    /// Connections from one source: enough for a household behind one NAT, few enough that
    /// one machine cannot hold the server.
    pub max_conns_per_source: usize,
    /// Bytes queued for one client before it is let go as not reading (at least four of the
    /// largest messages).
    pub outbox_budget: usize,
    /// How long one write to a client may take before it is let go.
    pub send_timeout: Duration,
    /// A host's own server opens this room only (`None` for `syncy serve`).
    pub only_room: Option<String>,
    /// Largest message, in bytes.
    pub max_message: usize,
    /// Sustained messages per second per connection.
    pub msg_rate: f64,
    /// Messages a connection may send in a burst.
    pub msg_burst: f64,
    /// A connection that sends nothing for this long is closed (clients ping well within it).
    pub idle_timeout: Duration,
    /// A connection must create or join a room within this time from its accept: TLS and the
    /// WebSocket handshake included.
    pub join_timeout: Duration,
    /// Serve `wss://` with this certificate (`--tls-cert/--tls-key`); plain `ws://` without.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_peers: 20,
            max_rooms: 1000,
            max_rooms_per_source: 16,
            max_conns: 4096,
            max_conns_per_source: 64,
            outbox_budget: 256 * 1024,
            send_timeout: Duration::from_secs(10),
            only_room: None,
            max_message: crate::protocol::signal::DEFAULT_MAX_MESSAGE,
            msg_rate: 50.0,
            msg_burst: 200.0,
            idle_timeout: Duration::from_secs(120),
            join_timeout: Duration::from_secs(10),
            tls: None,
        }
    }
}

/// Why a server did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Its address.
    #[error("cannot listen: {0}")]
    Listen(std::io::Error),
    /// Its cluster.
    #[error(transparent)]
    Cluster(#[from] cluster::ClusterError),
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
        Self::start_in(addr, cfg, None).await
    }

    /// `start`, as one server of the cluster `cluster` names (Redis URL, cluster key).
    pub async fn start_in(addr: SocketAddr, cfg: ServerConfig, cluster: Option<(&str, &[u8])>) -> std::io::Result<Server> {
        Self::start_clustered(addr, cfg, cluster).await.map_err(|e| match e {
            StartError::Listen(e) => e,
            e => std::io::Error::other(e),
        })
    }

    /// `start_in`, saying which of listening and joining the cluster failed.
    pub async fn start_clustered(addr: SocketAddr, mut cfg: ServerConfig, cluster: Option<(&str, &[u8])>) -> Result<Server, StartError> {
        let listener = listen(addr).map_err(StartError::Listen)?;
        let addr = listener.local_addr().map_err(StartError::Listen)?;
        cfg.max_conns = cfg.max_conns.min(fd_room());
        cfg.outbox_budget = cfg.outbox_budget.max(cfg.max_message.saturating_mul(4));
        let slots = Slots::new(cfg.max_conns, cfg.max_conns_per_source);
        let rooms = Arc::new(Mutex::new(Rooms::new(cfg.clone())));
        let cfg = Arc::new(cfg);
        let cluster = match cluster {
            Some((url, key)) => Some(Cluster::join(url, key, rooms.clone(), cfg.clone()).await?),
            None => None,
        };
        let task = tokio::spawn(accept_loop(listener, slots, rooms, cfg, cluster));
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

/// Binds `addr` with a listen backlog for bursts (tokio's default is 128: a burst of connections
/// past it has SYNs dropped and tried again a second later).
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Takes connections for ever: each gets a slot first (or is turned away at once, before any
/// TLS or WebSocket work), then a task of its own that gives the slot back when it ends.
async fn accept_loop(listener: TcpListener, slots: Arc<Slots>, rooms: Arc<Mutex<Rooms>>, cfg: Arc<ServerConfig>, cluster: Option<Arc<Cluster>>) {
    loop {
        let (stream, peer_addr) = crate::net::accept::next(&listener, "signaling server").await;
        let slot = match slots.take(peer_addr.ip()) {
            Ok(slot) => slot,
            Err(refused) => {
                tracing::info!(%peer_addr, "turned away: {refused}");
                turn_away(stream, &refused, cfg.tls.is_some());
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        // The time to create or join counts from here, TLS and the WebSocket handshake included.
        let joined_by = tokio::time::Instant::now() + cfg.join_timeout;
        let (rooms, cfg, cluster) = (rooms.clone(), cfg.clone(), cluster.clone());
        tokio::spawn(async move {
            match cfg.tls.clone() {
                None => conn::serve(stream, peer_addr, slot, joined_by, rooms, cfg, cluster).await,
                Some(tls) => match tokio::time::timeout_at(joined_by, tokio_rustls::TlsAcceptor::from(tls).accept(stream)).await {
                    Ok(Ok(stream)) => conn::serve(stream, peer_addr, slot, joined_by, rooms, cfg, cluster).await,
                    Ok(Err(e)) => tracing::debug!(%peer_addr, "TLS handshake failed: {e}"),
                    Err(_) => tracing::debug!(%peer_addr, "TLS handshake timed out"),
                },
            }
        });
    }
}

/// Says why in plain HTTP, where that costs nothing (one non-blocking write; a WebSocket
/// client shows the status), and closes.
fn turn_away(stream: tokio::net::TcpStream, why: &slots::SlotRefused, tls: bool) {
    // (tokio's own try_write would refuse: a socket just accepted has no readiness yet.)
    let Ok(mut stream) = stream.into_std() else { return };
    if tls {
        return;
    }
    let body = format!("{why}\n");
    let reply = format!("HTTP/1.1 503 Service Unavailable\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    let _ = std::io::Write::write(&mut stream, reply.as_bytes());
}

/// How many connections this process can hold: half its open-file limit, raised to the hard
/// limit first (the rest is for the files, sockets and peers of a host around the server).
fn fd_room() -> usize {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 512;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    usize::try_from(lim.rlim_cur / 2).unwrap_or(usize::MAX)
}
