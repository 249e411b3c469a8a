//! A participant's relay neighbours as sources of chunks: what each holds (from its `Have`s),
//! what was asked of it and by when, how fast it delivers, and which one to ask for a chunk.
//!
//! Pure bookkeeping, no outputs: `relaying.rs` acts on it.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use crate::protocol::guest::GuestId;
use crate::protocol::have::Have;
use crate::protocol::stream::Space;
use crate::rate::TokenBucket;

/// Most neighbours a participant keeps (the host introduces at most twelve; a few more may be
/// closing).
pub const MAX_NEIGHBOURS: usize = 16;
/// A read-ahead request this old, for a chunk the reader now nears (see
/// `Neighbour::take_overdue`), is asked again.
pub const HURRY_AFTER: Duration = Duration::from_secs(2);
/// Most chunks asked of one neighbour at once as needed soon (and half as many again of far
/// read-ahead).
pub const MAX_ASKED: usize = 32;
/// A neighbour's delivery rate taken before it has delivered anything, B/s (2 Mb/s: a slow
/// home uplink).
const FIRST_RATE: f64 = 250_000.0;
/// The least rate a neighbour is taken to deliver at, B/s (so one that went quiet is still
/// asked now and then, and a deadline is never unbounded).
const FLOOR_RATE: f64 = 32_000.0;
/// How much each chunk's speed moves a neighbour's estimate.
const SPEED_WEIGHT: f64 = 0.25;
/// A blocked reader's request's deadline beyond its expected delivery.
const NOW_GRACE: Duration = Duration::from_millis(400);
/// A neighbour's messages a second, and their burst: past them its link goes (the host's
/// own budget for a participant is 1000 a second; a neighbour sends far fewer).
const NEIGHBOUR_RATE: (f64, f64) = (500.0, 1000.0);
/// A request's deadline beyond its expected delivery: a round trip and scheduling slack.
const GRACE: Duration = Duration::from_millis(1500);

/// A chunk space's holdings as a bitset.
#[derive(Debug, Clone, Default)]
pub struct Bits(Vec<u64>);

impl Bits {
    /// Whether `ix` is in.
    pub fn has(&self, ix: u32) -> bool {
        self.0.get(ix as usize / 64).is_some_and(|w| w & (1 << (ix % 64)) != 0)
    }

    /// Puts `ix` in or out.
    pub fn set(&mut self, ix: u32, on: bool) {
        let w = ix as usize / 64;
        if w >= self.0.len() {
            if !on {
                return;
            }
            self.0.resize(w + 1, 0);
        }
        if on {
            self.0[w] |= 1 << (ix % 64);
        } else {
            self.0[w] &= !(1 << (ix % 64));
        }
    }
}

/// How soon a chunk is needed, which decides how it is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// The reader is blocked on it: only a neighbour that would bring it at once.
    Now,
    /// Within `SOON` of the reader: first in the neighbour's queue, with all its room.
    Soon,
    /// Read-ahead beyond: after the rest, with a room of its own half the size.
    Later,
}

/// One neighbour.
#[derive(Debug)]
pub struct Neighbour {
    /// Its display name.
    pub name: String,
    /// Its key (its SDP is checked against it).
    pub key: GuestId,
    /// This side writes the offer.
    pub offerer: bool,
    /// The link is up (its channels open).
    pub up: bool,
    /// When the host introduced it (a link not up in time is given up).
    pub since: Instant,
    /// What it holds, by space.
    holds: HashMap<Space, Bits>,
    /// Asked of it and not come: when, and by when it should have come.
    asked: BTreeMap<(Space, u32), (Instant, Instant, Need)>,
    /// How fast it serves this side, B/s: an average of each chunk's bytes over the time it
    /// took once the neighbour could start on it (its request, or the chunk before). What it
    /// delivered over time would say how much was asked, not how fast it can go: a fast
    /// neighbour asked little would look slow, and never be asked more.
    speed: f64,
    /// When its last chunk came.
    last: Option<Instant>,
    /// Bytes it delivered.
    delivered: u64,
    /// Its messages (see [`NEIGHBOUR_RATE`]).
    pub control: TokenBucket,
}

impl Neighbour {
    /// A neighbour the host introduced at `now`.
    pub fn new(now: Instant, name: String, key: GuestId, offerer: bool) -> Neighbour {
        Neighbour {
            name,
            key,
            offerer,
            up: false,
            since: now,
            holds: HashMap::new(),
            asked: BTreeMap::new(),
            speed: FIRST_RATE,
            last: None,
            delivered: 0,
            control: TokenBucket::new(NEIGHBOUR_RATE.0, NEIGHBOUR_RATE.1),
        }
    }

    /// Whether it holds chunk `ix` of `space`.
    pub fn holds(&self, space: Space, ix: u32) -> bool {
        self.holds.get(&space).is_some_and(|b| b.has(ix))
    }

    /// Takes its `Have` of a space of `bound` chunks (what lies past it is not kept: the
    /// bitset stays the size of what this participant can use); returns what was asked of it
    /// that it says it no longer holds.
    pub fn handle_have(&mut self, have: &Have, bound: u32) -> Vec<u32> {
        let bits = self.holds.entry(have.space).or_default();
        if have.reset {
            *bits = Bits::default();
        }
        have.added.ranges().flat_map(|r| r.start..r.end.min(bound)).for_each(|ix| bits.set(ix, true));
        have.dropped.ranges().flat_map(|r| r.start..r.end.min(bound)).for_each(|ix| bits.set(ix, false));
        let gone: Vec<u32> = self.asked.keys().filter(|(s, ix)| *s == have.space && !bits.has(*ix)).map(|(_, ix)| *ix).collect();
        for ix in &gone {
            self.asked.remove(&(have.space, *ix));
        }
        gone
    }

    /// How fast it delivers, B/s (a guess until it has).
    fn rate(&mut self, _now: Instant) -> f64 {
        self.speed.max(FLOOR_RATE)
    }

    /// How many more chunks of `len` bytes may be asked of it now: about a second's worth of
    /// what is needed soon, and half that again of read-ahead beyond `SOON`, each apart. In
    /// one, the rarest chunks waited 20 s at the neighbour that alone held them, its room
    /// taken by what others held too.
    fn room(&mut self, now: Instant, len: usize, need: Need) -> usize {
        let cap = ((self.rate(now) / len.max(1) as f64).ceil() as usize).clamp(2, MAX_ASKED);
        let later = self.asked.values().filter(|a| a.2 == Need::Later).count();
        match need {
            Need::Later => (cap / 2).saturating_sub(later),
            _ => cap.saturating_sub(self.asked.len() - later),
        }
    }

    /// When a chunk of `len` asked of it now would come, at its rate behind what is asked.
    fn eta(&mut self, now: Instant, len: usize) -> Duration {
        let bytes = (self.asked.len() + 1) * len;
        Duration::from_secs_f64(bytes as f64 / self.rate(now))
    }

    /// Chunk `ix` of `space` is asked of it now.
    pub fn ask(&mut self, now: Instant, space: Space, ix: u32, len: usize, need: Need) {
        // What the reader is blocked on is given up soon (the host is asked then); the rest
        // gets a round trip and some scheduling slack.
        let grace = if need == Need::Now { NOW_GRACE } else { GRACE };
        let by = now + self.eta(now, len) + grace;
        self.asked.insert((space, ix), (now, by, need));
    }

    /// A chunk came from it: whether it was asked for.
    pub fn handle_delivered(&mut self, now: Instant, space: Space, ix: u32, bytes: usize) -> bool {
        let Some((at, _, _)) = self.asked.remove(&(space, ix)) else { return false };
        let started = self.last.map_or(at, |l| l.max(at));
        let took = now.saturating_duration_since(started).as_secs_f64().max(0.001);
        self.speed = SPEED_WEIGHT * (bytes as f64 / took) + (1.0 - SPEED_WEIGHT) * self.speed;
        self.last = Some(now);
        self.delivered += bytes as u64;
        true
    }

    /// What is overdue at `now` (taken out).
    pub fn take_overdue(&mut self, now: Instant, near: impl Fn(Space, u32) -> bool) -> Vec<(Space, u32)> {
        let late: Vec<(Space, u32)> = self.asked.iter().filter(|(_, (_, by, _))| *by <= now).map(|(k, _)| *k).collect();
        for k in &late {
            self.asked.remove(k);
        }
        if !late.is_empty() {
            // Slower than it seemed.
            self.speed /= 2.0;
        }
        // Read-ahead asked long ago, at the back of this neighbour's queue, that the reader now
        // nears: asked again as needed soon, of whoever brings it first now.
        let hurried: Vec<(Space, u32)> = self
            .asked
            .iter()
            .filter(|(k, a)| a.2 == Need::Later && near(k.0, k.1) && now.saturating_duration_since(a.0) >= HURRY_AFTER)
            .map(|(k, _)| *k)
            .collect();
        for k in &hurried {
            self.asked.remove(k);
        }
        late.into_iter().chain(hurried).collect()
    }

    /// Everything asked of it (taken out: it is gone).
    pub fn take_asked(&mut self) -> Vec<(Space, u32)> {
        std::mem::take(&mut self.asked).into_keys().collect()
    }

    /// Chunk `ix` of `space` is no longer wanted from it; whether it was asked of it.
    pub fn forget(&mut self, space: Space, ix: u32) -> bool {
        self.asked.remove(&(space, ix)).is_some()
    }

    /// The earliest deadline of what is asked of it.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.asked.values().map(|(_, by, _)| *by).min()
    }

    /// Whether chunk `ix` of `space` is asked of it.
    pub fn is_asked(&self, space: Space, ix: u32) -> bool {
        self.asked.contains_key(&(space, ix))
    }

    /// Chunks asked of it now.
    pub fn asked(&self) -> usize {
        self.asked.len()
    }

    /// Bytes it delivered.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }
}

/// Every neighbour, by link id.
#[derive(Debug, Default)]
pub struct Swarm {
    /// The neighbours.
    pub links: BTreeMap<u32, Neighbour>,
}

impl Swarm {
    /// Neighbours whose links are up.
    pub fn up(&self) -> usize {
        self.links.values().filter(|n| n.up).count()
    }

    /// How many up neighbours hold chunk `ix` of `space`.
    pub fn holders(&self, space: Space, ix: u32) -> usize {
        self.links.values().filter(|n| n.up && n.holds(space, ix)).count()
    }

    /// The neighbour to ask for chunk `ix` of `space` (`len` bytes): of those up that hold it
    /// and have room for a chunk of that `need`, the one expected to deliver first, if it would
    /// within `within`.
    pub fn pick(&mut self, now: Instant, space: Space, ix: u32, len: usize, need: Need, within: Duration) -> Option<u32> {
        let mut best: Option<(Duration, u32)> = None;
        for (&link, n) in self.links.iter_mut() {
            if !n.up || !n.holds(space, ix) || n.room(now, len, need) == 0 {
                continue;
            }
            let eta = n.eta(now, len);
            if eta <= within && best.is_none_or(|(b, _)| eta < b) {
                best = Some((eta, link));
            }
        }
        best.map(|(_, link)| link)
    }

    /// The earliest deadline of anything asked of anyone.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.links.values().filter_map(Neighbour::next_deadline).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::guest::GuestSecret;
    use crate::protocol::have::Runs;

    fn neighbour(now: Instant) -> Neighbour {
        let mut n = Neighbour::new(now, "bob".into(), GuestSecret::random().key_for("r").public(), true);
        n.up = true;
        n
    }

    fn have(added: &[u32], dropped: &[u32], reset: bool) -> Have {
        Have { space: 0, reset, added: Runs::from_sorted(added.iter().copied()), dropped: Runs::from_sorted(dropped.iter().copied()) }
    }

    #[test]
    fn holdings_follow_haves_and_a_dropped_chunk_asked_for_is_given_back() {
        let t0 = crate::testing::t0();
        let mut n = neighbour(t0);
        assert!(n.handle_have(&have(&[1, 2, 3, 200, 5000], &[], true), 1000).is_empty());
        assert!(n.holds(0, 2) && n.holds(0, 200) && !n.holds(0, 4) && !n.holds(1, 2));
        assert!(!n.holds(0, 5000), "past the space's end: not kept");
        n.ask(t0, 0, 2, 65536, Need::Soon);
        assert_eq!(n.handle_have(&have(&[], &[2], false), 1000), vec![2], "evicted before it was sent");
        assert!(!n.holds(0, 2) && n.asked() == 0);
        n.handle_have(&have(&[7], &[], true), 1000);
        assert!(!n.holds(0, 1) && n.holds(0, 7), "a reset forgets the rest");
    }

    #[test]
    fn the_fastest_holder_with_room_is_asked_and_late_chunks_come_back() {
        let t0 = crate::testing::t0();
        let mut s = Swarm::default();
        for link in [1, 2] {
            let mut n = neighbour(t0);
            n.handle_have(&have(&[5, 6, 7, 8], &[], true), 1000);
            s.links.insert(link, n);
        }
        // Link 2 has delivered 1 MB in the last moments: it is the faster.
        for i in 0..16 {
            s.links.get_mut(&2).unwrap().ask(t0, 0, 100 + i, 65536, Need::Soon);
            assert!(s.links.get_mut(&2).unwrap().handle_delivered(t0 + Duration::from_millis(100 * i as u64), 0, 100 + i, 65536));
        }
        let now = t0 + Duration::from_secs(2);
        assert_eq!(s.pick(now, 0, 5, 65536, Need::Soon, Duration::from_secs(5)), Some(2));
        assert_eq!(s.pick(now, 0, 9, 65536, Need::Soon, Duration::from_secs(5)), None, "nobody holds it");
        assert_eq!(s.holders(0, 6), 2);
        // A slow first guess is too slow for a chunk needed within 10 ms.
        assert_eq!(s.pick(now, 0, 5, 65536, Need::Now, Duration::from_millis(10)), None);
        let n = s.links.get_mut(&1).unwrap();
        n.ask(now, 0, 5, 65536, Need::Soon);
        assert!(n.take_overdue(now + Duration::from_millis(100), |_, _| false).is_empty());
        assert_eq!(n.take_overdue(now + Duration::from_secs(3), |_, _| false), vec![(0, 5)]);
        assert!(!n.handle_delivered(now, 0, 5, 65536), "no longer asked for");
    }

    #[test]
    fn read_ahead_the_reader_nears_is_asked_again_once_it_has_waited_a_while() {
        let t0 = crate::testing::t0();
        let mut n = neighbour(t0);
        n.handle_have(&have(&[5, 6, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50], &[], true), 1000);
        // Far read-ahead behind nine more at a slow first guess: due well after HURRY_AFTER.
        for ix in 40..=50 {
            n.ask(t0, 0, ix, 65536, Need::Later);
        }
        n.ask(t0 + Duration::from_secs(1), 0, 6, 65536, Need::Soon);
        let near = |_: Space, ix: u32| ix < 60;
        assert!(n.take_overdue(t0 + Duration::from_millis(500), near).is_empty(), "asked a moment ago");
        let far = |_: Space, ix: u32| ix < 10;
        assert!(!n.take_overdue(t0 + HURRY_AFTER, far).contains(&(0, 50)), "the reader is not near it yet");
        // The reader nears it: given back (to be asked as needed soon). What was asked as
        // needed soon keeps its deadline.
        assert!(n.take_overdue(t0 + HURRY_AFTER, near).contains(&(0, 50)));
        assert!(n.is_asked(0, 6) && !n.is_asked(0, 50));
    }

    #[test]
    fn bits_grow_as_needed_and_never_for_a_clear() {
        let mut b = Bits::default();
        b.set(1000, false);
        assert!(b.0.is_empty());
        b.set(1000, true);
        assert!(b.has(1000) && !b.has(999) && !b.has(5000));
    }
}
