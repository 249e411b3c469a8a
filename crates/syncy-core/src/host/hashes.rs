//! The host's signed chunk hashes (`protocol::hashes`): made as the host first serves each
//! range, kept for the room's life, and sent to every participant, so a chunk a participant
//! gets from a relay can be checked against what the host read.
//!
//! The core decides what to hash ([`HostOutput::HashBatch`]); the driver reads, hashes and
//! signs off its task and hands the batch back (`handle_hash_batch`). A rendition still
//! growing is hashed as far as it goes and hashed again, longer, once more of it is served.

use std::collections::BTreeMap;
use std::time::Instant;

use super::{HostCore, HostOutput};
use crate::protocol::hashes::{HASH_BATCH, HashBatch, batch_start};
use crate::protocol::signal::PeerId;
use crate::protocol::stream::{Message, ORIGINAL, Space};

/// One batch's state.
#[derive(Debug, Clone)]
enum Batch {
    /// The driver is hashing this many chunks.
    Hashing(u32),
    /// Signed (and sent to everyone); a longer one may be on its way.
    Signed { batch: HashBatch, longer: Option<u32> },
}

/// Every batch of every space.
#[derive(Debug, Default)]
pub(super) struct Hashes {
    batches: BTreeMap<(Space, u32), Batch>,
}

impl Hashes {
    /// Chunks of the batch hashed or being hashed (the most asked for so far).
    fn covered(&self, space: Space, first: u32) -> u32 {
        match self.batches.get(&(space, first)) {
            None => 0,
            Some(Batch::Hashing(n)) => *n,
            Some(Batch::Signed { batch, longer }) => longer.unwrap_or(0).max(batch.count()),
        }
    }

    /// The signed batch starting at `first`, if there is one.
    pub(super) fn get(&self, space: Space, first: u32) -> Option<&HashBatch> {
        match self.batches.get(&(space, first)) {
            Some(Batch::Signed { batch, .. }) => Some(batch),
            _ => None,
        }
    }

    /// A space's batches go (a rendition stopped; its chunks are never served again).
    pub(super) fn drop_space(&mut self, space: Space) {
        self.batches.retain(|(s, _), _| *s != space);
    }
}

impl HostCore {
    /// A batch asked for with [`HostOutput::HashBatch`], signed.
    pub fn handle_hash_batch(&mut self, now: Instant, batch: HashBatch) {
        self.now = now;
        let key = (batch.space, batch.first);
        let known = self.hashes.batches.get(&key).map(|b| match b {
            Batch::Hashing(n) => (*n, None),
            Batch::Signed { batch, longer } => (batch.count(), *longer),
        });
        let Some((asked, longer)) = known else {
            // Its space went while the driver hashed.
            return;
        };
        if self.hashes.get(batch.space, batch.first).is_some_and(|b| b.count() >= batch.count()) {
            return; // a shorter one, late
        }
        let pending = longer.filter(|&n| n > batch.count()).or(Some(asked).filter(|&n| n > batch.count()));
        let msg = Message::HashBatch(batch.clone());
        self.hashes.batches.insert(key, Batch::Signed { batch, longer: pending });
        self.broadcast_batch(msg);
        self.settle(now);
    }

    /// Hashing the batch failed (the disk): it is asked for again when next served.
    pub fn handle_hash_failed(&mut self, now: Instant, space: Space, first: u32) {
        self.now = now;
        match self.hashes.batches.get_mut(&(space, first)) {
            Some(Batch::Hashing(_)) | None => {
                self.hashes.batches.remove(&(space, first));
            }
            Some(Batch::Signed { longer, .. }) => *longer = None,
        }
    }

    /// `peer` asks for a batch it lacks (it joined after it went out, or dropped it).
    pub(super) fn hash_ask(&mut self, peer: PeerId, space: Space, first: u32) {
        match self.hashes.get(space, first) {
            Some(b) => {
                let msg = Message::HashBatch(b.clone());
                self.send(peer, msg);
            }
            // Served before anyone relayed: hashed now (it goes to every relay once signed).
            None => self.need_hashes(space, first),
        }
    }

    /// Chunk `index` of `space` is about to be served: its batch must exist, as far as the
    /// space goes now.
    pub(super) fn need_hashes(&mut self, space: Space, index: u32) {
        // Nobody relays: nobody checks a chunk against a hash (a host serving only direct
        // participants reads and hashes nothing more than it serves).
        if !self.swarm.has_members() {
            return;
        }
        let first = batch_start(index);
        let available = (first..first + HASH_BATCH).take_while(|&i| self.servable(space, i)).count() as u32;
        if available <= self.hashes.covered(space, first) || index >= first + available {
            return;
        }
        match self.hashes.batches.get_mut(&(space, first)) {
            Some(Batch::Signed { longer, .. }) => *longer = Some(available),
            _ => {
                self.hashes.batches.insert((space, first), Batch::Hashing(available));
            }
        }
        let len = (first..first + available).filter_map(|i| self.chunk_len(space, i)).map(|l| l as u64).sum();
        self.out.push_back(HostOutput::HashBatch { space, first, count: available, len });
    }

    /// Whether chunk `index` of `space` exists now.
    fn servable(&self, space: Space, index: u32) -> bool {
        self.chunk_len(space, index).is_some()
    }

    /// The length of chunk `index` of `space`, if it exists now.
    pub(super) fn chunk_len(&self, space: Space, index: u32) -> Option<usize> {
        if space == ORIGINAL { self.manifest.chunk_len(index) } else { self.plan.job(space).and_then(|j| j.chunk_len(index, self.manifest.chunk_size)) }
    }

    fn broadcast_batch(&mut self, msg: Message) {
        let Message::HashBatch(b) = &msg else { return };
        let space = b.space;
        // The original's hashes go to those who relay (the rest have no use for them); a
        // rendition's to its viewers.
        let to: Vec<PeerId> = if space == ORIGINAL {
            self.peers.iter().filter(|(id, p)| p.connected && self.swarm.is_member(**id)).map(|(&id, _)| id).collect()
        } else {
            self.plan.viewers_of(space).collect()
        };
        for peer in to {
            self.send(peer, msg.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{Host, config, controls_to};
    use super::*;
    use crate::host::RenditionProgress;
    use crate::protocol::hashes::{ChunkHash, HASH_BATCH};
    use crate::protocol::identity::HostSecret;
    use crate::protocol::stream::Priority;

    const CHUNK: u64 = 64 * 1024;

    fn jobs(out: &[HostOutput]) -> Vec<(Space, u32, u32, u64)> {
        out.iter()
            .filter_map(|o| match o {
                HostOutput::HashBatch { space, first, count, len } => Some((*space, *first, *count, *len)),
                _ => None,
            })
            .collect()
    }

    fn signed(space: Space, first: u32, count: u32) -> HashBatch {
        let hashes: Vec<ChunkHash> = (0..count).map(|i| [i as u8; 32]).collect();
        HashBatch::sign(&HostSecret::from_bytes([1; 32]).host_key(), "room1", &[0; 16], space, first, &hashes)
    }

    fn request(h: &mut Host, peer: PeerId, space: Space, chunks: Vec<u32>) -> Vec<HostOutput> {
        h.core.handle_control(h.now, peer, Message::Request { space, chunks, priority: Priority::Critical });
        h.outputs()
    }

    #[test]
    fn each_range_is_hashed_once_as_it_is_first_served_and_the_batch_goes_to_every_relay() {
        let mut h = Host::new(config());
        let (ann, bob, dan) = (h.join(1, "ann"), h.join(2, "bob"), h.join(4, "dan"));
        // Ann and bob relay (their first `Have` says so); dan does not.
        for p in [ann, bob] {
            h.core.handle_control(h.now, p, Message::Have(crate::protocol::have::Have::empty(ORIGINAL)));
        }
        h.outputs();
        let out = request(&mut h, ann, ORIGINAL, (0..4).collect());
        assert_eq!(jobs(&out), vec![(ORIGINAL, 0, HASH_BATCH, HASH_BATCH as u64 * CHUNK)], "one batch for the range, not one per chunk");
        assert!(jobs(&request(&mut h, bob, ORIGINAL, (0..4).collect())).is_empty(), "served again: hashed already");
        // The last batch of the 100-chunk file holds four.
        assert_eq!(jobs(&request(&mut h, bob, ORIGINAL, vec![97])), vec![(ORIGINAL, 96, 4, 4 * CHUNK)]);

        h.core.handle_hash_batch(h.now, signed(ORIGINAL, 0, HASH_BATCH));
        let out = h.outputs();
        for p in [ann, bob] {
            assert!(controls_to(&out, p).iter().any(|m| matches!(m, Message::HashBatch(b) if b.first == 0)), "to {p}: {out:?}");
        }
        assert!(controls_to(&out, dan).is_empty(), "one that does not relay has no use for them");
        // A newcomer asks for what it needs.
        let carol = h.join(3, "carol");
        h.core.handle_control(h.now, carol, Message::HashAsk { space: ORIGINAL, first: 0 });
        assert!(matches!(controls_to(&h.outputs(), carol)[..], [Message::HashBatch(b)] if b.first == 0 && b.count() == HASH_BATCH));
        h.core.handle_control(h.now, carol, Message::HashAsk { space: ORIGINAL, first: 32 });
        let out = h.outputs();
        assert!(controls_to(&out, carol).is_empty(), "never served: no batch yet");
        assert_eq!(jobs(&out), vec![(ORIGINAL, 32, HASH_BATCH, HASH_BATCH as u64 * CHUNK)], "hashed now, for whoever relays");
    }

    #[test]
    fn a_room_where_nobody_relays_hashes_nothing() {
        let mut h = Host::new(config());
        let dan = h.join(4, "dan");
        assert!(jobs(&request(&mut h, dan, ORIGINAL, (0..8).collect())).is_empty());
    }

    #[test]
    fn a_failed_hash_is_asked_for_again_when_next_served() {
        let mut h = Host::new(config());
        let ann = h.join(1, "ann");
        h.core.handle_control(h.now, ann, Message::Have(crate::protocol::have::Have::empty(ORIGINAL)));
        assert_eq!(jobs(&request(&mut h, ann, ORIGINAL, vec![0])).len(), 1);
        h.core.handle_hash_failed(h.now, ORIGINAL, 0);
        assert_eq!(jobs(&request(&mut h, ann, ORIGINAL, vec![1])), vec![(ORIGINAL, 0, HASH_BATCH, HASH_BATCH as u64 * CHUNK)]);
    }

    #[test]
    fn a_growing_rendition_is_hashed_as_far_as_it_goes_then_again_longer() {
        let mut h = Host::new(config());
        let ann = h.join(1, "ann");
        h.core.handle_control(h.now, ann, Message::Have(crate::protocol::have::Have::empty(ORIGINAL)));
        h.core.handle_control(h.now, ann, Message::Level { level: "low".into(), from_us: 0 });
        let space = h.outputs().iter().find_map(|o| if let HostOutput::StartRendition { space, .. } = o { Some(*space) } else { None }).expect("started");
        let progress = |produced: u64| RenditionProgress { first_us: Some(0), at_us: 1_000_000, produced, done: false, error: None };
        h.core.handle_rendition_progress(h.now, space, progress(3 * CHUNK + 100));
        h.outputs();
        assert_eq!(jobs(&request(&mut h, ann, space, vec![0, 1])), vec![(space, 0, 3, 3 * CHUNK)], "whole chunks only while it grows");
        h.core.handle_rendition_progress(h.now, space, progress(40 * CHUNK));
        h.outputs();
        assert_eq!(jobs(&request(&mut h, ann, space, vec![5])), vec![(space, 0, HASH_BATCH, HASH_BATCH as u64 * CHUNK)]);
        h.core.handle_hash_batch(h.now, signed(space, 0, 3));
        assert!(controls_to(&h.outputs(), ann).iter().any(|m| matches!(m, Message::HashBatch(b) if b.count() == 3)), "the viewer gets it");
        h.core.handle_hash_batch(h.now, signed(space, 0, HASH_BATCH));
        h.outputs();
        h.core.handle_hash_batch(h.now, signed(space, 0, 3));
        assert!(h.outputs().is_empty(), "a shorter one, late, changes nothing");
        assert_eq!(h.core.hashes.get(space, 0).map(HashBatch::count), Some(HASH_BATCH));
        assert!(jobs(&request(&mut h, ann, space, vec![6])).is_empty());
    }
}
