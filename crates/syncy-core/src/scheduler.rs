//! The host's chunk scheduler: which chunk to send to which participant next.
//!
//! Order: every participant's critical requests (what a reader is blocked on), then the seeds
//! and read-ahead of those the room waits for ([`Scheduler::set_holding`]: nobody watches
//! until they are ready), then what the host seeds, the earliest chunk first whoever it goes
//! to (the room needs it first), then anyone's read-ahead window; otherwise within a class,
//! round-robin across participants so one greedy peer cannot starve the others. (Seeds are
//! sent as critical, but a reader stuck at one participant does not wait behind the spreading
//! of chunks to another.) A request
//! for a chunk already queued for that peer is merged (upgraded if more urgent), so each request
//! is sent once. The edge reports a finished send with `handle_sent`; at most `max_in_flight`
//! sends per peer are outstanding, which is where channel backpressure enters.
//!
//! Memory is bounded per peer whatever it sends (TRUST-REVIEW #11): at most [`MAX_QUEUED`]
//! chunks queued, and the deques, which keep cancelled and upgraded entries as stale ones to
//! skip, are compacted once stale entries outnumber live ones (see [`COMPACT_SLACK`]).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use crate::protocol::stream::{Priority, Space};

/// Most chunks one peer may have queued: what is asked for beyond it is dropped (an honest
/// participant re-asks when its request times out). A participant keeps at most 256 chunks in
/// flight per store (`StoreConfig::max_in_flight`) with two or three stores live around a
/// quality switch, plus a few critical ones: this is 16 of those stores, and as a wire
/// `Request` holds at most `MAX_INDICES` (4096), one whole request always fits an empty queue.
pub const MAX_QUEUED: usize = 4096;
/// Stale deque entries tolerated beyond twice the live ones before a compaction. Compacting
/// costs a pass over the deques; this many pushes at least between two passes keeps it
/// amortized O(1) per push even for a small queue.
pub const COMPACT_SLACK: usize = 64;

/// Peer id as used by the host.
pub type PeerKey = u64;

/// One send decided by the scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Transmit {
    /// To whom.
    pub peer: PeerKey,
    /// In which chunk space.
    pub space: Space,
    /// Which chunk.
    pub index: u32,
    /// The class it was served from.
    pub priority: Priority,
}

/// The scheduler's classes, in the order they are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// A participant's own critical requests.
    Asked,
    /// The read-ahead of a participant the room waits for (served from its window).
    Held,
    /// What the host seeds (queued as critical).
    Seed,
    /// Read-ahead.
    Window,
}

impl Class {
    fn priority(self) -> Priority {
        match self {
            Class::Asked | Class::Seed => Priority::Critical,
            Class::Held | Class::Window => Priority::Window,
        }
    }
}

#[derive(Debug, Default)]
struct PeerQueue {
    critical: VecDeque<(Space, u32)>,
    /// What the host seeds: critical, after the peer's own critical requests.
    seeds: VecDeque<(Space, u32)>,
    window: VecDeque<(Space, u32)>,
    /// Authoritative set of queued chunks; deque entries not matching it are stale and skipped.
    queued: HashMap<(Space, u32), Priority>,
    /// Of those, the ones queued as seeds only (not also asked for).
    seeded: HashSet<(Space, u32)>,
    in_flight: usize,
}

impl PeerQueue {
    fn deque(&mut self, class: Class) -> &mut VecDeque<(Space, u32)> {
        match class {
            Class::Asked => &mut self.critical,
            Class::Seed => &mut self.seeds,
            Class::Held | Class::Window => &mut self.window,
        }
    }

    /// Whether a deque entry of `class` is live: queued at its priority, and, asked, not a
    /// seed only (a critical request cancelled and the chunk seeded since leaves an entry
    /// that must not put the seed ahead of others' blocked readers).
    fn live(&self, class: Class, ix: &(Space, u32)) -> bool {
        self.queued.get(ix) == Some(&class.priority()) && !(class == Class::Asked && self.seeded.contains(ix))
    }

    fn pop(&mut self, class: Class) -> Option<(Space, u32)> {
        while let Some(ix) = self.deque(class).pop_front() {
            if self.live(class, &ix) {
                self.queued.remove(&ix);
                self.seeded.remove(&ix);
                return Some(ix);
            }
        }
        None
    }

    fn has(&mut self, class: Class) -> bool {
        // Drop stale heads so emptiness is exact.
        while let Some(&ix) = self.deque(class).front() {
            if self.live(class, &ix) {
                return true;
            }
            self.deque(class).pop_front();
        }
        false
    }

    /// The deque class `class` takes from for this peer, if it has anything there: a peer the
    /// room waits for (`held`) has the seeds it is to spread and then its read-ahead served
    /// right after blocked readers, before everyone else's seeds.
    fn serves(&mut self, class: Class, held: bool) -> Option<Class> {
        let from = match class {
            Class::Held if !held => return None,
            Class::Held if self.has(Class::Seed) => Class::Seed,
            Class::Held => Class::Window,
            c => c,
        };
        self.has(from).then_some(from)
    }

    /// Deque entries, live and stale.
    fn entries(&self) -> usize {
        self.critical.len() + self.seeds.len() + self.window.len()
    }

    /// Queues a seed: critical, after the peer's own critical requests. `false` if the queue
    /// is full.
    fn push_seed(&mut self, ix: (Space, u32)) -> bool {
        match self.queued.get(&ix) {
            Some(Priority::Critical) => return true,
            Some(_) => {}
            None if self.queued.len() >= MAX_QUEUED => return false,
            None => {}
        }
        self.queued.insert(ix, Priority::Critical);
        self.seeded.insert(ix);
        // Kept in chunk order: the earliest is the room's most urgent, whenever it came.
        let at = self.seeds.partition_point(|&(_, i)| i <= ix.1);
        self.seeds.insert(at, ix);
        true
    }

    /// Queues `ix` at `priority` unless it already is at that urgency or more; `false` if the
    /// peer's queue is full.
    fn push(&mut self, ix: (Space, u32), priority: Priority) -> bool {
        match self.queued.get(&ix) {
            // Seeded, and now the reader is blocked on it: to the front class too (the seed's
            // entry goes stale once either is sent).
            Some(Priority::Critical) if priority == Priority::Critical && self.seeded.remove(&ix) => {
                self.critical.push_back(ix);
                return true;
            }
            // Already queued at this urgency or more: merged.
            Some(&p) if p <= priority => return true,
            // An upgrade takes no new place.
            Some(_) => {}
            None if self.queued.len() >= MAX_QUEUED => return false,
            None => {}
        }
        self.queued.insert(ix, priority);
        match priority {
            Priority::Critical => self.critical.push_back(ix),
            Priority::Window => self.window.push_back(ix),
        }
        true
    }

    /// Drops stale entries once they outnumber live ones: a peer that asks and cancels the
    /// same chunks over and over (while nothing is sent to it, so `pop` never skips them)
    /// would otherwise grow the deques for ever.
    fn compact_if_stale(&mut self) {
        if self.entries() <= 2 * self.queued.len() + COMPACT_SLACK {
            return;
        }
        let (queued, seeded) = (&self.queued, &self.seeded);
        // An entry is live if it matches its chunk's queued priority and is the first such
        // (a chunk asked, cancelled and asked again has two matching entries); an asked one,
        // if the chunk is not a seed only (see `live`).
        let mut seen = HashSet::with_capacity(queued.len());
        self.critical.retain(|ix| queued.get(ix) == Some(&Priority::Critical) && !seeded.contains(ix) && seen.insert(*ix));
        self.seeds.retain(|ix| queued.get(ix) == Some(&Priority::Critical) && seen.insert(*ix));
        self.window.retain(|ix| queued.get(ix) == Some(&Priority::Window) && seen.insert(*ix));
        self.seeded.retain(|ix| self.queued.contains_key(ix));
    }
}

/// Chunk scheduler across all participants of a room.
#[derive(Debug)]
pub struct Scheduler {
    peers: BTreeMap<PeerKey, PeerQueue>,
    /// Peers the room is held for: their seeds and read-ahead go right after everyone's
    /// critical requests (until they are ready, nobody watches).
    holding: HashSet<PeerKey>,
    last_served: Option<PeerKey>,
    max_in_flight: usize,
}

impl Scheduler {
    /// A scheduler allowing `max_in_flight` outstanding sends per peer.
    pub fn new(max_in_flight: usize) -> Self {
        Scheduler { peers: BTreeMap::new(), holding: HashSet::new(), last_served: None, max_in_flight: max_in_flight.max(1) }
    }

    /// A participant's channels are open.
    pub fn add_peer(&mut self, peer: PeerKey) {
        self.peers.entry(peer).or_default();
    }

    /// A participant left; its queue is dropped.
    pub fn remove_peer(&mut self, peer: PeerKey) {
        self.peers.remove(&peer);
    }

    /// A participant asks for chunks of `space`.
    pub fn handle_request(&mut self, peer: PeerKey, space: Space, chunks: &[u32], priority: Priority) {
        let Some(q) = self.peers.get_mut(&peer) else {
            return;
        };
        let dropped = chunks.iter().filter(|&&ix| !q.push((space, ix), priority)).count();
        if dropped > 0 {
            tracing::debug!(peer, "queue full ({MAX_QUEUED} chunks): {dropped} requested chunks dropped");
        }
        q.compact_if_stale();
    }

    /// Chunks the host sends `peer` unasked, to be spread (what the host seeds): as urgent as
    /// critical requests across peers, after the peer's own.
    /// Returns those queued (none for an unknown peer, fewer for a full queue).
    pub fn handle_seed(&mut self, peer: PeerKey, space: Space, chunks: &[u32]) -> Vec<u32> {
        let Some(q) = self.peers.get_mut(&peer) else { return vec![] };
        let queued = chunks.iter().copied().filter(|&ix| q.push_seed((space, ix))).collect();
        q.compact_if_stale();
        queued
    }

    /// The peers the room is held for now: their seeds and read-ahead go right after
    /// everyone's critical requests.
    pub fn set_holding(&mut self, peers: impl IntoIterator<Item = PeerKey>) {
        self.holding.clear();
        self.holding.extend(peers);
    }

    /// A participant no longer wants chunks of `space`.
    pub fn handle_cancel(&mut self, peer: PeerKey, space: Space, chunks: &[u32]) {
        if let Some(q) = self.peers.get_mut(&peer) {
            for &ix in chunks {
                q.queued.remove(&(space, ix));
                q.seeded.remove(&(space, ix));
            }
        }
    }

    /// Drops every queued chunk of `space` (a rendition that was replaced or stopped).
    pub fn drop_space(&mut self, space: Space) {
        for q in self.peers.values_mut() {
            q.queued.retain(|(s, _), _| *s != space);
            q.seeded.retain(|(s, _)| *s != space);
        }
    }

    /// A send to `peer` has been handed to its channel.
    pub fn handle_sent(&mut self, peer: PeerKey) {
        if let Some(q) = self.peers.get_mut(&peer) {
            q.in_flight = q.in_flight.saturating_sub(1);
        }
    }

    /// Deque entries held for every peer, live and stale (bounded: see [`MAX_QUEUED`]).
    pub fn entries(&self) -> usize {
        self.peers.values().map(PeerQueue::entries).sum()
    }

    /// Chunks queued for `peer`.
    pub fn queued(&self, peer: PeerKey) -> usize {
        self.peers.get(&peer).map_or(0, |q| q.queued.len())
    }

    /// The next chunk to send, if any peer has one and room to take it.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        for class in [Class::Asked, Class::Held, Class::Seed, Class::Window] {
            let start = self.last_served;
            // Round robin: peers after the last served one, then from the beginning.
            let order: Vec<PeerKey> = match start {
                Some(s) => self.peers.range(s + 1..).chain(self.peers.range(..=s)).map(|(k, _)| *k).collect(),
                None => self.peers.keys().copied().collect(),
            };
            let mut pick: Option<(PeerKey, u32, Class)> = None;
            for peer in order {
                let q = self.peers.get_mut(&peer).expect("key from map");
                if q.in_flight >= self.max_in_flight {
                    continue;
                }
                let Some(from) = q.serves(class, self.holding.contains(&peer)) else { continue };
                if class != Class::Seed {
                    pick = Some((peer, 0, from));
                    break;
                }
                // Seeds: the earliest chunk first, whoever it goes to (the room needs it first);
                // among equals, round robin.
                let head = q.seeds.front().map_or(0, |&(_, ix)| ix);
                if pick.is_none_or(|(_, best, _)| head < best) {
                    pick = Some((peer, head, from));
                }
            }
            if let Some((peer, _, from)) = pick {
                let q = self.peers.get_mut(&peer).expect("key from map");
                let (space, index) = q.pop(from).expect("has() checked");
                q.in_flight += 1;
                self.last_served = Some(peer);
                return Some(Transmit { peer, space, index, priority: from.priority() });
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::stream::MAX_INDICES;
    use proptest::prelude::*;
    use std::collections::HashSet;

    fn drain(s: &mut Scheduler) -> Vec<Transmit> {
        let mut out = vec![];
        while let Some(t) = s.poll_transmit() {
            s.handle_sent(t.peer);
            out.push(t);
        }
        out
    }

    #[test]
    fn seeds_go_earliest_chunk_first_and_read_ahead_of_whom_the_room_waits_for_before_them() {
        let mut s = Scheduler::new(64);
        (1..=3).for_each(|p| s.add_peer(p));
        s.handle_seed(1, 0, &[20, 21]);
        // (Seeded out of order: a near one after a far one.)
        s.handle_seed(2, 0, &[30]);
        s.handle_seed(2, 0, &[10]);
        s.handle_request(3, 0, &[50, 51], Priority::Window);
        s.handle_seed(3, 0, &[60]);
        s.handle_request(1, 0, &[40], Priority::Window);
        s.handle_request(2, 0, &[5], Priority::Critical);
        s.set_holding([3]);
        let order: Vec<(PeerKey, u32)> = drain(&mut s).into_iter().map(|t| (t.peer, t.index)).collect();
        // A blocked reader; the seed and read-ahead of the one the room waits for; the seeds,
        // the earliest first whoever they go to; then the rest of the read-ahead.
        assert_eq!(order, [(2, 5), (3, 60), (3, 50), (3, 51), (2, 10), (1, 20), (1, 21), (2, 30), (1, 40)]);
    }

    #[test]
    fn a_blocked_reader_goes_before_seeds_to_anyone_and_a_seed_it_blocks_on_moves_up() {
        let mut s = Scheduler::new(64);
        s.add_peer(1);
        s.add_peer(2);
        s.handle_request(1, 0, &[30], Priority::Window);
        assert_eq!(s.handle_seed(1, 0, &[10, 11, 12]), vec![10, 11, 12]);
        s.handle_request(2, 0, &[5], Priority::Critical);
        // Peer 1 is blocked on its seed 12.
        s.handle_request(1, 0, &[12], Priority::Critical);
        let order: Vec<(PeerKey, u32)> = drain(&mut s).into_iter().map(|t| (t.peer, t.index)).collect();
        // The two blocked readers first (round robin), then the seeds, then read-ahead; 12
        // once only.
        assert_eq!(order[..2].iter().map(|&(_, i)| i).collect::<HashSet<_>>(), HashSet::from([5, 12]));
        assert_eq!(order[2..], [(1, 10), (1, 11), (1, 30)]);

        // Without a move-up: another's blocked reader goes before peer 1's seeds, whoever was
        // served last.
        let mut s = Scheduler::new(64);
        s.add_peer(1);
        s.add_peer(2);
        s.handle_seed(1, 0, &[10, 11]);
        s.handle_request(2, 0, &[5], Priority::Critical);
        assert_eq!(s.poll_transmit().map(|t| (t.peer, t.index)), Some((2, 5)));

        // A critical request cancelled, and the chunk seeded since: a seed, not a blocked read.
        let mut s = Scheduler::new(64);
        s.add_peer(1);
        s.add_peer(2);
        s.handle_request(1, 0, &[7], Priority::Critical);
        s.handle_cancel(1, 0, &[7]);
        s.handle_seed(1, 0, &[7]);
        s.handle_request(2, 0, &[5], Priority::Critical);
        assert_eq!(s.poll_transmit().map(|t| (t.peer, t.index)), Some((2, 5)));
        assert_eq!(s.poll_transmit().map(|t| (t.peer, t.index)), Some((1, 7)));
        assert_eq!(s.poll_transmit(), None, "sent once");
    }

    #[test]
    fn critical_before_window_across_peers() {
        let mut s = Scheduler::new(4);
        s.add_peer(1);
        s.add_peer(2);
        s.handle_request(1, 0, &[10, 11, 12], Priority::Window);
        s.handle_request(2, 0, &[5], Priority::Critical);
        let sent = drain(&mut s);
        assert_eq!(sent[0], Transmit { peer: 2, space: 0, index: 5, priority: Priority::Critical });
        assert_eq!(sent.len(), 4);
    }

    #[test]
    fn spaces_are_separate_and_a_dropped_space_sends_nothing() {
        let mut s = Scheduler::new(16);
        s.add_peer(1);
        s.handle_request(1, 0, &[4], Priority::Window);
        s.handle_request(1, 7, &[4, 5], Priority::Window);
        s.handle_request(1, 8, &[4], Priority::Window);
        s.drop_space(8);
        let sent: Vec<(Space, u32)> = drain(&mut s).iter().map(|t| (t.space, t.index)).collect();
        assert_eq!(sent, vec![(0, 4), (7, 4), (7, 5)], "chunk 4 of each live space, none of the dropped one");
    }

    #[test]
    fn upgrade_and_cancel() {
        let mut s = Scheduler::new(4);
        s.add_peer(1);
        s.handle_request(1, 0, &[1, 2, 3], Priority::Window);
        s.handle_request(1, 0, &[3], Priority::Critical);
        s.handle_cancel(1, 0, &[2]);
        let sent: Vec<u32> = drain(&mut s).iter().map(|t| t.index).collect();
        assert_eq!(sent, vec![3, 1]);
    }

    #[test]
    fn in_flight_limit_holds_back_until_sent() {
        let mut s = Scheduler::new(2);
        s.add_peer(1);
        s.handle_request(1, 0, &[1, 2, 3], Priority::Window);
        assert!(s.poll_transmit().is_some());
        assert!(s.poll_transmit().is_some());
        assert!(s.poll_transmit().is_none());
        s.handle_sent(1);
        assert_eq!(s.poll_transmit().map(|t| t.index), Some(3));
    }

    #[test]
    fn removed_peer_gets_nothing() {
        let mut s = Scheduler::new(2);
        s.add_peer(1);
        s.handle_request(1, 0, &[1], Priority::Critical);
        s.remove_peer(1);
        assert!(s.poll_transmit().is_none());
        s.handle_request(1, 0, &[1], Priority::Critical);
        assert!(s.poll_transmit().is_none());
    }

    #[test]
    fn a_peer_that_asks_and_cancels_while_reading_nothing_holds_bounded_entries() {
        // TRUST-REVIEW #11: a participant stops reading (its sends never complete, so
        // in_flight stays at its max and nothing is popped) and loops Request and Cancel of
        // 4096 chunks. Before, every Request pushed 4096 entries more and Cancel removed none.
        let mut s = Scheduler::new(8);
        s.add_peer(1);
        s.handle_request(1, 0, &(0..8).collect::<Vec<_>>(), Priority::Critical);
        while s.poll_transmit().is_some() {}
        let chunks: Vec<u32> = (100..100 + MAX_INDICES as u32).collect();
        let bound = 3 * MAX_QUEUED + COMPACT_SLACK;
        for round in 0..10_000 {
            s.handle_request(1, 0, &chunks, if round % 2 == 0 { Priority::Window } else { Priority::Critical });
            assert!(s.poll_transmit().is_none(), "nothing goes to a peer that reads nothing");
            s.handle_cancel(1, 0, &chunks);
            assert!(s.entries() <= bound, "round {round}: {} entries", s.entries());
        }
        assert_eq!(s.queued(1), 0);
        // It reads again: what it asks for next is sent, once each.
        for _ in 0..8 {
            s.handle_sent(1);
        }
        s.handle_request(1, 0, &[5, 6], Priority::Window);
        assert_eq!(drain(&mut s).iter().map(|t| t.index).collect::<Vec<_>>(), [5, 6]);
    }

    #[test]
    fn one_peer_queues_at_most_max_queued_chunks_and_others_are_untouched() {
        let mut s = Scheduler::new(1);
        s.add_peer(1);
        s.add_peer(2);
        for from in (0..4 * MAX_QUEUED as u32).step_by(MAX_INDICES) {
            s.handle_request(1, 0, &(from..from + MAX_INDICES as u32).collect::<Vec<_>>(), Priority::Window);
        }
        assert_eq!(s.queued(1), MAX_QUEUED, "the excess is dropped");
        // An upgrade of a queued chunk is not a new one: it is taken even when full.
        s.handle_request(1, 0, &[7], Priority::Critical);
        s.handle_request(2, 0, &[1, 2], Priority::Window);
        assert_eq!(s.queued(2), 2);
        assert_eq!(s.poll_transmit().map(|t| (t.peer, t.index, t.priority)), Some((1, 7, Priority::Critical)));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Req(u64, Vec<u32>, bool),
        Cancel(u64, Vec<u32>),
        Poll(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..4u64, proptest::collection::vec(0..64u32, 0..10), any::<bool>()).prop_map(|(p, c, cr)| Op::Req(p, c, cr)),
            (0..4u64, proptest::collection::vec(0..64u32, 0..4)).prop_map(|(p, c)| Op::Cancel(p, c)),
            (0..8u8).prop_map(Op::Poll),
        ]
    }

    fn check_send(s: &Scheduler, t: Transmit, wanted: &mut HashMap<u64, HashMap<u32, Priority>>) -> Result<(), TestCaseError> {
        let w = wanted.entry(t.peer).or_default();
        let p = w.remove(&t.index);
        prop_assert_eq!(p, Some(t.priority), "sent {:?} that was not wanted", t);
        // Critical first: nobody who could take a send still wants a critical chunk.
        if t.priority == Priority::Window {
            for (peer, w) in wanted.iter() {
                prop_assert!(
                    !w.values().any(|p| *p == Priority::Critical) || s.peers[peer].in_flight >= 3,
                    "window send while peer {} had critical work",
                    peer
                );
            }
        }
        Ok(())
    }

    proptest! {
        /// Every requested (and not cancelled) chunk is sent exactly once per outstanding
        /// request; nothing unrequested is sent; a critical chunk is never sent while another
        /// peer that could take it has an older critical chunk waiting behind a window send.
        #[test]
        fn delivers_every_requested_chunk_exactly_once(ops in proptest::collection::vec(op(), 0..200)) {
            let mut s = Scheduler::new(3);
            let mut wanted: HashMap<u64, HashMap<u32, Priority>> = HashMap::new();
            for p in 0..4 { s.add_peer(p); }
            for op in ops {
                match op {
                    Op::Req(p, c, cr) => {
                        let pr = if cr { Priority::Critical } else { Priority::Window };
                        s.handle_request(p, 0, &c, pr);
                        let w = wanted.entry(p).or_default();
                        for ix in c {
                            let e = w.entry(ix).or_insert(pr);
                            if pr < *e { *e = pr; }
                        }
                    }
                    Op::Cancel(p, c) => {
                        s.handle_cancel(p, 0, &c);
                        for ix in c { wanted.entry(p).or_default().remove(&ix); }
                    }
                    Op::Poll(n) => {
                        for _ in 0..n {
                            if let Some(t) = s.poll_transmit() {
                                check_send(&s, t, &mut wanted)?;
                                s.handle_sent(t.peer);
                            }
                        }
                    }
                }
            }
            for t in drain(&mut s) { check_send(&s, t, &mut wanted)?; }
            for (peer, w) in wanted { prop_assert!(w.is_empty(), "peer {} never got {:?}", peer, w); }
        }

        /// Peers with backlog are served within one send of each other.
        #[test]
        fn fair_between_peers(n_peers in 2..6u64, per_peer in 5..80u32, critical in any::<bool>()) {
            let mut s = Scheduler::new(1);
            let pr = if critical { Priority::Critical } else { Priority::Window };
            for p in 0..n_peers {
                s.add_peer(p);
                s.handle_request(p, 0, &(0..per_peer).collect::<Vec<_>>(), pr);
            }
            let mut served: HashMap<u64, u32> = HashMap::new();
            let mut seen = HashSet::new();
            while let Some(t) = s.poll_transmit() {
                s.handle_sent(t.peer);
                prop_assert!(seen.insert((t.peer, t.index)));
                *served.entry(t.peer).or_default() += 1;
                let max = served.values().max().copied().unwrap_or(0);
                let min = (0..n_peers).map(|p| served.get(&p).copied().unwrap_or(0)).min().unwrap();
                prop_assert!(max - min <= 1, "unfair: {:?}", served);
            }
            prop_assert_eq!(seen.len() as u64, n_peers * per_peer as u64);
        }
    }
}
