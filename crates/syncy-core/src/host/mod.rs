//! The host as one sans-IO machine: every decision `syncy host` makes, composed from the core's
//! parts (scheduler, room clock, rendition plan, upload bucket, admission, back-off). The
//! driver (`engine::host` in the main crate) feeds it what happened — signaling messages, peer
//! events, commands, sends done — with the time, carries out its outputs (a chunk to read and
//! queue, a control message, an offer to start, a link to close) and sleeps until
//! [`HostCore::poll_timeout`]. Time comes in as `Instant`; host microseconds exist only on the
//! wire (the room clock, pongs).

mod admission;
mod control;
mod hashes;
mod moderation;
mod relayed;
mod renditions;
mod swarm;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use admission::{Admission, Newcomer};
pub(crate) use control::control_cost;
pub use renditions::RenditionProgress;
pub use swarm::{ELSEWHERE_WAIT, MAX_LINKS, SEED_AHEAD, TARGET_LINKS};

use crate::api::{Command, Event, PeerStats};
use crate::backoff::Backoff;
use crate::clock::Micros;
use crate::protocol::guest::GuestId;
use crate::protocol::signal::{ClientMsg, PeerId, ServerMsg, SignalPayload};
use crate::protocol::stream::{self, Manifest, Message, RosterEntry, Space};
use crate::rate::{Meter, TokenBucket};
use crate::renditions::{PlanConfig, RenditionPlan};
use crate::room::{HOLD_LIMIT, Origin, Room, RoomCommand, RoomConfig, RoomOutput};
use crate::scheduler::Scheduler;

/// Keys remembered as having been in the room, at most (past it, everyone counts as returning:
/// waited for, as before newcomers were let go).
const MAX_SEEN_GUESTS: usize = 65_536;
/// How often the host reports stats and sends everyone the roster.
pub const STATS_EVERY: Duration = Duration::from_secs(1);
/// How often running renditions are checked (progress, how far they may run).
pub const RENDITIONS_EVERY: Duration = Duration::from_millis(200);
/// Chunk sends queued per participant beyond the channel's own buffer.
pub const CHUNK_QUEUE: usize = 8;
/// Chunk reads out at once, for everyone together (TRUST-REVIEW #18): the driver reads off its
/// task, and a disk that falls behind holds chunks back here, in the scheduler's fair order,
/// rather than in a queue of reads. Reads from the page cache take microseconds, so only a
/// slow disk comes near it.
pub const MAX_READS: usize = 64;
/// A participant's control budget, in messages a second (TRUST-REVIEW #11): past it (and the
/// burst) it is let go. What an honest one sends: a ping a second (eight 50 ms apart after a
/// connection), a report at least every 900 ms and on each change of its picture, a level or a
/// command now and then, and its requests, which carry read-ahead 64 chunks at a time. The
/// requests dominate: at the fastest the data channel has carried (490 MB/s, BENCHMARKS.md)
/// they are 117 a second in the default 64 KiB chunks, 469 in the smallest (16 KiB; measured
/// in the simulated room). At 100 a second with a burst of 400 that participant was let go
/// within two seconds; 1000 leaves twice the worst case.
pub const CONTROL_RATE: f64 = 1000.0;
/// The control budget's burst: two seconds of the rate, for a reconnection's catch-up (quick
/// pings, a report, the stores' requests at once).
pub const CONTROL_BURST: f64 = 2000.0;
/// Chunk indices a request or cancel carries per unit of the budget: the host's work grows
/// with them (a `Request` may name 4096), and an honest read-ahead batch is 64 (one unit).
pub const INDICES_PER_UNIT: usize = 64;
/// A participant's play, pause and seek commands, a second (TRUST-REVIEW #19): each seek makes
/// everyone fetch and wait, so one every two seconds in the long run (a room plays again
/// within a second of a seek in the simulated room, so it still gets to play) ...
pub const COMMAND_RATE: f64 = 0.5;
/// ... after a burst of five (a few taps of the seek key in a row). The host's own commands
/// are never limited.
pub const COMMAND_BURST: f64 = 5.0;
/// How far past the room's position a participant's reported position is believed. An honest
/// one plays within the follower's dead band (15 ms) of the room, and its report is a round
/// trip old; ten seconds is far beyond both and still a third of how far renditions run ahead
/// (`PlanConfig::ahead_us`).
pub const POSITION_SLACK: Duration = Duration::from_secs(10);

/// How the host core runs.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// The room id the server gave.
    pub room: String,
    /// The host's display name.
    pub name: String,
    /// Room policy (buffering, control, duration).
    pub room_cfg: RoomConfig,
    /// Start playing at once.
    pub autoplay: bool,
    /// Newcomers wait for `approve NAME`.
    pub approve: bool,
    /// Upload limit for the whole room, bytes per second (0: none).
    pub upload_limit: u64,
    /// The signaling server is external: try it again when it is lost (an embedded one
    /// going away is not coming back).
    pub reconnect_signal: bool,
    /// The HTTP fallback's address, told to each newcomer before the offer.
    pub fallback: Option<String>,
    /// Keys this room's host banned before (in earlier runs): turned away at the door.
    pub banned: Vec<GuestId>,
}

/// Why the core wants to wake (kept for tracing, as str0m's `Reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// The upload budget allows the next chunk.
    Upload,
    /// The media ends: the room stops there.
    EndOfMedia,
    /// A participant has held the room long enough to be let go (`room::HOLD_LIMIT`).
    HeldRoom,
    /// Stats and the roster are due.
    Stats,
    /// Running renditions are due a check.
    Renditions,
    /// Time to try the lost signaling server again.
    SignalRetry,
    /// The relay swarm's pass (introductions, seeds).
    Swarm,
}

/// What the driver must do.
// Outputs are drained as they come (a handful at a time): their size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub enum HostOutput {
    /// Read `len` bytes at `offset` of `space` (the file, or a rendition) and queue them to
    /// `peer` as chunk `index`. Report back with `handle_queued` once queued (and then
    /// `handle_sent` once it went out), or with `handle_unsent` if it never is.
    Chunk {
        /// To whom.
        peer: PeerId,
        /// The original or a rendition.
        space: Space,
        /// Chunk index.
        index: u32,
        /// Byte offset in that space.
        offset: u64,
        /// Its length.
        len: usize,
    },
    /// Queue a control message to a connected participant (never wait for room).
    Control {
        /// To whom.
        peer: PeerId,
        /// What.
        msg: Message,
    },
    /// Send to the signaling server.
    Signal(ClientMsg),
    /// Start connecting `peer` (`to`: the server's id for it): tell it the fallback address
    /// if there is one (before the offer, so it knows where to turn if WebRTC fails), then
    /// make the offer; both signed over its `nonce`.
    Admit {
        /// The host's id.
        peer: PeerId,
        /// The server's id.
        to: PeerId,
        /// Its name.
        name: String,
        /// Its `Join` nonce.
        nonce: String,
        /// Its `Join` key: its answer must be signed with it.
        guest: GuestId,
        /// The HTTP fallback's address.
        fallback: Option<String>,
    },
    /// Turn away the newcomer the server knows as `to` with `reason`, signed over its `nonce`
    /// and key (so a server cannot fake a refusal).
    Deny {
        /// The server's id.
        to: PeerId,
        /// Its `Join` nonce.
        nonce: String,
        /// Its `Join` key.
        guest: GuestId,
        /// Why, for its user.
        reason: String,
    },
    /// Relayed from signaling to `peer`'s connection set-up (its answer, say).
    ToSetup {
        /// Whose.
        peer: PeerId,
        /// What.
        payload: SignalPayload,
    },
    /// Close `peer`'s link and end its tasks.
    Close {
        /// Whose.
        peer: PeerId,
    },
    /// The host sent `peer` away (kicked, or let go for flooding): whatever lets it in besides
    /// its link (the HTTPS fallback's pass) goes too. (A link that merely failed keeps it: the
    /// fallback is for exactly that.)
    Revoke {
        /// Whose.
        peer: PeerId,
    },
    /// The host banned `guest` (known as `name`): every fallback pass given to that key goes,
    /// whichever connection it came with, and the ban is written down, to hold for the room's
    /// life (across restarts of the host; `HostConfig::banned` brings it back).
    Ban {
        /// The key.
        guest: GuestId,
        /// What it called itself, for whoever reads the list.
        name: String,
    },
    /// Connect to the signaling server again and take the room back (a `Create` signed for
    /// the new connection); say how it went with `handle_signal_back`.
    ReconnectSignal,
    /// Start a transcoder; a failure to start comes back as `handle_rendition_failed`.
    StartRendition {
        /// Into which space.
        space: Space,
        /// Which level.
        level: String,
        /// From where, room µs.
        from_us: u64,
        /// How far it may run at first, room µs.
        until_us: u64,
    },
    /// Read chunks `first..first + count` of `space`, hash each (SHA-256), sign the hashes
    /// with the host key (`protocol::hashes::HashBatch::sign`) and hand them back with
    /// `handle_hash_batch` (or `handle_hash_failed`). Off the driver's task: chunk reads never
    /// wait for it.
    HashBatch {
        /// The original or a rendition.
        space: Space,
        /// The batch's first chunk.
        first: u32,
        /// How many chunks (the whole batch, or as far as a growing rendition goes).
        count: u32,
        /// Their bytes together (from chunk `first`'s offset on).
        len: u64,
    },
    /// Introduce two relaying participants: sign the introductions
    /// (`protocol::relay::introduce`, offerer first) and send each its own on its control
    /// channel.
    Introduce {
        /// The link's id.
        link: u32,
        /// Who writes the offer: id, key, name.
        offerer: (PeerId, GuestId, String),
        /// Who answers.
        answerer: (PeerId, GuestId, String),
    },
    /// Stop a transcoder and drop its bytes.
    StopRendition {
        /// Which.
        space: Space,
    },
    /// Let these transcoders run until these positions and report each one's progress with
    /// `handle_rendition_progress`.
    CheckRenditions(Vec<(Space, Option<u64>)>),
    /// The room's clock for the HTTP fallback.
    HttpState(Message),
    /// Report this.
    Event(Event),
    /// The room is over (everyone was sent `StreamEnd`): close every link and stop.
    Quit,
}

/// One participant, connecting or connected.
#[derive(Debug)]
struct Peer {
    name: String,
    /// Its key: what a ban names.
    guest: GuestId,
    connected: bool,
    up: Meter,
    rtt_ms: Option<u32>,
    buffered_bytes: u64,
    position_ms: u64,
    drift_ms: Option<i64>,
    buffering: bool,
    /// Paces its `Level` requests: a rendition costs the host a transcoder.
    level_asks: TokenBucket,
    /// Its control messages (see [`CONTROL_RATE`]).
    control: TokenBucket,
    /// Its play, pause and seek commands (see [`COMMAND_RATE`]).
    commands: TokenBucket,
}

impl Peer {
    fn new(name: String, guest: GuestId) -> Self {
        Peer {
            name,
            guest,
            connected: false,
            up: Meter::new(Duration::from_secs(1)),
            rtt_ms: None,
            buffered_bytes: 0,
            position_ms: 0,
            drift_ms: None,
            buffering: false,
            level_asks: TokenBucket::new(2.0, 8.0),
            control: TokenBucket::new(CONTROL_RATE, CONTROL_BURST),
            commands: TokenBucket::new(COMMAND_RATE, COMMAND_BURST),
        }
    }
}

/// The signaling side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signaling {
    Open,
    /// Lost; tried again at this time (`None` while an attempt is under way).
    Down(Option<Instant>),
    /// Lost for good (an embedded server).
    Gone,
}

/// The host.
pub struct HostCore {
    cfg: HostConfig,
    manifest: Arc<Manifest>,
    /// Host µs count from here.
    epoch: Instant,
    /// Unix ms at `epoch` (events carry wall time).
    wall_ms: f64,
    now: Instant,
    peers: BTreeMap<PeerId, Peer>,
    admission: Admission,
    /// Everyone let in (offered a link, and the fallback's pass) while it stays in the
    /// signaling room, by id: its name and key. One whose WebRTC link failed may watch over
    /// the HTTPS fallback, out of `peers`; kick and ban must still reach it.
    admitted: BTreeMap<PeerId, (String, GuestId)>,
    scheduler: Scheduler,
    /// `Chunk` outputs not yet reported queued or unsent (at most [`MAX_READS`]).
    reads: usize,
    room: Room,
    plan: RenditionPlan,
    /// Last progress told to each rendition's viewers.
    announced: BTreeMap<Space, (Option<u64>, u64, bool)>,
    upload: TokenBucket,
    total_up: Meter,
    signaling: Signaling,
    signal_backoff: Backoff,
    next_stats: Instant,
    next_renditions: Option<Instant>,
    warned: HashSet<String>,
    /// The signed hash of the whole file, once the driver has read it through.
    file_hash: Option<Message>,
    /// The signed hashes of each chunk served.
    hashes: hashes::Hashes,
    /// Who relays to whom, and what the host seeds.
    swarm: swarm::Swarm,
    /// Every key that has been in the room (a link back after a drop is no newcomer).
    seen_guests: HashSet<GuestId>,
    ended: bool,
    out: VecDeque<HostOutput>,
}

impl HostCore {
    /// A room at 0:00 for `manifest`; `wall_ms` is the Unix time in ms at `now`.
    pub fn new(now: Instant, wall_ms: f64, manifest: Arc<Manifest>, cfg: HostConfig) -> Self {
        // The room's upload budget; the scheduler's round robin shares it fairly. A tenth of a
        // second of credit at most, so an idle moment does not turn into a burst.
        let limit = cfg.upload_limit as f64;
        let upload = TokenBucket::new(limit, (limit * 0.1).max(2.0 * manifest.chunk_size as f64));
        let levels = manifest.levels.iter().filter(|l| *l != "high").cloned().collect();
        let mut core = HostCore {
            admission: Admission::with_bans(cfg.approve, cfg.banned.iter().copied()),
            admitted: BTreeMap::new(),
            room: Room::new(0, cfg.room_cfg, cfg.autoplay),
            plan: RenditionPlan::new(levels, PlanConfig::default()),
            manifest,
            epoch: now,
            wall_ms,
            now,
            peers: BTreeMap::new(),
            scheduler: Scheduler::new(CHUNK_QUEUE),
            reads: 0,
            announced: BTreeMap::new(),
            upload,
            total_up: Meter::new(Duration::from_secs(1)),
            signaling: Signaling::Open,
            signal_backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(2)),
            // The first stats at once, as the old interval ticked.
            next_stats: now,
            next_renditions: None,
            warned: HashSet::new(),
            file_hash: None,
            hashes: hashes::Hashes::default(),
            swarm: swarm::Swarm::default(),
            seen_guests: HashSet::new(),
            ended: false,
            out: VecDeque::new(),
            cfg,
        };
        core.publish_state(vec![]);
        core
    }

    /// The wall clock (Unix ms) at `now`: events stamped with wall time follow it (the driver
    /// says so now and then; NTP may move the clock while a room runs).
    pub fn handle_wall_clock(&mut self, now: Instant, unix_ms: f64) {
        self.wall_ms = unix_ms - now.saturating_duration_since(self.epoch).as_secs_f64() * 1000.0;
    }

    /// Where the HTTP fallback listens (known once it is up, before anyone joins).
    pub fn set_fallback(&mut self, addr: Option<String>) {
        self.cfg.fallback = addr;
    }

    /// The instant host µs count from (the HTTP fallback states times against it).
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    /// The room's media position at `now`, µs.
    pub fn room_position(&self, now: Instant) -> Micros {
        self.room.position(self.host_us(now))
    }

    /// The room's clock as the wire carries it.
    pub fn state_message(&self) -> Message {
        self.state_with(self.names(&self.room.waiting()))
    }

    /// The next thing to do.
    pub fn poll_output(&mut self) -> Option<HostOutput> {
        self.out.pop_front()
    }

    /// When to call [`HostCore::handle_timeout`] next, and why.
    pub fn poll_timeout(&self) -> Option<(Instant, Timer)> {
        if self.ended {
            return None;
        }
        let signal_retry = match self.signaling {
            Signaling::Down(at) => at,
            _ => None,
        };
        [
            self.upload.ready_at(self.now).map(|t| (t, Timer::Upload)),
            self.room.end_at().map(|us| (self.instant(us), Timer::EndOfMedia)),
            self.room.let_go_at().map(|us| (self.instant(us), Timer::HeldRoom)),
            Some((self.next_stats, Timer::Stats)),
            self.next_renditions.map(|t| (t, Timer::Renditions)),
            signal_retry.map(|t| (t, Timer::SignalRetry)),
            self.swarm_timeout().map(|t| (t, Timer::Swarm)),
        ]
        .into_iter()
        .flatten()
        .min_by_key(|(t, _)| *t)
    }

    /// Time passed: whatever is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        if self.ended {
            return;
        }
        if self.room.poll_timeout().is_some_and(|us| self.instant(us) <= now) {
            self.room.handle_timeout(self.host_us(now));
        }
        if now >= self.next_stats {
            self.next_stats = now + STATS_EVERY;
            self.stats(now);
        }
        if self.next_renditions.is_some_and(|t| t <= now) {
            self.next_renditions = Some(now + RENDITIONS_EVERY);
            let spaces = self.plan.spaces().map(|s| (s, self.plan.run_until(s))).collect();
            self.out.push_back(HostOutput::CheckRenditions(spaces));
        }
        if let Signaling::Down(Some(at)) = self.signaling
            && at <= now
        {
            self.signaling = Signaling::Down(None);
            self.out.push_back(HostOutput::ReconnectSignal);
        }
        self.swarm_pass(now);
        self.settle(now);
    }

    /// A message from the signaling server.
    pub fn handle_signal(&mut self, now: Instant, msg: ServerMsg) {
        self.now = now;
        match msg {
            ServerMsg::PeerJoined { peer: id, name, nonce, key, proof } => {
                let here = |p: &PeerId| self.peers.contains_key(p) || self.admitted.contains_key(p) || self.admission.knocker(*p).is_some();
                let Some(peer) = self.admission.local(id).filter(|p| !here(p)) else {
                    tracing::warn!(id, "ignoring a newcomer the server numbered out of range or as someone already here");
                    return self.settle(now);
                };
                // Only the key's holder knocks under it, and under the name it signed: nobody
                // can get someone else's key banned by misbehaving under it.
                let proved = |g: &GuestId| crate::protocol::auth::valid_nonce(&nonce) && g.verify_join(&self.cfg.room, &nonce, &name, &proof);
                let Some(guest) = GuestId::from_hex(&key).filter(proved) else {
                    tracing::warn!(peer, "ignoring a newcomer whose key or proof does not hold");
                    return self.settle(now);
                };
                // Someone's join seen on the wire and sent again is not that someone.
                if !self.admission.first_join(guest, &nonce) {
                    tracing::warn!(peer, "ignoring a join seen before");
                    return self.settle(now);
                }
                self.newcomer(Newcomer { peer, name, nonce, guest });
            }
            ServerMsg::Signal { from, payload } => {
                let Some(peer) = self.admission.local(from) else { return self.settle(now) };
                // Only a connection being set up takes answers and candidates.
                if self.peers.get(&peer).is_some_and(|p| !p.connected) {
                    self.out.push_back(HostOutput::ToSetup { peer, payload });
                }
            }
            ServerMsg::PeerLeft { peer: id, name } => {
                let Some(peer) = self.admission.local(id) else { return self.settle(now) };
                self.admitted.remove(&peer);
                if self.admission.left(peer) {
                    self.event(Event::PeerLeft { peer, name, reason: "left before being let in".into() });
                }
                // Participants stay on signaling while they watch, so leaving it means they
                // quit or died; do not wait for ICE to time out.
                self.remove_peer(now, peer, "left the room", true);
            }
            ServerMsg::Error { message, .. } => tracing::warn!("signaling server: {message}"),
            other => tracing::debug!("ignoring {other:?}"),
        }
        self.settle(now);
    }

    /// The signaling connection closed.
    pub fn handle_signal_closed(&mut self, now: Instant) {
        self.now = now;
        self.admission.lost();
        if self.cfg.reconnect_signal {
            tracing::warn!("signaling connection closed; connected participants keep streaming; reconnecting");
            self.event(Event::Error { message: "signaling connection lost: connected participants keep streaming; new ones can join once it is back".into() });
            self.signaling = Signaling::Down(self.signal_backoff.failed(now));
        } else {
            tracing::warn!("signaling connection closed; connected participants keep streaming, new ones cannot join");
            self.event(Event::Error { message: "signaling connection lost: no new participants can join".into() });
            self.signaling = Signaling::Gone;
        }
        self.settle(now);
    }

    /// How the attempt asked for by [`HostOutput::ReconnectSignal`] went.
    pub fn handle_signal_back(&mut self, now: Instant, ok: bool) {
        self.now = now;
        if ok {
            tracing::info!("signaling connection back: room {} is open to newcomers again", self.cfg.room);
            self.signaling = Signaling::Open;
            self.signal_backoff.reset();
            self.admission.reconnected();
            // Their ids were the old connection's: no `PeerLeft` will come for them.
            self.admitted.clear();
        } else {
            self.signaling = Signaling::Down(self.signal_backoff.failed(now));
        }
        self.settle(now);
    }

    /// The file's hash, signed (a `Message::FileHash`): to everyone connected now, and to each
    /// newcomer with the room's clock.
    pub fn handle_file_hash(&mut self, now: Instant, msg: Message) {
        self.now = now;
        for (&peer, p) in &self.peers {
            if p.connected {
                self.out.push_back(HostOutput::Control { peer, msg: msg.clone() });
            }
        }
        self.file_hash = Some(msg);
    }

    /// The file's signed hash, once known (the HTTP fallback hands it out too).
    pub fn file_hash(&self) -> Option<&Message> {
        self.file_hash.as_ref()
    }

    /// `peer`'s channels are open (after hello and manifest went out).
    pub fn handle_connected(&mut self, now: Instant, peer: PeerId) {
        self.now = now;
        let state = self.state_message();
        match self.peers.get_mut(&peer) {
            Some(p) if !p.connected => {
                p.connected = true;
                let (name, guest, guest_key) = (p.name.clone(), p.guest.fingerprint(), p.guest);
                // The newcomer learns the room's clock right away: a late joiner starts where
                // the room is.
                self.out.push_back(HostOutput::Control { peer, msg: state });
                if let Some(hash) = &self.file_hash {
                    self.out.push_back(HostOutput::Control { peer, msg: hash.clone() });
                }
                self.scheduler.add_peer(peer);
                // One back after its link dropped is no newcomer (see `Room::add_peer_as`); and
                // only a room where participants relay (many, joining all the time) lets a
                // newcomer join without holding everyone: elsewhere the room waits for its first
                // picture, so it starts in step.
                let new_key = self.seen_guests.len() < MAX_SEEN_GUESTS && self.seen_guests.insert(guest_key);
                self.room.add_peer_as(peer, !new_key || !self.swarm.has_members());
                self.event(Event::PeerJoined { peer, name, guest });
            }
            // Left while its link came up.
            _ => self.out.push_back(HostOutput::Close { peer }),
        }
        self.settle(now);
    }

    /// `peer`'s connection failed or ended.
    pub fn handle_gone(&mut self, now: Instant, peer: PeerId, reason: &str) {
        self.now = now;
        self.remove_peer(now, peer, reason, false);
        self.settle(now);
    }

    /// `peer`'s link was closed because it broke the protocol: gone, and whatever else lets
    /// it in (the HTTPS fallback's pass) goes too.
    pub fn handle_violation(&mut self, now: Instant, peer: PeerId, reason: &str) {
        self.revoke(peer);
        self.handle_gone(now, peer, reason);
    }

    /// `bytes` of a chunk to `peer` went out.
    pub fn handle_sent(&mut self, now: Instant, peer: PeerId, bytes: usize) {
        self.now = now;
        self.scheduler.handle_sent(peer);
        self.total_up.record(now, bytes as u64);
        if let Some(p) = self.peers.get_mut(&peer) {
            p.up.record(now, bytes as u64);
        }
        self.settle(now);
    }

    /// A chunk was read and queued to its participant: the read is over (`handle_sent`
    /// follows once it went out).
    pub fn handle_queued(&mut self, now: Instant) {
        self.now = now;
        self.reads = self.reads.saturating_sub(1);
        self.settle(now);
    }

    /// A chunk for `peer` could not be read or queued (its tasks are gone, or the disk
    /// failed: what follows says).
    pub fn handle_unsent(&mut self, now: Instant, peer: PeerId) {
        self.now = now;
        self.reads = self.reads.saturating_sub(1);
        self.scheduler.handle_sent(peer);
        self.settle(now);
    }

    /// Something the user should know that does not stop anyone (said once each: every
    /// newcomer's set-up would say the same).
    pub fn handle_warning(&mut self, now: Instant, message: String) {
        self.now = now;
        if self.warned.insert(message.clone()) {
            self.event(Event::Warning { message });
        }
    }

    /// A command from the host's user.
    pub fn handle_command(&mut self, now: Instant, cmd: Command) {
        self.now = now;
        let room_cmd = match cmd {
            Command::Quit => return self.quit(),
            Command::Approve(who) => return self.approve(now, &who),
            Command::Deny(who) => return self.deny(&who),
            Command::Kick(who) => return self.kick(now, &who),
            Command::Ban(who) => return self.ban(now, &who),
            Command::DownloadLimit(_) => {
                return self.event(Event::Error { message: "download-limit is for participants; the host has --upload-limit".into() });
            }
            Command::Quality(level) => {
                let offered = self.manifest.levels.join(", ");
                let message =
                    format!("quality {level}: each participant picks its own level (syncy join --quality, or its quality command); this room offers {offered}");
                return self.event(Event::Error { message });
            }
            Command::Play => RoomCommand::Play,
            Command::Pause => RoomCommand::Pause,
            Command::SeekTo(s) => RoomCommand::SeekTo((s * 1e6) as Micros),
            Command::SeekBy(s) => RoomCommand::SeekBy((s * 1e6) as Micros),
        };
        // The host is never refused.
        let _ = self.room.handle_command(self.host_us(now), Origin::Host, room_cmd);
        self.settle(now);
    }

    fn quit(&mut self) {
        for (&peer, _) in self.peers.iter().filter(|(_, p)| p.connected) {
            self.out.push_back(HostOutput::Control { peer, msg: Message::StreamEnd { reason: "the host ended the stream".into() } });
        }
        self.ended = true;
        self.out.push_back(HostOutput::Quit);
    }

    /// Starts connecting a participant: its set-up makes the offer.
    fn admit(&mut self, newcomer: Newcomer) {
        let Newcomer { peer, name, nonce, guest } = newcomer;
        let to = self.admission.remote(peer);
        self.out.push_back(HostOutput::Admit { peer, to, name: name.clone(), nonce, guest, fallback: self.cfg.fallback.clone() });
        self.admitted.insert(peer, (name.clone(), guest));
        self.peers.insert(peer, Peer::new(name, guest));
    }

    /// `left`: it left the room (rather than failed); only a failure before connecting is
    /// reported.
    fn remove_peer(&mut self, now: Instant, peer: PeerId, reason: &str, left: bool) {
        self.scheduler.remove_peer(peer);
        self.swarm_remove(peer);
        if self.cfg.fallback.is_none() {
            // No fallback to watch over: one without a link is nobody to kick or ban.
            self.admitted.remove(&peer);
        }
        if let Some(p) = self.peers.remove(&peer) {
            self.out.push_back(HostOutput::Close { peer });
            if p.connected {
                tracing::info!(peer, "participant {} gone: {reason}", p.name);
                self.event(Event::PeerLeft { peer, name: p.name, reason: reason.to_string() });
            } else if left {
                tracing::info!(peer, "participant {} left before connecting", p.name);
            } else {
                // A refused or failed connection (a forged answer lands here) is worth telling.
                tracing::warn!(peer, "participant {} could not connect: {reason}", p.name);
                self.event(Event::Error { message: format!("{} could not connect: {reason}", p.name) });
            }
        }
        self.room.remove_peer(self.host_us(now), peer);
        self.plan.remove_peer(peer);
    }

    /// After every input: what the room and the plan decided, then the chunks the upload
    /// budget lets go.
    fn settle(&mut self, now: Instant) {
        while let Some(out) = self.room.poll_output() {
            match out {
                RoomOutput::State { waiting, .. } => {
                    let names = self.names(&waiting);
                    self.publish_state(names);
                }
                RoomOutput::LetGo { peer } => self.let_go(peer),
            }
        }
        self.apply_plan();
        self.scheduler.set_holding(self.room.holding());
        self.pump(now);
    }

    /// `peer` held the room too long: the room plays on without it; the host's user and the
    /// participant hear why.
    fn let_go(&mut self, peer: PeerId) {
        let name = self.names(&[peer]).remove(0);
        let secs = HOLD_LIMIT / 1_000_000;
        tracing::info!(peer, "{name} held the room {secs} s: playing on without it");
        self.event(Event::Warning { message: format!("the room waited {secs} s for {name}; it plays on, and waits for them again once they catch up") });
        let text = format!("the room waited {secs} s for you and plays on; it waits for you again once you catch up");
        self.send(peer, Message::Notice { text });
    }

    /// Hands the scheduler's decisions to the driver, as far as the upload budget goes.
    fn pump(&mut self, now: Instant) {
        while self.upload.ready(now)
            && self.reads < MAX_READS
            && let Some(t) = self.scheduler.poll_transmit()
        {
            let connected = self.peers.get(&t.peer).is_some_and(|p| p.connected);
            // Checked when requested; a rendition stopped since has nothing to send.
            let Some(len) = self.chunk_len(t.space, t.index).filter(|_| connected) else {
                self.scheduler.handle_sent(t.peer);
                continue;
            };
            tracing::trace!(peer = t.peer, index = t.index, priority = ?t.priority, "sending chunk {} of space {}", t.index, t.space);
            self.upload.consume(now, len as f64);
            if t.space == stream::ORIGINAL {
                self.swarm.note_wired(t.index, now);
            }
            self.reads += 1;
            self.need_hashes(t.space, t.index);
            let offset = t.index as u64 * self.manifest.chunk_size as u64;
            self.out.push_back(HostOutput::Chunk { peer: t.peer, space: t.space, index: t.index, offset, len });
        }
    }

    /// Stats for the user, and the roster for everyone's view.
    fn stats(&mut self, now: Instant) {
        let mut list: Vec<PeerStats> = Vec::new();
        for (&peer, p) in self.peers.iter_mut().filter(|(_, p)| p.connected) {
            list.push(PeerStats {
                peer,
                name: p.name.clone(),
                up_bps: p.up.rate(now) as u64,
                rtt_ms: p.rtt_ms,
                buffered_bytes: p.buffered_bytes,
                position_ms: p.position_ms,
                quality: self.plan.level_of(peer).to_string(),
                sent_bytes: p.up.total(),
                drift_ms: p.drift_ms,
                buffering: p.buffering,
                relay_up_bps: self.swarm.relay_up_bps(peer),
            });
        }
        let entries = list.iter().take(stream::MAX_ROSTER);
        let roster = Message::Roster {
            peers: entries.map(|p| RosterEntry { name: p.name.clone(), buffering: p.buffering, drift_ms: p.drift_ms, level: p.quality.clone() }).collect(),
        };
        self.broadcast(&roster);
        let position_ms = (self.room.position(self.host_us(now)) / 1000) as u64;
        let (playing, up_bps) = (self.room.state().playing, self.total_up.rate(now) as u64);
        let (sent_bytes, relayed_bytes) = (self.total_up.total(), self.swarm.relayed.total());
        self.event(Event::HostStats { position_ms, playing, up_bps, sent_bytes, relayed_bytes, peers: list });
    }

    /// Sends the room's clock to every connected participant and reports it.
    fn publish_state(&mut self, waiting: Vec<String>) {
        let msg = self.state_with(waiting.clone());
        self.out.push_back(HostOutput::HttpState(msg.clone()));
        self.broadcast(&msg);
        let s = self.room.state();
        let t_ms = self.wall_ms_at(self.now);
        // The position at `t_ms` (a change of who the room waits for keeps the clock, and its
        // seq, but not the instant).
        let position_ms = (self.room.position(self.host_us(self.now)) / 1000).max(0) as u64;
        self.event(Event::State { playing: s.playing, position_ms, buffering: false, waiting, seq: s.seq, t_ms });
    }

    fn state_with(&self, waiting: Vec<String>) -> Message {
        let s = self.room.state();
        Message::State {
            playing: s.playing,
            position_us: s.position_us.max(0) as u64,
            at_host_us: s.at_host_us.max(0) as u64,
            rate_milli: s.rate_milli,
            seq: s.seq,
            waiting: waiting.into_iter().take(stream::MAX_WAITING).collect(),
        }
    }

    fn broadcast(&mut self, msg: &Message) {
        for (&peer, _) in self.peers.iter().filter(|(_, p)| p.connected) {
            self.out.push_back(HostOutput::Control { peer, msg: msg.clone() });
        }
    }

    fn send(&mut self, peer: PeerId, msg: Message) {
        if self.peers.get(&peer).is_some_and(|p| p.connected) {
            self.out.push_back(HostOutput::Control { peer, msg });
        }
    }

    /// Names for peer ids (unknown ones by id).
    fn names(&self, ids: &[PeerId]) -> Vec<String> {
        ids.iter().map(|id| self.peers.get(id).map_or_else(|| format!("peer {id}"), |p| p.name.clone())).collect()
    }

    fn event(&mut self, ev: Event) {
        self.out.push_back(HostOutput::Event(ev));
    }

    fn host_us(&self, now: Instant) -> Micros {
        now.saturating_duration_since(self.epoch).as_micros() as Micros
    }

    fn instant(&self, us: Micros) -> Instant {
        self.epoch + Duration::from_micros(us.max(0) as u64)
    }

    fn wall_ms_at(&self, now: Instant) -> f64 {
        self.wall_ms + now.saturating_duration_since(self.epoch).as_secs_f64() * 1000.0
    }
}
