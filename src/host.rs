//! The host engine: opens the room, connects each participant, and serves chunks from the
//! sans-IO scheduler. Networking and file reads happen here; decisions happen in `core`.

use std::collections::HashMap;
use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use color_eyre::eyre::{Context, Result, bail, eyre};
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::core::clock::Micros;
use crate::core::rate::{Meter, TokenBucket};
use crate::core::room::{Origin, Room, RoomCommand, RoomConfig, RoomOutput};
use crate::core::scheduler::Scheduler;
use crate::headless::{Command, Event, PeerStats};
use crate::media::probe;
use crate::media::transcode;
use crate::net::peer::{self, IceConfig, PeerLink, Reach};
use crate::net::signal_client::SignalClient;
use crate::protocol::auth::RoomKey;
use crate::protocol::link::Link;
use crate::protocol::signal::{ClientMsg, PeerId, ServerMsg, SignalPayload};
use crate::protocol::stream::{self, Manifest, Message, ORIGINAL, PROTOCOL_VERSION, Role, RosterEntry};
use crate::server::ServerConfig;
use crate::timer::sleep_until_opt;
use crate::transcoders::Renditions;

/// Chunk sends queued per participant beyond the channel's own buffer.
const CHUNK_QUEUE: usize = 8;

/// How the host runs.
#[derive(Debug, Clone)]
pub struct HostOptions {
    /// The file to stream.
    pub file: PathBuf,
    /// An external signaling server (`ws://HOST:PORT/` or `wss://`); `None` embeds one on `listen`.
    pub server: Option<String>,
    /// Extra trusted certificates for a `wss://` external server.
    pub tls_ca: Option<PathBuf>,
    /// The embedded server's certificate (with `server_cfg.tls`): the host pins it when it
    /// connects to its own server on 127.0.0.1.
    pub tls_cert: Option<PathBuf>,
    /// Where the embedded server listens.
    pub listen: SocketAddr,
    /// Host name put in the link when the embedded server listens on a wildcard address.
    pub advertise: Option<String>,
    /// Ask the router to forward the embedded server's port (UPnP IGD, else NAT-PMP).
    pub upnp: bool,
    /// Requested room id.
    pub room: Option<String>,
    /// Display name.
    pub name: String,
    /// Chunk payload size.
    pub chunk_size: u32,
    /// Override for the ICE bind address.
    pub ice_addr: Option<String>,
    /// STUN/TURN servers and the ICE policy.
    pub nat: crate::net::peer::NatOptions,
    /// Limits of the embedded server.
    pub server_cfg: ServerConfig,
    /// Who controls playback and how the room treats buffering.
    pub playback: PlaybackPolicy,
    /// Upload limit for all participants together, bytes per second (0: none).
    pub upload_limit: u64,
    /// Newcomers wait until the host lets them in (`approve NAME` / `deny NAME`).
    pub approve: bool,
    /// Also serve the room over HTTP here (`--http`), for participants whose WebRTC link does
    /// not come up.
    pub http: Option<SocketAddr>,
}

/// Playback policy of a room.
#[derive(Debug, Clone, Copy)]
pub struct PlaybackPolicy {
    /// Start playing at once.
    pub autoplay: bool,
    /// Pause the room while a participant buffers.
    pub wait_for_buffering: bool,
    /// Refuse participants' play/pause/seek.
    pub host_only_control: bool,
}

impl Default for PlaybackPolicy {
    fn default() -> Self {
        PlaybackPolicy { autoplay: false, wait_for_buffering: true, host_only_control: false }
    }
}

/// `--upload-limit`'s default: 10 MiB/s for the whole room.
pub const DEFAULT_UPLOAD_LIMIT: u64 = 10 << 20;

/// A host running in this process on loopback, with an embedded server (demo, bench).
pub struct LocalRoom {
    /// The room's link.
    pub link: Link,
    /// The `room` event itself (a dashboard starts from it).
    pub opened: Event,
    /// The host's events after `room`.
    pub events: mpsc::UnboundedReceiver<Event>,
    /// Commands to the host (`Quit` ends it).
    pub commands: mpsc::UnboundedSender<Command>,
    /// The host engine.
    pub task: tokio::task::JoinHandle<Result<()>>,
}

/// Starts a host for `file` on 127.0.0.1 and waits until its room is open.
/// `upload_limit` as `--upload-limit` (0: none; the benchmarks measure unlimited).
pub async fn start_local(file: PathBuf, room: Option<String>, name: &str, playback: PlaybackPolicy, upload_limit: u64) -> Result<LocalRoom> {
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let (commands, commands_rx) = mpsc::unbounded_channel();
    let opts = HostOptions {
        file,
        server: None,
        tls_ca: None,
        tls_cert: None,
        listen: "127.0.0.1:0".parse()?,
        advertise: None,
        upnp: false,
        room,
        name: name.into(),
        chunk_size: stream::DEFAULT_CHUNK_SIZE,
        ice_addr: None,
        nat: Default::default(),
        server_cfg: ServerConfig::default(),
        playback,
        upload_limit,
        approve: false,
        http: None,
    };
    let task = tokio::spawn(run(opts, events_tx, commands_rx));
    loop {
        match events.recv().await {
            Some(Event::Room { link, links, room, file, size, duration_ms }) => {
                let parsed = Link::parse(&link)?;
                let opened = Event::Room { link, links, room, file, size, duration_ms };
                return Ok(LocalRoom { link: parsed, opened, events, commands, task });
            }
            Some(Event::Error { message }) => bail!("host: {message}"),
            Some(_) => {}
            None => {
                return Err(task.await?.err().unwrap_or_else(|| eyre!("the host stopped")));
            }
        }
    }
}

/// What peer tasks tell the engine.
enum PeerEvent {
    Connected {
        peer: PeerId,
        handle: PeerHandle,
    },
    Control {
        peer: PeerId,
        msg: Message,
    },
    Sent {
        peer: PeerId,
        bytes: usize,
    },
    Gone {
        peer: PeerId,
        reason: String,
    },
    /// Something the user should know that does not stop the peer (a STUN server silent).
    Warning {
        message: String,
    },
}

/// The engine's side of one connected participant.
struct PeerHandle {
    chunk_tx: mpsc::Sender<BytesMut>,
    control_tx: mpsc::Sender<Message>,
    link: Arc<PeerLink>,
}

struct PeerState {
    name: String,
    handle: Option<PeerHandle>,
    answers: Option<mpsc::Sender<SignalPayload>>,
    task: tokio::task::JoinHandle<()>,
    up: Meter,
    rtt_ms: Option<u32>,
    buffered_bytes: u64,
    position_ms: u64,
    drift_ms: Option<i64>,
    buffering: bool,
    /// Paces its `Level` requests.
    level_asks: TokenBucket,
}

/// The host's clock for the room: microseconds since the engine started (monotonic).
#[derive(Clone, Copy)]
struct HostClock(Instant);

impl HostClock {
    fn now(&self) -> Micros {
        self.0.elapsed().as_micros() as Micros
    }
}

/// Runs a room until `quit` (or an unrecoverable error). Events go to `events`.
pub async fn run(opts: HostOptions, events: mpsc::UnboundedSender<Event>, commands: mpsc::UnboundedReceiver<Command>) -> Result<()> {
    let file = Arc::new(File::open(&opts.file).wrap_err_with(|| format!("cannot open {}", opts.file.display()))?);
    let size = file.metadata()?.len();
    if size == 0 {
        bail!("{} is empty", opts.file.display());
    }
    if opts.chunk_size == 0 || opts.chunk_size > stream::MAX_CHUNK_SIZE {
        bail!("chunk size must be between 1 and {} bytes", stream::MAX_CHUNK_SIZE);
    }
    let chunks = Manifest::chunk_count(size, opts.chunk_size);
    if chunks > u32::MAX as u64 {
        bail!("file too large for chunk size {}", opts.chunk_size);
    }
    let path = opts.file.clone();
    let info = tokio::task::spawn_blocking(move || probe::probe(&path))
        .await?
        .map_err(|e| eyre!("{} is not a media file ffmpeg can read: {e}", opts.file.display()))?;
    let name = opts.file.file_name().map(|n| n.to_string_lossy().chars().take(stream::MAX_TEXT).collect()).unwrap_or_default();
    // Checking what this FFmpeg can transcode and opening the signaling side (a STUN probe, a
    // router's port mapping) both take a moment: at once.
    let (levels, rdv) = tokio::join!(offered_levels(&opts.file, size, info.duration_ms, &events), crate::rendezvous::open(&opts, &events));
    let manifest = Manifest {
        name,
        size,
        chunk_size: opts.chunk_size,
        chunks: chunks as u32,
        duration_ms: info.duration_ms,
        container: info.container.chars().take(stream::MAX_TEXT).collect(),
        codecs: info.codecs.into_iter().take(16).collect(),
        levels,
    };

    // The signaling server, external or embedded, and the links to it.
    let mut rdv = rdv?;
    // The router's port mapping goes however the room ends, errors included.
    let mapping = rdv.mapping.take();
    let result = host_room(opts, file, manifest, rdv, events, commands).await;
    if let Some(m) = mapping {
        m.remove().await;
    }
    result
}

/// The room itself, from creating it on the signaling server to the end.
async fn host_room(
    opts: HostOptions,
    file: Arc<File>,
    manifest: Manifest,
    rdv: crate::rendezvous::Rendezvous,
    events: mpsc::UnboundedSender<Event>,
    mut commands: mpsc::UnboundedReceiver<Command>,
) -> Result<()> {
    let (_server, url, signal_tls) = (rdv.server, rdv.url, rdv.tls);
    let tls = signal_tls.is_some();
    let key = RoomKey::random();
    let mut signal = SignalClient::connect(&url, signal_tls.clone()).await?;
    signal
        .tx
        .send(ClientMsg::Create { room: opts.room.clone(), join_token: key.join_token(), name: opts.name.clone() })
        .await
        .map_err(|_| eyre!("signaling connection closed"))?;
    let room = match signal.rx.recv().await {
        Some(ServerMsg::Created { room, .. }) => room,
        Some(ServerMsg::Error { message, .. }) => {
            bail!("the signaling server refused the room: {message}")
        }
        other => bail!("unexpected answer from the signaling server: {other:?}"),
    };
    let (link, links) = crate::rendezvous::room_links(&rdv.links, &room, &key, tls);
    let _ = events.send(Event::Room {
        link: link.to_string(),
        links,
        room: room.clone(),
        file: manifest.name.clone(),
        size: manifest.size,
        duration_ms: manifest.duration_ms,
    });

    // The loopback rule (DESIGN §3) follows the link: loopback only when only this machine
    // can reach the room.
    let ice = IceConfig::new(Reach::of_host(&link.host), opts.ice_addr.as_deref(), &opts.nat);
    let (peer_tx, mut peer_rx) = mpsc::unbounded_channel::<PeerEvent>();
    let mut peers: HashMap<PeerId, PeerState> = HashMap::new();
    let mut scheduler = Scheduler::new(CHUNK_QUEUE);
    // The room's upload budget; the scheduler's round robin shares it fairly. A tenth of a
    // second of credit at most, so an idle moment does not turn into a burst.
    let limit = opts.upload_limit as f64;
    let mut upload = TokenBucket::new(limit, (limit * 0.1).max(2.0 * opts.chunk_size as f64));
    let mut total_up = Meter::new(Duration::from_secs(1));
    let mut stats_tick = tokio::time::interval(Duration::from_secs(1));
    let mut signal_open = true;
    // Peer ids come from the signaling server, which numbers them afresh when it restarts: the
    // engine's ids are the server's plus a base that moves on at each reconnection.
    let mut id_base: u64 = 0;
    // An external server lost: when to try it again.
    let mut reconnect_at: Option<Instant> = None;
    let manifest = Arc::new(manifest);
    let clock = HostClock(Instant::now());
    let room_cfg = RoomConfig {
        wait_for_buffering: opts.playback.wait_for_buffering,
        host_only_control: opts.playback.host_only_control,
        duration_us: manifest.duration_ms.map(|d| d as Micros * 1000),
    };
    let mut room_clock = Room::new(clock.now(), room_cfg, opts.playback.autoplay);
    let (http_state, http_state_rx) = tokio::sync::watch::channel(state_message(&room_clock, &[]));
    publish_state(&room_clock, &peers, &events, vec![], &http_state);
    // The HTTP fallback, when asked for: its address goes to each newcomer before the offer.
    let (_http, fallback) = match opts.http {
        Some(addr) => {
            let fb = crate::net::http_fallback::Room {
                room: room.clone(),
                key: key.clone(),
                file: opts.file.clone(),
                manifest: manifest.clone(),
                state: http_state_rx,
                clock: clock.0,
            };
            let server = crate::net::http_fallback::start(addr, fb).await.wrap_err_with(|| format!("cannot listen on {addr} for --http"))?;
            // Reachable where the link's host is, unless bound to one address.
            let host = if server.addr.ip().is_unspecified() { link.host.clone() } else { server.addr.ip().to_string() };
            let shown = Link { host, port: server.addr.port(), ..link.clone() }.authority();
            tracing::info!("HTTP fallback for room {room} at {shown}");
            (Some(server), Some(shown))
        }
        None => (None, None),
    };
    let levels = manifest.levels.iter().filter(|l| *l != "high").cloned().collect();
    let mut renditions = Renditions::new(&opts.file, manifest.chunk_size, levels, manifest.duration_ms.map(|d| d.saturating_mul(1000)));
    let mut rendition_tick = tokio::time::interval(Duration::from_millis(200));
    let mut warned = std::collections::HashSet::new();
    // Under --approve: who waits to be let in, oldest first.
    let mut knocking: Vec<(PeerId, String)> = Vec::new();

    let result: Result<()> = loop {
        let end_of_media = room_clock.poll_timeout().map(|t| clock.0 + Duration::from_micros(t.max(0) as u64));
        let upload_ready = upload.ready_at(Instant::now());
        tokio::select! {
            _ = sleep_until_opt(upload_ready), if upload_ready.is_some() => {}
            msg = signal.rx.recv(), if signal_open => match msg {
                Some(ServerMsg::PeerJoined { peer, name }) => {
                    let (peer, to) = (id_base + peer, peer);
                    if opts.approve {
                        // Not a byte, not even an offer, until the host says so.
                        tracing::info!(peer, "{name} knocks");
                        let _ = events.send(Event::Knock { peer, name: name.clone() });
                        knocking.push((peer, name));
                    } else {
                        admit(peer, to, name, &mut peers, &ice, &key, &signal.tx, &peer_tx, &manifest, fallback.as_deref());
                    }
                }
                Some(ServerMsg::Signal { from, payload }) => {
                    let from = id_base + from;
                    if let Some(tx) = peers.get(&from).and_then(|p| p.answers.as_ref()) {
                        let _ = tx.try_send(payload);
                    }
                }
                Some(ServerMsg::PeerLeft { peer, name }) => {
                    let peer = id_base + peer;
                    if let Some(i) = knocking.iter().position(|(p, _)| *p == peer) {
                        knocking.remove(i);
                        let _ = events.send(Event::PeerLeft { peer, name, reason: "left before being let in".into() });
                    }
                    // Participants stay on signaling while they watch, so leaving it means
                    // they quit or died; do not wait for ICE to time out.
                    remove_peer(&mut peers, &mut scheduler, &events, peer, "left the room", true).await;
                    room_clock.remove_peer(clock.now(), peer);
                    renditions.plan.remove_peer(peer);
                }
                Some(ServerMsg::Error { message, .. }) => {
                    tracing::warn!("signaling server: {message}");
                }
                Some(other) => tracing::debug!("ignoring {other:?}"),
                None if opts.server.is_some() => {
                    tracing::warn!("signaling connection closed; connected participants keep streaming; reconnecting");
                    let _ = events.send(Event::Error { message: "signaling connection lost: connected participants keep streaming; new ones can join once it is back".into() });
                    signal_open = false;
                    knocking.clear();
                    reconnect_at = Some(Instant::now() + Duration::from_secs(1));
                }
                None => {
                    tracing::warn!("signaling connection closed; connected participants keep streaming, new ones cannot join");
                    let _ = events.send(Event::Error { message: "signaling connection lost: no new participants can join".into() });
                    signal_open = false;
                }
            },
            Some(ev) = peer_rx.recv() => match ev {
                PeerEvent::Connected { peer, handle } => {
                    if peers.contains_key(&peer) {
                        // The newcomer learns the room's clock right away: a late joiner
                        // starts where the room is.
                        let _ = handle.control_tx.try_send(state_message(&room_clock, &peers_names(&room_clock.waiting(), &HashMap::new())));
                        let p = peers.get_mut(&peer).expect("checked");
                        p.answers = None;
                        p.handle = Some(handle);
                        scheduler.add_peer(peer);
                        room_clock.add_peer(peer);
                        let _ = events.send(Event::PeerJoined { peer, name: p.name.clone() });
                    }
                }
                PeerEvent::Control { peer, msg } => {
                    handle_control(&mut peers, &mut scheduler, &mut room_clock, &mut renditions, clock, peer, msg);
                }
                PeerEvent::Sent { peer, bytes } => {
                    let now = Instant::now();
                    scheduler.handle_sent(peer);
                    total_up.record(now, bytes as u64);
                    if let Some(p) = peers.get_mut(&peer) {
                        p.up.record(now, bytes as u64);
                    }
                }
                PeerEvent::Warning { message } => {
                    // Once each: every newcomer's set-up would say the same.
                    if warned.insert(message.clone()) {
                        let _ = events.send(Event::Warning { message });
                    }
                }
                PeerEvent::Gone { peer, reason } => {
                    remove_peer(&mut peers, &mut scheduler, &events, peer, &reason, false).await;
                    room_clock.remove_peer(clock.now(), peer);
                    renditions.plan.remove_peer(peer);
                }
            },
            _ = sleep_until_opt(reconnect_at), if reconnect_at.is_some() => {
                // The same room on the server again, so the link stays good for newcomers.
                let again = tokio::time::timeout(Duration::from_secs(3), async {
                    let mut c = SignalClient::connect(&url, signal_tls.clone()).await.ok()?;
                    c.tx.send(ClientMsg::Create { room: Some(room.clone()), join_token: key.join_token(), name: opts.name.clone() }).await.ok()?;
                    match c.rx.recv().await {
                        Some(ServerMsg::Created { .. }) => Some(c),
                        other => {
                            tracing::info!("signaling server not taking the room back yet: {other:?}");
                            None
                        }
                    }
                })
                .await
                .ok()
                .flatten();
                match again {
                    Some(c) => {
                        tracing::info!("signaling connection back: room {room} is open to newcomers again");
                        signal = c;
                        signal_open = true;
                        id_base += 1 << 32;
                        reconnect_at = None;
                    }
                    None => reconnect_at = Some(Instant::now() + Duration::from_secs(2)),
                }
            }
            _ = rendition_tick.tick(), if renditions.plan.spaces().next().is_some() => {
                renditions.tick(&|peer, msg| send_to(&peers, peer, msg));
            }
            _ = sleep_until_opt(end_of_media) => {
                room_clock.handle_timeout(clock.now());
            }
            _ = stats_tick.tick() => {
                let now = Instant::now();
                let mut list: Vec<PeerStats> = peers.iter_mut().filter(|(_, p)| p.handle.is_some()).map(|(id, p)| PeerStats {
                    peer: *id,
                    name: p.name.clone(),
                    up_bps: p.up.rate(now) as u64,
                    rtt_ms: p.rtt_ms,
                    buffered_bytes: p.buffered_bytes,
                    position_ms: p.position_ms,
                    quality: renditions.plan.level_of(*id).to_string(),
                    sent_bytes: p.up.total(),
                    drift_ms: p.drift_ms,
                    buffering: p.buffering,
                }).collect();
                list.sort_by_key(|p| p.peer);
                // Everyone's view lists the room: who is connected and how they are doing.
                let roster = Message::Roster {
                    peers: list.iter().take(stream::MAX_ROSTER).map(|p| RosterEntry { name: p.name.clone(), buffering: p.buffering, drift_ms: p.drift_ms, level: p.quality.clone() }).collect(),
                };
                for h in peers.values().filter_map(|p| p.handle.as_ref()) {
                    let _ = h.control_tx.try_send(roster.clone());
                }
                let position_ms = (room_clock.position(clock.now()) / 1000) as u64;
                let _ = events.send(Event::HostStats { position_ms, playing: room_clock.state().playing, up_bps: total_up.rate(now) as u64, peers: list });
            }
            cmd = commands.recv() => match cmd {
                Some(Command::Quit) | None => break Ok(()),
                Some(Command::Approve(who)) => match knocking.iter().position(|(_, n)| *n == who) {
                    Some(i) => {
                        let (peer, name) = knocking.remove(i);
                        tracing::info!(peer, "letting {name} in");
                        admit(peer, peer - id_base, name, &mut peers, &ice, &key, &signal.tx, &peer_tx, &manifest, fallback.as_deref());
                    }
                    None => {
                        let _ = events.send(Event::Error { message: format!("approve {who}: nobody of that name is waiting to join") });
                    }
                },
                Some(Command::Deny(who)) => match knocking.iter().position(|(_, n)| *n == who) {
                    Some(i) => {
                        let (peer, name) = knocking.remove(i);
                        tracing::info!(peer, "turning {name} away");
                        let payload = SignalPayload::Denied { reason: "the host turned you away".into() };
                        let _ = signal.tx.try_send(ClientMsg::Signal { to: peer - id_base, payload });
                        let _ = events.send(Event::PeerLeft { peer, name, reason: "turned away".into() });
                    }
                    None => {
                        let _ = events.send(Event::Error { message: format!("deny {who}: nobody of that name is waiting to join") });
                    }
                },
                Some(Command::DownloadLimit(_)) => {
                    let _ = events.send(Event::Error { message: "download-limit is for participants; the host has --upload-limit".into() });
                }
                Some(Command::Quality(level)) => {
                    let _ = events.send(Event::Error { message: format!("quality {level}: each participant picks its own level (syncy join --quality, or its quality command); this room offers {}", manifest.levels.join(", ")) });
                }
                Some(c) => {
                    let cmd = room_command(&c).expect("playback commands map");
                    // The host is never refused.
                    let _ = room_clock.handle_command(clock.now(), Origin::Host, cmd);
                }
            },
        }
        while let Some(RoomOutput::State { waiting, .. }) = room_clock.poll_output() {
            let names = peers_names(&waiting, &peers);
            publish_state(&room_clock, &peers, &events, names, &http_state);
        }
        renditions.apply(&mut scheduler, &|peer, msg| send_to(&peers, peer, msg));
        pump(&mut scheduler, &mut upload, &peers, &file, &manifest, &mut renditions, &peer_tx);
    };

    // Tell everyone the stream is over, then close.
    for p in peers.values() {
        if let Some(h) = &p.handle {
            let _ = h.control_tx.try_send(Message::StreamEnd { reason: "the host ended the stream".into() });
        }
    }
    let closing = peers.into_values().map(|p| async move {
        if let Some(h) = p.handle {
            // Give the goodbye a moment to leave before tearing the link down.
            let _ = tokio::time::timeout(Duration::from_millis(500), h.control_tx.closed()).await;
            h.link.close().await;
        }
        p.task.abort();
    });
    futures::future::join_all(closing).await;
    result
}

/// Hands the scheduler's decisions to the peers' send queues.
fn pump(
    scheduler: &mut Scheduler,
    upload: &mut TokenBucket,
    peers: &HashMap<PeerId, PeerState>,
    file: &File,
    manifest: &Manifest,
    renditions: &mut Renditions,
    peer_tx: &mpsc::UnboundedSender<PeerEvent>,
) {
    let now = Instant::now();
    while upload.ready(now)
        && let Some(t) = scheduler.poll_transmit()
    {
        let Some(h) = peers.get(&t.peer).and_then(|p| p.handle.as_ref()) else {
            scheduler.handle_sent(t.peer);
            continue;
        };
        let len = if t.space == ORIGINAL {
            manifest.chunk_len(t.index).expect("scheduler only holds validated indices")
        } else {
            // Checked when requested; a rendition stopped since has nothing to send.
            match renditions.plan.job(t.space).and_then(|j| j.chunk_len(t.index, manifest.chunk_size)) {
                Some(len) => len,
                None => {
                    scheduler.handle_sent(t.peer);
                    continue;
                }
            }
        };
        upload.consume(now, len as f64);
        // Header then payload read straight into the message buffer: no serde copy.
        let header = stream::encode_chunk_header(t.space, t.index, len);
        let mut bytes = BytesMut::with_capacity(header.len() + len);
        bytes.extend_from_slice(&header);
        bytes.resize(header.len() + len, 0);
        // Reads are small and from the page cache; doing them inline keeps ordering simple.
        let offset = t.index as u64 * manifest.chunk_size as u64;
        let read = if t.space == ORIGINAL {
            file.read_exact_at(&mut bytes[header.len()..], offset)
        } else {
            renditions.read_at(t.space, offset, &mut bytes[header.len()..])
        };
        if let Err(e) = read {
            tracing::error!("reading chunk {}: {e}", t.index);
            scheduler.handle_sent(t.peer);
            let _ = peer_tx.send(PeerEvent::Gone { peer: t.peer, reason: format!("host read error: {e}") });
            continue;
        }
        if h.chunk_tx.try_send(bytes).is_err() {
            // The queue is sized to the scheduler's in-flight limit, so this means the
            // peer's task is gone; its Gone event will clean up.
            scheduler.handle_sent(t.peer);
        }
    }
}

fn handle_control(
    peers: &mut HashMap<PeerId, PeerState>,
    scheduler: &mut Scheduler,
    room: &mut Room,
    renditions: &mut Renditions,
    clock: HostClock,
    peer: PeerId,
    msg: Message,
) {
    let Some(p) = peers.get_mut(&peer) else {
        return;
    };
    match msg {
        Message::Request { space: ORIGINAL, chunks, priority } => scheduler.handle_request(peer, ORIGINAL, &chunks, priority),
        Message::Request { space, chunks, priority } => {
            // Only the rendition it is on, and only what exists: a request for a rendition
            // replaced since (a race with a seek) is dropped quietly.
            let job = renditions.plan.job(space).filter(|_| renditions.plan.space_of(peer) == Some(space));
            let chunk_size = renditions.chunk_size;
            match job {
                Some(j) => {
                    let ok: Vec<u32> = chunks.into_iter().filter(|&ix| j.chunk_len(ix, chunk_size).is_some()).collect();
                    scheduler.handle_request(peer, space, &ok, priority);
                }
                None => tracing::debug!(peer, "request for rendition {space}, which it is not on"),
            }
        }
        Message::Cancel { space, chunks } => scheduler.handle_cancel(peer, space, &chunks),
        Message::Level { level, from_us } => {
            // A rendition costs the host a transcoder: a participant asking again and again
            // (a held key, a broken client) is refused beyond a few a second.
            if !p.level_asks.try_take(Instant::now(), 1.0) {
                let reason = "quality changes come too fast; try again in a moment".to_string();
                if let Some(h) = &p.handle {
                    let _ = h.control_tx.try_send(Message::LevelRefused { level, reason });
                }
                return;
            }
            // Past the end, a rendition would have nothing to show.
            let end = renditions.duration_us.map_or(u64::MAX, |d| d.saturating_sub(1_000_000));
            let from_us = from_us.min(end);
            tracing::info!(peer, "{} asks for {level} from {} ms", p.name, from_us / 1000);
            renditions.plan.handle_level(peer, &level, from_us);
        }
        Message::Report { position_ms, buffered_bytes, rtt_ms, buffering, seq, drift_ms, .. } => {
            renditions.plan.handle_position(peer, position_ms.saturating_mul(1000));
            p.position_ms = position_ms;
            p.buffered_bytes = buffered_bytes;
            p.rtt_ms = rtt_ms;
            p.drift_ms = drift_ms;
            p.buffering = buffering;
            room.handle_report(clock.now(), peer, buffering, seq);
        }
        Message::Ping { client_us } => {
            if let Some(h) = &p.handle {
                let _ = h.control_tx.try_send(Message::Pong { client_us, host_us: clock.now().max(0) as u64 });
            }
        }
        Message::Command(c) => {
            let cmd = match c {
                stream::Command::Play => RoomCommand::Play,
                stream::Command::Pause => RoomCommand::Pause,
                stream::Command::Seek(us) => RoomCommand::SeekTo(us.min(i64::MAX as u64) as Micros),
            };
            tracing::info!(peer, "{} asked for {cmd:?}", p.name);
            if let Err(refusal) = room.handle_command(clock.now(), Origin::Peer(peer), cmd)
                && let Some(h) = &p.handle
            {
                let _ = h.control_tx.try_send(Message::Notice { text: refusal.to_string() });
            }
        }
        Message::Hello { .. } => {}
        other => tracing::warn!("unexpected {other:?}"),
    }
}

/// The room command for a playback command from the host's own input.
fn room_command(c: &Command) -> Option<RoomCommand> {
    Some(match c {
        Command::Play => RoomCommand::Play,
        Command::Pause => RoomCommand::Pause,
        Command::SeekTo(s) => RoomCommand::SeekTo((s * 1e6) as Micros),
        Command::SeekBy(s) => RoomCommand::SeekBy((s * 1e6) as Micros),
        Command::Quality(_) | Command::DownloadLimit(_) | Command::Approve(_) | Command::Deny(_) | Command::Quit => return None,
    })
}

/// Starts connecting a participant (`peer` our id, `to` the server's): its peer task makes the
/// offer.
#[allow(clippy::too_many_arguments)]
fn admit(
    peer: PeerId,
    to: PeerId,
    name: String,
    peers: &mut HashMap<PeerId, PeerState>,
    ice: &IceConfig,
    key: &RoomKey,
    signal_tx: &mpsc::Sender<ClientMsg>,
    peer_tx: &mpsc::UnboundedSender<PeerEvent>,
    manifest: &Arc<Manifest>,
    fallback: Option<&str>,
) {
    if let Some(addr) = fallback {
        // Before the offer, so the participant knows where to turn if WebRTC fails.
        let _ = signal_tx.try_send(ClientMsg::Signal { to, payload: SignalPayload::Fallback { addr: addr.to_string() } });
    }
    let (answers_tx, answers_rx) = mpsc::channel(16);
    let span = tracing::info_span!("peer", id = peer, name = %name);
    let task = tokio::spawn(peer_task(peer, to, ice.clone(), key.clone(), signal_tx.clone(), answers_rx, peer_tx.clone(), manifest.clone()).instrument(span));
    peers.insert(
        peer,
        PeerState {
            name,
            handle: None,
            answers: Some(answers_tx),
            task,
            up: Meter::new(Duration::from_secs(1)),
            rtt_ms: None,
            buffered_bytes: 0,
            position_ms: 0,
            drift_ms: None,
            buffering: false,
            level_asks: TokenBucket::new(2.0, 8.0),
        },
    );
}

/// Queues a control message to a connected participant.
fn send_to(peers: &HashMap<PeerId, PeerState>, peer: PeerId, msg: Message) {
    if let Some(h) = peers.get(&peer).and_then(|p| p.handle.as_ref())
        && h.control_tx.try_send(msg).is_err()
    {
        tracing::warn!(peer, "control queue full; dropping a message");
    }
}

/// The levels this host offers for `file`: `high` (the original), and each rendition whose
/// bit rate is well under the original's, when this FFmpeg can transcode the file.
async fn offered_levels(file: &std::path::Path, size: u64, duration_ms: Option<u64>, events: &mpsc::UnboundedSender<Event>) -> Vec<String> {
    let mut levels = vec!["high".to_string()];
    let path = file.to_path_buf();
    match tokio::task::spawn_blocking(move || transcode::check_transcodable(&path)).await {
        Ok(Ok(())) => {}
        Ok(Err(transcode::TranscodeError::NoVideo)) => return levels,
        Ok(Err(e)) => {
            let _ = events.send(Event::Error { message: format!("no lower quality levels: {e}") });
            return levels;
        }
        Err(e) => {
            tracing::warn!("checking for renditions: {e}");
            return levels;
        }
    }
    let original_bps = duration_ms.filter(|&d| d > 0).map(|d| size * 8 * 1000 / d);
    for (name, r) in transcode::levels() {
        // A rendition that saves little is not worth a transcoder.
        if original_bps.is_none_or(|o| r.bps() * 5 < o * 4) {
            levels.push(name.to_string());
        }
    }
    levels
}

/// Names for peer ids (unknown ones by id).
fn peers_names(ids: &[PeerId], peers: &HashMap<PeerId, PeerState>) -> Vec<String> {
    ids.iter().map(|id| peers.get(id).map_or_else(|| format!("peer {id}"), |p| p.name.clone())).collect()
}

fn state_message(room: &Room, waiting: &[String]) -> Message {
    let s = room.state();
    Message::State {
        playing: s.playing,
        position_us: s.position_us.max(0) as u64,
        at_host_us: s.at_host_us.max(0) as u64,
        rate_milli: s.rate_milli,
        seq: s.seq,
        waiting: waiting.iter().take(stream::MAX_WAITING).cloned().collect(),
    }
}

/// Sends the room's clock to every connected participant and reports it.
fn publish_state(
    room: &Room,
    peers: &HashMap<PeerId, PeerState>,
    events: &mpsc::UnboundedSender<Event>,
    waiting: Vec<String>,
    http: &tokio::sync::watch::Sender<Message>,
) {
    let msg = state_message(room, &waiting);
    http.send_replace(msg.clone());
    for p in peers.values() {
        if let Some(h) = &p.handle
            && h.control_tx.try_send(msg.clone()).is_err()
        {
            tracing::warn!("{}: control queue full; the state reaches them with the next change", p.name);
        }
    }
    let s = room.state();
    let _ = events.send(Event::State {
        playing: s.playing,
        position_ms: (s.position_us / 1000).max(0) as u64,
        buffering: false,
        waiting,
        seq: s.seq,
        t_ms: crate::headless::now_ms(),
    });
}

/// `left`: it left the room (rather than failed); only a failure before connecting is reported.
async fn remove_peer(
    peers: &mut HashMap<PeerId, PeerState>,
    scheduler: &mut Scheduler,
    events: &mpsc::UnboundedSender<Event>,
    peer: PeerId,
    reason: &str,
    left: bool,
) {
    scheduler.remove_peer(peer);
    if let Some(p) = peers.remove(&peer) {
        p.task.abort();
        if let Some(h) = p.handle {
            tracing::info!(peer, "participant {} gone: {reason}", p.name);
            h.link.close().await;
            let _ = events.send(Event::PeerLeft { peer, name: p.name, reason: reason.to_string() });
        } else if left {
            tracing::info!(peer, "participant {} left before connecting", p.name);
        } else {
            // A refused or failed connection (a forged answer lands here) is worth telling.
            tracing::warn!(peer, "participant {} could not connect: {reason}", p.name);
            let _ = events.send(Event::Error { message: format!("{} could not connect: {reason}", p.name) });
        }
    }
}

/// One participant: connect, greet, then shuttle messages until the link ends.
#[allow(clippy::too_many_arguments)]
async fn peer_task(
    peer: PeerId,
    to: PeerId,
    ice: IceConfig,
    key: RoomKey,
    signal_tx: mpsc::Sender<ClientMsg>,
    mut answers: mpsc::Receiver<SignalPayload>,
    events: mpsc::UnboundedSender<PeerEvent>,
    manifest: Arc<Manifest>,
) {
    let gone = |reason: String| {
        let _ = events.send(PeerEvent::Gone { peer, reason });
    };
    let send_signal = async |payload| signal_tx.send(ClientMsg::Signal { to, payload }).await.is_ok();
    let mut link = match PeerLink::offer(&ice, &key, send_signal, &mut answers).await {
        Ok(l) => l,
        Err(e) => return gone(format!("connection failed: {e}")),
    };
    if let Some(message) = link.gathering_warning.take() {
        let _ = events.send(PeerEvent::Warning { message });
    }
    drop(answers);
    let needed = stream::max_message(manifest.chunk_size);
    match link.remote_max_message().await {
        Some(m) if (m as u64) < needed => {
            link.close().await;
            return gone(format!("peer accepts messages of only {m} bytes; chunks need {needed}"));
        }
        _ => {}
    }
    let hello = stream::encode(&Message::Hello { version: PROTOCOL_VERSION, name: "host".into() });
    let man = stream::encode(&Message::Manifest((*manifest).clone()));
    for m in [hello, man] {
        if let Err(e) = peer::send(&link.control, &m).await {
            link.close().await;
            return gone(format!("send failed: {e}"));
        }
    }
    let (chunk_tx, mut chunk_rx) = mpsc::channel::<BytesMut>(CHUNK_QUEUE);
    let (control_tx, mut control_rx) = mpsc::channel::<Message>(64);
    let chunks_dc = link.chunks.clone();
    let control_dc = link.control.clone();
    let early = std::mem::take(&mut link.early_control);
    let link = Arc::new(link);
    let _ = events.send(PeerEvent::Connected { peer, handle: PeerHandle { chunk_tx, control_tx, link: link.clone() } });

    let sender = {
        let events = events.clone();
        async move {
            while let Some(bytes) = chunk_rx.recv().await {
                let n = bytes.len();
                if let Err(e) = peer::send_owned(&chunks_dc, bytes).await {
                    return format!("send failed: {e}");
                }
                let _ = events.send(PeerEvent::Sent { peer, bytes: n });
            }
            "closed".into()
        }
    };
    let control_sender = {
        let dc = link.control.clone();
        async move {
            while let Some(m) = control_rx.recv().await {
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
    };
    let control_reader = {
        let events = events.clone();
        let manifest = manifest.clone();
        async move {
            let mut greeted = false;
            // What came before the channel opened goes first (see `peer::wait_open`).
            let mut early = early.into_iter();
            loop {
                let data = match early.next() {
                    Some(d) => d,
                    None => match control_dc.poll().await {
                        Some(webrtc::data_channel::DataChannelEvent::OnMessage(m)) => m.data,
                        Some(_) => continue,
                        None => break,
                    },
                };
                match stream::decode_from(&data, Role::Participant, Some(&manifest)) {
                    Ok(Message::Hello { version, .. }) => {
                        if version != PROTOCOL_VERSION {
                            return format!("protocol version {version} is not supported (this host speaks {PROTOCOL_VERSION})");
                        }
                        greeted = true;
                    }
                    Ok(_) if !greeted => {
                        return "protocol violation: a message before hello".to_string();
                    }
                    Ok(msg) => {
                        let _ = events.send(PeerEvent::Control { peer, msg });
                    }
                    Err(e) => return format!("protocol violation: {e}"),
                }
            }
            "disconnected".into()
        }
    };
    let chunk_reader = {
        let dc = link.chunks.clone();
        async move {
            while let Some(ev) = dc.poll().await {
                if let webrtc::data_channel::DataChannelEvent::OnMessage(_) = ev {
                    return "protocol violation: participants may not send on the chunks channel".to_string();
                }
            }
            "disconnected".into()
        }
    };
    let reason = tokio::select! {
        _ = link.closed() => "connection closed".to_string(),
        r = sender => r,
        r = control_sender => r,
        r = control_reader => r,
        r = chunk_reader => r,
    };
    link.close().await;
    gone(reason);
}
