//! A simulated room (str0m/quinn style): one [`HostCore`] and any number of simulated
//! participants ([`Viewer`]s: real participant cores) over seeded links with latency, jitter, loss and a bandwidth cap,
//! in virtual time that jumps to the next deadline. No sockets, no threads, no clock: a room of
//! a hundred plays ten minutes in seconds, the same way every run of a seed.
//!
//! What it stands in for: signaling (a join reaches the host after the link's latency; the
//! WebRTC set-up takes two round trips), the control channel (reliable, ordered) and the
//! chunks channel (reliable, unordered). The host's uplink is shared by everyone.

mod link;
mod swarm_room;
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
pub use swarm_room::{SWARM_KBPS, swarm_joins, swarm_room};
pub use viewer::{Viewer, ViewerStats};

use crate::api::{Command, Event};
use crate::buffer::StoreConfig;
use crate::host::{HostConfig, HostCore, HostOutput};
use crate::participant::ParticipantOutput;
use crate::protocol::hashes::{ChunkHash, HashBatch, chunk_hash};
use crate::protocol::identity::{HostKey, HostSecret};
use crate::protocol::signal::{PeerId, ServerMsg};
use crate::protocol::stream::{Manifest, Message};

/// Zeros to cut chunk payloads from (the content does not matter here; lengths do).
static ZEROS: [u8; 1 << 20] = [0; 1 << 20];
/// The host link's ordered channel in a pipe (relay links use their own numbers, from 1).
const HOST_LINK: u32 = 0;
/// What a lying relay sends instead.
static ONES: [u8; 1 << 20] = [1; 1 << 20];

/// A chunk's hash as the simulated participants take it: every honest chunk here is zeros
/// (cut from [`ZEROS`], so known by its address), and its hash is worked out once per length;
/// anything else is hashed (SHA-256 of a megabyte per chunk would be most of a large room's
/// CPU).
pub fn sim_digest(data: &[u8]) -> ChunkHash {
    thread_local! {
        static MEMO: std::cell::RefCell<std::collections::HashMap<usize, ChunkHash>> = Default::default();
    }
    if !ZEROS.as_ptr_range().contains(&data.as_ptr()) {
        return chunk_hash(data);
    }
    MEMO.with(|m| *m.borrow_mut().entry(data.len()).or_insert_with(|| chunk_hash(data)))
}

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
    /// A relay link is up at this end.
    RelayUp { slot: usize, link: u32 },
    /// A message from a neighbour arrives.
    RelayMsg { slot: usize, link: u32, msg: Message },
    /// A chunk from a neighbour arrives.
    RelayChunk { slot: usize, link: u32, space: crate::protocol::stream::Space, index: u32, data: Bytes },
    /// A chunk to a neighbour left this end.
    RelaySent { slot: usize, link: u32, len: usize },
    /// The other end closed the link (or left).
    RelayGone { slot: usize, link: u32 },
}

/// A relay link between two slots.
#[derive(Debug, Clone, Copy)]
struct RelayLink {
    /// Offerer and answerer.
    ends: [usize; 2],
    /// Each end's host link when introduced: a link made before a reconnection is dead.
    epochs: [u32; 2],
    /// Each end let it go.
    closed: [bool; 2],
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
    /// When it was told to join.
    pub joined: Instant,
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
    /// It relays, with this upload limit (0: none).
    pub relay: Option<u64>,
    /// As a relay it sends chunks that are not the host's.
    pub liar: bool,
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
    /// Bytes of hash batches the host sent.
    pub hash_bytes: u64,
    relays: std::collections::HashMap<u32, RelayLink>,
    /// Chunk bytes participants sent each other.
    pub relayed: u64,
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
            hash_bytes: 0,
            relays: Default::default(),
            relayed: 0,
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
        self.slots.push(Slot {
            viewer: None,
            joined: self.now,
            name: name.into(),
            peer: None,
            store,
            up,
            down,
            spec,
            link: 0,
            ppm,
            controls: (0, 0.0),
            relay: None,
            liar: false,
        });
        self.schedule(self.now + spec.1.latency, Due::Join { slot });
        slot
    }

    /// `slot` relays (it must not be connected yet), with upload limit `limit` (0: none).
    pub fn relaying(&mut self, slot: usize, limit: u64) {
        self.slots[slot].relay = Some(limit);
    }

    /// `slot` relays, and sends chunks that are not the host's.
    pub fn lying(&mut self, slot: usize) {
        self.slots[slot].relay = Some(0);
        self.slots[slot].liar = true;
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
                let k = guest_key(slot);
                // Each join its own nonce (the host takes no join twice).
                let nonce = format!("{:032x}", self.seq);
                let (key, proof) = (k.public().to_hex(), k.join_proof("sim", &nonce, &name));
                self.on_host(|h| h.handle_signal(now, ServerMsg::PeerJoined { peer, name, nonce, key, proof }));
            }
            Due::Connected { slot } => {
                let s = &mut self.slots[slot];
                match s.viewer.as_mut() {
                    Some(v) => v.reconnected(now),
                    None => {
                        let relay = s.relay.map(|limit_bps| crate::participant::RelayConfig { key: Arc::new(guest_key(slot)), limit_bps, digest: sim_digest });
                        s.viewer = Some(Viewer::new(now, &s.name, (*self.manifest).clone(), s.store.clone(), s.ppm, relay));
                    }
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
            Due::RelayUp { slot, link } => self.on_relay_viewer(slot, link, |v| v.handle_relay_up(now, link)),
            Due::RelayMsg { slot, link, msg } => self.on_relay_viewer(slot, link, |v| v.handle_relay_message(now, link, msg)),
            Due::RelayChunk { slot, link, space, index, data } => self.on_relay_viewer(slot, link, |v| v.handle_relay_chunk(now, link, space, index, data)),
            Due::RelaySent { slot, link, len } => self.on_relay_viewer(slot, link, |v| v.handle_relay_sent(now, link, len)),
            Due::RelayGone { slot, link } => self.on_relay_viewer(slot, link, |v| v.handle_relay_gone(now, link)),
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
                    let (left, at) = self.host_send(slot, len + 16, None);
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
                HostOutput::Control { peer, msg } => self.host_control(peer, msg),
                HostOutput::Introduce { link, offerer, answerer } => {
                    let (Some(a), Some(b)) = (self.slot_of(offerer.0), self.slot_of(answerer.0)) else { continue };
                    let epochs = [self.slots[a].link, self.slots[b].link];
                    self.relays.insert(link, RelayLink { ends: [a, b], epochs, closed: [false; 2] });
                    let stream = self.manifest.stream;
                    let (to_a, to_b) = crate::protocol::relay::introduce(&self.key, "sim", &stream, link, (&offerer.1, &offerer.2), (&answerer.1, &answerer.2));
                    self.host_control(offerer.0, Message::RelayIntro(to_a));
                    self.host_control(answerer.0, Message::RelayIntro(to_b));
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
                sim_digest(&ZEROS[..l])
            })
            .collect();
        HashBatch::sign(&self.key, "sim", &self.manifest.stream, space, first, &hashes)
    }

    /// A control message from the host, through its uplink and the participant's downlink.
    fn host_control(&mut self, peer: PeerId, msg: Message) {
        let Some(slot) = self.slot_of(peer) else { return };
        // Control messages cost what they weigh (a roster of 64 is kilobytes).
        let bytes = crate::protocol::stream::encode(&msg).len();
        if matches!(msg, Message::HashBatch(_)) {
            self.hash_bytes += bytes as u64;
        }
        let (_, at) = self.host_send(slot, bytes, Some(HOST_LINK));
        let link = self.slots[slot].link;
        self.schedule(at, Due::ToViewer { slot, link, msg });
    }

    /// Runs `f` on `slot`'s viewer if `link` is still one of its live relay links.
    fn on_relay_viewer(&mut self, slot: usize, link: u32, f: impl FnOnce(&mut Viewer)) {
        let live = self
            .relays
            .get(&link)
            .and_then(|r| r.ends.iter().position(|&e| e == slot).map(|i| (r, i)))
            .is_some_and(|(r, i)| r.epochs[i] == self.slots[slot].link && !r.closed[i]);
        if let Some(v) = self.slots[slot].viewer.as_mut().filter(|_| live) {
            f(v);
        }
        self.viewer_outputs(slot);
    }

    /// What a viewer's relay outputs do: SDPs signed and sent through the host, the link up
    /// two round trips after the answer, messages and chunks through the sender's uplink and
    /// the receiver's downlink.
    fn relay_outputs(&mut self, slot: usize) {
        while let Some(out) = self.slots[slot].viewer.as_mut().and_then(|v| v.poll_relay()) {
            let now = self.now;
            match out {
                ParticipantOutput::RelayOpen { link, offerer: true, .. } => {
                    if let Some(v) = self.slots[slot].viewer.as_mut() {
                        v.handle_relay_local_sdp(now, link, format!("v=0 offer {link}"));
                    }
                }
                ParticipantOutput::RelayRemoteSdp { link, .. } => self.remote_sdp(slot, link),
                ParticipantOutput::RelaySend { link, msg } => {
                    let Some(to) = self.other_end(slot, link) else { continue };
                    let bytes = crate::protocol::stream::encode(&msg).len();
                    let (_, at) = self.relay_path(slot, to, bytes, Some(link));
                    self.schedule(at, Due::RelayMsg { slot: to, link, msg });
                }
                ParticipantOutput::RelayChunk { link, space, index, data } => {
                    let len = data.len();
                    let Some(to) = self.other_end(slot, link) else {
                        self.schedule(now, Due::RelaySent { slot, link, len });
                        continue;
                    };
                    let (left, at) = self.relay_path(slot, to, len + 16, None);
                    let data = if self.slots[slot].liar { Bytes::from_static(&ONES[..len]) } else { data };
                    self.relayed += len as u64;
                    self.schedule(left, Due::RelaySent { slot, link, len });
                    self.schedule(at, Due::RelayChunk { slot: to, link, space, index, data });
                }
                ParticipantOutput::RelayClose { link } => {
                    let Some(r) = self.relays.get_mut(&link) else { continue };
                    let i = if r.ends[0] == slot { 0 } else { 1 };
                    r.closed[i] = true;
                    let other = r.ends[1 - i];
                    if r.closed == [true; 2] {
                        self.relays.remove(&link);
                    } else {
                        // The other end notices the close (a DTLS close, or a dead ICE path).
                        let at = now + self.slots[slot].spec.1.latency + self.slots[other].spec.0.latency;
                        self.schedule(at, Due::RelayGone { slot: other, link });
                    }
                }
                _ => {}
            }
        }
    }

    /// `slot` took the other end's SDP: the answerer answers; once the offerer has the answer,
    /// ICE checks and the DTLS handshake between the two take two round trips.
    fn remote_sdp(&mut self, slot: usize, link: u32) {
        let now = self.now;
        let Some(r) = self.relays.get(&link).copied() else { return };
        if r.ends[1] == slot {
            if let Some(v) = self.slots[slot].viewer.as_mut() {
                v.handle_relay_local_sdp(now, link, format!("v=0 answer {link}"));
            }
            return;
        }
        let (a, b) = (&self.slots[r.ends[0]].spec, &self.slots[r.ends[1]].spec);
        let rtt = a.0.latency + a.1.latency + b.0.latency + b.1.latency;
        for end in r.ends {
            self.schedule(now + rtt * 2, Due::RelayUp { slot: end, link });
        }
    }

    /// The other end of `slot`'s live relay `link`.
    fn other_end(&self, slot: usize, link: u32) -> Option<usize> {
        let r = self.relays.get(&link)?;
        let i = r.ends.iter().position(|&e| e == slot)?;
        let o = r.ends[1 - i];
        (!r.closed[1 - i] && r.epochs[1 - i] == self.slots[o].link && self.slots[o].viewer.is_some()).then_some(o)
    }

    /// Through `from`'s uplink, then `to`'s downlink: when it left `from` and when it arrives.
    fn relay_path(&mut self, from: usize, to: usize, bytes: usize, ordered: Option<u32>) -> (Instant, Instant) {
        let (left, mid) = self.slots[from].up.send(self.now, bytes, ordered, &mut self.rng);
        let (_, at) = self.slots[to].down.send(mid, bytes, ordered, &mut self.rng);
        (left, at)
    }

    fn viewer_outputs(&mut self, slot: usize) {
        self.relay_outputs(slot);
        while let Some(msg) = self.slots[slot].viewer.as_mut().and_then(|v| v.poll_send()) {
            let now = self.now;
            let s = &mut self.slots[slot];
            if s.peer.is_none() {
                continue; // no link: lost
            }
            let (_, at) = s.up.send(now, crate::protocol::stream::encode(&msg).len(), Some(HOST_LINK), &mut self.rng);
            s.controls.0 += 1;
            s.controls.1 += crate::host::control_cost(&msg);

            let link = s.link;
            self.schedule(at, Due::ToHost { slot, link, msg });
        }
    }

    /// Through the host's uplink, then the participant's link.
    fn host_send(&mut self, slot: usize, bytes: usize, ordered: Option<u32>) -> (Instant, Instant) {
        let (left, _) = self.uplink.send(self.now, bytes, None, &mut self.rng);
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

/// The key of the person in `slot` (each its own, as each person has).
fn guest_key(slot: usize) -> crate::protocol::guest::GuestKey {
    crate::protocol::guest::GuestSecret::from_bytes([
        slot as u8,
        (slot >> 8) as u8,
        0x5e,
        1,
        2,
        3,
        4,
        5,
        6,
        7,
        8,
        9,
        10,
        11,
        12,
        13,
        14,
        15,
        16,
        17,
        18,
        19,
        20,
        21,
        22,
        23,
        24,
        25,
        26,
        27,
        28,
        29,
    ])
    .key_for("sim")
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
