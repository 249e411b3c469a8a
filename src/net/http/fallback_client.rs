//! The participant's side of the host's HTTPS fallback (see `fallback_server`): the same
//! protocol messages the WebRTC link carries, made from HTTPS requests, each MACed with the
//! pass the host gave this participant, to the certificate the host signed only, and each
//! within a time limit. Requests become ranged GETs,
//! pings become state polls; what comes back goes into the engine as if the host had sent it,
//! so buffering, playback, `--save` and the hash work unchanged.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc};

use super::fallback_server::{MAX_RANGE, request_line};
use crate::protocol::auth::{FallbackOffer, FallbackPass, RoomKey};
use crate::protocol::guest::GuestKey;
use crate::protocol::identity::Purpose;
use crate::protocol::stream::{self, Manifest, Message, ORIGINAL, Role};

/// Largest answer head read.
const MAX_HEAD: usize = 16 * 1024;
/// Chunk fetches at once.
const PARALLEL: usize = 4;
/// Time to connect (TCP and TLS).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time for a whole request, answer included (a chunk is at most 192 KiB; the host sends it
/// at once).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// HTTP fallback failures.
#[derive(Debug, thiserror::Error)]
pub enum HttpLinkError {
    /// Network.
    #[error("HTTP fallback at {addr}: {source}")]
    Io {
        /// Server.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not a 2xx answer.
    #[error("HTTP fallback at {addr} answered {status}")]
    Status {
        /// Server.
        addr: String,
        /// Status line's code.
        status: u16,
    },
    /// Malformed answer.
    #[error("HTTP fallback at {0} sent a malformed answer")]
    Malformed(String),
    /// The MAC does not match: not from the host, or altered on the way.
    #[error("HTTP fallback at {0}: the answer is not signed with the room key; refusing it")]
    BadMac(String),
    /// Not a protocol message.
    #[error("HTTP fallback: {0}")]
    Protocol(#[from] stream::StreamError),
    /// No answer in time.
    #[error("HTTP fallback at {addr}: no answer within {} s", REQUEST_TIMEOUT.as_secs())]
    Timeout {
        /// Server.
        addr: String,
    },
    /// What the host signed is not something to connect with.
    #[error("HTTP fallback: the host's signal holds no usable certificate hash or pass")]
    BadOffer,
}

/// The host's HTTPS fallback for one room, as the host told this participant.
#[derive(Clone)]
pub struct HttpLink {
    addr: String,
    room: String,
    key: RoomKey,
    pass: FallbackPass,
    /// The participant's own key in the room: each request is signed with it, so a pass read
    /// off the wire (a `ws://` link) is worth nothing to anyone else.
    guest: Arc<GuestKey>,
    tls: Arc<rustls::ClientConfig>,
}

impl HttpLink {
    /// The fallback the host signed for this participant (`offer`, for the key `guest`) for
    /// `room`.
    pub fn new(offer: &FallbackOffer, room: &str, key: &RoomKey, guest: Arc<GuestKey>) -> Result<Self, HttpLinkError> {
        let cert: [u8; 32] = hex::decode(&offer.cert).ok().and_then(|c| c.try_into().ok()).ok_or(HttpLinkError::BadOffer)?;
        let pass = FallbackPass::from_hex(&offer.pass).ok_or(HttpLinkError::BadOffer)?;
        let tls = crate::net::tls::fingerprint_client_config(cert);
        Ok(HttpLink { addr: offer.addr.clone(), room: room.to_string(), key: key.clone(), pass, guest, tls })
    }

    /// `https://ADDR/ROOM/`, for messages.
    pub fn url(&self) -> String {
        format!("https://{}/{}/", self.addr, self.room)
    }

    /// GETs `what` (with `query`, and a byte range); checks the MAC for `offset`. Within
    /// [`REQUEST_TIMEOUT`].
    async fn get(&self, what: &str, query: &str, range: Option<(u64, u64)>, offset: u64, limit: usize) -> Result<Vec<u8>, HttpLinkError> {
        let asked = tokio::time::timeout(REQUEST_TIMEOUT, self.get_once(what, query, range, offset, limit)).await;
        asked.unwrap_or_else(|_| Err(HttpLinkError::Timeout { addr: self.addr.clone() }))
    }

    /// TCP, then TLS to the certificate the host signed only.
    async fn connect(&self) -> Result<tokio_rustls::client::TlsStream<TcpStream>, HttpLinkError> {
        let io = |source| HttpLinkError::Io { addr: self.addr.clone(), source };
        let connecting = async {
            let sock = TcpStream::connect(&self.addr).await.map_err(io)?;
            let _ = sock.set_nodelay(true);
            let name = rustls::pki_types::ServerName::try_from("syncy-fallback").expect("a valid DNS name");
            tokio_rustls::TlsConnector::from(self.tls.clone()).connect(name, sock).await.map_err(io)
        };
        tokio::time::timeout(CONNECT_TIMEOUT, connecting).await.unwrap_or_else(|_| Err(HttpLinkError::Timeout { addr: self.addr.clone() }))
    }

    async fn get_once(&self, what: &str, query: &str, range: Option<(u64, u64)>, offset: u64, limit: usize) -> Result<Vec<u8>, HttpLinkError> {
        let io = |source| HttpLinkError::Io { addr: self.addr.clone(), source };
        let mut sock = self.connect().await?;
        let target = format!("/{}/{what}{query}", self.room);
        let range = range.map(|(a, b)| format!("bytes={a}-{b}"));
        let nonce = hex::encode(rand::random::<[u8; 16]>());
        let line = format!("{} {nonce}", request_line("GET", &target, range.as_deref()));
        let mac = self.pass.request_mac(&self.key, &line);
        let sig = self.guest.sign(Purpose::FallbackRequest, &[line.as_bytes()]);
        let mut req = format!("GET {target} HTTP/1.1\r\nHost: {}\r\nX-Syncy-Auth: {} {nonce} {mac} {sig}\r\nConnection: close\r\n", self.addr, self.pass.id());
        if let Some(r) = &range {
            req += &format!("Range: {r}\r\n");
        }
        req += "\r\n";
        sock.write_all(req.as_bytes()).await.map_err(io)?;
        let (status, len, mac, mut body) = self.read_head(&mut sock, limit).await?;
        if !(200..300).contains(&status) {
            return Err(HttpLinkError::Status { addr: self.addr.clone(), status });
        }
        let len = len.filter(|&l| l <= limit).ok_or_else(|| HttpLinkError::Malformed(self.addr.clone()))?;
        if body.len() > len {
            return Err(HttpLinkError::Malformed(self.addr.clone()));
        }
        let have = body.len();
        body.resize(len, 0);
        sock.read_exact(&mut body[have..]).await.map_err(io)?;
        match mac {
            Some(m) if self.key.verify_http(what, offset, &body, &m) => Ok(body),
            _ => Err(HttpLinkError::BadMac(self.addr.clone())),
        }
    }

    /// The answer's status, length, MAC and what of the body came with the head.
    async fn read_head<S: AsyncRead + Unpin>(&self, sock: &mut S, limit: usize) -> Result<(u16, Option<usize>, Option<String>, Vec<u8>), HttpLinkError> {
        let io = |source| HttpLinkError::Io { addr: self.addr.clone(), source };
        let mut buf = Vec::with_capacity(limit.min(1 << 20) + 1024);
        loop {
            let mut piece = [0u8; 8192];
            let n = sock.read(&mut piece).await.map_err(io)?;
            if n == 0 {
                return Err(HttpLinkError::Malformed(self.addr.clone()));
            }
            buf.extend_from_slice(&piece[..n]);
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(&buf) {
                Ok(httparse::Status::Complete(at)) => {
                    let get = |name: &str| resp.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).and_then(|h| std::str::from_utf8(h.value).ok());
                    let len = get("content-length").and_then(|v| v.trim().parse::<usize>().ok());
                    let (code, mac) = (resp.code.unwrap_or(0), get("x-syncy-mac").map(str::to_string));
                    return Ok((code, len, mac, buf.split_off(at)));
                }
                Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => continue,
                _ => return Err(HttpLinkError::Malformed(self.addr.clone())),
            }
        }
    }

    /// The room's manifest.
    pub async fn manifest(&self) -> Result<Manifest, HttpLinkError> {
        let body = self.get("manifest", "", None, 0, stream::MAX_CONTROL_MESSAGE as usize).await?;
        match stream::decode_from(&body, Role::Host, None)? {
            Message::Manifest(m) => Ok(m),
            _ => Err(HttpLinkError::Malformed(self.addr.clone())),
        }
    }

    /// Chunk `index`'s bytes.
    pub async fn chunk(&self, manifest: &Manifest, index: u32) -> Result<Vec<u8>, HttpLinkError> {
        let len = manifest.chunk_len(index).ok_or_else(|| HttpLinkError::Malformed(self.addr.clone()))? as u64;
        let start = index as u64 * manifest.chunk_size as u64;
        let body = self.get("file", "", Some((start, start + len - 1)), start, MAX_RANGE as usize).await?;
        if body.len() as u64 != len {
            return Err(HttpLinkError::Malformed(self.addr.clone()));
        }
        Ok(body)
    }

    /// A clock sample and the room's state (`Pong` and `State` messages).
    pub async fn state(&self, manifest: &Manifest, client_us: u64) -> Result<Vec<Message>, HttpLinkError> {
        let body = self.get("state", &format!("?c={client_us}"), None, client_us, 2 * stream::MAX_CONTROL_MESSAGE as usize).await?;
        let mut out = vec![];
        let mut rest = &body[..];
        while rest.len() >= 4 {
            let n = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            let msg = rest.get(4..4 + n).ok_or_else(|| HttpLinkError::Malformed(self.addr.clone()))?;
            out.push(stream::decode_from(msg, Role::Host, Some(manifest))?);
            rest = &rest[4 + n..];
        }
        Ok(out)
    }
}

/// What the engine gets back, as the WebRTC link would deliver it.
pub enum Delivered {
    /// A chunk message (wire format).
    Chunk(BytesMut),
    /// A control message (wire format).
    Control(BytesMut),
    /// The fallback failed.
    Failed(String),
}

/// Fetches chunk `index` over HTTP and hands it on as if it came on the chunks channel.
async fn fetch_chunk(link: HttpLink, manifest: Arc<Manifest>, index: u32, back: mpsc::UnboundedSender<Delivered>, _permit: tokio::sync::OwnedSemaphorePermit) {
    let d = match link.chunk(&manifest, index).await {
        Ok(data) => {
            let mut wire = BytesMut::from(&stream::encode_chunk_header(ORIGINAL, index, data.len())[..]);
            wire.extend_from_slice(&data);
            Delivered::Chunk(wire)
        }
        Err(e) => Delivered::Failed(e.to_string()),
    };
    let _ = back.send(d);
}

/// Serves the engine's outgoing messages over HTTP until `out` closes.
pub fn spawn(link: HttpLink, manifest: Manifest, mut out: mpsc::UnboundedReceiver<Vec<u8>>, back: mpsc::UnboundedSender<Delivered>) {
    let manifest = Arc::new(manifest);
    let slots = Arc::new(Semaphore::new(PARALLEL));
    let polling = Arc::new(AtomicBool::new(false));
    tokio::spawn(async move {
        while let Some(bytes) = out.recv().await {
            match stream::decode_from(&bytes, Role::Participant, Some(&manifest)) {
                Ok(msg) => {
                    if !serve(msg, &link, &manifest, (&slots, &polling), &back).await {
                        return;
                    }
                }
                Err(e) => tracing::warn!("not sent over the HTTP fallback: {e}"),
            }
        }
    });
}

/// Does what one message from the engine asks over HTTP; `false` once nothing more can be.
async fn serve(
    msg: Message,
    link: &HttpLink,
    manifest: &Arc<Manifest>,
    (slots, polling): (&Arc<Semaphore>, &Arc<AtomicBool>),
    back: &mpsc::UnboundedSender<Delivered>,
) -> bool {
    let control = |m: &Message| Delivered::Control(BytesMut::from(&stream::encode(m)[..]));
    match msg {
        Message::Request { space: ORIGINAL, chunks, .. } => {
            for index in chunks {
                let Ok(permit) = slots.clone().acquire_owned().await else { return false };
                tokio::spawn(fetch_chunk(link.clone(), manifest.clone(), index, back.clone(), permit));
            }
        }
        // One clock poll at a time: a ping while one is out is skipped (the next one comes).
        Message::Ping { client_us } if !polling.swap(true, Ordering::AcqRel) => {
            let (link, manifest, back, polling) = (link.clone(), manifest.clone(), back.clone(), polling.clone());
            tokio::spawn(async move {
                match link.state(&manifest, client_us).await {
                    Ok(msgs) => msgs.iter().for_each(|m| drop(back.send(control(m)))),
                    Err(e) => drop(back.send(Delivered::Failed(e.to_string()))),
                }
                polling.store(false, Ordering::Release);
            });
        }
        Message::Level { level, .. } if level != "high" => {
            let _ = back.send(control(&Message::LevelRefused { level, reason: "over the HTTP fallback only the original is served".into() }));
        }
        Message::Command(_) => {
            let _ = back
                .send(control(&Message::Notice { text: "play, pause and seek need the WebRTC link; over the HTTP fallback you watch with the room".into() }));
        }
        // Renditions, cancels, reports and greetings mean nothing here.
        _ => {}
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::http::fallback_server;

    /// The smallest chunk a manifest may have.
    const CHUNK: u32 = crate::protocol::stream::MIN_CHUNK_SIZE;

    fn manifest(size: u64) -> Manifest {
        Manifest {
            name: "f.bin".into(),
            size,
            chunk_size: CHUNK,
            chunks: size.div_ceil(CHUNK as u64) as u32,
            duration_ms: None,
            container: "raw".into(),
            codecs: vec![],
            levels: vec!["high".into()],
            stream: [0; 16],
        }
    }

    /// Participant 7's key.
    fn guest() -> Arc<GuestKey> {
        Arc::new(crate::protocol::guest::GuestSecret::from_bytes([7; 32]).key_for("r1"))
    }

    /// A fallback server for a file of `bytes`, and the offer the host would sign for
    /// participant 7.
    async fn server(dir: &std::path::Path, bytes: &[u8], key: &RoomKey) -> (fallback_server::HttpFallback, FallbackOffer, Arc<fallback_server::Passes>) {
        let file = dir.join("f.bin");
        std::fs::write(&file, bytes).unwrap();
        let state = Message::State { playing: true, position_us: 5, at_host_us: 6, rate_milli: 1000, seq: 3, waiting: vec![] };
        let passes = Arc::new(fallback_server::Passes::default());
        let room = fallback_server::Room {
            room: "r1".into(),
            key: key.clone(),
            file,
            manifest: Arc::new(manifest(bytes.len() as u64)),
            state: tokio::sync::watch::channel(state).1,
            hash: tokio::sync::watch::channel(None).1,
            clock: std::time::Instant::now(),
            passes: passes.clone(),
        };
        let (tls, cert) = crate::net::tls::self_signed_server().unwrap();
        let server = fallback_server::start("127.0.0.1:0".parse().unwrap(), room, tls).await.unwrap();
        let offer = FallbackOffer { addr: server.addr.to_string(), cert: hex::encode(cert), pass: passes.issue(7, guest().public()).to_hex() };
        (server, offer, passes)
    }

    #[tokio::test]
    async fn chunks_and_the_clock_come_over_https_with_the_pass_and_nothing_without_it() {
        let dir = tempfile::tempdir().unwrap();
        let bytes: Vec<u8> = (0..2 * CHUNK + 10).map(|i| (i % 251) as u8).collect();
        let (size, c, key) = (bytes.len() as u64, CHUNK as usize, RoomKey([7; 16]));
        let (_server, offer, passes) = server(dir.path(), &bytes, &key).await;
        let link = HttpLink::new(&offer, "r1", &key, guest()).unwrap();
        let m = link.manifest().await.unwrap();
        assert_eq!(m, manifest(size));
        assert_eq!(link.chunk(&m, 1).await.unwrap(), bytes[c..2 * c]);
        assert_eq!(link.chunk(&m, 2).await.unwrap(), bytes[2 * c..], "the short last chunk");
        let msgs = link.state(&m, 42).await.unwrap();
        assert!(matches!(msgs[0], Message::Pong { client_us: 42, .. }), "{msgs:?}");
        // The signaling server relays the pass, but has no room key; a link holder the host
        // never let in has the key but no pass; a pass of one who left opens nothing.
        let refused = |l: HttpLink| async move { matches!(l.manifest().await, Err(HttpLinkError::Status { status: 401, .. })) };
        assert!(refused(HttpLink::new(&offer, "r1", &RoomKey([8; 16]), guest()).unwrap()).await, "the pass without the room key");
        let stranger = FallbackOffer { pass: FallbackPass::random().to_hex(), ..offer.clone() };
        assert!(refused(HttpLink::new(&stranger, "r1", &key, guest()).unwrap()).await, "the room key without a pass");
        // A link holder who read the pass off a plain ws:// link: key and pass, not its key.
        let reader = Arc::new(crate::protocol::guest::GuestSecret::from_bytes([8; 32]).key_for("r1"));
        assert!(refused(HttpLink::new(&offer, "r1", &key, reader).unwrap()).await, "the key and the pass without the participant's key");
        passes.revoke(7);
        assert!(refused(link.clone()).await, "a revoked pass");
    }

    #[tokio::test]
    async fn only_the_certificate_the_host_signed_is_spoken_to_and_plain_http_gets_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let key = RoomKey([7; 16]);
        let (server, offer, _) = server(dir.path(), &vec![1u8; CHUNK as usize], &key).await;
        // Another certificate at the address (someone in the middle): no request is sent.
        let (_, other) = crate::net::tls::self_signed_server().unwrap();
        let wrong = HttpLink::new(&FallbackOffer { cert: hex::encode(other), ..offer.clone() }, "r1", &key, guest()).unwrap();
        assert!(matches!(wrong.manifest().await, Err(HttpLinkError::Io { .. })));
        // Plain HTTP: the server speaks TLS only.
        let mut sock = TcpStream::connect(server.addr).await.unwrap();
        sock.write_all(b"GET /r1/manifest HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), sock.read_to_end(&mut answer)).await;
        assert!(!String::from_utf8_lossy(&answer).contains("HTTP/1.1 200"), "{answer:?}");
    }

    #[tokio::test]
    async fn an_answer_not_signed_with_the_room_key_is_refused() {
        // Someone holding the certificate (the host's machine, say) answering with other bytes.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tls, cert) = crate::net::tls::self_signed_server().unwrap();
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                let Ok(mut s) = tokio_rustls::TlsAcceptor::from(tls.clone()).accept(s).await else { continue };
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let mac = RoomKey([9; 16]).http_mac("file", CHUNK as u64, b"EVIL");
                let _ = s.write_all(format!("HTTP/1.1 206 Partial Content\r\nContent-Length: 4\r\nX-Syncy-Mac: {mac}\r\n\r\nEVIL").as_bytes()).await;
                let _ = s.shutdown().await;
            }
        });
        let offer = FallbackOffer { addr: addr.to_string(), cert: hex::encode(cert), pass: FallbackPass::random().to_hex() };
        let link = HttpLink::new(&offer, "r1", &RoomKey([7; 16]), guest()).unwrap();
        assert!(matches!(link.chunk(&manifest(4 * CHUNK as u64), 1).await, Err(HttpLinkError::BadMac(_))));
    }

    #[tokio::test]
    async fn idle_connections_from_elsewhere_hold_no_slot_a_participant_needs() {
        let dir = tempfile::tempdir().unwrap();
        let key = RoomKey([7; 16]);
        let (server, offer, _) = server(dir.path(), &vec![1u8; CHUNK as usize], &key).await;
        // 120 connections that never finish a handshake, from eight other addresses (a
        // slowloris): each holds at most a short-lived slot of its address's 16.
        let mut idle = Vec::new();
        for i in 0..120u8 {
            let s = tokio::net::TcpSocket::new_v4().unwrap();
            s.bind(std::net::SocketAddr::from(([127, 0, 0, 2 + i % 8], 0))).unwrap();
            idle.push(s.connect(server.addr).await.unwrap());
        }
        let link = HttpLink::new(&offer, "r1", &key, guest()).unwrap();
        let started = std::time::Instant::now();
        link.manifest().await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(4), "served after {:?}", started.elapsed());
    }
}
