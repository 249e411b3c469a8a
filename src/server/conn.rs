//! One signaling connection: handshake, admission, relay, limits.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::{Rooms, ServerConfig};
use crate::core::rate::TokenBucket;
use crate::protocol::signal::{self, ClientMsg, ErrorCode, PeerId, ServerMsg};

/// Outbound queue depth per connection; a client this far behind is dropped.
const OUTBOX_DEPTH: usize = 256;

/// Where a connection stands.
enum Membership {
    None,
    In { room: String, peer: PeerId },
}

pub(super) async fn serve<S: AsyncRead + AsyncWrite + Unpin>(stream: S, addr: SocketAddr, rooms: Arc<Mutex<Rooms>>, cfg: Arc<ServerConfig>) {
    let ws_cfg = WebSocketConfig::default().max_message_size(Some(cfg.max_message)).max_frame_size(Some(cfg.max_message));
    let ws = match tokio::time::timeout(cfg.join_timeout, tokio_tungstenite::accept_async_with_config(stream, Some(ws_cfg))).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            tracing::debug!(%addr, "websocket handshake failed: {e}");
            return;
        }
        Err(_) => return,
    };
    let (mut sink, mut source) = ws.split();
    let (outbox, mut inbox) = mpsc::channel::<ServerMsg>(OUTBOX_DEPTH);
    // Every connection's own nonce, which a host signs its room over.
    let nonce = crate::protocol::auth::nonce();
    let _ = outbox.try_send(ServerMsg::Hello { nonce: nonce.clone() });
    let mut member = Membership::None;
    let mut bucket = TokenBucket::new(cfg.msg_rate, cfg.msg_burst);
    let joined_by = tokio::time::Instant::now() + cfg.join_timeout;

    let refusal: Option<(ErrorCode, String)> = loop {
        let deadline = match member {
            Membership::None => joined_by,
            Membership::In { .. } => tokio::time::Instant::now() + cfg.idle_timeout,
        };
        tokio::select! {
            out = inbox.recv() => {
                let Some(msg) = out else { break None };
                let closing = matches!(msg, ServerMsg::Error { .. });
                if sink.send(Ws::Text(signal::encode(&msg).into())).await.is_err() {
                    break None;
                }
                if closing {
                    // The room closed under us: the error is sent, now close.
                    break None;
                }
            }
            frame = source.next() => {
                if let Err(refusal) = on_frame(frame, &mut bucket, &mut member, &rooms, &outbox, &cfg, &nonce) {
                    break refusal;
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                break Some(match member {
                    Membership::None => (ErrorCode::Idle, "no create or join message in time".into()),
                    Membership::In { .. } => (ErrorCode::Idle, "connection idle for too long".into()),
                });
            }
        }
    };
    if let Membership::In { room, peer } = &member {
        rooms.lock().expect("rooms lock").leave(room, *peer);
    }
    if let Some((code, message)) = refusal {
        tracing::info!(%addr, ?code, "refusing: {message}");
        let _ = sink.send(Ws::Text(signal::encode(&ServerMsg::Error { code, message }).into())).await;
    }
    let _ = sink.close().await;
}

/// What one frame from the client does: `Err` ends the connection (with a refusal to send,
/// or quietly).
fn on_frame(
    frame: Option<Result<Ws, tokio_tungstenite::tungstenite::Error>>,
    bucket: &mut TokenBucket,
    member: &mut Membership,
    rooms: &Mutex<Rooms>,
    outbox: &mpsc::Sender<ServerMsg>,
    cfg: &ServerConfig,
    nonce: &str,
) -> Result<(), Option<(ErrorCode, String)>> {
    let too_large = || Some((ErrorCode::TooLarge, format!("message over the server's limit of {} bytes", cfg.max_message)));
    let text = match frame {
        None | Some(Ok(Ws::Close(_))) => return Err(None),
        Some(Err(tokio_tungstenite::tungstenite::Error::Capacity(_))) => return Err(too_large()),
        Some(Err(_)) => return Err(None),
        Some(Ok(Ws::Text(t))) => t,
        Some(Ok(Ws::Binary(_))) => return Err(Some((ErrorCode::BadMessage, "binary frames are not part of the signaling protocol".into()))),
        Some(Ok(_)) => return Ok(()), // ping/pong: answered by tungstenite
    };
    if !bucket.try_take(Instant::now(), 1.0) {
        return Err(Some((ErrorCode::RateLimited, format!("too many messages: the limit is {} per second", cfg.msg_rate))));
    }
    let msg = match signal::decode_client(text.as_str(), cfg.max_message) {
        Ok(m) => m,
        Err(signal::SignalError::TooLarge(..)) => return Err(too_large()),
        Err(e) => return Err(Some((ErrorCode::BadMessage, e.to_string()))),
    };
    handle(msg, member, rooms, outbox, nonce).map_err(Some)
}

fn handle(msg: ClientMsg, member: &mut Membership, rooms: &Mutex<Rooms>, outbox: &mpsc::Sender<ServerMsg>, nonce: &str) -> Result<(), (ErrorCode, String)> {
    // Before the lock: a signature check is the costliest thing the server does.
    let claimed = match &msg {
        ClientMsg::Create { room, join_token, host_key, proof, .. } => Some(super::rooms::check_claim(room, join_token, host_key, proof, nonce)?),
        _ => None,
    };
    let mut rooms = rooms.lock().expect("rooms lock");
    match (msg, &*member, claimed) {
        (ClientMsg::Create { room, join_token, name, .. }, Membership::None, Some(key)) => {
            let name = clean_name(name);
            let (room, peer) = rooms.create(room, join_token, name, key, outbox.clone())?;
            let _ = outbox.try_send(ServerMsg::Created { room: room.clone(), peer });
            *member = Membership::In { room, peer };
        }
        (ClientMsg::Join { room, join_token, name, nonce }, Membership::None, _) => {
            let name = clean_name(name);
            let (peer, host, key) = rooms.join(&room, &join_token, name, nonce, outbox.clone())?;
            let _ = outbox.try_send(ServerMsg::Joined { room: room.clone(), peer, host, host_key: key.to_hex() });
            *member = Membership::In { room, peer };
        }
        (ClientMsg::Signal { to, payload }, Membership::In { room, peer }, _) => {
            if !rooms.relay(room, to, ServerMsg::Signal { from: *peer, payload }) {
                // The recipient may have just left; that is not the sender's fault.
                tracing::debug!(room, to, "relay to a peer not in the room");
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

/// Names are shown on other people's screens: keep them short and printable.
fn clean_name(name: String) -> String {
    let n: String = name.chars().filter(|c| !c.is_control()).take(32).collect();
    if n.trim().is_empty() { "anonymous".into() } else { n }
}
