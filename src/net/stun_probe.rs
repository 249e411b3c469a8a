//! One STUN Binding request over UDP: the address a STUN server sees for a socket of ours. The
//! host learns its public address this way for its links; `syncy doctor` checks STUN with it.
//! Bounded: a server that never answers costs `wait`, never more.

use std::net::SocketAddr;
use std::time::Duration;

use rtc::ice::url::{ProtoType, SchemeType, Url};
use rtc::stun::message::{BINDING_REQUEST, Getter, Message, TransactionId};
use rtc::stun::xoraddr::XorMappedAddress;
use tokio::net::UdpSocket;

/// Why a probe learned nothing.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The URL is not one we can send a Binding request to.
    #[error("{0} is not a stun:/turn: URL over UDP")]
    BadUrl(String),
    /// The server's name did not resolve.
    #[error("cannot resolve {0}: {1}")]
    Resolve(String, String),
    /// Nothing came back in time.
    #[error("no answer from {0} within {1:?}")]
    NoAnswer(String, Duration),
    /// A socket error.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The UDP address of a `stun:`/`turn:` URL (TURN servers answer Binding requests too).
pub async fn server_addr(url: &str) -> Result<SocketAddr, ProbeError> {
    let parsed = Url::parse_url(url).map_err(|_| ProbeError::BadUrl(url.into()))?;
    let udp = matches!(parsed.scheme, SchemeType::Stun | SchemeType::Turn) && parsed.proto == ProtoType::Udp;
    if !udp {
        return Err(ProbeError::BadUrl(url.into()));
    }
    let target = format!("{}:{}", bracketed(&parsed.host), parsed.port);
    let found = tokio::net::lookup_host(&target).await.map_err(|e| ProbeError::Resolve(target.clone(), e.to_string()))?.next();
    found.ok_or_else(|| ProbeError::Resolve(target, "no address".into()))
}

fn bracketed(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') { format!("[{host}]") } else { host.to_string() }
}

/// Asks `server` from `socket` what address it sees, retrying a few times within `wait`.
pub async fn mapped_address(socket: &UdpSocket, server: SocketAddr, wait: Duration) -> Result<SocketAddr, ProbeError> {
    let mut request = Message::new();
    request.build(&[Box::new(TransactionId::new()), Box::new(BINDING_REQUEST)]).map_err(|e| std::io::Error::other(e.to_string()))?;
    let deadline = tokio::time::Instant::now() + wait;
    // Retransmit as RFC 5389 does, faster: the whole probe fits in `wait`.
    let mut rto = wait / 8;
    let mut buf = [0u8; 1500];
    while tokio::time::Instant::now() < deadline {
        socket.send_to(&request.raw, server).await?;
        let until = (tokio::time::Instant::now() + rto).min(deadline);
        while let Ok(got) = tokio::time::timeout_at(until, socket.recv_from(&mut buf)).await {
            let (n, from) = got?;
            if from != server {
                continue;
            }
            if let Some(addr) = parse_answer(&buf[..n], &request) {
                return Ok(addr);
            }
        }
        rto *= 2;
    }
    Err(ProbeError::NoAnswer(server.to_string(), wait))
}

/// The XOR-MAPPED-ADDRESS of a success response to `request`; None for anything else.
fn parse_answer(bytes: &[u8], request: &Message) -> Option<SocketAddr> {
    let mut m = Message::new();
    m.unmarshal_binary(bytes).ok()?;
    if m.transaction_id != request.transaction_id {
        return None;
    }
    let mut xor = XorMappedAddress::default();
    xor.get_from(&m).ok()?;
    Some(SocketAddr::new(xor.ip, xor.port))
}

/// The public address the first server in `urls` that answers sees (all asked at once, each
/// from a fresh socket of its family, so silent ones cost `wait` once); with what did not
/// answer.
pub async fn public_address(urls: &[String], wait: Duration) -> (Option<SocketAddr>, Vec<String>) {
    let answers = futures::future::join_all(urls.iter().map(|u| probe_url(u, wait))).await;
    let mut failed = Vec::new();
    let mut found = None;
    for (url, answer) in urls.iter().zip(answers) {
        match answer {
            Ok(addr) => {
                found.get_or_insert(addr);
            }
            Err(e) => failed.push(format!("{url}: {e}")),
        }
    }
    (found, failed)
}

async fn probe_url(url: &str, wait: Duration) -> Result<SocketAddr, ProbeError> {
    let server = server_addr(url).await?;
    let any: SocketAddr = if server.is_ipv4() { "0.0.0.0:0".parse().expect("literal") } else { "[::]:0".parse().expect("literal") };
    let socket = UdpSocket::bind(any).await?;
    mapped_address(&socket, server, wait).await
}

#[cfg(test)]
mod tests {
    use rtc::stun::message::{BINDING_SUCCESS, Setter};

    use super::*;

    /// A STUN server on loopback that answers one request the way RFC 5389 says.
    async fn one_answer(server: UdpSocket) {
        let mut buf = [0u8; 1500];
        let (n, from) = server.recv_from(&mut buf).await.unwrap();
        let mut req = Message::new();
        req.unmarshal_binary(&buf[..n]).unwrap();
        let raw = {
            let mut resp = Message::new();
            let xor = XorMappedAddress { ip: from.ip(), port: from.port() };
            let setters: Vec<Box<dyn Setter>> = vec![Box::new(req.transaction_id), Box::new(BINDING_SUCCESS), Box::new(xor)];
            resp.build(&setters).unwrap();
            resp.raw
        };
        server.send_to(&raw, from).await.unwrap();
    }

    #[tokio::test]
    async fn learns_the_address_the_server_sees() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let url = format!("stun:{}", server.local_addr().unwrap());
        tokio::spawn(one_answer(server));
        let (addr, failed) = public_address(&[url], Duration::from_secs(2)).await;
        assert!(failed.is_empty(), "{failed:?}");
        assert_eq!(addr.unwrap().ip().to_string(), "127.0.0.1");
    }

    #[tokio::test]
    async fn a_silent_server_costs_the_wait_and_is_named() {
        let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let url = format!("stun:{}", silent.local_addr().unwrap());
        let started = std::time::Instant::now();
        let (addr, failed) = public_address(std::slice::from_ref(&url), Duration::from_millis(300)).await;
        assert!(addr.is_none());
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(failed[0].contains(&url) && failed[0].contains("no answer"), "{failed:?}");
    }

    #[tokio::test]
    async fn urls_it_cannot_probe() {
        assert!(matches!(server_addr("turn:127.0.0.1:3478?transport=tcp").await, Err(ProbeError::BadUrl(_))));
        assert!(matches!(server_addr("http://x").await, Err(ProbeError::BadUrl(_))));
        assert_eq!(server_addr("stun:127.0.0.1").await.unwrap().port(), 3478);
    }
}
