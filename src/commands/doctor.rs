//! `syncy doctor [LINK]`: checks from this machine what a room needs — the signaling server,
//! each STUN and TURN server, UDP — and says what works, what does not and what that means. It
//! contacts only servers it was given (the link, flags, the environment, the config file);
//! there is no built-in public server anywhere.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::net::peer::{self, NatOptions};
use crate::net::stun_probe;

/// How long each STUN server gets.
const STUN_WAIT: Duration = Duration::from_secs(2);
/// How long each TURN allocation gets.
const TURN_WAIT: Duration = Duration::from_secs(5);

/// What to check.
#[derive(Debug, Clone)]
pub struct DoctorOptions {
    /// The signaling server's URL (from the link, or the config file's `server`).
    pub server: Option<String>,
    /// Extra trusted certificates for a `wss://` server.
    pub tls_ca: Option<std::path::PathBuf>,
    /// STUN and TURN servers.
    pub nat: NatOptions,
    /// The config file that was read, if any.
    pub config: Option<std::path::PathBuf>,
}

/// One finding.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Check {
    /// `config`, `signaling`, `stun`, `nat`, `turn` or `udp`.
    pub check: &'static str,
    /// The server or thing checked.
    pub target: String,
    /// It works (None: only information).
    pub ok: Option<bool>,
    /// What was seen, in words.
    pub detail: String,
}

/// Everything checked, and what it means.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    /// The findings, in order.
    pub checks: Vec<Check>,
    /// What it means for a room, and what to do.
    pub verdict: String,
}

/// Runs every check.
pub async fn run(opts: &DoctorOptions) -> Report {
    let mut checks = vec![config_check(opts)];
    if let Some(url) = &opts.server {
        checks.push(signaling(url, opts.tls_ca.as_deref()).await);
    }
    let stun = stun_checks(&opts.nat.stun).await;
    checks.extend(stun.checks.iter().cloned());
    let mut turn_udp_ok = false;
    let mut turn_tcp_ok = false;
    for url in &opts.nat.turn {
        let c = turn(url, &opts.nat).await;
        if c.ok == Some(true) {
            if is_tcp_turn(url) { turn_tcp_ok = true } else { turn_udp_ok = true }
        }
        checks.push(c);
    }
    let udp_ok = stun.answered > 0 || turn_udp_ok;
    let asked_udp = !opts.nat.stun.is_empty() || opts.nat.turn.iter().any(|u| !is_tcp_turn(u));
    if asked_udp {
        let detail = if udp_ok {
            "UDP gets through (a server answered over it)".into()
        } else {
            "no server answered over UDP: UDP looks blocked on this network".into()
        };
        checks.push(Check { check: "udp", target: "this network".into(), ok: Some(udp_ok), detail });
    }
    let verdict = verdict(opts, &checks, &stun, udp_ok, turn_udp_ok || turn_tcp_ok);
    Report { checks, verdict }
}

fn config_check(opts: &DoctorOptions) -> Check {
    let what = format!("{} STUN, {} TURN{}", opts.nat.stun.len(), opts.nat.turn.len(), if opts.server.is_some() { ", a signaling server" } else { "" });
    let target = opts.config.as_ref().map_or("no config file".into(), |p| p.display().to_string());
    Check { check: "config", target, ok: None, detail: what }
}

async fn signaling(url: &str, tls_ca: Option<&std::path::Path>) -> Check {
    let started = Instant::now();
    let tls = match url.starts_with("wss://").then(|| crate::net::tls::client_config(tls_ca)).transpose() {
        Ok(t) => t,
        Err(e) => return Check { check: "signaling", target: url.into(), ok: Some(false), detail: e.to_string() },
    };
    match crate::net::signal_client::SignalClient::connect(url, tls).await {
        Ok(_) => Check { check: "signaling", target: url.into(), ok: Some(true), detail: format!("answers ({} ms)", started.elapsed().as_millis()) },
        Err(e) => Check { check: "signaling", target: url.into(), ok: Some(false), detail: e.to_string() },
    }
}

/// What the STUN servers said, from one socket (so that their answers can be compared).
struct StunFindings {
    checks: Vec<Check>,
    answered: usize,
    /// Public addresses seen, per server.
    seen: Vec<SocketAddr>,
    /// The NAT gives each destination a new port (known with two servers' answers).
    symmetric: Option<bool>,
}

async fn stun_checks(urls: &[String]) -> StunFindings {
    let mut f = StunFindings { checks: Vec::new(), answered: 0, seen: Vec::new(), symmetric: None };
    if urls.is_empty() {
        return f;
    }
    // One socket per address family, so that the servers' answers can be compared.
    let (mut v4, mut v6) = (None, None);
    let locals: Vec<std::net::IpAddr> = crate::net::addrs::reachable().into_iter().map(|a| a.ip).collect();
    let mut asked = Vec::new();
    for url in urls {
        let found = match stun_probe::server_addr(url).await {
            Ok(server) => {
                let slot = if server.is_ipv4() { &mut v4 } else { &mut v6 };
                match socket_for(slot, server).await {
                    Ok(socket) => stun_probe::mapped_address(socket, server, STUN_WAIT).await.map(|a| (server, a)),
                    Err(e) => Err(e.into()),
                }
            }
            Err(e) => Err(e),
        };
        let check = match found {
            Ok((server, public)) => {
                f.answered += 1;
                // Two URLs for one server say nothing about the NAT's mapping.
                if !asked.contains(&server) && public.is_ipv4() {
                    asked.push(server);
                    f.seen.push(public);
                }
                let nat = if locals.contains(&public.ip()) {
                    "the same as this machine's own: no NAT on the way".to_string()
                } else {
                    format!("behind a NAT (this machine is {})", locals.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", "))
                };
                Check { check: "stun", target: url.clone(), ok: Some(true), detail: format!("sees this machine as {public}: {nat}") }
            }
            Err(e) => Check { check: "stun", target: url.clone(), ok: Some(false), detail: e.to_string() },
        };
        f.checks.push(check);
    }
    if let Some((c, symmetric)) = mapping_check(&f.seen) {
        f.symmetric = Some(symmetric);
        f.checks.push(c);
    }
    f
}

/// The socket of `server`'s family, made on first use.
async fn socket_for(slot: &mut Option<tokio::net::UdpSocket>, server: SocketAddr) -> std::io::Result<&tokio::net::UdpSocket> {
    if slot.is_none() {
        let any: SocketAddr = if server.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { (std::net::Ipv6Addr::UNSPECIFIED, 0).into() };
        *slot = Some(tokio::net::UdpSocket::bind(any).await?);
    }
    Ok(slot.as_ref().expect("just made"))
}

/// With two servers' answers for one socket: does the NAT keep one public port for every
/// destination (direct paths can work), or give each a new one (symmetric: only a relay)?
fn mapping_check(seen: &[SocketAddr]) -> Option<(Check, bool)> {
    let [first, rest @ ..] = seen else { return None };
    if rest.is_empty() {
        return None;
    }
    let same = rest.iter().all(|a| a == first);
    let detail = if same {
        "one public address and port for every destination: direct connections through the NAT can work".into()
    } else {
        "a new public port for each destination (a symmetric NAT): people behind other NATs need a TURN relay to reach this machine".into()
    };
    // What the NAT does is a finding, not a failure: a relay gets through it.
    Some((Check { check: "nat", target: "this network's NAT".into(), ok: None, detail }, !same))
}

fn is_tcp_turn(url: &str) -> bool {
    crate::net::path::turn_transport(url) != "udp"
}

async fn turn(url: &str, nat: &NatOptions) -> Check {
    let only = NatOptions { stun: vec![], turn: vec![url.to_string()], relay_only: true, ..nat.clone() };
    let over = crate::net::path::turn_transport(url).to_uppercase();
    match peer::gather(&only, TURN_WAIT).await {
        Ok((g, _)) if !g.relay.is_empty() => {
            Check { check: "turn", target: url.into(), ok: Some(true), detail: format!("gives a relay address ({}), reached over {over}", g.relay.join(", ")) }
        }
        Ok(_) => Check {
            check: "turn",
            target: url.into(),
            ok: Some(false),
            detail: format!("no relay address within {} s over {over} (unreachable, or the user or password is wrong)", TURN_WAIT.as_secs()),
        },
        Err(e) => Check { check: "turn", target: url.into(), ok: Some(false), detail: e.to_string() },
    }
}

fn verdict(opts: &DoctorOptions, checks: &[Check], stun: &StunFindings, udp_ok: bool, relay_ok: bool) -> String {
    let failed = |what: &str| checks.iter().any(|c| c.check == what && c.ok == Some(false));
    let mut said = Vec::new();
    if failed("signaling") {
        said.push("the signaling server cannot be reached from here, so no room on it can be joined".to_string());
    }
    let symmetric = stun.symmetric == Some(true);
    match (udp_ok, relay_ok, opts.nat.stun.is_empty() && opts.nat.turn.is_empty()) {
        (_, _, true) => {
            said.push("no STUN or TURN server is configured: rooms work on this network only (put stun and turn in the config file for the internet)".into())
        }
        (false, true, _) => said.push("UDP looks blocked here, but the TURN relay over TCP/TLS works: rooms will be relayed".into()),
        (false, false, _) => {
            said.push("UDP looks blocked here and no TURN server over TCP or TLS works: configure turn:HOST:3478?transport=tcp (or turns:HOST:5349)".into())
        }
        (true, _, _) if symmetric && !relay_ok => {
            said.push("this NAT is symmetric and no TURN server works: rooms with people behind other NATs will not connect".into())
        }
        (true, true, _) if symmetric => said.push(
            "this NAT is symmetric: rooms with people behind other NATs will be relayed through TURN (which works); direct paths work on this network".into(),
        ),
        (true, true, _) => said.push("direct, NAT and relayed paths can all work from here".into()),
        (true, false, _) if stun.answered > 0 => said.push("direct and NAT paths can work; without a working TURN server, strict NATs will not connect".into()),
        (true, false, _) => said.push("no STUN server answered, but UDP works".into()),
    }
    said.join("; ")
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = match self.ok {
            Some(true) => "ok  ",
            Some(false) => "FAIL",
            None => "    ",
        };
        write!(f, "{status} {:<9} {}: {}", self.check, self.target, self.detail)
    }
}
