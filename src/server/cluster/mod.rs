//! `syncy serve --cluster URL`: several signaling servers behind one name share their rooms
//! through Redis.
//!
//! Redis rather than NATS: one small, common daemon gives both what a cluster needs, a
//! directory (which server holds which room: a key, claimed with `SET NX`) and a bus (one
//! pub/sub channel per server); `PUBSUB NUMSUB` on a server's channel says at once whether it
//! is still there. NATS would need its key-value store (JetStream) for the directory.
//!
//! A room lives on the server its host connected to. A client that joins it through another
//! server is a member there like any other, except that its messages travel the bus: its
//! join, signals and leaving go to the room's server, and what the room says to it comes back.
//! Every bus message is sealed with the cluster key (`bus`). A server found gone (`directory`)
//! costs only its own connections: its clients are dropped from the rooms held elsewhere
//! (without their hosts hearing they left), and its rooms close for the clients elsewhere
//! (their WebRTC links go on; the host opens its room again on reconnecting).

pub mod bus;
mod directory;
mod lanes;
mod span;
mod store;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;

use self::bus::{Seal, ServerId};
use self::directory::{Directory, RELEASE, inbox_of, room_key};
use self::lanes::{LanesRx, Op};
pub use self::span::{JoinedAs, Span};
use self::store::Store;
use super::rooms::Refusal;
use super::{Rooms, ServerConfig};

/// How often the servers this one shares rooms with are looked for, and its heartbeat sent.
const WATCH_EVERY: Duration = Duration::from_secs(1);
/// Every how many watches this server's rooms are written into the directory again.
const TIDY_EVERY: u64 = 3;
/// How long a join through another server waits for its answer.
pub const JOIN_WAIT: Duration = Duration::from_secs(5);
/// Shortest cluster key: a shared secret, not a name.
pub const MIN_KEY: usize = 16;

/// Why a server could not join its cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The URL is not one Redis takes.
    #[error("--cluster: {0}")]
    Url(String),
    /// Redis did not answer.
    #[error("cannot reach the cluster's Redis: {0}")]
    Connect(String),
    /// The key is too short to be a secret.
    #[error("the cluster key must be at least {MIN_KEY} bytes (SYNCY_CLUSTER_KEY or --cluster-key-file)")]
    ShortKey,
}

/// One server's place in its cluster.
pub struct Cluster {
    me: ServerId,
    span: Arc<Span>,
    directory: Directory,
    /// The bus's edges, stopped with the cluster (a server stopped in a process that goes on
    /// must not stay subscribed, holding its rooms' names).
    edges: Vec<tokio::task::AbortHandle>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.edges.iter().for_each(|t| t.abort());
    }
}

fn connect_err(e: redis::RedisError) -> ClusterError {
    ClusterError::Connect(e.to_string())
}

impl Cluster {
    /// Joins the cluster at `url` (`redis://HOST:PORT/`, `redis+unix:///PATH`) with the
    /// shared `key`, serving `rooms`. Listening on the bus, and alive in the directory,
    /// before it returns.
    pub async fn join(url: &str, key: &[u8], rooms: Arc<Mutex<Rooms>>, cfg: Arc<ServerConfig>) -> Result<Arc<Cluster>, ClusterError> {
        if key.len() < MIN_KEY {
            return Err(ClusterError::ShortKey);
        }
        let client = redis::Client::open(url).map_err(|e| ClusterError::Url(e.to_string()))?;
        let redis = Arc::new(Store::connect(client.clone()).await.map_err(connect_err)?);
        let me: ServerId = hex::encode(rand::random::<[u8; 8]>());
        let mut pubsub = client.get_async_pubsub().await.map_err(connect_err)?;
        pubsub.subscribe(inbox_of(&me)).await.map_err(connect_err)?;
        let directory = Directory::new(me.clone(), redis.clone(), rooms.clone());
        directory.beat().await.map_err(connect_err)?;
        let max = bus::max_bus_message(cfg.max_message);
        let (lanes, lanes_rx) = lanes::lanes();
        let span = Arc::new(Span::new(rooms, cfg, lanes));
        let edges = vec![
            tokio::spawn(publish(lanes_rx, Seal::new(key, me.clone(), max), redis)).abort_handle(),
            tokio::spawn(listen(client, pubsub, Seal::new(key, me.clone(), max), span.clone())).abort_handle(),
        ];
        tracing::info!(server = me, "in the signaling cluster");
        let cluster = Arc::new(Cluster { me, span, directory, edges });
        tokio::spawn(watch(Arc::downgrade(&cluster)));
        Ok(cluster)
    }

    /// Cross-server memberships.
    pub fn span(&self) -> &Span {
        &self.span
    }

    /// Which server holds `room`, if any does.
    pub async fn home_of(&self, room: &str) -> Result<Option<ServerId>, Refusal> {
        self.directory.home_of(room).await
    }

    /// Whether `server` is this one.
    pub fn is_me(&self, server: &str) -> bool {
        server == self.me
    }

    /// Takes the room's name in the cluster for this server (see [`Directory::claim`]).
    pub async fn claim(&self, room: &str) -> Result<(), Refusal> {
        self.directory.claim(room).await
    }

    /// The room closed here: its name is free again in the cluster.
    pub fn release(&self, room: &str) {
        if let Some(claim) = self.directory.claim_of(room) {
            self.span.release(room, claim);
        }
    }

    /// A server missing twice in a row (`missing` last time) is gone. What is missing now.
    async fn look_for_partners(&self, missing: &[ServerId]) -> Vec<ServerId> {
        let mut now_missing = Vec::new();
        for server in self.span.partners() {
            match self.directory.alive(&server).await {
                Ok(true) => {}
                Ok(false) if missing.contains(&server) => self.span.server_gone(&server),
                Ok(false) => now_missing.push(server),
                Err(e) => tracing::debug!("cluster: {e}"),
            }
        }
        now_missing
    }
}

/// The bus's sending edge: seals and publishes, control first, in order within each lane.
async fn publish(mut ops: LanesRx, mut seal: Seal, redis: Arc<Store>) {
    while let Some(op) = ops.recv().await {
        let sent = match op {
            Op::Publish { to, msg } => redis.query::<i64>(redis::cmd("PUBLISH").arg(inbox_of(&to)).arg(seal.seal(&to, msg))).await.map(drop),
            Op::Release { room, token } => redis.query::<i64>(redis::cmd("EVAL").arg(RELEASE).arg(1).arg(room_key(&room)).arg(&token)).await.map(drop),
        };
        if let Err(e) = sent {
            tracing::warn!("cluster: a message to the bus is lost: {e}");
        }
    }
}

/// The bus's receiving edge: opens each message and hands it to the span. On losing Redis,
/// connects again at once, then each second (the other servers see this one gone if that
/// takes two of their looks, and act so).
async fn listen(client: redis::Client, mut pubsub: redis::aio::PubSub, mut seal: Seal, span: Arc<Span>) {
    let mut refused = 0u64;
    loop {
        {
            let mut messages = pubsub.on_message();
            while let Some(m) = messages.next().await {
                match seal.open(m.get_payload_bytes()) {
                    Ok((from, msg)) => span.on_bus(&from, msg),
                    Err(e) => refused = dropped(refused, &e),
                }
            }
        }
        tracing::error!("cluster: lost the bus; connecting again");
        pubsub = loop {
            match client.get_async_pubsub().await {
                Ok(mut p) => match p.subscribe(inbox_of(seal.me())).await {
                    Ok(()) => {
                        tracing::info!("cluster: back on the bus");
                        break p;
                    }
                    Err(e) => tracing::debug!("cluster: {e}"),
                },
                Err(e) => tracing::debug!("cluster: {e}"),
            }
            tokio::time::sleep(WATCH_EVERY).await;
        };
    }
}

/// Counts a message from the bus not taken, saying so once in a while (a flood of junk does
/// not flood the log).
fn dropped(before: u64, e: &bus::BusError) -> u64 {
    let n = before + 1;
    if n.is_power_of_two() {
        tracing::warn!("cluster: {e}; dropped ({n} dropped so far)");
    }
    n
}

/// Every second: this server's heartbeat, a look for the servers it shares rooms with, and
/// now and then the directory kept true to its rooms.
async fn watch(cluster: std::sync::Weak<Cluster>) {
    let mut missing: Vec<ServerId> = Vec::new();
    for tick in 1u64.. {
        tokio::time::sleep(WATCH_EVERY).await;
        let Some(cluster) = cluster.upgrade() else { return };
        if let Err(e) = cluster.directory.beat().await {
            tracing::debug!("cluster: {e}");
        }
        if tick % TIDY_EVERY == 0 {
            cluster.directory.tidy().await;
        }
        missing = cluster.look_for_partners(&missing).await;
    }
}
