//! The host as the swarm's coordinator: who relays to whom, and what the host sends first.
//!
//! - **Holdings**: each relaying participant's `Have`s of the original, and how many hold
//!   each chunk.
//! - **Topology**: each relaying participant is introduced to [`TARGET_LINKS`] others (at
//!   most [`MAX_LINKS`], more with upload to spare: `Member::max_links`), those with the most
//!   spare relay upload first (their reported limit,
//!   else the most they have been seen to upload), the least-linked next. Introductions and
//!   SDPs go through the host's control channels ([`HostOutput::Introduce`] for the driver to
//!   sign; `RelaySignal`s forwarded only between a link's two ends).
//! - **Seeding**: what lies up to [`SEED_AHEAD`] ahead of the room that nobody holds is sent
//!   by the host to one participant with spare upload (a `Seed` it then asks for; chunk by
//!   chunk in turn across the quarter with the most), a few seconds' worth at a time; the
//!   others get it from neighbours. One still held by a single participant a while after it
//!   left the host, in the nearer half, goes once more, to another. Read-ahead nobody holds
//!   within [`SEED_FIRST`] of the room is seeded to the first to ask for it (its neighbours
//!   are told to wait for that copy). The host's own upload goes to that, and to what a
//!   participant needs within its `SOON` window that no neighbour has.
//! - **Lies**: a link whose chunk failed its hash check is cut at once; a participant two
//!   others accuse relays no more.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use super::{HostCore, HostOutput};
use crate::participant::swarm::Bits;
use crate::protocol::guest::GuestId;
use crate::protocol::have::Have;
use crate::protocol::relay::RelaySdp;
use crate::protocol::signal::PeerId;
use crate::protocol::stream::{Message, ORIGINAL, Priority, RelayReport, Space};

/// Links each relaying participant is given.
pub const TARGET_LINKS: usize = 5;
/// Links a participant has at most, before its upload earns it more (see
/// `Member::max_links`).
pub const MAX_LINKS: usize = 8;
/// Spare upload (B/s) that earns a member one link more.
pub const SPARE_PER_LINK: u64 = 1_000_000;
/// Links a participant has at most, however fast.
pub const MOST_LINKS: usize = 12;
/// How often the topology and the seeds are looked at.
pub const SWARM_EVERY: Duration = Duration::from_millis(250);
/// How far ahead of the room the host seeds.
pub const SEED_AHEAD: Duration = Duration::from_secs(30);
/// Read-ahead nobody holds this near the room is seeded to the first to ask for it (beyond,
/// it waits its turn with all read-ahead: the host's upload would otherwise go to new chunks
/// far ahead while what a reader needs next, held by someone out of its reach, waited).
pub const SEED_FIRST: Duration = Duration::from_secs(8);
/// Seeds go at most this many times the stream's rate.
pub const SEED_RATE: f64 = 1.2;
/// Seeds sent and not yet held anywhere, at most, in media time.
pub const SEED_OUT: Duration = Duration::from_secs(4);
/// A seed not held by anyone this long after it was sent is sent again (to someone).
pub const SEED_AGAIN: Duration = Duration::from_secs(10);
/// How long the host remembers whom it sent (or queued) a chunk of the original to: a
/// neighbour of theirs asking for it meanwhile is told `Elsewhere`.
pub const RECENT: Duration = Duration::from_secs(5);
/// A seed this young is taken to be on its way to its member: its own read-ahead request for
/// it is not served too.
const SEED_IN_TRANSIT: Duration = Duration::from_secs(2);
/// A neighbour's seed of a chunk this young is waited for, even by a participant asking
/// for the chunk again after `Elsewhere` (seeds go before others' read-ahead, so it comes
/// soon).
const SEED_WAITED: Duration = Duration::from_secs(3);
/// How long a seed a member cancelled is not seeded to it again.
const DECLINED_FOR: Duration = Duration::from_secs(30);
/// Chunks [`Swarm::recent`] holds before it drops what is older than [`RECENT`].
const RECENT_MAX: usize = 4096;
/// A participant told `Elsewhere` for a chunk that asks for it again this much later is sent
/// it (its neighbours did not bring it).
pub const ELSEWHERE_WAIT: Duration = Duration::from_secs(1);
/// A link this young may not be up yet: its ends are not told `Elsewhere` for each other.
pub const LINK_SETTLE: Duration = Duration::from_secs(3);
/// SDPs the host forwards for each end of a link (an offer, or an answer).
pub const SDPS_PER_END: u8 = 1;
/// Pairs remembered as failed, at most (a room of 100 has 4950 pairs).
const MAX_FAILED: usize = 16_384;
/// Distinct participants whose word bars a relay (one alone might be the liar).
const ACCUSERS_TO_BAR: usize = 2;
/// Spare upload assumed of a participant nothing is known of yet, B/s.
const FIRST_SPARE: u64 = 1_000_000;

/// One relaying participant.
#[derive(Debug, Default)]
struct Member {
    report: RelayReport,
    /// The most it has been seen to upload, B/s.
    peak_up: u64,
    links: BTreeSet<u32>,
    holds: Bits,
    /// Its holdings have been heard (its first `Have`): until then it may hold anything.
    heard: bool,
    /// Seeds it cancelled (held on disk, say, where its `Have`s do not look, or no room for
    /// them) and when: not seeded to it again for [`DECLINED_FOR`].
    declined: HashMap<u32, Instant>,
}

impl Member {
    fn takes_seeds(&self) -> bool {
        self.heard && self.report.seeds
    }

    fn declined(&self, ix: u32, now: Instant) -> bool {
        self.declined.get(&ix).is_some_and(|t| now.saturating_duration_since(*t) < DECLINED_FOR)
    }

    /// Links it may have: [`MAX_LINKS`], and one more for each [`SPARE_PER_LINK`] of spare
    /// upload, up to [`MOST_LINKS`] (one whose upload was not seen yet is
    /// taken to have `FIRST_SPARE`, so nine). Most of a room's upload is in its few
    /// fast uplinks (log-uniform over 1–50 Mb/s, the fastest quarter has three fifths of it),
    /// and a neighbour draws little more than the stream from any one link: held to eight,
    /// a fast uplink idled while slow ones were the room's bottleneck (a hundred participants
    /// used 43 % of their upload).
    fn max_links(&self) -> usize {
        (MAX_LINKS + (self.spare() / SPARE_PER_LINK) as usize).min(MOST_LINKS)
    }

    /// What it could still upload, B/s, as far as the host can tell.
    fn spare(&self) -> u64 {
        // What it was seen to upload, not what it says it could: a participant claiming a huge
        // limit would otherwise get every seed and introduction.
        let seen = self.peak_up.max(FIRST_SPARE);
        let cap = if self.report.limit_bps > 0 { self.report.limit_bps.min(seen) } else { seen };
        cap.saturating_sub(self.report.up_bps / 2)
    }
}

/// A seed sent.
#[derive(Debug, Clone, Copy)]
struct Seeded {
    to: PeerId,
    at: Instant,
    asked: bool,
}

impl Seeded {
    /// Sent to `peer` less than `within` ago.
    fn sent_to(&self, peer: PeerId, now: Instant, within: Duration) -> bool {
        self.to == peer && now.saturating_duration_since(self.at) < within
    }
}

/// The coordinator's state.
#[derive(Debug, Default)]
pub(super) struct Swarm {
    members: BTreeMap<PeerId, Member>,
    /// What relays carried (for the indicator).
    pub(super) relayed: super::relayed::Relayed,
    /// Link id → its offerer and answerer.
    links: BTreeMap<u32, (PeerId, PeerId)>,
    /// When each link was introduced: one younger than [`LINK_SETTLE`] may not be up yet, and
    /// sends no one `Elsewhere`.
    link_since: HashMap<u32, Instant>,
    /// SDPs each end of a link has sent through the host (an offer or an answer, at most
    /// [`SDPS_PER_END`]).
    sdps: HashMap<(u32, PeerId), u8>,
    /// Pairs whose link ended (failed to come up, or closed): not introduced again.
    failed: HashSet<(GuestId, GuestId)>,
    /// Who accused whom of relaying what the host did not hash, by key (a reconnection is a
    /// new peer id, not a new person).
    accusers: HashMap<GuestId, HashSet<GuestId>>,
    /// Keys that relay no more.
    barred: HashSet<GuestId>,
    next_link: u32,
    /// Per chunk of the original: how many members hold it.
    holders: Vec<u16>,
    /// Seeds sent: to whom, when, and whether it asked for the chunk (its read-ahead, seeded:
    /// its cancel is no refusal of a seed).
    seeded: HashMap<u32, Seeded>,
    /// The member the next seeds go to first (round robin among the best).
    seed_turn: u64,
    /// Paces seeds (see [`SEED_RATE`]).
    seed_bucket: Option<crate::rate::TokenBucket>,
    next_pass: Option<Instant>,
    /// Whom each chunk of the original was sent (or queued) to lately, and when.
    recent: HashMap<u32, Vec<(PeerId, Instant)>>,
    /// When [`Swarm::recent`] is pruned next (its size).
    recent_max: usize,
    /// Chunks a participant was told to get elsewhere, and when.
    told: HashMap<(PeerId, u32), Instant>,
    /// When each chunk of the original last left the host (not merely queued: read-ahead
    /// queued behind seeds may wait long), for [`RECENT`].
    wired: HashMap<u32, Instant>,
}

impl Swarm {
    /// What `peer` says it relays now, B/s (`None`: it does not relay).
    pub(super) fn relay_up_bps(&self, peer: PeerId) -> Option<u64> {
        self.members.get(&peer).map(|m| m.report.up_bps)
    }

    /// Whether anyone relays.
    pub(super) fn has_members(&self) -> bool {
        !self.members.is_empty()
    }

    /// Whether `peer` relays (it gets the hashes of the original as they are made).
    pub(super) fn is_member(&self, peer: PeerId) -> bool {
        self.members.contains_key(&peer)
    }

    /// Whether `peer` says it holds chunk `ix`.
    fn holds(&self, peer: PeerId, ix: u32) -> bool {
        self.members.get(&peer).is_some_and(|m| m.holds.has(ix))
    }

    /// Whether chunk `ix` was sent or queued to `peer` lately.
    fn sent_lately(&self, peer: PeerId, ix: u32, now: Instant) -> bool {
        self.recent.get(&ix).is_some_and(|v| v.iter().any(|(p, t)| *p == peer && now.saturating_duration_since(*t) < RECENT))
    }

    /// Chunk `ix` was sent or queued to `peer` at `now` (one entry per peer: a participant
    /// asking again and again makes no list longer).
    fn note_sent(&mut self, ix: u32, peer: PeerId, now: Instant) {
        // Noted before anyone relays too (the first relaying participant's early requests
        // must not be seeded to it again), so kept small here as well as by the pass.
        // A prune that leaves it over half full doubles the bound (a fast download notes
        // thousands of chunks within RECENT): not a full pass for every chunk sent.
        if self.recent.len() >= self.recent_max.max(RECENT_MAX) {
            self.recent.retain(|_, v| {
                v.retain(|(_, t)| now.saturating_duration_since(*t) < RECENT);
                !v.is_empty()
            });
            self.recent_max = (self.recent.len() * 2).max(RECENT_MAX);
        }
        let v = self.recent.entry(ix).or_default();
        match v.iter_mut().find(|(p, _)| *p == peer) {
            Some(e) => e.1 = now,
            None => v.push((peer, now)),
        }
    }

    /// Chunk `ix` of the original left the host at `now`.
    pub(super) fn note_wired(&mut self, ix: u32, now: Instant) {
        if self.members.is_empty() {
            return;
        }
        self.wired.insert(ix, now);
    }

    /// Nobody holds chunk `ix`, nor is it seeded or did it leave the host lately: its first
    /// copy is still to go.
    fn unspread(&self, ix: u32, now: Instant) -> bool {
        self.holders.get(ix as usize) == Some(&0) && self.quiet(ix, now)
    }

    /// No seed of chunk `ix` is out, and it left the host more than [`RECENT`] ago.
    fn quiet(&self, ix: u32, now: Instant) -> bool {
        !self.seeded.contains_key(&ix) && self.wired.get(&ix).is_none_or(|t| now.saturating_duration_since(*t) >= RECENT)
    }

    /// The member at the other end of `link` from `peer`.
    fn other_end(&self, link: u32, peer: PeerId) -> Option<PeerId> {
        self.links.get(&link).and_then(|&(a, b)| {
            if a == peer {
                Some(b)
            } else if b == peer {
                Some(a)
            } else {
                None
            }
        })
    }

    /// Whether members `a` and `b` have a link.
    fn linked(&self, a: PeerId, b: PeerId) -> bool {
        self.members.get(&a).is_some_and(|m| m.links.iter().any(|&l| self.other_end(l, a) == Some(b)))
    }

    /// A member that holds chunk `ix`, if any does.
    fn a_holder(&self, ix: u32) -> Option<PeerId> {
        let held = self.holders.get(ix as usize).is_some_and(|&n| n > 0);
        held.then(|| self.members.keys().find(|&&h| self.holds(h, ix)).copied()).flatten()
    }

    /// One member holds chunk `ix`, and its copy has not spread in the [`RECENT`] since it
    /// left the host (no seed of it is out either): its holder's upload is taken, and a
    /// second copy is to go.
    fn stuck(&self, ix: u32, now: Instant) -> bool {
        self.holders.get(ix as usize) == Some(&1) && self.quiet(ix, now)
    }

    fn hold(&mut self, ix: u32, on: bool) {
        let Some(h) = self.holders.get_mut(ix as usize) else { return };
        *h = if on { h.saturating_add(1) } else { h.saturating_sub(1) };
    }
}

impl HostCore {
    /// When the swarm's next pass is due.
    pub(super) fn swarm_timeout(&self) -> Option<Instant> {
        self.swarm.next_pass
    }

    /// A participant's report says how its relaying goes (or that it does not relay).
    /// (`None` from a first `Have`: a member whose report is still to come.)
    pub(super) fn relay_report(&mut self, now: Instant, peer: PeerId, report: Option<RelayReport>) {
        if !self.peers.get(&peer).is_some_and(|p| p.connected && !self.swarm.barred.contains(&p.guest)) {
            return;
        }
        if self.swarm.holders.is_empty() {
            self.swarm.holders = vec![0; self.manifest.chunks as usize];
        }
        let m = self.swarm.members.entry(peer).or_default();
        if let Some(r) = report {
            m.peak_up = m.peak_up.max(r.up_bps);
            if let Some(p) = self.peers.get(&peer) {
                self.swarm.relayed.report(p.guest, r.up_bytes);
            }
            m.report = r;
        }
        self.swarm.next_pass.get_or_insert(now);
    }

    /// A participant's holdings changed (its first `Have` says it relays).
    pub(super) fn relay_have(&mut self, now: Instant, peer: PeerId, have: &Have) {
        if have.space != ORIGINAL {
            return;
        }
        if !self.swarm.members.contains_key(&peer) {
            self.relay_report(now, peer, None);
        }
        let Some(m) = self.swarm.members.get_mut(&peer) else { return };
        m.heard = true;
        let chunks = self.manifest.chunks;
        let mut changes: Vec<(u32, bool)> = Vec::new();
        if have.reset {
            let old = std::mem::take(&mut m.holds);
            changes.extend((0..chunks).filter(|&ix| old.has(ix)).map(|ix| (ix, false)));
        }
        // Runs past the file's end are cut (the cost of a `Have` is charged by what it covers).
        let added = have.added.ranges().flat_map(|r| r.start..r.end.min(chunks)).map(|ix| (ix, true));
        let dropped = have.dropped.ranges().flat_map(|r| r.start..r.end.min(chunks)).map(|ix| (ix, false));
        for (ix, on) in added.chain(dropped) {
            if m.holds.has(ix) != on {
                m.holds.set(ix, on);
                changes.push((ix, on));
            }
        }
        for (ix, on) in changes {
            self.swarm.hold(ix, on);
            if on {
                self.swarm.seeded.remove(&ix);
            }
        }
    }

    /// `peer` wrote an SDP for one of its links: to the other end (an offer or an answer
    /// each; more is not forwarded).
    pub(super) fn relay_signal(&mut self, peer: PeerId, sdp: RelaySdp) {
        let Some(&(a, b)) = self.swarm.links.get(&sdp.link).filter(|(a, b)| *a == peer || *b == peer) else {
            return tracing::debug!(peer, "an SDP for link {}, which it is not on", sdp.link);
        };
        let sent = self.swarm.sdps.entry((sdp.link, peer)).or_insert(0);
        if *sent >= SDPS_PER_END {
            return tracing::debug!(peer, "a second SDP for link {}: not forwarded", sdp.link);
        }
        *sent += 1;
        self.send(if a == peer { b } else { a }, Message::RelaySignal(sdp));
    }

    /// An end of `link` says it is over (or never came up).
    pub(super) fn relay_bye(&mut self, peer: PeerId, link: u32, reason: &str) {
        if let Some(&(a, b)) = self.swarm.links.get(&link).filter(|(a, b)| *a == peer || *b == peer) {
            tracing::debug!(link, "relay link {a}–{b} over: {reason}");
            let other = if a == peer { b } else { a };
            if let (Some(x), Some(y)) = (self.peers.get(&a), self.peers.get(&b))
                && self.swarm.failed.len() < MAX_FAILED
            {
                self.swarm.failed.insert((x.guest, y.guest));
            }
            self.cut_link(link);
            let reason = crate::protocol::stream::clip_text(reason, crate::protocol::stream::MAX_TEXT).to_string();
            self.send(other, Message::RelayBye { link, reason });
        }
    }

    /// `peer` says the other end of `link` sent a chunk that is not the host's.
    pub(super) fn relay_bad_chunk(&mut self, peer: PeerId, link: u32, space: Space, index: u32) {
        let Some(&(a, b)) = self.swarm.links.get(&link).filter(|(a, b)| *a == peer || *b == peer) else { return };
        let liar = if a == peer { b } else { a };
        self.cut_link(link);
        self.send(liar, Message::RelayBye { link, reason: "you relayed a chunk that is not the host's".into() });
        let (liar_name, by) = (self.names(&[liar]).remove(0), self.names(&[peer]).remove(0));
        tracing::warn!(liar, "{by} says {liar_name} relayed chunk {index} of space {space} that is not the host's");
        let (Some(liar_key), Some(by_key)) = (self.peers.get(&liar).map(|p| p.guest), self.peers.get(&peer).map(|p| p.guest)) else { return };
        let accusers = self.swarm.accusers.entry(liar_key).or_default();
        if accusers.len() < ACCUSERS_TO_BAR {
            accusers.insert(by_key);
        }
        let barred = accusers.len() >= ACCUSERS_TO_BAR && !self.swarm.barred.contains(&liar_key);
        self.event(crate::api::Event::Warning { message: format!("{by} got a chunk from {liar_name} that is not the host's: their link is cut") });
        if barred {
            self.bar(liar, &liar_name);
        }
    }

    /// `peer` relays no more: every link of its goes, and it is never introduced again.
    fn bar(&mut self, peer: PeerId, name: &str) {
        tracing::warn!(peer, "{name} relays no more: chunks from it failed their hash check at two participants");
        self.event(crate::api::Event::Warning { message: format!("{name} relayed chunks that are not the host's to two participants: it relays no more") });
        if let Some(key) = self.peers.get(&peer).map(|p| p.guest) {
            self.swarm.barred.insert(key);
        }
        let links: Vec<u32> = self.swarm.members.get(&peer).map(|m| m.links.iter().copied().collect()).unwrap_or_default();
        for &link in &links {
            self.send(peer, Message::RelayBye { link, reason: "you relayed chunks that are not the host's".into() });
        }
        // What it said it holds counts no more (it may have lied about that too).
        self.swarm_remove(peer);
    }

    /// `peer` left: its links end, its holdings go.
    pub(super) fn swarm_remove(&mut self, peer: PeerId) {
        self.swarm.told.retain(|(p, _), _| *p != peer);
        let Some(m) = self.swarm.members.remove(&peer) else { return };
        for ix in (0..self.manifest.chunks).filter(|&ix| m.holds.has(ix)) {
            self.swarm.hold(ix, false);
        }
        for link in m.links {
            if let Some((a, b)) = self.swarm.links.get(&link).copied() {
                let other = if a == peer { b } else { a };
                self.cut_link(link);
                self.send(other, Message::RelayBye { link, reason: "they left".into() });
            }
        }
        if self.swarm.members.is_empty() {
            self.swarm.next_pass = None;
        }
    }

    fn cut_link(&mut self, link: u32) {
        self.swarm.link_since.remove(&link);
        if let Some((a, b)) = self.swarm.links.remove(&link) {
            for p in [a, b] {
                self.swarm.sdps.remove(&(link, p));
                if let Some(m) = self.swarm.members.get_mut(&p) {
                    m.links.remove(&link);
                }
            }
        }
    }

    /// What of `peer`'s request for chunks of the original the host sends, critical ones
    /// apart: critical ones, and read-ahead none of its neighbours holds or is being sent (or
    /// that it asked for again after being told `Elsewhere`). The rest it is told to get from
    /// them.
    ///
    /// Read-ahead that nobody in the room holds or is being seeded, within [`SEED_FIRST`] of
    /// the room, is seeded to `peer` (the host's first copy of a chunk goes before
    /// anyone's second): at the edge of what the room holds every reader asks for the same
    /// next chunks, and sent as plain read-ahead each one's copy waited its turn behind the
    /// others', so the edge crept forward at the host's upload divided by the room.
    /// A neighbour's seed of the chunk on its way is waited for even when asked again.
    pub(super) fn triage(&mut self, now: Instant, peer: PeerId, chunks: Vec<u32>, priority: Priority) -> (Vec<u32>, Vec<u32>) {
        if !self.swarm.members.contains_key(&peer) {
            // Not relaying (or not yet): all of it, noted so that none of it is seeded too.
            chunks.iter().for_each(|&ix| self.swarm.note_sent(ix, peer, now));
            return if priority == Priority::Critical { (chunks, vec![]) } else { (vec![], chunks) };
        }
        let neighbours = self.neighbours(peer, now);
        let seed_range = self.seed_range(now, SEED_FIRST);
        let takes_seeds = self.swarm.members[&peer].takes_seeds();
        let (mut elsewhere, mut seeds) = (Vec::new(), Vec::new());
        let (mut urgent, mut send) = (Vec::new(), Vec::new());
        // Read-ahead seeded to it a moment ago is on its way (it asked before the `Seed` came):
        // not sent twice. Later, or what it is blocked on, is sent (the seed may be lost).
        let on_its_way = |ix: &u32| priority == Priority::Window && self.swarm.seeded.get(ix).is_some_and(|s| s.sent_to(peer, now, SEED_IN_TRANSIT));
        for ix in chunks.into_iter().filter(|ix| !on_its_way(ix)).collect::<Vec<_>>() {
            let asked_again = self.swarm.told.get(&(peer, ix)).is_some_and(|t| now.saturating_duration_since(*t) >= ELSEWHERE_WAIT);
            let neighbour_has = neighbours.iter().any(|&n| self.swarm.holds(n, ix) || self.swarm.sent_lately(n, ix, now));
            let seeded_to_neighbour = self.swarm.seeded.get(&ix).is_some_and(|s| neighbours.iter().any(|&n| s.sent_to(n, now, SEED_WAITED)));
            // (Not to one that takes no seeds: its neighbours would wait on a thin line.)
            let first_copy = takes_seeds
                && seed_range.contains(&ix)
                && self.swarm.unspread(ix, now)
                && !self.swarm.members[&peer].declined(ix, now)
                && !neighbours.iter().any(|&n| self.swarm.holds(n, ix));
            if priority == Priority::Window && first_copy {
                self.swarm.told.remove(&(peer, ix));
                seeds.push(ix);
            } else if priority == Priority::Window && neighbour_has && (!asked_again || seeded_to_neighbour) {
                // (What the reader is blocked on is never told to wait: it is sent at once.)
                self.swarm.told.entry((peer, ix)).or_insert(now);
                elsewhere.push(ix);
            } else {
                self.swarm.told.remove(&(peer, ix));
                self.swarm.note_sent(ix, peer, now);
                if priority == Priority::Critical { urgent.push(ix) } else { send.push(ix) }
            }
        }
        if !elsewhere.is_empty() {
            self.send(peer, Message::Elsewhere { space: ORIGINAL, chunks: elsewhere });
        }
        // (It asked for them: they are on its way already, no `Seed` needed.)
        for ix in self.scheduler.handle_seed(peer, ORIGINAL, &seeds) {
            self.swarm.seeded.insert(ix, Seeded { to: peer, at: now, asked: true });
            self.swarm.note_sent(ix, peer, now);
        }
        (urgent, send)
    }

    /// The chunks of the original from the room's position to `ahead` past it.
    fn seed_range(&self, now: Instant, ahead: Duration) -> std::ops::Range<u32> {
        let Some(duration_us) = self.manifest.duration_ms.filter(|&d| d > 0).map(|d| d as f64 * 1000.0) else { return 0..0 };
        let chunks = self.manifest.chunks;
        let per_us = chunks as f64 / duration_us;
        let from = ((self.room_position(now).max(0) as f64 * per_us) as u32).min(chunks);
        let to = from.saturating_add((ahead.as_micros() as f64 * per_us).ceil() as u32).min(chunks);
        from..to
    }

    /// `peer` cancelled chunks of `space`: those seeded to it it does not want.
    pub(super) fn seeds_declined(&mut self, peer: PeerId, space: Space, chunks: &[u32]) {
        if space != ORIGINAL {
            return;
        }
        let Some(m) = self.swarm.members.get_mut(&peer) else { return };
        for &ix in chunks {
            // (Its own read-ahead, seeded: it was moved to a neighbour, or its level switched;
            // no refusal.)
            if let Some(&s) = self.swarm.seeded.get(&ix).filter(|s| s.to == peer) {
                self.swarm.seeded.remove(&ix);
                if !s.asked {
                    m.declined.insert(ix, self.now);
                }
            }
        }
    }

    /// The other ends of `peer`'s links old enough to be up (see [`LINK_SETTLE`]).
    fn neighbours(&self, peer: PeerId, now: Instant) -> Vec<PeerId> {
        let Some(m) = self.swarm.members.get(&peer) else { return vec![] };
        let settled = |l: &&u32| self.swarm.link_since.get(*l).is_some_and(|t| now.saturating_duration_since(*t) >= LINK_SETTLE);
        m.links.iter().filter(settled).filter_map(|&l| self.swarm.other_end(l, peer)).collect()
    }

    /// The periodic pass: new introductions, then seeds.
    pub(super) fn swarm_pass(&mut self, now: Instant) {
        if self.swarm.next_pass.is_none_or(|t| t > now) {
            return;
        }
        self.swarm.next_pass = Some(now + SWARM_EVERY);
        self.swarm.recent.retain(|_, v| {
            v.retain(|(_, t)| now.saturating_duration_since(*t) < RECENT);
            !v.is_empty()
        });
        self.swarm.told.retain(|_, t| now.saturating_duration_since(*t) < RECENT * 2);
        self.swarm.wired.retain(|_, t| now.saturating_duration_since(*t) < RECENT);
        for m in self.swarm.members.values_mut() {
            m.declined.retain(|_, t| now.saturating_duration_since(*t) < DECLINED_FOR);
        }
        self.introduce_more(now);
        self.seed_ahead(now);
    }

    /// Relaying members still connected, not barred.
    fn relaying(&self) -> Vec<PeerId> {
        let ok = |p: &PeerId| self.peers.get(p).is_some_and(|x| x.connected && !self.swarm.barred.contains(&x.guest));
        self.swarm.members.keys().filter(|p| ok(p)).copied().collect()
    }

    /// Each member short of [`TARGET_LINKS`] is introduced to one more, the best there is.
    fn introduce_more(&mut self, now: Instant) {
        let members = self.relaying();
        for &p in &members {
            let Some(m) = self.swarm.members.get(&p).filter(|m| m.links.len() < TARGET_LINKS) else { continue };
            let mine: BTreeSet<PeerId> = m.links.iter().filter_map(|l| self.swarm.links.get(l)).map(|&(a, b)| if a == p { b } else { a }).collect();
            let key = |p: PeerId| self.peers.get(&p).map(|x| x.guest);
            let failed = |q: PeerId| match (key(p), key(q)) {
                (Some(a), Some(b)) => self.swarm.failed.contains(&(a, b)) || self.swarm.failed.contains(&(b, a)),
                _ => true,
            };
            let best = members
                .iter()
                .filter(|&&q| q != p && !mine.contains(&q) && !failed(q))
                .filter_map(|&q| self.swarm.members.get(&q).filter(|n| n.links.len() < n.max_links()).map(|n| (q, n)))
                .max_by_key(|(q, n)| (n.spare(), std::cmp::Reverse(n.links.len()), mix(*q, self.swarm.next_link)))
                .map(|(q, _)| q);
            if let Some(q) = best {
                self.link(now, p, q);
            }
        }
    }

    fn link(&mut self, now: Instant, offerer: PeerId, answerer: PeerId) {
        self.swarm.next_link += 1;
        let link = self.swarm.next_link;
        self.swarm.links.insert(link, (offerer, answerer));
        self.swarm.link_since.insert(link, now);
        for p in [offerer, answerer] {
            self.swarm.members.get_mut(&p).expect("a member").links.insert(link);
        }
        let end = |p: PeerId| self.peers.get(&p).map(|x| (p, x.guest, x.name.clone())).expect("connected");
        self.out.push_back(HostOutput::Introduce { link, offerer: end(offerer), answerer: end(answerer) });
    }

    /// Seeds what lies ahead of the room that nobody holds, a few seconds' worth at a time.
    fn seed_ahead(&mut self, now: Instant) {
        let Some(duration_us) = self.manifest.duration_ms.filter(|&d| d > 0).map(|d| d as f64 * 1000.0) else { return };
        self.swarm.seeded.retain(|_, s| now.saturating_duration_since(s.at) < SEED_AGAIN);
        // Only to a member whose holdings are known, that takes them (no tight download
        // limit of its own).
        let mut members: Vec<PeerId> = self.relaying().into_iter().filter(|p| self.swarm.members[p].takes_seeds()).collect();
        if members.is_empty() {
            return;
        }
        let per_us = self.manifest.chunks as f64 / duration_us;
        let std::ops::Range { start: from, end: to } = self.seed_range(now, SEED_AHEAD);
        let out_max = (SEED_OUT.as_micros() as f64 * per_us).ceil() as usize;
        let outstanding = self.swarm.seeded.keys().filter(|&&ix| ix >= from).count();
        // Seeds go at SEED_RATE times the stream at most: the rest of the host's upload is for
        // what participants ask (a paused room would otherwise have it all seeded at once,
        // ahead of what everyone needs now).
        let byte_rate = self.manifest.size as f64 / (duration_us / 1e6);
        let mut bucket = self.swarm.seed_bucket.take().unwrap_or_else(|| crate::rate::TokenBucket::new(byte_rate * SEED_RATE, byte_rate * 2.0));
        let mut room = out_max.saturating_sub(outstanding);
        // Nobody holds it, and nobody is being sent it (their `Have` may lag the sending).
        // (Nor what every member that takes seeds declined lately.)
        let takers = &members;
        let declined = |ix: u32| takers.iter().all(|p| self.swarm.members[p].declined(ix, now));
        // (Read-ahead queued for someone is seeded all the same: behind seeds, it may wait.)
        let near = from.saturating_add(((SEED_AHEAD / 2).as_micros() as f64 * per_us) as u32);
        let unsent = |ix: &u32| (self.swarm.unspread(*ix, now) || (*ix < near && self.swarm.stuck(*ix, now))) && !declined(*ix);
        let candidates: Vec<u32> = (from..to).filter(unsent).collect();
        // The quarter with the most spare upload, each chunk to the next of them in turn that
        // neither holds it nor declined it (a chunk none of them may take costs no budget).
        let turn = self.swarm.seed_turn;
        members.sort_by_key(|p| (std::cmp::Reverse(self.swarm.members[p].spare() / 250_000), mix(*p, turn)));
        let best = members.len().div_ceil(4).max(1);
        let mut to_each: BTreeMap<PeerId, Vec<u32>> = BTreeMap::new();
        for ix in candidates {
            // (A second copy goes only where the first's holder is not a neighbour: one that
            // is would get it from there, and in a small room, where all are, it came twice.)
            let holder = self.swarm.a_holder(ix);
            let takes = |p: &PeerId| !self.swarm.members[p].declined(ix, now) && !self.swarm.holds(*p, ix) && holder.is_none_or(|h| !self.swarm.linked(*p, h));
            let Some(to) = (0..best).map(|k| members[(self.swarm.seed_turn as usize + k) % best]).find(takes) else { continue };
            let len = self.manifest.chunk_len(ix).unwrap_or(0) as f64;
            if room == 0 || !bucket.try_take(now, len) {
                break;
            }
            room -= 1;
            self.swarm.seed_turn += 1;
            to_each.entry(to).or_default().push(ix);
        }
        self.swarm.seed_bucket = Some(bucket);
        for (to, part) in to_each {
            // Queued (a full queue takes none), told (so it takes them), then sent without its
            // asking, as urgently as anyone's critical requests (after its own).
            let queued = self.scheduler.handle_seed(to, ORIGINAL, &part);
            for &ix in &queued {
                self.swarm.seeded.insert(ix, Seeded { to, at: now, asked: false });
                self.swarm.note_sent(ix, to, now);
            }
            if !queued.is_empty() {
                tracing::trace!(peer = to, "seeding {queued:?}");
                self.send(to, Message::Seed { space: ORIGINAL, chunks: queued });
            }
        }
    }
}

/// A deterministic shuffle key (the core has no random numbers: a room runs the same way
/// every time for the same inputs).
fn mix(a: PeerId, b: impl Into<u64>) -> u64 {
    let mut x = a ^ b.into().wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^ (x >> 33)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{Host, admitted, config, controls_to, rejoin};
    use super::*;
    use crate::protocol::have::Runs;

    /// Ann and bob relay and are introduced: the link's id and who offers.
    fn linked(h: &mut Host) -> (u32, PeerId, PeerId) {
        let (ann, bob) = (h.join(1, "ann"), h.join(2, "bob"));
        for p in [ann, bob] {
            h.core.handle_control(h.now, p, Message::Have(Have::empty(ORIGINAL)));
        }
        h.outputs();
        h.advance(SWARM_EVERY);
        let out = h.outputs();
        let (link, a, b) = out
            .iter()
            .find_map(|o| if let HostOutput::Introduce { link, offerer, answerer } = o { Some((*link, offerer.0, answerer.0)) } else { None })
            .expect("introduced");
        (link, a, b)
    }

    fn sdp(link: u32, text: &str) -> Message {
        Message::RelaySignal(RelaySdp { link, sdp: text.into(), sig: "ab".repeat(64) })
    }

    #[test]
    fn an_sdp_goes_once_to_the_other_end_of_its_link_and_nowhere_else() {
        let mut h = Host::new(config());
        let (link, a, b) = linked(&mut h);
        let carol = h.join(3, "carol");
        h.outputs();
        h.core.handle_control(h.now, a, sdp(link, "offer"));
        assert!(matches!(controls_to(&h.outputs(), b)[..], [Message::RelaySignal(s)] if s.sdp == "offer"));
        h.core.handle_control(h.now, a, sdp(link, "offer again"));
        assert!(controls_to(&h.outputs(), b).is_empty(), "one SDP an end");
        h.core.handle_control(h.now, carol, sdp(link, "not hers"));
        let out = h.outputs();
        assert!(controls_to(&out, a).is_empty() && controls_to(&out, b).is_empty(), "not on the link: nothing forwarded");
        h.core.handle_control(h.now, b, sdp(link, "answer"));
        assert!(matches!(controls_to(&h.outputs(), a)[..], [Message::RelaySignal(s)] if s.sdp == "answer"));
    }

    /// What went to `peer`: chunks sent, and chunks it was told to get elsewhere.
    fn to(out: &[HostOutput], peer: PeerId) -> (Vec<u32>, Vec<u32>) {
        let sent = out.iter().filter_map(|o| if let HostOutput::Chunk { peer: p, index, .. } = o { (*p == peer).then_some(*index) } else { None });
        let elsewhere = controls_to(out, peer).into_iter().filter_map(|m| if let Message::Elsewhere { chunks, .. } = m { Some(chunks.clone()) } else { None });
        (sent.collect(), elsewhere.flatten().collect())
    }

    /// `n` relaying members that take seeds (their holdings heard, nothing held).
    fn members(h: &mut Host, n: u64) -> Vec<PeerId> {
        let peers: Vec<PeerId> = (1..=n).map(|i| h.join(i, &format!("p{i}"))).collect();
        for &p in &peers {
            h.core.handle_control(h.now, p, Message::Have(Have::empty(ORIGINAL)));
            let relay = Some(RelayReport { seeds: true, ..RelayReport::default() });
            let report = Message::Report { position_ms: 0, buffered_bytes: 0, down_bps: 0, buffering: false, rtt_ms: None, seq: 0, drift_ms: None, relay };
            h.core.handle_control(h.now, p, report);
        }
        h.outputs();
        peers
    }

    /// The seeds each peer was told of.
    fn seeds(out: &[HostOutput]) -> BTreeMap<PeerId, Vec<u32>> {
        let mut by: BTreeMap<PeerId, Vec<u32>> = BTreeMap::new();
        for o in out {
            if let HostOutput::Control { peer, msg: Message::Seed { chunks, .. } } = o {
                by.entry(*peer).or_default().extend(chunks);
            }
        }
        by
    }

    #[test]
    fn seeds_go_in_turn_to_the_quarter_with_most_spare_upload_and_one_that_does_not_spread_goes_again() {
        let mut h = Host::new(config());
        let peers = members(&mut h, 40);
        h.advance(SWARM_EVERY);
        let first = seeds(&h.outputs());
        // Forty alike: the best quarter is ten, and the seeds go to each in turn (all on one,
        // its upload was the room's bottleneck: its neighbours waited on it for seconds).
        assert!(first.len() >= 2, "{first:?}");
        let all: Vec<u32> = first.values().flatten().copied().collect();
        assert!(first.values().all(|v| v.len() * 3 >= all.len()), "{first:?}");
        let unique: BTreeSet<u32> = all.iter().copied().collect();
        assert_eq!(unique.len(), all.len(), "each chunk seeded once");
        // The holder of chunk 0 says it holds it, and nobody gets it from there.
        let (&holder, _) = first.iter().find(|(_, v)| v.contains(&0)).expect("chunk 0 seeded");
        let have = Have { space: ORIGINAL, reset: false, added: Runs::from_sorted([0]), dropped: Runs::default() };
        h.core.handle_control(h.now, holder, Message::Have(have));
        let mut again = BTreeMap::new();
        while h.now < crate::testing::t0() + SEED_AGAIN + SWARM_EVERY * 2 {
            h.advance(SWARM_EVERY);
            for (p, v) in seeds(&h.outputs()) {
                again.entry(p).or_insert_with(Vec::new).extend(v);
            }
        }
        let zero: Vec<PeerId> = again.iter().filter(|(_, v)| v.contains(&0)).map(|(p, _)| *p).collect();
        assert_eq!(zero.len(), 1, "a second copy of chunk 0, once: {again:?}");
        assert_ne!(zero[0], holder, "to another member");
        assert!(peers.contains(&zero[0]));
        assert!(!h.core.swarm.linked(zero[0], holder), "one that would not get it from the holder anyway");
    }

    #[test]
    fn what_the_only_member_holds_alone_takes_no_seeding_budget() {
        let mut h = Host::new(config());
        let p = members(&mut h, 1)[0];
        let have = Have { space: ORIGINAL, reset: false, added: Runs::from_sorted(0..20), dropped: Runs::default() };
        h.core.handle_control(h.now, p, Message::Have(have));
        h.advance(SWARM_EVERY);
        // Held by one, it would be a second copy's candidate; but nobody else could take it,
        // and the seeds go on past it.
        let got: Vec<u32> = seeds(&h.outputs()).into_values().flatten().collect();
        assert!(!got.is_empty() && got.iter().all(|&ix| ix >= 20), "{got:?}");
    }

    #[test]
    fn a_member_with_spare_upload_may_have_more_links() {
        let member = |peak_up: u64, up_bps: u64| Member {
            report: RelayReport { up_bps, ..RelayReport::default() },
            peak_up,
            links: BTreeSet::new(),
            holds: Bits::default(),
            heard: true,
            declined: HashMap::new(),
        };
        // Upload not seen yet: taken as FIRST_SPARE.
        assert_eq!(member(0, 0).max_links(), MAX_LINKS + 1);
        assert_eq!(member(2_500_000, 1_000_000).max_links(), MAX_LINKS + 2);
        assert_eq!(member(50_000_000, 0).max_links(), MOST_LINKS);
        const { assert!(MOST_LINKS < crate::participant::swarm::MAX_NEIGHBOURS, "a participant keeps them all, and a few closing") };
    }

    #[test]
    fn read_ahead_nobody_holds_goes_once_as_a_seed_and_a_neighbour_waits_for_that_copy() {
        let mut h = Host::new(config());
        let (_, a, b) = linked(&mut h);
        // Both take seeds (no tight download limit).
        for p in [a, b] {
            let relay = Some(RelayReport { seeds: true, ..RelayReport::default() });
            let report = Message::Report { position_ms: 0, buffered_bytes: 0, down_bps: 0, buffering: false, rtt_ms: None, seq: 0, drift_ms: None, relay };
            h.core.handle_control(h.now, p, report);
        }
        // The link settles.
        while h.now < crate::testing::t0() + LINK_SETTLE + SWARM_EVERY {
            h.advance(SWARM_EVERY);
        }
        h.outputs();
        let ask = |h: &mut Host, peer, ix| {
            h.core.handle_control(h.now, peer, Message::Request { space: ORIGINAL, chunks: vec![ix], priority: Priority::Window });
            to(&h.outputs(), peer)
        };
        // Nobody holds chunk 12 (near the room: within SEED_FIRST), nor was it seeded yet:
        // a's copy is the room's first, a seed, sent at once.
        assert!(!h.core.swarm.seeded.contains_key(&12));
        assert_eq!(ask(&mut h, a, 12), (vec![12], vec![]));
        assert!(h.core.swarm.seeded.get(&12).is_some_and(|s| s.to == a));
        // b is told to get it from a, and asking again a second later, still: a's copy is
        // young.
        assert_eq!(ask(&mut h, b, 12), (vec![], vec![12]));
        h.advance(ELSEWHERE_WAIT + Duration::from_millis(100));
        assert_eq!(ask(&mut h, b, 12), (vec![], vec![12]));
        // Past that, b is sent its own copy.
        h.advance(SEED_WAITED);
        assert_eq!(ask(&mut h, b, 12), (vec![12], vec![]));
        // Read-ahead far past the room is no seed: it waits its turn as read-ahead.
        assert_eq!(ask(&mut h, a, 90).0, [90]);
        assert!(!h.core.swarm.seeded.contains_key(&90));
    }

    #[test]
    fn a_have_costs_by_what_it_covers() {
        let cost = |added: std::ops::Range<u32>| {
            super::super::control_cost(&Message::Have(Have { space: 0, reset: true, added: Runs::from_ranges([added]), dropped: Runs::default() }))
        };
        assert_eq!(cost(0..10), 1.0);
        assert!(cost(0..110_000) >= 6.0, "a whole film's holdings: {}", cost(0..110_000));
        assert!(super::super::control_cost(&Message::HashAsk { space: 0, first: 0 }) >= 16.0);
    }

    #[test]
    fn a_relay_two_accuse_is_barred_by_its_key_and_stays_barred_when_it_comes_back() {
        let mut h = Host::new(config());
        let (link, a, b) = linked(&mut h);
        // Bob (whichever end he is) is accused by ann.
        let (liar, by) = (b, a);
        h.core.handle_control(h.now, by, Message::BadChunk { link, space: ORIGINAL, index: 1 });
        h.outputs();
        // A third, dan, is introduced to the liar and accuses too.
        let dan = h.join(4, "dan");
        h.core.handle_control(h.now, dan, Message::Have(Have::empty(ORIGINAL)));
        for _ in 0..8 {
            h.advance(SWARM_EVERY);
        }
        let out = h.outputs();
        let link2 = out.iter().find_map(|o| match o {
            HostOutput::Introduce { link, offerer, answerer } if [offerer.0, answerer.0].contains(&liar) && [offerer.0, answerer.0].contains(&dan) => {
                Some(*link)
            }
            _ => None,
        });
        let link2 = link2.expect("dan and the liar introduced");
        h.core.handle_control(h.now, dan, Message::BadChunk { link: link2, space: ORIGINAL, index: 2 });
        let out = h.outputs();
        assert!(out.iter().any(|o| matches!(o, HostOutput::Event(crate::api::Event::Warning { message }) if message.contains("relays no more"))), "{out:?}");
        // The liar comes back under a new id with the same key: never introduced again.
        let (name, key_of) = if h.core.peers[&liar].name == "ann" { ("ann", 1) } else { ("bob", 2) };
        h.core.handle_gone(h.now, liar, "gone");
        h.outputs();
        let again = admitted(&rejoin(&mut h, 5, name, key_of)).expect("let in again");
        h.core.handle_connected(h.now, again);
        h.core.handle_control(h.now, again, Message::Have(Have::empty(ORIGINAL)));
        h.outputs();
        for _ in 0..8 {
            h.advance(SWARM_EVERY);
        }
        let out = h.outputs();
        assert!(!out.iter().any(|o| matches!(o, HostOutput::Introduce { offerer, answerer, .. } if offerer.0 == again || answerer.0 == again)), "{out:?}");
    }
}
