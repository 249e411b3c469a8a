//! `syncy host --http ADDR`: the room over plain HTTP, for a participant whose WebRTC link
//! does not come up (UDP blocked, no TURN server).
//!
//! - `GET /ROOM/manifest` — the manifest (a protocol message);
//! - `GET /ROOM/file` with `Range: bytes=A-B` — the file's bytes;
//! - `GET /ROOM/state?c=CLIENT_US` — a `Pong` for the clock and the room's `State`
//!   (each a length-prefixed protocol message), so a fallback participant stays in sync.
//!
//! Every request carries `Authorization: Bearer <token>`, a token derived from the room key
//! (the signaling server never sees it); every answer carries `X-Syncy-Mac`, an HMAC under the
//! room key over the request kind, the offset and the body, so the participant knows the bytes
//! come from the host, unaltered. Playback commands go over WebRTC only: a fallback participant
//! watches with the room but does not steer it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::net::http::range::{RangeAnswer, parse_range};
use crate::protocol::auth::RoomKey;
use crate::protocol::stream::{self, Manifest, Message};

/// Largest request head accepted.
const MAX_HEAD: usize = 8 * 1024;
/// Largest range served in one answer (a participant asks chunk by chunk).
pub const MAX_RANGE: u64 = 4 << 20;
/// Connections served at once; more wait in the kernel's queue.
const MAX_CONNECTIONS: usize = 64;

/// What the server needs from the host.
pub struct Room {
    /// Room id (the path prefix).
    pub room: String,
    /// The room key (token and MACs).
    pub key: RoomKey,
    /// The file.
    pub file: PathBuf,
    /// Its manifest.
    pub manifest: Arc<Manifest>,
    /// The room's clock: the latest `State`.
    pub state: watch::Receiver<Message>,
    /// The file's signed hash (`FileHash`), once the host has read it through.
    pub hash: watch::Receiver<Option<Message>>,
    /// The host's clock origin (microseconds since then are `host_us`).
    pub clock: Instant,
}

/// A running fallback server; stops when dropped.
pub struct HttpFallback {
    /// Where it listens.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HttpFallback {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds `addr` and serves `room`.
pub async fn start(addr: SocketAddr, room: Room) -> std::io::Result<HttpFallback> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    // Opened once: every ranged answer reads at its offset (pread), no open and seek each time.
    let file = Arc::new(std::fs::File::open(&room.file)?);
    let room = Arc::new(room);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let task = tokio::spawn(async move {
        loop {
            let Ok(permit) = slots.clone().acquire_owned().await else { return };
            let Ok((sock, peer)) = listener.accept().await else { continue };
            let (room, file) = (room.clone(), file.clone());
            tokio::spawn(async move {
                let _permit = permit;
                let served = tokio::time::timeout(std::time::Duration::from_secs(60), serve(sock, &room, file)).await;
                if let Ok(Err(e)) = served {
                    tracing::debug!(%peer, "HTTP fallback connection: {e}");
                }
            });
        }
    });
    tracing::info!("HTTP fallback on http://{addr}/");
    Ok(HttpFallback { addr, task })
}

/// One request per connection (`Connection: close`): simple, and a slow link's requests do
/// not queue behind each other.
async fn serve(mut sock: TcpStream, room: &Room, file: Arc<std::fs::File>) -> std::io::Result<()> {
    let (method, path, range, auth) = match super::head::read(&mut sock, MAX_HEAD).await? {
        super::head::Request::Head(h) => {
            let (range, auth) = (h.header("range").map(str::to_string), h.header("authorization").map(str::to_string));
            (h.method, h.path, range, auth)
        }
        super::head::Request::Closed => return Ok(()),
        super::head::Request::Bad => return reply(&mut sock, "400 Bad Request", &[], b"").await,
    };
    if method != "GET" {
        return reply(&mut sock, "405 Method Not Allowed", &[("Allow", "GET".into())], b"").await;
    }
    let token = room.key.http_token();
    if auth.as_deref().and_then(|a| a.strip_prefix("Bearer ")) != Some(token.as_str()) {
        return reply(&mut sock, "401 Unauthorized", &[], b"").await;
    }
    let (route, query) = path.split_once('?').unwrap_or((&path, ""));
    let Some(what) = route.strip_prefix('/').and_then(|r| r.strip_prefix(room.room.as_str())).and_then(|r| r.strip_prefix('/')) else {
        return reply(&mut sock, "404 Not Found", &[], b"").await;
    };
    match what {
        "manifest" => {
            let body = stream::encode(&Message::Manifest((*room.manifest).clone()));
            signed(&mut sock, room, "manifest", 0, "200 OK", vec![], &body).await
        }
        "state" => {
            let client_us = query.split('&').find_map(|kv| kv.strip_prefix("c=")).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            let host_us = room.clock.elapsed().as_micros() as u64;
            let mut body = Vec::new();
            let hash = room.hash.borrow().clone();
            for m in [Message::Pong { client_us, host_us }, room.state.borrow().clone()].into_iter().chain(hash) {
                let bytes = stream::encode(&m);
                body.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
                body.extend_from_slice(&bytes);
            }
            signed(&mut sock, room, "state", client_us, "200 OK", vec![], &body).await
        }
        "file" => {
            let size = room.manifest.size;
            let (start, end) = match parse_range(range.as_deref(), size) {
                RangeAnswer::Partial(s, e) => (s, e.min(s + MAX_RANGE - 1)),
                RangeAnswer::Whole if size > 0 => (0, (size - 1).min(MAX_RANGE - 1)),
                _ => return reply(&mut sock, "416 Range Not Satisfiable", &[("Content-Range", format!("bytes */{size}"))], b"").await,
            };
            let body = tokio::task::spawn_blocking(move || {
                use std::os::unix::fs::FileExt;
                let mut body = vec![0u8; (end - start + 1) as usize];
                file.read_exact_at(&mut body, start).map(|_| body)
            })
            .await
            .map_err(std::io::Error::other)??;
            let extra = vec![("Content-Range", format!("bytes {start}-{end}/{size}")), ("Accept-Ranges", "bytes".into())];
            signed(&mut sock, room, "file", start, "206 Partial Content", extra, &body).await
        }
        _ => reply(&mut sock, "404 Not Found", &[], b"").await,
    }
}

async fn signed(
    sock: &mut TcpStream,
    room: &Room,
    what: &str,
    offset: u64,
    status: &str,
    mut headers: Vec<(&str, String)>,
    body: &[u8],
) -> std::io::Result<()> {
    headers.push(("X-Syncy-Mac", room.key.http_mac(what, offset, body)));
    reply(sock, status, &headers, body).await
}

async fn reply(sock: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) -> std::io::Result<()> {
    let mut h = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    for (k, v) in headers {
        h += &format!("{k}: {v}\r\n");
    }
    h += "\r\n";
    sock.write_all(h.as_bytes()).await?;
    sock.write_all(body).await?;
    sock.flush().await
}
