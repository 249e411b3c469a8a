//! Chunk stores shared between the participant's engine (which fills them through its
//! core) and the blocking readers at the edge — the demuxer threads, mpv's local HTTP — which
//! read them through [`StoreReader`]. What a read finds is the core's decision
//! ([`ChunkSource::read_at`]): a read of a missing chunk marks it critical there; here the
//! reader wakes the engine to ask the host, and waits for the arrival.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::core::buffer::{ChunkSource, Read};
use crate::protocol::stream::{ORIGINAL, Space};

use super::avio::ByteSource;

/// Stores behind the one lock their engine and their readers share, with a signal for
/// arrivals.
pub struct SharedStore<S> {
    inner: Mutex<S>,
    arrived: Condvar,
    wake: Box<dyn Fn() + Send + Sync>,
    /// How often a blocked read looks up without an arrival (to notice shutdown).
    poll: Duration,
    /// Set on shutdown: blocked reads give up.
    closed: AtomicBool,
    /// Reads that had to wait for the network.
    waits: AtomicU64,
    /// Where chunks seen but not held are (`--save`'s copy of the original).
    disk: Option<Arc<dyn OnDisk>>,
}

/// Where a store's chunks seen but not held are (`--save`'s copy): read by the blocking
/// readers, off the lock.
pub trait OnDisk: Send + Sync {
    /// Fills `buf` with the bytes at `pos` (all of them within one chunk).
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<()>;
}

impl OnDisk for std::fs::File {
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, pos)
    }
}

impl<S: ChunkSource> SharedStore<S> {
    /// Shares `stores`; `wake` tells the engine a reader wants something; `disk`: the
    /// `--save` copy.
    pub fn new(stores: S, disk: Option<Arc<dyn OnDisk>>, wake: impl Fn() + Send + Sync + 'static) -> Arc<SharedStore<S>> {
        Self::with_poll(stores, disk, wake, Duration::from_millis(200))
    }

    /// `poll`: how often a blocked read looks up without an arrival (a test makes it an hour
    /// to prove the arrival itself wakes the reader).
    fn with_poll(stores: S, disk: Option<Arc<dyn OnDisk>>, wake: impl Fn() + Send + Sync + 'static, poll: Duration) -> Arc<SharedStore<S>> {
        Arc::new(SharedStore {
            inner: Mutex::new(stores),
            arrived: Condvar::new(),
            wake: Box::new(wake),
            poll,
            closed: AtomicBool::new(false),
            waits: AtomicU64::new(0),
            disk,
        })
    }

    /// Locks the stores (briefly: the readers wait on the same lock).
    pub fn lock(&self) -> MutexGuard<'_, S> {
        // A panic while holding the lock leaves the stores consistent enough to shut down.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes blocked readers: a chunk arrived, a store grew or went.
    pub fn arrived(&self) {
        self.arrived.notify_all();
    }

    /// Makes every blocked and future read fail (shutdown).
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        let _g = self.lock();
        self.arrived.notify_all();
    }

    /// Reads that waited for the network so far.
    pub fn waits(&self) -> u64 {
        self.waits.load(Ordering::Relaxed)
    }

    /// A reader of the original.
    pub fn reader(self: &Arc<Self>) -> StoreReader<S> {
        self.space_reader(ORIGINAL).0
    }

    /// A reader of `space`, and a switch that makes its reads fail (a decoder the picture
    /// moved away from stops, while the store lives on for the next reader).
    pub fn space_reader(self: &Arc<Self>, space: Space) -> (StoreReader<S>, ReaderCancel<S>) {
        let flag = Arc::new(AtomicBool::new(false));
        let r = StoreReader { shared: self.clone(), space, cancel: flag.clone() };
        (r, ReaderCancel { flag, shared: self.clone() })
    }
}

/// Stops one [`StoreReader`].
pub struct ReaderCancel<S> {
    flag: Arc<AtomicBool>,
    shared: Arc<SharedStore<S>>,
}

impl<S: ChunkSource> ReaderCancel<S> {
    /// Makes the reader's blocked and future reads fail.
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::Relaxed);
        // Under the lock, so a reader between its check and its wait cannot miss it.
        let _g = self.shared.lock();
        self.shared.arrived.notify_all();
    }
}

/// Reads one space of the shared stores as one contiguous file, blocking on missing chunks.
pub struct StoreReader<S> {
    shared: Arc<SharedStore<S>>,
    space: Space,
    cancel: Arc<AtomicBool>,
}

impl<S: ChunkSource> ByteSource for StoreReader<S> {
    fn size(&self) -> u64 {
        self.shared.lock().size(self.space).unwrap_or(0)
    }

    fn growing(&self) -> bool {
        self.shared.lock().growing(self.space)
    }

    fn read_at(&mut self, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let shared = &*self.shared;
        let mut g = shared.lock();
        let mut waited = false;
        loop {
            if shared.closed.load(Ordering::Relaxed) || self.cancel.load(Ordering::Relaxed) {
                return Err(io::Error::new(io::ErrorKind::Interrupted, "the player is closing"));
            }
            match g.read_at(self.space, pos, buf) {
                Read::Bytes(n) => return Ok(n),
                Read::End => return Ok(0),
                Read::Gone => return Err(io::Error::new(io::ErrorKind::Interrupted, "the store is closed")),
                Read::Disk(n) => {
                    drop(g);
                    let disk = shared.disk.as_ref().ok_or_else(|| io::Error::other("a chunk on disk without a saved copy"))?;
                    disk.read_at(pos, &mut buf[..n])?;
                    return Ok(n);
                }
                wait @ (Read::Wait | Read::Grows) => {
                    if !waited {
                        waited = true;
                        shared.waits.fetch_add(1, Ordering::Relaxed);
                    }
                    if wait == Read::Wait {
                        (shared.wake)();
                    }
                    // Wake now and then even without an arrival, to notice shutdown.
                    g = shared.arrived.wait_timeout(g, shared.poll).unwrap_or_else(|e| e.into_inner()).0;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::core::buffer::StoreConfig;
    use crate::core::buffer::{Arrival, ChunkStore};
    use crate::protocol::stream::Manifest;

    #[test]
    fn a_chunk_fetched_again_after_eviction_wakes_the_blocked_reader() {
        let m = Manifest {
            name: "f".into(),
            size: 64,
            chunk_size: 8,
            chunks: 8,
            duration_ms: None,
            container: "raw".into(),
            codecs: vec![],
            levels: vec!["high".into()],
            stream: [0; 16],
        };
        let cfg = StoreConfig { capacity: 16, ..StoreConfig::default() };
        // Without a wake-up the reader would sleep for an hour: the test would hang, not pass.
        let shared = SharedStore::with_poll(ChunkStore::new(m, cfg), None, || {}, Duration::from_secs(3600));
        let now = Instant::now();
        {
            let mut g = shared.lock();
            assert_eq!(g.handle_chunk(now, 0, vec![1u8; 8]).unwrap(), Arrival::Stored);
            g.set_read_position(6);
            g.handle_chunk(now, 6, vec![7u8; 8]).unwrap();
            g.handle_chunk(now, 7, vec![8u8; 8]).unwrap();
            assert!(!g.has(0) && g.seen(0), "chunk 0 was evicted");
        }
        let mut reader = shared.reader();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8];
            let n = reader.read_at(0, &mut buf);
            let _ = tx.send((n.ok(), buf));
        });
        while shared.waits() == 0 {
            std::thread::yield_now();
        }
        assert_eq!(shared.lock().handle_chunk(now, 0, vec![1u8; 8]).unwrap(), Arrival::Stored);
        shared.arrived();
        let (n, buf) = rx.recv_timeout(Duration::from_secs(30)).expect("the reader woke");
        assert_eq!((n, buf), (Some(8), [1u8; 8]));
    }

    #[test]
    fn a_chunk_on_disk_is_read_from_there_not_asked_for() {
        use std::os::unix::fs::FileExt;
        let m = Manifest {
            name: "f".into(),
            size: 20,
            chunk_size: 8,
            chunks: 3,
            duration_ms: None,
            container: "raw".into(),
            codecs: vec![],
            levels: vec!["high".into()],
            stream: [0; 16],
        };
        let file = tempfile::tempfile().unwrap();
        file.write_all_at(b"0123456789abcdefghij", 0).unwrap();
        let shared = SharedStore::new(ChunkStore::new(m, StoreConfig { on_disk: true, ..StoreConfig::default() }), Some(Arc::new(file)), || {});
        {
            let mut g = shared.lock();
            g.mark_on_disk(1);
            g.mark_on_disk(2);
        }
        let mut reader = shared.reader();
        let mut buf = [0u8; 16];
        assert_eq!(reader.read_at(10, &mut buf).unwrap(), 6, "to the end of chunk 1");
        assert_eq!(&buf[..6], b"abcdef");
        assert_eq!(reader.read_at(16, &mut buf).unwrap(), 4, "the short last chunk");
        assert_eq!(&buf[..4], b"ghij");
        assert_eq!(shared.waits(), 0, "nothing waited for the network");
    }
}
