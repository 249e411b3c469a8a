//! The in-order check: hashes the file as far as it is held (or saved) and, once every byte
//! has been through and the host has said its own, gives the verdict: the file's sha256 and
//! whether it matched the hash the host signed (`complete`).
//!
//! It runs on the disk thread ([`disk`](super::disk)): the core's lock is held only to take
//! the next chunks (shared `Bytes`, no copy), never while hashing or reading the copy back.

use std::io;
use std::time::Instant;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::disk::{DiskCopy, Pending};
use super::session::Core;
use crate::engine::Event;

/// Chunks taken at once under the core's lock.
const BATCH: u32 = 64;

/// Reads the original's store in order.
pub(super) struct Verify {
    next: u32,
    hasher: Sha256,
    /// The copy's hash, once every byte has been through.
    local: Option<[u8; 32]>,
    done: bool,
    started: Instant,
    /// Seconds from the join to the last byte (not to the host's word).
    seconds: f64,
}

/// How the check ended.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Verdict {
    /// The copy's hash.
    pub sha256: [u8; 32],
    /// The hash the host signed.
    pub host: [u8; 32],
    /// The file's size.
    pub size: u64,
    /// Seconds from the join to the last byte.
    pub seconds: f64,
}

impl Verdict {
    /// What the user is told: `complete`, after an error if the copy is not the host's file.
    pub(super) fn events(&self) -> Vec<Event> {
        let matched = self.sha256 == self.host;
        let sha256 = hex::encode(self.sha256);
        let mut events = Vec::new();
        if !matched {
            let message = format!("the copy's sha256 {sha256} is not the one the host signed ({}): some bytes came wrong", hex::encode(self.host));
            events.push(Event::Error { message });
        }
        events.push(Event::Complete { sha256, size: self.size, seconds: self.seconds, matched });
        events
    }
}

/// Where a chunk's bytes are.
enum Found {
    Bytes(Bytes),
    /// Only in the saved copy: `len` bytes at `at`.
    Disk {
        at: u64,
        len: usize,
    },
}

impl Verify {
    pub(super) fn new(started: Instant) -> Verify {
        Verify { next: 0, hasher: Sha256::new(), local: None, done: false, started, seconds: 0.0 }
    }

    /// Every chunk below this has been through.
    pub(super) fn next(&self) -> u32 {
        self.next
    }

    /// Hashes on from where it stopped: chunks the core holds, chunks on their way to the
    /// disk (`pending`), and with a saved copy those only there. The verdict, once, when every
    /// byte has been through and the host has said its hash.
    pub(super) fn advance(&mut self, core: &Core, pending: &Pending, copy: Option<&dyn DiskCopy>) -> io::Result<Option<Verdict>> {
        let mut buf = Vec::new();
        loop {
            let (batch, chunks, size, host) = self.take(core, pending, copy.is_some());
            for found in &batch {
                match found {
                    Found::Bytes(b) => self.hasher.update(b),
                    Found::Disk { at, len } => {
                        buf.resize(*len, 0);
                        copy.expect("only with a copy").read_back(*at, &mut buf)?;
                        self.hasher.update(&buf);
                    }
                }
                self.next += 1;
            }
            if self.next == chunks && self.local.is_none() {
                self.local = Some(std::mem::take(&mut self.hasher).finalize().into());
                self.seconds = self.started.elapsed().as_secs_f64();
            }
            if batch.is_empty() || self.next == chunks {
                return Ok(self.verdict(size, host));
            }
        }
    }

    /// Under the core's lock: where the next chunks are (as many as are there in a row, up to
    /// a batch), the file's chunk count and size, and the host's hash if it said it.
    fn take(&self, core: &Core, pending: &Pending, saved: bool) -> (Vec<Found>, u32, u64, Option<[u8; 32]>) {
        let core = core.lock();
        let (m, store) = (core.manifest(), core.original());
        let mut batch = Vec::new();
        for ix in self.next..m.chunks.min(self.next.saturating_add(BATCH)) {
            let found = match store.get_bytes(ix).or_else(|| pending.get(ix)) {
                Some(b) => Found::Bytes(b),
                // Evicted from memory, but on disk.
                None if saved && store.seen(ix) => Found::Disk { at: ix as u64 * m.chunk_size as u64, len: m.chunk_len(ix).unwrap_or(0) },
                None => break,
            };
            batch.push(found);
        }
        (batch, m.chunks, m.size, core.host_sha256().copied())
    }

    /// The verdict, once both hashes are known.
    fn verdict(&mut self, size: u64, host: Option<[u8; 32]>) -> Option<Verdict> {
        let (Some(sha256), Some(host), false) = (self.local, host, self.done) else { return None };
        self.done = true;
        Some(Verdict { sha256, host, size, seconds: self.seconds })
    }
}

/// A participant core holding `bytes` (as the file) in chunks of the smallest size, whose host
/// signed `host_digest`; the chunks in `saved` are not held but on disk (an earlier run's), so
/// the store is `--save`'s.
#[cfg(test)]
pub(super) fn core_with_file(bytes: &[u8], host_digest: [u8; 32], saved: &[u32]) -> crate::core::participant::ParticipantCore {
    use crate::core::buffer::StoreConfig;
    use crate::core::participant::ParticipantConfig;
    use crate::protocol::identity::{HostSecret, Purpose};
    use crate::protocol::stream::{MIN_CHUNK_SIZE, Manifest, Message};

    let key = HostSecret::from_bytes([3; 32]).host_key();
    let chunk = MIN_CHUNK_SIZE;
    let m = Manifest {
        name: "f".into(),
        size: bytes.len() as u64,
        chunk_size: chunk,
        chunks: (bytes.len() as u64).div_ceil(chunk as u64) as u32,
        duration_ms: None,
        container: "mov,mp4".into(),
        codecs: vec![],
        levels: vec!["high".into()],
        stream: [0; 16],
    };
    let cfg = ParticipantConfig {
        name: "ann".into(),
        decodes: false,
        keeps_original: Some("it does not play"),
        quality: "high".into(),
        store: StoreConfig { on_disk: !saved.is_empty(), ..StoreConfig::default() },
        ladder: vec![],
        host: Some((key.public(), "room".into())),
        relay: None,
    };
    let now = Instant::now();
    let mut core = crate::core::participant::ParticipantCore::new(now, m.clone(), cfg, saved);
    while core.poll_output().is_some() {}
    for (ix, piece) in bytes.chunks(chunk as usize).enumerate().filter(|(ix, _)| !saved.contains(&(*ix as u32))) {
        let msg = Message::Chunk { space: 0, index: ix as u32, data: serde_bytes::ByteBuf::from(piece.to_vec()) };
        core.handle_chunk(now, bytes::BytesMut::from(&crate::protocol::stream::encode(&msg)[..])).unwrap();
    }
    let sig = key.sign(Purpose::FileHash, &[b"room", &host_digest]);
    core.handle_message(now, Message::FileHash { sha256: serde_bytes::ByteBuf::from(host_digest.to_vec()), sig }).unwrap();
    core
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::participant::ParticipantCore;
    use crate::engine::join::save::SaveFile;
    use crate::media::store_source::SharedStore;
    use crate::protocol::stream::MIN_CHUNK_SIZE;

    const CHUNK: usize = MIN_CHUNK_SIZE as usize;

    fn complete(core: ParticipantCore) -> Vec<Event> {
        let verdict = Verify::new(Instant::now()).advance(&SharedStore::new(core, None, || {}), &Pending::default(), None).unwrap();
        verdict.map(|v| v.events()).unwrap_or_default()
    }

    #[test]
    fn complete_says_whether_the_copy_is_the_file_the_host_signed() {
        let bytes: Vec<u8> = (0..CHUNK + 100).map(|i| i as u8).collect();
        let right: [u8; 32] = Sha256::digest(&bytes).into();
        let events = complete(core_with_file(&bytes, right, &[]));
        assert!(matches!(&events[..], [Event::Complete { matched: true, sha256, .. }] if *sha256 == hex::encode(right)), "{events:?}");
        let events = complete(core_with_file(&bytes, [0; 32], &[]));
        assert!(matches!(&events[..], [Event::Error { .. }, Event::Complete { matched: false, .. }]), "{events:?}");
    }

    #[test]
    fn the_hash_takes_each_chunk_from_memory_from_its_way_to_the_disk_or_from_the_disk() {
        let bytes: Vec<u8> = (0..3 * CHUNK).map(|i| (i % 253) as u8).collect();
        let right: [u8; 32] = Sha256::digest(&bytes).into();
        let piece = |ix: usize| bytes::Bytes::copy_from_slice(&bytes[ix * CHUNK..(ix + 1) * CHUNK]);
        // Chunk 0 is held, 1 waits to be written, 2 is only on disk.
        let core = SharedStore::new(core_with_file(&bytes, right, &[1, 2]), None, || {});
        let dir = tempfile::tempdir().unwrap();
        let (mut copy, _) = SaveFile::open(&dir.path().join("copy"), core.lock().manifest(), false).unwrap();
        copy.write(2, &piece(2)).unwrap();
        let pending = Pending::default();
        pending.insert(1, piece(1));
        let mut verify = Verify::new(Instant::now());
        let verdict = verify.advance(&core, &pending, Some(&copy)).unwrap().expect("a verdict");
        assert_eq!((verdict.sha256, verify.next()), (right, 3));
    }
}
