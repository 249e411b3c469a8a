//! Reading an HTTP/1.1 request head (httparse), for the two small servers Syncy runs: the
//! participant's range server for mpv and the host's HTTPS fallback.

use tokio::io::{AsyncRead, AsyncReadExt};

/// A request head.
pub struct Head {
    /// `GET`, `HEAD`, …
    pub method: String,
    /// The request target, query included.
    pub path: String,
    headers: Vec<(String, String)>,
}

impl Head {
    /// A header's value (first of that name, any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// What came in.
pub enum Request {
    /// A complete head.
    Head(Head),
    /// The client closed before sending one.
    Closed,
    /// Malformed, or longer than allowed: answer 400.
    Bad,
}

/// Reads one request head of at most `max` bytes.
pub async fn read<S: AsyncRead + Unpin>(sock: &mut S, max: usize) -> std::io::Result<Request> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 2048];
    loop {
        let n = sock.read(&mut buf).await?;
        if n == 0 {
            return Ok(Request::Closed);
        }
        head.extend_from_slice(&buf[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&head) {
            Ok(httparse::Status::Complete(_)) => {
                let headers = req.headers.iter().filter_map(|h| Some((h.name.to_string(), std::str::from_utf8(h.value).ok()?.to_string()))).collect();
                return Ok(Request::Head(Head { method: req.method.unwrap_or("").to_string(), path: req.path.unwrap_or("").to_string(), headers }));
            }
            Ok(httparse::Status::Partial) if head.len() < max => continue,
            _ => return Ok(Request::Bad),
        }
    }
}
