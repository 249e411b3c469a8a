//! This machine's addresses as a friend could reach them: the host lists them in its links,
//! and the ICE bind rule (DESIGN §3) asks which address families are up.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One address of a local network interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalAddr {
    /// The address.
    pub ip: IpAddr,
    /// The interface it is on (`eth0`, `wlan0`).
    pub interface: String,
}

/// Who can reach an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// This machine only (`127.0.0.0/8`, `::1`).
    Loopback,
    /// This network segment only, and useless without a scope id (`169.254/16`, `fe80::/10`).
    LinkLocal,
    /// A private network: RFC 1918, carrier-grade NAT (`100.64/10`), unique local IPv6 (`fc00::/7`).
    Private,
    /// Anyone on the internet, routing permitting.
    Public,
}

/// The scope of `ip`.
pub fn scope(ip: IpAddr) -> Scope {
    match ip {
        IpAddr::V4(v4) => scope_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => scope_v4(v4),
            None => scope_v6(v6),
        },
    }
}

fn scope_v4(ip: Ipv4Addr) -> Scope {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() || ip.is_unspecified() {
        Scope::Loopback
    } else if ip.is_link_local() {
        Scope::LinkLocal
    } else if ip.is_private() || (a == 100 && (64..128).contains(&b)) {
        Scope::Private
    } else {
        Scope::Public
    }
}

fn scope_v6(ip: Ipv6Addr) -> Scope {
    let first = ip.segments()[0];
    if ip.is_loopback() || ip.is_unspecified() {
        Scope::Loopback
    } else if first & 0xffc0 == 0xfe80 {
        Scope::LinkLocal
    } else if first & 0xfe00 == 0xfc00 {
        Scope::Private
    } else {
        Scope::Public
    }
}

/// Every address of this machine another machine could use: neither loopback nor link-local.
/// IPv4 first, then IPv6, each in the order the system lists them.
pub fn reachable() -> Vec<LocalAddr> {
    let mut out: Vec<LocalAddr> = Vec::new();
    let listed = match rtc::shared::ifaces::ifaces() {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("cannot list this machine's network interfaces: {e}");
            return out;
        }
    };
    for iface in listed {
        let Some(addr) = iface.addr else { continue };
        let ip = addr.ip();
        if matches!(scope(ip), Scope::Private | Scope::Public) && !out.iter().any(|a| a.ip == ip) {
            out.push(LocalAddr { ip, interface: iface.name });
        }
    }
    out.sort_by_key(|a| a.ip.is_ipv6());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(ip: &str) -> Scope {
        scope(ip.parse().unwrap())
    }

    #[test]
    fn scopes() {
        assert_eq!(s("127.0.0.1"), Scope::Loopback);
        assert_eq!(s("::1"), Scope::Loopback);
        assert_eq!(s("0.0.0.0"), Scope::Loopback);
        assert_eq!(s("169.254.3.4"), Scope::LinkLocal);
        assert_eq!(s("fe80::1"), Scope::LinkLocal);
        for private in ["10.99.0.1", "172.16.5.5", "192.168.1.20", "100.64.0.1", "fd99::1", "::ffff:192.168.1.2"] {
            assert_eq!(s(private), Scope::Private, "{private}");
        }
        for public in ["8.8.8.8", "100.128.0.1", "2001:db8::1", "25.99.100.2"] {
            assert_eq!(s(public), Scope::Public, "{public}");
        }
    }

    #[test]
    fn reachable_never_lists_loopback_or_link_local() {
        for a in reachable() {
            assert!(matches!(scope(a.ip), Scope::Private | Scope::Public), "{a:?}");
        }
    }
}
