//! Signed chunk hashes: what lets a participant take a chunk from another participant.
//!
//! The host reads each range of a file (or rendition) before it serves it; as it does, it
//! hashes each chunk with SHA-256 and signs the hashes in batches of [`HASH_BATCH`] with its
//! host key, over the room and the host run's stream id. A participant checks a batch's
//! signature once and then each relayed chunk against it, so a relay can only ever pass on
//! bytes the host read. No whole-file pass comes first: a batch exists as soon as its range
//! was read.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};

use super::identity::{HostId, HostKey, Purpose};
use super::stream::{MAX_CHUNKS, Space};

/// Chunks per batch: at 64 KiB chunks, 1 KiB of hashes per 2 MiB of media.
pub const HASH_BATCH: u32 = 32;
/// Bytes of one hash.
pub const HASH_LEN: usize = 32;

/// A random id of one host run, in every signature that a relay might replay: a batch the
/// same room's host signed for another file, another run, is never valid in this one.
pub type StreamId = [u8; 16];

/// One chunk's digest.
pub type ChunkHash = [u8; HASH_LEN];

/// The SHA-256 of a chunk's bytes.
pub fn chunk_hash(data: &[u8]) -> ChunkHash {
    Sha256::digest(data).into()
}

/// The batch `index` falls in, as its first index.
pub fn batch_start(index: u32) -> u32 {
    index - index % HASH_BATCH
}

/// The hashes of chunks `first..first + n` of a space, signed by the host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HashBatch {
    /// Chunk space.
    pub space: Space,
    /// First chunk index (a multiple of [`HASH_BATCH`]).
    pub first: u32,
    /// `n` hashes of [`HASH_LEN`] bytes, `1 ≤ n ≤ HASH_BATCH`. Fewer only at the end of a
    /// space, or of a rendition still growing (a later, longer batch replaces it).
    pub hashes: ByteBuf,
    /// Hex Ed25519 signature (`Purpose::ChunkHashes`).
    pub sig: String,
}

impl HashBatch {
    /// Signs the hashes of chunks `first..` of `space`.
    pub fn sign(key: &HostKey, room: &str, stream: &StreamId, space: Space, first: u32, hashes: &[ChunkHash]) -> HashBatch {
        let flat: Vec<u8> = hashes.concat();
        let sig = key.sign(Purpose::ChunkHashes, &[room.as_bytes(), stream, &space.to_be_bytes(), &first.to_be_bytes(), &flat]);
        HashBatch { space, first, hashes: ByteBuf::from(flat), sig }
    }

    /// Whether the host signed this batch for this room and run.
    pub fn verify(&self, key: &HostId, room: &str, stream: &StreamId) -> bool {
        let fields: [&[u8]; 5] = [room.as_bytes(), stream, &self.space.to_be_bytes(), &self.first.to_be_bytes(), &self.hashes];
        key.verify(Purpose::ChunkHashes, &fields, &self.sig)
    }

    /// How many chunks it covers.
    pub fn count(&self) -> u32 {
        (self.hashes.len() / HASH_LEN) as u32
    }

    /// The hash of chunk `index`, if the batch covers it.
    pub fn get(&self, index: u32) -> Option<ChunkHash> {
        let at = index.checked_sub(self.first)? as usize;
        self.hashes.get(at * HASH_LEN..(at + 1) * HASH_LEN).map(|h| h.try_into().expect("a slice of HASH_LEN"))
    }

    /// Whether the batch is well formed (its signature aside): aligned, 1 to [`HASH_BATCH`]
    /// whole hashes, within the largest space, a signature's length.
    pub fn well_formed(&self) -> bool {
        let n = self.hashes.len();
        self.first.is_multiple_of(HASH_BATCH)
            && n.is_multiple_of(HASH_LEN)
            && (1..=HASH_BATCH as usize).contains(&(n / HASH_LEN))
            && self.first as u64 + (n / HASH_LEN) as u64 <= MAX_CHUNKS as u64
            && self.sig.len() == 128
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::identity::HostSecret;

    fn batch(key: &HostKey, first: u32, n: u8) -> HashBatch {
        let hashes: Vec<ChunkHash> = (0..n).map(|i| chunk_hash(&[i])).collect();
        HashBatch::sign(key, "room", &[7; 16], 2, first, &hashes)
    }

    #[test]
    fn a_batch_verifies_for_its_room_and_run_only_and_gives_each_chunks_hash() {
        let key = HostSecret::random().host_key();
        let b = batch(&key, 64, 3);
        assert!(b.well_formed());
        assert!(b.verify(&key.public(), "room", &[7; 16]));
        assert!(!b.verify(&key.public(), "other", &[7; 16]), "another room");
        assert!(!b.verify(&key.public(), "room", &[8; 16]), "another run of the same room");
        assert!(!b.verify(&HostSecret::random().host_key().public(), "room", &[7; 16]), "another host");
        assert_eq!(b.count(), 3);
        assert_eq!(b.get(65), Some(chunk_hash(&[1])));
        assert_eq!((b.get(63), b.get(67)), (None, None));
        let mut moved = b.clone();
        moved.first = 96;
        assert!(!moved.verify(&key.public(), "room", &[7; 16]), "the same hashes for other chunks");
        let mut other_space = b.clone();
        other_space.space = 3;
        assert!(!other_space.verify(&key.public(), "room", &[7; 16]));
        let mut cut = b.clone();
        cut.hashes = ByteBuf::from(b.hashes[..HASH_LEN].to_vec());
        assert!(cut.well_formed() && !cut.verify(&key.public(), "room", &[7; 16]), "a batch cut short");
    }

    #[test]
    fn malformed_batches_are_told_apart() {
        let key = HostSecret::random().host_key();
        assert!(!batch(&key, 5, 1).well_formed(), "unaligned");
        assert!(!batch(&key, 0, 0).well_formed(), "empty");
        assert!(!batch(&key, 0, 33).well_formed(), "too many");
        assert!(!batch(&key, MAX_CHUNKS, 1).well_formed(), "past the largest space");
        let mut ragged = batch(&key, 0, 2);
        ragged.hashes.pop();
        assert!(!ragged.well_formed());
        let mut short_sig = batch(&key, 0, 2);
        short_sig.sig.pop();
        assert!(!short_sig.well_formed());
        assert_eq!(batch_start(70), 64);
    }
}
