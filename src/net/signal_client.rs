//! Client side of the signaling server: a WebSocket carrying JSON messages.

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::Connector;
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::protocol::signal::{self, ClientMsg, DEFAULT_MAX_MESSAGE, ServerMsg};

/// How long connecting (TCP, TLS and the WebSocket handshake) may take.
pub const CONNECT_WAIT: Duration = Duration::from_secs(10);

/// How often the client pings the server so idle rooms stay open.
const KEEPALIVE: Duration = Duration::from_secs(30);

/// Signaling failures.
#[derive(Debug, thiserror::Error)]
pub enum SignalClientError {
    /// Could not reach the server.
    #[error("cannot reach the signaling server at {url}: {source}")]
    Connect {
        /// URL tried.
        url: String,
        /// Why.
        source: tokio_tungstenite::tungstenite::Error,
    },
    /// Nothing answered in time (a firewall dropping the connection, or a host that is off).
    #[error("the signaling server at {url} did not answer within {} s", CONNECT_WAIT.as_secs())]
    Timeout {
        /// URL tried.
        url: String,
    },
    /// The TLS set-up for a `wss://` server failed.
    #[error(transparent)]
    Tls(#[from] super::tls::TlsError),
    /// The server sent something that is not a signaling message.
    #[error("the signaling server sent an invalid message: {0}")]
    Protocol(#[from] signal::SignalError),
    /// The server turned the connection away before anything else (full, say).
    #[error("the signaling server refused the connection: {0}")]
    Refused(String),
    /// The server did not greet with its nonce (not a Syncy signaling server, or an older one).
    #[error("the signaling server at {url} did not greet as a Syncy server of this version does")]
    NoHello {
        /// URL tried.
        url: String,
    },
}

/// A connected signaling client: send with `tx`, receive with `rx`.
/// `rx` ends when the connection closes.
pub struct SignalClient {
    /// Messages to the server.
    pub tx: mpsc::Sender<ClientMsg>,
    /// Messages from the server (after its `Hello`).
    pub rx: mpsc::Receiver<ServerMsg>,
    /// The server's nonce for this connection (its `Hello`), which a host signs its room over.
    pub nonce: String,
}

impl SignalClient {
    /// Connects to `url` (`ws://HOST:PORT/`, or `wss://` checked with `tls`, by default the
    /// system's trusted roots).
    pub async fn connect(url: &str, tls: Option<Arc<rustls::ClientConfig>>) -> Result<SignalClient, SignalClientError> {
        let cfg = WebSocketConfig::default().max_message_size(Some(DEFAULT_MAX_MESSAGE * 4));
        let connector = if url.starts_with("wss://") {
            let tls = match tls {
                Some(t) => t,
                None => super::tls::client_config(None)?,
            };
            Some(Connector::Rustls(tls))
        } else {
            None
        };
        let connecting = tokio_tungstenite::connect_async_tls_with_config(url, Some(cfg), true, connector);
        let (ws, _) = tokio::time::timeout(CONNECT_WAIT, connecting)
            .await
            .map_err(|_| SignalClientError::Timeout { url: url.to_string() })?
            .map_err(|source| SignalClientError::Connect { url: url.to_string(), source })?;
        let (tx, out_rx) = mpsc::channel::<ClientMsg>(64);
        let (in_tx, mut rx) = mpsc::channel::<ServerMsg>(64);
        tokio::spawn(relay(ws, out_rx, in_tx));
        match tokio::time::timeout(CONNECT_WAIT, rx.recv()).await {
            Ok(Some(ServerMsg::Hello { nonce })) => Ok(SignalClient { tx, rx, nonce }),
            Ok(Some(ServerMsg::Error { message, .. })) => Err(SignalClientError::Refused(message)),
            Err(_) => Err(SignalClientError::Timeout { url: url.to_string() }),
            Ok(_) => Err(SignalClientError::NoHello { url: url.to_string() }),
        }
    }
}

type WsStream = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Carries messages both ways (and keep-alive pings) until either side closes.
async fn relay(ws: WsStream, mut out_rx: mpsc::Receiver<ClientMsg>, in_tx: mpsc::Sender<ServerMsg>) {
    let (mut sink, mut source) = ws.split();
    let mut keepalive = tokio::time::interval(KEEPALIVE);
    keepalive.tick().await;
    loop {
        let sent = tokio::select! {
            out = out_rx.recv() => match out {
                Some(msg) => sink.send(Ws::Text(signal::encode(&msg).into())).await.is_ok(),
                None => false,
            },
            _ = keepalive.tick() => sink.send(Ws::Ping(Vec::new().into())).await.is_ok(),
            frame = source.next() => match server_message(frame) {
                Frame::Message(msg) => in_tx.send(msg).await.is_ok(),
                Frame::Other => true,
                Frame::End => false,
            },
        };
        if !sent {
            break;
        }
    }
    let _ = sink.close().await;
}

/// What one WebSocket frame from the server is to the client.
enum Frame {
    Message(ServerMsg),
    /// A ping, pong or binary frame: nothing to pass on.
    Other,
    /// The connection ended, or the server broke the protocol.
    End,
}

fn server_message<E>(frame: Option<Result<Ws, E>>) -> Frame {
    let text = match frame {
        Some(Ok(Ws::Text(t))) => t,
        Some(Ok(Ws::Close(_))) | None | Some(Err(_)) => return Frame::End,
        Some(Ok(_)) => return Frame::Other,
    };
    match signal::decode_server(text.as_str(), DEFAULT_MAX_MESSAGE * 4) {
        Ok(msg) => Frame::Message(msg),
        Err(e) => {
            tracing::warn!("invalid message from the signaling server: {e}");
            Frame::End
        }
    }
}
