//! The links a host gives out: one for each address a friend could reach its signaling server
//! on, each saying from where it works. The first is the one to share when in doubt.

use std::net::{IpAddr, SocketAddr};

use super::addrs::{LocalAddr, Scope, scope};

pub use crate::core::api::LinkKind;

/// One link, where it works, and a few words for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomLink {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// From where it works.
    pub kind: LinkKind,
    /// Says so in words ("same network (eth0)").
    pub note: String,
}

/// What a host knows about how its embedded server can be reached.
#[derive(Debug, Clone, Default)]
pub struct Reachability {
    /// `--advertise`.
    pub advertise: Option<String>,
    /// This machine's usable addresses.
    pub interfaces: Vec<LocalAddr>,
    /// The public address a STUN server saw (UDP; the same IP serves TCP behind a NAT).
    pub stun_public: Option<IpAddr>,
    /// The router's mapping of our port: external address and port.
    pub upnp: Option<SocketAddr>,
}

/// The links of an embedded server bound to `bound`, best first.
pub fn embedded(bound: SocketAddr, r: &Reachability) -> Vec<RoomLink> {
    let port = bound.port();
    let mut links = Vec::new();
    if let Some(mapped) = r.upnp {
        let note = format!("from the internet (the router maps TCP port {} to this machine)", mapped.port());
        links.push(RoomLink { host: mapped.ip().to_string(), port: mapped.port(), kind: LinkKind::Upnp, note });
    }
    if let Some(name) = &r.advertise {
        let kind = if crate::protocol::link::is_loopback_host(name) { LinkKind::Local } else { LinkKind::Advertised };
        links.push(RoomLink { host: name.clone(), port, kind, note: "the address you gave (--advertise)".into() });
    } else if bound.ip().is_unspecified() {
        let v6 = bound.ip().is_ipv6();
        for a in r.interfaces.iter().filter(|a| a.ip.is_ipv4() || v6) {
            links.push(interface_link(a, port));
        }
    } else {
        let ip = bound.ip();
        let interface = r.interfaces.iter().find(|a| a.ip == ip).map(|a| a.interface.clone()).unwrap_or_default();
        links.push(interface_link(&LocalAddr { ip, interface }, port));
    }
    // A public address the STUN server saw, unless it is one of ours already.
    if let Some(ip) = r.stun_public.filter(|ip| !links.iter().any(|l| l.host == ip.to_string()))
        && r.advertise.is_none()
        && !bound.ip().is_loopback()
    {
        let note = format!("from the internet only if TCP port {port} is forwarded to this machine (the address a STUN server saw; --upnp asks the router)");
        links.push(RoomLink { host: ip.to_string(), port, kind: LinkKind::Internet, note });
    }
    if links.is_empty() {
        let ip = if bound.is_ipv6() { "::1" } else { "127.0.0.1" };
        links.push(RoomLink { host: ip.into(), port, kind: LinkKind::Local, note: "this machine only (no network interface is up)".into() });
    }
    // Best first: a name given, a mapping, a public address, the LAN, a guess, this machine.
    links.sort_by_key(|l| l.kind as u8);
    links
}

fn interface_link(a: &LocalAddr, port: u16) -> RoomLink {
    let on = if a.interface.is_empty() { String::new() } else { format!(" ({})", a.interface) };
    let (kind, note) = match scope(a.ip) {
        Scope::Public => (LinkKind::Public, format!("from anywhere: a public address of this machine{on}")),
        Scope::Private => (LinkKind::Lan, format!("from the same network{on}")),
        Scope::Loopback | Scope::LinkLocal => (LinkKind::Local, "this machine only".to_string()),
    };
    RoomLink { host: a.ip.to_string(), port, kind, note }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lan(ip: &str, name: &str) -> LocalAddr {
        LocalAddr { ip: ip.parse().unwrap(), interface: name.into() }
    }

    fn hosts(links: &[RoomLink]) -> Vec<(String, u16, LinkKind)> {
        links.iter().map(|l| (l.host.clone(), l.port, l.kind)).collect()
    }

    #[test]
    fn a_wildcard_lists_every_lan_address_and_no_loopback() {
        let r = Reachability { interfaces: vec![lan("10.99.0.1", "eth0"), lan("192.168.1.5", "wlan0"), lan("fd99::1", "eth0")], ..Default::default() };
        let links = embedded("0.0.0.0:7878".parse().unwrap(), &r);
        assert_eq!(hosts(&links), vec![("10.99.0.1".into(), 7878, LinkKind::Lan), ("192.168.1.5".into(), 7878, LinkKind::Lan)]);
        assert!(links[0].note.contains("eth0"));
        // `[::]` takes IPv6 too.
        let links = embedded("[::]:7878".parse().unwrap(), &r);
        assert_eq!(links.len(), 3);
        assert_eq!(links[2].host, "fd99::1");
    }

    #[test]
    fn the_best_link_comes_first() {
        let r = Reachability {
            interfaces: vec![lan("10.98.1.2", "eth0")],
            stun_public: Some("25.99.100.2".parse().unwrap()),
            upnp: Some("25.99.100.2:17878".parse().unwrap()),
            ..Default::default()
        };
        let links = embedded("0.0.0.0:7878".parse().unwrap(), &r);
        // The STUN address is the mapped one: listed once, as the mapping.
        assert_eq!(hosts(&links), vec![("25.99.100.2".into(), 17878, LinkKind::Upnp), ("10.98.1.2".into(), 7878, LinkKind::Lan)]);
        let r = Reachability { upnp: None, ..r };
        let links = embedded("0.0.0.0:7878".parse().unwrap(), &r);
        assert_eq!(hosts(&links), vec![("10.98.1.2".into(), 7878, LinkKind::Lan), ("25.99.100.2".into(), 7878, LinkKind::Internet)]);
        assert!(links[1].note.contains("forwarded"), "{}", links[1].note);
    }

    #[test]
    fn advertise_and_specific_addresses() {
        let r = Reachability { advertise: Some("watch.example.org".into()), interfaces: vec![lan("10.0.0.2", "eth0")], ..Default::default() };
        assert_eq!(hosts(&embedded("0.0.0.0:7878".parse().unwrap(), &r)), vec![("watch.example.org".into(), 7878, LinkKind::Advertised)]);
        let r = Reachability { interfaces: vec![lan("10.0.0.2", "eth0")], ..Default::default() };
        assert_eq!(hosts(&embedded("127.0.0.1:9000".parse().unwrap(), &r)), vec![("127.0.0.1".into(), 9000, LinkKind::Local)]);
        assert_eq!(hosts(&embedded("10.0.0.2:9000".parse().unwrap(), &r)), vec![("10.0.0.2".into(), 9000, LinkKind::Lan)]);
        // No interface up: this machine only, never an empty list.
        assert_eq!(hosts(&embedded("0.0.0.0:7878".parse().unwrap(), &Reachability::default())), vec![("127.0.0.1".into(), 7878, LinkKind::Local)]);
    }
}
