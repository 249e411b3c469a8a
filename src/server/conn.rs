//! One signaling connection: handshake, admission, relay, limits.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::cluster::{Cluster, JOIN_WAIT};
use super::outbox::{Outbox, Outgoing};
use super::rooms::Refusal;
use super::slots::{Slot, Source};
use super::{Rooms, ServerConfig};
use crate::core::rate::TokenBucket;
use crate::protocol::identity::HostId;
use crate::protocol::signal::{self, ClientMsg, ErrorCode, PeerId, ServerMsg, clean_name};

/// What tungstenite reads into at a time. Its default (128 KiB) is for bulk data; signaling
/// messages are small, and thousands of connections each holding 128 KiB is what a cap on
/// memory must not allow.
const READ_BUFFER: usize = 4096;

/// Where a connection stands.
enum Membership {
    None,
    In {
        room: String,
        peer: PeerId,
    },
    /// In a room another server of the cluster holds.
    Away {
        room: String,
        peer: PeerId,
    },
}

/// What a clustered server finishes after asking the cluster (`Conn::finish`).
pub(super) enum Deferred {
    Create { room: String, join_token: String, name: String, key: HostId },
    Join { room: String, join_token: String, name: String, who: (String, String, String) },
}

pub(super) async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    addr: SocketAddr,
    slot: Slot,
    joined_by: tokio::time::Instant,
    rooms: Arc<Mutex<Rooms>>,
    cfg: Arc<ServerConfig>,
    cluster: Option<Arc<Cluster>>,
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
            Membership::In { .. } | Membership::Away { .. } => last_heard + cfg.idle_timeout,
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
                let step = match conn.on_frame(frame, &rooms, &outbox, &cfg, cluster.as_deref()) {
                    // (Redis not answering holds no connection past its time to join.)
                    Ok(Some(deferred)) => match tokio::time::timeout_at(joined_by, conn.finish(deferred, &rooms, &outbox, cluster.as_deref(), joined_by)).await {
                        Ok(done) => done.map_err(Some),
                        Err(_) => Err(Some((ErrorCode::ServerFull, "the signaling cluster did not answer in time; try again".into()))),
                    },
                    Ok(None) => Ok(()),
                    Err(refusal) => Err(refusal),
                };
                if let Err(refusal) = step {
                    break refusal;
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                break Some(match conn.member {
                    Membership::None => (ErrorCode::Idle, "no create or join message in time".into()),
                    Membership::In { .. } | Membership::Away { .. } => (ErrorCode::Idle, "connection idle for too long".into()),
                });
            }
        }
    };
    conn.leave(&rooms, cluster.as_deref());
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

    /// The connection ended: out of its room (a host's room closes with it, and its name is
    /// free again in the cluster).
    pub(super) fn leave(&self, rooms: &Mutex<Rooms>, cluster: Option<&Cluster>) {
        match &self.member {
            Membership::In { room, peer } => {
                let closed = rooms.lock().unwrap_or_else(|e| e.into_inner()).leave(room, *peer);
                if let Some(c) = cluster.filter(|_| closed) {
                    c.release(room);
                }
            }
            Membership::Away { room, peer } => {
                if let Some(c) = cluster {
                    c.span().leave(room, *peer);
                }
            }
            Membership::None => {}
        }
    }

    /// What one frame from the client does: `Err` ends the connection (with a refusal to
    /// send, or quietly); `Some` is for the cluster to answer first (`finish`).
    pub(super) fn on_frame(
        &mut self,
        frame: Option<Result<Ws, tokio_tungstenite::tungstenite::Error>>,
        rooms: &Mutex<Rooms>,
        outbox: &Outbox,
        cfg: &ServerConfig,
        cluster: Option<&Cluster>,
    ) -> Result<Option<Deferred>, Option<(ErrorCode, String)>> {
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
        let Some(text) = text else { return Ok(None) };
        let msg = match signal::decode_client(text.as_str(), cfg.max_message) {
            Ok(m) => m,
            Err(signal::SignalError::TooLarge(..)) => return Err(too_large()),
            Err(e) => return Err(Some((ErrorCode::BadMessage, e.to_string()))),
        };
        self.handle(msg, rooms, outbox, cluster).map_err(Some)
    }

    fn handle(&mut self, msg: ClientMsg, rooms: &Mutex<Rooms>, outbox: &Outbox, cluster: Option<&Cluster>) -> Result<Option<Deferred>, Refusal> {
        // Before the lock: a signature check is the costliest thing the server does.
        let claimed = match &msg {
            ClientMsg::Create { room, join_token, host_key, proof, .. } => Some(super::rooms::check_claim(room, join_token, host_key, proof, &self.nonce)?),
            _ => None,
        };
        let mut rooms = rooms.lock().unwrap_or_else(|e| e.into_inner());
        match (msg, &self.member, claimed) {
            (ClientMsg::Create { room, join_token, name, .. }, Membership::None, Some(key)) => {
                let name = clean_name(&name);
                if cluster.is_some() {
                    return Ok(Some(Deferred::Create { room, join_token, name, key }));
                }
                self.create(&mut rooms, room, join_token, name, key, outbox)?;
            }
            (ClientMsg::Join { room, join_token, name, nonce, key, proof }, Membership::None, _) => {
                // (What the participant signed is its name cleaned the same way: unchanged.)
                let name = clean_name(&name);
                if cluster.is_some() && !rooms.has(&room) {
                    return Ok(Some(Deferred::Join { room, join_token, name, who: (nonce, key, proof) }));
                }
                self.join_here(&mut rooms, room, &join_token, name, (nonce, key, proof), outbox)?;
            }
            (ClientMsg::Signal { to, payload }, Membership::Away { room, peer }, _) => {
                if let Some(c) = cluster {
                    c.span().signal(room, *peer, to, payload)?;
                }
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
            (_, Membership::In { .. } | Membership::Away { .. }, _) | (ClientMsg::Create { .. }, Membership::None, None) => {
                return Err((ErrorCode::BadMessage, "already in a room".into()));
            }
        }
        Ok(None)
    }

    fn create(&mut self, rooms: &mut Rooms, room: String, join_token: String, name: String, key: HostId, outbox: &Outbox) -> Result<(), Refusal> {
        let (room, peer) = rooms.create(room, join_token, name, key, self.source, outbox.clone())?;
        outbox.push(&ServerMsg::Created { room: room.clone(), peer });
        self.member = Membership::In { room, peer };
        Ok(())
    }

    fn join_here(
        &mut self,
        rooms: &mut Rooms,
        room: String,
        join_token: &str,
        name: String,
        who: (String, String, String),
        outbox: &Outbox,
    ) -> Result<(), Refusal> {
        let (peer, host, key) = rooms.join(&room, join_token, name, who, outbox.clone())?;
        outbox.push(&ServerMsg::Joined { room: room.clone(), peer, host, host_key: key.to_hex() });
        self.member = Membership::In { room, peer };
        Ok(())
    }

    /// A create or join that the cluster has a say in: the room's name is claimed for this
    /// server before it opens here; a room held elsewhere is joined through its server.
    pub(super) async fn finish(
        &mut self,
        deferred: Deferred,
        rooms: &Mutex<Rooms>,
        outbox: &Outbox,
        cluster: Option<&Cluster>,
        joined_by: tokio::time::Instant,
    ) -> Result<(), Refusal> {
        let Some(cluster) = cluster else { return Err((ErrorCode::BadMessage, "no cluster".into())) };
        let lock = || rooms.lock().unwrap_or_else(|e| e.into_inner());
        match deferred {
            Deferred::Create { room, join_token, name, key } => {
                cluster.claim(&room).await?;
                let mut rooms = lock();
                let created = self.create(&mut rooms, room.clone(), join_token, name, key, outbox);
                if created.is_err() && !rooms.has(&room) {
                    cluster.release(&room);
                }
                created
            }
            Deferred::Join { room, join_token, name, who } => {
                let no_room = || (ErrorCode::NoSuchRoom, format!("no room {room:?} in this cluster (has the host quit?)"));
                let home = cluster.home_of(&room).await?.ok_or_else(no_room)?;
                if cluster.is_me(&home) {
                    return self.join_here(&mut lock(), room, &join_token, name, who, outbox);
                }
                let (ticket, mut answer) = cluster.span().join(&home, &room, &join_token, &name, who, outbox.clone());
                let by = joined_by.min(tokio::time::Instant::now() + JOIN_WAIT);
                // (The client is told `Joined` with the answer, in order with what follows it.)
                let (peer, ..) = match tokio::time::timeout_at(by, &mut answer).await {
                    Ok(Ok(answer)) => answer?,
                    Ok(Err(_)) | Err(_) => {
                        cluster.span().give_up(ticket);
                        // (An answer that came just as the time ran out is undone.)
                        if let Ok(Ok((peer, ..))) = answer.try_recv() {
                            cluster.span().leave(&room, peer);
                        }
                        return Err((ErrorCode::NoSuchRoom, format!("the server holding room {room:?} did not answer")));
                    }
                };
                self.member = Membership::Away { room, peer };
                Ok(())
            }
        }
    }
}
