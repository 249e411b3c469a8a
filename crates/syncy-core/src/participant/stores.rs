//! The participant's chunk stores: the original's, and at most two renditions' (the one the
//! picture shows and the one on its way). They keep one download limit: the original's
//! budget, lent to a rendition's store while it asks.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::buffer::{ChunkRequest, ChunkStore, Read, StoreConfig};
use crate::protocol::stream::{Manifest, ORIGINAL, Space};

/// The stores.
pub struct Stores {
    original: ChunkStore,
    renditions: BTreeMap<Space, ChunkStore>,
    cfg: StoreConfig,
    chunk_size: u32,
}

impl Stores {
    /// The original's store for `manifest`; renditions' stores take a quarter of `cfg`'s bound
    /// each.
    pub fn new(manifest: &Manifest, cfg: StoreConfig) -> Stores {
        Stores { original: ChunkStore::new(manifest.clone(), cfg.clone()), renditions: BTreeMap::new(), chunk_size: manifest.chunk_size, cfg }
    }

    /// The original's store.
    pub fn original(&self) -> &ChunkStore {
        &self.original
    }

    /// The original's store, to change.
    pub fn original_mut(&mut self) -> &mut ChunkStore {
        &mut self.original
    }

    /// A space's store.
    pub fn get(&self, space: Space) -> Option<&ChunkStore> {
        if space == ORIGINAL { Some(&self.original) } else { self.renditions.get(&space) }
    }

    /// A space's store, to change.
    pub fn get_mut(&mut self, space: Space) -> Option<&mut ChunkStore> {
        if space == ORIGINAL { Some(&mut self.original) } else { self.renditions.get_mut(&space) }
    }

    /// Every store's space: the original's, then the renditions'.
    pub fn spaces(&self) -> Vec<Space> {
        std::iter::once(ORIGINAL).chain(self.renditions.keys().copied()).collect()
    }

    /// Every store.
    pub fn all_mut(&mut self) -> impl Iterator<Item = &mut ChunkStore> {
        std::iter::once(&mut self.original).chain(self.renditions.values_mut())
    }

    /// A store for a rendition the host put us on (it grows as the host makes it). A quarter
    /// of the memory bound each: with the original's store, whose chunks stay for the way back
    /// up, the participant holds at most 1.5 times its `--buffer`.
    pub fn add(&mut self, space: Space, level: &str) {
        let manifest = Manifest {
            name: format!("{level}.mp4"),
            size: 0,
            chunk_size: self.chunk_size,
            chunks: 0,
            duration_ms: None,
            container: "mp4".into(),
            codecs: vec![],
            levels: vec![],
            stream: self.original.manifest().stream,
        };
        let cfg = StoreConfig { capacity: (self.cfg.capacity / 4).max(4 * self.chunk_size as u64), fill_behind: false, on_disk: false, ..self.cfg.clone() };
        let mut store = ChunkStore::new(manifest, cfg);
        store.set_growing(true);
        self.renditions.insert(space, store);
    }

    /// A rendition's store is gone.
    pub fn remove(&mut self, space: Space) {
        self.renditions.remove(&space);
    }

    /// The download limit (bytes/s, 0: none).
    pub fn download_limit(&self) -> u64 {
        self.cfg.download_limit
    }

    /// Changes the download limit (bytes/s, 0: none) of every store.
    pub fn set_download_limit(&mut self, limit: u64) {
        self.cfg.download_limit = limit;
        // The budget is the original's; each store also sizes its request batches by it.
        self.all_mut().for_each(|s| s.set_download_limit(limit));
    }

    /// Runs `f` on `space`'s store with the one download budget.
    fn with_budget<R>(&mut self, space: Space, f: impl FnOnce(&mut ChunkStore) -> R) -> Option<R> {
        if space == ORIGINAL {
            return Some(f(&mut self.original));
        }
        let store = self.renditions.get_mut(&space)?;
        store.swap_budget(&mut self.original);
        let r = f(store);
        store.swap_budget(&mut self.original);
        Some(r)
    }

    /// What `space`'s store asks for now, and when the download limit lets the next request go
    /// if it holds some back.
    pub fn poll_requests(&mut self, now: Instant, space: Space) -> (Vec<ChunkRequest>, Option<Instant>) {
        self.with_budget(space, |s| (std::iter::from_fn(|| s.poll_request(now)).collect(), s.request_ready_at(now))).unwrap_or_default()
    }

    /// A reader of `space` wants the bytes at `pos`.
    pub fn read_at(&mut self, space: Space, pos: u64, buf: &mut [u8]) -> Read {
        self.get_mut(space).map_or(Read::Gone, |s| s.read_at(pos, buf))
    }

    /// Time with requests outstanding, over every store, since the last call.
    pub fn take_busy(&mut self, now: Instant) -> Duration {
        self.all_mut().map(|s| s.take_busy(now)).sum()
    }
}
