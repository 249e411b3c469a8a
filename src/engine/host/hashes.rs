//! Chunk hashes off the driver's task, as it carries out `HostOutput::HashBatch`: a thread of
//! its own reads the batch's range (a page-cache hit: the readers have just read it, or are
//! about to), hashes each chunk, signs the batch with the host key, and hands it back to the
//! driver as an input. Chunk reads never wait for it; the core serves the chunks at once and
//! the batch follows a few milliseconds later.

use std::io;
use std::sync::{Arc, mpsc as std_mpsc};

use tokio::sync::mpsc;

use super::reads::ChunkFile;
use crate::protocol::hashes::{ChunkHash, HashBatch, StreamId, chunk_hash};
use crate::protocol::identity::HostKey;
use crate::protocol::stream::Space;

/// Batches queued at most: each is one range the core served for the first time, so more
/// than this waiting means the thread is stuck; the core asks again later.
const QUEUE: usize = 64;

/// One batch to hash.
pub(super) struct HashJob {
    pub space: Space,
    pub first: u32,
    /// Chunks in it.
    pub count: u32,
    /// Byte offset of chunk `first`, and where the batch's bytes end.
    pub range: (u64, u64),
    pub chunk_size: u32,
    pub from: Arc<dyn ChunkFile>,
}

/// What came of a job.
pub(super) enum Hashed {
    /// Signed.
    Batch(HashBatch),
    /// The disk failed (or a rendition went): the core may ask again.
    Failed { space: Space, first: u32, error: io::Error },
}

/// What signs: the host key over the room and this run.
pub(super) struct Signer {
    pub key: Arc<HostKey>,
    pub room: String,
    pub stream: StreamId,
}

/// The hashing thread's queue and results.
pub(super) struct Hasher {
    jobs: std_mpsc::SyncSender<HashJob>,
    done: mpsc::UnboundedReceiver<Hashed>,
}

impl Hasher {
    /// Starts the thread; it ends when the `Hasher` goes.
    pub(super) fn start(signer: Signer) -> io::Result<Hasher> {
        let (jobs, rx) = std_mpsc::sync_channel::<HashJob>(QUEUE);
        let (done_tx, done) = mpsc::unbounded_channel();
        std::thread::Builder::new().name("syncy-hash".into()).spawn(move || {
            while let Ok(job) = rx.recv() {
                if done_tx.send(hash(&signer, job)).is_err() {
                    return;
                }
            }
        })?;
        Ok(Hasher { jobs, done })
    }

    /// Queues a job without waiting; gives it back if the queue is full or the thread gone.
    pub(super) fn submit(&self, job: HashJob) -> Result<(), HashJob> {
        self.jobs.try_send(job).map_err(|e| match e {
            std_mpsc::TrySendError::Full(j) | std_mpsc::TrySendError::Disconnected(j) => j,
        })
    }

    /// The next result (cancel-safe, for `select!`).
    pub(super) async fn next(&mut self) -> Option<Hashed> {
        self.done.recv().await
    }
}

/// Reads, hashes and signs one batch.
fn hash(signer: &Signer, job: HashJob) -> Hashed {
    match digests(&job) {
        Ok(hashes) => Hashed::Batch(HashBatch::sign(&signer.key, &signer.room, &signer.stream, job.space, job.first, &hashes)),
        Err(error) => Hashed::Failed { space: job.space, first: job.first, error },
    }
}

/// Each chunk's SHA-256, from one read of the batch's range.
fn digests(job: &HashJob) -> io::Result<Vec<ChunkHash>> {
    let (start, end) = job.range;
    let mut buf = vec![0u8; end.saturating_sub(start) as usize];
    job.from.read_chunk(&mut buf, start)?;
    let hashes: Vec<ChunkHash> = buf.chunks(job.chunk_size as usize).map(chunk_hash).collect();
    if hashes.len() != job.count as usize {
        return Err(io::Error::other(format!("{} chunks in the range, {} expected", hashes.len(), job.count)));
    }
    Ok(hashes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::identity::HostSecret;

    /// A rendition still being written: only what exists can be read.
    struct Growing(Vec<u8>);

    impl ChunkFile for Growing {
        fn read_chunk(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
            let end = offset as usize + buf.len();
            let have = self.0.get(offset as usize..end).ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "not written yet"))?;
            buf.copy_from_slice(have);
            Ok(())
        }
    }

    fn signer() -> (Signer, crate::protocol::identity::HostId) {
        let key = HostSecret::random().host_key();
        let id = key.public();
        (Signer { key: Arc::new(key), room: "room".into(), stream: [4; 16] }, id)
    }

    #[tokio::test]
    async fn a_known_file_gives_each_chunks_sha256_signed() {
        let bytes: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
        let path = std::env::temp_dir().join(format!("syncy-hash-test-{}", std::process::id()));
        std::fs::write(&path, &bytes).unwrap();
        let file: Arc<dyn ChunkFile> = Arc::new(std::fs::File::open(&path).unwrap());
        let (signer, host) = signer();
        let mut hasher = Hasher::start(signer).unwrap();
        // Chunks of 16 KiB: the batch of chunks 0..7, the last one short.
        let job = HashJob { space: 0, first: 0, count: 7, range: (0, 100_000), chunk_size: 16384, from: file };
        assert!(hasher.submit(job).is_ok());
        let Some(Hashed::Batch(b)) = hasher.next().await else { panic!("no batch") };
        std::fs::remove_file(&path).unwrap();
        assert!(b.verify(&host, "room", &[4; 16]));
        assert_eq!(b.count(), 7);
        for (i, chunk) in bytes.chunks(16384).enumerate() {
            let want: [u8; 32] = sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(chunk)).into();
            assert_eq!(b.get(i as u32), Some(want), "chunk {i}");
        }
    }

    #[tokio::test]
    async fn a_growing_rendition_is_hashed_as_far_as_it_goes_then_longer() {
        let (signer, host) = signer();
        let mut hasher = Hasher::start(signer).unwrap();
        let part: Arc<dyn ChunkFile> = Arc::new(Growing(vec![1; 3 * 16384]));
        let job = |count: u32, from: Arc<dyn ChunkFile>| HashJob {
            space: 5,
            first: 32,
            count,
            range: (32 * 16384, (32 + count as u64) * 16384),
            chunk_size: 16384,
            from,
        };
        // A range the file does not hold (yet): the read fails, and the core hears so (it
        // asks again when it next serves the range).
        assert!(hasher.submit(job(3, part)).is_ok());
        assert!(matches!(hasher.next().await, Some(Hashed::Failed { space: 5, first: 32, .. })));
        let grown: Arc<dyn ChunkFile> = Arc::new(Growing(vec![1; 40 * 16384]));
        assert!(hasher.submit(job(3, grown.clone())).is_ok());
        let Some(Hashed::Batch(short)) = hasher.next().await else { panic!() };
        assert!(short.verify(&host, "room", &[4; 16]) && short.count() == 3 && short.space == 5);
        assert!(hasher.submit(job(8, grown)).is_ok());
        let Some(Hashed::Batch(long)) = hasher.next().await else { panic!() };
        assert_eq!((long.count(), long.get(34)), (8, short.get(34)));
    }
}
