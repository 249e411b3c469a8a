//! TURN over TLS (`turns:`) for webrtc-rs: it has no TLS of its own, so our runtime connects
//! (tokio-rustls, the certificate checked against the system's roots plus `--tls-ca`) and hands
//! it the stream (vendor/webrtc's `Runtime::connect_tls`, SYNCY-PATCH.md).

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio_rustls::client::TlsStream;
use webrtc::runtime::AsyncTcpStream;

/// The client configuration for TURN servers, set once by `main` (`--tls-ca`); the system's
/// roots alone otherwise.
static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();

/// Trusts `config` for TURN over TLS from now on (first call wins).
pub fn set_client_config(config: Arc<rustls::ClientConfig>) {
    let _ = CONFIG.set(config);
}

fn client_config() -> io::Result<Arc<rustls::ClientConfig>> {
    if let Some(c) = CONFIG.get() {
        return Ok(c.clone());
    }
    let c = super::tls::client_config(None).map_err(io::Error::other)?;
    Ok(CONFIG.get_or_init(|| c).clone())
}

/// A TLS connection to a TURN server, readable and writable at once.
#[derive(Debug)]
pub struct TlsTurnStream {
    read: Mutex<ReadHalf<TlsStream<TcpStream>>>,
    write: Mutex<WriteHalf<TlsStream<TcpStream>>>,
    local: SocketAddr,
    peer: SocketAddr,
}

/// Connects to `addr` and shakes hands, checking the certificate against `server_name`.
pub async fn connect(addr: SocketAddr, server_name: &str) -> io::Result<Arc<dyn AsyncTcpStream>> {
    let name = rustls::pki_types::ServerName::try_from(server_name.to_string()).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let (local, peer) = (tcp.local_addr()?, tcp.peer_addr()?);
    let tls = tokio_rustls::TlsConnector::from(client_config()?).connect(name, tcp).await?;
    let (read, write) = tokio::io::split(tls);
    Ok(Arc::new(TlsTurnStream { read: Mutex::new(read), write: Mutex::new(write), local, peer }))
}

impl AsyncTcpStream for TlsTurnStream {
    fn read<'a, 'b>(&'a self, buf: &'b mut [u8]) -> std::pin::Pin<Box<dyn Future<Output = io::Result<usize>> + Send + 'b>>
    where
        'a: 'b,
    {
        Box::pin(async move { self.read.lock().await.read(buf).await })
    }

    fn write_all<'a, 'b>(&'a self, buf: &'b [u8]) -> std::pin::Pin<Box<dyn Future<Output = io::Result<()>> + Send + 'b>>
    where
        'a: 'b,
    {
        Box::pin(async move {
            let mut w = self.write.lock().await;
            w.write_all(buf).await?;
            w.flush().await
        })
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }

    fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.peer)
    }
}
