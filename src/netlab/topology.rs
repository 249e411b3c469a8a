//! The networks of the maintainers' NETWORKS.md (a LAN; two homes behind NAT routers on an
//! internet; symmetric NATs; blocked UDP), built from namespaces.

use super::{Netns, veth};

/// Two machines on one switch: `a` and `b` joined by a veth pair (`eth0` on each).
#[derive(Debug)]
pub struct Lan {
    /// The first machine (the host, in the tests).
    pub a: Netns,
    /// The second.
    pub b: Netns,
    /// `a`'s address.
    pub a_addr: String,
    /// `b`'s address.
    pub b_addr: String,
}

impl Lan {
    /// IPv4: 10.99.0.1 and 10.99.0.2.
    pub fn v4() -> Result<Lan, String> {
        Lan::build("10.99.0.1", "10.99.0.2", 24)
    }

    /// IPv6 only: fd99::1 and fd99::2 (no IPv4 on the link at all).
    pub fn v6() -> Result<Lan, String> {
        Lan::build("fd99::1", "fd99::2", 64)
    }

    fn build(a_addr: &str, b_addr: &str, prefix: u8) -> Result<Lan, String> {
        let (a, b) = (Netns::new("lanA")?, Netns::new("lanB")?);
        veth(&a, "eth0", &b, "eth0")?;
        a.addr("eth0", &format!("{a_addr}/{prefix}"))?;
        b.addr("eth0", &format!("{b_addr}/{prefix}"))?;
        Ok(Lan { a, b, a_addr: a_addr.into(), b_addr: b_addr.into() })
    }
}

/// How the two homes' network behaves.
#[derive(Debug, Clone)]
pub struct HomesSpec {
    /// The "internet" /24, as its first three octets: the server is `.1`, router A `.2`,
    /// router B `.3`. Private by default (10.99.100); miniupnpd 2.3.1 maps ports only for a
    /// router whose WAN address is not private, so the UPnP test gives a public-looking one
    /// (still only inside these namespaces).
    pub internet: String,
    /// Both routers map every connection to a fresh port (`masquerade random`): a symmetric
    /// NAT, where only a relay works.
    pub symmetric: bool,
    /// Home B's machine drops all UDP that is not on loopback.
    pub block_udp_b: bool,
}

impl Default for HomesSpec {
    fn default() -> Self {
        HomesSpec { internet: "10.99.100".into(), symmetric: false, block_udp_b: false }
    }
}

/// Two homes behind NAT routers with a firewall, and a server on the internet:
/// home A 10.98.1.2 → router A (LAN 10.98.1.1, WAN .2) → internet bridge (server .1) ←
/// router B (WAN .3, LAN 10.98.2.1) ← home B 10.98.2.2.
#[derive(Debug)]
pub struct Homes {
    /// The internet: a bridge with the server's address.
    pub wan: Netns,
    /// Home A's router.
    pub router_a: Netns,
    /// Home B's router.
    pub router_b: Netns,
    /// The machine in home A.
    pub home_a: Netns,
    /// The machine in home B.
    pub home_b: Netns,
    /// The server's address on the internet.
    pub server_ip: String,
    /// Router A's WAN address (what the internet sees of home A).
    pub router_a_wan: String,
    /// Router B's WAN address.
    pub router_b_wan: String,
    /// Home A's machine.
    pub home_a_ip: String,
    /// Home B's machine.
    pub home_b_ip: String,
}

impl Homes {
    /// Builds the two homes as `spec` says.
    pub fn new(spec: &HomesSpec) -> Result<Homes, String> {
        let net = &spec.internet;
        let h = Homes {
            wan: Netns::new("wan")?,
            router_a: Netns::new("routerA")?,
            router_b: Netns::new("routerB")?,
            home_a: Netns::new("homeA")?,
            home_b: Netns::new("homeB")?,
            server_ip: format!("{net}.1"),
            router_a_wan: format!("{net}.2"),
            router_b_wan: format!("{net}.3"),
            home_a_ip: "10.98.1.2".into(),
            home_b_ip: "10.98.2.2".into(),
        };
        h.wan.ip(&["link", "add", "br0", "type", "bridge"])?;
        h.wan.addr("br0", &format!("{}/24", h.server_ip))?;
        // As on the internet, a packet for a private address of somebody's home goes nowhere,
        // quietly: out to an upstream that swallows it (a MAC address nobody has). A TURN
        // server relaying towards a candidate like 10.98.1.2 must not get "network
        // unreachable" or (from a blackhole route) "invalid argument" back, which no real
        // server sees and coturn does not take well.
        let upstream = format!("{net}.254");
        h.wan.ip(&["neigh", "add", &upstream, "lladdr", "02:00:00:00:00:fe", "dev", "br0", "nud", "permanent"])?;
        h.wan.ip(&["route", "add", "default", "via", &upstream])?;
        for (router, port, wan_ip, lan, home, home_ip) in [
            (&h.router_a, "portA", &h.router_a_wan, "10.98.1", &h.home_a, &h.home_a_ip),
            (&h.router_b, "portB", &h.router_b_wan, "10.98.2", &h.home_b, &h.home_b_ip),
        ] {
            veth(router, "wan0", &h.wan, port)?;
            h.wan.ip(&["link", "set", port, "master", "br0", "up"])?;
            router.addr("wan0", &format!("{wan_ip}/24"))?;
            // The ISP: everything not at home goes out to the internet.
            router.ip(&["route", "add", "default", "via", &format!("{net}.1")])?;
            veth(router, "lan0", home, "eth0")?;
            router.addr("lan0", &format!("{lan}.1/24"))?;
            home.addr("eth0", &format!("{home_ip}/24"))?;
            home.ip(&["route", "add", "default", "via", &format!("{lan}.1")])?;
            router.sysctl("net.ipv4.ip_forward", "1")?;
            router.nft(&router_rules(spec.symmetric))?;
        }
        if spec.block_udp_b {
            h.home_b.nft(BLOCK_UDP)?;
        }
        Ok(h)
    }
}

/// A home router: masquerade on the WAN side (`random`: a symmetric NAT), and a firewall that
/// drops what the internet starts, unless a port mapping (DNAT) asked for it. The firewall
/// matters for NAT traversal: without it, a hole-punching packet that arrives before the
/// router's own outbound one enters conntrack first, and the mapping that follows has to take
/// another port.
fn router_rules(symmetric: bool) -> String {
    let random = if symmetric { " random" } else { "" };
    format!(
        "table ip nat {{
  chain post {{ type nat hook postrouting priority 100; oifname \"wan0\" masquerade{random}; }}
}}
table ip filter {{
  chain input {{ type filter hook input priority 0; policy accept; iifname \"wan0\" ct state new drop; }}
  chain forward {{ type filter hook forward priority 0; policy accept; iifname \"wan0\" ct state new ct status dnat accept; iifname \"wan0\" ct state new drop; }}
}}
"
    )
}

/// A machine whose network lets no UDP through (TURN over TCP is then the only way).
const BLOCK_UDP: &str = "table inet blockudp {
  chain out { type filter hook output priority 0; policy accept; oifname != \"lo\" meta l4proto udp drop; }
  chain in { type filter hook input priority 0; policy accept; iifname != \"lo\" meta l4proto udp drop; }
}
";
