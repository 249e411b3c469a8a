//! Room links: `syncy://HOST:PORT/ROOM#KEY` (or `syncys://` for a TLS signaling server).
//! The key is base64url (no padding) and is never sent to the server.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::auth::{KEY_LEN, RoomKey};

/// Longest room id accepted, here and by the server.
pub const MAX_ROOM_LEN: usize = 64;

/// A parsed room link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Signaling server host (name, IPv4, or IPv6 without brackets).
    pub host: String,
    /// Signaling server port.
    pub port: u16,
    /// Room id.
    pub room: String,
    /// Room key.
    pub key: RoomKey,
    /// The signaling server speaks TLS (`syncys://`, `wss://`).
    pub tls: bool,
}

/// Why a link could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LinkError {
    /// The text does not start with `syncy://` or `syncys://`.
    #[error("a Syncy link starts with syncy:// or syncys:// (got {0:?})")]
    Scheme(String),
    /// No `#KEY` part.
    #[error("the link has no #KEY part; copy the whole link, including what follows #")]
    NoKey,
    /// The key is not 16 bytes of base64url.
    #[error("the link's key is not valid (expected 22 base64url characters)")]
    BadKey,
    /// Host or port missing or malformed.
    #[error("the link's server address is not HOST:PORT")]
    BadAddress,
    /// Room id missing, too long or with characters outside `[A-Za-z0-9_-]`.
    #[error("the link's room id is missing or invalid")]
    BadRoom,
}

/// Whether a room id is acceptable: 1..=64 characters of `[A-Za-z0-9_-]`.
pub fn valid_room_id(room: &str) -> bool {
    !room.is_empty() && room.len() <= MAX_ROOM_LEN && room.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Link {
    /// Parses a link; total over any input.
    pub fn parse(text: &str) -> Result<Link, LinkError> {
        let text = text.trim();
        let (tls, rest) = match (text.strip_prefix("syncy://"), text.strip_prefix("syncys://")) {
            (Some(rest), _) => (false, rest),
            (None, Some(rest)) => (true, rest),
            (None, None) => return Err(LinkError::Scheme(text.chars().take(16).collect())),
        };
        let (before, key) = rest.split_once('#').ok_or(LinkError::NoKey)?;
        let key = URL_SAFE_NO_PAD.decode(key).ok().and_then(|k| <[u8; KEY_LEN]>::try_from(k.as_slice()).ok()).ok_or(LinkError::BadKey)?;
        let (addr, room) = before.split_once('/').ok_or(LinkError::BadRoom)?;
        if !valid_room_id(room) {
            return Err(LinkError::BadRoom);
        }
        let (host, port) = if let Some(v6) = addr.strip_prefix('[') {
            let (h, p) = v6.split_once("]:").ok_or(LinkError::BadAddress)?;
            (h, p)
        } else {
            addr.rsplit_once(':').ok_or(LinkError::BadAddress)?
        };
        let port: u16 = port.parse().map_err(|_| LinkError::BadAddress)?;
        if host.is_empty() || port == 0 || host.contains(['/', '#', '[', ']', ' ']) {
            return Err(LinkError::BadAddress);
        }
        Ok(Link { host: host.to_string(), port, room: room.to_string(), key: RoomKey(key), tls })
    }

    /// `HOST:PORT`, with brackets for IPv6.
    pub fn authority(&self) -> String {
        if self.host.contains(':') { format!("[{}]:{}", self.host, self.port) } else { format!("{}:{}", self.host, self.port) }
    }

    /// WebSocket URL of the signaling server.
    pub fn signal_url(&self) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        format!("{scheme}://{}/", self.authority())
    }

    /// Whether the server is on a loopback address (see the loopback rule, DESIGN §3).
    pub fn is_loopback(&self) -> bool {
        is_loopback_host(&self.host)
    }
}

/// `localhost`, `127.0.0.0/8` or `::1`.
pub fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().map(|ip| ip.is_loopback()).unwrap_or(false)
}

impl std::fmt::Display for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}/{}#{}", if self.tls { "syncys" } else { "syncy" }, self.authority(), self.room, URL_SAFE_NO_PAD.encode(self.key.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip() {
        let l = Link { host: "127.0.0.1".into(), port: 7878, room: "movie-night".into(), key: RoomKey([3; KEY_LEN]), tls: false };
        let s = l.to_string();
        assert!(s.starts_with("syncy://127.0.0.1:7878/movie-night#"));
        assert_eq!(Link::parse(&s).unwrap(), l);
        assert_eq!(l.signal_url(), "ws://127.0.0.1:7878/");
        let v6 = Link { host: "::1".into(), ..l.clone() };
        assert_eq!(Link::parse(&v6.to_string()).unwrap(), v6);
        let tls = Link { host: "watch.example.org".into(), tls: true, ..l };
        assert!(tls.to_string().starts_with("syncys://watch.example.org:7878/movie-night#"));
        assert_eq!(Link::parse(&tls.to_string()).unwrap(), tls);
        assert_eq!(tls.signal_url(), "wss://watch.example.org:7878/");
    }

    #[test]
    fn rejects_bad_links() {
        let key = URL_SAFE_NO_PAD.encode([1u8; 16]);
        assert_eq!(Link::parse("http://x:1/r#k").unwrap_err(), LinkError::Scheme("http://x:1/r#k".into()));
        assert_eq!(Link::parse("syncy://x:1/r").unwrap_err(), LinkError::NoKey);
        assert_eq!(Link::parse("syncy://x:1/r#abc").unwrap_err(), LinkError::BadKey);
        assert_eq!(Link::parse(&format!("syncy://x/r#{key}")).unwrap_err(), LinkError::BadAddress);
        assert_eq!(Link::parse(&format!("syncy://x:0/r#{key}")).unwrap_err(), LinkError::BadAddress);
        assert_eq!(Link::parse(&format!("syncy://x:1/#{key}")).unwrap_err(), LinkError::BadRoom);
        assert_eq!(Link::parse(&format!("syncy://x:1/a b#{key}")).unwrap_err(), LinkError::BadRoom);
    }

    proptest! {
        #[test]
        fn parse_is_total(s in ".{0,200}") {
            let _ = Link::parse(&s);
            let _ = Link::parse(&format!("syncy://{s}"));
        }
    }
}
