//! The host's driver: IO in, [`HostCore`] decides, IO out. It waits on signaling, the peer
//! tasks, commands, chunk reads and the core's next deadline; whatever happens goes into the
//! core with the time, and the core's outputs are carried out without waiting on anyone
//! (queues are `try_send`; chunk reads go to reader threads and a signaling reconnection runs
//! as its own task, each reporting back).

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use color_eyre::eyre::Result;
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use super::chunks::{Chunk, Chunks};
use super::hashes::{HashJob, Hashed, Hasher, Signer};
use super::peer_task::{self, Newcomer, PeerEvent, PeerHandle, Setup};
use super::reads::ReadDone;
use super::rendezvous::RoomClaim;
use crate::core::host::{HostCore, HostOutput};
use crate::engine::host::transcoders::Renditions;
use crate::engine::sleep_until_opt;
use crate::engine::{Command, Event};
use crate::net::signal_client::SignalClient;
use crate::protocol::auth::SetupAuth;
use crate::protocol::guest::GuestId;
use crate::protocol::signal::{ClientMsg, PeerId, ServerMsg, SignalPayload};
use crate::protocol::stream::{Message, Space};

/// How long a signaling reconnection may take before it counts as failed.
const RECONNECT_WITHIN: Duration = Duration::from_secs(3);

/// One participant's tasks and queues.
struct PeerIo {
    task: tokio::task::JoinHandle<()>,
    /// Its answer and candidates, while it connects.
    answers: Option<mpsc::Sender<SignalPayload>>,
    /// Its queues, once connected.
    handle: Option<PeerHandle>,
    /// A goodbye (`StreamEnd`: kicked, banned) is queued to it: a close lets it go out first.
    goodbye: bool,
}

/// How long a close waits for a queued goodbye to go out.
const GOODBYE_WAIT: Duration = Duration::from_secs(1);

/// How long quitting waits for bans to reach the disk.
const BAN_WRITE_WAIT: Duration = Duration::from_secs(5);

/// Everything the driver does IO with.
pub(super) struct Io {
    chunks: Chunks,
    /// Hashes and signs each range of chunks the core serves for the first time.
    hasher: Hasher,
    peers: HashMap<PeerId, PeerIo>,
    setup: Setup,
    peer_tx: mpsc::UnboundedSender<PeerEvent>,
    peer_rx: mpsc::UnboundedReceiver<PeerEvent>,
    back_tx: mpsc::UnboundedSender<Option<SignalClient>>,
    back_rx: mpsc::UnboundedReceiver<Option<SignalClient>>,
    url: String,
    signal_tls: Option<Arc<rustls::ClientConfig>>,
    claim: Arc<RoomClaim>,
    events: mpsc::UnboundedSender<Event>,
    http_state: watch::Sender<Message>,
    /// The file's signed hash for the HTTP fallback, once known.
    http_hash: watch::Sender<Option<Message>>,
    /// The host's id of each participant the server has now, by the server's id (which a
    /// restarted server hands out again from 1): to take the pass of one that leaves.
    local_of: HashMap<PeerId, PeerId>,
    /// Where this room's bans are written down (none: they last this run).
    bans: Option<PathBuf>,
    /// Bans being written down: the host waits for them before it ends.
    ban_writes: tokio::task::JoinSet<()>,
}

/// The host's reading of the whole file for its hash (see `file_hash`).
pub(super) type Hashing = tokio::task::JoinHandle<std::io::Result<Message>>;

/// Runs the room until the core says it is over.
pub(super) async fn drive(
    mut core: HostCore,
    mut io: Io,
    signal: SignalClient,
    mut commands: mpsc::UnboundedReceiver<Command>,
    hashing: Hashing,
) -> Result<()> {
    let mut signal = Some(signal);
    let mut hashing = Some(hashing);
    loop {
        while let Some(out) = core.poll_output() {
            if let HostOutput::Quit = out {
                io.bans_written().await;
                io.close_all().await;
                return Ok(());
            }
            io.apply(&mut core, out);
        }
        core.handle_wall_clock(Instant::now(), crate::output::headless::now_ms());
        let deadline = core.poll_timeout().map(|(t, _)| t);
        tokio::select! {
            msg = recv_signal(&mut signal) => match msg {
                Some(m) => {
                    io.revoke_on_leave(&m);
                    core.handle_signal(Instant::now(), m)
                }
                None => {
                    signal = None;
                    core.handle_signal_closed(Instant::now());
                }
            },
            Some(ev) = io.peer_rx.recv() => io.peer_event(&mut core, ev),
            Some(done) = io.chunks.next() => io.chunk_read(&mut core, done),
            Some(hashed) = io.hasher.next() => match hashed {
                Hashed::Batch(b) => core.handle_hash_batch(Instant::now(), b),
                Hashed::Failed { space, first, error } => {
                    tracing::warn!("hashing chunks {first}.. of space {space}: {error}");
                    core.handle_hash_failed(Instant::now(), space, first);
                }
            },
            Some(back) = io.back_rx.recv() => {
                let ok = back.is_some();
                if let Some(c) = back {
                    io.setup.signal_tx = c.tx.clone();
                    signal = Some(c);
                    // A new connection: the server's ids start again.
                    io.local_of.clear();
                }
                core.handle_signal_back(Instant::now(), ok);
            }
            cmd = commands.recv() => core.handle_command(Instant::now(), cmd.unwrap_or(Command::Quit)),
            hashed = wait_opt(&mut hashing) => {
                hashing = None;
                io.hashed(&mut core, hashed);
            }
            _ = sleep_until_opt(deadline) => core.handle_timeout(Instant::now()),
        }
    }
}

/// The hash's result, once; never after.
async fn wait_opt(hashing: &mut Option<Hashing>) -> Result<std::io::Result<Message>, tokio::task::JoinError> {
    match hashing {
        Some(h) => h.await,
        None => std::future::pending().await,
    }
}

async fn recv_signal(signal: &mut Option<SignalClient>) -> Option<ServerMsg> {
    match signal {
        Some(s) => s.rx.recv().await,
        None => std::future::pending().await,
    }
}

impl Io {
    pub(super) fn new(
        file: Arc<File>,
        input: &Path,
        setup: Setup,
        (url, signal_tls, claim): (String, Option<Arc<rustls::ClientConfig>>, Arc<RoomClaim>),
        events: mpsc::UnboundedSender<Event>,
        (http_state, http_hash): (watch::Sender<Message>, watch::Sender<Option<Message>>),
    ) -> std::io::Result<Io> {
        let (peer_tx, peer_rx) = mpsc::unbounded_channel();
        let (back_tx, back_rx) = mpsc::unbounded_channel();
        let chunks = Chunks::new(file, Renditions::new(input))?;
        let hasher = Hasher::start(Signer { key: setup.host_key.clone(), room: setup.room.clone(), stream: setup.manifest.stream })?;
        Ok(Io {
            chunks,
            hasher,
            peers: HashMap::new(),
            setup,
            peer_tx,
            peer_rx,
            back_tx,
            back_rx,
            url,
            signal_tls,
            claim,
            events,
            http_state,
            http_hash,
            local_of: HashMap::new(),
            bans: None,
            ban_writes: tokio::task::JoinSet::new(),
        })
    }

    /// Bans are written down at `bans` (the room's list), to hold for the room's life.
    pub(super) fn keeping_bans(self, bans: Option<PathBuf>) -> Io {
        Io { bans, ..self }
    }

    /// Writes a ban down, off the runtime; a failure leaves it in force for this run, and the
    /// host is told.
    fn keep_ban(&mut self, guest: GuestId, name: String) {
        let (Some(path), events) = (self.bans.clone(), self.events.clone()) else { return };
        while self.ban_writes.try_join_next().is_some() {}
        self.ban_writes.spawn_blocking(move || {
            if let Err(e) = crate::engine::bans::append(&path, &guest, &name) {
                tracing::warn!("{e}");
                let _ = events.send(Event::Error { message: format!("the ban on {name} holds until the host stops, not after: {e}") });
            }
        });
    }

    /// Waits (a while) for the bans being written down: a ban just before quitting holds too.
    async fn bans_written(&mut self) {
        let all = async { while self.ban_writes.join_next().await.is_some() {} };
        if tokio::time::timeout(BAN_WRITE_WAIT, all).await.is_err() {
            tracing::warn!("a ban is still being written down after {BAN_WRITE_WAIT:?}; quitting without it");
        }
    }

    /// The file's hash is known (or could not be had: participants then wait for it in vain,
    /// and are told why in the host's warning).
    fn hashed(&mut self, core: &mut HostCore, hashed: Result<std::io::Result<Message>, tokio::task::JoinError>) {
        match hashed {
            Ok(Ok(msg)) => {
                self.http_hash.send_replace(Some(msg.clone()));
                core.handle_file_hash(Instant::now(), msg);
            }
            Ok(Err(e)) => {
                core.handle_warning(Instant::now(), format!("cannot read the file through for its hash ({e}): participants cannot check their copies"))
            }
            Err(e) => core.handle_warning(Instant::now(), format!("the file's hash: {e}")),
        }
    }

    /// A participant that left the room takes its HTTPS fallback pass with it.
    fn revoke_on_leave(&mut self, msg: &ServerMsg) {
        if let ServerMsg::PeerLeft { peer, .. } = msg
            && let Some(local) = self.local_of.remove(peer)
            && let Some(fb) = &self.setup.fallback
        {
            fb.passes.revoke(local);
        }
    }

    /// What a peer task reports, into the core.
    fn peer_event(&mut self, core: &mut HostCore, ev: PeerEvent) {
        let now = Instant::now();
        match ev {
            PeerEvent::Connected { peer, handle } => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.answers = None;
                    p.handle = Some(handle);
                }
                core.handle_connected(now, peer);
            }
            PeerEvent::Control { peer, msg, permit } => {
                core.handle_control(now, peer, msg);
                // Handled: the participant may have one more waiting.
                drop(permit);
            }
            PeerEvent::Sent { peer, bytes } => core.handle_sent(now, peer, bytes),
            PeerEvent::Gone { peer, reason, violation: false } => core.handle_gone(now, peer, &reason),
            PeerEvent::Gone { peer, reason, violation: true } => core.handle_violation(now, peer, &reason),
            PeerEvent::Warning { message } => core.handle_warning(now, message),
        }
    }

    /// Carries out one output (never waits).
    fn apply(&mut self, core: &mut HostCore, out: HostOutput) {
        match out {
            HostOutput::Chunk { peer, space, index, offset, len } => {
                let connected = self.chunk_queue(peer).is_some();
                self.chunks.send(core, connected, Chunk { peer, space, index, offset, len })
            }
            HostOutput::Control { peer, msg } => self.send_control(peer, msg),
            HostOutput::Signal(msg) => {
                if self.setup.signal_tx.try_send(msg).is_err() {
                    tracing::warn!("signaling queue full or closed; a message to the server is lost");
                }
            }
            HostOutput::Admit { peer, to, name, nonce, guest, fallback } => {
                self.local_of.insert(to, peer);
                self.admit(peer, Newcomer { to, nonce, guest, fallback }, name)
            }
            HostOutput::Deny { to, nonce, guest, reason } => self.deny(to, nonce, guest, reason),
            HostOutput::ToSetup { peer, payload } => {
                if let Some(tx) = self.peers.get(&peer).and_then(|p| p.answers.as_ref()) {
                    let _ = tx.try_send(payload);
                }
            }
            HostOutput::Close { peer } => self.close(peer),
            HostOutput::Revoke { peer } => {
                if let Some(fb) = &self.setup.fallback {
                    fb.passes.revoke(peer);
                }
            }
            HostOutput::Ban { guest, name } => {
                if let Some(fb) = &self.setup.fallback {
                    fb.passes.revoke_guest(guest);
                }
                self.keep_ban(guest, name);
            }
            HostOutput::ReconnectSignal => self.reconnect_signal(),
            HostOutput::StartRendition { space, level, from_us, until_us } => {
                if let Err(reason) = self.chunks.renditions.start(space, &level, from_us, until_us) {
                    tracing::warn!("rendition {space}: {reason}");
                    core.handle_rendition_failed(Instant::now(), space, &reason);
                }
            }
            HostOutput::HashBatch { space, first, count, len } => self.hash(core, space, first, count, len),
            HostOutput::Introduce { link, offerer, answerer } => {
                let (stream, room) = (self.setup.manifest.stream, &self.setup.room);
                let (a, b) = crate::protocol::relay::introduce(&self.setup.host_key, room, &stream, link, (&offerer.1, &offerer.2), (&answerer.1, &answerer.2));
                self.send_control(offerer.0, Message::RelayIntro(a));
                self.send_control(answerer.0, Message::RelayIntro(b));
            }
            HostOutput::StopRendition { space } => self.chunks.renditions.stop(space),
            HostOutput::CheckRenditions(spaces) => {
                for (space, until) in spaces {
                    if let Some(p) = self.chunks.renditions.check(space, until) {
                        core.handle_rendition_progress(Instant::now(), space, p);
                    }
                }
            }
            HostOutput::HttpState(msg) => {
                self.http_state.send_replace(msg);
            }
            HostOutput::Event(ev) => {
                let _ = self.events.send(ev);
            }
            // Handled by `drive`.
            HostOutput::Quit => {}
        }
    }

    /// Hands a batch to the hashing thread; the core hears at once if it cannot be.
    fn hash(&self, core: &mut HostCore, space: Space, first: u32, count: u32, len: u64) {
        let chunk_size = self.setup.manifest.chunk_size;
        let Some(from) = self.chunks.file(space) else { return core.handle_hash_failed(Instant::now(), space, first) };
        let start = first as u64 * chunk_size as u64;
        let job = HashJob { space, first, count, range: (start, start + len), chunk_size, from };
        if self.hasher.submit(job).is_err() {
            tracing::warn!("the hashing thread is behind; chunks {first}.. of space {space} are hashed later");
            core.handle_hash_failed(Instant::now(), space, first);
        }
    }

    /// A participant's chunk queue, once it is connected.
    fn chunk_queue(&self, peer: PeerId) -> Option<&mpsc::Sender<bytes::BytesMut>> {
        self.peers.get(&peer).and_then(|p| p.handle.as_ref()).map(|h| &h.chunk_tx)
    }

    /// A chunk read for `done.peer` is done: into its queue.
    fn chunk_read(&self, core: &mut HostCore, done: ReadDone) {
        let queue = self.chunk_queue(done.peer);
        Chunks::done(core, done, queue);
    }

    fn send_control(&mut self, peer: PeerId, msg: Message) {
        let Some(p) = self.peers.get_mut(&peer) else { return };
        let Some(h) = p.handle.as_ref() else { return };
        let goodbye = matches!(msg, Message::StreamEnd { .. });
        if h.control_tx.try_send(msg).is_err() {
            tracing::warn!(peer, "control queue full; dropping a message");
        } else {
            p.goodbye |= goodbye;
        }
    }

    /// Starts connecting a participant: its task makes the offer.
    fn admit(&mut self, peer: PeerId, who: Newcomer, name: String) {
        let (answers_tx, answers_rx) = mpsc::channel(16);
        let span = tracing::info_span!("peer", id = peer, name = %name);
        let task = tokio::spawn(peer_task::peer_task(peer, who, self.setup.clone(), answers_rx, self.peer_tx.clone()).instrument(span));
        self.peers.insert(peer, PeerIo { task, answers: Some(answers_tx), handle: None, goodbye: false });
    }

    /// Tells a newcomer, signed, that it is not let in.
    fn deny(&self, to: PeerId, nonce: String, guest: GuestId, reason: String) {
        let setup = SetupAuth { room: self.setup.room.clone(), peer: to, nonce, guest };
        let sig = setup.sign_denied(&self.setup.host_key, &reason);
        let msg = ClientMsg::Signal { to, payload: SignalPayload::Denied { reason, sig } };
        if self.setup.signal_tx.try_send(msg).is_err() {
            tracing::warn!("signaling queue full or closed; a refusal is lost");
        }
    }

    /// Ends a participant's tasks; its link closes in the background.
    fn close(&mut self, peer: PeerId) {
        let Some(p) = self.peers.remove(&peer) else { return };
        let Some(h) = p.handle else { return p.task.abort() };
        tokio::spawn(async move {
            // The whole handle, not just the fields used: a chunk queue dropped here would end
            // the task at once, goodbye unsent.
            let h = h;
            if p.goodbye {
                // Its task ends once the goodbye is out (the participant then knows it was sent
                // away, rather than reconnecting as from a lost link), or is cut short.
                let _ = tokio::time::timeout(GOODBYE_WAIT, h.control_tx.closed()).await;
            }
            p.task.abort();
            h.link.close().await;
        });
    }

    /// Opens the same room on the server again, so the link stays good for newcomers.
    fn reconnect_signal(&self) {
        let (url, tls, claim, back) = (self.url.clone(), self.signal_tls.clone(), self.claim.clone(), self.back_tx.clone());
        tokio::spawn(async move {
            let again = match tokio::time::timeout(RECONNECT_WITHIN, claim.open(&url, tls)).await {
                Ok(Ok(c)) => Some(c),
                Ok(Err(e)) => {
                    tracing::info!("signaling server not taking the room back yet: {e}");
                    None
                }
                Err(_) => None,
            };
            let _ = back.send(again);
        });
    }

    /// The stream is over (everyone was sent `StreamEnd`): give the goodbyes a moment to
    /// leave, then close every link.
    async fn close_all(self) {
        let closing = self.peers.into_values().map(|p| async move {
            if let Some(h) = p.handle {
                let _ = tokio::time::timeout(Duration::from_millis(500), h.control_tx.closed()).await;
                h.link.close().await;
            }
            p.task.abort();
        });
        futures::future::join_all(closing).await;
    }
}
