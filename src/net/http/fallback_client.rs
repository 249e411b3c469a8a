//! The participant's side of the host's HTTP fallback (see `fallback_server`): the same protocol
//! messages the WebRTC link carries, made from HTTP requests. Requests become ranged GETs,
//! pings become state polls; what comes back goes into the engine as if the host had sent it,
//! so buffering, playback, `--save` and the hash work unchanged.

use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc};

use super::fallback_server::MAX_RANGE;
use crate::protocol::auth::RoomKey;
use crate::protocol::stream::{self, Manifest, Message, ORIGINAL, Role};

/// Largest answer head read.
const MAX_HEAD: usize = 16 * 1024;
/// Chunk fetches at once.
const PARALLEL: usize = 4;

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
}

/// The host's HTTP fallback for one room.
#[derive(Clone)]
pub struct HttpLink {
    addr: String,
    room: String,
    key: RoomKey,
}

impl HttpLink {
    /// The fallback at `addr` (`HOST:PORT`) for `room`.
    pub fn new(addr: &str, room: &str, key: &RoomKey) -> Self {
        HttpLink { addr: addr.to_string(), room: room.to_string(), key: key.clone() }
    }

    /// `http://ADDR/ROOM/`, for messages.
    pub fn url(&self) -> String {
        format!("http://{}/{}/", self.addr, self.room)
    }

    /// GETs `what` (with `query`, and a byte range); checks the MAC for `offset`.
    async fn get(&self, what: &str, query: &str, range: Option<(u64, u64)>, offset: u64, limit: usize) -> Result<Vec<u8>, HttpLinkError> {
        let io = |source| HttpLinkError::Io { addr: self.addr.clone(), source };
        let mut sock = TcpStream::connect(&self.addr).await.map_err(io)?;
        let _ = sock.set_nodelay(true);
        let mut req = format!(
            "GET /{}/{what}{query} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n",
            self.room,
            self.addr,
            self.key.http_token()
        );
        if let Some((a, b)) = range {
            req += &format!("Range: bytes={a}-{b}\r\n");
        }
        req += "\r\n";
        sock.write_all(req.as_bytes()).await.map_err(io)?;
        let mut buf = Vec::with_capacity(limit.min(1 << 20) + 1024);
        let (status, len, mac, body_at) = loop {
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
                    break (resp.code.unwrap_or(0), len, get("x-syncy-mac").map(str::to_string), at);
                }
                Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => continue,
                _ => return Err(HttpLinkError::Malformed(self.addr.clone())),
            }
        };
        if !(200..300).contains(&status) {
            return Err(HttpLinkError::Status { addr: self.addr.clone(), status });
        }
        let len = len.filter(|&l| l <= limit).ok_or_else(|| HttpLinkError::Malformed(self.addr.clone()))?;
        let mut body = buf.split_off(body_at);
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
    tokio::spawn(async move {
        while let Some(bytes) = out.recv().await {
            match stream::decode_from(&bytes, Role::Participant, Some(&manifest)) {
                Ok(msg) => {
                    if !serve(msg, &link, &manifest, &slots, &back).await {
                        return;
                    }
                }
                Err(e) => tracing::warn!("not sent over the HTTP fallback: {e}"),
            }
        }
    });
}

/// Does what one message from the engine asks over HTTP; `false` once nothing more can be.
async fn serve(msg: Message, link: &HttpLink, manifest: &Arc<Manifest>, slots: &Arc<Semaphore>, back: &mpsc::UnboundedSender<Delivered>) -> bool {
    let control = |m: &Message| Delivered::Control(BytesMut::from(&stream::encode(m)[..]));
    match msg {
        Message::Request { space: ORIGINAL, chunks, .. } => {
            for index in chunks {
                let Ok(permit) = slots.clone().acquire_owned().await else { return false };
                tokio::spawn(fetch_chunk(link.clone(), manifest.clone(), index, back.clone(), permit));
            }
        }
        Message::Ping { client_us } => {
            let (link, manifest, back) = (link.clone(), manifest.clone(), back.clone());
            tokio::spawn(async move {
                match link.state(&manifest, client_us).await {
                    Ok(msgs) => msgs.iter().for_each(|m| drop(back.send(control(m)))),
                    Err(e) => drop(back.send(Delivered::Failed(e.to_string()))),
                }
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
        }
    }

    #[tokio::test]
    async fn chunks_and_the_clock_come_over_http_signed_and_a_wrong_key_gets_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f.bin");
        let bytes: Vec<u8> = (0..2 * CHUNK + 10).map(|i| (i % 251) as u8).collect();
        std::fs::write(&file, &bytes).unwrap();
        let size = bytes.len() as u64;
        let c = CHUNK as usize;
        let key = RoomKey([7; 16]);
        let state = Message::State { playing: true, position_us: 5, at_host_us: 6, rate_milli: 1000, seq: 3, waiting: vec![] };
        let (_tx, rx) = tokio::sync::watch::channel(state.clone());
        let room = fallback_server::Room {
            room: "r1".into(),
            key: key.clone(),
            file,
            manifest: Arc::new(manifest(size)),
            state: rx,
            hash: tokio::sync::watch::channel(None).1,
            clock: std::time::Instant::now(),
        };
        let server = fallback_server::start("127.0.0.1:0".parse().unwrap(), room).await.unwrap();
        let link = HttpLink::new(&server.addr.to_string(), "r1", &key);
        let m = link.manifest().await.unwrap();
        assert_eq!(m, manifest(size));
        assert_eq!(link.chunk(&m, 1).await.unwrap(), bytes[c..2 * c]);
        assert_eq!(link.chunk(&m, 2).await.unwrap(), bytes[2 * c..], "the short last chunk");
        let msgs = link.state(&m, 42).await.unwrap();
        assert!(matches!(msgs[0], Message::Pong { client_us: 42, .. }), "{msgs:?}");
        assert_eq!(msgs[1], state);
        // Another key: no token, no bytes.
        let other = HttpLink::new(&server.addr.to_string(), "r1", &RoomKey([8; 16]));
        assert!(matches!(other.manifest().await, Err(HttpLinkError::Status { status: 401, .. })));
    }

    #[tokio::test]
    async fn an_answer_not_signed_with_the_room_key_is_refused() {
        // Someone in the middle (or a wrong server) answering with its own bytes.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let mac = RoomKey([9; 16]).http_mac("file", CHUNK as u64, b"EVIL");
                let _ = s.write_all(format!("HTTP/1.1 206 Partial Content\r\nContent-Length: 4\r\nX-Syncy-Mac: {mac}\r\n\r\nEVIL").as_bytes()).await;
            }
        });
        let link = HttpLink::new(&addr.to_string(), "r1", &RoomKey([7; 16]));
        assert!(matches!(link.chunk(&manifest(4 * CHUNK as u64), 1).await, Err(HttpLinkError::BadMac(_))));
    }
}
