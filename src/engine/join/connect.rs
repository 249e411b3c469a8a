//! Getting into the room, and back in: signaling, the WebRTC answer (or the host's HTTP
//! fallback), hello and the manifest; the attempts at a first connection. When to try again,
//! first or after the link drops, is the core's (`participant::reconnect`). What it hands on is a [`Connection`]: the queues
//! to and from the host.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use color_eyre::eyre::{Result, eyre};
use tokio::sync::mpsc;
use webrtc::data_channel::{DataChannel, DataChannelEvent};

use super::{JoinEnd, JoinOptions};
use crate::core::participant::{FIRST_ATTEMPTS, FirstConnection};
use crate::engine::Event;
use crate::error::Hinted;
use crate::net::peer::{self, AnswerAuth, IceConfig, PeerLink, Reach};
use crate::net::signal_client::SignalClient;
use crate::protocol::auth::{FallbackOffer, SetupAuth};
use crate::protocol::identity::HostId;
use crate::protocol::link::Link;
use crate::protocol::signal::{ClientMsg, ServerMsg, SignalPayload};
use crate::protocol::stream::{self, Manifest, Message, PROTOCOL_VERSION, Role};

/// What comes from the host.
pub(super) enum Incoming {
    Control(BytesMut),
    Chunk(BytesMut),
    Closed(String),
}

/// Where the engine's messages to the host go: a bounded queue to the control channel's
/// sender task, or the HTTP fallback's worker. Sending never waits. A failed send, or a queue
/// so full that the link must be stuck, comes back as `Incoming::Closed`: the link is made
/// anew (a message dropped on a stuck link — a `Level`, a `Cancel`, a seek — would otherwise
/// be lost for good).
#[derive(Clone)]
pub(super) enum Tx {
    Rtc { queue: mpsc::Sender<Vec<u8>>, incoming: mpsc::Sender<Incoming> },
    Http(mpsc::UnboundedSender<Vec<u8>>),
}

/// Messages queued for the control channel beyond what it buffers itself.
const TX_QUEUE: usize = 1024;

/// Messages from the host waiting for the engine. More than an honest host ever has on the
/// way (what a participant asks for at once: 256 chunks per store, two stores while a level
/// switches, and the control messages beside them), so the queue never holds the link back in
/// a normal room: when it did (at 64), WebRTC's driver stalled every channel until its next
/// pass, clock samples included, and a late joiner started 300 ms behind. A host sending what
/// nobody asked for fills it, and then SCTP's window holds the host back: at most 512 messages
/// (96 MiB of the largest chunks, 32 MiB of the default ones) wait.
const INCOMING_DEPTH: usize = 512;

impl Tx {
    /// Queues `msg` for the host.
    pub(super) fn send(&self, msg: &Message) {
        let bytes = stream::encode(msg);
        match self {
            Tx::Rtc { queue, incoming } => {
                if let Err(mpsc::error::TrySendError::Full(_)) = queue.try_send(bytes) {
                    // (Behind a full incoming queue the engine has news to take first; the
                    // next send finds the link stuck again.)
                    let _ = incoming.try_send(Incoming::Closed(format!("the link to the host is stuck ({TX_QUEUE} messages wait)")));
                }
            }
            // A closed worker says why itself (`Incoming::Closed`).
            Tx::Http(tx) => drop(tx.send(bytes)),
        }
    }

    /// A sender task for `dc`; its failure ends the link (`Incoming::Closed` on `incoming`).
    fn rtc(dc: Arc<dyn DataChannel>, incoming: mpsc::Sender<Incoming>) -> Tx {
        let (queue, mut rx) = mpsc::channel::<Vec<u8>>(TX_QUEUE);
        let failed = incoming.clone();
        tokio::spawn(async move {
            while let Some(bytes) = rx.recv().await {
                if let Err(e) = peer::send(&dc, &bytes).await {
                    let _ = failed.send(Incoming::Closed(format!("sending to the host failed: {e}"))).await;
                    return;
                }
            }
        });
        Tx::Rtc { queue, incoming }
    }
}

/// Resolves when a WebRTC link fails; never over the HTTP fallback (its failures arrive as
/// `Incoming::Closed`).
pub(super) async fn link_failed(link: &Option<PeerLink>) {
    match link {
        Some(l) => l.closed().await,
        None => std::future::pending().await,
    }
}

pub(super) async fn close_link(link: &Option<PeerLink>) {
    if let Some(l) = link {
        l.close().await;
    }
}

fn forward(dc: Arc<dyn DataChannel>, tx: mpsc::Sender<Incoming>, chunks: bool) {
    tokio::spawn(async move {
        while let Some(ev) = dc.poll().await {
            if let DataChannelEvent::OnMessage(m) = ev {
                let item = if chunks { Incoming::Chunk(m.data) } else { Incoming::Control(m.data) };
                // Waits while the engine is behind: the channel is not read meanwhile.
                if tx.send(item).await.is_err() {
                    return;
                }
            }
        }
        let _ = tx.send(Incoming::Closed(if chunks { "chunks channel closed" } else { "control channel closed" }.into())).await;
    });
}

/// How a connection attempt failed: worth another try (the host or the network may be back
/// in a moment), or not (refused, another protocol, the stream ended).
pub(super) enum Setup {
    Retry(color_eyre::Report),
    /// ICE found a path but DTLS/SCTP never came up over it: a fresh set-up may work at once.
    Stalled(color_eyre::Report),
    Final(color_eyre::Report),
    Ended(JoinEnd),
}

impl<E: Into<color_eyre::Report>> From<E> for Setup {
    fn from(e: E) -> Self {
        Setup::Retry(e.into())
    }
}

macro_rules! retry {
    ($($t:tt)*) => { return Err(Setup::Retry(eyre!($($t)*))) };
}
macro_rules! fatal {
    ($($t:tt)*) => { return Err(Setup::Final(eyre!($($t)*))) };
}

/// A link to the host, up to its manifest.
pub(super) struct Connection {
    /// Signaling: only needed to set up; once connected, its loss is not fatal.
    pub signal: SignalClient,
    /// The WebRTC link; `None` over the HTTP fallback.
    pub link: Option<PeerLink>,
    /// To the host.
    pub tx: Tx,
    /// From the host.
    pub incoming: mpsc::Receiver<Incoming>,
    /// The file.
    pub manifest: Manifest,
    /// The host's key, checked against the link: what the host signs (the file's hash) is
    /// checked with it.
    pub host_key: HostId,
    /// Over the HTTP fallback: why, and where.
    fallback: Option<(String, String)>,
}

impl Connection {
    /// Says how this connection reaches the host (`fallback`, `path`), and returns the path.
    pub(super) async fn announce(&self, events: &mpsc::UnboundedSender<Event>) -> Option<crate::net::path::Path> {
        if let Some((reason, url)) = &self.fallback {
            let _ = events.send(Event::Fallback { reason: reason.clone(), url: url.clone() });
        }
        if let Some(message) = self.link.as_ref().and_then(|l| l.gathering_warning.clone()) {
            let _ = events.send(Event::Warning { message });
        }
        let path = match &self.link {
            Some(link) => link.path().await,
            None => Some(crate::net::path::Path::http()),
        };
        match &path {
            Some(p) => {
                tracing::info!("connected to the host: {p}");
                let _ = events.send(Event::Path(p.clone()));
            }
            None => tracing::warn!("connected, but the ICE stats name no candidate pair"),
        }
        path
    }
}

/// The host key the server vouches for, if it is the one the link's room id names: otherwise
/// the server (or whoever opened the room there) is not the host this link is from.
fn the_links_host(link: &crate::protocol::link::Link, host_key: &str) -> Result<HostId, Setup> {
    match HostId::from_hex(host_key).filter(|k| k.owns_room(&link.room)) {
        Some(k) => Ok(k),
        None => fatal!("the room on this server is not the host's this link is from (its host key does not match the link): someone else holds the room id"),
    }
}

/// Joins the room through signaling, answers the host's offer, says hello and waits for the
/// manifest.
pub(super) async fn connect(opts: &JoinOptions) -> Result<Connection, Setup> {
    let link = &opts.link;
    let signal_tls = if link.tls { Some(crate::net::tls::client_config(opts.tls_ca.as_deref()).map_err(|e| Setup::Final(e.into()))?) } else { None };
    let mut signal = SignalClient::connect(&link.signal_url(), signal_tls).await.map_err(|e| Setup::Retry(unreachable(link, e)))?;
    let nonce = crate::protocol::auth::nonce();
    let me_key = opts.guest.key_for(&link.room);
    // Signed as the server will relay it.
    let name = crate::protocol::signal::clean_name(&opts.name);
    let proof = me_key.join_proof(&link.room, &nonce, &name);
    let join = ClientMsg::Join { room: link.room.clone(), join_token: link.key.join_token(), name, nonce: nonce.clone(), key: me_key.public().to_hex(), proof };
    signal.tx.send(join).await.map_err(|_| eyre!("signaling connection closed"))?;
    // The server answers a join at once; a server that does not is not waited on for ever.
    let joined = tokio::time::timeout(crate::net::signal_client::CONNECT_WAIT, signal.rx.recv()).await;
    let Ok(joined) = joined else { retry!("the signaling server did not answer the join within {} s", crate::net::signal_client::CONNECT_WAIT.as_secs()) };
    let (me, host, host_key) = match joined {
        Some(ServerMsg::Joined { peer, host, host_key, .. }) => (peer, host, the_links_host(link, &host_key)?),
        Some(ServerMsg::Error { message, .. }) => {
            retry!("the signaling server refused to let us join: {message}")
        }
        Some(other) => retry!("unexpected answer from the signaling server: {other:?}"),
        None => retry!("the signaling server closed the connection"),
    };
    let setup = SetupAuth { room: link.room.clone(), peer: me, nonce, guest: me_key.public() };
    let mut fallback: Option<FallbackOffer> = None;
    let offer = loop {
        match signal.rx.recv().await {
            Some(ServerMsg::Signal { from, payload: SignalPayload::Offer { sdp, sig } }) if from == host => break (sdp, sig),
            Some(ServerMsg::Signal { from, payload: SignalPayload::Fallback { addr, cert, pass, sig } }) if from == host => {
                // Only what the host itself says: a server that swaps the address (or the
                // certificate) is ignored.
                let offer = FallbackOffer { addr, cert, pass };
                if setup.verify_fallback(&host_key, &offer, &sig) {
                    fallback = Some(offer);
                } else {
                    tracing::warn!("ignoring a fallback address the host did not sign");
                }
            }
            Some(ServerMsg::Signal { from, payload: SignalPayload::Denied { reason, sig } }) if from == host => {
                // Only the host's own word: a server cannot make us give up.
                if !setup.verify_denied(&host_key, &reason, &sig) {
                    tracing::warn!("ignoring a refusal the host did not sign");
                    continue;
                }
                fatal!("the host did not let you in: {}", reason.chars().take(stream::MAX_TEXT).collect::<String>())
            }
            Some(ServerMsg::Error { message, .. }) => retry!("signaling: {message}"),
            Some(_) => continue,
            None => retry!("the signaling server closed the connection before the host called"),
        }
    };
    let ice = IceConfig::new(Reach::of_host(&link.host), opts.ice_addr.as_deref(), &opts.nat);
    let stx = signal.tx.clone();
    let send = async |payload| stx.send(ClientMsg::Signal { to: host, payload }).await.is_ok();
    let auth = AnswerAuth { host: &host_key, key: &link.key, guest: &me_key, setup };
    let answer = PeerLink::answer(&ice, &auth, offer, send);
    let link_up = match fallback {
        None => answer.await.map_err(cannot_connect)?,
        // The host serves HTTP too: WebRTC gets a few seconds, then the fallback.
        Some(offer) => match tokio::time::timeout(FALLBACK_AFTER, answer).await {
            Ok(Ok(l)) => l,
            Ok(Err(e)) => {
                return http_connection(opts, signal, host_key, &offer, format!("the WebRTC link failed ({e})")).await;
            }
            Err(_) => {
                return http_connection(opts, signal, host_key, &offer, format!("no WebRTC link within {} s", FALLBACK_AFTER.as_secs())).await;
            }
        },
    };
    let (in_tx, mut incoming) = mpsc::channel(INCOMING_DEPTH);
    let failures = in_tx.clone();
    forward(link_up.control.clone(), in_tx.clone(), false);
    forward(link_up.chunks.clone(), in_tx, true);
    let control = link_up.control.clone();
    peer::send(&control, &stream::encode(&Message::Hello { version: PROTOCOL_VERSION, name: opts.name.clone() })).await?;
    let tx = Tx::rtc(control, failures);

    // Hello and manifest come first, on the ordered control channel.
    let manifest = loop {
        match tokio::time::timeout(Duration::from_secs(20), incoming.recv()).await {
            Ok(Some(Incoming::Control(b))) => match stream::decode_from(&b, Role::Host, None).map_err(|e| Setup::Final(e.into()))? {
                Message::Hello { version, .. } if version != PROTOCOL_VERSION => {
                    fatal!("the host speaks protocol version {version}; this syncy speaks {PROTOCOL_VERSION}")
                }
                Message::Hello { .. } => continue,
                Message::Manifest(m) => break m,
                Message::StreamEnd { reason } => {
                    return Err(Setup::Ended(JoinEnd::StreamEnd(reason)));
                }
                other => fatal!("protocol violation: {other:?} before the manifest"),
            },
            Ok(Some(Incoming::Chunk(_))) => fatal!("protocol violation: chunk before the manifest"),
            Ok(Some(Incoming::Closed(why))) => retry!("connection to the host lost: {why}"),
            Ok(None) => retry!("connection to the host lost"),
            Err(_) => retry!("the host sent no manifest within 20 s"),
        }
    };
    Ok(Connection { signal, tx, link: Some(link_up), incoming, manifest, host_key, fallback: None })
}

/// The first connection to the room, tried again when it stalled after ICE (the core's
/// `FirstConnection` says whether).
pub(super) async fn first_connection(opts: &JoinOptions, events: &mpsc::UnboundedSender<Event>) -> Result<Connection, Setup> {
    let mut first = FirstConnection::default();
    loop {
        match connect(opts).await {
            Err(Setup::Stalled(e)) => match first.stalled() {
                Some(attempt) => {
                    let message = format!("{e:#}; trying again (attempt {attempt} of {FIRST_ATTEMPTS})");
                    tracing::warn!("{message}");
                    let _ = events.send(Event::Warning { message });
                }
                None => return Err(Setup::Retry(e)),
            },
            other => return other,
        }
    }
}

/// A failed WebRTC set-up for a person: what happened and, where one helps, what to do.
fn cannot_connect(e: peer::LinkError) -> Setup {
    match e {
        peer::LinkError::NoPath(d) => Setup::Retry(Hinted::new(format!("cannot connect to the host: {}", d.message), d.hint).into()),
        // A stalled first attempt is tried again (see `first_connection`).
        e @ peer::LinkError::Stalled => Setup::Stalled(color_eyre::Report::new(e).wrap_err("cannot connect to the host")),
        e => Setup::Retry(eyre!("cannot connect to the host: {e}")),
    }
}

/// The signaling server in the link cannot be reached: say what that usually means.
fn unreachable(link: &Link, e: crate::net::signal_client::SignalClientError) -> color_eyre::Report {
    use crate::net::signal_client::SignalClientError as E;
    let timed_out = match &e {
        E::Timeout { .. } => true,
        E::Connect { .. } => false,
        _ => return e.into(),
    };
    let d = crate::net::diagnose::signaling_unreachable(&link.authority(), link.port, &e.to_string(), timed_out);
    Hinted::new(d.message, d.hint).into()
}

/// How long WebRTC gets to come up when the host offers an HTTP fallback.
const FALLBACK_AFTER: Duration = Duration::from_secs(8);

/// Joins over the host's HTTP fallback at `addr` (`why`: what happened to WebRTC).
async fn http_connection(opts: &JoinOptions, signal: SignalClient, host_key: HostId, offer: &FallbackOffer, why: String) -> Result<Connection, Setup> {
    use crate::net::http::fallback_client::{self, Delivered, HttpLink};
    tracing::warn!("{why}; falling back to HTTPS at {}", offer.addr);
    let guest = std::sync::Arc::new(opts.guest.key_for(&opts.link.room));
    let http =
        HttpLink::new(offer, &opts.link.room, &opts.link.key, guest).map_err(|e| Setup::Retry(eyre!("{why}, and the HTTP fallback cannot be used: {e}")))?;
    let manifest = http.manifest().await.map_err(|e| Setup::Retry(eyre!("{why}, and the HTTP fallback failed too: {e}")))?;
    let url = http.url();
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let (back_tx, mut back_rx) = mpsc::unbounded_channel();
    fallback_client::spawn(http, manifest.clone(), out_rx, back_tx);
    let (in_tx, incoming) = mpsc::channel(INCOMING_DEPTH);
    tokio::spawn(async move {
        while let Some(d) = back_rx.recv().await {
            let item = match d {
                Delivered::Chunk(b) => Incoming::Chunk(b),
                Delivered::Control(b) => Incoming::Control(b),
                Delivered::Failed(e) => Incoming::Closed(e),
            };
            if in_tx.send(item).await.is_err() {
                return;
            }
        }
    });
    Ok(Connection { signal, link: None, tx: Tx::Http(out_tx), incoming, manifest, host_key, fallback: Some((why, url)) })
}

/// What reconnecting came to. Made once per reconnection: its size does not matter.
#[allow(clippy::large_enum_variant)]
pub(super) enum Reconnected {
    Again(Connection),
    Ended(JoinEnd),
}
