//! A local HTTP server over the chunk store, with Range support, so an external player (mpv)
//! reads the file as it streams in. It listens on 127.0.0.1 only, at an unguessable path, and
//! a read of a chunk not here yet waits for it (the store asks the host, critical first).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use crate::core::buffer::ChunkSource;
use crate::media::avio::ByteSource;
use crate::media::store_source::SharedStore;
use crate::net::http::range::{RangeAnswer, parse_range};

/// Largest request head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// Bytes per read from the store.
const PIECE: usize = 64 * 1024;

/// A running range server.
pub struct RangeServer {
    /// The URL to hand to the player.
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RangeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Requests served at once (after their head and path): mpv opens one or two; more wait.
const MAX_CONNECTIONS: usize = 8;

/// Time to send a request head: a connection that sends nothing is let go.
const HEAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Starts serving `shared` on 127.0.0.1, at a random path.
pub async fn start<S: ChunkSource + 'static>(shared: Arc<SharedStore<S>>) -> std::io::Result<RangeServer> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr: SocketAddr = listener.local_addr()?;
    let token = hex::encode(rand::random::<[u8; 16]>());
    // No extension from the host's file name: mpv would pick a demuxer by it.
    let path = format!("/{token}/media");
    let url = format!("http://{addr}{path}");
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let task = tokio::spawn(async move {
        loop {
            let (sock, _) = crate::net::accept::next(&listener, "range server").await;
            let (shared, path, slots) = (shared.clone(), path.clone(), slots.clone());
            tokio::spawn(async move {
                if let Err(e) = serve(sock, shared, &path, slots).await {
                    tracing::debug!("range server connection: {e}");
                }
            });
        }
    });
    Ok(RangeServer { url, task })
}

/// One request: its head within [`HEAD_TIMEOUT`], the path checked, then one of the serving
/// slots (a local user's silent sockets hold none of them).
async fn serve<S: ChunkSource + 'static>(
    mut sock: TcpStream,
    shared: Arc<SharedStore<S>>,
    path: &str,
    slots: Arc<tokio::sync::Semaphore>,
) -> std::io::Result<()> {
    let head = tokio::time::timeout(HEAD_TIMEOUT, crate::net::http::head::read(&mut sock, MAX_HEAD)).await;
    let Ok(head) = head else { return Ok(()) };
    let (method, req_path, range) = match head? {
        crate::net::http::head::Request::Head(h) => {
            let range = h.header("range").map(str::to_string);
            (h.method, h.path, range)
        }
        crate::net::http::head::Request::Closed => return Ok(()),
        crate::net::http::head::Request::Bad => {
            sock.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await?;
            return Ok(());
        }
    };
    if !crate::protocol::auth::constant_eq(req_path.as_bytes(), path.as_bytes()) {
        sock.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await?;
        return Ok(());
    }
    if method != "GET" && method != "HEAD" {
        sock.write_all(b"HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await?;
        return Ok(());
    }
    let Ok(_slot) = slots.acquire_owned().await else { return Ok(()) };
    let mut reader = shared.reader();
    let size = reader.size();
    let (status, start, end) = match parse_range(range.as_deref(), size) {
        RangeAnswer::Whole => ("200 OK", 0, size.saturating_sub(1)),
        RangeAnswer::Partial(s, e) => ("206 Partial Content", s, e),
        RangeAnswer::Unsatisfiable => {
            let h = format!("HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{size}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            sock.write_all(h.as_bytes()).await?;
            return Ok(());
        }
    };
    let len = if size == 0 { 0 } else { end - start + 1 };
    let mut h =
        format!("HTTP/1.1 {status}\r\nContent-Type: application/octet-stream\r\nAccept-Ranges: bytes\r\nContent-Length: {len}\r\nConnection: close\r\n");
    if status.starts_with("206") {
        h += &format!("Content-Range: bytes {start}-{end}/{size}\r\n");
    }
    h += "\r\n";
    sock.write_all(h.as_bytes()).await?;
    if method == "HEAD" {
        return Ok(());
    }
    let mut pos = start;
    while pos <= end && len > 0 {
        let want = ((end - pos + 1) as usize).min(PIECE);
        // The store read blocks until the chunk arrives: off the async threads.
        let (r, piece) = tokio::task::spawn_blocking(move || {
            let mut piece = vec![0u8; want];
            let r = reader.read_at(pos, &mut piece);
            (r.map(|n| (n, reader)), piece)
        })
        .await
        .map_err(std::io::Error::other)?;
        let (n, back) = r?;
        reader = back;
        if n == 0 {
            break;
        }
        sock.write_all(&piece[..n]).await?;
        pos += n as u64;
    }
    Ok(())
}
