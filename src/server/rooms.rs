//! Room membership: who is in which room, and where to deliver their messages.

use std::collections::HashMap;

use super::ServerConfig;
pub use super::outbox::Outbox;
use super::slots::Source;
use crate::protocol::auth::valid_nonce;
use crate::protocol::identity::HostId;
use crate::protocol::link::valid_room_id;
use crate::protocol::signal::{ErrorCode, PeerId, ServerMsg, SignalPayload};

struct Member {
    name: String,
    outbox: Outbox,
}

struct Room {
    host: PeerId,
    /// The host's public key, which the room id names.
    host_key: HostId,
    token: String,
    members: HashMap<PeerId, Member>,
    /// Where the host connected from: rooms count against it.
    owner: Source,
}

/// All rooms of a server.
pub struct Rooms {
    cfg: ServerConfig,
    rooms: HashMap<String, Room>,
    /// Rooms open per source, so one address cannot take every room slot.
    by_source: HashMap<Source, usize>,
    /// How many peer ids have been handed out.
    issued: u32,
    /// Keys of the permutation that turns that count into an id.
    id_keys: [u32; 4],
}

/// A keyed bijection on 32-bit numbers (a four-round Feistel network over two 16-bit halves):
/// distinct counts give distinct ids, in an order only the keys tell.
fn permute(count: u32, keys: [u32; 4]) -> u32 {
    let (mut l, mut r) = ((count >> 16) as u16, count as u16);
    for k in keys {
        let f = (u32::from(r) ^ k).wrapping_mul(0x9E37_79B1).rotate_left(13) >> 16;
        (l, r) = (r, l ^ f as u16);
    }
    (u32::from(l) << 16) | u32::from(r)
}

/// The largest signal a participant may send (an answer's SDP is a few KiB, a candidate less
/// than one): a room's host takes many participants' signals, within one outbox.
pub const MAX_PARTICIPANT_SIGNAL: usize = 32 * 1024;

/// A refusal: code and message for the client.
pub type Refusal = (ErrorCode, String);

impl Rooms {
    /// No rooms yet.
    pub fn new(cfg: ServerConfig) -> Self {
        Rooms { cfg, rooms: HashMap::new(), by_source: HashMap::new(), issued: 0, id_keys: rand::random() }
    }

    /// A peer id never handed out before by this server (ids are below 2^32, as hosts expect)
    /// that says nothing of how many came before it: a keyed permutation of a count.
    fn new_peer(&mut self) -> PeerId {
        loop {
            self.issued = self.issued.wrapping_add(1);
            // The fuzz target signals peers by small numbers: counted ids there.
            let id = if cfg!(fuzzing) { self.issued } else { permute(self.issued, self.id_keys) };
            if id != 0 {
                return PeerId::from(id);
            }
        }
    }

    /// Opens a room with the caller as host, once `check_claim` has verified its key.
    pub fn create(&mut self, room: String, token: String, name: String, host_key: HostId, owner: Source, outbox: Outbox) -> Result<(String, PeerId), Refusal> {
        if let Some(only) = &self.cfg.only_room
            && *only != room
        {
            return Err((ErrorCode::NotYourRoom, "this signaling server is inside a host and serves its room only".into()));
        }
        if self.rooms.len() >= self.cfg.max_rooms {
            return Err((ErrorCode::ServerFull, format!("this server already has its maximum of {} rooms", self.cfg.max_rooms)));
        }
        if self.rooms.contains_key(&room) {
            return Err((ErrorCode::RoomExists, format!("room {room:?} is already open on this server")));
        }
        let held = self.by_source.get(&owner).copied().unwrap_or(0);
        if held >= self.cfg.max_rooms_per_source {
            let max = self.cfg.max_rooms_per_source;
            return Err((ErrorCode::ServerFull, format!("this server already has {max} rooms from your address, its maximum for one")));
        }
        let peer = self.new_peer();
        let mut members = HashMap::new();
        members.insert(peer, Member { name, outbox });
        self.rooms.insert(room.clone(), Room { host: peer, host_key, token, members, owner });
        *self.by_source.entry(owner).or_insert(0) += 1;
        Ok((room, peer))
    }

    /// Adds a participant; tells the host.
    /// `who`: its nonce, key and proof, which the host checks.
    pub fn join(&mut self, room: &str, token: &str, name: String, who: (String, String, String), outbox: Outbox) -> Result<(PeerId, PeerId, HostId), Refusal> {
        let (nonce, key, proof) = who;
        if !valid_nonce(&nonce) {
            return Err((ErrorCode::BadMessage, "a join's nonce must be 32 hex digits".into()));
        }
        // Only its shape: what the key is worth (a signed answer) is the host's to check.
        if crate::protocol::guest::GuestId::from_hex(&key).is_none() {
            return Err((ErrorCode::BadMessage, "a join's key must be an Ed25519 public key in hex".into()));
        }
        let max = self.cfg.max_peers;
        let Some(r) = self.rooms.get(room) else {
            return Err((ErrorCode::NoSuchRoom, format!("no room {room:?} on this server (has the host quit?)")));
        };
        // Constant-time compare is not needed for a token that is itself a one-way hash
        // of the key, but it costs nothing.
        if !crate::protocol::auth::constant_eq(r.token.as_bytes(), token.as_bytes()) {
            return Err((ErrorCode::BadToken, "wrong join token: the link's key does not match this room".into()));
        }
        if r.members.len() > max {
            return Err((ErrorCode::RoomFull, format!("room {room:?} is full ({max} participants)")));
        }
        let peer = self.new_peer();
        let r = self.rooms.get_mut(room).expect("checked above");
        let (host, host_key) = (r.host, r.host_key);
        if let Some(h) = r.members.get(&host) {
            // (A host too far behind to take this is let go, and the room with it.)
            h.outbox.push(&ServerMsg::PeerJoined { peer, name: name.clone(), nonce, key, proof });
        }
        r.members.insert(peer, Member { name, outbox });
        Ok((peer, host, host_key))
    }

    /// Delivers a signal from `from` to `to`: both in `room`, and one of them its host
    /// (participants have nothing to say to each other). `Ok(false)` if not delivered (the
    /// recipient left). A participant's signal is at most [`MAX_PARTICIPANT_SIGNAL`] bytes, and
    /// is refused while the host has half its outbox waiting: a participant that floods the
    /// host is closed, not the host (which would close the room).
    pub fn relay(&self, room: &str, from: PeerId, to: PeerId, payload: SignalPayload) -> Result<bool, Refusal> {
        let Some(r) = self.rooms.get(room) else { return Ok(false) };
        if !r.members.contains_key(&from) || (from != r.host && to != r.host) {
            return Ok(false);
        }
        let Some(m) = r.members.get(&to) else { return Ok(false) };
        // Encoded once: measured, then queued as is.
        let text = crate::protocol::signal::encode(&ServerMsg::Signal { from, payload });
        if from != r.host {
            if text.len() > MAX_PARTICIPANT_SIGNAL {
                return Err((ErrorCode::TooLarge, format!("a participant's signal is at most {} KiB", MAX_PARTICIPANT_SIGNAL / 1024)));
            }
            if m.outbox.half_full() {
                return Err((ErrorCode::RateLimited, "the host is behind on its messages: too many signals".into()));
            }
        }
        Ok(m.outbox.push_text(text, false))
    }

    /// Removes a member; if it was the host, the room closes and everyone is told (true).
    pub fn leave(&mut self, room: &str, peer: PeerId) -> bool {
        let Some(r) = self.rooms.get_mut(room) else { return false };
        let Some(m) = r.members.remove(&peer) else { return false };
        if peer == r.host {
            let r = self.rooms.remove(room).expect("present");
            if let Some(n) = self.by_source.get_mut(&r.owner) {
                *n -= 1;
                if *n == 0 {
                    self.by_source.remove(&r.owner);
                }
            }
            let closed = ServerMsg::Error { code: ErrorCode::RoomClosed, message: "the host left; the room is closed".into() };
            for (_, m) in r.members {
                m.outbox.push(&closed);
            }
            return true;
        }
        if let Some(h) = r.members.get(&r.host) {
            h.outbox.push(&ServerMsg::PeerLeft { peer, name: m.name });
        }
        false
    }

    /// Forgets a participant whose connection was on a server found gone, without telling the
    /// host: it has lost its signaling, not necessarily left (as when a lone server restarts,
    /// its WebRTC link carries on; a host hearing `PeerLeft` would drop it).
    pub fn forget(&mut self, room: &str, peer: PeerId) {
        if let Some(r) = self.rooms.get_mut(room)
            && peer != r.host
        {
            r.members.remove(&peer);
        }
    }

    /// The rooms open here.
    pub fn ids(&self) -> Vec<String> {
        self.rooms.keys().cloned().collect()
    }

    /// Whether `room` is open here.
    pub fn has(&self, room: &str) -> bool {
        self.rooms.contains_key(room)
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

/// Checks a `Create`: a well-formed room id and token, and a key that the room id names and
/// that signed this connection's `nonce`. A server that has never seen the room (or has
/// just restarted) can tell its host from anyone else.
pub fn check_claim(room: &str, token: &str, host_key: &str, proof: &str, nonce: &str) -> Result<HostId, Refusal> {
    let bad = |m: &str| Err((ErrorCode::BadMessage, m.to_string()));
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return bad("join token must be 64 hex characters");
    }
    if !valid_room_id(room) {
        return bad("room id must be 1-64 characters of A-Z a-z 0-9 _ -");
    }
    let Some(key) = HostId::from_hex(host_key) else {
        return bad("the host key is not an Ed25519 public key in hex");
    };
    if !key.owns_room(room) {
        return Err((ErrorCode::NotYourRoom, format!("room {room:?} belongs to another host key: its id names the key that may open it")));
    }
    if !key.verify_create(room, token, nonce, proof) {
        return Err((ErrorCode::NotYourRoom, "the room's proof is not signed by its host key for this connection".into()));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::identity::HostSecret;
    use crate::server::outbox::OutboxReader;

    fn outbox() -> (Outbox, OutboxReader) {
        super::super::outbox::outbox(1 << 20)
    }

    fn from(last: u8) -> Source {
        Source::of([10, 0, 0, last].into())
    }

    const NONCE: &str = "00112233445566778899aabbccddeeff";

    /// A participant's key, as it sends it.
    fn guest_key() -> String {
        crate::protocol::guest::GuestSecret::random().key_for("r").public().to_hex()
    }

    fn host() -> HostId {
        HostSecret::random().host_key().public()
    }

    #[test]
    fn peer_ids_are_unique_below_2_32_and_do_not_count_up() {
        let keys = [0x1234_5678, 0x9abc_def0, 0x0f0f_0f0f, 0xdead_beef];
        let ids: Vec<u32> = (0..200_000).map(|c| permute(c, keys)).collect();
        let distinct: std::collections::HashSet<u32> = ids.iter().copied().collect();
        assert_eq!(distinct.len(), ids.len(), "a bijection: no id twice");
        let rising = ids.windows(2).filter(|w| w[1] == w[0] + 1).count();
        assert!(rising < 10, "{rising} ids follow the one before");
        assert_ne!(permute(1, keys), permute(1, [1, 2, 3, 4]), "the keys choose the order");
        let mut rooms = Rooms::new(ServerConfig::default());
        let (a, b) = (rooms.new_peer(), rooms.new_peer());
        assert!(a != b && a != 0 && b != 0);
    }

    #[test]
    fn admission_and_limits() {
        let cfg = ServerConfig { max_peers: 2, max_rooms: 1, ..Default::default() };
        let mut rooms = Rooms::new(cfg);
        let tok = "a".repeat(64);
        let (h, mut hrx) = outbox();
        let key = host();
        let (room, host_peer) = rooms.create(key.fingerprint(), tok.clone(), "h".into(), key, from(1), h).unwrap();
        let (o, _) = outbox();
        let other = host();
        assert_eq!(rooms.create(other.fingerprint(), tok.clone(), "x".into(), other, from(1), o).unwrap_err().0, ErrorCode::ServerFull);
        let (o, _) = outbox();
        assert_eq!(rooms.join(&room, &"b".repeat(64), "p".into(), (NONCE.into(), guest_key(), String::new()), o).unwrap_err().0, ErrorCode::BadToken);
        let (o, _) = outbox();
        assert_eq!(rooms.join("nope", &tok, "p".into(), (NONCE.into(), guest_key(), String::new()), o).unwrap_err().0, ErrorCode::NoSuchRoom);
        let (o, _) = outbox();
        assert_eq!(rooms.join(&room, &tok, "p".into(), ("short".into(), guest_key(), String::new()), o).unwrap_err().0, ErrorCode::BadMessage);
        let (o1, _r1) = outbox();
        let (o, _) = outbox();
        assert_eq!(rooms.join(&room, &tok, "p".into(), (NONCE.into(), "ab".repeat(33), String::new()), o).unwrap_err().0, ErrorCode::BadMessage, "no key");
        let g1 = guest_key();
        let (p1, h1, k1) = rooms.join(&room, &tok, "p1".into(), (NONCE.into(), g1.clone(), String::new()), o1).unwrap();
        assert_eq!((h1, k1), (host_peer, key));
        assert_eq!(hrx.try_recv_msg().unwrap(), ServerMsg::PeerJoined { peer: p1, name: "p1".into(), nonce: NONCE.into(), key: g1, proof: String::new() });
        let (o2, _r2) = outbox();
        rooms.join(&room, &tok, "p2".into(), (NONCE.into(), guest_key(), String::new()), o2).unwrap();
        let (o3, _r3) = outbox();
        let (code, msg) = rooms.join(&room, &tok, "p3".into(), (NONCE.into(), guest_key(), String::new()), o3).unwrap_err();
        assert_eq!(code, ErrorCode::RoomFull);
        assert!(msg.contains("full"));
        rooms.leave(&room, p1);
        let _ = hrx.try_recv_msg();
        assert_eq!(hrx.try_recv_msg().unwrap(), ServerMsg::PeerLeft { peer: p1, name: "p1".into() });
    }

    #[test]
    fn host_leaving_closes_the_room() {
        let mut rooms = Rooms::new(ServerConfig::default());
        let tok = "c".repeat(64);
        let (h, _hrx) = outbox();
        let key = host();
        let (room, host_peer) = rooms.create(key.fingerprint(), tok.clone(), "h".into(), key, from(1), h).unwrap();
        let (o, mut prx) = outbox();
        rooms.join(&room, &tok, "p".into(), (NONCE.into(), guest_key(), String::new()), o).unwrap();
        rooms.leave(&room, host_peer);
        assert!(rooms.is_empty());
        assert!(matches!(prx.try_recv_msg().unwrap(), ServerMsg::Error { code: ErrorCode::RoomClosed, .. }));
    }

    #[test]
    fn only_the_key_a_room_id_names_may_open_it_and_only_with_this_connections_nonce() {
        let (secret, tok) = (HostSecret::random(), "d".repeat(64));
        let key = secret.host_key();
        let room = key.room_id(Some("films"));
        let proof = key.create_proof(&room, &tok, NONCE);
        assert_eq!(check_claim(&room, &tok, &key.public().to_hex(), &proof, NONCE), Ok(key.public()));
        // A participant (or anyone) with a key of its own cannot claim the host's room id.
        let thief = HostSecret::random().host_key();
        let stolen = thief.create_proof(&room, &tok, NONCE);
        assert_eq!(check_claim(&room, &tok, &thief.public().to_hex(), &stolen, NONCE).unwrap_err().0, ErrorCode::NotYourRoom);
        // Nor replay the host's own proof on another connection, or for another token.
        assert_eq!(check_claim(&room, &tok, &key.public().to_hex(), &proof, "ffeeddccbbaa99887766554433221100").unwrap_err().0, ErrorCode::NotYourRoom);
        assert_eq!(check_claim(&room, &"e".repeat(64), &key.public().to_hex(), &proof, NONCE).unwrap_err().0, ErrorCode::NotYourRoom);
        assert_eq!(check_claim(&room, &tok, "zz", &proof, NONCE).unwrap_err().0, ErrorCode::BadMessage);
        assert_eq!(check_claim("a b", &tok, &key.public().to_hex(), &proof, NONCE).unwrap_err().0, ErrorCode::BadMessage);
    }

    /// A room of a fresh key from `owner`.
    fn open(rooms: &mut Rooms, owner: Source) -> Result<(String, PeerId, OutboxReader), Refusal> {
        let key = host();
        let (h, hrx) = outbox();
        rooms.create(key.fingerprint(), "f".repeat(64), "h".into(), key, owner, h).map(|(r, p)| (r, p, hrx))
    }

    #[test]
    fn one_address_cannot_take_every_room_and_its_rooms_come_back_when_closed() {
        let cfg = ServerConfig { max_rooms: 100, max_rooms_per_source: 3, ..Default::default() };
        let mut rooms = Rooms::new(cfg);
        let held: Vec<_> = (0..3).map(|_| open(&mut rooms, from(1)).unwrap()).collect();
        let (code, msg) = open(&mut rooms, from(1)).unwrap_err();
        assert_eq!(code, ErrorCode::ServerFull);
        assert!(msg.contains("3 rooms from your address"), "{msg}");
        // Another address is not affected.
        open(&mut rooms, from(2)).unwrap();
        // A room closed gives its slot back.
        let (room, host_peer, _) = &held[0];
        rooms.leave(room, *host_peer);
        open(&mut rooms, from(1)).unwrap();
    }

    #[test]
    fn a_hosts_own_server_opens_its_room_only() {
        let key = host();
        let cfg = ServerConfig { only_room: Some(key.fingerprint()), ..Default::default() };
        let mut rooms = Rooms::new(cfg);
        assert_eq!(open(&mut rooms, from(1)).unwrap_err().0, ErrorCode::NotYourRoom);
        let (h, _hrx) = outbox();
        rooms.create(key.fingerprint(), "f".repeat(64), "h".into(), key, from(1), h).unwrap();
    }

    #[test]
    fn signals_go_between_the_host_and_a_participant_only_from_a_member() {
        let mut rooms = Rooms::new(ServerConfig::default());
        let (room, host_peer, mut hrx) = open(&mut rooms, from(1)).unwrap();
        let tok = "f".repeat(64);
        let (o1, mut r1) = outbox();
        let (p1, ..) = rooms.join(&room, &tok, "p1".into(), (NONCE.into(), guest_key(), String::new()), o1).unwrap();
        let (o2, mut r2) = outbox();
        let (p2, ..) = rooms.join(&room, &tok, "p2".into(), (NONCE.into(), guest_key(), String::new()), o2).unwrap();
        while hrx.try_recv_msg().is_some() {}
        let ice = || SignalPayload::Ice { candidate: "c".into(), sdp_mid: None, sdp_mline_index: None };
        assert!(rooms.relay(&room, p1, host_peer, ice()).unwrap());
        assert!(matches!(hrx.try_recv_msg(), Some(ServerMsg::Signal { from, .. }) if from == p1));
        assert!(rooms.relay(&room, host_peer, p2, ice()).unwrap());
        assert!(matches!(r2.try_recv_msg(), Some(ServerMsg::Signal { from, .. }) if from == host_peer));
        assert!(!rooms.relay(&room, p1, p2, ice()).unwrap(), "participant to participant");
        assert!(r2.try_recv_msg().is_none());
        // A member that left (whose RoomClosed, say, it never read) speaks for no one.
        rooms.leave(&room, p1);
        assert!(!rooms.relay(&room, p1, host_peer, ice()).unwrap());
        while let Some(m) = hrx.try_recv_msg() {
            assert!(matches!(m, ServerMsg::PeerLeft { .. }), "{m:?}");
        }
        assert!(r1.try_recv_msg().is_none());
    }

    #[test]
    fn a_participant_flooding_the_host_is_refused_and_the_host_keeps_its_room() {
        let mut rooms = Rooms::new(ServerConfig::default());
        let (room, host_peer, _hrx) = open(&mut rooms, from(1)).unwrap();
        let (o, _r) = outbox();
        let (p, ..) = rooms.join(&room, &"f".repeat(64), "p".into(), (NONCE.into(), guest_key(), String::new()), o).unwrap();
        let big = |n: usize| SignalPayload::Ice { candidate: "c".repeat(n), sdp_mid: None, sdp_mline_index: None };
        assert_eq!(rooms.relay(&room, p, host_peer, big(40_000)).unwrap_err().0, ErrorCode::TooLarge);
        // The host does not read: the participant is refused once half its outbox waits, and
        // the host's outbox never overflows (which would close the room).
        let mut sent = 0;
        let refused = loop {
            match rooms.relay(&room, p, host_peer, big(30_000)) {
                Ok(true) => sent += 1,
                Ok(false) => panic!("not delivered"),
                Err(refusal) => break refusal,
            }
        };
        assert_eq!(refused.0, ErrorCode::RateLimited);
        assert!(sent >= 4, "{sent}");
        assert!(rooms.rooms[&room].members.contains_key(&host_peer), "the host is still in its room");
    }
}
