//! Where a host's room is found: its signaling server (embedded, or external with `--server`)
//! and the links to it — one per address a friend could reach, each saying from where
//! (`net::links`). The STUN probe for the public address is bounded; what did not answer is
//! reported, never waited for.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use color_eyre::eyre::{Context, Result, bail, eyre};

use crate::engine::Event;
use crate::engine::host::HostOptions;
use crate::net::links::{self, LinkKind, Reachability, RoomLink};
use crate::net::signal_client::SignalClient;
use crate::protocol::identity::HostKey;
use crate::protocol::link::Link;
use crate::protocol::signal::{ClientMsg, ErrorCode, ServerMsg};
use crate::server::Server;

/// How long the host asks STUN servers for its public address before it opens the room.
pub const STUN_WAIT: Duration = Duration::from_secs(1);

/// The room's signaling, ready to create the room.
pub struct Rendezvous {
    /// The embedded server, when there is one (dropping it stops it).
    pub server: Option<Server>,
    /// Where the host connects to it.
    pub url: String,
    /// Client TLS for `url`.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// The links to give out, best first (never empty).
    pub links: Vec<RoomLink>,
    /// The router's mapping of the embedded server's port (`--upnp`): remove it on exit.
    pub mapping: Option<crate::net::portmap::Mapping>,
}

/// Starts the embedded server (or names the external one) and works out the links.
pub async fn open(opts: &HostOptions, events: &tokio::sync::mpsc::UnboundedSender<Event>) -> Result<Rendezvous> {
    if let Some(url) = &opts.server {
        let (host, port, tls) = parse_ws_url(url)?;
        let client_tls = if tls { Some(crate::net::tls::client_config(opts.tls_ca.as_deref())?) } else { None };
        let note = "through the signaling server".to_string();
        let links = vec![RoomLink { host, port, kind: LinkKind::Server, note }];
        return Ok(Rendezvous { server: None, url: url.to_string(), tls: client_tls, links, mapping: None });
    }
    let server = Server::start(opts.listen, opts.server_cfg.clone()).await.wrap_err_with(|| format!("cannot listen on {}", opts.listen))?;
    let bound = server.addr;
    // TLS first: an error there must not leave a port mapped on the router.
    let (scheme, tls) = match (&opts.server_cfg.tls, &opts.tls_cert) {
        (Some(_), Some(cert)) => ("wss", Some(crate::net::tls::pinned_client_config(cert)?)),
        (Some(_), None) => {
            bail!("the embedded server has TLS but the host was not given its certificate")
        }
        (None, _) => ("ws", None),
    };
    let mut reach = reachability(opts, bound, events).await;
    let mapping = if opts.upnp && !bound.ip().is_loopback() { map_port(bound.port(), events).await } else { None };
    reach.upnp = mapping.as_ref().map(|m| m.external);
    let links = links::embedded(bound, &reach);
    // A wildcard is reached on loopback from here.
    let connect_ip: std::net::IpAddr = match bound.ip() {
        std::net::IpAddr::V4(v4) if v4.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(v6) if v6.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    let url = format!("{scheme}://{}/", SocketAddr::new(connect_ip, bound.port()));
    Ok(Rendezvous { server: Some(server), url, tls, links, mapping })
}

/// Asks the router to forward `port`; a failure is a warning (the LAN links still work).
async fn map_port(port: u16, events: &tokio::sync::mpsc::UnboundedSender<Event>) -> Option<crate::net::portmap::Mapping> {
    match crate::net::portmap::map_tcp(port).await {
        Ok(m) => Some(m),
        Err(e) => {
            let message = format!("--upnp: {e}; friends outside this network cannot reach the room unless TCP port {port} is forwarded by hand");
            // (The mapping's protocol is logged when it works: UPnP or NAT-PMP.)
            tracing::warn!("{message}");
            let _ = events.send(Event::Warning { message });
            None
        }
    }
}

/// What the host knows of how it can be reached: its interfaces, and its public address when
/// a STUN server is configured and the server listens beyond loopback.
async fn reachability(opts: &HostOptions, bound: SocketAddr, events: &tokio::sync::mpsc::UnboundedSender<Event>) -> Reachability {
    let mut reach = Reachability { advertise: opts.advertise.clone(), interfaces: crate::net::addrs::reachable(), ..Default::default() };
    let wants_public = !bound.ip().is_loopback() && opts.advertise.is_none() && !opts.nat.stun.is_empty();
    if wants_public {
        let (public, failed) = crate::net::stun_probe::public_address(&opts.nat.stun, STUN_WAIT).await;
        reach.stun_public = public.map(|a| a.ip());
        if public.is_none() {
            let message = format!("no STUN server answered, so the links list only this machine's own addresses ({})", failed.join("; "));
            tracing::warn!("{message}");
            let _ = events.send(Event::Warning { message });
        }
    }
    reach
}

/// What the host shows a signaling server to open its room, or take it back after losing it.
pub struct RoomClaim {
    /// Room id (`[LABEL-]FINGERPRINT` of `host_key`).
    pub room: String,
    /// The room key's join token.
    pub join_token: String,
    /// The host's display name.
    pub name: String,
    /// The key the room id names.
    pub host_key: Arc<HostKey>,
}

impl RoomClaim {
    /// Connects to `url` and opens the room, proving the host key over the connection's
    /// nonce: the connection, once the server said `Created`.
    pub async fn open(&self, url: &str, tls: Option<Arc<rustls::ClientConfig>>) -> Result<SignalClient> {
        let mut signal = SignalClient::connect(url, tls).await?;
        let proof = self.host_key.create_proof(&self.room, &self.join_token, &signal.nonce);
        let create = ClientMsg::Create {
            room: self.room.clone(),
            join_token: self.join_token.clone(),
            name: self.name.clone(),
            host_key: self.host_key.public().to_hex(),
            proof,
        };
        signal.tx.send(create).await.map_err(|_| eyre!("signaling connection closed"))?;
        match signal.rx.recv().await {
            Some(ServerMsg::Created { .. }) => Ok(signal),
            Some(ServerMsg::Error { code: ErrorCode::RoomExists, .. }) => bail!(
                "room {} is already open on the signaling server: is this host running somewhere else? (--room LABEL opens another room, --new-room makes a new link)",
                self.room
            ),
            Some(ServerMsg::Error { message, .. }) => bail!("the signaling server refused the room: {message}"),
            other => bail!("unexpected answer from the signaling server: {other:?}"),
        }
    }
}

/// The primary link and the `room` event's list.
pub fn room_links(links: &[RoomLink], room: &str, key: &crate::protocol::auth::RoomKey, tls: bool) -> (Link, Vec<crate::engine::LinkInfo>) {
    let link_of = |l: &RoomLink| Link { host: l.host.clone(), port: l.port, room: room.to_string(), key: key.clone(), tls };
    let infos = links.iter().map(|l| crate::engine::LinkInfo { url: link_of(l).to_string(), kind: l.kind, note: l.note.clone() }).collect();
    (link_of(&links[0]), infos)
}

/// `ws://HOST:PORT/` or `wss://…` as host, port and TLS.
pub fn parse_ws_url(url: &str) -> Result<(String, u16, bool)> {
    let (tls, rest) = match (url.strip_prefix("ws://"), url.strip_prefix("wss://")) {
        (Some(rest), _) => (false, rest),
        (None, Some(rest)) => (true, rest),
        (None, None) => {
            bail!("--server must be a ws:// or wss:// URL, like wss://example.org:7878/")
        }
    };
    let authority = rest.split('/').next().unwrap_or("");
    let fake = format!("syncy://{authority}/x#AAAAAAAAAAAAAAAAAAAAAA");
    let l = Link::parse(&fake).map_err(|_| eyre!("--server {url:?} needs HOST:PORT"))?;
    Ok((l.host, l.port, tls))
}
