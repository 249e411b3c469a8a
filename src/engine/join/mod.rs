//! The participant engine: joins through signaling, answers the host's WebRTC offer, and pulls
//! chunks into the sans-IO chunk store. With `--save` every chunk is also written to a file.
//! The demuxer reads the store through playback (`crate::player::playback`); a cursor hashes the file
//! in order as it arrives, for `complete`.

pub mod levels;
pub mod save;

use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use color_eyre::eyre::{Result, bail, eyre};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use webrtc::data_channel::{DataChannel, DataChannelEvent};

use crate::core::buffer::{Arrival, ChunkStore, StoreConfig};
use crate::core::clock::{MediaState, Micros};
use crate::core::level_switch::RenditionNews;
use crate::core::rate::Meter;
use crate::engine::join::levels::{Choice, Levels};
use crate::engine::join::save::SaveFile;
use crate::engine::sleep_until_opt;
use crate::engine::{Command, Event};
use crate::error::Hinted;
use crate::media::store_source::SharedStore;
use crate::net::peer::NatOptions;
use crate::net::peer::{self, IceConfig, PeerLink, Reach};
use crate::net::signal_client::SignalClient;
use crate::player::mpv::MpvOut;
use crate::player::playback::Playback;
use crate::player::screen::Screen;
use crate::protocol::link::Link;
use crate::protocol::signal::{ClientMsg, ServerMsg, SignalPayload};
use crate::protocol::stream::{self, Manifest, Message, ORIGINAL, PROTOCOL_VERSION, Role};

/// How a participant runs.
#[derive(Debug, Clone)]
pub struct JoinOptions {
    /// The room link.
    pub link: Link,
    /// Display name.
    pub name: String,
    /// Keep a full copy here.
    pub save: Option<PathBuf>,
    /// Memory bound for chunks.
    pub buffer: u64,
    /// Override for the ICE bind address.
    pub ice_addr: Option<String>,
    /// STUN/TURN servers and the ICE policy.
    pub nat: NatOptions,
    /// Extra trusted certificates for a `syncys://` link's server.
    pub tls_ca: Option<PathBuf>,
    /// How to show the picture.
    pub render: Render,
    /// Play in mpv (with these extra mpv arguments) instead of, or beside, the built-in view.
    pub mpv: Option<Vec<String>>,
    /// Decode and follow the room clock. Off: only fetch the file in order and verify it
    /// (the throughput benchmark), never holding the room.
    pub playback: bool,
    /// Play sound on the default output device (when there is one).
    pub sound: bool,
    /// Download limit, bytes per second (0: none).
    pub download_limit: u64,
    /// `auto` or a level (`high`, `medium`, `low`).
    pub quality: String,
}

/// `--buffer`'s default: 256 MiB of chunks in memory.
pub const DEFAULT_BUFFER: u64 = 256 << 20;

impl JoinOptions {
    /// `syncy join LINK` with every default (the command line's defaults are these too: see
    /// the test in `cli`).
    pub fn new(link: Link) -> JoinOptions {
        JoinOptions {
            link,
            name: default_name(),
            save: None,
            buffer: DEFAULT_BUFFER,
            ice_addr: None,
            nat: NatOptions::default(),
            tls_ca: None,
            render: Render::None,
            mpv: None,
            playback: true,
            sound: true,
            download_limit: DEFAULT_DOWNLOAD_LIMIT,
            quality: "auto".into(),
        }
    }
}

/// A participant's name unless given: the user's login name.
pub fn default_name() -> String {
    std::env::var("USER").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| "guest".into())
}

/// Where the picture goes.
#[derive(Clone)]
pub enum Render {
    /// Decode and keep time, draw nothing.
    None,
    /// Publish frames and status on this screen (a view draws it).
    Screen(Arc<Screen>),
}

impl std::fmt::Debug for Render {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Render::None => "None",
            Render::Screen(_) => "Screen",
        })
    }
}

impl Render {
    fn screen(&self) -> Option<&Arc<Screen>> {
        match self {
            Render::None => None,
            Render::Screen(s) => Some(s),
        }
    }
}

/// Why the engine stopped without an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinEnd {
    /// The user quit.
    Quit,
    /// The host ended the stream.
    StreamEnd(String),
}

enum Incoming {
    Control(BytesMut),
    Chunk(BytesMut),
    Closed(String),
}

/// Where the engine's messages to the host go: the WebRTC control channel, or the HTTP
/// fallback's worker.
#[derive(Clone)]
enum Tx {
    Rtc(Arc<dyn DataChannel>),
    Http(mpsc::UnboundedSender<Vec<u8>>),
}

impl Tx {
    async fn send(&self, bytes: &[u8]) -> Result<(), peer::LinkError> {
        match self {
            Tx::Rtc(dc) => peer::send(dc, bytes).await,
            Tx::Http(tx) => tx.send(bytes.to_vec()).map_err(|_| peer::LinkError::Gone),
        }
    }
}

/// Resolves when a WebRTC link fails; never over the HTTP fallback (its failures arrive as
/// `Incoming::Closed`).
async fn link_failed(link: &Option<PeerLink>) {
    match link {
        Some(l) => l.closed().await,
        None => std::future::pending().await,
    }
}

async fn close_link(link: &Option<PeerLink>) {
    if let Some(l) = link {
        l.close().await;
    }
}

fn forward(dc: Arc<dyn DataChannel>, tx: mpsc::UnboundedSender<Incoming>, chunks: bool) {
    tokio::spawn(async move {
        while let Some(ev) = dc.poll().await {
            if let DataChannelEvent::OnMessage(m) = ev {
                let item = if chunks { Incoming::Chunk(m.data) } else { Incoming::Control(m.data) };
                if tx.send(item).is_err() {
                    return;
                }
            }
        }
        let _ = tx.send(Incoming::Closed(if chunks { "chunks channel closed" } else { "control channel closed" }.into()));
    });
}

/// Reads the store in order: hashes, and tells the store where the reader is.
struct Cursor {
    next: u32,
    hasher: Sha256,
    done: bool,
}

/// How a connection attempt failed: worth another try (the host or the network may be back
/// in a moment), or not (refused, another protocol, the stream ended).
enum Setup {
    Retry(color_eyre::Report),
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
struct Connection {
    signal: SignalClient,
    /// The WebRTC link; `None` over the HTTP fallback.
    link: Option<PeerLink>,
    tx: Tx,
    incoming: mpsc::UnboundedReceiver<Incoming>,
    manifest: Manifest,
    /// Over the HTTP fallback: why, and where.
    fallback: Option<(String, String)>,
}

impl Connection {
    /// Says how this connection reaches the host (`fallback`, `path`), and returns the path.
    async fn announce(&self, events: &mpsc::UnboundedSender<Event>) -> Option<crate::net::path::Path> {
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

/// Joins the room through signaling, answers the host's offer, says hello and waits for the
/// manifest.
async fn connect(opts: &JoinOptions) -> Result<Connection, Setup> {
    let link = &opts.link;
    let signal_tls = if link.tls { Some(crate::net::tls::client_config(opts.tls_ca.as_deref()).map_err(|e| Setup::Final(e.into()))?) } else { None };
    let mut signal = SignalClient::connect(&link.signal_url(), signal_tls).await.map_err(|e| Setup::Retry(unreachable(link, e)))?;
    signal
        .tx
        .send(ClientMsg::Join { room: link.room.clone(), join_token: link.key.join_token(), name: opts.name.clone() })
        .await
        .map_err(|_| eyre!("signaling connection closed"))?;
    let host = match signal.rx.recv().await {
        Some(ServerMsg::Joined { host, .. }) => host,
        Some(ServerMsg::Error { message, .. }) => {
            retry!("the signaling server refused to let us join: {message}")
        }
        Some(other) => retry!("unexpected answer from the signaling server: {other:?}"),
        None => retry!("the signaling server closed the connection"),
    };
    let mut fallback: Option<String> = None;
    let offer = loop {
        match signal.rx.recv().await {
            Some(ServerMsg::Signal { from, payload: SignalPayload::Offer { sdp, mac } }) if from == host => break (sdp, mac),
            Some(ServerMsg::Signal { from, payload: SignalPayload::Fallback { addr } }) if from == host => fallback = Some(addr),
            Some(ServerMsg::Signal { from, payload: SignalPayload::Denied { reason } }) if from == host => {
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
    let answer = PeerLink::answer(&ice, &link.key, offer, send);
    let link_up = match fallback {
        None => answer.await.map_err(cannot_connect)?,
        // The host serves HTTP too: WebRTC gets a few seconds, then the fallback.
        Some(addr) => match tokio::time::timeout(FALLBACK_AFTER, answer).await {
            Ok(Ok(l)) => l,
            Ok(Err(e)) => {
                return http_connection(opts, signal, &addr, format!("the WebRTC link failed ({e})")).await;
            }
            Err(_) => {
                return http_connection(opts, signal, &addr, format!("no WebRTC link within {} s", FALLBACK_AFTER.as_secs())).await;
            }
        },
    };
    let (in_tx, mut incoming) = mpsc::unbounded_channel();
    forward(link_up.control.clone(), in_tx.clone(), false);
    forward(link_up.chunks.clone(), in_tx, true);
    let control = link_up.control.clone();
    peer::send(&control, &stream::encode(&Message::Hello { version: PROTOCOL_VERSION, name: opts.name.clone() })).await?;

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
    Ok(Connection { signal, tx: Tx::Rtc(control), link: Some(link_up), incoming, manifest, fallback: None })
}

/// Attempts at a first connection whose ICE found a path but whose DTLS/SCTP did not come up
/// over it (a lost handshake flight, say): each is a fresh set-up on new sockets. Anything else
/// fails the join at once, with its reason.
const FIRST_ATTEMPTS: u32 = 3;

/// The first connection to the room, tried again when it stalled after ICE.
async fn first_connection(opts: &JoinOptions, events: &mpsc::UnboundedSender<Event>) -> Result<Connection, Setup> {
    let mut attempt = 1;
    loop {
        match connect(opts).await {
            Err(Setup::Retry(e)) if stalled(&e) && attempt < FIRST_ATTEMPTS => {
                attempt += 1;
                tracing::warn!("{e:#}; trying again (attempt {attempt} of {FIRST_ATTEMPTS})");
                let _ = events.send(Event::Warning { message: format!("{e:#}; trying again (attempt {attempt} of {FIRST_ATTEMPTS})") });
            }
            other => return other,
        }
    }
}

fn stalled(e: &color_eyre::Report) -> bool {
    e.chain().any(|c| matches!(c.downcast_ref::<peer::LinkError>(), Some(peer::LinkError::Stalled)))
}

/// A failed WebRTC set-up for a person: what happened and, where one helps, what to do.
fn cannot_connect(e: peer::LinkError) -> color_eyre::Report {
    match e {
        peer::LinkError::NoPath(d) => Hinted::new(format!("cannot connect to the host: {}", d.message), d.hint).into(),
        // Kept typed: a stalled first attempt is tried again (see `first_connection`).
        e @ peer::LinkError::Stalled => color_eyre::Report::new(e).wrap_err("cannot connect to the host"),
        e => eyre!("cannot connect to the host: {e}"),
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
async fn http_connection(opts: &JoinOptions, signal: SignalClient, addr: &str, why: String) -> Result<Connection, Setup> {
    use crate::net::http::fallback_client::{self, Delivered, HttpLink};
    tracing::warn!("{why}; falling back to HTTP at {addr}");
    let http = HttpLink::new(addr, &opts.link.room, &opts.link.key);
    let manifest = http.manifest().await.map_err(|e| Setup::Retry(eyre!("{why}, and the HTTP fallback failed too: {e}")))?;
    let url = http.url();
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let (back_tx, mut back_rx) = mpsc::unbounded_channel();
    fallback_client::spawn(http, manifest.clone(), out_rx, back_tx);
    let (in_tx, incoming) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(d) = back_rx.recv().await {
            let item = match d {
                Delivered::Chunk(b) => Incoming::Chunk(b),
                Delivered::Control(b) => Incoming::Control(b),
                Delivered::Failed(e) => Incoming::Closed(e),
            };
            if in_tx.send(item).is_err() {
                return;
            }
        }
    });
    Ok(Connection { signal, link: None, tx: Tx::Http(out_tx), incoming, manifest, fallback: Some((why, url)) })
}

/// What reconnecting came to. Made once per reconnection: its size does not matter.
#[allow(clippy::large_enum_variant)]
enum Reconnected {
    Again(Connection),
    Ended(JoinEnd),
}

/// How long a participant whose link dropped keeps trying to get back in.
const RECONNECT_FOR: Duration = Duration::from_secs(90);

/// Gets back into the room after the link dropped, for the same file: retries with a growing
/// pause (the host may be restarting its network, or this machine waking up).
async fn reconnect(opts: &JoinOptions, manifest: &Manifest, events: &mpsc::UnboundedSender<Event>, why: &str) -> Result<Reconnected> {
    let deadline = Instant::now() + RECONNECT_FOR;
    let mut pause = Duration::from_millis(500);
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let _ = events.send(Event::Reconnecting { reason: why.to_string(), attempt });
        tracing::info!("link lost ({why}); reconnecting, attempt {attempt}");
        let err = match connect(opts).await {
            Ok(c) if c.manifest.identity() == manifest.identity() => {
                return Ok(Reconnected::Again(c));
            }
            Ok(c) => {
                close_link(&c.link).await;
                bail!("the host is streaming another file now ({}); not resuming {}", c.manifest.name, manifest.name)
            }
            Err(Setup::Ended(end)) => return Ok(Reconnected::Ended(end)),
            Err(Setup::Final(e)) => return Err(e),
            Err(Setup::Retry(e)) => e,
        };
        if Instant::now() + pause > deadline {
            bail!("connection to the host lost ({why}) and not back within {} s: {err}", RECONNECT_FOR.as_secs());
        }
        tracing::info!("reconnect attempt {attempt} failed: {err}");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

/// Marks the engine's turn as ended by a lost link (the caller reconnects).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Lost(String);

/// The reason, when `e` is the link going away rather than a real failure.
fn lost_reason(e: &color_eyre::Report) -> Option<String> {
    if let Some(l) = e.downcast_ref::<Lost>() {
        return Some(l.0.clone());
    }
    e.downcast_ref::<peer::LinkError>().map(|l| l.to_string())
}

/// Joins a room and streams until quit, end of stream, or failure.
pub async fn run(opts: JoinOptions, events: mpsc::UnboundedSender<Event>, mut commands: mpsc::UnboundedReceiver<Command>) -> Result<JoinEnd> {
    let started = Instant::now();
    let mut conn = match first_connection(&opts, &events).await {
        Ok(c) => c,
        Err(Setup::Retry(e) | Setup::Final(e)) => return Err(e),
        Err(Setup::Ended(end)) => return Ok(end),
    };
    let manifest = conn.manifest.clone();
    let mut path = conn.announce(&events).await;
    let _ = events.send(Event::Manifest {
        name: manifest.name.clone(),
        size: manifest.size,
        chunks: manifest.chunks,
        chunk_size: manifest.chunk_size,
        duration_ms: manifest.duration_ms,
        codecs: manifest.codecs.clone(),
        levels: manifest.levels.clone(),
    });
    // A copy an earlier run left half-way is kept: what it holds is read from disk, not
    // fetched again (see `save`).
    let (mut save, saved) = match &opts.save {
        Some(path) => {
            let (s, held) = SaveFile::open(path, &manifest).map_err(|e| eyre!("cannot write {}: {e}", path.display()))?;
            (Some(s), held)
        }
        None => (None, vec![]),
    };
    let cfg = StoreConfig {
        capacity: opts.buffer.max(manifest.chunk_size as u64 * 4),
        fill_behind: save.is_some(),
        download_limit: opts.download_limit,
        on_disk: save.is_some(),
        ..StoreConfig::default()
    };
    let wake = Arc::new(tokio::sync::Notify::new());
    let wake_fn: Arc<dyn Fn() + Send + Sync> = {
        let wake = wake.clone();
        Arc::new(move || wake.notify_one())
    };
    let shared = {
        let w = wake_fn.clone();
        SharedStore::new(ChunkStore::new(manifest.clone(), cfg.clone()), move || w())
    };
    if let Some(s) = &save {
        let mut g = shared.lock();
        g.disk = Some(s.file().clone());
        for &ix in &saved {
            g.store.mark_on_disk(ix);
        }
    }
    if !saved.is_empty() {
        let _ = events.send(Event::Resumed { chunks: saved.len() as u32, bytes: saved.iter().map(|&ix| manifest.chunk_len(ix).unwrap_or(0) as u64).sum() });
    }
    let (reader, reader_cancel) = shared.cancellable_reader();
    let mut playback = if opts.playback { Playback::start(Box::new(reader), None, opts.sound && opts.mpv.is_none()) } else { Playback::inert() };
    // Renditions play in the built-in player only; mpv reads the original over HTTP, --save
    // keeps the original, and a fetch-only participant plays nothing.
    let fixed_high = if !opts.playback {
        Some("it does not play")
    } else if opts.mpv.is_some() {
        Some("mpv plays the original")
    } else if save.is_some() {
        Some("--save keeps the original")
    } else {
        None
    };
    let choice = match fixed_high {
        Some(why) => {
            if opts.quality != "auto" && opts.quality != "high" {
                let _ = events.send(Event::Error { message: format!("quality {}: staying at high, {why}", opts.quality) });
            }
            Choice::Fixed("high".into())
        }
        None => Choice::parse(&opts.quality),
    };
    let mut levels = Levels::new(&manifest, shared.clone(), Some(reader_cancel), cfg.clone(), wake_fn.clone());
    if let Err(e) = levels.choose(choice) {
        let _ = events.send(Event::Error { message: format!("quality: {e}; choosing automatically") });
    }
    let screen = opts.render.screen().cloned();
    if let Some(s) = &screen {
        s.attach_queue(playback.queue());
        s.update(|st| {
            st.name = opts.name.clone();
            st.file = manifest.name.clone();
            st.duration_ms = manifest.duration_ms;
            st.quality = levels.label();
            st.quality_choice = levels.choice_name();
            st.levels = manifest.levels.clone();
            st.link = opts.link.to_string();
        });
    }
    let mut presents: u64 = 0;
    // mpv reads the store over local HTTP and follows the same room clock.
    let (_range_server, mut mpv) = match &opts.mpv {
        Some(args) => {
            let server = crate::player::range_server::start(shared.clone(), &manifest.name).await?;
            let mpv = crate::player::mpv::Mpv::spawn(&server.url, args).await?;
            tracing::info!("mpv playing {}", server.url);
            (Some(server), Some(mpv))
        }
        None => (None, None),
    };
    let mut mpv_status: Option<crate::player::mpv::MpvStatus> = None;
    let mut cursor = Cursor { next: 0, hasher: Sha256::new(), done: false };
    // A resumed copy may already hold a run of chunks from the start (or all of them).
    advance(&mut shared.lock().store, &mut cursor, save.as_mut(), &events, started)?;
    let mut down = Meter::new(Duration::from_secs(1));
    let mut received: u32 = 0;
    let mut duplicates: u32 = 0;
    let mut present = tokio::time::interval(Duration::from_millis(5));
    present.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut stats_tick = tokio::time::interval(Duration::from_secs(1));
    // A burst of pings first, so the clock offset is known before the room's state matters.
    let mut ping_tick = tokio::time::interval(Duration::from_millis(50));
    let mut pings_sent: u32 = 0;
    let mut signal_open = true;
    let mut last_report = Instant::now();
    // Under a download limit, when the next request may go (only asking changes it).
    let mut requests_at = request_more(&levels, &conn.tx).await?;

    let end = loop {
        // One turn of the engine; a lost link (its channels closing, ICE failing, a send
        // failing) ends the turn with `Lost` and the participant reconnects below.
        let turn: Result<Option<JoinEnd>> = async {
            tokio::select! {
                _ = sleep_until_opt(requests_at), if requests_at.is_some() => requests_at = request_more(&levels, &conn.tx).await?,
                item = conn.incoming.recv() => match item {
                    Some(Incoming::Chunk(b)) => {
                        let now = Instant::now();
                        down.record(now, b.len() as u64);
                        let Some(parts) = stream::decode_chunk(b, manifest.chunk_size)? else {
                            bail!("protocol violation: only chunks belong on the chunks channel");
                        };
                        levels.handle_received(parts.data.len());
                        if parts.space != ORIGINAL {
                            // A rendition's chunk: into its store, or dropped if it was replaced.
                            tracing::trace!("chunk {} of space {}", parts.index, parts.space);
                            match levels.store_for(parts.space)? {
                                Some(store) => {
                                    let arrival = {
                                        let mut g = store.lock();
                                        parts.check_len(g.store.manifest().chunk_len(parts.index))?;
                                        g.store.handle_chunk(now, parts.index, parts.data)?
                                    };
                                    if arrival == Arrival::Duplicate {
                                        duplicates += 1;
                                    }
                                    store.arrived(arrival);
                                }
                                None => tracing::trace!("late chunk of replaced rendition {}", parts.space),
                            }
                            requests_at = request_more(&levels, &conn.tx).await?;
                            return Ok(None);
                        }
                        parts.check_len(manifest.chunk_len(parts.index))?;
                        let (index, data) = (parts.index, parts.data);
                        let stored = {
                            let mut g = shared.lock();
                            let fresh = !g.store.seen(index);
                            if let Some(f) = &mut save
                                && fresh
                            {
                                f.write(index, &data)?;
                            }
                            let arrival = g.store.handle_chunk(now, index, data)?;
                            if arrival != Arrival::Duplicate && fresh {
                                received += 1;
                            }
                            // Twice, or once more after eviction or a resumed copy had it: either
                            // way fetched again.
                            if arrival == Arrival::Duplicate || !fresh {
                                duplicates += 1;
                            }
                            advance(&mut g.store, &mut cursor, save.as_mut(), &events, started)?;
                            if !opts.playback {
                                // Without a player, the in-order hash is the reader. It never
                                // marks the next chunk critical: that chunk is normally already on
                                // its way, and a critical re-request makes the host send it again
                                // (it halved bench throughput); lost requests time out and repeat.
                                g.store.set_read_position(cursor.next);
                            }
                            arrival
                        };
                        shared.arrived(stored);
                        requests_at = request_more(&levels, &conn.tx).await?;
                    }
                    Some(Incoming::Control(b)) => match stream::decode_from(&b, Role::Host, Some(&manifest))? {
                        Message::StreamEnd { reason } => return Ok(Some(JoinEnd::StreamEnd(reason))),
                        Message::Pong { client_us, host_us } => {
                            playback.handle_pong(client_us as Micros, host_us as Micros);
                            if let Some(m) = &mpv {
                                m.set_clock(playback.room_view());
                            }
                        }
                        Message::State { playing, position_us, at_host_us, rate_milli, seq, waiting } => {
                            let state = MediaState { playing, position_us: position_us as Micros, at_host_us: at_host_us as Micros, rate_milli, seq };
                            playback.handle_state(state, waiting);
                            if let Some(m) = &mpv {
                                m.set_clock(playback.room_view());
                            }
                        }
                        Message::Roster { peers } => {
                            if let Some(s) = &screen {
                                let me = opts.name.as_str();
                                let list = peers
                                    .into_iter()
                                    .filter(|p| p.name != me)
                                    .map(|p| (p.name, format!("{} {}", if p.buffering { "buffering" } else { "watching" }, p.level)))
                                    .collect();
                                s.update(|st| st.peers = list);
                            }
                        }
                        Message::Notice { text } => {
                            if let Some(s) = &screen {
                                s.update(|st| st.message = Some(text.clone()));
                            }
                            let _ = events.send(Event::Error { message: format!("host: {text}") });
                        }
                        Message::QualityChange { level, space, first_us, produced, done, granted } => {
                            let news = RenditionNews { level, space, first_us, produced, done, granted };
                            for m in levels.handle_quality_change(news, &mut playback)? {
                                conn.tx.send(&stream::encode(&m)).await?;
                            }
                            requests_at = request_more(&levels, &conn.tx).await?;
                        }
                        Message::LevelRefused { level, reason } => {
                            levels.handle_refused(&level, Instant::now());
                            let _ = events.send(Event::Error { message: format!("quality {level}: {reason}") });
                            if let Some(s) = &screen {
                                s.update(|st| {
                                    st.quality = levels.label();
                                    st.message = Some(format!("{level}: {reason}"));
                                });
                            }
                        }
                        Message::Hello { .. } => {}
                        other => bail!("protocol violation: unexpected {other:?}"),
                    },
                    Some(Incoming::Closed(why)) => return Err(Lost(why).into()),
                    None => return Err(Lost("connection to the host lost".into()).into()),
                },
                _ = link_failed(&conn.link) => return Err(Lost("the WebRTC connection failed".into()).into()),
                _ = wake.notified() => requests_at = request_more(&levels, &conn.tx).await?,
                _ = present.tick() => {
                    let result = playback.tick();
                    if let Some(msgs) = levels.after_tick(&mut playback, Instant::now()) {
                        if let Some(s) = &screen {
                            s.attach_queue(playback.queue());
                        }
                        for m in msgs {
                            conn.tx.send(&stream::encode(&m)).await?;
                        }
                    }
                    if let Some(t) = playback.take_seek() {
                        for m in levels.handle_seek(t, Instant::now()) {
                            conn.tx.send(&stream::encode(&m)).await?;
                        }
                    }
                    let room_us = playback.room_position();
                    for m in levels.drive(&mut playback, room_us, Instant::now()) {
                        conn.tx.send(&stream::encode(&m)).await?;
                    }
                    if let Some(s) = &screen {
                        if let Some(f) = playback.take_new_frame() {
                            s.set_frame(f);
                        }
                        presents += 1;
                        if presents.is_multiple_of(10) || !matches!(result, Ok(None)) {
                            s.update(|st| {
                                st.position_ms = (playback.position().max(0) / 1000) as u64;
                                st.room_playing = playback.room_wants_playing();
                                st.buffering = playback.buffering();
                                st.waiting = playback.waiting().to_vec();
                                st.drift_ms = playback.drift().map(|d| d / 1000);
                            });
                        }
                    }
                    match result {
                        Err(e) => {
                            // Not fatal: the bytes still arrive (and --save still keeps them).
                            let _ = events.send(Event::Error { message: format!("cannot play {}: {e}", manifest.name) });
                            send_report(&conn.tx, &playback, &shared, down.rate(Instant::now()) as u64).await?;
                        }
                        Ok(Some(_)) => {
                            let _ = events.send(state_event(&playback));
                            send_report(&conn.tx, &playback, &shared, down.rate(Instant::now()) as u64).await?;
                            last_report = Instant::now();
                        }
                        Ok(None) => {}
                    }
                }
                _ = ping_tick.tick() => {
                    pings_sent += 1;
                    // 8 quick pings, then one a second.
                    if pings_sent <= 8 || pings_sent.is_multiple_of(20) {
                        let ping = Message::Ping { client_us: playback.now().max(0) as u64 };
                        conn.tx.send(&stream::encode(&ping)).await?;
                    }
                }
                _ = stats_tick.tick() => {
                    let now = Instant::now();
                    if let Some(f) = save.as_mut() {
                        f.checkpoint()?;
                    }
                    for s in levels.all_stores() {
                        s.lock().store.handle_timeout(now);
                    }
                    levels.sample(now, playback.buffering() && playback.room_wants_playing());
                    requests_at = request_more(&levels, &conn.tx).await?;
                    let down_bps = down.rate(now) as u64;
                    if let Some(s) = &screen {
                        let (held, pieces, read_fraction) = {
                            let g = shared.lock();
                            let read = g.store.read_position() as f64 / manifest.chunks.max(1) as f64;
                            (g.store.held_bytes(), g.store.piece_map(crate::player::screen::PIECE_BINS), read)
                        };
                        let quality = levels.label();
                        s.update(|st| {
                            st.sample_down(down_bps);
                            st.quality = quality;
                            st.buffered_bytes = held;
                            st.pieces = pieces;
                            st.read_fraction = read_fraction;
                        });
                    }
                    let _ = events.send(Event::JoinStats {
                        down_bps,
                        buffered_bytes: shared.lock().store.held_bytes(),
                        received_chunks: received,
                        duplicate_chunks: duplicates,
                        chunks: manifest.chunks,
                        position_ms: (playback.position().max(0) / 1000) as u64,
                        playing: playback.playing(),
                        quality: levels.playing().to_string(),
                        quality_next: levels.next(),
                        frame_ms: playback.frame_pts().map(|p| (p.max(0) / 1000) as u64),
                        drift_ms: playback.drift().map_or(0, |d| d / 1000),
                        buffering: playback.buffering(),
                        mpv: mpv_status.map(|m| m.at(Instant::now())),
                        sound: playback.sound_stats(),
                        path: path.clone(),
                        t_ms: crate::output::headless::now_ms(),
                    });
                    if last_report.elapsed() >= Duration::from_millis(900) {
                        send_report(&conn.tx, &playback, &shared, down.rate(Instant::now()) as u64).await?;
                        last_report = Instant::now();
                    }
                }
                cmd = commands.recv() => match cmd {
                    Some(Command::Quit) | None => return Ok(Some(JoinEnd::Quit)),
                    Some(Command::Quality(q)) => match fixed_high {
                        Some(why) if q != "high" => {
                            let _ = events.send(Event::Error { message: format!("quality {q}: staying at high, {why}") });
                        }
                        _ => {
                            if let Err(e) = levels.choose(Choice::parse(&q)) {
                                let _ = events.send(Event::Error { message: format!("quality {q}: {e}") });
                            }
                            if let Some(s) = &screen {
                                s.update(|st| {
                                    st.quality = levels.label();
                                    st.quality_choice = levels.choice_name();
                                });
                            }
                        }
                    },
                    Some(Command::DownloadLimit(limit)) => {
                        tracing::info!("download limit now {limit} B/s");
                        levels.set_download_limit(limit);
                        requests_at = request_more(&levels, &conn.tx).await?;
                    }
                    Some(c) => send_command(&conn.tx, &playback, c).await?,
                },
                out = recv_mpv(&mut mpv) => match out {
                    MpvOut::Command(c) => send_command(&conn.tx, &playback, c).await?,
                    MpvOut::Status(st) => mpv_status = Some(st),
                    MpvOut::Exited(why) => {
                        tracing::info!("{why}");
                        let _ = events.send(Event::Error { message: format!("{why}; leaving the room") });
                        return Ok(Some(JoinEnd::Quit));
                    }
                },
                msg = conn.signal.rx.recv(), if signal_open => {
                    // Signaling is only needed to set up; once connected, its loss is not fatal.
                    match msg {
                        Some(ServerMsg::Error { message, .. }) => tracing::info!("signaling: {message}"),
                        Some(_) => {}
                        None => {
                            tracing::info!("signaling connection closed; the WebRTC link carries on");
                            signal_open = false;
                        }
                    }
                }
            }
            Ok(None)
        }
        .await;
        let why = match turn {
            Ok(Some(end)) => break end,
            Ok(None) => continue,
            Err(e) => match lost_reason(&e) {
                Some(why) => why,
                None => return Err(e),
            },
        };
        // Keep every store, the picture and the hash; only the link is new.
        close_link(&conn.link).await;
        match reconnect(&opts, &manifest, &events, &why).await? {
            Reconnected::Again(c) => {
                path = c.announce(&events).await;
                conn = c;
            }
            Reconnected::Ended(end) => break end,
        }
        let now = Instant::now();
        for s in levels.all_stores() {
            // The new connection knows nothing of what was asked on the old one.
            s.lock().store.take_in_flight(now);
        }
        levels.reconnected();
        signal_open = true;
        pings_sent = 0;
        requests_at = request_more(&levels, &conn.tx).await?;
        let _ = events.send(Event::Reconnected { held_bytes: shared.lock().store.held_bytes() });
    };
    if let JoinEnd::StreamEnd(reason) = &end {
        let _ = events.send(Event::StreamEnd { reason: reason.clone() });
    }
    tracing::info!("leaving: {end:?}");
    for s in levels.all_stores() {
        s.close();
    }
    tokio::task::spawn_blocking(move || playback.stop()).await?;
    tracing::info!("playback stopped");
    if let Some(s) = &screen {
        s.close();
    }
    if let Some(f) = save.as_mut() {
        f.checkpoint()?;
    }
    close_link(&conn.link).await;
    tracing::info!("link closed");
    Ok(end)
}

/// `--download-limit`'s default: 50 MiB/s.
pub const DEFAULT_DOWNLOAD_LIMIT: u64 = 50 << 20;

/// A playback command from stdin, the view or mpv, sent to the host.
async fn send_command(control: &Tx, playback: &Playback, c: Command) -> Result<()> {
    let wire = match c {
        Command::Play => stream::Command::Play,
        Command::Pause => stream::Command::Pause,
        Command::SeekTo(s) => stream::Command::Seek((s * 1e6) as u64),
        Command::SeekBy(d) => {
            let here = playback.room_position().unwrap_or_else(|| playback.position());
            stream::Command::Seek((here + (d * 1e6) as Micros).max(0) as u64)
        }
        // Handled by the engine.
        Command::Quality(_) | Command::DownloadLimit(_) | Command::Quit => return Ok(()),
        Command::Approve(_) | Command::Deny(_) => {
            tracing::info!("approve/deny are for a host");
            return Ok(());
        }
    };
    control.send(&stream::encode(&Message::Command(wire))).await?;
    Ok(())
}

async fn recv_mpv(mpv: &mut Option<crate::player::mpv::Mpv>) -> MpvOut {
    match mpv {
        Some(m) => m.out.recv().await.unwrap_or(MpvOut::Exited("mpv driver stopped".into())),
        None => std::future::pending().await,
    }
}

fn state_event(playback: &Playback) -> Event {
    Event::State {
        playing: playback.playing(),
        position_ms: (playback.position().max(0) / 1000) as u64,
        buffering: playback.buffering(),
        waiting: playback.waiting().to_vec(),
        seq: playback.seq(),
        t_ms: crate::output::headless::now_ms(),
    }
}

async fn send_report(control: &Tx, playback: &Playback, shared: &SharedStore, down_bps: u64) -> Result<()> {
    let report = Message::Report {
        position_ms: (playback.position().max(0) / 1000) as u64,
        buffered_bytes: shared.lock().store.held_bytes(),
        down_bps,
        buffering: playback.buffering(),
        rtt_ms: playback.rtt_ms(),
        seq: playback.seq(),
        drift_ms: playback.drift().map(|d| d / 1000),
    };
    control.send(&stream::encode(&report)).await?;
    Ok(())
}

/// Sends what the stores the picture reads want to ask for; returns when the download limit
/// lets the next request go, if it holds some back.
async fn request_more(levels: &Levels, control: &Tx) -> Result<Option<Instant>> {
    let mut ready_at: Option<Instant> = None;
    for (space, shared) in levels.live_stores() {
        let requests: Vec<_> = {
            let mut g = shared.lock();
            let now = Instant::now();
            let requests = std::iter::from_fn(|| g.store.poll_request(now)).collect();
            if let Some(t) = g.store.request_ready_at(now) {
                ready_at = Some(ready_at.map_or(t, |r| r.min(t)));
            }
            requests
        };
        for req in requests {
            tracing::trace!("request space {space}: {:?} {:?}", req.priority, req.chunks);
            let msg = Message::Request { space, chunks: req.chunks, priority: req.priority };
            control.send(&stream::encode(&msg)).await?;
        }
    }
    Ok(ready_at)
}

/// Hashes the file in order as far as it is held (or saved); reports completion with the
/// file's sha256 once every byte has been through.
fn advance(store: &mut ChunkStore, cursor: &mut Cursor, save: Option<&mut SaveFile>, events: &mpsc::UnboundedSender<Event>, started: Instant) -> Result<()> {
    let manifest = store.manifest().clone();
    let mut buf = Vec::new();
    while cursor.next < manifest.chunks {
        if let Some(data) = store.get(cursor.next) {
            cursor.hasher.update(data);
        } else if let Some(f) = save.as_deref()
            && store.seen(cursor.next)
        {
            // Evicted from memory, but on disk.
            buf.resize(manifest.chunk_len(cursor.next).unwrap_or(0), 0);
            f.file().read_exact_at(&mut buf, cursor.next as u64 * manifest.chunk_size as u64)?;
            cursor.hasher.update(&buf);
        } else {
            break;
        }
        cursor.next += 1;
    }
    if cursor.next == manifest.chunks && !cursor.done {
        cursor.done = true;
        let sha256 = hex::encode(std::mem::take(&mut cursor.hasher).finalize());
        let _ = events.send(Event::Complete { sha256, size: manifest.size, seconds: started.elapsed().as_secs_f64() });
        if let Some(f) = save {
            f.finish();
        }
    }
    Ok(())
}
