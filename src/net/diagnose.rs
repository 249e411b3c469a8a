//! Why a WebRTC link did not come up, in words a user can act on. Pure: it reads what each
//! side gathered (the candidates in the two SDPs) and what this side was configured with.

/// The ICE candidates one side put in its SDP.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gathered {
    /// Its own addresses.
    pub host: Vec<String>,
    /// Public addresses a STUN server saw.
    pub srflx: Vec<String>,
    /// Addresses on a TURN relay.
    pub relay: Vec<String>,
}

impl Gathered {
    /// The candidates of an SDP (`a=candidate:… ADDR PORT typ TYPE …`).
    pub fn from_sdp(sdp: &str) -> Gathered {
        let mut g = Gathered::default();
        for line in sdp.lines().filter_map(|l| l.trim().strip_prefix("a=candidate:")) {
            let words: Vec<&str> = line.split_whitespace().collect();
            let (Some(addr), Some(kind)) = (words.get(4), words.iter().position(|w| *w == "typ").and_then(|i| words.get(i + 1))) else { continue };
            let list = match *kind {
                "host" => &mut g.host,
                "srflx" | "prflx" => &mut g.srflx,
                "relay" => &mut g.relay,
                _ => continue,
            };
            if !list.iter().any(|a| a == addr) {
                list.push(addr.to_string());
            }
        }
        g
    }

    /// No candidate at all.
    pub fn is_empty(&self) -> bool {
        self.host.is_empty() && self.srflx.is_empty() && self.relay.is_empty()
    }
}

/// What a failed set-up knew.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// This side's candidates.
    pub local: Gathered,
    /// The other side's.
    pub remote: Gathered,
    /// This side asked a STUN server.
    pub stun: bool,
    /// This side asked a TURN server.
    pub turn: bool,
    /// One of its TURN servers is reached over TCP or TLS.
    pub turn_stream: bool,
    /// ICE found a working pair (then DTLS or SCTP did not finish).
    pub ice_connected: bool,
}

/// What went wrong and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    /// What happened.
    pub message: String,
    /// What to do.
    pub hint: String,
}

const CONFIG: &str = "the config file (~/.config/syncy/config.toml)";

/// Why no link came up.
pub fn why_failed(f: &Facts) -> Diagnosis {
    let d = |message: String, hint: String| Diagnosis { message, hint };
    let (l, r) = (&f.local, &f.remote);
    if f.ice_connected {
        return d(
            "a path to the host was found, but the encrypted connection over it (DTLS/SCTP) did not finish".into(),
            "the network may be dropping UDP packets: try again, or use a TURN server over TCP (turn:HOST:3478?transport=tcp)".into(),
        );
    }
    if l.is_empty() {
        return d("this machine has no network address to connect from".into(), "check that the network is up (`syncy doctor` shows what works)".into());
    }
    // Servers were asked and none gave anything back.
    let udp_silent = (f.stun || f.turn) && l.srflx.is_empty() && l.relay.is_empty();
    if udp_silent {
        let what = match (f.stun, f.turn) {
            (true, true) => "neither the STUN nor the TURN server answered",
            (true, false) => "the STUN server did not answer",
            _ => "the TURN server did not answer",
        };
        if f.turn_stream {
            return d(
                format!("no path to the host: {what}, not even over TCP/TLS"),
                "check the TURN server's address, user and password (`syncy doctor` checks each server)".into(),
            );
        }
        return d(
            format!("no path to the host: {what}, so UDP looks blocked on this network"),
            format!("use a TURN server over TCP or TLS (turn:HOST:3478?transport=tcp or turns:HOST:5349 in {CONFIG}); `syncy doctor` checks each server"),
        );
    }
    if !f.stun && !f.turn && r.srflx.is_empty() && r.relay.is_empty() {
        return d(
            format!(
                "no path to the host: it offered only its own addresses ({}), which this machine cannot reach, and neither side asked a STUN server for its public address",
                reachable_looking(&r.host).join(", ")
            ),
            format!(
                "put the same STUN server in both machines' {CONFIG} (stun = [\"stun:HOST:3478\"]), and a TURN server for strict NATs; or join from the host's network"
            ),
        );
    }
    if !l.relay.is_empty() || !r.relay.is_empty() {
        return d(
            "no path to the host, not even through the TURN relay".into(),
            "check the TURN server, its user and password (`syncy doctor` tries it), and that the host can reach it too".into(),
        );
    }
    if !l.srflx.is_empty() && !r.srflx.is_empty() {
        return d(
            "no direct path to the host although both sides know their public address: a NAT on the way gives each destination a new port (a symmetric NAT), which only a relay gets through".into(),
            format!("configure a TURN server (turn, turn_user, turn_pass in {CONFIG}) on either side"),
        );
    }
    if r.srflx.is_empty() {
        return d(
            "no path to the host: the host did not learn its public address (it has no STUN server, or its STUN server did not answer)".into(),
            format!("the host needs a STUN server too (stun = [...] in its {CONFIG}), or a TURN server on either side"),
        );
    }
    d(
        "no path to the host: this machine did not learn its public address".into(),
        format!("configure a STUN server (stun = [...] in {CONFIG}), and a TURN server for strict NATs"),
    )
}

/// The signaling server at `authority` did not take the connection (`error` says how): refused
/// at once (the host is not running there), or no answer at all (a router or firewall on the
/// way).
pub fn signaling_unreachable(authority: &str, port: u16, error: &str, timed_out: bool) -> Diagnosis {
    let hint = if timed_out {
        format!(
            "nothing answered at {authority}: if the host is behind a router, it must forward TCP port {port} to its machine (syncy host --upnp asks the router to), or use a signaling server both can reach"
        )
    } else {
        format!(
            "check that the host is still running and that the link is whole; a host on another network must forward TCP port {port} to its machine (syncy host --upnp)"
        )
    };
    Diagnosis { message: format!("cannot reach the host: {error}"), hint }
}

/// Addresses worth naming to a user: not loopback (a host whose room is for its own machine
/// only offers 127.0.0.1).
fn reachable_looking(addrs: &[String]) -> Vec<String> {
    addrs.iter().filter(|a| a.parse::<std::net::IpAddr>().map_or(true, |ip| !ip.is_loopback())).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(host: &[&str], srflx: &[&str], relay: &[&str]) -> Gathered {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect();
        Gathered { host: v(host), srflx: v(srflx), relay: v(relay) }
    }

    #[test]
    fn reads_candidates_from_an_sdp() {
        let sdp = "v=0\r\na=candidate:1 1 udp 2130706431 10.98.1.2 40000 typ host\r\n\
                   a=candidate:2 1 udp 1694498815 10.99.100.2 41000 typ srflx raddr 10.98.1.2 rport 40000\r\n\
                   a=candidate:3 1 udp 16777215 10.99.100.1 49152 typ relay raddr 10.98.1.2 rport 40000\r\n\
                   a=candidate:4 1 udp 2130706431 10.98.1.2 40001 typ host\r\n";
        assert_eq!(Gathered::from_sdp(sdp), g(&["10.98.1.2"], &["10.99.100.2"], &["10.99.100.1"]));
        assert!(Gathered::from_sdp("a=candidate:garbage").is_empty());
    }

    #[test]
    fn an_unreachable_signaling_server_says_whether_to_forward_the_port() {
        let d = signaling_unreachable("10.99.100.2:7878", 7878, "connection refused", false);
        assert!(d.message == "cannot reach the host: connection refused" && d.hint.contains("still running"), "{d:?}");
        let d = signaling_unreachable("10.99.100.2:7878", 7878, "no answer", true);
        assert!(d.hint.contains("forward TCP port 7878") && d.hint.contains("--upnp"), "{d:?}");
    }

    #[test]
    fn each_failure_says_what_to_do() {
        let case = |f: Facts| why_failed(&f);
        // Two homes, nobody configured anything.
        let d = case(Facts { local: g(&["10.98.2.2"], &[], &[]), remote: g(&["10.98.1.2", "127.0.0.1"], &[], &[]), ..Default::default() });
        assert!(d.message.contains("own addresses (10.98.1.2)") && d.hint.contains("STUN"), "{d:?}");
        // Symmetric NAT, no TURN.
        let both =
            Facts { local: g(&["10.98.2.2"], &["10.99.100.3"], &[]), remote: g(&["10.98.1.2"], &["10.99.100.2"], &[]), stun: true, ..Default::default() };
        let d = case(both.clone());
        assert!(d.message.contains("symmetric NAT") && d.hint.contains("TURN"), "{d:?}");
        // UDP blocked: the STUN server never answered.
        let d =
            case(Facts { local: g(&["10.98.2.2"], &[], &[]), remote: g(&["10.98.1.2"], &["10.99.100.2"], &[]), stun: true, turn: true, ..Default::default() });
        assert!(d.message.contains("UDP looks blocked") && d.hint.contains("transport=tcp"), "{d:?}");
        // TURN only, and it did not answer.
        let d = case(Facts { local: g(&["10.98.2.2"], &[], &[]), remote: g(&["10.98.1.2"], &["10.99.100.2"], &[]), turn: true, ..Default::default() });
        assert!(d.message.contains("the TURN server did not answer"), "{d:?}");
        let d = case(Facts { local: g(&["10.98.2.2"], &[], &[]), turn: true, turn_stream: true, ..Default::default() });
        assert!(d.message.contains("not even over TCP/TLS") && !d.hint.contains("transport=tcp"), "{d:?}");
        // A path, then DTLS stalled.
        assert!(case(Facts { ice_connected: true, ..both.clone() }).message.contains("DTLS"));
        // The host has no STUN.
        let d = case(Facts { local: g(&["10.98.2.2"], &["10.99.100.3"], &[]), remote: g(&["10.98.1.2"], &[], &[]), stun: true, ..Default::default() });
        assert!(d.message.contains("host did not learn"), "{d:?}");
        // Even the relay failed.
        let d = case(Facts { local: g(&["10.98.2.2"], &["10.99.100.3"], &["10.99.100.1"]), turn: true, stun: true, ..both });
        assert!(d.message.contains("TURN relay"), "{d:?}");
    }
}
