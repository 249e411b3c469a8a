//! Chunk reads off the host's driver task (TRUST-REVIEW #18): a few threads take reads from a
//! bounded queue and hand each result back to the driver as an input, so a slow disk delays
//! chunks, never the room's control traffic, its clock or its signaling.
//!
//! The core keeps at most [`MAX_READS`] reads out (queued, being read, or read and not yet
//! handled by the driver), and the queue holds that many: [`Readers::submit`] never waits, and
//! would give a read back rather than wait.

use std::io;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex, mpsc as std_mpsc};

use bytes::BytesMut;
use tokio::sync::mpsc;

use crate::core::host::MAX_READS;
use crate::protocol::signal::PeerId;
use crate::protocol::stream::{self, Space};

/// Reader threads: two, so one slow read does not hold up every other; more would only queue
/// more seeks on a disk that is behind already.
const READERS: usize = 2;

/// Bytes that chunks are read from: the host's file, or a rendition being made.
pub(super) trait ChunkFile: Send + Sync {
    /// Fills `buf` from `offset`.
    fn read_chunk(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;

    /// The bytes were taken away on purpose (a stopped rendition): a read that fails then is
    /// no fault of the disk, and no reason to let the participant go.
    fn withdrawn(&self) -> bool {
        false
    }
}

impl ChunkFile for std::fs::File {
    fn read_chunk(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.read_exact_at(buf, offset)
    }
}

/// One chunk to read for a participant.
pub(super) struct ChunkRead {
    pub peer: PeerId,
    pub space: Space,
    pub index: u32,
    pub offset: u64,
    pub len: usize,
    pub from: Arc<dyn ChunkFile>,
}

/// A finished read, for the driver.
pub(super) struct ReadDone {
    pub peer: PeerId,
    pub index: u32,
    pub outcome: Outcome,
}

/// What a read found.
pub(super) enum Outcome {
    /// The chunk's whole message: header, then payload.
    Read(BytesMut),
    /// The disk failed.
    Failed(io::Error),
    /// Its bytes were taken away meanwhile (see [`ChunkFile::withdrawn`]).
    Withdrawn,
}

/// The reader threads' queue, and their results.
pub(super) struct Readers {
    jobs: std_mpsc::SyncSender<ChunkRead>,
    done: mpsc::UnboundedReceiver<ReadDone>,
}

impl Readers {
    /// Starts the threads; they end when the `Readers` goes (after the read in hand).
    pub(super) fn start() -> io::Result<Readers> {
        let (jobs, rx) = std_mpsc::sync_channel(MAX_READS);
        let rx = Arc::new(Mutex::new(rx));
        // Unbounded, but it never holds more than the reads out.
        let (done_tx, done) = mpsc::unbounded_channel();
        for i in 0..READERS {
            let (rx, done_tx) = (rx.clone(), done_tx.clone());
            std::thread::Builder::new().name(format!("syncy-read-{i}")).spawn(move || reader(&rx, &done_tx))?;
        }
        Ok(Readers { jobs, done })
    }

    /// Queues a read without waiting; gives it back if it cannot be queued (more than
    /// [`MAX_READS`] out, which the core does not do, or the threads gone).
    pub(super) fn submit(&mut self, read: ChunkRead) -> Result<(), ChunkRead> {
        self.jobs.try_send(read).map_err(|e| {
            tracing::error!("chunk readers not taking reads: {e}");
            match e {
                std_mpsc::TrySendError::Full(r) | std_mpsc::TrySendError::Disconnected(r) => r,
            }
        })
    }

    /// The next finished read (cancel-safe, for `select!`).
    pub(super) async fn next(&mut self) -> Option<ReadDone> {
        self.done.recv().await
    }
}

/// One reader thread: reads until the driver's side goes.
fn reader(jobs: &Mutex<std_mpsc::Receiver<ChunkRead>>, done: &mpsc::UnboundedSender<ReadDone>) {
    loop {
        // Only one thread waits in `recv`; the other waits for the lock: the same thing.
        let job = jobs.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok(job) = job else { return };
        if done.send(read(job)).is_err() {
            return;
        }
    }
}

/// Reads a chunk straight into its message buffer (header then payload: no serde copy).
fn read(job: ChunkRead) -> ReadDone {
    let header = stream::encode_chunk_header(job.space, job.index, job.len);
    let mut bytes = BytesMut::with_capacity(header.len() + job.len);
    bytes.extend_from_slice(&header);
    bytes.resize(header.len() + job.len, 0);
    let outcome = match job.from.read_chunk(&mut bytes[header.len()..], job.offset) {
        Ok(()) => Outcome::Read(bytes),
        Err(_) if job.from.withdrawn() => Outcome::Withdrawn,
        Err(e) => Outcome::Failed(e),
    };
    ReadDone { peer: job.peer, index: job.index, outcome }
}
