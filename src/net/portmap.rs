//! Asking the home router to forward the host's signaling port, so friends on the internet
//! reach the embedded server: UPnP IGD (igd-next) first, NAT-PMP (`super::natpmp`) for routers
//! that speak that instead. The mapping has a lease that is renewed while the host runs and
//! removed when it quits; a host that dies leaves it to expire with its lease.

use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use igd_next::PortMappingProtocol;
use igd_next::aio::Gateway;
use igd_next::aio::tokio::{Tokio, search_gateway};

use super::natpmp;

/// How long to look for a UPnP router on the network.
pub const SEARCH_WAIT: Duration = Duration::from_secs(3);
/// How long the router gets to answer each request.
const ANSWER_WAIT: Duration = Duration::from_secs(3);
/// The lease asked for; renewed at half of it.
pub const LEASE: Duration = Duration::from_secs(3600);
/// What the router's table says the mapping is for.
const DESCRIPTION: &str = "syncy room";

/// Why no mapping was made.
#[derive(Debug, thiserror::Error)]
pub enum PortMapError {
    /// Neither protocol found a router.
    #[error("no router answered: no UPnP router within {} s, and NAT-PMP: {natpmp} (are UPnP and NAT-PMP on in the router?)", SEARCH_WAIT.as_secs())]
    NoRouter {
        /// What NAT-PMP said.
        natpmp: natpmp::NatPmpError,
    },
    /// The router answered but would not map.
    #[error("the router at {router} refused to map TCP port {port}: {reason}")]
    Refused {
        /// The router.
        router: SocketAddr,
        /// The port asked for.
        port: u16,
        /// What it said.
        reason: String,
    },
    /// A socket or protocol error.
    #[error("UPnP: {0}")]
    Other(String),
}

/// Who holds the mapping.
enum Router {
    Upnp(Gateway<Tokio>),
    NatPmp(SocketAddrV4),
}

/// A port mapping on the router, removed by [`Mapping::remove`].
pub struct Mapping {
    router: Router,
    /// This machine's port.
    local_port: u16,
    /// The address the internet reaches the mapped port on.
    pub external: SocketAddr,
    /// Which protocol made it (`UPnP`, `NAT-PMP`).
    pub protocol: &'static str,
    renew: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Mapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mapping({} by {})", self.external, self.protocol)
    }
}

/// Maps TCP `port` of this machine on the router: the same external port when free, else any.
pub async fn map_tcp(port: u16) -> Result<Mapping, PortMapError> {
    let options = igd_next::SearchOptions { timeout: Some(SEARCH_WAIT), ..Default::default() };
    match search_gateway(options).await {
        Ok(gateway) => map_upnp(gateway, port).await,
        Err(igd_next::SearchError::NoResponseWithinTimeout) => map_natpmp(port).await,
        Err(e) => Err(PortMapError::Other(e.to_string())),
    }
}

async fn map_upnp(gateway: Gateway<Tokio>, port: u16) -> Result<Mapping, PortMapError> {
    let local = SocketAddr::new(local_ip_towards(gateway.addr)?, port);
    let refused = |reason: String| PortMapError::Refused { router: gateway.addr, port, reason };
    // A router that takes the connection and never answers must not hold the room up.
    let bounded = |what: &'static str| move |_| refused(format!("no answer to {what} within {} s", ANSWER_WAIT.as_secs()));
    let external_ip =
        tokio::time::timeout(ANSWER_WAIT, gateway.get_external_ip()).await.map_err(bounded("GetExternalIPAddress"))?.map_err(|e| refused(e.to_string()))?;
    let (external_port, lease) = tokio::time::timeout(ANSWER_WAIT, add(&gateway, port, local)).await.map_err(bounded("AddPortMapping"))?.map_err(refused)?;
    if lease == 0 {
        tracing::warn!("the router at {} takes only permanent port mappings: if syncy is killed, remove port {external_port}'s mapping by hand", gateway.addr);
    }
    tracing::info!("router {} maps {external_ip}:{external_port} to {local} by UPnP (lease {lease} s)", gateway.addr);
    let renew = tokio::spawn(renew_upnp(gateway.clone(), external_port, local, lease));
    let external = SocketAddr::new(external_ip, external_port);
    Ok(Mapping { router: Router::Upnp(gateway), local_port: port, external, protocol: "UPnP", renew })
}

/// Adds the mapping: `port` itself, else any port the router picks; a router that takes only
/// permanent mappings gets one (removed at exit all the same). Returns the port and the lease.
async fn add(gateway: &Gateway<Tokio>, port: u16, local: SocketAddr) -> Result<(u16, u32), String> {
    let lease = LEASE.as_secs() as u32;
    match gateway.add_port(PortMappingProtocol::TCP, port, local, lease, DESCRIPTION).await {
        Ok(()) => return Ok((port, lease)),
        Err(igd_next::AddPortError::OnlyPermanentLeasesSupported) => {
            return gateway.add_port(PortMappingProtocol::TCP, port, local, 0, DESCRIPTION).await.map(|()| (port, 0)).map_err(|e| e.to_string());
        }
        Err(e) => tracing::info!("the router would not map port {port} itself ({e}); asking for any port"),
    }
    gateway.add_any_port(PortMappingProtocol::TCP, local, lease, DESCRIPTION).await.map(|p| (p, lease)).map_err(|e| e.to_string())
}

/// Renews the lease at half its length, as long as the host runs.
async fn renew_upnp(gateway: Gateway<Tokio>, external_port: u16, local: SocketAddr, lease: u32) {
    if lease == 0 {
        return;
    }
    loop {
        tokio::time::sleep(Duration::from_secs(lease as u64 / 2)).await;
        if let Err(e) = gateway.add_port(PortMappingProtocol::TCP, external_port, local, lease, DESCRIPTION).await {
            tracing::warn!("renewing the router's port mapping failed: {e}");
        }
    }
}

async fn map_natpmp(port: u16) -> Result<Mapping, PortMapError> {
    // Nobody to ask, or nobody answering: no router speaks either protocol.
    let none = |natpmp| PortMapError::NoRouter { natpmp };
    let gateway = SocketAddrV4::new(natpmp::default_gateway().map_err(none)?, natpmp::PORT);
    let answer = natpmp::ask(gateway, &natpmp::external_address_request()).await.map_err(none)?;
    let external_ip = natpmp::parse_external_address(&answer).map_err(|e| PortMapError::Refused { router: gateway.into(), port, reason: e.to_string() })?;
    let refused = |e: natpmp::NatPmpError| PortMapError::Refused { router: gateway.into(), port, reason: e.to_string() };
    let lease = LEASE.as_secs() as u32;
    let answer = natpmp::ask(gateway, &natpmp::map_tcp_request(port, port, lease)).await.map_err(refused)?;
    let granted = natpmp::parse_map_tcp(&answer).map_err(refused)?;
    tracing::info!("router {gateway} maps {external_ip}:{} to port {port} by NAT-PMP (lifetime {} s)", granted.external_port, granted.lifetime);
    let renew = tokio::spawn(renew_natpmp(gateway, port, granted));
    let external = SocketAddr::new(IpAddr::V4(external_ip), granted.external_port);
    Ok(Mapping { router: Router::NatPmp(gateway), local_port: port, external, protocol: "NAT-PMP", renew })
}

/// Asks again at half the lifetime granted, as RFC 6886 §3.3 says; a failed renewal is tried
/// again a minute later, before the mapping lapses.
async fn renew_natpmp(gateway: SocketAddrV4, port: u16, granted: natpmp::Granted) {
    let mut wait = Duration::from_secs((granted.lifetime as u64 / 2).max(30));
    loop {
        tokio::time::sleep(wait).await;
        let lease = LEASE.as_secs() as u32;
        let asked = natpmp::ask(gateway, &natpmp::map_tcp_request(port, granted.external_port, lease)).await;
        match asked.and_then(|a| natpmp::parse_map_tcp(&a)) {
            Ok(g) if g.lifetime > 0 => {
                if g.external_port != granted.external_port {
                    tracing::warn!(
                        "the router moved the mapping from port {} to {}: the links given out no longer work",
                        granted.external_port,
                        g.external_port
                    );
                }
                wait = Duration::from_secs((g.lifetime as u64 / 2).max(30));
            }
            Ok(_) => {
                tracing::warn!("the router renewed the NAT-PMP mapping for no time at all");
                wait = Duration::from_secs(60);
            }
            Err(e) => {
                tracing::warn!("renewing the router's NAT-PMP mapping failed: {e}");
                wait = Duration::from_secs(60);
            }
        }
    }
}

/// The address of ours the router sees: the source address of a route towards it (no packet
/// is sent).
fn local_ip_towards(router: SocketAddr) -> Result<IpAddr, PortMapError> {
    let probe = std::net::UdpSocket::bind((std::net::Ipv4Addr::UNSPECIFIED, 0)).map_err(|e| PortMapError::Other(e.to_string()))?;
    probe.connect(router).map_err(|e| PortMapError::Other(e.to_string()))?;
    Ok(probe.local_addr().map_err(|e| PortMapError::Other(e.to_string()))?.ip())
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // Not removed (an error path): the lease ends it; at least stop renewing.
        self.renew.abort();
    }
}

impl Mapping {
    /// Removes the mapping from the router (bounded: a router gone quiet does not hold the exit).
    pub async fn remove(self) {
        // No renewal may put it back while it is being removed.
        self.renew.abort();
        let port = self.external.port();
        let removal = async {
            match &self.router {
                Router::Upnp(gateway) => gateway.remove_port(PortMappingProtocol::TCP, port).await.map_err(|e| e.to_string()),
                Router::NatPmp(gateway) => {
                    let answer = natpmp::ask(*gateway, &natpmp::map_tcp_request(self.local_port, 0, 0)).await;
                    answer.and_then(|a| natpmp::parse_map_tcp(&a)).map(|_| ()).map_err(|e| e.to_string())
                }
            }
        };
        match tokio::time::timeout(Duration::from_secs(2), removal).await {
            Ok(Ok(())) => tracing::info!("removed the router's mapping of port {port}"),
            Ok(Err(e)) => tracing::warn!("the router did not remove its mapping of port {port}: {e}"),
            Err(_) => tracing::warn!("the router did not answer the removal of port {port}'s mapping"),
        }
    }
}
