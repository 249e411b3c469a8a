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
//! Every bus message is sealed with the cluster key (`bus`). A server found gone costs only its
//! own connections: its clients leave the rooms held elsewhere, and its rooms close for the
//! clients elsewhere (their WebRTC links go on; the host opens its room again on reconnecting).

pub mod bus;
mod span;
mod store;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::mpsc;

use self::bus::{Seal, ServerId};
pub use self::span::{JoinedAs, Span};
use self::span::{OPS_QUEUE, Op};
use self::store::Store;
use super::rooms::Refusal;
use super::{Rooms, ServerConfig};
use crate::protocol::signal::ErrorCode;

/// How often the servers this one shares rooms with are looked for on the bus.
const WATCH_EVERY: Duration = Duration::from_secs(1);
/// Every how many watches this server's rooms are written into the directory again.
const REASSERT_EVERY: u64 = 3;
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
    redis: Arc<Store>,
    rooms: Arc<Mutex<Rooms>>,
    /// The rooms this server has written into the directory: each is taken out again once
    /// closed here, however many tries that takes.
    claimed: Mutex<HashSet<String>>,
}

fn inbox_of(server: &str) -> String {
    format!("syncy:srv:{server}")
}

fn room_key(room: &str) -> String {
    format!("syncy:room:{room}")
}

fn connect_err(e: redis::RedisError) -> ClusterError {
    ClusterError::Connect(e.to_string())
}

/// Replaces a key's value only if it is still `ARGV[1]`.
const SWAP: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2]) return 1 end return 0";
/// Deletes a key only if its value is `ARGV[1]`.
const RELEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

impl Cluster {
    /// Joins the cluster at `url` (`redis://HOST:PORT/`, `redis+unix:///PATH`) with the
    /// shared `key`, serving `rooms`. Listening on the bus before it returns.
    pub async fn join(url: &str, key: &[u8], rooms: Arc<Mutex<Rooms>>, cfg: Arc<ServerConfig>) -> Result<Arc<Cluster>, ClusterError> {
        if key.len() < MIN_KEY {
            return Err(ClusterError::ShortKey);
        }
        let client = redis::Client::open(url).map_err(|e| ClusterError::Url(e.to_string()))?;
        let redis = Arc::new(Store::connect(client.clone()).await.map_err(connect_err)?);
        let me: ServerId = hex::encode(rand::random::<[u8; 8]>());
        let mut pubsub = client.get_async_pubsub().await.map_err(connect_err)?;
        pubsub.subscribe(inbox_of(&me)).await.map_err(connect_err)?;
        let (ops_tx, ops_rx) = mpsc::channel(OPS_QUEUE);
        let span = Arc::new(Span::new(rooms.clone(), cfg, ops_tx));
        tokio::spawn(publish(ops_rx, Seal::new(key, me.clone()), redis.clone()));
        tokio::spawn(listen(client, pubsub, Seal::new(key, me.clone()), span.clone()));
        tracing::info!(server = me, "in the signaling cluster");
        let cluster = Arc::new(Cluster { me, span, redis, rooms, claimed: Mutex::new(HashSet::new()) });
        tokio::spawn(watch(Arc::downgrade(&cluster)));
        Ok(cluster)
    }

    /// Cross-server memberships.
    pub fn span(&self) -> &Span {
        &self.span
    }

    /// Which server holds `room`, if any does.
    pub async fn home_of(&self, room: &str) -> Result<Option<ServerId>, Refusal> {
        self.redis.query(redis::cmd("GET").arg(room_key(room))).await.map_err(unreachable)
    }

    /// Whether `server` is this one.
    pub fn is_me(&self, server: &str) -> bool {
        server == self.me
    }

    /// Takes the room's name in the cluster for this server: free, ours already, or held by a
    /// server that is gone.
    pub async fn claim(&self, room: &str) -> Result<(), Refusal> {
        let redis = &self.redis;
        let key = room_key(room);
        self.claimed.lock().unwrap_or_else(|e| e.into_inner()).insert(room.to_string());
        for _ in 0..3 {
            let set: Option<String> = redis.query(redis::cmd("SET").arg(&key).arg(&self.me).arg("NX")).await.map_err(unreachable)?;
            if set.is_some() {
                return Ok(());
            }
            let Some(owner) = redis.query::<Option<String>>(redis::cmd("GET").arg(&key)).await.map_err(unreachable)? else { continue };
            if owner == self.me {
                return Ok(());
            }
            if listening(redis, &owner).await.map_err(unreachable)? {
                return Err((ErrorCode::RoomExists, format!("room {room:?} is already open on another server of this cluster")));
            }
            let swapped: i64 = redis.query(redis::cmd("EVAL").arg(SWAP).arg(1).arg(&key).arg(&owner).arg(&self.me)).await.map_err(unreachable)?;
            if swapped == 1 {
                tracing::info!(room, gone = owner, "took over a room whose server is gone");
                return Ok(());
            }
        }
        Err((ErrorCode::RoomExists, format!("room {room:?} is being opened on another server of this cluster")))
    }
}

/// A refusal for a client when Redis does not answer.
fn unreachable(e: redis::RedisError) -> Refusal {
    tracing::warn!("cluster: Redis: {e}");
    (ErrorCode::ServerFull, "this server cannot reach the rest of its cluster; try again".into())
}

/// Whether `server` is subscribed to its inbox, i.e. running.
async fn listening(redis: &Store, server: &str) -> redis::RedisResult<bool> {
    let counts: Vec<(String, i64)> = redis.query(redis::cmd("PUBSUB").arg("NUMSUB").arg(inbox_of(server))).await?;
    Ok(counts.first().is_some_and(|(_, n)| *n > 0))
}

/// The bus's sending edge: seals and publishes, in order.
async fn publish(mut ops: mpsc::Receiver<Op>, mut seal: Seal, redis: Arc<Store>) {
    let me = seal.me().to_string();
    while let Some(op) = ops.recv().await {
        let sent = match op {
            Op::Publish { to, msg } => redis.query::<i64>(redis::cmd("PUBLISH").arg(inbox_of(&to)).arg(seal.seal(msg))).await.map(drop),
            Op::Release { room } => redis.query::<i64>(redis::cmd("EVAL").arg(RELEASE).arg(1).arg(room_key(&room)).arg(&me)).await.map(drop),
        };
        if let Err(e) = sent {
            tracing::warn!("cluster: a message to the bus is lost: {e}");
        }
    }
}

/// The bus's receiving edge: opens each message and hands it to the span. On losing Redis,
/// connects again (the other servers meanwhile see this one gone, and act so).
async fn listen(client: redis::Client, mut pubsub: redis::aio::PubSub, mut seal: Seal, span: Arc<Span>) {
    loop {
        {
            let mut messages = pubsub.on_message();
            while let Some(m) = messages.next().await {
                match seal.open(m.get_payload_bytes()) {
                    Ok((from, msg)) => span.on_bus(&from, msg),
                    Err(e) => tracing::warn!("cluster: {e}; dropped"),
                }
            }
        }
        tracing::error!("cluster: lost the bus; connecting again");
        pubsub = loop {
            tokio::time::sleep(WATCH_EVERY).await;
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
        };
    }
}

/// Every second: looks for the servers this one shares rooms with, and keeps the directory
/// true to this server's rooms.
async fn watch(cluster: std::sync::Weak<Cluster>) {
    let mut missing: Vec<ServerId> = Vec::new();
    for tick in 1u64.. {
        tokio::time::sleep(WATCH_EVERY).await;
        let Some(cluster) = cluster.upgrade() else { return };
        if tick % REASSERT_EVERY == 0 {
            cluster.tidy_directory().await;
        }
        missing = cluster.look_for_partners(&missing).await;
    }
}

impl Cluster {
    /// A server missing twice in a row (`missing` last time) is gone. What is missing now.
    async fn look_for_partners(&self, missing: &[ServerId]) -> Vec<ServerId> {
        let mut now_missing = Vec::new();
        for server in self.span.partners() {
            match listening(&self.redis, &server).await {
                Ok(true) => {}
                Ok(false) if missing.contains(&server) => self.span.server_gone(&server),
                Ok(false) => now_missing.push(server),
                Err(e) => tracing::debug!("cluster: {e}"),
            }
        }
        now_missing
    }

    /// This server's rooms written in again (a Redis restarted empty learns them back), and
    /// rooms closed here taken out (a release that failed is tried again).
    async fn tidy_directory(&self) {
        let open: HashSet<String> = self.rooms.lock().unwrap_or_else(|e| e.into_inner()).ids().into_iter().collect();
        let closed: Vec<String> = {
            let mut claimed = self.claimed.lock().unwrap_or_else(|e| e.into_inner());
            claimed.extend(open.iter().cloned());
            claimed.iter().filter(|r| !open.contains(*r)).cloned().collect()
        };
        for room in &open {
            match self.redis.query::<Option<String>>(redis::cmd("SET").arg(room_key(room)).arg(&self.me).arg("NX")).await {
                Ok(Some(_)) => tracing::info!(room, "cluster: a room written back into the directory"),
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!("cluster: {e}");
                    return;
                }
            }
        }
        for room in closed {
            // (Open again meanwhile: it stays.)
            if self.rooms.lock().unwrap_or_else(|e| e.into_inner()).has(&room) {
                continue;
            }
            match self.redis.query::<i64>(redis::cmd("EVAL").arg(RELEASE).arg(1).arg(room_key(&room)).arg(&self.me)).await {
                Ok(_) => {
                    self.claimed.lock().unwrap_or_else(|e| e.into_inner()).remove(&room);
                }
                Err(e) => tracing::debug!("cluster: {e}"),
            }
        }
    }
}
