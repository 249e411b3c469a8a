//! The participant's disk work, on a thread of its own (TRUST-REVIEW #18): `--save`'s writes
//! and checkpoints, and the in-order hash ([`Verify`]), which reads the copy back where memory
//! no longer holds a chunk. The session hands it shared chunks (`Bytes`) and nudges and never
//! waits on it; it reports back ([`News`]) how far the hash got, the verdict and any failure.
//! So a slow disk holds up neither the engine's task nor, through the core's lock, the
//! decoders.
//!
//! Nothing is lost, and memory stays bounded. A chunk is [`Pending`] from when the session
//! hands it over (under the core's lock, as the core marks it seen) until it is written, and a
//! reader the core sends to the disk for it finds it there ([`CopyReader`]). At most
//! [`BACKLOG`] writes wait; while they do, the session takes nothing more from the host
//! ([`Disk::has_room`]), and the link holds the host back.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc as std_mpsc};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::save::SaveFile;
use super::session::Core;
use super::verify::{Verdict, Verify};
use crate::media::store_source::OnDisk;

/// Writes that may wait for the disk: 32 MiB of the default chunks. A disk slower than the
/// link for longer than that holds the link back.
pub(super) const BACKLOG: usize = 512;

/// Jobs the disk thread takes before it hashes on.
const JOBS_AT_ONCE: usize = 64;

/// Chunks handed to the disk thread and not yet written.
#[derive(Default)]
pub(super) struct Pending(Mutex<HashMap<u32, Bytes>>);

impl Pending {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Bytes>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Chunk `index`, if it waits to be written.
    pub(super) fn get(&self, index: u32) -> Option<Bytes> {
        self.map().get(&index).cloned()
    }

    /// Chunk `index` waits to be written.
    pub(super) fn insert(&self, index: u32, data: Bytes) {
        self.map().insert(index, data);
    }
}

/// `--save`'s copy as the disk thread uses it (a test puts a slow disk behind it).
pub(super) trait DiskCopy: Send {
    /// Writes chunk `index`.
    fn write(&mut self, index: u32, data: &[u8]) -> io::Result<()>;
    /// Makes what was written durable, then records it.
    fn checkpoint(&mut self) -> io::Result<()>;
    /// The copy is whole and checked: nothing to resume.
    fn finish(&mut self);
    /// Reads `buf.len()` bytes at `pos` back.
    fn read_back(&self, pos: u64, buf: &mut [u8]) -> io::Result<()>;
}

impl DiskCopy for SaveFile {
    fn write(&mut self, index: u32, data: &[u8]) -> io::Result<()> {
        SaveFile::write(self, index, data)
    }

    fn checkpoint(&mut self) -> io::Result<()> {
        SaveFile::checkpoint(self)
    }

    fn finish(&mut self) {
        SaveFile::finish(self)
    }

    fn read_back(&self, pos: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file().read_exact_at(buf, pos)
    }
}

/// Where the decoders read the chunks the core sends them to the disk for: the chunk itself
/// while it waits to be written, the copy once it is.
pub(super) struct CopyReader {
    pub file: Arc<File>,
    pub pending: Arc<Pending>,
    pub chunk_size: u64,
}

impl OnDisk for CopyReader {
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<()> {
        let index = pos / self.chunk_size;
        let off = (pos - index * self.chunk_size) as usize;
        match u32::try_from(index).ok().and_then(|ix| self.pending.get(ix)) {
            Some(chunk) => {
                let bytes = chunk.get(off..off + buf.len()).ok_or_else(|| io::Error::other("a read past the chunk's end"))?;
                buf.copy_from_slice(bytes);
                Ok(())
            }
            None => self.file.read_exact_at(buf, pos),
        }
    }
}

/// What the disk thread tells the session.
pub(super) enum News {
    /// The hash has been through every chunk below this.
    Verified(u32),
    /// Every byte has been through and the host said its hash.
    Verdict(Verdict),
    /// The backlog was full and has room again.
    Room,
    /// The copy could not be written or read back (the thread has stopped).
    Failed(io::Error),
}

enum Job {
    Write { index: u32, data: Bytes },
    Checkpoint,
    Advance,
    Close,
}

/// What the session and the disk thread share.
#[derive(Default)]
struct Shared {
    pending: Arc<Pending>,
    /// Writes handed over and not yet done.
    backlog: AtomicUsize,
    /// A nudge or a checkpoint is queued already (each is queued once, however often asked).
    advance: AtomicBool,
    checkpoint: AtomicBool,
}

/// The session's end of the disk thread.
pub(super) struct Disk {
    jobs: std_mpsc::SyncSender<Job>,
    news: mpsc::UnboundedReceiver<News>,
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Disk {
    /// Starts the thread: it hashes what `core` holds and writes `copy` (with `--save`).
    /// `pending` is what the copy's [`CopyReader`] looks in.
    pub(super) fn start(core: Arc<Core>, copy: Option<Box<dyn DiskCopy>>, pending: Arc<Pending>, started: Instant) -> io::Result<Disk> {
        // Every write the backlog allows, and one nudge, one checkpoint and the close.
        let (jobs, rx) = std_mpsc::sync_channel(BACKLOG + 3);
        // Unbounded, but what it holds is bounded by the jobs that made it.
        let (news_tx, news) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared { pending, ..Shared::default() });
        let worker = Worker { core, copy, verify: Verify::new(started), told: 0, verdict: None, shared: shared.clone(), news: news_tx };
        let thread = std::thread::Builder::new().name("syncy-disk".into()).spawn(move || worker.run(&rx))?;
        Ok(Disk { jobs, news, shared, thread: Some(thread) })
    }

    /// Hands chunk `index` of the original over for the copy. Call it under the core's lock,
    /// as the core says to save it: a reader sent to the disk for it then finds it pending.
    pub(super) fn write(&self, index: u32, data: Bytes) -> io::Result<()> {
        self.shared.pending.insert(index, data.clone());
        self.shared.backlog.fetch_add(1, Ordering::AcqRel);
        // Never full: the session takes a chunk only with room in the backlog.
        self.jobs.try_send(Job::Write { index, data }).map_err(|e| io::Error::other(format!("the disk thread took no more writes: {e}")))
    }

    /// Whether another chunk may be taken from the host (one chunk makes one write at most).
    pub(super) fn has_room(&self) -> bool {
        self.shared.backlog.load(Ordering::Relaxed) < BACKLOG
    }

    /// The hash has something new to look at (a chunk, the host's hash).
    pub(super) fn advance(&self) {
        self.once(&self.shared.advance, Job::Advance);
    }

    /// Makes what was written durable and records it (the resume record).
    pub(super) fn checkpoint(&self) {
        self.once(&self.shared.checkpoint, Job::Checkpoint);
    }

    fn once(&self, queued: &AtomicBool, job: Job) {
        if !queued.swap(true, Ordering::AcqRel) {
            // Full or gone: the thread has failed, and says so in its news.
            let _ = self.jobs.try_send(job);
        }
    }

    /// What the thread has to say (cancel-safe, for `select!`).
    pub(super) async fn news(&mut self) -> Option<News> {
        self.news.recv().await
    }

    /// Everything handed over written, checkpointed and hashed; then the news not yet taken.
    pub(super) async fn close(mut self) -> Vec<News> {
        let _ = self.jobs.try_send(Job::Close);
        if let Some(t) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        std::iter::from_fn(|| self.news.try_recv().ok()).collect()
    }
}

/// The disk thread.
struct Worker {
    core: Arc<Core>,
    copy: Option<Box<dyn DiskCopy>>,
    verify: Verify,
    /// How far the session was told the hash got.
    told: u32,
    /// The hash's verdict, held until every write handed over is on disk.
    verdict: Option<Verdict>,
    shared: Arc<Shared>,
    news: mpsc::UnboundedSender<News>,
}

impl Worker {
    /// Until the close (or the session gone): the jobs in order, then the hash on.
    fn run(mut self, jobs: &std_mpsc::Receiver<Job>) {
        while let Ok(first) = jobs.recv() {
            // What is queued first (a batch: the hash must not wait behind a stream of writes),
            // then the hash reads the most in one go.
            let mut close = false;
            for job in std::iter::once(first).chain(jobs.try_iter().take(JOBS_AT_ONCE)) {
                close |= matches!(job, Job::Close);
                if let Err(e) = self.job(job) {
                    return self.tell(News::Failed(e));
                }
            }
            if let Err(e) = self.hash_on() {
                return self.tell(News::Failed(e));
            }
            if close {
                break;
            }
        }
        if let Err(e) = self.copy.as_mut().map_or(Ok(()), |c| c.checkpoint()) {
            self.tell(News::Failed(e));
        }
    }

    fn job(&mut self, job: Job) -> io::Result<()> {
        match job {
            Job::Write { index, data } => {
                if let Some(c) = self.copy.as_mut() {
                    c.write(index, &data)?;
                }
                // Written: readers find it on disk from now on.
                self.shared.pending.map().remove(&index);
                if self.shared.backlog.fetch_sub(1, Ordering::AcqRel) == BACKLOG {
                    self.tell(News::Room);
                }
            }
            Job::Checkpoint => {
                self.shared.checkpoint.store(false, Ordering::Release);
                if let Some(c) = self.copy.as_mut() {
                    c.checkpoint()?;
                }
            }
            // Taken before the hash runs, so a nudge while it runs queues another.
            Job::Advance => self.shared.advance.store(false, Ordering::Release),
            Job::Close => {}
        }
        Ok(())
    }

    /// Hashes what there is; tells how far it got, and the verdict once there is one.
    fn hash_on(&mut self) -> io::Result<()> {
        let verdict = self.verify.advance(&self.core, &self.shared.pending, self.copy.as_deref())?;
        if self.verify.next() != self.told {
            self.told = self.verify.next();
            self.tell(News::Verified(self.told));
        }
        if verdict.is_some() {
            self.verdict = verdict;
        }
        self.settle()
    }

    /// Says the verdict once every write handed over is done and synced. The hash reads from
    /// memory as much as from disk, so it can finish while writes still wait: a `complete` (and
    /// the resume record gone) then would leave a copy a crash could leave with holes.
    fn settle(&mut self) -> io::Result<()> {
        if self.verdict.is_none() || self.shared.backlog.load(Ordering::Acquire) != 0 {
            return Ok(());
        }
        // Whole, or wrong (which chunks are wrong is not known): nothing to resume either way.
        if let Some(c) = self.copy.as_mut() {
            c.checkpoint()?;
            c.finish();
        }
        if let Some(v) = self.verdict.take() {
            self.tell(News::Verdict(v));
        }
        Ok(())
    }

    fn tell(&self, news: News) {
        let _ = self.news.send(news);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Condvar;
    use std::time::Duration;

    use sha2::{Digest, Sha256};

    use super::*;
    use crate::engine::join::save::progress_path;
    use crate::engine::join::verify::core_with_file;
    use crate::media::store_source::SharedStore;
    use crate::protocol::stream::MIN_CHUNK_SIZE;

    const CHUNK: usize = MIN_CHUNK_SIZE as usize;

    /// A disk whose writes wait until the test lets them go (or a minute passes, so a session
    /// that wrote on its own task fails the test instead of hanging it).
    #[derive(Default)]
    struct Gate {
        /// Open; writes started; writes finished.
        state: Mutex<(bool, usize, usize)>,
        changed: Condvar,
    }

    impl Gate {
        fn pass(&self) {
            let mut g = self.state.lock().unwrap();
            g.1 += 1;
            self.changed.notify_all();
            g = self.changed.wait_timeout_while(g, Duration::from_secs(60), |(open, ..)| !*open).unwrap().0;
            g.2 += 1;
        }

        fn wait_writing(&self) {
            drop(self.changed.wait_while(self.state.lock().unwrap(), |(_, started, _)| *started == 0).unwrap());
        }

        fn release(&self) {
            self.state.lock().unwrap().0 = true;
            self.changed.notify_all();
        }

        fn finished(&self) -> usize {
            self.state.lock().unwrap().2
        }
    }

    /// A copy behind a slow disk.
    struct Slow<C> {
        inner: C,
        gate: Arc<Gate>,
    }

    impl<C: DiskCopy> DiskCopy for Slow<C> {
        fn write(&mut self, index: u32, data: &[u8]) -> io::Result<()> {
            self.gate.pass();
            self.inner.write(index, data)
        }

        fn checkpoint(&mut self) -> io::Result<()> {
            self.inner.checkpoint()
        }

        fn finish(&mut self) {
            self.inner.finish()
        }

        fn read_back(&self, pos: u64, buf: &mut [u8]) -> io::Result<()> {
            self.inner.read_back(pos, buf)
        }
    }

    /// A copy that keeps nothing.
    struct Nowhere;

    impl DiskCopy for Nowhere {
        fn write(&mut self, _: u32, _: &[u8]) -> io::Result<()> {
            Ok(())
        }

        fn checkpoint(&mut self) -> io::Result<()> {
            Ok(())
        }

        fn finish(&mut self) {}

        fn read_back(&self, _: u64, _: &mut [u8]) -> io::Result<()> {
            Err(io::Error::other("nothing kept"))
        }
    }

    /// Takes the disk thread's news until `wanted` (a failure fails the test).
    async fn until(disk: &mut Disk, wanted: impl Fn(&News) -> bool) -> News {
        loop {
            match disk.news().await.expect("the disk thread is there") {
                News::Failed(e) => panic!("the disk failed: {e}"),
                n if wanted(&n) => return n,
                _ => {}
            }
        }
    }

    #[tokio::test]
    async fn a_slow_disk_holds_up_neither_the_session_nor_the_decoders() {
        let bytes: Vec<u8> = (0..3 * CHUNK).map(|i| (i % 251) as u8).collect();
        let right: [u8; 32] = Sha256::digest(&bytes).into();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("copy");
        let core = core_with_file(&bytes, right, &[]);
        let (copy, _) = SaveFile::open(&path, core.manifest(), false).unwrap();
        let pending = Arc::new(Pending::default());
        let decoders = CopyReader { file: copy.file().clone(), pending: pending.clone(), chunk_size: CHUNK as u64 };
        let core = SharedStore::new(core, None, || {});
        let gate = Arc::new(Gate::default());
        let mut disk = Disk::start(core.clone(), Some(Box::new(Slow { inner: copy, gate: gate.clone() })), pending, Instant::now()).unwrap();
        {
            // As the session hands chunks over: under the core's lock.
            let _core = core.lock();
            for ix in 0..3 {
                disk.write(ix as u32, Bytes::copy_from_slice(&bytes[ix * CHUNK..(ix + 1) * CHUNK])).unwrap();
            }
        }
        gate.wait_writing();
        // The disk holds a write. The core's lock is free, the session may take more from the
        // host, and a decoder the core sends to the disk for chunk 1 finds its bytes.
        drop(core.lock());
        assert!(disk.has_room());
        let mut buf = vec![0u8; 100];
        decoders.read_at(CHUNK as u64 + 5, &mut buf).unwrap();
        assert_eq!(buf, bytes[CHUNK + 5..CHUNK + 105]);
        assert_eq!(gate.finished(), 0, "all while the disk was still writing");

        gate.release();
        let News::Verdict(v) = until(&mut disk, |n| matches!(n, News::Verdict(_))).await else { unreachable!() };
        assert_eq!(v.sha256, right);
        disk.close().await;
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "every chunk written");
        assert!(!progress_path(&path).exists(), "whole and checked: nothing to resume");
    }

    #[tokio::test]
    async fn complete_waits_for_every_write_even_when_the_hash_is_done_from_memory() {
        // More chunks than the thread takes in one batch: the hash (from memory) is through
        // long before the slow disk has written them.
        let n = 3 * JOBS_AT_ONCE;
        let bytes: Vec<u8> = (0..n * CHUNK).map(|i| (i % 253) as u8).collect();
        let right: [u8; 32] = Sha256::digest(&bytes).into();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("copy");
        let core = core_with_file(&bytes, right, &[]);
        let (copy, _) = SaveFile::open(&path, core.manifest(), false).unwrap();
        let core = SharedStore::new(core, None, || {});
        let gate = Arc::new(Gate::default());
        let mut disk = Disk::start(core.clone(), Some(Box::new(Slow { inner: copy, gate: gate.clone() })), Arc::default(), Instant::now()).unwrap();
        for ix in 0..n {
            disk.write(ix as u32, Bytes::copy_from_slice(&bytes[ix * CHUNK..(ix + 1) * CHUNK])).unwrap();
        }
        disk.advance();
        gate.release();
        let News::Verdict(v) = until(&mut disk, |n| matches!(n, News::Verdict(_))).await else { unreachable!() };
        assert_eq!(v.sha256, v.host);
        assert_eq!(gate.finished(), n, "every write done before the verdict");
        assert!(!progress_path(&path).exists(), "the record goes with the verdict, not before the writes");
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
        disk.close().await;
        assert!(!progress_path(&path).exists(), "and does not come back");
    }

    #[tokio::test]
    async fn a_full_backlog_holds_the_host_back_until_the_disk_catches_up() {
        let core = SharedStore::new(core_with_file(&[7; CHUNK], [0; 32], &[]), None, || {});
        let gate = Arc::new(Gate::default());
        let mut disk = Disk::start(core, Some(Box::new(Slow { inner: Nowhere, gate: gate.clone() })), Arc::default(), Instant::now()).unwrap();
        for ix in 0..BACKLOG as u32 {
            assert!(disk.has_room());
            disk.write(ix, Bytes::from_static(b"x")).unwrap();
        }
        assert!(!disk.has_room(), "the session takes nothing more from the host");
        gate.release();
        until(&mut disk, |n| matches!(n, News::Room)).await;
        assert!(disk.has_room());
        disk.close().await;
    }
}
