//! Relaying, the participant's side: links to the neighbours the host introduces, chunks
//! asked of them and checked against the host's signed hashes, chunks served to them within
//! the relay upload limit, and holdings told to them and to the host.
//!
//! Where each chunk comes from: what the reader is blocked on, from a neighbour that would
//! bring it within [`CRITICAL_WITHIN`], else the host (and from a neighbour after all if one
//! gets it before the host has sent it); read-ahead within [`SOON`] of the
//! reader, from a neighbour that holds it, else the host; read-ahead beyond it, up to
//! [`HORIZON`], from neighbours only, rarest first. What the host wants spread first it says
//! with `Seed`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::swarm::{MAX_NEIGHBOURS, Need, Neighbour, Swarm};
use super::{ParticipantCore, ParticipantError, ParticipantOutput};
use crate::host::ELSEWHERE_WAIT;
use crate::protocol::guest::GuestKey;
use crate::protocol::hashes::{ChunkHash, batch_start};
use crate::protocol::have::{Have, Runs};
use crate::protocol::relay::{RelayIntro, RelaySdp};
use crate::protocol::stream::{self, Message, PROTOCOL_VERSION, Priority, RelayReport, Role, Space, StreamError};
use crate::rate::{Meter, TokenBucket};
use crate::scheduler::Scheduler;

/// How often holdings are told, overdue requests given up and read-ahead asked of neighbours.
pub const RELAY_EVERY: Duration = Duration::from_millis(250);
/// Read-ahead this far (of media) ahead of the reader may come from the host.
pub const SOON: Duration = Duration::from_secs(8);
/// Read-ahead from neighbours goes this far ahead of the reader.
pub const HORIZON: Duration = Duration::from_secs(60);
/// A chunk the reader is blocked on is asked of a neighbour only if it would come this soon.
pub const CRITICAL_WITHIN: Duration = Duration::from_millis(300);
/// Read-ahead asked of a neighbour for a chunk now this close to the reader is hurried (see
/// `Neighbour::take_overdue`).
pub const HURRY_WITHIN: Duration = Duration::from_secs(4);
/// What a waiting picture wants held ahead before it shows, relaying.
pub const BUFFER_GOAL: Duration = Duration::from_secs(3);
/// Chunks asked of all neighbours together, at most, in media time (the reader's blocked
/// ones aside).
pub const IN_FLIGHT: Duration = Duration::from_secs(2);
/// A link not up this long after its introduction is given up.
pub const OPEN_WITHIN: Duration = Duration::from_secs(20);
/// Chunks handed to one neighbour's channel and not yet sent.
const SEND_QUEUE: usize = 4;
/// Chunks handed to all neighbours' channels and not yet sent: this much of the relay
/// upload's measured rate (at least one chunk). More would sit in the uplink's queue, where
/// a request that timed out meanwhile cannot be taken back, and ahead of this participant's
/// own pings.
const SEND_AHEAD: Duration = Duration::from_millis(250);
/// A hash batch asked for is asked again after this long.
const HASH_ASK_AGAIN: Duration = Duration::from_secs(5);
/// A download limit at least this many times the stream's rate still takes the host's seeds
/// (they come at 1.2 times the stream at most, beside what it asks for itself).
const SEED_HEADROOM: f64 = 4.0;
/// How long a request to the host waits before a neighbour that holds the chunk is asked
/// instead (see `move_from_host`).
const MOVE_AFTER: Duration = Duration::from_millis(500);
/// Chunks `fetch_rest` asks for in one pass.
const REST_PER_PASS: usize = 16;
/// Stored chunks told to neighbours one by one, per second and at most at once; beyond, the
/// next pass tells them together. A fast download (a saved copy over a LAN stores hundreds of
/// chunks a second) would otherwise send each neighbour more messages than it takes from one
/// (`swarm::NEIGHBOUR_RATE`), and lose the link.
const HAVE_AT_ONCE: (f64, f64) = (100.0, 50.0);
/// Chunks asked of neighbours per pass beyond [`SOON`].
const FAR_PER_PASS: usize = 256;

/// How a participant relays.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Its key in this room: it signs its relay SDPs, and introductions name it.
    pub key: Arc<GuestKey>,
    /// Relay upload limit, B/s (0: none).
    pub limit_bps: u64,
    /// What a chunk's hash is (SHA-256; the simulated room gives a cheaper one).
    pub digest: fn(&[u8]) -> ChunkHash,
}

/// The relaying state.
pub(super) struct Relaying {
    cfg: RelayConfig,
    pub(super) swarm: Swarm,
    serve: Scheduler,
    bucket: Option<TokenBucket>,
    /// Paces the chunk-by-chunk `Have`s to neighbours (see [`HAVE_AT_ONCE`]).
    have_now: TokenBucket,
    up: Meter,
    /// The upload rate as the last report said it (for the stats, built without `&mut`).
    up_bps: u64,
    /// Chunks handed to each neighbour's channel and not yet sent.
    sending: HashMap<u32, usize>,
    down_bytes: u64,
    /// Chunks stored since holdings were last told, by space.
    added: BTreeMap<Space, Vec<u32>>,
    /// Of those, the ones neighbours were not told of at once (see [`HAVE_AT_ONCE`]).
    untold: BTreeMap<Space, Vec<u32>>,
    next_tick: Instant,
    hash_asked: HashMap<(Space, u32), Instant>,
    /// Chunks the host said to get from neighbours, until when they wait for one to hold them
    /// (still marked on their way in the store, so nobody else is asked meanwhile).
    pub(super) waiting: BTreeMap<(Space, u32), Instant>,
    /// Chunks from neighbours that were not what the host hashed.
    pub(super) lies: u32,
}

impl Relaying {
    pub(super) fn new(now: Instant, cfg: RelayConfig) -> Relaying {
        let limit = cfg.limit_bps as f64;
        let bucket = (cfg.limit_bps > 0).then(|| TokenBucket::new(limit, (limit * 0.1).max(256.0 * 1024.0)));
        Relaying {
            cfg,
            swarm: Swarm::default(),
            serve: Scheduler::new(SEND_QUEUE),
            bucket,
            have_now: TokenBucket::new(HAVE_AT_ONCE.0, HAVE_AT_ONCE.1),
            up: Meter::new(Duration::from_secs(1)),
            up_bps: 0,
            sending: HashMap::new(),
            down_bytes: 0,
            added: BTreeMap::new(),
            untold: BTreeMap::new(),
            next_tick: now,
            hash_asked: HashMap::new(),
            waiting: BTreeMap::new(),
            lies: 0,
        }
    }

    /// Whether chunk `ix` of `space` is to come from a neighbour: asked of one, or waited for
    /// after the host said one holds it.
    fn awaited_from_neighbours(&self, space: Space, ix: u32) -> bool {
        self.waiting.contains_key(&(space, ix)) || self.swarm.links.values().any(|n| n.is_asked(space, ix))
    }

    /// Its figures for the stats and the view.
    pub(super) fn stats(&self) -> crate::api::RelayStats {
        crate::api::RelayStats {
            relay_up_bps: self.up_bps,
            relay_up_bytes: self.up.total(),
            relay_down_bytes: self.down_bytes,
            relay_links: self.swarm.up() as u32,
            relay_limit_bps: self.cfg.limit_bps,
        }
    }

    /// When the next pass is due.
    pub(super) fn poll_timeout(&self) -> Instant {
        self.next_tick
    }

    /// What its `Report` says.
    pub(super) fn report(&mut self, now: Instant, seeds: bool) -> RelayReport {
        self.up_bps = self.up.rate(now) as u64;
        RelayReport {
            seeds,
            limit_bps: self.cfg.limit_bps,
            up_bps: self.up_bps,
            up_bytes: self.up.total(),
            down_bytes: self.down_bytes,
            links: self.swarm.up() as u16,
        }
    }

    /// Whether another chunk may go to a channel now (see [`SEND_AHEAD`]).
    fn may_send(&mut self, now: Instant, chunk: usize) -> bool {
        let ahead = (self.up.rate(now) * SEND_AHEAD.as_secs_f64() / chunk.max(1) as f64) as usize;
        self.sending.values().sum::<usize>() < ahead.max(1) && self.bucket.as_mut().is_none_or(|b| b.ready(now))
    }

    /// A chunk was stored: the host hears of it at the next pass.
    pub(super) fn note_stored(&mut self, space: Space, index: u32) {
        self.added.entry(space).or_default().push(index);
    }
}

impl ParticipantCore {
    /// A chunk was stored: neighbours hear of it at once (one may be waiting for it, its
    /// reader blocked), the host at the next pass.
    pub(super) fn stored(&mut self, space: Space, index: u32) {
        let Some(r) = self.relay.as_mut() else { return };
        r.note_stored(space, index);
        let at_once = r.have_now.try_take(self.now, 1.0);
        if !at_once {
            r.untold.entry(space).or_default().push(index);
        }
        let have = Have { space, reset: false, added: Runs::from_sorted([index]), dropped: Runs::default() };
        for (&link, n) in r.swarm.links.iter_mut().filter(|(_, n)| n.up) {
            if at_once {
                self.out.push_back(ParticipantOutput::RelaySend { link, msg: Message::Have(have.clone()) });
            }
            // It came another way first (the host had sent it before its cancel arrived):
            // the neighbour need not send it, and a copy on the way is dropped as unasked.
            if n.forget(space, index) {
                self.out.push_back(ParticipantOutput::RelaySend { link, msg: Message::Cancel { space, chunks: vec![index] } });
            }
        }
    }
}

impl ParticipantCore {
    /// The host introduced a neighbour.
    pub(super) fn relay_intro(&mut self, now: Instant, intro: RelayIntro) -> Result<(), ParticipantError> {
        let link = intro.link;
        let (Some(r), Some((host, room))) = (self.relay.as_mut(), &self.cfg.host) else {
            self.send(Message::RelayBye { link, reason: "relaying is off".into() });
            return Ok(());
        };
        let Some(them) = intro.verify(host, room, &self.manifest.stream, &r.cfg.key.public()) else {
            return Err(StreamError::Invalid("a relay introduction the host did not sign").into());
        };
        if r.swarm.links.len() >= MAX_NEIGHBOURS || r.swarm.links.contains_key(&link) {
            self.send(Message::RelayBye { link, reason: "too many neighbours".into() });
            return Ok(());
        }
        tracing::debug!(link, "the host introduces {} ({})", intro.name, if intro.offerer { "offering" } else { "answering" });
        r.swarm.links.insert(link, Neighbour::new(now, intro.name.clone(), them, intro.offerer));
        self.update_host_window();
        self.out.push_back(ParticipantOutput::RelayOpen { link, offerer: intro.offerer, name: intro.name });
        Ok(())
    }

    /// This side's SDP for `link` (an offer, or the answer to the neighbour's): signed and
    /// sent through the host.
    pub fn handle_relay_local_sdp(&mut self, now: Instant, link: u32, sdp: String) {
        self.now = now;
        let (Some(r), Some((_, room))) = (self.relay.as_ref(), &self.cfg.host) else { return };
        if r.swarm.links.contains_key(&link) {
            let signed = RelaySdp::sign(&r.cfg.key, room, &self.manifest.stream, link, sdp);
            self.send(Message::RelaySignal(signed));
        }
    }

    /// The neighbour's SDP, through the host: applied only if the neighbour signed it.
    pub(super) fn relay_signal(&mut self, now: Instant, sdp: RelaySdp) {
        let link = sdp.link;
        let (Some(r), Some((_, room))) = (self.relay.as_ref(), &self.cfg.host) else { return };
        let Some(n) = r.swarm.links.get(&link) else { return };
        if sdp.verify(&n.key, room, &self.manifest.stream) {
            self.out.push_back(ParticipantOutput::RelayRemoteSdp { link, sdp: sdp.sdp });
        } else {
            tracing::warn!(link, "{}'s SDP is not signed by its key: no link", n.name);
            self.drop_link(now, link, Some("its SDP was not signed by its key"));
        }
    }

    /// The link to a neighbour is up: hello and everything held.
    pub fn handle_relay_up(&mut self, now: Instant, link: u32) {
        self.now = now;
        let Some(r) = self.relay.as_mut() else { return };
        let Some(n) = r.swarm.links.get_mut(&link) else { return };
        n.up = true;
        tracing::info!(link, "relay link to {} up", n.name);
        r.serve.add_peer(link as u64);
        let hello = Message::Hello { version: PROTOCOL_VERSION, name: self.cfg.name.clone() };
        self.out.push_back(ParticipantOutput::RelaySend { link, msg: hello });
        for have in self.full_haves() {
            self.out.push_back(ParticipantOutput::RelaySend { link, msg: Message::Have(have) });
        }
        self.update_host_window();
        self.flush();
    }

    /// The link to a neighbour failed or closed.
    pub fn handle_relay_gone(&mut self, now: Instant, link: u32, reason: &str) {
        self.now = now;
        self.drop_link(now, link, Some(reason));
        self.flush();
    }

    /// The link is over: what was asked of the neighbour is asked again elsewhere, its queue
    /// goes, and the host hears why (`tell`) unless it said so itself.
    pub(super) fn drop_link(&mut self, now: Instant, link: u32, tell: Option<&str>) {
        let Some(r) = self.relay.as_mut() else { return };
        let Some(mut n) = r.swarm.links.remove(&link) else { return };
        r.serve.remove_peer(link as u64);
        r.sending.remove(&link);
        for (space, ix) in n.take_asked() {
            if let Some(s) = self.stores.get_mut(space) {
                s.unmark(now, ix);
            }
        }
        if let Some(reason) = tell {
            tracing::info!(link, "relay link to {} over: {reason}", n.name);
            self.send(Message::RelayBye { link, reason: stream::clip_text(reason, stream::MAX_TEXT).to_string() });
        }
        self.out.push_back(ParticipantOutput::RelayClose { link });
        self.update_host_window();
    }

    /// Every relay link goes (the host link did: the host introduces again once back).
    pub(super) fn drop_all_links(&mut self, now: Instant) {
        let links: Vec<u32> = self.relay.as_ref().map(|r| r.swarm.links.keys().copied().collect()).unwrap_or_default();
        links.into_iter().for_each(|l| self.drop_link(now, l, None));
    }

    /// Bytes from a neighbour's control channel. A neighbour that breaks the protocol loses
    /// its link (never this participant's run).
    pub fn handle_relay_control(&mut self, now: Instant, link: u32, b: &[u8]) {
        match stream::decode_from(b, Role::Relay, Some(&self.manifest)) {
            Ok(msg) => self.handle_relay_message(now, link, msg),
            Err(e) => {
                self.now = now;
                self.drop_link(now, link, Some(&format!("it broke the protocol: {e}")));
            }
        }
    }

    /// A message from a neighbour.
    pub fn handle_relay_message(&mut self, now: Instant, link: u32, msg: Message) {
        self.now = now;
        let Some(n) = self.relay.as_mut().and_then(|r| r.swarm.links.get_mut(&link)) else { return };
        if !n.control.try_take(now, 1.0) {
            return self.drop_link(now, link, Some("it sent messages faster than a neighbour needs"));
        }
        if !n.up {
            // Its side of the link came up before this side heard: it is up.
            self.handle_relay_up(now, link);
        }
        let Some(r) = self.relay.as_mut() else { return };
        match msg {
            Message::Hello { version, .. } if version != PROTOCOL_VERSION => {
                return self.drop_link(now, link, Some(&format!("it speaks protocol {version}, this side {PROTOCOL_VERSION}")));
            }
            Message::Have(have) => self.neighbour_have(now, link, &have),
            Message::Request { space, chunks, priority } if self.stores.get(space).is_some() => r.serve.handle_request(link as u64, space, &chunks, priority),
            Message::Cancel { space, chunks } => r.serve.handle_cancel(link as u64, space, &chunks),
            Message::HashAsk { space, first } => {
                if let Some(b) = self.hashes.batch(space, first) {
                    self.out.push_back(ParticipantOutput::RelaySend { link, msg: Message::HashBatch(b.clone()) });
                }
            }
            Message::HashBatch(b) if self.handle_hash_batch(&b).is_err() => {
                return self.drop_link(now, link, Some("it passed on hashes the host did not sign"));
            }
            _ => {}
        }
        self.pump_relay(now);
        self.flush();
    }

    fn neighbour_have(&mut self, now: Instant, link: u32, have: &Have) {
        let Some(bound) = self.stores.get(have.space).map(|s| s.manifest().chunks) else { return };
        let Some(n) = self.relay.as_mut().and_then(|r| r.swarm.links.get_mut(&link)) else { return };
        let gone = n.handle_have(have, bound);
        if let Some(s) = self.stores.get_mut(have.space) {
            gone.into_iter().for_each(|ix| s.unmark(now, ix));
        }
        self.ask_waiting(now);
        let added: Vec<u32> = have.added.indices().take(FAR_PER_PASS * 4).collect();
        self.move_from_host(now, have.space, added);
    }

    /// What a neighbour now holds that this side asked the host for (read-ahead the host has
    /// not sent yet: its upload goes to what nobody holds first; what the reader is blocked
    /// on, if the neighbour would bring it within [`CRITICAL_WITHIN`]) is asked of the
    /// neighbour instead, and cancelled at the host.
    fn move_from_host(&mut self, now: Instant, space: Space, candidates: Vec<u32>) {
        let Some(r) = self.relay.as_ref() else { return };
        let Some(s) = self.stores.get(space) else { return };
        let pos = s.read_position();
        let end = pos.saturating_add(self.chunks_of(HORIZON));
        let asked_elsewhere = |ix: u32| r.awaited_from_neighbours(space, ix);
        let host_bound: Vec<u32> = candidates
            .into_iter()
            // Asked of the host a while ago: still in its queue, not on the wire (one asked a
            // moment ago may be on its way already, and would come twice).
            .filter(|&ix| s.in_flight_for(now, ix).is_some_and(|d| d >= MOVE_AFTER))
            .filter(|&ix| ix >= pos && ix < end && r.swarm.holders(space, ix) > 0 && !asked_elsewhere(ix))
            .take(FAR_PER_PASS)
            .collect();
        if host_bound.is_empty() {
            return;
        }
        // What the reader is blocked on too, if a neighbour would bring it at once: at the
        // start every newcomer is blocked on the same first chunks (and the MP4's index), and
        // the host, sending them to one after another, would reach the last many seconds
        // after the first had them.
        let (blocked, ahead): (Vec<u32>, Vec<u32>) = host_bound.into_iter().partition(|&ix| s.is_critical(ix));
        let mut rest = self.ask_neighbours(now, space, &ahead, false);
        rest.extend(self.ask_neighbours(now, space, &blocked, true));
        let moved: Vec<u32> = ahead.into_iter().chain(blocked).filter(|ix| !rest.contains(ix)).collect();
        if !moved.is_empty() {
            self.send(Message::Cancel { space, chunks: moved });
        }
    }

    /// Bytes from a neighbour's chunks channel.
    pub fn handle_relay_chunk(&mut self, now: Instant, link: u32, b: BytesMut) {
        let len = b.len();
        match stream::decode_chunk(b, self.manifest.chunk_size) {
            Ok(Some(p)) => self.handle_relay_chunk_parts(now, link, len, p.space, p.index, p.data),
            Ok(None) | Err(_) => {
                self.now = now;
                self.drop_link(now, link, Some("it sent something other than a chunk on the chunks channel"));
            }
        }
    }

    /// A chunk from a neighbour: taken only if asked of it and what the host hashed.
    pub fn handle_relay_chunk_parts(&mut self, now: Instant, link: u32, wire: usize, space: Space, index: u32, data: Bytes) {
        self.now = now;
        let Some(r) = self.relay.as_mut() else { return };
        let Some(n) = r.swarm.links.get_mut(&link) else { return };
        if !n.handle_delivered(now, space, index, data.len()) {
            tracing::debug!(link, "dropping chunk {index} of space {space}: not asked of this neighbour");
            self.unasked += 1;
            return;
        }
        let digest = (r.cfg.digest)(&data);
        match self.hashes.check(space, index, &digest) {
            super::hashes::Check::Good => {
                r.down_bytes += data.len() as u64;
                tracing::trace!(link, index, "relayed chunk {index}");
                // Checked against the host's own hash: as good as the host's chunk.
                if let Err(e) = self.handle_chunk_parts(now, wire, space, index, data) {
                    tracing::warn!(link, "a relayed chunk that matched its hash: {e}");
                    if let Some(s) = self.stores.get_mut(space) {
                        s.unmark(now, index);
                    }
                }
            }
            super::hashes::Check::Bad => self.relay_lied(now, link, space, index),
            super::hashes::Check::Unknown => {
                if let Some(s) = self.stores.get_mut(space) {
                    s.unmark(now, index);
                }
            }
        }
        self.pump_relay(now);
        self.flush();
    }

    /// A neighbour sent a chunk that is not what the host read: dropped, its link cut, the
    /// host told (it decides whether the neighbour relays any more).
    fn relay_lied(&mut self, now: Instant, link: u32, space: Space, index: u32) {
        let name = self.relay.as_ref().and_then(|r| r.swarm.links.get(&link)).map(|n| n.name.clone()).unwrap_or_default();
        tracing::warn!(link, "{name} sent chunk {index} of space {space} that does not match the host's hash: cutting the link");
        if let Some(r) = self.relay.as_mut() {
            r.lies += 1;
        }
        if let Some(s) = self.stores.get_mut(space) {
            s.unmark(now, index);
        }
        self.send(Message::BadChunk { link, space, index });
        self.event(crate::api::Event::Error { message: format!("{name} relayed a chunk that is not the host's: cut off, and the host told") });
        self.drop_link(now, link, None);
    }

    /// A chunk sent to a neighbour went out.
    pub fn handle_relay_sent(&mut self, now: Instant, link: u32, bytes: usize) {
        self.now = now;
        let Some(r) = self.relay.as_mut() else { return };
        r.serve.handle_sent(link as u64);
        r.up.record(now, bytes as u64);
        if let Some(n) = r.sending.get_mut(&link) {
            *n = n.saturating_sub(1);
        }
        self.pump_relay(now);
    }

    /// Serves neighbours' requests from what is held, within the relay limit.
    pub(super) fn pump_relay(&mut self, now: Instant) {
        let Some(r) = self.relay.as_mut() else { return };
        let chunk = self.manifest.chunk_size as usize;
        while r.may_send(now, chunk)
            && let Some(t) = r.serve.poll_transmit()
        {
            let link = t.peer as u32;
            match self.stores.get(t.space).and_then(|s| s.get_bytes(t.index)) {
                Some(data) => {
                    if let Some(b) = r.bucket.as_mut() {
                        b.consume(now, data.len() as f64);
                    }
                    *r.sending.entry(link).or_default() += 1;
                    self.out.push_back(ParticipantOutput::RelayChunk { link, space: t.space, index: t.index, data });
                }
                None => {
                    r.serve.handle_sent(t.peer);
                    let have = Have { space: t.space, reset: false, added: Runs::default(), dropped: Runs::from_sorted([t.index]) };
                    self.out.push_back(ParticipantOutput::RelaySend { link, msg: Message::Have(have) });
                }
            }
        }
    }

    /// Everything held, as `Have`s that start afresh (for a new neighbour, or the host).
    pub(super) fn full_haves(&self) -> Vec<Have> {
        let mut out = Vec::new();
        for space in self.switch.live_spaces().into_iter().chain(std::iter::once(stream::ORIGINAL)) {
            let Some(s) = self.stores.get(space).filter(|_| !out.iter().any(|h: &Have| h.space == space)) else { continue };
            let runs = Runs::from_sorted(s.held_indices());
            for (i, added) in runs.split().into_iter().enumerate() {
                out.push(Have { space, reset: i == 0, added, dropped: Runs::default() });
            }
        }
        out
    }

    /// The periodic pass: holdings told, overdue requests and slow links given up, read-ahead
    /// asked of neighbours.
    pub(super) fn relay_tick(&mut self, now: Instant) {
        let Some(r) = self.relay.as_mut() else { return };
        if now < r.next_tick {
            return;
        }
        r.next_tick = now + RELAY_EVERY;
        self.tell_holdings();
        self.give_up_overdue(now);
        self.stop_waiting(now);
        for space in self.switch.live_spaces() {
            let Some(pos) = self.stores.get(space).map(|s| s.read_position()) else { continue };
            let soon: Vec<u32> = (pos..pos.saturating_add(self.chunks_of(SOON))).collect();
            self.move_from_host(now, space, soon);
        }
        self.fetch_far(now);
        self.fetch_rest(now);
        if tracing::enabled!(tracing::Level::TRACE) {
            self.trace_state();
        }
        self.pump_relay(now);
    }

    /// A saved copy wants the whole file, and the room (paused, say) may never bring the far
    /// end within reach of neighbours or seeds: once the reader's next [`SOON`] is all held
    /// or on its way and the store has room for more, what lies beyond it (or behind the
    /// reader) is asked of a neighbour that holds it, else of the host — a little each pass,
    /// one chunk at a time while a download limit allows.
    fn fetch_rest(&mut self, now: Instant) {
        if !self.cfg.store.fill_behind || self.relay.is_none() {
            return;
        }
        let space = stream::ORIGINAL;
        let soon = self.chunks_of(SOON);
        let Some(s) = self.stores.get_mut(space) else { return };
        let pos = s.read_position();
        let (in_flight, max) = s.in_flight_room();
        if in_flight >= max / 2 || !s.missing(pos, pos.saturating_add(soon), 1).is_empty() {
            return;
        }
        let mut lacking = s.missing(pos.saturating_add(soon), u32::MAX, REST_PER_PASS);
        if lacking.len() < REST_PER_PASS {
            lacking.extend(s.missing(0, pos, REST_PER_PASS - lacking.len()).into_iter().filter(|&ix| !s.seen(ix)));
        }
        let mut to_host = Vec::new();
        for ix in lacking {
            if !self.stores.get_mut(space).is_some_and(|s| s.download_ready(now)) {
                break;
            }
            let r = self.relay.as_ref().expect("checked");
            if r.awaited_from_neighbours(space, ix) {
                continue;
            }
            let held = r.swarm.holders(space, ix) > 0;
            if !(held && self.ask_neighbours(now, space, &[ix], false).is_empty()) {
                to_host.push(ix);
            }
            if let Some(s) = self.stores.get_mut(space) {
                s.mark_requested(now, ix);
                s.charge(now, &[ix]);
            }
        }
        if !to_host.is_empty() {
            self.send(Message::Request { space, chunks: to_host, priority: Priority::Window });
        }
    }

    /// What the original's store lacks and where each of those is (for a look at a stuck
    /// room with `RUST_LOG=syncy_core::participant=trace`).
    fn trace_state(&self) {
        let (Some(r), Some(s)) = (self.relay.as_ref(), self.stores.get(stream::ORIGINAL)) else { return };
        let lacking: Vec<(u32, bool, bool, bool)> = (0..self.manifest.chunks)
            .filter(|&ix| !s.has(ix) && !s.seen(ix))
            .take(16)
            .map(|ix| {
                (ix, s.is_in_flight(ix), r.waiting.contains_key(&(stream::ORIGINAL, ix)), r.swarm.links.values().any(|n| n.is_asked(stream::ORIGINAL, ix)))
            })
            .collect();
        let sending: usize = r.sending.values().sum();
        tracing::trace!(links = r.swarm.links.len(), up = r.swarm.up(), sending, "lacking (index, in flight, waiting, asked of a neighbour): {lacking:?}");
    }

    /// What was stored and let go since the last pass, to the host and every neighbour.
    fn tell_holdings(&mut self) {
        let Some(r) = self.relay.as_mut() else { return };
        let mut added = std::mem::take(&mut r.added);
        let mut haves = Vec::new();
        for space in self.switch.live_spaces().into_iter().chain(std::iter::once(stream::ORIGINAL)) {
            let Some(s) = self.stores.get_mut(space) else { continue };
            let mut dropped = s.take_evicted();
            let mut new = added.remove(&space).unwrap_or_default();
            if dropped.is_empty() && new.is_empty() {
                continue;
            }
            new.retain(|&ix| s.has(ix));
            dropped.retain(|&ix| !s.has(ix));
            for v in [&mut new, &mut dropped] {
                v.sort_unstable();
                v.dedup();
            }
            let (added, dropped) = (Runs::from_sorted(new), Runs::from_sorted(dropped));
            if added.runs() + dropped.runs() <= crate::protocol::have::MAX_RUNS {
                haves.push((Have { space, reset: false, added, dropped }, false));
            } else {
                // Too scattered for one message: everything afresh (to neighbours too, whole).
                haves.extend(self.full_haves().into_iter().filter(|h| h.space == space).map(|h| (h, true)));
            }
        }
        // Neighbours heard of most arrivals at once; what they have not heard of is what went,
        // and what came too fast to tell one by one.
        let links: Vec<u32> = self.relay.as_ref().map(|r| r.swarm.links.iter().filter(|(_, n)| n.up).map(|(l, _)| *l).collect()).unwrap_or_default();
        let mut untold = self.relay.as_mut().map(|r| std::mem::take(&mut r.untold)).unwrap_or_default();
        for (have, whole) in haves {
            let mut late = untold.remove(&have.space).unwrap_or_default();
            late.retain(|&ix| self.stores.get(have.space).is_some_and(|s| s.has(ix)));
            late.sort_unstable();
            late.dedup();
            // (A holding told afresh goes to them whole, in every part.)
            if whole || !have.dropped.is_empty() || !late.is_empty() {
                let told = if whole { have.clone() } else { Have { added: Runs::from_sorted(late), ..have.clone() } };
                for &link in &links {
                    self.out.push_back(ParticipantOutput::RelaySend { link, msg: Message::Have(told.clone()) });
                }
            }
            self.send(Message::Have(have));
        }
    }

    /// Requests past their deadline go back to the store (asked again, of anyone); links that
    /// never came up go.
    fn give_up_overdue(&mut self, now: Instant) {
        let within = self.chunks_of(HURRY_WITHIN);
        let near: BTreeMap<Space, u32> =
            self.stores.spaces().into_iter().filter_map(|sp| self.stores.get(sp).map(|s| (sp, s.read_position().saturating_add(within)))).collect();
        let Some(r) = self.relay.as_mut() else { return };
        let mut late = Vec::new();
        let mut stale = Vec::new();
        for (&link, n) in r.swarm.links.iter_mut() {
            let overdue = n.take_overdue(now, |sp, ix| near.get(&sp).is_some_and(|&b| ix < b));
            if !overdue.is_empty() {
                late.push((link, overdue));
            }
            if !n.up && now.saturating_duration_since(n.since) >= OPEN_WITHIN {
                stale.push(link);
            }
        }
        for (link, chunks) in late {
            tracing::debug!(link, "{} chunks asked of this neighbour are late: asking again", chunks.len());
            for (space, ix) in chunks {
                if let Some(s) = self.stores.get_mut(space) {
                    s.unmark(now, ix);
                }
                self.out.push_back(ParticipantOutput::RelaySend { link, msg: Message::Cancel { space, chunks: vec![ix] } });
            }
        }
        for link in stale {
            self.drop_link(now, link, Some("the link did not come up"));
        }
    }

    /// Read-ahead beyond [`SOON`], from neighbours only, the rarest chunks first.
    fn fetch_far(&mut self, now: Instant) {
        if self.relay.as_ref().is_none_or(|r| r.swarm.up() == 0) {
            return;
        }
        for space in self.switch.live_spaces() {
            // `--download-limit` holds for what neighbours send too.
            if !self.stores.get_mut(space).is_some_and(|s| s.download_ready(now)) {
                continue;
            }
            let Some(s) = self.stores.get(space) else { continue };
            let (soon, horizon) = (self.chunks_of(SOON), self.chunks_of(HORIZON));
            let pos = s.read_position();
            let missing = s.missing(pos.saturating_add(soon), pos.saturating_add(horizon), FAR_PER_PASS * 4);
            let mut wanted: Vec<(usize, u32)> = Vec::new();
            let swarm = &self.relay.as_ref().expect("checked").swarm;
            for ix in missing {
                let holders = swarm.holders(space, ix);
                if holders > 0 {
                    wanted.push((holders, ix));
                }
            }
            wanted.sort_unstable();
            wanted.truncate(FAR_PER_PASS);
            let chunks: Vec<u32> = wanted.into_iter().map(|(_, ix)| ix).collect();
            if self.stores.download_limit() == 0 {
                self.ask_neighbours(now, space, &chunks, false);
                continue;
            }
            // Under a limit, one at a time while it allows (a batch would run it into debt
            // that holds back even what the reader is blocked on).
            for ix in chunks {
                if !self.stores.get_mut(space).is_some_and(|s| s.download_ready(now)) {
                    break;
                }
                if self.ask_neighbours(now, space, &[ix], false).is_empty()
                    && let Some(s) = self.stores.get_mut(space)
                {
                    s.charge(now, &[ix]);
                }
            }
        }
    }

    /// Asks neighbours for `chunks` of `space` (already wanted by the store, or to be marked
    /// so here), each of the one expected to bring it first (`critical`: the reader is blocked
    /// on them; else as soon as they are needed: within [`SOON`] of the reader, first);
    /// returns those no neighbour can bring (for the host). A chunk whose hash is not held is
    /// not asked of a neighbour: the host is asked for its batch.
    pub(super) fn ask_neighbours(&mut self, now: Instant, space: Space, chunks: &[u32], critical: bool) -> Vec<u32> {
        let mut rest = Vec::new();
        let mut by_link: BTreeMap<(u32, Priority), Vec<u32>> = BTreeMap::new();
        let soon = self.stores.get(space).map_or(0, |s| s.read_position()).saturating_add(self.chunks_of(SOON));
        // All that is asked of neighbours together stays within IN_FLIGHT of media: more would
        // queue at this side's own downlink, ahead of the host's clock messages.
        let cap = self.chunks_of(IN_FLIGHT).max(16) as usize;
        let mut total: usize = self.relay.as_ref().map_or(0, |r| r.swarm.links.values().map(Neighbour::asked).sum());
        for &ix in chunks {
            let need = if critical {
                Need::Now
            } else if ix < soon {
                Need::Soon
            } else {
                Need::Later
            };
            let (priority, within) = match need {
                Need::Now => (Priority::Critical, CRITICAL_WITHIN),
                Need::Soon => (Priority::Critical, SOON),
                Need::Later => (Priority::Window, HORIZON),
            };
            let len = self.stores.get(space).and_then(|s| s.manifest().chunk_len(ix)).unwrap_or(0);
            if self.hashes.hash(space, ix).is_none() {
                self.ask_hashes(now, space, ix);
                rest.push(ix);
                continue;
            }
            let Some(r) = self.relay.as_mut() else { return chunks.to_vec() };
            if need != Need::Now && total >= cap {
                rest.push(ix);
                continue;
            }
            match r.swarm.pick(now, space, ix, len, need, within) {
                Some(link) => {
                    total += 1;
                    r.swarm.links.get_mut(&link).expect("picked").ask(now, space, ix, len, need);
                    by_link.entry((link, priority)).or_default().push(ix);
                    if let Some(s) = self.stores.get_mut(space) {
                        s.mark_requested(now, ix);
                    }
                }
                None => rest.push(ix),
            }
        }
        for ((link, priority), chunks) in by_link {
            self.out.push_back(ParticipantOutput::RelaySend { link, msg: Message::Request { space, chunks, priority } });
        }
        rest
    }

    /// Asks the host for the hash batch of chunk `ix` (again only after a while).
    fn ask_hashes(&mut self, now: Instant, space: Space, ix: u32) {
        let first = batch_start(ix);
        let Some(r) = self.relay.as_mut() else { return };
        if r.hash_asked.get(&(space, first)).is_some_and(|t| now.saturating_duration_since(*t) < HASH_ASK_AGAIN) {
            return;
        }
        r.hash_asked.retain(|_, t| now.saturating_duration_since(*t) < HASH_ASK_AGAIN);
        r.hash_asked.insert((space, first), now);
        self.send(Message::HashAsk { space, first });
    }

    /// The host is sending these to be spread (it seeds them without being asked): they are
    /// expected, as if asked for. One that does not fit the store is dropped on arrival.
    pub(super) fn seed(&mut self, now: Instant, space: Space, chunks: Vec<u32>) {
        // Behind the reader only for a saved copy (it fills in what it skipped).
        let behind_too = self.cfg.store.fill_behind;
        let Some(s) = self.stores.get_mut(space).filter(|_| self.relay.is_some()) else { return };
        let pos = s.read_position();
        let mut unwanted = Vec::new();
        for ix in chunks {
            if (ix >= pos || behind_too) && s.missing(ix, ix.saturating_add(1), 1) == [ix] {
                s.mark_requested(now, ix);
            } else if !s.is_in_flight(ix) {
                unwanted.push(ix);
            }
        }
        // Held already (a resumed copy the host has not heard of yet), behind the reader (with
        // no copy to fill), or past what the store has room for: it would be dropped as unasked, so the host need
        // not send it. (One in flight from the host is its own request: left alone.)
        if !unwanted.is_empty() {
            self.send(Message::Cancel { space, chunks: unwanted });
        }
    }

    /// The host says a neighbour holds these or is getting them: they wait for one to say so
    /// (its `Have`), for [`ELSEWHERE_WAIT`] at most, then go back to the store.
    pub(super) fn elsewhere(&mut self, now: Instant, space: Space, chunks: Vec<u32>) {
        let Some(r) = self.relay.as_mut() else { return };
        for ix in chunks {
            if self.stores.get(space).is_some_and(|s| s.is_in_flight(ix)) {
                r.waiting.insert((space, ix), now + ELSEWHERE_WAIT);
            }
        }
        self.ask_waiting(now);
    }

    /// Chunks waiting for a neighbour that one now holds are asked of it.
    fn ask_waiting(&mut self, now: Instant) {
        let Some(r) = self.relay.as_mut() else { return };
        let held: Vec<(Space, u32)> = r.waiting.keys().filter(|(s, ix)| r.swarm.holders(*s, *ix) > 0).copied().collect();
        for (space, ix) in held {
            // Asked of a neighbour (it stays on its way in the store), or still waiting.
            if self.ask_neighbours(now, space, &[ix], false).is_empty()
                && let Some(r) = self.relay.as_mut()
            {
                r.waiting.remove(&(space, ix));
            }
        }
    }

    /// Chunks that waited too long go back to the store: asked again, of the host too.
    fn stop_waiting(&mut self, now: Instant) {
        let Some(r) = self.relay.as_mut() else { return };
        let late: Vec<(Space, u32)> = r.waiting.iter().filter(|(_, by)| **by <= now).map(|(k, _)| *k).collect();
        for k in late {
            r.waiting.remove(&k);
            if let Some(s) = self.stores.get_mut(k.0) {
                s.unmark(now, k.1);
            }
        }
    }

    /// Relaying, read-ahead asks the host only [`SOON`] ahead, neighbours or none: what lies
    /// beyond comes from neighbours, or from the host when it seeds (a participant alone, or
    /// the first to reach a part, is seeded; see `host::swarm`). Without the bound a newcomer
    /// would ask the host for its whole read-ahead before any neighbour was up.
    ///
    /// A participant that takes no seeds (a tight download limit) and has no neighbour up
    /// (none introduced, none up yet, or every link failed) has nobody to get the rest from: the host serves it
    /// as if it did not relay.
    pub(super) fn update_host_window(&mut self) {
        let alone = self.relay.as_ref().is_some_and(|r| r.swarm.up() == 0) && !self.takes_seeds();
        let window = self.relay.as_ref().filter(|_| !alone).map(|_| self.chunks_of(SOON));
        self.stores.all_mut().for_each(|s| s.set_host_window(window));
    }

    /// The original's average rate, B/s (1 MB/s when its duration is not known).
    fn stream_rate(&self) -> f64 {
        let m = &self.manifest;
        match m.duration_ms.filter(|&ms| ms > 0) {
            Some(ms) => m.size as f64 * 1000.0 / ms as f64,
            None => 1_000_000.0,
        }
    }

    /// Chunks of the original in `d` of media (at its average bit rate; at least eight).
    pub(super) fn chunks_of(&self, d: Duration) -> u32 {
        let m = &self.manifest;
        let per_second = self.stream_rate();
        ((per_second * d.as_secs_f64() / m.chunk_size.max(1) as f64).ceil() as u32).max(8)
    }

    /// How its relaying goes now (`None`: it does not relay).
    pub fn relay_report(&mut self, now: Instant) -> Option<RelayReport> {
        let seeds = self.takes_seeds();
        self.relay.as_mut().map(|r| r.report(now, seeds))
    }

    /// Seeds come unasked: a participant keeping a download limit near the stream's rate takes
    /// none (the default 50 MiB/s is no such limit), nor one that resumed a saved copy (the
    /// host would seed it what it holds on disk, before its cancel comes back).
    fn takes_seeds(&self) -> bool {
        let limit = self.stores.download_limit();
        !self.resumed && (limit == 0 || limit as f64 >= SEED_HEADROOM * self.stream_rate())
    }

    /// Relaying, a picture that waits (at the start, after a seek, after a stall) shows again
    /// only once [`BUFFER_GOAL`] is held ahead of the reader, or the end is: a room whose
    /// host uploads little more than the stream gets its data just in time from relays, and
    /// a picture that went on at the first frame would stop again at the next gap, over and
    /// over.
    /// Not while a level switch is under way: the new level's picture is what the switch
    /// waits for, and a rendition still being made may not be held that far ahead yet.
    pub(super) fn buffer_goal_unmet(&self, view: &super::PictureView) -> bool {
        if self.relay.is_none() || !self.presenter.buffering() || view.current.eof {
            return false;
        }
        let &[space] = &self.switch.live_spaces()[..] else { return false };
        let Some(s) = self.stores.get(space) else { return false };
        let goal = self.chunks_of(BUFFER_GOAL) as u64 * self.manifest.chunk_size as u64;
        let end = s.manifest().size.saturating_sub(s.read_position() as u64 * self.manifest.chunk_size as u64);
        s.readable_ahead(goal) < goal.min(end)
    }

    /// Whether it relays (and so has neighbours to ask).
    pub(super) fn relays(&self) -> bool {
        self.relay.is_some()
    }
}
