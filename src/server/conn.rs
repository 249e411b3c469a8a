//! One signaling connection: handshake, admission, relay, limits.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::outbox::{Outbox, Outgoing};
use super::slots::{Slot, Source};
use super::{Rooms, ServerConfig};
use crate::core::rate::TokenBucket;
use crate::protocol::signal::{self, ClientMsg, ErrorCode, PeerId, ServerMsg, clean_name};

/// What tungstenite reads into at a time. Its default (128 KiB) is for bulk data; signaling
/// messages are small, and thousands of connections each holding 128 KiB is what a cap on
/// memory must not allow.
const READ_BUFFER: usize = 4096;

/// Where a connection stands.
enum Membership {
    None,
    In { room: String, peer: PeerId },
}

pub(super) async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    addr: SocketAddr,
    slot: Slot,
    joined_by: tokio::time::Instant,
    rooms: Arc<Mutex<Rooms>>,
    cfg: Arc<ServerConfig>,
) {
    let ws_cfg = WebSocketConfig::default()
        .max_message_size(Some(cfg.max_message))
        .max_frame_size(Some(cfg.max_message))
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(cfg.outbox_budget);
    let ws = match tokio::time::timeout_at(joined_by, tokio_tungstenite::accept_async_with_config(stream, Some(ws_cfg))).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            tracing::debug!(%addr, "websocket handshake failed: {e}");
            return;
        }
        Err(_) => return,
    };
    let (mut sink, mut source) = ws.split();
    let (outbox, mut inbox) = super::outbox::outbox(cfg.outbox_budget);
    // Every connection's own nonce, which a host signs its room over.
    let nonce = crate::protocol::auth::nonce();
    outbox.push(&ServerMsg::Hello { nonce: nonce.clone() });
    let mut conn = Conn::new(slot.source(), nonce, &cfg);
    let mut last_heard = tokio::time::Instant::now();

    let refusal: Option<(ErrorCode, String)> = loop {
        // Only what the client sends keeps it: messages to it do not.
        let deadline = match conn.member {
            Membership::None => joined_by,
            Membership::In { .. } => last_heard + cfg.idle_timeout,
        };
        tokio::select! {
            out = inbox.recv() => match out {
                None => break None,
                Some(Outgoing::Overflow) => break Some((ErrorCode::TooSlow, format!("more than {} bytes waiting for you: not reading", cfg.outbox_budget))),
                Some(Outgoing::Message { text, closing }) => {
                    if !send(&mut sink, text, cfg.send_timeout).await {
                        tracing::debug!(%addr, "a send failed or timed out");
                        break None;
                    }
                    if closing {
                        // The room closed under us: the error is sent, now close.
                        break None;
                    }
                }
            },
            frame = source.next() => {
                last_heard = tokio::time::Instant::now();
                if let Err(refusal) = conn.on_frame(frame, &rooms, &outbox, &cfg) {
                    break refusal;
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                break Some(match conn.member {
                    Membership::None => (ErrorCode::Idle, "no create or join message in time".into()),
                    Membership::In { .. } => (ErrorCode::Idle, "connection idle for too long".into()),
                });
            }
        }
    };
    conn.leave(&rooms);
    if let Some((code, message)) = refusal {
        tracing::info!(%addr, ?code, "refusing: {message}");
        let _ = send(&mut sink, signal::encode(&ServerMsg::Error { code, message }), cfg.send_timeout).await;
    }
    let _ = tokio::time::timeout(cfg.send_timeout, sink.close()).await;
    drop(slot);
}

/// One write to the client, given up after `limit`: a client that does not read cannot hold
/// the connection's task (and so its deadlines) in a send.
async fn send<W>(sink: &mut W, text: String, limit: std::time::Duration) -> bool
where
    W: futures::Sink<Ws> + Unpin,
{
    matches!(tokio::time::timeout(limit, sink.send(Ws::Text(text.into()))).await, Ok(Ok(())))
}

/// A connection's own state: its room, its rate, where it comes from, its nonce. (Apart from
/// its socket, so the fuzzer drives the same code: `super::fuzzing`.)
pub(super) struct Conn {
    member: Membership,
    bucket: TokenBucket,
    source: Source,
    nonce: String,
}

/// What a message costs against the rate: one, and one more for every 4 KiB, so large
/// messages are limited in bytes too (a 64 KiB message is 17).
fn cost(len: usize) -> f64 {
    1.0 + (len / 4096) as f64
}

impl Conn {
    /// A connection from `source`, which is to sign its `Create` over `nonce`.
    pub(super) fn new(source: Source, nonce: String, cfg: &ServerConfig) -> Conn {
        Conn { member: Membership::None, bucket: TokenBucket::new(cfg.msg_rate, cfg.msg_burst), source, nonce }
    }

    /// The connection ended: out of its room (a host's room closes with it).
    pub(super) fn leave(&self, rooms: &Mutex<Rooms>) {
        if let Membership::In { room, peer } = &self.member {
            rooms.lock().unwrap_or_else(|e| e.into_inner()).leave(room, *peer);
        }
    }

    /// What one frame from the client does: `Err` ends the connection (with a refusal to
    /// send, or quietly).
    pub(super) fn on_frame(
        &mut self,
        frame: Option<Result<Ws, tokio_tungstenite::tungstenite::Error>>,
        rooms: &Mutex<Rooms>,
        outbox: &Outbox,
        cfg: &ServerConfig,
    ) -> Result<(), Option<(ErrorCode, String)>> {
        let too_large = || Some((ErrorCode::TooLarge, format!("message over the server's limit of {} bytes", cfg.max_message)));
        let (text, len) = match frame {
            None | Some(Ok(Ws::Close(_))) => return Err(None),
            Some(Err(tokio_tungstenite::tungstenite::Error::Capacity(_))) => return Err(too_large()),
            Some(Err(_)) => return Err(None),
            Some(Ok(Ws::Text(t))) => {
                let len = t.len();
                (Some(t), len)
            }
            Some(Ok(Ws::Binary(_))) => return Err(Some((ErrorCode::BadMessage, "binary frames are not part of the signaling protocol".into()))),
            // Pings (answered by tungstenite) and pongs cost the same as messages.
            Some(Ok(other)) => (None, other.len()),
        };
        if !self.bucket.try_take(Instant::now(), cost(len)) {
            return Err(Some((ErrorCode::RateLimited, format!("too many messages: the limit is {} per second", cfg.msg_rate))));
        }
        let Some(text) = text else { return Ok(()) };
        let msg = match signal::decode_client(text.as_str(), cfg.max_message) {
            Ok(m) => m,
            Err(signal::SignalError::TooLarge(..)) => return Err(too_large()),
            Err(e) => return Err(Some((ErrorCode::BadMessage, e.to_string()))),
        };
        self.handle(msg, rooms, outbox).map_err(Some)
    }

    fn handle(&mut self, msg: ClientMsg, rooms: &Mutex<Rooms>, outbox: &Outbox) -> Result<(), (ErrorCode, String)> {
        // Before the lock: a signature check is the costliest thing the server does.
        let claimed = match &msg {
            ClientMsg::Create { room, join_token, host_key, proof, .. } => Some(super::rooms::check_claim(room, join_token, host_key, proof, &self.nonce)?),
            _ => None,
        };
        let mut rooms = rooms.lock().unwrap_or_else(|e| e.into_inner());
        match (msg, &self.member, claimed) {
            (ClientMsg::Create { room, join_token, name, .. }, Membership::None, Some(key)) => {
                let name = clean_name(&name);
                let (room, peer) = rooms.create(room, join_token, name, key, self.source, outbox.clone())?;
                outbox.push(&ServerMsg::Created { room: room.clone(), peer });
                self.member = Membership::In { room, peer };
            }
            (ClientMsg::Join { room, join_token, name, nonce, key, proof }, Membership::None, _) => {
                // (What the participant signed is its name cleaned the same way: unchanged.)
                let name = clean_name(&name);
                let (peer, host, key) = rooms.join(&room, &join_token, name, (nonce, key, proof), outbox.clone())?;
                outbox.push(&ServerMsg::Joined { room: room.clone(), peer, host, host_key: key.to_hex() });
                self.member = Membership::In { room, peer };
            }
            (ClientMsg::Signal { to, payload }, Membership::In { room, peer }, _) => {
                if !rooms.relay(room, *peer, to, payload)? {
                    // The recipient may have just left; that is not the sender's fault.
                    tracing::debug!(room, to, "signal not relayed");
                }
            }
            (ClientMsg::Signal { .. }, Membership::None, _) => {
                return Err((ErrorCode::BadMessage, "create or join a room before signaling".into()));
            }
            // (A Create always has its claim checked above: the second pattern cannot happen.)
            (_, Membership::In { .. }, _) | (ClientMsg::Create { .. }, Membership::None, None) => {
                return Err((ErrorCode::BadMessage, "already in a room".into()));
            }
        }
        Ok(())
    }
}
