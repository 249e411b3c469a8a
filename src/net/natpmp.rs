//! NAT-PMP (RFC 6886), for routers that speak it rather than UPnP: two small UDP exchanges with
//! the default gateway on port 5351 — its external address, and a TCP mapping with a lifetime
//! (0 removes it). The messages are a handful of bytes; their encoding is here, unit-tested.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use tokio::net::UdpSocket;

/// The port a NAT-PMP gateway listens on.
pub const PORT: u16 = 5351;
/// How long a gateway gets to answer one request, retries included (RFC 6886 allows a
/// minute; a router on the LAN answers in milliseconds).
const WAIT: Duration = Duration::from_secs(2);

/// Why NAT-PMP gave nothing.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NatPmpError {
    /// No default route: no gateway to ask.
    #[error("no default gateway")]
    NoGateway,
    /// The gateway did not answer.
    #[error("no NAT-PMP answer from {0} within {wait} s", wait = WAIT.as_secs())]
    NoAnswer(SocketAddr),
    /// The gateway answered with an error code (RFC 6886 §3.5).
    #[error("the gateway refused (NAT-PMP result {0}: {words})", words = result_words(*.0))]
    Refused(u16),
    /// The gateway has no external address to give.
    #[error("the gateway has no external address yet")]
    NoExternalAddress,
    /// Nothing listens for NAT-PMP on the gateway (it refused at once).
    #[error("nothing speaks NAT-PMP at {0}")]
    NotListening(SocketAddr),
    /// The answer is not NAT-PMP.
    #[error("the gateway's answer is not NAT-PMP")]
    Malformed,
    /// A socket error.
    #[error("{0}")]
    Io(String),
}

fn result_words(code: u16) -> &'static str {
    match code {
        1 => "unsupported version",
        2 => "not authorized",
        3 => "network failure",
        4 => "out of resources",
        5 => "unsupported opcode",
        _ => "unknown",
    }
}

/// A TCP mapping the gateway granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Granted {
    /// The external port.
    pub external_port: u16,
    /// For how long, seconds.
    pub lifetime: u32,
}

/// The request for the gateway's external address.
pub fn external_address_request() -> [u8; 2] {
    [0, 0]
}

/// A request to map TCP `internal` to `external` (a suggestion) for `lifetime` seconds; both
/// 0 removes it.
pub fn map_tcp_request(internal: u16, external: u16, lifetime: u32) -> [u8; 12] {
    let mut m = [0u8; 12];
    m[1] = 2;
    m[4..6].copy_from_slice(&internal.to_be_bytes());
    m[6..8].copy_from_slice(&external.to_be_bytes());
    m[8..12].copy_from_slice(&lifetime.to_be_bytes());
    m
}

/// The result code and the rest of an answer to `opcode`, checked.
fn answer(bytes: &[u8], opcode: u8, len: usize) -> Result<&[u8], NatPmpError> {
    // An error answer may be only the 8-byte header (RFC 6886 §3.5: "unsupported version",
    // which a PCP-only gateway sends), so the result comes before the length.
    if bytes.len() < 8 || bytes[1] != 128 + opcode {
        return Err(NatPmpError::Malformed);
    }
    match u16::from_be_bytes([bytes[2], bytes[3]]) {
        0 if bytes[0] == 0 && bytes.len() >= len => Ok(&bytes[8..len]),
        0 => Err(NatPmpError::Malformed),
        code => Err(NatPmpError::Refused(code)),
    }
}

/// The external address in an answer.
pub fn parse_external_address(bytes: &[u8]) -> Result<Ipv4Addr, NatPmpError> {
    let rest = answer(bytes, 0, 12)?;
    // 0.0.0.0: the gateway has no external address itself yet (RFC 6886 §3.2).
    Some(Ipv4Addr::new(rest[0], rest[1], rest[2], rest[3])).filter(|ip| !ip.is_unspecified()).ok_or(NatPmpError::NoExternalAddress)
}

/// The mapping in an answer to a TCP mapping request.
pub fn parse_map_tcp(bytes: &[u8]) -> Result<Granted, NatPmpError> {
    let rest = answer(bytes, 2, 16)?;
    Ok(Granted { external_port: u16::from_be_bytes([rest[2], rest[3]]), lifetime: u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]) })
}

/// The default gateway, from the kernel's routing table.
pub fn default_gateway() -> Result<Ipv4Addr, NatPmpError> {
    let table = std::fs::read_to_string("/proc/net/route").map_err(|e| NatPmpError::Io(e.to_string()))?;
    gateway_in(&table).ok_or(NatPmpError::NoGateway)
}

/// The gateway of the default route in a `/proc/net/route` table: destination and mask 0, up
/// and through a gateway, the lowest metric of those (addresses in hex, in the machine's byte
/// order).
fn gateway_in(table: &str) -> Option<Ipv4Addr> {
    const UP_VIA_GATEWAY: u32 = 0x1 | 0x2; // RTF_UP | RTF_GATEWAY
    let routes = table.lines().skip(1).filter_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let hex = |i: usize| cols.get(i).and_then(|c| u32::from_str_radix(c, 16).ok());
        let (dest, gw, flags, metric, mask) = (hex(1)?, hex(2)?, hex(3)?, cols.get(6)?.parse::<u32>().ok()?, hex(7)?);
        let default = dest == 0 && mask == 0 && flags & UP_VIA_GATEWAY == UP_VIA_GATEWAY;
        default.then(|| (metric, Ipv4Addr::from(gw.to_ne_bytes())))
    });
    routes.filter(|(_, ip)| !ip.is_unspecified()).min_by_key(|(metric, _)| *metric).map(|(_, ip)| ip)
}

/// Sends `request` to `gateway` until an answer comes (250 ms, doubling), within [`WAIT`].
pub async fn ask(gateway: SocketAddrV4, request: &[u8]) -> Result<Vec<u8>, NatPmpError> {
    let io = |e: std::io::Error| NatPmpError::Io(e.to_string());
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await.map_err(io)?;
    socket.connect(gateway).await.map_err(io)?;
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut rto = Duration::from_millis(250);
    let mut buf = [0u8; 64];
    while tokio::time::Instant::now() < deadline {
        socket.send(request).await.map_err(io)?;
        let until = (tokio::time::Instant::now() + rto).min(deadline);
        match tokio::time::timeout_at(until, socket.recv(&mut buf)).await {
            Ok(Ok(n)) => return Ok(buf[..n].to_vec()),
            // A refused port (ICMP) says nobody speaks NAT-PMP there.
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Err(NatPmpError::NotListening(gateway.into())),
            Ok(Err(e)) => return Err(io(e)),
            Err(_) => rto *= 2,
        }
    }
    Err(NatPmpError::NoAnswer(gateway.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_as_rfc_6886_lays_them_out() {
        assert_eq!(external_address_request(), [0, 0]);
        assert_eq!(map_tcp_request(7878, 7878, 3600), [0, 2, 0, 0, 0x1e, 0xc6, 0x1e, 0xc6, 0, 0, 0x0e, 0x10]);
        assert_eq!(map_tcp_request(7878, 0, 0)[6..], [0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn answers_are_read_and_checked() {
        let ext = [0, 128, 0, 0, 0, 0, 0, 9, 25, 99, 100, 2];
        assert_eq!(parse_external_address(&ext), Ok(Ipv4Addr::new(25, 99, 100, 2)));
        let map = [0, 130, 0, 0, 0, 0, 0, 9, 0x1e, 0xc6, 0x1e, 0xc7, 0, 0, 0x0e, 0x10];
        assert_eq!(parse_map_tcp(&map), Ok(Granted { external_port: 7879, lifetime: 3600 }));
        assert_eq!(parse_map_tcp(&[0, 130, 0, 2, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0]), Err(NatPmpError::Refused(2)));
        assert_eq!(parse_external_address(&[1, 128, 0, 1, 0, 0, 0, 9]), Err(NatPmpError::Refused(1)), "a short error answer");
        assert_eq!(parse_external_address(&[0, 128, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0]), Err(NatPmpError::NoExternalAddress));
        for bad in [&[][..], &[0, 128], &[1, 128, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4], &ext[..11]] {
            assert_eq!(parse_external_address(bad), Err(NatPmpError::Malformed), "{bad:?}");
        }
        assert_eq!(parse_map_tcp(&ext), Err(NatPmpError::Malformed), "an answer to another request");
    }

    #[test]
    fn the_default_gateway_from_the_routing_table() {
        let table = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                     eth0\t0001620A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                     eth0\t00000000\t0101620A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n";
        assert_eq!(gateway_in(table), Some(Ipv4Addr::new(10, 98, 1, 1)));
        // A VPN's half-default (0.0.0.0/1) is no default route; of two defaults, the lower metric.
        let table = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\n\
                     tun0\t00000000\t0100080A\t0003\t0\t0\t0\t00000080\n\
                     eth0\t00000000\t0101620A\t0003\t0\t0\t600\t00000000\n\
                     wlan0\t00000000\t0102620A\t0003\t0\t0\t100\t00000000\n";
        assert_eq!(gateway_in(table), Some(Ipv4Addr::new(10, 98, 2, 1)));
        assert_eq!(gateway_in("Iface\tDestination\tGateway\n"), None);
    }
}
