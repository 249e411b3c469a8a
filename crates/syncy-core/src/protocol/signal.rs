//! Signaling messages (peer ↔ server), JSON text frames over WebSocket.
//!
//! The server relays `Signal` payloads between members of one room without reading them; it
//! never sees media or the room key.

use serde::{Deserialize, Serialize};

/// A peer's id within a server, assigned by the server.
pub type PeerId = u64;

/// Largest signaling message the server and clients accept by default, in bytes.
pub const DEFAULT_MAX_MESSAGE: usize = 64 * 1024;

/// Client → server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMsg {
    /// Open a room as its host, or take it back after a restart: only the key the room id
    /// names may (`identity`).
    Create {
        /// Room id: `[LABEL-]FINGERPRINT` of `host_key`.
        room: String,
        /// `HKDF(key, "join")`, hex; participants must present the same.
        join_token: String,
        /// Display name.
        name: String,
        /// The host's public key (Ed25519, hex).
        host_key: String,
        /// The host's signature over room, join token and this connection's `Hello` nonce.
        proof: String,
    },
    /// Join an existing room as a participant.
    Join {
        /// Room id.
        room: String,
        /// Must equal the host's token.
        join_token: String,
        /// Display name.
        name: String,
        /// Fresh random hex (32 digits) the host's offer must be signed over, so no offer made
        /// for another set-up passes.
        nonce: String,
        /// The participant's public key in this room (Ed25519, hex): it signs the answer, and
        /// it is what the host approves, kicks and bans (`guest`).
        key: String,
        /// That key's signature over room, nonce and name (`guest::join_proof`): only its
        /// holder knocks under it, under that name.
        proof: String,
    },
    /// Relay `payload` to peer `to` of the same room.
    Signal {
        /// Recipient.
        to: PeerId,
        /// Opaque to the server.
        payload: SignalPayload,
    },
}

/// What peers exchange through the server to set up WebRTC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SignalPayload {
    /// SDP offer (host → participant), signed by the host (`auth::SetupAuth`).
    Offer {
        /// Session description.
        sdp: String,
        /// Hex Ed25519 signature over room, recipient, its nonce and `sdp`.
        sig: String,
    },
    /// SDP answer (participant → host), MACed with the room key (it holds the link) and
    /// signed with its own key (it is who it said in `Join`).
    Answer {
        /// Session description.
        sdp: String,
        /// Hex HMAC-SHA256 over room, sender, its nonce and key, and `sdp`.
        mac: String,
        /// Hex Ed25519 signature by the `Join` key over the same.
        sig: String,
    },
    /// The host also serves the room over HTTPS at `addr` (`HOST:PORT`; `syncy host --http`),
    /// for a participant whose WebRTC link does not come up. Sent before the offer, signed
    /// by the host as the offer is.
    Fallback {
        /// `HOST:PORT`.
        addr: String,
        /// Hex SHA-256 of the fallback's TLS certificate: the participant accepts that one only.
        cert: String,
        /// Hex pass for this participant: with the room key it MACs each request (alone, as
        /// the server sees it, it opens nothing).
        pass: String,
        /// Hex Ed25519 signature over room, recipient, its nonce, `addr`, `cert` and `pass`.
        sig: String,
    },
    /// The host turns the participant away (a room under `--approve`, or a banned key).
    Denied {
        /// Why, for the participant's user.
        reason: String,
        /// Hex Ed25519 signature over room, recipient, its nonce and key, and `reason`: a
        /// server cannot make a participant give up.
        sig: String,
    },
    /// A trickled ICE candidate.
    Ice {
        /// Candidate line.
        candidate: String,
        /// Media id it belongs to.
        sdp_mid: Option<String>,
        /// M-line index.
        sdp_mline_index: Option<u16>,
    },
}

/// Server → client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ServerMsg {
    /// First on every connection: what a host signs its `Create` over, so a `Create` seen
    /// on one connection (or before a restart) is worth nothing on another.
    Hello {
        /// Random hex.
        nonce: String,
    },
    /// The room exists and the caller is its host.
    Created {
        /// Room id.
        room: String,
        /// The host's peer id.
        peer: PeerId,
    },
    /// The caller joined a room.
    Joined {
        /// Room id.
        room: String,
        /// The caller's peer id.
        peer: PeerId,
        /// The host's peer id.
        host: PeerId,
        /// The host's public key as it proved to the server; the participant checks it
        /// against the link's room id.
        host_key: String,
    },
    /// Someone joined the room (sent to the host).
    PeerJoined {
        /// New peer.
        peer: PeerId,
        /// Its name.
        name: String,
        /// Its `Join` nonce.
        nonce: String,
        /// Its `Join` key.
        key: String,
        /// Its `Join` proof.
        proof: String,
    },
    /// Someone left the room.
    PeerLeft {
        /// Peer that left.
        peer: PeerId,
        /// Its name.
        name: String,
    },
    /// A relayed payload.
    Signal {
        /// Sender.
        from: PeerId,
        /// Payload as sent.
        payload: SignalPayload,
    },
    /// A refusal or failure; the server closes the connection after sending it.
    Error {
        /// Stable machine-readable code.
        code: ErrorCode,
        /// What went wrong, for people.
        message: String,
    },
}

/// Why the server refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Malformed or unexpected message.
    BadMessage,
    /// Message larger than the server accepts.
    TooLarge,
    /// Sending faster than the server accepts.
    RateLimited,
    /// Room id taken.
    RoomExists,
    /// The room id names another host key, or the proof is not signed for this connection.
    NotYourRoom,
    /// No such room.
    NoSuchRoom,
    /// Join token does not match.
    BadToken,
    /// Room has its maximum number of participants.
    RoomFull,
    /// Server has its maximum number of rooms.
    ServerFull,
    /// The host left; the room is closed.
    RoomClosed,
    /// No message for too long.
    Idle,
    /// Too far behind in reading what the server sends.
    TooSlow,
}

/// A display name as the server relays it (and a participant signs it): at most 32
/// characters, none of them control characters; one that reads as a number (which could pass
/// for someone's id in `kick`/`ban`: `42`, `+42`) gets a letter in front; nothing left is
/// `anonymous`.
pub fn clean_name(name: &str) -> String {
    let n: String = name.chars().filter(|c| !c.is_control()).take(32).collect();
    if n.trim().is_empty() {
        "anonymous".into()
    } else if n.chars().all(|c| c.is_ascii_digit()) || n.trim().parse::<PeerId>().is_ok() {
        format!("n{}", &n[..n.len().min(31)])
    } else {
        n
    }
}

/// Decodes a client message, bounded by `max` bytes.
pub fn decode_client(text: &str, max: usize) -> Result<ClientMsg, SignalError> {
    if text.len() > max {
        return Err(SignalError::TooLarge(text.len(), max));
    }
    Ok(serde_json::from_str(text)?)
}

/// Decodes a server message, bounded by `max` bytes.
pub fn decode_server(text: &str, max: usize) -> Result<ServerMsg, SignalError> {
    if text.len() > max {
        return Err(SignalError::TooLarge(text.len(), max));
    }
    Ok(serde_json::from_str(text)?)
}

/// Encodes any signaling message.
pub fn encode<T: Serialize>(msg: &T) -> String {
    serde_json::to_string(msg).expect("signaling messages always serialize")
}

/// A signaling message that could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    /// Over the size bound.
    #[error("message of {0} bytes exceeds the limit of {1}")]
    TooLarge(usize, usize),
    /// Not valid JSON for any known message.
    #[error("malformed message: {0}")]
    Json(#[from] serde_json::Error),
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn all_client() -> Vec<ClientMsg> {
        vec![
            ClientMsg::Create { room: "r".into(), join_token: "t".into(), name: "h".into(), host_key: "k".into(), proof: "p".into() },
            ClientMsg::Join { room: "r".into(), join_token: "t".into(), name: "p".into(), nonce: "n".into(), key: "k".into(), proof: "p".into() },
            ClientMsg::Signal { to: 3, payload: SignalPayload::Offer { sdp: "v=0".into(), sig: "ab".into() } },
            ClientMsg::Signal { to: 3, payload: SignalPayload::Fallback { addr: "a:1".into(), cert: "cd".into(), pass: "ef".into(), sig: "ab".into() } },
            ClientMsg::Signal { to: 3, payload: SignalPayload::Answer { sdp: "v=0".into(), mac: "ab".into(), sig: "cd".into() } },
            ClientMsg::Signal { to: 3, payload: SignalPayload::Ice { candidate: "c".into(), sdp_mid: Some("0".into()), sdp_mline_index: Some(0) } },
        ]
    }

    fn all_server() -> Vec<ServerMsg> {
        vec![
            ServerMsg::Hello { nonce: "n".into() },
            ServerMsg::Created { room: "r".into(), peer: 1 },
            ServerMsg::Joined { room: "r".into(), peer: 2, host: 1, host_key: "k".into() },
            ServerMsg::PeerJoined { peer: 2, name: "p".into(), nonce: "n".into(), key: "k".into(), proof: "p".into() },
            ServerMsg::PeerLeft { peer: 2, name: "p".into() },
            ServerMsg::Signal { from: 1, payload: SignalPayload::Ice { candidate: "c".into(), sdp_mid: None, sdp_mline_index: None } },
            ServerMsg::Error { code: ErrorCode::RoomFull, message: "full".into() },
        ]
    }

    #[test]
    fn names_are_kept_short_printable_and_never_an_id() {
        assert_eq!(clean_name("ann"), "ann");
        assert_eq!(clean_name("a\u{1b}]0;x\u{7}b"), "a]0;xb");
        assert_eq!(clean_name(" \n "), "anonymous");
        assert_eq!(clean_name("4294967299"), "n4294967299");
        assert_eq!(clean_name("+5"), "n+5");
        assert_eq!(clean_name(" 42"), "n 42");
        assert_eq!(clean_name(&"7".repeat(40)).len(), 32);
        assert_eq!(clean_name(&"é".repeat(40)).chars().count(), 32);
        for n in ["ann", "4294967299", &"7".repeat(40), "x\ty"] {
            assert_eq!(clean_name(&clean_name(n)), clean_name(n), "what the server relays is what was signed");
        }
    }

    #[test]
    fn every_message_round_trips() {
        for m in all_client() {
            assert_eq!(decode_client(&encode(&m), DEFAULT_MAX_MESSAGE).unwrap(), m);
        }
        for m in all_server() {
            assert_eq!(decode_server(&encode(&m), DEFAULT_MAX_MESSAGE).unwrap(), m);
        }
    }

    #[test]
    fn rejects_truncated_oversized_and_unknown() {
        for m in all_client() {
            let s = encode(&m);
            for cut in 0..s.len() {
                assert!(decode_client(&s[..cut], DEFAULT_MAX_MESSAGE).is_err(), "{}", &s[..cut]);
            }
            assert!(matches!(decode_client(&s, s.len() - 1), Err(SignalError::TooLarge(..))));
        }
        assert!(decode_client(r#"{"type":"teleport"}"#, 1000).is_err());
        assert!(decode_client(r#"{"type":"join","room":"r","join_token":"t","name":"n","nonce":"n","x":1}"#, 1000).is_err());
        assert!(decode_server(r#"{"type":"error","code":"nope","message":""}"#, 1000).is_err());
    }

    proptest! {
        #[test]
        fn decoders_are_total(s in ".{0,300}") {
            let _ = decode_client(&s, DEFAULT_MAX_MESSAGE);
            let _ = decode_server(&s, DEFAULT_MAX_MESSAGE);
        }
    }
}
