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
    /// Open a room as its host. `room: None` lets the server pick an id.
    Create {
        /// Requested room id.
        room: Option<String>,
        /// `HKDF(key, "join")`, hex; participants must present the same.
        join_token: String,
        /// Display name.
        name: String,
    },
    /// Join an existing room as a participant.
    Join {
        /// Room id.
        room: String,
        /// Must equal the host's token.
        join_token: String,
        /// Display name.
        name: String,
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
    /// SDP offer (host → participant) with `HMAC(key, sdp)`.
    Offer {
        /// Session description.
        sdp: String,
        /// Hex HMAC-SHA256 over `sdp` with the room key.
        mac: String,
    },
    /// SDP answer (participant → host) with its MAC.
    Answer {
        /// Session description.
        sdp: String,
        /// Hex HMAC-SHA256 over `sdp` with the room key.
        mac: String,
    },
    /// The host also serves the room over HTTP at `addr` (`HOST:PORT`; `syncy host --http`),
    /// for a participant whose WebRTC link does not come up. Sent before the offer. Not signed:
    /// every HTTP answer is (see `net::http::fallback_server`).
    Fallback {
        /// `HOST:PORT`.
        addr: String,
    },
    /// The host turns the participant away (a room under `--approve`).
    Denied {
        /// Why, for the participant's user.
        reason: String,
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
    },
    /// Someone joined the room (sent to the host).
    PeerJoined {
        /// New peer.
        peer: PeerId,
        /// Its name.
        name: String,
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
            ClientMsg::Create { room: Some("r".into()), join_token: "t".into(), name: "h".into() },
            ClientMsg::Create { room: None, join_token: "t".into(), name: "h".into() },
            ClientMsg::Join { room: "r".into(), join_token: "t".into(), name: "p".into() },
            ClientMsg::Signal { to: 3, payload: SignalPayload::Offer { sdp: "v=0".into(), mac: "ab".into() } },
            ClientMsg::Signal { to: 3, payload: SignalPayload::Answer { sdp: "v=0".into(), mac: "ab".into() } },
            ClientMsg::Signal { to: 3, payload: SignalPayload::Ice { candidate: "c".into(), sdp_mid: Some("0".into()), sdp_mline_index: Some(0) } },
        ]
    }

    fn all_server() -> Vec<ServerMsg> {
        vec![
            ServerMsg::Created { room: "r".into(), peer: 1 },
            ServerMsg::Joined { room: "r".into(), peer: 2, host: 1 },
            ServerMsg::PeerJoined { peer: 2, name: "p".into() },
            ServerMsg::PeerLeft { peer: 2, name: "p".into() },
            ServerMsg::Signal { from: 1, payload: SignalPayload::Ice { candidate: "c".into(), sdp_mid: None, sdp_mline_index: None } },
            ServerMsg::Error { code: ErrorCode::RoomFull, message: "full".into() },
        ]
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
        assert!(decode_client(r#"{"type":"join","room":"r","join_token":"t","name":"n","x":1}"#, 1000).is_err());
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
