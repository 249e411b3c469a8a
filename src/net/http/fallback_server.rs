//! `syncy host --http ADDR`: the room over HTTPS, for a participant whose WebRTC link does not
//! come up (UDP blocked, no TURN server).
//!
//! - `GET /ROOM/manifest` — the manifest (a protocol message);
//! - `GET /ROOM/file` with `Range: bytes=A-B` — the file's bytes;
//! - `GET /ROOM/state?c=CLIENT_US` — a `Pong` for the clock, the room's `State` and, once
//!   known, the file's signed hash (each a length-prefixed protocol message), so a fallback
//!   participant stays in sync.
//!
//! What protects it:
//! - **TLS** with a certificate made when the host starts. The host signs its SHA-256 into each
//!   admitted participant's `Fallback` signal and the participant accepts that certificate
//!   only, so the bytes are encrypted, to the host, whoever relays the signal.
//! - **A pass per participant** the host lets in, in the same signed signal, revoked when the
//!   participant leaves the room, is sent away, breaks the protocol, or leaves the pass unused
//!   for [`PASS_IDLE`]. Each request carries `X-Syncy-Auth: ID NONCE MAC SIG`: the pass's id, a
//!   fresh nonce, an HMAC under a key derived from the room key *and* the pass over the request
//!   line, its range and the nonce, and the participant's signature (its own key, which the
//!   host let in) over the same. No reusable secret crosses the wire; the signaling server
//!   (which relays the pass but has no room key), a link holder the host never let in (no pass:
//!   `--approve` guards this too) and one who read the pass off a `ws://` link (not the key)
//!   get a 401; a nonce seen is refused.
//! - **Bounds**: a TLS handshake and the request head within 5 s, before any of the 64 serving
//!   slots is taken; 64 connections per address, 1024 in all; a request served within 60 s.
//!
//! Every answer still carries `X-Syncy-Mac` (an HMAC under the room key over the kind, the
//! offset and the body). Playback commands go over WebRTC only: a fallback participant
//! watches with the room but does not steer it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::net::http::range::{RangeAnswer, parse_range};
use crate::protocol::auth::{FallbackPass, RoomKey};
use crate::protocol::guest::GuestId;
use crate::protocol::identity::Purpose;
use crate::protocol::signal::PeerId;
use crate::protocol::stream::{self, Manifest, Message};
use crate::server::Slots;

/// Largest request head accepted.
const MAX_HEAD: usize = 8 * 1024;
/// Largest range served in one answer (a participant asks chunk by chunk).
pub const MAX_RANGE: u64 = 4 << 20;
/// Requests served at once (after their head and pass were checked).
const MAX_CONNECTIONS: usize = 64;
/// Connections at once, and from one address: a participant fetches 4 chunks and polls the
/// clock (5 at once), and an office with UDP blocked, the fallback's typical user, puts a dozen
/// behind one address.
const MAX_OPEN: usize = 1024;
const MAX_PER_SOURCE: usize = 64;
/// Time for the TLS handshake and the request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Time to serve one request.
const SERVE_TIMEOUT: Duration = Duration::from_secs(60);
/// Nonces remembered per pass (a request is about 100 bytes: a replay further back than this
/// needs the request, which TLS keeps from everyone but the host).
const NONCES_KEPT: usize = 4096;

/// What the server needs from the host.
pub struct Room {
    /// Room id (the path prefix).
    pub room: String,
    /// The room key (request MACs with the passes, answer MACs).
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
    /// The passes of the participants let in.
    pub passes: Arc<Passes>,
}

/// The passes the host has given out, by id.
#[derive(Debug, Default)]
pub struct Passes {
    by_id: Mutex<HashMap<String, Issued>>,
}

#[derive(Debug)]
struct Issued {
    pass: FallbackPass,
    /// The participant's id in the host (unique for the host's life, unlike the server's).
    peer: PeerId,
    /// Its key: every request must be signed with it.
    guest: GuestId,
    /// When it was issued or last opened something.
    used: Instant,
    seen: HashSet<String>,
    order: VecDeque<String>,
}

/// A pass unused this long opens nothing more. A participant turns to the fallback within
/// seconds of its set-up (each set-up brings a fresh pass) and then polls the clock every
/// second; a pass idle longer is a leftover (of a participant whose leaving the host never
/// heard, across a signaling server restart).
pub const PASS_IDLE: Duration = Duration::from_secs(120);

impl Passes {
    /// A pass for the participant the host calls `peer`, whose key is `guest`.
    pub fn issue(&self, peer: PeerId, guest: GuestId) -> FallbackPass {
        self.issue_at(Instant::now(), peer, guest)
    }

    fn issue_at(&self, now: Instant, peer: PeerId, guest: GuestId) -> FallbackPass {
        let pass = FallbackPass::random();
        let issued = Issued { pass: pass.clone(), peer, guest, used: now, seen: HashSet::new(), order: VecDeque::new() };
        let mut by_id = self.lock();
        // Leftovers go as new passes come: the map holds no more than the recent set-ups.
        by_id.retain(|_, i| now.saturating_duration_since(i.used) < PASS_IDLE);
        by_id.insert(pass.id(), issued);
        pass
    }

    /// The participant left the room: its passes open nothing any more.
    pub fn revoke(&self, peer: PeerId) {
        self.lock().retain(|_, i| i.peer != peer);
    }

    /// The key is banned: the passes given to it, over any connection, open nothing any more.
    pub fn revoke_guest(&self, guest: GuestId) {
        self.lock().retain(|_, i| i.guest != guest);
    }

    /// Whether `auth` (`ID NONCE MAC SIG`) is a pass's, for `request`, signed by its
    /// participant, with a nonce not seen.
    fn admit(&self, key: &RoomKey, request: &str, auth: &str) -> bool {
        self.admit_at(Instant::now(), key, request, auth)
    }

    fn admit_at(&self, now: Instant, key: &RoomKey, request: &str, auth: &str) -> bool {
        let mut parts = auth.split(' ');
        let (Some(id), Some(nonce), Some(mac), Some(sig), None) = (parts.next(), parts.next(), parts.next(), parts.next(), parts.next()) else {
            return false;
        };
        if nonce.len() != 32 {
            return false;
        }
        let line = format!("{request} {nonce}");
        let mut by_id = self.lock();
        let Some(issued) = by_id.get_mut(id) else { return false };
        if now.saturating_duration_since(issued.used) >= PASS_IDLE {
            by_id.remove(id);
            return false;
        }
        let signed = |i: &Issued| i.guest.verify(Purpose::FallbackRequest, &[line.as_bytes()], sig);
        if !issued.pass.verify_request(key, &line, mac) || !signed(issued) || !issued.seen.insert(nonce.to_string()) {
            return false;
        }
        issued.used = now;
        issued.order.push_back(nonce.to_string());
        if issued.order.len() > NONCES_KEPT
            && let Some(old) = issued.order.pop_front()
        {
            issued.seen.remove(&old);
        }
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Issued>> {
        self.by_id.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The line a request's MAC covers (the nonce follows it).
pub fn request_line(method: &str, target: &str, range: Option<&str>) -> String {
    format!("{method} {target} {}", range.unwrap_or("-"))
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

/// Binds `addr` and serves `room` over TLS with `tls`.
pub async fn start(addr: SocketAddr, room: Room, tls: Arc<rustls::ServerConfig>) -> std::io::Result<HttpFallback> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    // Opened once: every ranged answer reads at its offset (pread), no open and seek each time.
    let file = Arc::new(std::fs::File::open(&room.file)?);
    let room = Arc::new(room);
    let (open, serving) = (Slots::new(MAX_OPEN, MAX_PER_SOURCE), Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS)));
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let task = tokio::spawn(async move {
        loop {
            let (sock, peer) = crate::net::accept::next(&listener, "HTTP fallback").await;
            let Ok(slot) = open.take(peer.ip()) else { continue };
            let (room, file, serving, acceptor) = (room.clone(), file.clone(), serving.clone(), acceptor.clone());
            tokio::spawn(async move {
                if let Err(e) = connection(sock, acceptor, &room, file, serving).await {
                    tracing::debug!(%peer, "HTTP fallback connection: {e}");
                }
                drop(slot);
            });
        }
    });
    tracing::info!("HTTP fallback on https://{addr}/");
    Ok(HttpFallback { addr, task })
}

/// A checked request: what to serve.
struct Checked {
    what: String,
    query: String,
    range: Option<String>,
}

/// One request per connection (`Connection: close`): the handshake and the head in time, the
/// pass checked, then a serving slot.
async fn connection(
    sock: tokio::net::TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    room: &Room,
    file: Arc<std::fs::File>,
    serving: Arc<tokio::sync::Semaphore>,
) -> std::io::Result<()> {
    let head = tokio::time::timeout(HEAD_TIMEOUT, async {
        let mut tls = acceptor.accept(sock).await?;
        let head = super::head::read(&mut tls, MAX_HEAD).await?;
        Ok::<_, std::io::Error>((tls, head))
    })
    .await;
    let Ok(head) = head else { return Ok(()) };
    let (mut tls, head) = head?;
    let checked = match check(room, head) {
        Ok(c) => c,
        Err(Some(status)) => return reply(&mut tls, status, &[], b"").await,
        Err(None) => return Ok(()),
    };
    let Ok(_permit) = serving.acquire().await else { return Ok(()) };
    tokio::time::timeout(SERVE_TIMEOUT, serve(&mut tls, room, file, checked)).await.unwrap_or(Ok(()))
}

/// The head's method, room and pass: what to serve, or the status to refuse with (`None`: the
/// client closed).
fn check(room: &Room, head: super::head::Request) -> Result<Checked, Option<&'static str>> {
    let h = match head {
        super::head::Request::Head(h) => h,
        super::head::Request::Closed => return Err(None),
        super::head::Request::Bad => return Err(Some("400 Bad Request")),
    };
    if h.method != "GET" {
        return Err(Some("405 Method Not Allowed"));
    }
    let range = h.header("range").map(str::to_string);
    let line = request_line(&h.method, &h.path, range.as_deref());
    if !h.header("x-syncy-auth").is_some_and(|auth| room.passes.admit(&room.key, &line, auth)) {
        return Err(Some("401 Unauthorized"));
    }
    let (route, query) = h.path.split_once('?').unwrap_or((&h.path, ""));
    let Some(what) = route.strip_prefix('/').and_then(|r| r.strip_prefix(room.room.as_str())).and_then(|r| r.strip_prefix('/')) else {
        return Err(Some("404 Not Found"));
    };
    Ok(Checked { what: what.to_string(), query: query.to_string(), range })
}

async fn serve<S: AsyncWrite + Unpin>(sock: &mut S, room: &Room, file: Arc<std::fs::File>, c: Checked) -> std::io::Result<()> {
    match c.what.as_str() {
        "manifest" => {
            let body = stream::encode(&Message::Manifest((*room.manifest).clone()));
            signed(sock, room, "manifest", 0, "200 OK", vec![], &body).await
        }
        "state" => {
            let client_us = c.query.split('&').find_map(|kv| kv.strip_prefix("c=")).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            let host_us = room.clock.elapsed().as_micros() as u64;
            let mut body = Vec::new();
            let hash = room.hash.borrow().clone();
            for m in [Message::Pong { client_us, host_us }, room.state.borrow().clone()].into_iter().chain(hash) {
                let bytes = stream::encode(&m);
                body.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
                body.extend_from_slice(&bytes);
            }
            signed(sock, room, "state", client_us, "200 OK", vec![], &body).await
        }
        "file" => {
            let size = room.manifest.size;
            let (start, end) = match parse_range(c.range.as_deref(), size) {
                RangeAnswer::Partial(s, e) => (s, e.min(s + MAX_RANGE - 1)),
                RangeAnswer::Whole if size > 0 => (0, (size - 1).min(MAX_RANGE - 1)),
                _ => return reply(sock, "416 Range Not Satisfiable", &[("Content-Range", format!("bytes */{size}"))], b"").await,
            };
            let body = tokio::task::spawn_blocking(move || {
                use std::os::unix::fs::FileExt;
                let mut body = vec![0u8; (end - start + 1) as usize];
                file.read_exact_at(&mut body, start).map(|_| body)
            })
            .await
            .map_err(std::io::Error::other)??;
            let extra = vec![("Content-Range", format!("bytes {start}-{end}/{size}")), ("Accept-Ranges", "bytes".into())];
            signed(sock, room, "file", start, "206 Partial Content", extra, &body).await
        }
        _ => reply(sock, "404 Not Found", &[], b"").await,
    }
}

async fn signed<S: AsyncWrite + Unpin>(
    sock: &mut S,
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

async fn reply<S: AsyncWrite + Unpin>(sock: &mut S, status: &str, headers: &[(&str, String)], body: &[u8]) -> std::io::Result<()> {
    let mut h = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    for (k, v) in headers {
        h += &format!("{k}: {v}\r\n");
    }
    h += "\r\n";
    sock.write_all(h.as_bytes()).await?;
    sock.write_all(body).await?;
    sock.flush().await?;
    sock.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::guest::{GuestKey, GuestSecret};

    /// `X-Syncy-Auth` for `request` with `pass`, signed by `guest`.
    fn auth(key: &RoomKey, pass: &FallbackPass, guest: &GuestKey, request: &str, nonce: &str) -> String {
        let line = format!("{request} {nonce}");
        format!("{} {nonce} {} {}", pass.id(), pass.request_mac(key, &line), guest.sign(Purpose::FallbackRequest, &[line.as_bytes()]))
    }

    #[test]
    fn a_pass_opens_for_its_participants_key_once_per_nonce_and_not_after_lying_idle() {
        let (passes, key, t0) = (Passes::default(), RoomKey([1; 16]), Instant::now());
        let ann = GuestSecret::from_bytes([1; 32]).key_for("r");
        let pass = passes.issue_at(t0, 4, ann.public());
        let req = "GET /r/manifest -";
        let nonce = |n: u8| hex::encode([n; 16]);
        assert!(passes.admit_at(t0, &key, req, &auth(&key, &pass, &ann, req, &nonce(1))));
        let other = passes.issue_at(t0, 9, ann.public());
        passes.revoke_guest(ann.public());
        assert!(!passes.admit_at(t0, &key, req, &auth(&key, &other, &ann, req, &nonce(9))), "a banned key's passes go");
        let pass = passes.issue_at(t0, 4, ann.public());
        assert!(passes.admit_at(t0, &key, req, &auth(&key, &pass, &ann, req, &nonce(1))));
        assert!(!passes.admit_at(t0, &key, req, &auth(&key, &pass, &ann, req, &nonce(1))), "a nonce seen");
        let eve = GuestSecret::from_bytes([2; 32]).key_for("r");
        assert!(!passes.admit_at(t0, &key, req, &auth(&key, &pass, &eve, req, &nonce(2))), "another key");
        assert!(!passes.admit_at(t0, &key, req, &format!("{} {} x", pass.id(), nonce(3))), "no signature");
        // Used, it stays good; idle for PASS_IDLE, it is gone for good.
        let later = t0 + PASS_IDLE - Duration::from_secs(1);
        assert!(passes.admit_at(later, &key, req, &auth(&key, &pass, &ann, req, &nonce(4))));
        assert!(passes.admit_at(later + PASS_IDLE - Duration::from_secs(1), &key, req, &auth(&key, &pass, &ann, req, &nonce(5))));
        let idle = later + 2 * PASS_IDLE;
        assert!(!passes.admit_at(idle, &key, req, &auth(&key, &pass, &ann, req, &nonce(6))));
        assert!(passes.lock().is_empty());
        // Leftovers go as new passes are issued.
        passes.issue_at(t0, 5, ann.public());
        passes.issue_at(t0 + PASS_IDLE, 6, ann.public());
        assert_eq!(passes.lock().len(), 1);
    }
}
