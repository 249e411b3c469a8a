//! The chunk store shared between the participant's network engine (which fills it) and the
//! demuxer thread (which reads it through [`StoreReader`]). A read of a missing chunk marks it
//! critical, wakes the engine to ask the host, and waits for it to arrive.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::core::buffer::{Arrival, ChunkStore};

use super::avio::ByteSource;

/// What the engine and the reader share.
pub struct Shared {
    /// The store itself.
    pub store: ChunkStore,
    /// Set on shutdown: blocked reads give up.
    pub closed: bool,
    /// The chunk a read is waiting for, and since when.
    pub blocked_on: Option<(u32, Instant)>,
    /// Bytes handed to the demuxer (counts re-reads too).
    pub bytes_read: u64,
    /// The store is a rendition still being made: reads past its end wait for it to grow.
    pub growing: bool,
    /// Where chunks seen but not held are (`--save`'s file): read from there, not fetched.
    pub disk: Option<Arc<std::fs::File>>,
}

/// The chunk store behind a lock, with a signal for arrivals.
pub struct SharedStore {
    inner: Mutex<Shared>,
    arrived: Condvar,
    wake: Box<dyn Fn() + Send + Sync>,
    /// How often a blocked read looks up without an arrival (to notice shutdown).
    poll: Duration,
}

impl SharedStore {
    /// Shares `store`; `wake` tells the engine there is something to request.
    pub fn new(store: ChunkStore, wake: impl Fn() + Send + Sync + 'static) -> Arc<SharedStore> {
        Self::with_poll(store, wake, Duration::from_millis(200))
    }

    /// `poll`: how often a blocked read looks up without an arrival (a test makes it an hour
    /// to prove the arrival itself wakes the reader).
    fn with_poll(store: ChunkStore, wake: impl Fn() + Send + Sync + 'static, poll: Duration) -> Arc<SharedStore> {
        Arc::new(SharedStore {
            inner: Mutex::new(Shared { store, closed: false, blocked_on: None, bytes_read: 0, growing: false, disk: None }),
            arrived: Condvar::new(),
            wake: Box::new(wake),
            poll,
        })
    }

    /// Locks the store (briefly: the reader waits on the same lock).
    pub fn lock(&self) -> MutexGuard<'_, Shared> {
        // A panic while holding the lock leaves the store consistent enough to shut down.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes blocked readers after a chunk arrived, if it was stored — a chunk fetched again
    /// after eviction wakes the reader as much as a new one does (it once did not, and every
    /// re-read of an evicted chunk waited out the 200 ms poll).
    pub fn arrived(&self, arrival: Arrival) {
        if arrival == Arrival::Stored {
            self.arrived.notify_all();
        }
    }

    /// A growing store has `size` bytes now (`done`: and no more will come); wakes a read
    /// waiting past the old end.
    pub fn grow(&self, size: u64, done: bool) {
        {
            let mut g = self.lock();
            g.store.grow(size);
            g.growing = !done;
        }
        self.arrived.notify_all();
    }

    /// Makes every blocked and future read fail (shutdown).
    pub fn close(&self) {
        self.lock().closed = true;
        self.arrived.notify_all();
    }

    /// A reader for the demuxer.
    pub fn reader(self: &Arc<Self>) -> StoreReader {
        StoreReader { shared: self.clone(), cancel: Arc::new(AtomicBool::new(false)) }
    }

    /// A reader, and a switch that makes its reads fail (a decoder the picture moved away
    /// from stops, while the store lives on for the next reader).
    pub fn cancellable_reader(self: &Arc<Self>) -> (StoreReader, ReaderCancel) {
        let r = self.reader();
        let cancel = ReaderCancel { flag: r.cancel.clone(), shared: self.clone() };
        (r, cancel)
    }
}

/// Stops one [`StoreReader`].
pub struct ReaderCancel {
    flag: Arc<AtomicBool>,
    shared: Arc<SharedStore>,
}

impl ReaderCancel {
    /// Makes the reader's blocked and future reads fail.
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::Relaxed);
        // Under the lock, so a reader between its check and its wait cannot miss it.
        let _g = self.shared.lock();
        self.shared.arrived.notify_all();
    }
}

/// Reads the shared store as one contiguous file, blocking on missing chunks.
pub struct StoreReader {
    shared: Arc<SharedStore>,
    cancel: Arc<AtomicBool>,
}

impl ByteSource for StoreReader {
    fn size(&self) -> u64 {
        self.shared.lock().store.manifest().size
    }

    fn growing(&self) -> bool {
        self.shared.lock().growing
    }

    fn read_at(&mut self, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut g = self.shared.lock();
        let chunk_size = g.store.manifest().chunk_size as u64;
        let index = (pos / chunk_size) as u32;
        loop {
            if g.closed || self.cancel.load(Ordering::Relaxed) {
                return Err(io::Error::new(io::ErrorKind::Interrupted, "the player is closing"));
            }
            if pos >= g.store.manifest().size {
                if !g.growing {
                    return Ok(0);
                }
                // Past what the host has made so far: wait for the rendition to grow.
                if g.blocked_on.map(|(ix, _)| ix) != Some(index) {
                    g.blocked_on = Some((index, Instant::now()));
                }
                g = self.shared.arrived.wait_timeout(g, self.shared.poll).unwrap_or_else(|e| e.into_inner()).0;
                continue;
            }
            if let Some(data) = g.store.get(index) {
                let off = (pos - index as u64 * chunk_size) as usize;
                let n = (data.len() - off).min(buf.len());
                buf[..n].copy_from_slice(&data[off..off + n]);
                g.store.set_read_position(index);
                if let Some((ix, since)) = g.blocked_on.take()
                    && ix == index
                {
                    tracing::trace!("read of chunk {index} waited {:?}", since.elapsed());
                }
                g.bytes_read += n as u64;
                return Ok(n);
            }
            if let Some(disk) = g.disk.clone()
                && g.store.seen(index)
            {
                // Evicted, or saved by an earlier run: on disk, not on the wire again.
                use std::os::unix::fs::FileExt;
                let len = g.store.manifest().chunk_len(index).unwrap_or(0) as u64;
                let off = pos - index as u64 * chunk_size;
                let n = (len - off).min(buf.len() as u64) as usize;
                disk.read_exact_at(&mut buf[..n], pos)?;
                g.store.set_read_position(index);
                g.bytes_read += n as u64;
                return Ok(n);
            }
            if g.blocked_on.map(|(ix, _)| ix) != Some(index) {
                g.blocked_on = Some((index, Instant::now()));
            }
            g.store.set_read_position(index);
            g.store.want(index);
            (self.shared.wake)();
            // Wake now and then even without an arrival, to notice shutdown.
            g = self.shared.arrived.wait_timeout(g, self.shared.poll).unwrap_or_else(|e| e.into_inner()).0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::buffer::StoreConfig;
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
        };
        let cfg = StoreConfig { capacity: 16, ..StoreConfig::default() };
        // Without a wake-up the reader would sleep for an hour: the test would hang, not pass.
        let shared = SharedStore::with_poll(ChunkStore::new(m, cfg), || {}, Duration::from_secs(3600));
        let now = Instant::now();
        {
            let mut g = shared.lock();
            assert_eq!(g.store.handle_chunk(now, 0, vec![1u8; 8]).unwrap(), Arrival::Stored);
            g.store.set_read_position(6);
            g.store.handle_chunk(now, 6, vec![7u8; 8]).unwrap();
            g.store.handle_chunk(now, 7, vec![8u8; 8]).unwrap();
            assert!(!g.store.has(0) && g.store.seen(0), "chunk 0 was evicted");
        }
        let mut reader = shared.reader();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8];
            let n = reader.read_at(0, &mut buf);
            let _ = tx.send((n.ok(), buf));
        });
        while shared.lock().blocked_on.is_none() {
            std::thread::yield_now();
        }
        let arrival = shared.lock().store.handle_chunk(now, 0, vec![1u8; 8]).unwrap();
        shared.arrived(arrival);
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
        };
        let file = tempfile::tempfile().unwrap();
        file.write_all_at(b"0123456789abcdefghij", 0).unwrap();
        let shared = SharedStore::new(ChunkStore::new(m, StoreConfig { on_disk: true, ..StoreConfig::default() }), || {});
        {
            let mut g = shared.lock();
            g.disk = Some(Arc::new(file));
            g.store.mark_on_disk(1);
            g.store.mark_on_disk(2);
        }
        let mut reader = shared.reader();
        let mut buf = [0u8; 16];
        assert_eq!(reader.read_at(10, &mut buf).unwrap(), 6, "to the end of chunk 1");
        assert_eq!(&buf[..6], b"abcdef");
        assert_eq!(reader.read_at(16, &mut buf).unwrap(), 4, "the short last chunk");
        assert_eq!(&buf[..4], b"ghij");
        assert!(shared.lock().blocked_on.is_none(), "nothing waited for the network");
    }
}
