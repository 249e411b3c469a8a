//! The cluster's directory in Redis: which server holds which room, and which servers are
//! alive.
//!
//! A room's key holds its claim, `SERVER:NONCE`: a release deletes the key only if it still
//! holds the same claim, so a late release never frees the room of a claim made since (its
//! host back on the same server). A server is alive while it listens on its inbox (`PUBSUB
//! NUMSUB`: at once false when its process ends) and keeps its heartbeat key fresh (expires
//! [`HEARTBEAT_TTL`] after a server hangs or is cut off, which Redis itself may notice only
//! minutes later).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::bus::ServerId;
use super::store::Store;
use crate::protocol::signal::ErrorCode;
use crate::server::Rooms;
use crate::server::rooms::Refusal;

/// How long a server's heartbeat key outlives its last beat.
pub const HEARTBEAT_TTL: Duration = Duration::from_secs(5);
/// A claim younger than this may be for a room about to open here: not tidied away.
const CLAIM_SETTLE: Duration = Duration::from_secs(5);

/// Replaces a key's value only if it is still `ARGV[1]`.
const SWAP: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2]) return 1 end return 0";
/// Deletes a key only if its value is `ARGV[1]`.
pub const RELEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

/// Server `server`'s inbox channel.
pub fn inbox_of(server: &str) -> String {
    format!("syncy:srv:{server}")
}

/// The directory key of `room`.
pub fn room_key(room: &str) -> String {
    format!("syncy:room:{room}")
}

fn heartbeat_key(server: &str) -> String {
    format!("syncy:alive:{server}")
}

/// The server a claim names.
fn server_of(claim: &str) -> &str {
    claim.split(':').next().unwrap_or("")
}

/// A new claim of server `me`'s: `SERVER:NONCE`.
fn new_claim(me: &str) -> String {
    format!("{me}:{}", hex::encode(rand::random::<[u8; 8]>()))
}

/// A refusal for a client when Redis does not answer.
fn unreachable(e: redis::RedisError) -> Refusal {
    tracing::warn!("cluster: Redis: {e}");
    (ErrorCode::ServerFull, "this server cannot reach the rest of its cluster; try again".into())
}

/// One server's view of the directory.
pub struct Directory {
    me: ServerId,
    redis: Arc<Store>,
    rooms: Arc<Mutex<Rooms>>,
    /// This server's claims, by room, with when each was made: each is taken out again once
    /// its room is closed here, however many tries that takes.
    claims: Mutex<HashMap<String, (String, Instant)>>,
}

impl Directory {
    /// Server `me`'s directory of its `rooms`.
    pub fn new(me: ServerId, redis: Arc<Store>, rooms: Arc<Mutex<Rooms>>) -> Directory {
        Directory { me, redis, rooms, claims: Mutex::new(HashMap::new()) }
    }

    fn claims(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, Instant)>> {
        self.claims.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Which server holds `room`, if any does.
    pub async fn home_of(&self, room: &str) -> Result<Option<ServerId>, Refusal> {
        let claim: Option<String> = self.redis.query(redis::cmd("GET").arg(room_key(room))).await.map_err(unreachable)?;
        Ok(claim.map(|c| server_of(&c).to_string()))
    }

    /// Takes the room's name in the cluster for this server: free, this server's already,
    /// or held by a server that is gone.
    pub async fn claim(&self, room: &str) -> Result<(), Refusal> {
        let key = room_key(room);
        let mine = new_claim(&self.me);
        self.claims().insert(room.to_string(), (mine.clone(), Instant::now()));
        for _ in 0..3 {
            let set: Option<String> = self.redis.query(redis::cmd("SET").arg(&key).arg(&mine).arg("NX")).await.map_err(unreachable)?;
            if set.is_some() {
                return Ok(());
            }
            let Some(held) = self.redis.query::<Option<String>>(redis::cmd("GET").arg(&key)).await.map_err(unreachable)? else { continue };
            let owner = server_of(&held);
            if owner != self.me && self.alive(owner).await.map_err(unreachable)? {
                return Err((ErrorCode::RoomExists, format!("room {room:?} is already open on another server of this cluster")));
            }
            let swapped: i64 = self.redis.query(redis::cmd("EVAL").arg(SWAP).arg(1).arg(&key).arg(&held).arg(&mine)).await.map_err(unreachable)?;
            if swapped == 1 {
                if owner != self.me {
                    tracing::info!(room, gone = owner, "took over a room whose server is gone");
                }
                return Ok(());
            }
        }
        Err((ErrorCode::RoomExists, format!("room {room:?} is being opened on another server of this cluster")))
    }

    /// The claim to release for `room`, closed here.
    pub fn claim_of(&self, room: &str) -> Option<String> {
        self.claims().get(room).map(|(c, _)| c.clone())
    }

    /// Whether `server` is running: listening on its inbox, its heartbeat fresh.
    pub async fn alive(&self, server: &str) -> redis::RedisResult<bool> {
        let counts: Vec<(String, i64)> = self.redis.query(redis::cmd("PUBSUB").arg("NUMSUB").arg(inbox_of(server))).await?;
        if counts.first().is_none_or(|(_, n)| *n <= 0) {
            return Ok(false);
        }
        self.redis.query(redis::cmd("EXISTS").arg(heartbeat_key(server))).await
    }

    /// This server's heartbeat.
    pub async fn beat(&self) -> redis::RedisResult<()> {
        self.redis.query(redis::cmd("SET").arg(heartbeat_key(&self.me)).arg(1).arg("PX").arg(HEARTBEAT_TTL.as_millis() as u64)).await
    }

    /// This server's rooms written in again (a Redis restarted empty learns them back), and
    /// rooms closed here taken out (a release that failed is tried again).
    pub async fn tidy(&self) {
        let open: Vec<String> = self.rooms.lock().unwrap_or_else(|e| e.into_inner()).ids();
        let (mut writes, mut releases) = (Vec::new(), Vec::new());
        {
            let mut claims = self.claims();
            for room in &open {
                let (claim, _) = claims.entry(room.clone()).or_insert_with(|| (new_claim(&self.me), Instant::now()));
                writes.push((room.clone(), claim.clone()));
            }
            for (room, (claim, at)) in claims.iter() {
                if !open.contains(room) && at.elapsed() >= CLAIM_SETTLE {
                    releases.push((room.clone(), claim.clone()));
                }
            }
        }
        for (room, claim) in writes {
            match self.redis.query::<Option<String>>(redis::cmd("SET").arg(room_key(&room)).arg(&claim).arg("NX")).await {
                Ok(Some(_)) => tracing::info!(room, "cluster: a room written back into the directory"),
                Ok(None) => {}
                Err(e) => return tracing::debug!("cluster: {e}"),
            }
        }
        for (room, claim) in releases {
            match self.redis.query::<i64>(redis::cmd("EVAL").arg(RELEASE).arg(1).arg(room_key(&room)).arg(&claim)).await {
                Ok(_) => {
                    let mut claims = self.claims();
                    // (Claimed anew meanwhile: that claim stays.)
                    if claims.get(&room).is_some_and(|(c, _)| *c == claim) {
                        claims.remove(&room);
                    }
                }
                Err(e) => return tracing::debug!("cluster: {e}"),
            }
        }
    }
}
