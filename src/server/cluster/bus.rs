//! What the servers of a cluster say to each other over the bus, and how each message is sealed:
//! an HMAC-SHA256 with the cluster key over the sender, the recipient, a sequence number and the
//! message, so a client of the bus without the key can neither speak for a server nor replay
//! what one said (to the same server: the number; to another: the recipient).

use std::collections::HashMap;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::protocol::signal::{ErrorCode, PeerId, SignalPayload};

/// The largest sealed message taken from the bus for a server whose clients' messages are at
/// most `max_message`: one re-encoded inside a `Deliver`, with room for the envelope (JSON
/// escapes can double a string).
pub fn max_bus_message(max_message: usize) -> usize {
    max_message.saturating_mul(2).saturating_add(4096)
}

/// A server's id on the bus: 16 hex digits, new at each start.
pub type ServerId = String;

/// One server to another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case", deny_unknown_fields)]
pub enum BusMsg {
    /// A client of the sender asks to join a room this server holds.
    Join {
        /// The sender's number for this request, which the answer carries.
        ticket: u64,
        /// The room.
        room: String,
        /// The client's join token, checked here.
        join_token: String,
        /// Its display name (already cleaned).
        name: String,
        /// Its nonce, key and proof, for the host to check.
        nonce: String,
        /// Hex Ed25519 key.
        key: String,
        /// Its signature.
        proof: String,
    },
    /// The join went through: the client is `peer` in the room.
    Joined {
        /// The request's ticket.
        ticket: u64,
        /// The room (so a join answered after its client gave up can be undone).
        room: String,
        /// The client's peer id (this room's server hands them out).
        peer: PeerId,
        /// The room's host.
        host: PeerId,
        /// The host's key, hex.
        host_key: String,
    },
    /// The join was refused.
    Refused {
        /// The request's ticket.
        ticket: u64,
        /// Why, for the client.
        code: ErrorCode,
        /// Why, in words.
        message: String,
    },
    /// A signal from a member on the sender, to relay in the room.
    Signal {
        /// The room.
        room: String,
        /// The member that sent it.
        from: PeerId,
        /// Its recipient.
        to: PeerId,
        /// What it says.
        payload: SignalPayload,
    },
    /// A member on the sender left (its connection ended).
    Leave {
        /// The room.
        room: String,
        /// The member.
        peer: PeerId,
    },
    /// A message for a member on the receiver, encoded as the client is to get it.
    Deliver {
        /// The room.
        room: String,
        /// The member.
        peer: PeerId,
        /// The server message's JSON.
        text: String,
        /// The last: the connection closes after it.
        closing: bool,
    },
}

type HmacSha256 = Hmac<Sha256>;

/// What travels: sender, recipient, the sender's sequence number, the message; sealed as
/// `TAG.JSON`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    from: ServerId,
    to: ServerId,
    seq: u64,
    msg: BusMsg,
}

/// Why a message from the bus was not taken.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BusError {
    /// Over the limit.
    #[error("a bus message of {0} bytes, over the limit")]
    TooLarge(usize),
    /// No tag, or not the cluster key's.
    #[error("a bus message not sealed with the cluster key")]
    BadSeal,
    /// Sealed, but not a message this version knows.
    #[error("a bus message that does not parse: {0}")]
    Malformed(String),
    /// A sequence number already seen from that sender.
    #[error("a bus message from {0} replayed or out of order")]
    Replayed(ServerId),
    /// Our own message, back to us.
    #[error("a bus message from this server itself")]
    Own,
    /// Sealed for another server (replayed here).
    #[error("a bus message from {0} for another server")]
    NotForUs(ServerId),
}

/// One server's side of the bus: seals what it says, opens what it hears.
pub struct Seal {
    key: Vec<u8>,
    me: ServerId,
    max: usize,
    seq: u64,
    /// The last sequence number taken from each sender (servers are few: one entry each).
    last: HashMap<ServerId, u64>,
}

impl Seal {
    /// A server `me` of the cluster keyed `key`, taking messages of up to `max` bytes.
    pub fn new(key: &[u8], me: ServerId, max: usize) -> Seal {
        Seal { key: key.to_vec(), me, max, seq: 0, last: HashMap::new() }
    }

    /// This server's id.
    pub fn me(&self) -> &str {
        &self.me
    }

    fn tag(&self, json: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(json);
        mac
    }

    /// `msg` for server `to`, ready to publish.
    pub fn seal(&mut self, to: &str, msg: BusMsg) -> String {
        self.seq += 1;
        let json = serde_json::to_string(&Envelope { from: self.me.clone(), to: to.to_string(), seq: self.seq, msg }).expect("bus messages encode");
        let tag = hex::encode(self.tag(json.as_bytes()).finalize().into_bytes());
        format!("{tag}.{json}")
    }

    /// A message from the bus: its sender and what it says.
    pub fn open(&mut self, raw: &[u8]) -> Result<(ServerId, BusMsg), BusError> {
        if raw.len() > self.max {
            return Err(BusError::TooLarge(raw.len()));
        }
        let Some(dot) = raw.iter().position(|&b| b == b'.') else { return Err(BusError::BadSeal) };
        let (tag, json) = (&raw[..dot], &raw[dot + 1..]);
        let tag = hex::decode(tag).map_err(|_| BusError::BadSeal)?;
        self.tag(json).verify_slice(&tag).map_err(|_| BusError::BadSeal)?;
        let env: Envelope = serde_json::from_slice(json).map_err(|e| BusError::Malformed(e.to_string()))?;
        if env.from == self.me {
            return Err(BusError::Own);
        }
        if env.to != self.me {
            return Err(BusError::NotForUs(env.from));
        }
        let last = self.last.entry(env.from.clone()).or_insert(0);
        if env.seq <= *last {
            return Err(BusError::Replayed(env.from));
        }
        *last = env.seq;
        Ok((env.from, env.msg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leave() -> BusMsg {
        BusMsg::Leave { room: "r".into(), peer: 7 }
    }

    const MAX: usize = 1 << 17;

    fn seal(key: &[u8], me: &str) -> Seal {
        Seal::new(key, me.into(), MAX)
    }

    #[test]
    fn what_one_server_seals_another_with_the_key_opens_once() {
        let (mut a, mut b, mut c) = (seal(b"cluster key", "aa"), seal(b"cluster key", "bb"), seal(b"cluster key", "cc"));
        let sealed = a.seal("bb", leave());
        assert_eq!(b.open(sealed.as_bytes()), Ok(("aa".into(), leave())));
        assert_eq!(b.open(sealed.as_bytes()), Err(BusError::Replayed("aa".into())), "not twice");
        assert_eq!(c.open(sealed.as_bytes()), Err(BusError::NotForUs("aa".into())), "nor to another server");
        let own = a.seal("aa", leave());
        assert_eq!(a.open(own.as_bytes()), Err(BusError::Own));
        let next = a.seal("bb", leave());
        assert!(b.open(next.as_bytes()).is_ok(), "the next one is taken");
    }

    #[test]
    fn without_the_key_nothing_is_taken() {
        let (mut a, mut b) = (seal(b"cluster key", "aa"), seal(b"cluster key", "bb"));
        let mut stranger = seal(b"another key", "aa");
        assert_eq!(b.open(stranger.seal("bb", leave()).as_bytes()), Err(BusError::BadSeal));
        // The tag covers the sender and the message: neither can be changed.
        let sealed = a.seal("bb", leave());
        let forged = sealed.replace("\"aa\"", "\"cc\"");
        assert_eq!(b.open(forged.as_bytes()), Err(BusError::BadSeal));
        let forged = sealed.replace("\"peer\":7", "\"peer\":8");
        assert_eq!(b.open(forged.as_bytes()), Err(BusError::BadSeal));
        for junk in [&b""[..], b"no dot", b"zz.{}", b".", &[b'a'; MAX + 1]] {
            assert!(b.open(junk).is_err());
        }
    }

    #[test]
    fn a_sealed_message_of_an_unknown_shape_is_malformed_not_a_panic() {
        let mut b = seal(b"k", "bb");
        let json = r#"{"from":"aa","to":"bb","seq":1,"msg":{"t":"shout"}}"#;
        let tag = hex::encode(b.tag(json.as_bytes()).finalize().into_bytes());
        assert!(matches!(b.open(format!("{tag}.{json}").as_bytes()), Err(BusError::Malformed(_))));
    }
}
