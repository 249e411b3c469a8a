//! Which path carries a room's link: straight between the two machines, through NAT (a STUN-
//! learned or peer-reflexive address), through a TURN relay (over UDP or TCP), or the HTTP
//! fallback — with the two ICE candidates, so a user and a test can see it.

use serde::Serialize;

/// One end of the path: an ICE candidate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Candidate {
    /// `host`, `srflx` (learned through STUN), `prflx` (seen by the peer) or `relay` (TURN).
    #[serde(rename = "type")]
    pub kind: String,
    /// Its address.
    pub address: String,
    /// Its port.
    pub port: u16,
    /// `udp` or `tcp`.
    pub protocol: String,
    /// For a relayed candidate: how this side reaches its TURN server (`udp`, `tcp`, `tls`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay_protocol: Option<String>,
}

/// How a `turn:`/`turns:` URL reaches its server: `udp`, `tcp` (`?transport=tcp`) or `tls`
/// (`turns:`).
pub fn turn_transport(url: &str) -> &'static str {
    if url.starts_with("turns:") {
        "tls"
    } else if url.contains("transport=tcp") {
        "tcp"
    } else {
        "udp"
    }
}

/// What kind of path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PathKind {
    /// Host candidates on both sides: a LAN, or public addresses.
    Direct,
    /// Through a NAT: a server- or peer-reflexive address on either side.
    Nat,
    /// Through a TURN relay, over UDP.
    Relay,
    /// Through a TURN relay reached over TCP or TLS (UDP blocked here).
    RelayTcp,
    /// The host's HTTP fallback (no WebRTC).
    Http,
}

/// The path a link takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Path {
    /// What kind.
    pub kind: PathKind,
    /// This side's candidate (none over HTTP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local: Option<Candidate>,
    /// The other side's candidate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<Candidate>,
}

impl Path {
    /// The path a selected candidate pair takes.
    pub fn of_pair(local: Candidate, remote: Candidate) -> Path {
        let relay_tcp = local.kind == "relay" && matches!(local.relay_protocol.as_deref(), Some("tcp" | "tls"));
        let kind = if relay_tcp {
            PathKind::RelayTcp
        } else if local.kind == "relay" || remote.kind == "relay" {
            PathKind::Relay
        } else if [&local, &remote].iter().any(|c| c.kind == "srflx" || c.kind == "prflx") {
            PathKind::Nat
        } else {
            PathKind::Direct
        };
        Path { kind, local: Some(local), remote: Some(remote) }
    }

    /// The HTTP fallback.
    pub fn http() -> Path {
        Path { kind: PathKind::Http, local: None, remote: None }
    }
}

impl PathKind {
    /// In words: "direct", "through NAT", "relayed (TURN)", …
    pub fn words(self) -> &'static str {
        match self {
            PathKind::Direct => "direct",
            PathKind::Nat => "through NAT",
            PathKind::Relay => "relayed (TURN)",
            PathKind::RelayTcp => "relayed (TURN over TCP/TLS)",
            PathKind::Http => "HTTP fallback",
        }
    }
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kind.words())?;
        if let (Some(l), Some(r)) = (&self.local, &self.remote) {
            write!(f, ": {} {}:{} ↔ {} {}:{}", l.kind, l.address, l.port, r.kind, r.address, r.port)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(kind: &str, relay: Option<&str>) -> Candidate {
        Candidate { kind: kind.into(), address: "10.0.0.1".into(), port: 5000, protocol: "udp".into(), relay_protocol: relay.map(String::from) }
    }

    #[test]
    fn kinds() {
        assert_eq!(Path::of_pair(c("host", None), c("host", None)).kind, PathKind::Direct);
        assert_eq!(Path::of_pair(c("host", None), c("srflx", None)).kind, PathKind::Nat);
        assert_eq!(Path::of_pair(c("prflx", None), c("host", None)).kind, PathKind::Nat);
        assert_eq!(Path::of_pair(c("relay", Some("udp")), c("srflx", None)).kind, PathKind::Relay);
        assert_eq!(Path::of_pair(c("host", None), c("relay", Some("tcp"))).kind, PathKind::Relay);
        assert_eq!(Path::of_pair(c("relay", Some("tcp")), c("relay", Some("udp"))).kind, PathKind::RelayTcp);
        assert_eq!(Path::of_pair(c("relay", Some("tls")), c("host", None)).kind, PathKind::RelayTcp);
        assert_eq!((turn_transport("turn:h:3478"), turn_transport("turn:h:3478?transport=tcp"), turn_transport("turns:h:5349")), ("udp", "tcp", "tls"));
        let p = Path::of_pair(c("host", None), c("host", None));
        assert_eq!(p.to_string(), "direct: host 10.0.0.1:5000 ↔ host 10.0.0.1:5000");
        assert_eq!(Path::http().to_string(), "HTTP fallback");
        let json = serde_json::to_value(Path::of_pair(c("relay", Some("tcp")), c("host", None))).unwrap();
        assert_eq!(json["kind"], "relay_tcp");
        assert_eq!(json["local"]["type"], "relay");
        assert_eq!(json["local"]["relay_protocol"], "tcp");
        assert!(json["remote"].get("relay_protocol").is_none());
    }
}
