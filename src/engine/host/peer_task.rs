//! One participant's connection on the host: make the offer, check the channel can carry a
//! chunk, greet, then shuttle messages between the engine's queues and the data channels until
//! the link ends. Everything it learns goes to the engine as a [`PeerEvent`].

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::sync::mpsc;
use webrtc::data_channel::{DataChannel, DataChannelEvent};

use crate::core::host::CHUNK_QUEUE;
use crate::net::peer::{self, IceConfig, OfferAuth, PeerLink};
use crate::protocol::auth::{FallbackOffer, RoomKey, SetupAuth};
use crate::protocol::guest::GuestId;
use crate::protocol::identity::HostKey;
use crate::protocol::signal::{ClientMsg, PeerId, SignalPayload};
use crate::protocol::stream::{self, Manifest, Message, PROTOCOL_VERSION, Role};

/// What peer tasks tell the engine.
pub(super) enum PeerEvent {
    /// Hello and manifest went out; the channels are the engine's.
    Connected { peer: PeerId, handle: PeerHandle },
    /// A message from the participant, after its hello. The permit is one of the
    /// participant's [`CONTROL_WAITING`]: dropped once the engine has handled the message.
    Control { peer: PeerId, msg: Message, permit: tokio::sync::OwnedSemaphorePermit },
    /// A chunk of `bytes` went out.
    Sent { peer: PeerId, bytes: usize },
    /// The connection failed or ended; `violation`: the task closed it because the
    /// participant broke the protocol.
    Gone { peer: PeerId, reason: String, violation: bool },
    /// Something the user should know that does not stop the peer (a STUN server silent).
    Warning { message: String },
}

/// The engine's side of one connected participant: queues it never waits on.
pub(super) struct PeerHandle {
    pub chunk_tx: mpsc::Sender<BytesMut>,
    pub control_tx: mpsc::Sender<Message>,
    pub link: Arc<PeerLink>,
}

/// What every participant's connection is made with.
#[derive(Clone)]
pub(super) struct Setup {
    pub ice: IceConfig,
    pub key: RoomKey,
    /// The host's own key: it signs offers and fallback addresses.
    pub host_key: Arc<HostKey>,
    /// Room id.
    pub room: String,
    pub signal_tx: mpsc::Sender<ClientMsg>,
    pub manifest: Arc<Manifest>,
    /// The HTTPS fallback (`--http`): its certificate and the passes it takes.
    pub fallback: Option<FallbackIssuer>,
}

/// What a newcomer is told of the HTTPS fallback: its certificate's hash, and a pass minted
/// for it.
#[derive(Clone)]
pub(super) struct FallbackIssuer {
    /// Hex SHA-256 of the server's certificate.
    pub cert: String,
    pub passes: Arc<crate::net::http::fallback_server::Passes>,
}

/// Who a participant's set-up is for: the server's id for it, its `Join` nonce and key, and
/// the fallback address to tell it first (if any).
pub(super) struct Newcomer {
    pub to: PeerId,
    pub nonce: String,
    pub guest: GuestId,
    pub fallback: Option<String>,
}

/// How the reasons for closing a link on a participant that broke the protocol begin.
const VIOLATION: &str = "protocol violation";

/// One participant: connect, greet, then shuttle messages until the link ends.
pub(super) async fn peer_task(peer: PeerId, who: Newcomer, setup: Setup, answers: mpsc::Receiver<SignalPayload>, events: mpsc::UnboundedSender<PeerEvent>) {
    let reason = match connect(peer, who, &setup, answers, &events).await {
        Ok(link) => shuttle(peer, link, setup.manifest, &events).await,
        Err(reason) => reason,
    };
    let violation = reason.starts_with(VIOLATION);
    let _ = events.send(PeerEvent::Gone { peer, reason, violation });
}

/// Offers, checks the channel carries a whole chunk, and greets with hello and the manifest.
async fn connect(
    peer: PeerId,
    who: Newcomer,
    setup: &Setup,
    mut answers: mpsc::Receiver<SignalPayload>,
    events: &mpsc::UnboundedSender<PeerEvent>,
) -> Result<PeerLink, String> {
    let to = who.to;
    let auth =
        OfferAuth { host: &setup.host_key, key: &setup.key, setup: SetupAuth { room: setup.room.clone(), peer: to, nonce: who.nonce, guest: who.guest } };
    if let (Some(addr), Some(fb)) = (who.fallback, &setup.fallback) {
        // Before the offer, so the participant knows where to turn if WebRTC fails: the
        // address, the certificate and a pass of its own, all signed.
        let offer = FallbackOffer { addr, cert: fb.cert.clone(), pass: fb.passes.issue(peer, who.guest).to_hex() };
        let sig = auth.setup.sign_fallback(auth.host, &offer);
        let FallbackOffer { addr, cert, pass } = offer;
        if setup.signal_tx.send(ClientMsg::Signal { to, payload: SignalPayload::Fallback { addr, cert, pass, sig } }).await.is_err() {
            return Err("signaling closed".into());
        }
    }
    let send_signal = async |payload| setup.signal_tx.send(ClientMsg::Signal { to, payload }).await.is_ok();
    let mut link = PeerLink::offer(&setup.ice, &auth, send_signal, &mut answers).await.map_err(|e| format!("connection failed: {e}"))?;
    if let Some(message) = link.gathering_warning.take() {
        let _ = events.send(PeerEvent::Warning { message });
    }
    let needed = stream::max_message(setup.manifest.chunk_size);
    if let Some(m) = link.remote_max_message().await.filter(|&m| (m as u64) < needed) {
        link.close().await;
        return Err(format!("peer accepts messages of only {m} bytes; chunks need {needed}"));
    }
    let hello = stream::encode(&Message::Hello { version: PROTOCOL_VERSION, name: "host".into() });
    let man = stream::encode(&Message::Manifest((*setup.manifest).clone()));
    for m in [hello, man] {
        if let Err(e) = peer::send(&link.control, &m).await {
            link.close().await;
            return Err(format!("send failed: {e}"));
        }
    }
    Ok(link)
}

/// Hands the link to the engine and carries its traffic until one direction ends: why.
async fn shuttle(peer: PeerId, mut link: PeerLink, manifest: Arc<Manifest>, events: &mpsc::UnboundedSender<PeerEvent>) -> String {
    let (chunk_tx, chunk_rx) = mpsc::channel::<BytesMut>(CHUNK_QUEUE);
    let (control_tx, control_rx) = mpsc::channel::<Message>(64);
    let early = std::mem::take(&mut link.early_control);
    let link = Arc::new(link);
    let _ = events.send(PeerEvent::Connected { peer, handle: PeerHandle { chunk_tx, control_tx, link: link.clone() } });
    let reason = tokio::select! {
        _ = link.closed() => "connection closed".to_string(),
        r = send_chunks(peer, link.chunks.clone(), chunk_rx, events.clone()) => r,
        r = send_control(link.control.clone(), control_rx) => r,
        r = read_control(peer, link.control.clone(), early, manifest, events.clone()) => r,
        r = refuse_chunks(link.chunks.clone()) => r,
    };
    link.close().await;
    reason
}

async fn send_chunks(peer: PeerId, dc: Arc<dyn DataChannel>, mut rx: mpsc::Receiver<BytesMut>, events: mpsc::UnboundedSender<PeerEvent>) -> String {
    while let Some(bytes) = rx.recv().await {
        let n = bytes.len();
        if let Err(e) = peer::send_owned(&dc, bytes).await {
            return format!("send failed: {e}");
        }
        let _ = events.send(PeerEvent::Sent { peer, bytes: n });
    }
    "closed".into()
}

async fn send_control(dc: Arc<dyn DataChannel>, mut rx: mpsc::Receiver<Message>) -> String {
    while let Some(m) = rx.recv().await {
        let end = matches!(m, Message::StreamEnd { .. });
        if let Err(e) = peer::send(&dc, &stream::encode(&m)).await {
            return format!("send failed: {e}");
        }
        if end {
            // Let the goodbye go out before the link closes.
            tokio::time::sleep(Duration::from_millis(200)).await;
            break;
        }
    }
    "stream ended".into()
}

/// The participant's messages, hello first; what came before the channel opened goes first
/// (see `peer::wait_open`).
/// A participant's messages the engine has not handled yet, at most. Past it the control
/// channel is not read, so SCTP's window holds the participant back: one that floods cannot
/// grow the host's queue (the core lets it go at its rate limit).
const CONTROL_WAITING: u32 = 256;

async fn read_control(
    peer: PeerId,
    dc: Arc<dyn DataChannel>,
    early: Vec<BytesMut>,
    manifest: Arc<Manifest>,
    events: mpsc::UnboundedSender<PeerEvent>,
) -> String {
    let mut greeted = false;
    let mut early = early.into_iter();
    let waiting = Arc::new(tokio::sync::Semaphore::new(CONTROL_WAITING as usize));
    loop {
        let data = match early.next() {
            Some(d) => d,
            None => match dc.poll().await {
                Some(DataChannelEvent::OnMessage(m)) => m.data,
                Some(_) => continue,
                None => return "disconnected".into(),
            },
        };
        match stream::decode_from(&data, Role::Participant, Some(&manifest)) {
            Ok(Message::Hello { version, .. }) if version != PROTOCOL_VERSION => {
                return format!("protocol version {version} is not supported (this host speaks {PROTOCOL_VERSION})");
            }
            Ok(Message::Hello { .. }) => greeted = true,
            Ok(_) if !greeted => return format!("{VIOLATION}: a message before hello"),
            Ok(msg) => {
                let Ok(permit) = waiting.clone().acquire_owned().await else { return "closing".into() };
                let _ = events.send(PeerEvent::Control { peer, msg, permit });
            }
            Err(e) => return format!("{VIOLATION}: {e}"),
        }
    }
}

async fn refuse_chunks(dc: Arc<dyn DataChannel>) -> String {
    while let Some(ev) = dc.poll().await {
        if let DataChannelEvent::OnMessage(_) = ev {
            return format!("{VIOLATION}: participants may not send on the chunks channel");
        }
    }
    "disconnected".into()
}
