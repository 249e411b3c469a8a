//! Room membership: who is in which room, and where to deliver their messages.

use std::collections::HashMap;

use rand::Rng;
use tokio::sync::mpsc;

use super::ServerConfig;
use crate::protocol::link::valid_room_id;
use crate::protocol::signal::{ErrorCode, PeerId, ServerMsg};

/// Outbound queue of one connection. Bounded: a client that does not read is dropped.
pub type Outbox = mpsc::Sender<ServerMsg>;

struct Member {
    name: String,
    outbox: Outbox,
}

struct Room {
    host: PeerId,
    token: String,
    members: HashMap<PeerId, Member>,
}

/// All rooms of a server.
pub struct Rooms {
    cfg: ServerConfig,
    rooms: HashMap<String, Room>,
    next_peer: PeerId,
}

/// A refusal: code and message for the client.
pub type Refusal = (ErrorCode, String);

impl Rooms {
    /// No rooms yet.
    pub fn new(cfg: ServerConfig) -> Self {
        Rooms { cfg, rooms: HashMap::new(), next_peer: 1 }
    }

    fn new_peer(&mut self) -> PeerId {
        let p = self.next_peer;
        self.next_peer += 1;
        p
    }

    /// Opens a room with the caller as host.
    pub fn create(&mut self, room: Option<String>, token: String, name: String, outbox: Outbox) -> Result<(String, PeerId), Refusal> {
        if self.rooms.len() >= self.cfg.max_rooms {
            return Err((ErrorCode::ServerFull, format!("this server already has its maximum of {} rooms", self.cfg.max_rooms)));
        }
        if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err((ErrorCode::BadMessage, "join token must be 64 hex characters".into()));
        }
        let room = match room {
            Some(r) if !valid_room_id(&r) => {
                return Err((ErrorCode::BadMessage, "room id must be 1-64 characters of A-Z a-z 0-9 _ -".into()));
            }
            Some(r) if self.rooms.contains_key(&r) => {
                return Err((ErrorCode::RoomExists, format!("room {r:?} already exists on this server")));
            }
            Some(r) => r,
            None => loop {
                let r = random_room_id();
                if !self.rooms.contains_key(&r) {
                    break r;
                }
            },
        };
        let peer = self.new_peer();
        let mut members = HashMap::new();
        members.insert(peer, Member { name, outbox });
        self.rooms.insert(room.clone(), Room { host: peer, token, members });
        Ok((room, peer))
    }

    /// Adds a participant; tells the host.
    pub fn join(&mut self, room: &str, token: &str, name: String, outbox: Outbox) -> Result<(PeerId, PeerId), Refusal> {
        let max = self.cfg.max_peers;
        let Some(r) = self.rooms.get(room) else {
            return Err((ErrorCode::NoSuchRoom, format!("no room {room:?} on this server (has the host quit?)")));
        };
        // Constant-time compare is not needed for a token that is itself a one-way hash
        // of the key, but it costs nothing.
        if !constant_eq(r.token.as_bytes(), token.as_bytes()) {
            return Err((ErrorCode::BadToken, "wrong join token: the link's key does not match this room".into()));
        }
        if r.members.len() > max {
            return Err((ErrorCode::RoomFull, format!("room {room:?} is full ({max} participants)")));
        }
        let peer = self.new_peer();
        let r = self.rooms.get_mut(room).expect("checked above");
        let host = r.host;
        if let Some(h) = r.members.get(&host) {
            let _ = h.outbox.try_send(ServerMsg::PeerJoined { peer, name: name.clone() });
        }
        r.members.insert(peer, Member { name, outbox });
        Ok((peer, host))
    }

    /// Delivers `msg` from `from` to `to` if both are in `room`. Returns false if `to` is not.
    pub fn relay(&self, room: &str, to: PeerId, msg: ServerMsg) -> bool {
        match self.rooms.get(room).and_then(|r| r.members.get(&to)) {
            Some(m) => {
                let _ = m.outbox.try_send(msg);
                true
            }
            None => false,
        }
    }

    /// Removes a member; if it was the host, the room closes and everyone is told.
    pub fn leave(&mut self, room: &str, peer: PeerId) {
        let Some(r) = self.rooms.get_mut(room) else { return };
        let Some(m) = r.members.remove(&peer) else { return };
        if peer == r.host {
            let r = self.rooms.remove(room).expect("present");
            for (_, m) in r.members {
                let _ = m.outbox.try_send(ServerMsg::Error { code: ErrorCode::RoomClosed, message: "the host left; the room is closed".into() });
            }
        } else if let Some(h) = r.members.get(&r.host) {
            let _ = h.outbox.try_send(ServerMsg::PeerLeft { peer, name: m.name });
        }
    }

    /// Number of rooms.
    pub fn len(&self) -> usize {
        self.rooms.len()
    }

    /// Whether there are no rooms.
    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn random_room_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let mut rng = rand::rng();
    (0..8).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbox() -> (Outbox, mpsc::Receiver<ServerMsg>) {
        mpsc::channel(16)
    }

    #[test]
    fn admission_and_limits() {
        let cfg = ServerConfig { max_peers: 2, max_rooms: 1, ..Default::default() };
        let mut rooms = Rooms::new(cfg);
        let tok = "a".repeat(64);
        let (h, mut hrx) = outbox();
        let (room, host) = rooms.create(Some("r".into()), tok.clone(), "h".into(), h).unwrap();
        let (o, _) = outbox();
        assert_eq!(rooms.create(None, tok.clone(), "x".into(), o).unwrap_err().0, ErrorCode::ServerFull);
        let (o, _) = outbox();
        assert_eq!(rooms.join(&room, &"b".repeat(64), "p".into(), o).unwrap_err().0, ErrorCode::BadToken);
        let (o, _) = outbox();
        assert_eq!(rooms.join("nope", &tok, "p".into(), o).unwrap_err().0, ErrorCode::NoSuchRoom);
        let (o1, _r1) = outbox();
        let (p1, h1) = rooms.join(&room, &tok, "p1".into(), o1).unwrap();
        assert_eq!(h1, host);
        assert_eq!(hrx.try_recv().unwrap(), ServerMsg::PeerJoined { peer: p1, name: "p1".into() });
        let (o2, _r2) = outbox();
        rooms.join(&room, &tok, "p2".into(), o2).unwrap();
        let (o3, _r3) = outbox();
        let (code, msg) = rooms.join(&room, &tok, "p3".into(), o3).unwrap_err();
        assert_eq!(code, ErrorCode::RoomFull);
        assert!(msg.contains("full"));
        rooms.leave(&room, p1);
        let _ = hrx.try_recv();
        assert_eq!(hrx.try_recv().unwrap(), ServerMsg::PeerLeft { peer: p1, name: "p1".into() });
    }

    #[test]
    fn host_leaving_closes_the_room() {
        let mut rooms = Rooms::new(ServerConfig::default());
        let tok = "c".repeat(64);
        let (h, _hrx) = outbox();
        let (room, host) = rooms.create(None, tok.clone(), "h".into(), h).unwrap();
        let (o, mut prx) = outbox();
        rooms.join(&room, &tok, "p".into(), o).unwrap();
        rooms.leave(&room, host);
        assert!(rooms.is_empty());
        assert!(matches!(prx.try_recv().unwrap(), ServerMsg::Error { code: ErrorCode::RoomClosed, .. }));
    }
}
