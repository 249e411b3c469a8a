//! A simulated room (str0m/quinn style): one [`HostCore`] and any number of simulated
//! participants ([`Viewer`]s: real participant cores) over seeded links with latency, jitter, loss and a bandwidth cap,
//! in virtual time that jumps to the next deadline. No sockets, no threads, no clock: a room of
//! a hundred plays ten minutes in seconds, the same way every run of a seed.
//!
//! What it stands in for: signaling (a join reaches the host after the link's latency; the
//! WebRTC set-up takes two round trips), the control channel (reliable, ordered) and the
//! chunks channel (reliable, unordered). The host's uplink is shared by everyone.

mod link;
#[cfg(test)]
mod tests;
mod viewer;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::SeedableRng;
use rand::rngs::StdRng;

pub use link::{LinkSpec, Pipe};
pub use viewer::{Viewer, ViewerStats};

use crate::api::{Command, Event};
use crate::buffer::StoreConfig;
use crate::host::{HostConfig, HostCore, HostOutput};
use crate::protocol::hashes::{ChunkHash, HashBatch, chunk_hash};
use crate::protocol::identity::{HostKey, HostSecret};
use crate::protocol::signal::{PeerId, ServerMsg};
use crate::protocol::stream::{Manifest, Message};

/// Zeros to cut chunk payloads from (the content does not matter here; lengths do).
static ZEROS: [u8; 1 << 20] = [0; 1 << 20];

/// The simulated host's key: it signs the chunk hashes, the viewers check them.
pub fn host_key() -> HostKey {
    HostSecret::from_bytes([7; 32]).host_key()
}

/// Something in flight, due at a time.
#[derive(Debug)]
enum Due {
    /// A join reaches the host through signaling.
    Join { slot: usize },
    /// The participant's WebRTC link is up.
    Connected { slot: usize },
    /// A control message reaches the host (on link `link` of the slot).
    ToHost { slot: usize, link: u32, msg: Message },
    /// A control message reaches the participant.
    ToViewer { slot: usize, link: u32, msg: Message },
    /// A chunk reaches the participant.
    Chunk { slot: usize, link: u32, index: u32, len: usize },
    /// A chunk left the host (its send is done).
    Sent { peer: PeerId, len: usize },
}

/// A [`Due`] in the queue, soonest (then oldest) first.
struct Queued(Instant, u64, Due);

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.0, self.1) == (other.0, other.1)
    }
}

impl Eq for Queued {}

impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Queued {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.0, self.1).cmp(&(other.0, other.1))
    }
}

/// One participant's place in the room.
pub struct Slot {
    /// The participant, once its link is up.
    pub viewer: Option<Viewer>,
    name: String,
    peer: Option<PeerId>,
    store: StoreConfig,
    up: Pipe,
    down: Pipe,
    /// Its link towards it (from the host) and from it (home lines are far slower up).
    spec: (LinkSpec, LinkSpec),
    /// Which of its links this is (each drop makes a new one; what was in flight on the old
    /// one is lost with it).
    link: u32,
    /// How far its clock runs off the world's, parts per million.
    ppm: f64,
    /// Control messages it sent the host, and their cost against its control budget.
    pub controls: (u64, f64),
}

/// The room.
pub struct World {
    /// Simulated time now.
    pub now: Instant,
    /// Where it started.
    pub start: Instant,
    /// The host.
    pub host: HostCore,
    /// Everyone who joined, in order.
    pub slots: Vec<Slot>,
    /// What the host reported, with when.
    pub events: Vec<(Instant, Event)>,
    /// Chunk bytes the host sent.
    pub uploaded: u64,
    manifest: Arc<Manifest>,
    uplink: Pipe,
    due: BinaryHeap<Reverse<Queued>>,
    seq: u64,
    rng: StdRng,
    /// Steps taken (for the livelock guard).
    pub steps: u64,
    /// A clock to time the host core's calls with (a benchmark sets it; the core reads none).
    pub meter: Option<fn() -> Instant>,
    /// Time spent inside the host core's calls, by `meter`.
    pub host_time: Duration,
    /// Signs hash batches, as the host's driver does.
    key: HostKey,
    /// The hash of a chunk of zeros, by length (every chunk here is one).
    zero_hashes: std::collections::HashMap<usize, ChunkHash>,
    /// Bytes of hash batches the host sent.
    pub hash_bytes: u64,
}

impl World {
    /// A room hosting `manifest` with `cfg`, its uplink capped by `uplink` bytes/s (`None`:
    /// no cap), with `seed` for every random choice.
    pub fn new(start: Instant, manifest: Manifest, cfg: HostConfig, uplink: Option<u64>, seed: u64) -> World {
        let manifest = Arc::new(manifest);
        let host = HostCore::new(start, 1.7e12, manifest.clone(), cfg);
        let spec = LinkSpec { latency: Duration::ZERO, jitter: Duration::ZERO, loss: 0.0, bandwidth: uplink };
        let mut w = World {
            now: start,
            start,
            host,
            slots: vec![],
            events: vec![],
            uploaded: 0,
            manifest,
            uplink: Pipe::new(spec, start),
            due: BinaryHeap::new(),
            seq: 0,
            rng: StdRng::seed_from_u64(seed),
            steps: 0,
            meter: None,
            host_time: Duration::ZERO,
            key: host_key(),
            zero_hashes: Default::default(),
            hash_bytes: 0,
        };
        w.host_outputs();
        w
    }

    /// `name` joins now over `link` (the same both ways), with store settings `store`.
    pub fn join(&mut self, name: &str, link: LinkSpec, store: StoreConfig) -> usize {
        self.join_with_clock(name, link, store, 0.0)
    }

    /// The same, with a clock that runs `ppm` parts per million fast (or slow, below 0).
    pub fn join_with_clock(&mut self, name: &str, link: LinkSpec, store: StoreConfig, ppm: f64) -> usize {
        self.join_linked(name, (link, link), store, ppm)
    }

    /// `name` joins now over `(down, up)`: its link from the host and its link to it.
    pub fn join_linked(&mut self, name: &str, (down, up): (LinkSpec, LinkSpec), store: StoreConfig, ppm: f64) -> usize {
        let slot = self.slots.len();
        let spec = (down, up);
        let (up, down) = (Pipe::new(up, self.now), Pipe::new(down, self.now));
        self.slots.push(Slot { viewer: None, name: name.into(), peer: None, store, up, down, spec, link: 0, ppm, controls: (0, 0.0) });
        self.schedule(self.now + spec.1.latency, Due::Join { slot });
        slot
    }

    /// `slot`'s link drops now (both ends notice at once) and it asks to join again `after`:
    /// the participant keeps its core, as the engine keeps its session across reconnections.
    pub fn drop_link(&mut self, slot: usize, after: Duration) {
        let now = self.now;
        let s = &mut self.slots[slot];
        s.link += 1;
        (s.up, s.down) = (Pipe::new(s.spec.1, now), Pipe::new(s.spec.0, now));
        if let Some(v) = s.viewer.as_mut() {
            v.link_lost(now);
        }
        if let Some(peer) = s.peer.take() {
            self.on_host(|h| h.handle_gone(now, peer, "the link dropped"));
            self.host_outputs();
        }
        let at = now + after + self.slots[slot].spec.1.latency;
        self.schedule(at, Due::Join { slot });
    }

    /// A host command now.
    pub fn command(&mut self, cmd: Command) {
        let now = self.now;
        self.on_host(|h| h.handle_command(now, cmd));
        self.host_outputs();
    }

    /// Runs `f` on the host core, timed by `meter` when there is one.
    fn on_host(&mut self, f: impl FnOnce(&mut HostCore)) {
        let Some(clock) = self.meter else { return f(&mut self.host) };
        let t = clock();
        f(&mut self.host);
        self.host_time += clock() - t;
    }

    /// Runs until `until`. Panics if time stops moving (a machine asking to be woken at a
    /// time it does not act on: a livelock).
    pub fn run_until(&mut self, until: Instant) {
        let mut same = 0;
        while let Some(at) = self.next_deadline().filter(|&t| t <= until) {
            // A microsecond counts as no time: a participant on a clock of its own is woken a
            // microsecond past its deadline (sim/viewer.rs), so a core asking again and again
            // for "now" would otherwise creep on instead of tripping the guard. A step that
            // delivers something in flight is progress however close it comes (a hundred
            // participants' chunks on uncapped links arrive microseconds apart).
            let delivers = self.due.peek().is_some_and(|Reverse(q)| q.0 <= at);
            same = if at <= self.now + Duration::from_micros(1) && !delivers { same + 1 } else { 0 };
            assert!(same < 10_000, "time stopped at {:?}: a livelock", self.now - self.start);
            self.step(at);
        }
        self.now = self.now.max(until);
    }

    /// Runs for `d`.
    pub fn run_for(&mut self, d: Duration) {
        self.run_until(self.now + d);
    }

    /// Runs until `done` holds (checked after each step), at most `max_steps` steps and
    /// `within` of simulated time: a livelock or a stuck room fails loudly instead of hanging.
    pub fn drive_bounded(&mut self, within: Duration, max_steps: u64, mut done: impl FnMut(&World) -> bool) -> Duration {
        let (from, limit, first_step) = (self.now, self.now + within, self.steps);
        while !done(self) {
            assert!(self.steps - first_step < max_steps, "no end after {max_steps} steps (a livelock?) at {:?}", self.now - self.start);
            match self.next_deadline() {
                Some(at) if at <= limit => self.step(at),
                _ => panic!("not done within {within:?} of simulated time"),
            }
        }
        self.now - from
    }

    /// A participant (once its link is up).
    pub fn viewer(&self, slot: usize) -> &Viewer {
        self.slots[slot].viewer.as_ref().unwrap_or_else(|| panic!("{} is not connected yet", self.slots[slot].name))
    }

    /// The participants whose link is up.
    pub fn viewers(&self) -> impl Iterator<Item = &Viewer> {
        self.slots.iter().filter_map(|s| s.viewer.as_ref())
    }

    fn next_deadline(&self) -> Option<Instant> {
        let due = self.due.peek().map(|Reverse(q)| q.0);
        let host = self.host.poll_timeout().map(|(t, _)| t);
        let viewers = self.viewers().filter_map(|v| v.poll_timeout()).min();
        [due, host, viewers].into_iter().flatten().min()
    }

    fn step(&mut self, at: Instant) {
        self.steps += 1;
        self.now = self.now.max(at);
        let now = self.now;
        while self.due.peek().is_some_and(|Reverse(q)| q.0 <= now) {
            let Some(Reverse(Queued(_, _, d))) = self.due.pop() else { break };
            self.deliver(d);
        }
        if self.host.poll_timeout().is_some_and(|(t, _)| t <= now) {
            self.on_host(|h| h.handle_timeout(now));
            self.host_outputs();
        }
        for slot in 0..self.slots.len() {
            if let Some(v) = self.slots[slot].viewer.as_mut()
                && v.poll_timeout().is_some_and(|t| t <= now)
            {
                v.handle_timeout(now);
                self.viewer_outputs(slot);
            }
        }
    }

    fn deliver(&mut self, d: Due) {
        let now = self.now;
        match d {
            Due::Join { slot } => {
                let name = self.slots[slot].name.clone();
                // A server's ids (below 2^32, as a server's are): the slot, and which of its links.
                let peer = (PeerId::from(self.slots[slot].link & 0xffff) << 16) | (slot as PeerId + 1);
                // Each viewer its own key, as each person has.
                let k = crate::protocol::guest::GuestSecret::from_bytes([slot as u8; 32]).key_for("sim");
                // Each join its own nonce (the host takes no join twice).
                let nonce = format!("{:032x}", self.seq);
                let (key, proof) = (k.public().to_hex(), k.join_proof("sim", &nonce, &name));
                self.on_host(|h| h.handle_signal(now, ServerMsg::PeerJoined { peer, name, nonce, key, proof }));
            }
            Due::Connected { slot } => {
                let s = &mut self.slots[slot];
                match s.viewer.as_mut() {
                    Some(v) => v.reconnected(now),
                    None => s.viewer = Some(Viewer::new(now, &s.name, (*self.manifest).clone(), s.store.clone(), s.ppm)),
                }
                let peer = s.peer.expect("admitted before connected");
                self.on_host(|h| h.handle_connected(now, peer));
                self.viewer_outputs(slot);
            }
            Due::ToHost { slot, link, msg } => {
                if let Some(peer) = self.slots[slot].peer.filter(|_| self.slots[slot].link == link) {
                    self.on_host(|h| h.handle_control(now, peer, msg));
                }
            }
            Due::ToViewer { slot, link, msg } => {
                let s = &mut self.slots[slot];
                if let Some(v) = s.viewer.as_mut().filter(|_| s.link == link) {
                    v.handle_control(now, msg);
                }
                self.viewer_outputs(slot);
            }
            Due::Chunk { slot, link, index, len } => {
                let s = &mut self.slots[slot];
                if let Some(v) = s.viewer.as_mut().filter(|_| s.link == link) {
                    v.handle_chunk(now, index, Bytes::from_static(&ZEROS[..len]));
                }
                self.viewer_outputs(slot);
            }
            Due::Sent { peer, len } => self.on_host(|h| h.handle_sent(now, peer, len)),
        }
        self.host_outputs();
    }

    /// Carries out what the host decided.
    fn host_outputs(&mut self) {
        while let Some(out) = self.host.poll_output() {
            match out {
                HostOutput::Chunk { peer, index, len, .. } => {
                    // Read at once (the simulated disk is never behind).
                    self.host.handle_queued(self.now);
                    let Some(slot) = self.slot_of(peer) else { continue };
                    let (left, at) = self.host_send(slot, len + 16, false);
                    self.uploaded += len as u64;
                    self.schedule(left, Due::Sent { peer, len });
                    let link = self.slots[slot].link;
                    self.schedule(at, Due::Chunk { slot, link, index, len });
                }
                HostOutput::HashBatch { space, first, count, len } => {
                    // Hashed and signed at once (the simulated disk and CPU are never behind).
                    let batch = self.hash_batch(space, first, count, len);
                    let now = self.now;
                    self.on_host(|h| h.handle_hash_batch(now, batch));
                }
                HostOutput::Control { peer, msg } => {
                    let Some(slot) = self.slot_of(peer) else { continue };
                    // Control messages cost what they weigh (a roster of 64 is kilobytes).
                    let bytes = crate::protocol::stream::encode(&msg).len();
                    if matches!(msg, Message::HashBatch(_)) {
                        self.hash_bytes += bytes as u64;
                    }
                    let (_, at) = self.host_send(slot, bytes, true);
                    let link = self.slots[slot].link;
                    self.schedule(at, Due::ToViewer { slot, link, msg });
                }
                HostOutput::Admit { peer, .. } => {
                    // Server ids are slot + 1 in the low 16 bits (see `Due::Join`).
                    let slot = ((peer & 0xffff) as usize).wrapping_sub(1);
                    if let Some(s) = self.slots.get_mut(slot) {
                        s.peer = Some(peer);
                        // Offer, answer, ICE and DTLS: about two round trips.
                        let setup = (s.spec.0.latency + s.spec.1.latency) * 2;
                        self.schedule(self.now + setup, Due::Connected { slot });
                    }
                }
                HostOutput::Event(ev) => self.events.push((self.now, ev)),
                HostOutput::Close { peer } => {
                    if let Some(slot) = self.slot_of(peer) {
                        self.slots[slot].viewer = None;
                        self.slots[slot].peer = None;
                    }
                }
                _ => {}
            }
        }
    }

    /// What the host's driver makes of `HostOutput::HashBatch`: every chunk here is zeros.
    fn hash_batch(&mut self, space: crate::protocol::stream::Space, first: u32, count: u32, len: u64) -> HashBatch {
        let chunk = self.manifest.chunk_size as u64;
        let hashes: Vec<ChunkHash> = (0..count as u64)
            .map(|i| {
                let l = (len - i * chunk).min(chunk) as usize;
                *self.zero_hashes.entry(l).or_insert_with(|| chunk_hash(&ZEROS[..l]))
            })
            .collect();
        HashBatch::sign(&self.key, "sim", &self.manifest.stream, space, first, &hashes)
    }

    fn viewer_outputs(&mut self, slot: usize) {
        while let Some(msg) = self.slots[slot].viewer.as_mut().and_then(|v| v.poll_send()) {
            let now = self.now;
            let s = &mut self.slots[slot];
            if s.peer.is_none() {
                continue; // no link: lost
            }
            let (_, at) = s.up.send(now, crate::protocol::stream::encode(&msg).len(), true, &mut self.rng);
            s.controls.0 += 1;
            s.controls.1 += crate::host::control_cost(&msg);
            let link = s.link;
            self.schedule(at, Due::ToHost { slot, link, msg });
        }
    }

    /// Through the host's uplink, then the participant's link.
    fn host_send(&mut self, slot: usize, bytes: usize, ordered: bool) -> (Instant, Instant) {
        let (left, _) = self.uplink.send(self.now, bytes, false, &mut self.rng);
        self.slots[slot].down.send(left, bytes, ordered, &mut self.rng)
    }

    fn slot_of(&self, peer: PeerId) -> Option<usize> {
        self.slots.iter().position(|s| s.peer == Some(peer))
    }

    fn schedule(&mut self, at: Instant, d: Due) {
        self.seq += 1;
        self.due.push(Reverse(Queued(at, self.seq, d)));
    }
}

/// A host configuration for simulations: a room of `duration_s` that does not wait for
/// approval, with an embedded server.
pub fn host_config(autoplay: bool, wait_for_buffering: bool, upload_limit: u64, duration_s: u64) -> HostConfig {
    HostConfig {
        room: "sim".into(),
        name: "host".into(),
        room_cfg: crate::room::RoomConfig { wait_for_buffering, host_only_control: false, duration_us: Some(duration_s as i64 * 1_000_000) },
        autoplay,
        approve: false,
        upload_limit,
        reconnect_signal: false,
        fallback: None,
        banned: vec![],
    }
}

/// A file of `duration_s` at `kbps`, in chunks of `chunk_size`.
pub fn media(duration_s: u64, kbps: u64, chunk_size: u32) -> Manifest {
    let size = duration_s * kbps * 1000 / 8;
    Manifest {
        name: "sim.mp4".into(),
        size,
        chunk_size,
        chunks: Manifest::chunk_count(size, chunk_size) as u32,
        duration_ms: Some(duration_s * 1000),
        container: "mp4".into(),
        codecs: vec!["h264".into()],
        levels: vec!["high".into()],
        stream: [0; 16],
    }
}
