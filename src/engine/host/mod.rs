//! The host engine: opens the room, connects each participant, and serves chunks from the
//! sans-IO scheduler. Networking and file reads happen here; decisions happen in `core`.

mod chunks;
mod driver;
mod hashes;
mod peer_task;
mod reads;
pub mod rendezvous;
pub mod transcoders;

use std::fs::File;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use color_eyre::eyre::{Context, Result, bail, eyre};
use tokio::sync::{mpsc, watch};

use crate::core::host::{HostConfig, HostCore};
use crate::core::room::RoomConfig;
use crate::engine::host::rendezvous::RoomClaim;
pub use crate::engine::identity::{self, Identity};
use crate::engine::{Command, Event};
use crate::media::probe;
use crate::media::transcode;
use crate::net::http::fallback_server::HttpFallback;
use crate::net::peer::{IceConfig, Reach};
use crate::protocol::link::Link;
use crate::protocol::stream::{self, Manifest};
use crate::server::ServerConfig;

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
    /// The room's label (`--room`): the room id is `LABEL-FINGERPRINT` of the host key, each
    /// label its own room key; none gives the fingerprint alone.
    pub room: Option<String>,
    /// Where the host's secret comes from (its key and its rooms' keys).
    pub identity: Identity,
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

impl HostOptions {
    /// `syncy host FILE` with every default (the command line's defaults are these too: see
    /// the test in `cli`).
    pub fn new(file: PathBuf) -> HostOptions {
        HostOptions {
            file,
            server: None,
            tls_ca: None,
            tls_cert: None,
            listen: DEFAULT_HOST_LISTEN.parse().expect("a literal address"),
            advertise: None,
            upnp: false,
            room: None,
            identity: Identity::Fresh,
            name: "host".into(),
            chunk_size: stream::DEFAULT_CHUNK_SIZE,
            ice_addr: None,
            nat: Default::default(),
            server_cfg: ServerConfig::default(),
            playback: PlaybackPolicy::default(),
            upload_limit: DEFAULT_UPLOAD_LIMIT,
            approve: false,
            http: None,
        }
    }
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

/// Where the host's embedded server listens unless told: every interface, so friends on the
/// network can join.
pub const DEFAULT_HOST_LISTEN: &str = "0.0.0.0:7878";

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
    let opts = HostOptions { listen: "127.0.0.1:0".parse()?, room, name: name.into(), playback, upload_limit, ..HostOptions::new(file) };
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

/// Runs a room until `quit` (or an unrecoverable error). Events go to `events`.
pub async fn run(mut opts: HostOptions, events: mpsc::UnboundedSender<Event>, commands: mpsc::UnboundedReceiver<Command>) -> Result<()> {
    let file = Arc::new(File::open(&opts.file).wrap_err_with(|| format!("cannot open {}", opts.file.display()))?);
    let size = file.metadata()?.len();
    if size == 0 {
        bail!("{} is empty", opts.file.display());
    }
    if !(stream::MIN_CHUNK_SIZE..=stream::MAX_CHUNK_SIZE).contains(&opts.chunk_size) {
        bail!("the chunk size must be between {} and {} KiB", stream::MIN_CHUNK_SIZE / 1024, stream::MAX_CHUNK_SIZE / 1024);
    }
    let chunks = Manifest::chunk_count(size, opts.chunk_size);
    if chunks > stream::MAX_CHUNKS as u64 {
        let most = |chunk: u32| (stream::MAX_CHUNKS as u64 * chunk as u64) >> 30;
        bail!(
            "{} is too large for chunks of {} KiB (at most {} GiB; --chunk-size {}KiB allows {} GiB)",
            opts.file.display(),
            opts.chunk_size / 1024,
            most(opts.chunk_size),
            stream::MAX_CHUNK_SIZE / 1024,
            most(stream::MAX_CHUNK_SIZE)
        );
    }
    let path = opts.file.clone();
    let info = tokio::task::spawn_blocking(move || probe::probe(&path))
        .await?
        .map_err(|e| eyre!("{} is not a media file ffmpeg can read: {e}", opts.file.display()))?;
    let name = opts.file.file_name().map(|n| n.to_string_lossy().chars().take(stream::MAX_TEXT).collect()).unwrap_or_default();
    let identity = opts.identity.clone();
    let secret = tokio::task::spawn_blocking(move || identity::load(&identity)).await??;
    // The server inside this host opens this host's room and no other.
    opts.server_cfg.only_room = Some(secret.host_key().room_id(opts.room.as_deref()));
    // Checking what this FFmpeg can transcode and opening the signaling side (a STUN probe, a
    // router's port mapping) both take a moment: at once.
    let (levels, rdv) = tokio::join!(offered_levels(&opts.file, size, info.duration_ms, &events), crate::engine::host::rendezvous::open(&opts, &events));
    let manifest = Manifest {
        name,
        size,
        chunk_size: opts.chunk_size,
        chunks: chunks as u32,
        duration_ms: info.duration_ms,
        container: info.container.chars().take(stream::MAX_TEXT).collect(),
        codecs: info.codecs.into_iter().take(16).collect(),
        levels,
        // Fresh each run: a relay cannot replay what this room's host signed in another run.
        stream: rand::random(),
    };

    // The signaling server, external or embedded, and the links to it.
    let mut rdv = rdv?;
    // The router's port mapping goes however the room ends, errors included.
    let mapping = rdv.mapping.take();
    let result = host_room(opts, secret, file, manifest, rdv, events, commands).await;
    if let Some(m) = mapping {
        m.remove().await;
    }
    result
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

/// The room itself, from creating it on the signaling server to the end.
async fn host_room(
    opts: HostOptions,
    secret: crate::protocol::identity::HostSecret,
    file: Arc<File>,
    manifest: Manifest,
    rdv: crate::engine::host::rendezvous::Rendezvous,
    events: mpsc::UnboundedSender<Event>,
    commands: mpsc::UnboundedReceiver<Command>,
) -> Result<()> {
    let (_server, url, signal_tls) = (rdv.server, rdv.url, rdv.tls);
    let host_key = Arc::new(secret.host_key());
    let key = secret.room_key(opts.room.as_deref());
    let room = host_key.room_id(opts.room.as_deref());
    let (bans, banned) = room_bans(&opts.identity, &room).await?;
    let claim = Arc::new(RoomClaim { room: room.clone(), join_token: key.join_token(), name: opts.name.clone(), host_key: host_key.clone() });
    let signal = claim.open(&url, signal_tls.clone()).await?;
    let (link, links) = crate::engine::host::rendezvous::room_links(&rdv.links, &room, &key, signal_tls.is_some());
    let _ = events.send(Event::Room {
        link: link.to_string(),
        links,
        room: room.clone(),
        file: manifest.name.clone(),
        size: manifest.size,
        duration_ms: manifest.duration_ms,
    });
    let manifest = Arc::new(manifest);
    let cfg = HostConfig {
        room: room.clone(),
        name: opts.name.clone(),
        room_cfg: RoomConfig {
            wait_for_buffering: opts.playback.wait_for_buffering,
            host_only_control: opts.playback.host_only_control,
            duration_us: manifest.duration_ms.map(|d| d.saturating_mul(1000) as i64),
        },
        autoplay: opts.playback.autoplay,
        approve: opts.approve,
        upload_limit: opts.upload_limit,
        reconnect_signal: opts.server.is_some(),
        fallback: None,
        banned,
    };
    let mut core = HostCore::new(Instant::now(), crate::output::headless::now_ms(), manifest.clone(), cfg);
    let (http_state, http_state_rx) = watch::channel(core.state_message());
    let (http_hash, http_hash_rx) = watch::channel(None);
    // Read through in the background: the room opens at once, the hash follows.
    let hashing = tokio::task::spawn_blocking({
        let (path, host_key, room) = (opts.file.clone(), host_key.clone(), room.clone());
        move || file_hash(&path, &host_key, &room)
    });
    let fallback = crate::net::http::fallback_server::Room {
        room,
        key: key.clone(),
        file: opts.file.clone(),
        manifest: manifest.clone(),
        state: http_state_rx,
        hash: http_hash_rx,
        passes: Default::default(),
        clock: core.epoch(),
    };
    let (_http, shown, fallback) = start_fallback(opts.http, fallback, &link).await?;
    core.set_fallback(shown);
    // The loopback rule (DESIGN §3) follows the link: loopback only when only this machine
    // can reach the room.
    let ice = IceConfig::new(Reach::of_host(&link.host), opts.ice_addr.as_deref(), &opts.nat);
    let setup = peer_task::Setup { ice, key, host_key, room: claim.room.clone(), signal_tx: signal.tx.clone(), manifest, fallback };
    let io = driver::Io::new(file, &opts.file, setup, (url, signal_tls, claim), events, (http_state, http_hash))?.keeping_bans(bans);
    driver::drive(core, io, signal, commands, hashing).await
}

/// Where `room`'s bans are kept, and the keys banned there by earlier runs of its host.
async fn room_bans(identity: &Identity, room: &str) -> Result<(Option<PathBuf>, Vec<crate::protocol::guest::GuestId>)> {
    let Some(path) = crate::engine::bans::path(identity, room) else { return Ok((None, vec![])) };
    let banned = tokio::task::spawn_blocking({
        let path = path.clone();
        move || crate::engine::bans::load(&path)
    })
    .await??;
    if !banned.is_empty() {
        tracing::info!("{} banned from this room ({})", banned.len(), path.display());
    }
    Ok((Some(path), banned))
}

/// The whole file's SHA-256, signed for `room`: what each participant's `complete` is checked
/// against.
fn file_hash(path: &std::path::Path, host_key: &crate::protocol::identity::HostKey, room: &str) -> std::io::Result<stream::Message> {
    use sha2::Digest;
    use std::io::Read;
    let started = Instant::now();
    let mut f = File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match f.read(&mut buf)? {
            0 => break,
            n => hasher.update(&buf[..n]),
        }
    }
    let digest: [u8; 32] = hasher.finalize().into();
    tracing::info!("{} read through for its hash in {:.1} s", path.display(), started.elapsed().as_secs_f64());
    let sig = host_key.sign(crate::protocol::identity::Purpose::FileHash, &[room.as_bytes(), &digest]);
    Ok(stream::Message::FileHash { sha256: serde_bytes::ByteBuf::from(digest.to_vec()), sig })
}

/// The HTTPS fallback, when asked for (`--http`): the server, the address newcomers are told
/// before the offer, and what each is given with it (the certificate's hash, a pass).
async fn start_fallback(
    addr: Option<SocketAddr>,
    room: crate::net::http::fallback_server::Room,
    link: &Link,
) -> Result<(Option<HttpFallback>, Option<String>, Option<peer_task::FallbackIssuer>)> {
    let Some(addr) = addr else { return Ok((None, None, None)) };
    let id = room.room.clone();
    let passes = room.passes.clone();
    let (tls, cert) = crate::net::tls::self_signed_server()?;
    let server = crate::net::http::fallback_server::start(addr, room, tls).await.wrap_err_with(|| format!("cannot listen on {addr} for --http"))?;
    // Reachable where the link's host is, unless bound to one address.
    let host = if server.addr.ip().is_unspecified() { link.host.clone() } else { server.addr.ip().to_string() };
    let shown = Link { host, port: server.addr.port(), ..link.clone() }.authority();
    tracing::info!("HTTPS fallback for room {id} at {shown}");
    let issuer = peer_task::FallbackIssuer { cert: hex::encode(cert), passes };
    Ok((Some(server), Some(shown), Some(issuer)))
}
