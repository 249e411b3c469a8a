//! The chunk hashes a participant holds: batches the host signed (`protocol::hashes`), each
//! checked once as it comes, against which every chunk from a relay is checked.
//!
//! Bounded: at most [`MAX_BATCHES`] (about 4.5 MiB, the hashes of 8 GiB of media in 64 KiB
//! chunks); past it, the batch farthest from where the participant reads goes, and is asked
//! for again (`HashAsk`) if it is ever needed.

use std::collections::BTreeMap;

use crate::protocol::hashes::{ChunkHash, HashBatch, batch_start};
use crate::protocol::stream::Space;

/// Batches held at most.
pub const MAX_BATCHES: usize = 4096;

/// What a chunk's bytes are, against the host's hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// The host's hash matches.
    Good,
    /// It does not: the chunk is not what the host read.
    Bad,
    /// No hash for it here (yet).
    Unknown,
}

/// Checked batches, by space and first index.
#[derive(Debug, Default)]
pub struct HashTable {
    batches: BTreeMap<(Space, u32), HashBatch>,
}

impl HashTable {
    /// Keeps a batch whose signature was checked. A shorter one never replaces a longer one
    /// (a rendition's batch grows as the rendition does). `near`: the chunk the participant
    /// reads in `batch.space`, to choose what goes when the table is full.
    pub fn insert(&mut self, batch: HashBatch, near: u32) {
        let key = (batch.space, batch.first);
        if self.batches.get(&key).is_some_and(|b| b.count() >= batch.count()) {
            return;
        }
        self.batches.insert(key, batch);
        if self.batches.len() > MAX_BATCHES {
            let far = self.batches.keys().copied().max_by_key(|&(s, first)| if s == key.0 { first.abs_diff(near) } else { u32::MAX });
            if let Some(k) = far {
                self.batches.remove(&k);
            }
        }
    }

    /// The batch of `space` starting at `first`, if held (a neighbour may ask for it).
    pub fn batch(&self, space: Space, first: u32) -> Option<&HashBatch> {
        self.batches.get(&(space, first))
    }

    /// The host's hash of chunk `index` of `space`, if held.
    pub fn hash(&self, space: Space, index: u32) -> Option<ChunkHash> {
        self.batches.get(&(space, batch_start(index))).and_then(|b| b.get(index))
    }

    /// Whether a chunk's digest matches the host's hash.
    pub fn check(&self, space: Space, index: u32, digest: &ChunkHash) -> Check {
        match self.hash(space, index) {
            Some(h) if &h == digest => Check::Good,
            Some(_) => Check::Bad,
            None => Check::Unknown,
        }
    }

    /// A space's batches go (its store did).
    pub fn drop_space(&mut self, space: Space) {
        self.batches.retain(|(s, _), _| *s != space);
    }

    /// Batches held.
    pub fn len(&self) -> usize {
        self.batches.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::hashes::{HASH_BATCH, chunk_hash};
    use crate::protocol::identity::HostSecret;

    fn batch(space: Space, first: u32, n: u32) -> HashBatch {
        let key = HostSecret::from_bytes([1; 32]).host_key();
        let hashes: Vec<ChunkHash> = (first..first + n).map(|i| chunk_hash(&i.to_be_bytes())).collect();
        HashBatch::sign(&key, "r", &[0; 16], space, first, &hashes)
    }

    #[test]
    fn a_chunk_is_good_bad_or_unknown_and_longer_batches_win() {
        let mut t = HashTable::default();
        t.insert(batch(3, 32, 2), 0);
        assert_eq!(t.check(3, 33, &chunk_hash(&33u32.to_be_bytes())), Check::Good);
        assert_eq!(t.check(3, 33, &chunk_hash(b"lie")), Check::Bad);
        assert_eq!(t.check(3, 34, &chunk_hash(&34u32.to_be_bytes())), Check::Unknown, "not hashed yet");
        t.insert(batch(3, 32, 5), 0);
        assert_eq!(t.check(3, 34, &chunk_hash(&34u32.to_be_bytes())), Check::Good);
        t.insert(batch(3, 32, 2), 0);
        assert_eq!(t.check(3, 34, &chunk_hash(&34u32.to_be_bytes())), Check::Good, "a shorter batch does not replace a longer one");
        assert_eq!(t.check(4, 33, &chunk_hash(&33u32.to_be_bytes())), Check::Unknown, "another space");
        t.drop_space(3);
        assert!(t.is_empty());
    }

    #[test]
    fn a_full_table_lets_the_farthest_batch_go() {
        let mut t = HashTable::default();
        for b in 0..MAX_BATCHES as u32 {
            t.insert(batch(0, b * HASH_BATCH, 1), 0);
        }
        let last = MAX_BATCHES as u32 * HASH_BATCH;
        t.insert(batch(0, last, 1), 0);
        assert_eq!(t.len(), MAX_BATCHES);
        assert!(t.hash(0, 0).is_some(), "near the reader: kept");
        assert!(t.hash(0, last).is_none(), "the farthest went");
        assert!(t.hash(0, last - HASH_BATCH).is_some());
    }
}
