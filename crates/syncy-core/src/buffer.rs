//! The participant's sparse chunk store and request logic.
//!
//! It holds chunks by index within a byte bound, knows which chunks are requested and not yet
//! here, and decides what to ask for next: the chunks the reader is blocked on (critical) first,
//! then a window ahead of the read position while the bound leaves room. When over the bound it
//! evicts chunks far behind the read position first, then those farthest ahead.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::rate::TokenBucket;
use crate::protocol::stream::{MAX_CHUNKS, Manifest, Priority, Space};

/// Tuning of a [`ChunkStore`].
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Most bytes held (plus requested and not yet arrived).
    pub capacity: u64,
    /// Most chunks requested and not yet arrived.
    pub max_in_flight: usize,
    /// Most indices in one request message.
    pub batch: usize,
    /// A request not answered in this long is made again.
    pub request_timeout: Duration,
    /// Once the window ahead is full, also fetch chunks behind the reader that never arrived
    /// (`--save` keeps a whole copy even when playback started mid-file).
    pub fill_behind: bool,
    /// Download limit, bytes per second (0: none): requests are paced so what they ask for
    /// arrives at about this rate.
    pub download_limit: u64,
    /// Every chunk seen is also on disk (`--save`): one evicted from memory, or restored from
    /// an earlier run, is read from there and never asked for again.
    pub on_disk: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            capacity: 256 * 1024 * 1024,
            max_in_flight: 256,
            batch: 64,
            request_timeout: Duration::from_secs(10),
            fill_behind: false,
            download_limit: 0,
            on_disk: false,
        }
    }
}

/// A request the store wants sent to the host.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct ChunkRequest {
    /// Indices, ascending.
    pub chunks: Vec<u32>,
    /// Urgency.
    pub priority: Priority,
}

/// What happened to an arriving chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Stored.
    Stored,
    /// Already held; ignored.
    Duplicate,
    /// Not stored: it would have been the first to be evicted.
    Dropped,
}

/// Chunk-store error (bad input from the network).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    /// Index past the end of the file.
    #[error("chunk {0} is out of range")]
    OutOfRange(u32),
    /// Payload length differs from the manifest's.
    #[error("chunk {index} has {got} bytes, expected {expected}")]
    WrongLength {
        /// Index.
        index: u32,
        /// Received length.
        got: usize,
        /// Manifest length.
        expected: usize,
    },
}

/// Chunk stores as a blocking reader at the edge (a decoder, mpv's local HTTP) sees them: one
/// store, or a participant's spaces.
pub trait ChunkSource: Send {
    /// The bytes at `pos` of `space` (see [`ChunkStore::read_at`]).
    fn read_at(&mut self, space: Space, pos: u64, buf: &mut [u8]) -> Read;
    /// The space's size so far (`None`: no such store).
    fn size(&self, space: Space) -> Option<u64>;
    /// Whether the space still grows.
    fn growing(&self, space: Space) -> bool;
}

/// A lone store is every space.
impl ChunkSource for ChunkStore {
    fn read_at(&mut self, _: Space, pos: u64, buf: &mut [u8]) -> Read {
        ChunkStore::read_at(self, pos, buf)
    }

    fn size(&self, _: Space) -> Option<u64> {
        Some(self.manifest.size)
    }

    fn growing(&self, _: Space) -> bool {
        self.growing
    }
}

/// Sparse, bounded chunk store with pull logic.
#[derive(Debug)]
pub struct ChunkStore {
    manifest: Manifest,
    cfg: StoreConfig,
    held: BTreeMap<u32, Bytes>,
    /// Whether each chunk is in `held`: the read-ahead walks every held chunk ahead of the
    /// reader on each request (up to the whole file), and a map lookup per chunk made that
    /// walk most of a participant's CPU in the simulated room.
    is_held: Vec<bool>,
    held_bytes: u64,
    /// Requested and not arrived: when, and how urgently.
    in_flight: HashMap<u32, (Instant, Priority)>,
    in_flight_bytes: u64,
    critical: BTreeSet<u32>,
    read_pos: u32,
    /// Chunks that have arrived at least once.
    seen: Vec<bool>,
    /// Chunks asked for and not arrived since (a request that timed out or was cancelled
    /// included: its chunk may still come). Anything else a host sends was not asked for.
    asked: Vec<bool>,
    /// Every chunk below this has been seen (fill-behind scans from here).
    fill_cursor: u32,
    /// Fetch ahead of the reader (off: only what a blocked reader needs).
    read_ahead: bool,
    /// Time with requests outstanding, not yet taken, and since when they are.
    busy: Duration,
    busy_since: Option<Instant>,
    /// Paces requests under the download limit. One participant's stores keep one limit: the
    /// rendition's store borrows the original's bucket while it asks ([`ChunkStore::swap_budget`]).
    download: TokenBucket,
    /// A rendition still being made: reads past its end wait for it to grow.
    growing: bool,
    /// With relays: how far ahead of the reader read-ahead asks the host (chunks); the
    /// participant's neighbours are asked for what lies beyond (`None`: no bound).
    host_window: Option<u32>,
    /// Chunks let go to fit the bound since [`ChunkStore::take_evicted`] (what neighbours
    /// are told no longer to ask for).
    evicted: Vec<u32>,
}

/// How long a read-ahead request may be outstanding before the reader's need of it re-asks
/// it as critical.
const UPGRADE_AFTER: Duration = Duration::from_millis(100);

/// A tenth of a second of credit at most (at least two chunks), so a pause in requests does not
/// turn into a burst.
fn download_burst(limit: f64, chunk_size: u32) -> f64 {
    (limit * 0.1).max(2.0 * chunk_size as f64)
}

/// What a read of a store's bytes found (see [`ChunkStore::read_at`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// This many bytes were copied.
    Bytes(usize),
    /// This many bytes are in the `--save` copy at the same offset: read them from there.
    Disk(usize),
    /// The end of the file.
    End,
    /// Not here yet: asked for (critical); wake the engine to send the request, and look
    /// again after the next arrival.
    Wait,
    /// Past the end of a space still growing: look again when it grows (nothing to ask).
    Grows,
    /// No such store (closed).
    Gone,
}

impl ChunkStore {
    /// An empty store for `manifest` (already validated).
    pub fn new(manifest: Manifest, cfg: StoreConfig) -> Self {
        let limit = cfg.download_limit as f64;
        let download = TokenBucket::new(limit, download_burst(limit, manifest.chunk_size));
        let manifest_chunks = manifest.chunks as usize;
        ChunkStore {
            download,
            growing: false,
            manifest,
            cfg,
            held: BTreeMap::new(),
            is_held: vec![false; manifest_chunks],
            held_bytes: 0,
            in_flight: HashMap::new(),
            in_flight_bytes: 0,
            critical: BTreeSet::new(),
            read_pos: 0,
            seen: vec![false; manifest_chunks],
            asked: vec![false; manifest_chunks],
            fill_cursor: 0,
            busy: Duration::ZERO,
            busy_since: None,
            read_ahead: true,
            host_window: None,
            evicted: Vec::new(),
        }
    }

    /// Changes the download limit (bytes/s, 0: none): this store's budget, and the size of
    /// its request batches.
    pub fn set_download_limit(&mut self, limit: u64) {
        self.cfg.download_limit = limit;
        let burst = download_burst(limit as f64, self.manifest.chunk_size);
        self.download.set_rate(limit as f64, burst);
    }

    /// Trades download budgets with `other`: a store that asks with another's budget swaps it
    /// in, asks, and swaps it back, so two stores keep one limit.
    pub fn swap_budget(&mut self, other: &mut ChunkStore) {
        std::mem::swap(&mut self.download, &mut other.download);
    }

    /// A rendition still being made (`true`), or complete.
    pub fn set_growing(&mut self, growing: bool) {
        self.growing = growing;
    }

    /// Whether reads past the end wait for more.
    pub fn growing(&self) -> bool {
        self.growing
    }

    /// A reader wants the bytes at `pos`: copies what is held of its chunk into `buf` and
    /// moves the read position there; a chunk not held is wanted at once (critical). `disk`:
    /// the `--save` copy holds every chunk seen.
    pub fn read_at(&mut self, pos: u64, buf: &mut [u8]) -> Read {
        let chunk_size = self.manifest.chunk_size as u64;
        if pos >= self.manifest.size {
            return if self.growing { Read::Grows } else { Read::End };
        }
        let index = (pos / chunk_size) as u32;
        let off = pos - index as u64 * chunk_size;
        self.set_read_position(index);
        if let Some(data) = self.held.get(&index)
            && let Some(rest) = data.get(off as usize..).filter(|r| !r.is_empty())
        {
            let n = rest.len().min(buf.len());
            buf[..n].copy_from_slice(&rest[..n]);
            return Read::Bytes(n);
        }
        let len = self.manifest.chunk_len(index).unwrap_or(0) as u64;
        if self.cfg.on_disk && self.seen(index) && off < len {
            // Evicted, or saved by an earlier run: on disk, not on the wire again.
            return Read::Disk((len - off).min(buf.len() as u64) as usize);
        }
        self.want(index);
        Read::Wait
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// A growing space (a rendition being made) now has `size` bytes to offer: whole chunks
    /// while it grows, any size once complete. Never shrinks.
    pub fn grow(&mut self, size: u64) {
        if size <= self.manifest.size {
            return;
        }
        // Never past what a manifest may hold: the size comes from the host.
        let chunk = self.manifest.chunk_size.max(1) as u64;
        let size = size.min(MAX_CHUNKS as u64 * chunk);
        // A short last chunk held so far is not the chunk that index holds now: it goes, and
        // is asked for again at its new length (a read of it would run past its end).
        let old_last = self.manifest.chunks.checked_sub(1).filter(|_| !self.manifest.size.is_multiple_of(chunk));
        if let Some(ix) = old_last {
            if self.has(ix) && self.host_window.is_some() {
                self.evicted.push(ix);
            }
            self.forget(ix);
        }
        self.manifest.size = size;
        self.manifest.chunks = Manifest::chunk_count(size, self.manifest.chunk_size.max(1)) as u32;
        self.seen.resize(self.manifest.chunks as usize, false);
        self.asked.resize(self.manifest.chunks as usize, false);
        self.is_held.resize(self.manifest.chunks as usize, false);
    }

    /// Drops everything known of chunk `ix`: held bytes, seen, asked.
    fn forget(&mut self, ix: u32) {
        if let Some(v) = self.held.remove(&ix) {
            self.held_bytes -= v.len() as u64;
        }
        for bits in [&mut self.is_held, &mut self.seen, &mut self.asked] {
            if let Some(b) = bits.get_mut(ix as usize) {
                *b = false;
            }
        }
        if self.in_flight.remove(&ix).is_some() {
            // Its old length was what was counted.
            self.in_flight_bytes = self.in_flight.keys().map(|&i| self.manifest.chunk_len(i).unwrap_or(0) as u64).sum();
        }
        self.fill_cursor = self.fill_cursor.min(ix);
    }

    /// Fetch ahead of the reader or not (a store the picture is leaving, or not using yet,
    /// asks only for what its reader is blocked on, leaving the link to the other).
    pub fn set_read_ahead(&mut self, on: bool) {
        self.read_ahead = on;
    }

    /// Forgets every request in flight and returns them (to cancel at the host when this
    /// store stops being read).
    pub fn take_in_flight(&mut self, now: Instant) -> Vec<u32> {
        self.in_flight_bytes = 0;
        self.critical.clear();
        let mut v: Vec<u32> = self.in_flight.drain().map(|(ix, _)| ix).collect();
        // Counts the time they were out, and stops counting.
        self.note_busy(now);
        v.sort_unstable();
        v
    }

    /// Bytes held now.
    pub fn held_bytes(&self) -> u64 {
        self.held_bytes
    }

    /// Whether chunk `index` was asked for and has not arrived since: a chunk the host sends
    /// that was not is dropped unstored (it would take memory, and with `--save` disk, that
    /// nobody asked to give).
    pub fn expects(&self, index: u32) -> bool {
        self.asked.get(index as usize).copied().unwrap_or(false)
    }

    /// Whether chunk `index` has ever arrived.
    pub fn seen(&self, index: u32) -> bool {
        self.seen.get(index as usize).copied().unwrap_or(false)
    }

    /// How much of the file is held, in `bins` equal slices of the chunk range: per slice, the
    /// percentage (0–100) of its chunks held. For the participant's buffer map.
    pub fn piece_map(&self, bins: usize) -> Vec<u8> {
        let chunks = self.manifest.chunks as usize;
        if bins == 0 || chunks == 0 {
            return vec![0; bins];
        }
        let bin_of = |ix: usize| ix * bins / chunks;
        let mut held = vec![0u32; bins];
        for &ix in self.held.keys() {
            held[bin_of(ix as usize)] += 1;
        }
        // Bin b holds the indices from ceil(b·chunks/bins) up to the next bin's start; with
        // more bins than chunks some are empty.
        let start = |b: usize| (b * chunks).div_ceil(bins);
        (0..bins)
            .map(|b| {
                let n = start(b + 1) - start(b);
                (held[b] as usize * 100).checked_div(n).unwrap_or(0) as u8
            })
            .collect()
    }

    /// Whether chunk `index` is held.
    pub fn has(&self, index: u32) -> bool {
        self.held.contains_key(&index)
    }

    /// Chunk bytes, if held.
    pub fn get(&self, index: u32) -> Option<&[u8]> {
        self.held.get(&index).map(|v| &v[..])
    }

    /// Chunk bytes, if held, shared (a cheap clone): for work done after the store is let go.
    pub fn get_bytes(&self, index: u32) -> Option<Bytes> {
        self.held.get(&index).cloned()
    }

    /// Where the reader is; chunks behind it are the first to go.
    pub fn read_position(&self) -> u32 {
        self.read_pos
    }

    /// Moves the reader.
    pub fn set_read_position(&mut self, index: u32) {
        self.read_pos = index.min(self.manifest.chunks);
    }

    /// `index` is on disk already (an earlier run saved it): seen, not held.
    pub fn mark_on_disk(&mut self, index: u32) {
        if let Some(s) = self.seen.get_mut(index as usize) {
            *s = true;
        }
    }

    /// The reader is blocked on `index`: ask for it before anything else.
    pub fn want(&mut self, index: u32) {
        if index < self.manifest.chunks && !self.held.contains_key(&index) {
            self.critical.insert(index);
        }
    }

    /// A chunk arrived.
    pub fn handle_chunk(&mut self, now: Instant, index: u32, data: impl Into<Bytes>) -> Result<Arrival, StoreError> {
        let data: Bytes = data.into();
        let expected = self.manifest.chunk_len(index).ok_or(StoreError::OutOfRange(index))?;
        if data.len() != expected {
            return Err(StoreError::WrongLength { index, got: data.len(), expected });
        }
        if self.in_flight.remove(&index).is_some() {
            self.in_flight_bytes -= expected as u64;
        }
        self.note_busy(now);
        self.critical.remove(&index);
        self.seen[index as usize] = true;
        self.asked[index as usize] = false;
        if self.held.contains_key(&index) {
            return Ok(Arrival::Duplicate);
        }
        self.held_bytes += expected as u64;
        self.held.insert(index, data);
        self.is_held[index as usize] = true;
        self.evict_to_fit(0);
        Ok(if self.held.contains_key(&index) { Arrival::Stored } else { Arrival::Dropped })
    }

    /// Evicts until `extra` more bytes fit; returns whether they do.
    fn evict_to_fit(&mut self, extra: u64) -> bool {
        while self.held_bytes + extra > self.cfg.capacity {
            let victim = self.victim();
            let Some(ix) = victim else { return false };
            let v = self.held.remove(&ix).expect("victim is held");
            self.is_held[ix as usize] = false;
            self.held_bytes -= v.len() as u64;
            // Kept only for relaying, where they are taken every few hundred ms.
            if self.host_window.is_some() {
                self.evicted.push(ix);
            }
        }
        true
    }

    /// Farthest behind the reader, else farthest ahead of it.
    fn victim(&self) -> Option<u32> {
        match self.held.range(..self.read_pos).next() {
            Some((&ix, _)) => Some(ix),
            None => self.held.keys().next_back().copied(),
        }
    }

    /// Bytes held at or ahead of the reader (what eviction would keep).
    fn ahead_bytes(&self) -> u64 {
        self.held.range(self.read_pos..).map(|(_, v)| v.len() as u64).sum()
    }

    /// Gives up on requests older than the timeout, so they are asked for again; returns them
    /// (to be cancelled where they were asked, and asked afresh).
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<u32> {
        let timeout = self.cfg.request_timeout;
        let mut expired: Vec<u32> = self.in_flight.iter().filter(|(_, (t, _))| now.saturating_duration_since(*t) >= timeout).map(|(ix, _)| *ix).collect();
        expired.sort_unstable();
        for &ix in &expired {
            self.in_flight.remove(&ix);
            self.in_flight_bytes -= self.manifest.chunk_len(ix).unwrap_or(0) as u64;
        }
        self.note_busy(now);
        expired
    }

    /// Whether other read-ahead requests of lower index (asked for before it) are still out:
    /// the host sends read-ahead in order, so `ix` waits behind them.
    fn queued_behind(&self, ix: u32) -> bool {
        self.in_flight.iter().filter(|(k, (_, p))| **k < ix && *p == Priority::Window).nth(1).is_some()
    }

    /// Keeps the time requests were outstanding: throughput is only meaningful over it (a
    /// store with nothing to ask for says nothing about the link).
    fn note_busy(&mut self, now: Instant) {
        match (self.in_flight.is_empty(), self.busy_since) {
            (true, Some(since)) => {
                self.busy += now.saturating_duration_since(since);
                self.busy_since = None;
            }
            (false, None) => self.busy_since = Some(now),
            _ => {}
        }
    }

    /// Time with requests outstanding since the last call.
    pub fn take_busy(&mut self, now: Instant) -> Duration {
        if let Some(since) = self.busy_since.as_mut() {
            self.busy += now.saturating_duration_since(*since);
            *since = now;
        }
        std::mem::take(&mut self.busy)
    }

    /// Bytes held contiguously from the reader on: what plays without another arrival.
    pub fn contiguous_ahead(&self) -> u64 {
        let held = self.held.range(self.read_pos..);
        (self.read_pos..).zip(held).take_while(|(want, (ix, _))| *ix == want).map(|(_, (_, v))| v.len() as u64).sum()
    }

    /// Bytes the reader can read on from where it is without waiting — held in memory, or in
    /// the saved copy — counted up to `cap`.
    pub fn readable_ahead(&self, cap: u64) -> u64 {
        let mut total = 0;
        let mut ix = self.read_pos;
        while total < cap && ix < self.manifest.chunks {
            let here = self.is_held[ix as usize] || (self.cfg.on_disk && self.seen[ix as usize]);
            if !here {
                break;
            }
            total += self.manifest.chunk_len(ix).unwrap_or(0) as u64;
            ix += 1;
        }
        total
    }

    /// When a request is held back now — by the download limit, or a read-ahead chunk the
    /// reader waits for that may be re-asked as critical — the time to ask again.
    pub fn request_ready_at(&self, now: Instant) -> Option<Instant> {
        let upgrade =
            self.critical.iter().filter_map(|ix| self.in_flight.get(ix)).filter(|(_, p)| *p == Priority::Window).map(|(t, _)| *t + UPGRADE_AFTER).min();
        let budget = &self.download;
        let limit = if self.critical.is_empty() { budget.ready_at(now) } else { budget.ready_at_overdrawn(now, budget.burst()) };
        // Held by the limit, nothing goes before it (an upgrade due earlier would wake the
        // engine to send nothing, over and over).
        match (limit, upgrade) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// When `handle_timeout` next has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.in_flight.values().map(|(t, _)| *t).min().map(|t| t + self.cfg.request_timeout)
    }

    /// The next request to send, if any.
    pub fn poll_request(&mut self, now: Instant) -> Option<ChunkRequest> {
        let r = self.next_request(now);
        self.note_busy(now);
        r
    }

    fn next_request(&mut self, now: Instant) -> Option<ChunkRequest> {
        if let Some(r) = self.critical_request(now) {
            return Some(r);
        }
        if !self.read_ahead || !self.download.ready(now) {
            return None;
        }
        self.window_request(now)
    }

    /// What the reader is stuck on. Critical requests ignore the in-flight cap and the byte
    /// bound. They may overdraw the download limit by its burst (a seek is not held up by the
    /// pacing of read-ahead), no further: a limit is a limit, also for a reader that wants more
    /// than it allows (it then plays at the limit's pace, and the automatic quality sees why).
    fn critical_request(&mut self, now: Instant) -> Option<ChunkRequest> {
        let burst = self.download.burst();
        let critical: Vec<u32> = if self.download.ready_overdrawn(now, burst) { self.critical.iter().copied().collect() } else { vec![] };
        let mut chunks = Vec::new();
        for ix in critical {
            if chunks.len() >= self.cfg.batch {
                break;
            }
            if self.held.contains_key(&ix) {
                self.critical.remove(&ix);
                continue;
            }
            match self.in_flight.get(&ix).copied() {
                None => {
                    chunks.push(ix);
                    self.mark_in_flight(now, ix);
                    self.in_flight.insert(ix, (now, Priority::Critical));
                }
                // Asked for as read-ahead, needed now: ask again as critical so the host moves
                // it to the front (its scheduler upgrades the request). At once when it waits
                // behind other read-ahead; otherwise not for a moment: a chunk first in line is
                // usually on the wire already, and the host would send it twice (a rendition
                // read at the edge of what exists asked for every chunk both ways, doubling its
                // bytes).
                Some((asked, Priority::Window)) if self.queued_behind(ix) || now.saturating_duration_since(asked) >= UPGRADE_AFTER => {
                    chunks.push(ix);
                    self.in_flight.insert(ix, (now, Priority::Critical));
                }
                Some(_) => {}
            }
        }
        // The reader is stuck: critical requests go out regardless, but they count.
        self.take_budget(now, &chunks);
        (!chunks.is_empty()).then_some(ChunkRequest { chunks, priority: Priority::Critical })
    }

    /// Read-ahead: in order from the reader while in-flight and byte bounds allow. Asked in
    /// batches (once a whole batch fits, or when running low): a request per arriving chunk
    /// would double the message rate on the link for nothing. Under a download limit a batch
    /// is at most a tenth of a second of it: the host sends a batch at once, so small batches
    /// keep what arrives close to the limit at all times.
    fn window_request(&mut self, now: Instant) -> Option<ChunkRequest> {
        let batch = match self.cfg.download_limit {
            0 => self.cfg.batch,
            limit => ((limit / 10) / self.manifest.chunk_size.max(1) as u64).clamp(1, self.cfg.batch as u64) as usize,
        };
        let low = self.in_flight.len() < batch.div_ceil(2);
        if !low && self.in_flight.len() + batch > self.cfg.max_in_flight {
            return None;
        }
        // The byte bound is summed over what is held ahead only once there is something to
        // ask for: with the rest of the file held, the walk finds nothing and costs no sum.
        let mut budget = None;
        let mut chunks = Vec::new();
        let mut ix = self.read_pos;
        let end = self.host_window.map_or(self.manifest.chunks, |w| self.read_pos.saturating_add(w).min(self.manifest.chunks));
        while ix < end && chunks.len() < batch && self.in_flight.len() < self.cfg.max_in_flight {
            let on_disk = self.cfg.on_disk && self.seen[ix as usize];
            if !on_disk && !self.is_held[ix as usize] && !self.in_flight.contains_key(&ix) {
                let left = budget.get_or_insert_with(|| self.room_ahead());
                if !self.ask(now, ix, left, &mut chunks) {
                    break;
                }
            }
            ix += 1;
        }
        if self.cfg.fill_behind && ix >= self.manifest.chunks {
            let mut left = budget.unwrap_or_else(|| self.room_ahead());
            self.fill_behind(now, batch, &mut left, &mut chunks);
        }
        self.take_budget(now, &chunks);
        (!chunks.is_empty()).then_some(ChunkRequest { chunks, priority: Priority::Window })
    }

    /// Once the window ahead is done: the chunks behind the reader that never arrived.
    fn fill_behind(&mut self, now: Instant, batch: usize, budget: &mut u64, chunks: &mut Vec<u32>) {
        while self.fill_cursor < self.manifest.chunks && self.seen[self.fill_cursor as usize] {
            self.fill_cursor += 1;
        }
        let mut ix = self.fill_cursor;
        while ix < self.read_pos && chunks.len() < batch && self.in_flight.len() < self.cfg.max_in_flight {
            if !self.seen[ix as usize] && !self.in_flight.contains_key(&ix) && !self.ask(now, ix, budget, chunks) {
                break;
            }
            ix += 1;
        }
    }

    /// Adds `ix` to a read-ahead request if the byte bound allows (`false`: it does not).
    fn ask(&mut self, now: Instant, ix: u32, budget: &mut u64, chunks: &mut Vec<u32>) -> bool {
        let len = self.manifest.chunk_len(ix).unwrap_or(0) as u64;
        if len > *budget {
            return false;
        }
        *budget -= len;
        chunks.push(ix);
        self.mark_in_flight(now, ix);
        true
    }

    /// Bytes the store may still take ahead of the reader: its capacity less what is held
    /// ahead and what is on the way.
    fn room_ahead(&self) -> u64 {
        self.cfg.capacity.saturating_sub(self.ahead_bytes() + self.in_flight_bytes)
    }

    /// What `chunks` will bring counts against the download limit.
    fn take_budget(&mut self, now: Instant, chunks: &[u32]) {
        let bytes: u64 = chunks.iter().map(|&ix| self.manifest.chunk_len(ix).unwrap_or(0) as u64).sum();
        if bytes > 0 {
            self.download.consume(now, bytes as f64);
        }
    }

    /// How long chunk `ix` has been on its way (`None`: it is not).
    pub fn in_flight_for(&self, now: Instant, ix: u32) -> Option<Duration> {
        self.in_flight.get(&ix).map(|(t, _)| now.saturating_duration_since(*t))
    }

    /// Chunks on their way, and the most there may be.
    pub fn in_flight_room(&self) -> (usize, usize) {
        (self.in_flight.len(), self.cfg.max_in_flight)
    }

    /// Whether the download limit lets more read-ahead be asked now, of anyone.
    pub fn download_ready(&mut self, now: Instant) -> bool {
        self.download.ready(now)
    }

    /// Read-ahead asked of neighbours counts against the download limit as the host's does.
    pub fn charge(&mut self, now: Instant, chunks: &[u32]) {
        self.take_budget(now, chunks);
    }

    /// With relays: read-ahead asks the host only `chunks` ahead of the reader (`None`: as
    /// far as the bound allows).
    pub fn set_host_window(&mut self, chunks: Option<u32>) {
        self.host_window = chunks;
    }

    /// Chunks in `from..to` neither held nor on their way (nor on disk), at most `max`, within
    /// the byte bound: what may be asked of neighbours.
    pub fn missing(&self, from: u32, to: u32, max: usize) -> Vec<u32> {
        let mut budget = self.room_ahead();
        let mut out = Vec::new();
        for ix in from..to.min(self.manifest.chunks) {
            if out.len() >= max || self.in_flight.len() + out.len() >= self.cfg.max_in_flight {
                break;
            }
            let on_disk = self.cfg.on_disk && self.seen[ix as usize];
            if on_disk || self.is_held[ix as usize] || self.in_flight.contains_key(&ix) {
                continue;
            }
            let len = self.manifest.chunk_len(ix).unwrap_or(0) as u64;
            if len > budget {
                break;
            }
            budget -= len;
            out.push(ix);
        }
        out
    }

    /// `ix` was asked of a neighbour.
    pub fn mark_requested(&mut self, now: Instant, ix: u32) {
        if ix < self.manifest.chunks && !self.in_flight.contains_key(&ix) {
            self.mark_in_flight(now, ix);
            self.note_busy(now);
        }
    }

    /// The neighbour asked for `ix` will not bring it (gone, too slow, no longer holds it):
    /// it may be asked for again, of anyone. A copy still on its way is taken.
    pub fn unmark(&mut self, now: Instant, ix: u32) {
        if self.in_flight.remove(&ix).is_some() {
            self.in_flight_bytes -= self.manifest.chunk_len(ix).unwrap_or(0) as u64;
            self.note_busy(now);
        }
    }

    /// Forgets requests still out for chunks below `before` that the reader has passed too
    /// (not one it is blocked on), and returns them to be cancelled where they were asked. A
    /// saved copy keeps them: it wants every chunk.
    pub fn take_passed(&mut self, now: Instant, before: u32) -> Vec<u32> {
        if self.cfg.fill_behind {
            return Vec::new();
        }
        let before = before.min(self.read_pos);
        let mut passed: Vec<u32> = self.in_flight.keys().copied().filter(|&ix| ix < before && !self.critical.contains(&ix)).collect();
        passed.sort_unstable();
        for &ix in &passed {
            self.unmark(now, ix);
        }
        passed
    }

    /// Whether `ix` was asked for and has not come.
    pub fn is_in_flight(&self, ix: u32) -> bool {
        self.in_flight.contains_key(&ix)
    }

    /// Whether the reader is blocked on `ix`.
    pub fn is_critical(&self, ix: u32) -> bool {
        self.critical.contains(&ix)
    }

    /// The chunks held in memory, ascending (what neighbours may ask for).
    pub fn held_indices(&self) -> impl Iterator<Item = u32> + '_ {
        self.held.keys().copied()
    }

    /// Chunks let go since the last call.
    pub fn take_evicted(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.evicted)
    }

    fn mark_in_flight(&mut self, now: Instant, ix: u32) {
        self.asked[ix as usize] = true;
        self.in_flight.insert(ix, (now, Priority::Window));
        self.in_flight_bytes += self.manifest.chunk_len(ix).unwrap_or(0) as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn manifest(size: u64, chunk: u32) -> Manifest {
        Manifest {
            name: "f".into(),
            size,
            chunk_size: chunk,
            chunks: Manifest::chunk_count(size, chunk) as u32,
            duration_ms: None,
            container: "raw".into(),
            codecs: vec![],
            levels: vec!["high".into()],
            stream: [0; 16],
        }
    }

    fn data(m: &Manifest, ix: u32) -> Vec<u8> {
        vec![ix as u8; m.chunk_len(ix).unwrap()]
    }

    #[test]
    fn what_can_be_read_on_counts_the_saved_copy_as_well_as_memory() {
        let m = manifest(10 * 100, 100);
        let cfg = StoreConfig { on_disk: true, ..StoreConfig::default() };
        // A resumed copy: chunks 0-3 on disk, none in memory; then 4 arrives, 5 does not.
        let mut s = ChunkStore::new(m.clone(), cfg);
        (0..4).for_each(|ix| s.mark_on_disk(ix));
        let t0 = crate::testing::t0();
        s.mark_requested(t0, 4);
        s.handle_chunk(t0, 4, data(&m, 4)).unwrap();
        assert_eq!(s.contiguous_ahead(), 0, "nothing held in memory from the reader on");
        assert_eq!(s.readable_ahead(10_000), 500);
        assert_eq!(s.readable_ahead(250), 300, "counted up to the cap (a chunk at a time)");
    }

    #[test]
    fn busy_time_counts_only_while_requests_are_out() {
        let mut s = ChunkStore::new(manifest(10 * 100, 100), StoreConfig::default());
        let t0 = crate::testing::t0();
        let ms = |n| t0 + Duration::from_millis(n);
        assert_eq!(s.take_busy(ms(0)), Duration::ZERO);
        let req = s.poll_request(ms(100)).expect("asks for the file");
        for &ix in &req.chunks {
            s.handle_chunk(ms(300), ix, vec![0u8; 100]).unwrap();
        }
        // Out from 100 to 300 ms; idle after, whatever the wall clock says.
        assert_eq!(s.take_busy(ms(2000)), Duration::from_millis(200));
        assert_eq!(s.contiguous_ahead(), 1000);
        assert_eq!(s.take_busy(ms(3000)), Duration::ZERO);
    }

    #[test]
    fn a_growing_store_asks_for_new_chunks_as_they_exist() {
        let mut s = ChunkStore::new(manifest(0, 100), StoreConfig::default());
        let now = crate::testing::t0();
        assert_eq!(s.poll_request(now), None);
        s.grow(200);
        assert_eq!(s.poll_request(now).map(|r| r.chunks), Some(vec![0, 1]));
        s.set_read_ahead(false);
        // Done at 350: the last chunk is the short one.
        s.grow(350);
        assert_eq!(s.poll_request(now), None, "no read-ahead");
        s.want(3);
        assert_eq!(s.poll_request(now).map(|r| r.chunks), Some(vec![3]), "but what the reader needs");
        assert_eq!(s.manifest().chunk_len(3), Some(50));
        s.handle_chunk(now, 3, vec![0u8; 100]).unwrap_err();
        s.handle_chunk(now, 3, vec![0u8; 50]).unwrap();
        s.set_read_ahead(true);
        assert_eq!(s.poll_request(now).map(|r| r.chunks), Some(vec![2]));
        assert_eq!(s.take_in_flight(now), vec![0, 1, 2]);
        s.handle_chunk(now, 2, vec![0u8; 100]).unwrap();
        assert_eq!(s.poll_request(now).map(|r| r.chunks), Some(vec![0, 1]), "cancelled requests are asked again");
    }

    #[test]
    fn requests_under_a_download_limit_ask_for_that_rate_within_2_percent() {
        // 64 KiB chunks of a 1 GiB file, a 1.5 MiB/s limit, chunks arriving at once and the
        // reader keeping up; woken when the store says, for 10 s of simulated time.
        let m = manifest(1 << 30, 64 * 1024);
        let limit: f64 = 1.5 * 1024.0 * 1024.0;
        let cfg = StoreConfig { capacity: 64 << 20, download_limit: limit as u64, ..StoreConfig::default() };
        let mut s = ChunkStore::new(m.clone(), cfg);
        let t0 = crate::testing::t0();
        let (mut now, mut asked, mut largest) = (t0, 0u64, 0usize);
        while now < t0 + Duration::from_secs(10) {
            while let Some(req) = s.poll_request(now) {
                largest = largest.max(req.chunks.len());
                for ix in req.chunks {
                    asked += m.chunk_len(ix).unwrap() as u64;
                    s.handle_chunk(now, ix, data(&m, ix)).unwrap();
                    s.set_read_position(ix + 1);
                }
            }
            now = s.request_ready_at(now).expect("paced");
        }
        let expected = limit * 10.0 + (limit * 0.1).max(2.0 * 65536.0);
        assert!((asked as f64 - expected).abs() <= expected * 0.02, "{asked} vs {expected}");
        assert!(largest <= 2, "batches stay a tenth of a second of the limit: {largest} chunks");
        // Unlimited: never paced.
        let mut free = ChunkStore::new(m.clone(), StoreConfig::default());
        assert_eq!(free.poll_request(t0).unwrap().chunks.len(), 64);
        assert_eq!(free.request_ready_at(t0), None);
    }

    #[test]
    fn a_reader_that_needs_more_than_the_limit_is_paced_by_it_too() {
        // Read-ahead off (as for a store the picture leaves), the reader blocked on every next
        // chunk: its critical requests keep the 1.5 Mb/s limit within 2% over 10 s (they may
        // run a burst ahead, never more), instead of fetching at the picture's pace.
        let m = manifest(1 << 30, 64 * 1024);
        let limit: f64 = 1.5e6 / 8.0;
        let cfg = StoreConfig { capacity: 64 << 20, download_limit: limit as u64, ..StoreConfig::default() };
        let mut s = ChunkStore::new(m.clone(), cfg);
        s.set_read_ahead(false);
        let t0 = crate::testing::t0();
        let (mut now, mut asked, mut next) = (t0, 0u64, 0u32);
        while now < t0 + Duration::from_secs(10) {
            s.want(next);
            while let Some(req) = s.poll_request(now) {
                assert_eq!(req.priority, Priority::Critical);
                for ix in req.chunks {
                    asked += m.chunk_len(ix).unwrap() as u64;
                    s.handle_chunk(now, ix, data(&m, ix)).unwrap();
                    next = ix + 1;
                    s.set_read_position(next);
                }
                s.want(next);
            }
            now = s.request_ready_at(now).expect("paced");
        }
        let burst = (limit * 0.1).max(2.0 * 65536.0);
        let expected = limit * 10.0 + 2.0 * burst;
        assert!((asked as f64 - expected).abs() <= expected * 0.02 + 65536.0, "{asked} vs {expected}");
    }

    #[test]
    fn the_piece_map_shows_which_slices_are_held() {
        let m = manifest(20 * 10, 10);
        let mut s = ChunkStore::new(m.clone(), StoreConfig { capacity: 1000, ..StoreConfig::default() });
        let now = crate::testing::t0();
        for ix in [0, 1, 2, 3, 4, 10, 19] {
            s.handle_chunk(now, ix, data(&m, ix)).unwrap();
        }
        assert_eq!(s.piece_map(4), vec![100, 0, 20, 20]);
        assert_eq!(s.piece_map(0), Vec::<u8>::new());
        // More bins than chunks: the empty bins read 0, not a division by zero.
        assert_eq!(s.piece_map(40).len(), 40);
        assert_eq!(s.piece_map(40)[0], 100);
    }

    #[test]
    fn a_read_ahead_chunk_needed_now_is_asked_for_again_as_critical() {
        let m = manifest(20 * 10, 10);
        let mut s = ChunkStore::new(m, StoreConfig { capacity: 1000, batch: 50, ..StoreConfig::default() });
        let now = crate::testing::t0();
        assert_eq!(s.poll_request(now).unwrap().priority, Priority::Window);
        s.want(0);
        // First in line and just asked for: most likely on the wire; asking again now would
        // bring it twice.
        assert_eq!(s.poll_request(now), None);
        assert_eq!(s.request_ready_at(now), Some(now + UPGRADE_AFTER), "the engine comes back when it may re-ask");
        let later = now + UPGRADE_AFTER;
        assert_eq!(s.poll_request(later), Some(ChunkRequest { chunks: vec![0], priority: Priority::Critical }));
        // Once upgraded, not again.
        s.want(0);
        assert_eq!(s.poll_request(later + UPGRADE_AFTER), None);
        assert_eq!(s.request_ready_at(later), None);
        // Behind other read-ahead it is asked again at once: the host would send those first.
        s.want(9);
        assert_eq!(s.poll_request(later), Some(ChunkRequest { chunks: vec![9], priority: Priority::Critical }));
    }

    #[test]
    fn requests_the_reader_passed_are_given_up_save_what_it_is_blocked_on_and_a_saved_copy_keeps_them() {
        let m = manifest(20 * 10, 10);
        let now = crate::testing::t0();
        let mut s = ChunkStore::new(m.clone(), StoreConfig { capacity: 1000, batch: 50, ..StoreConfig::default() });
        assert_eq!(s.poll_request(now).unwrap().chunks, (0..20).collect::<Vec<_>>());
        s.read_at(3 * 10, &mut [0u8; 1]); // blocked on chunk 3
        s.set_read_position(12);
        // Below both the reader (12) and the given bound (10), not 3: the reader waits on it.
        assert_eq!(s.take_passed(now, 10), vec![0, 1, 2, 4, 5, 6, 7, 8, 9]);
        assert!(s.is_in_flight(3) && s.is_in_flight(10) && !s.is_in_flight(9));
        // The reader's position bounds it too.
        assert_eq!(s.take_passed(now, 50), vec![10, 11]);
        // A chunk given up may still come (it was asked for): it is taken.
        assert!(s.handle_chunk(now, 5, data(&m, 5)).is_ok() && s.has(5));
        let mut saved = ChunkStore::new(m.clone(), StoreConfig { capacity: 1000, batch: 50, fill_behind: true, ..StoreConfig::default() });
        assert!(saved.poll_request(now).is_some());
        saved.set_read_position(15);
        assert!(saved.take_passed(now, 15).is_empty());
    }

    #[test]
    fn fill_behind_fetches_skipped_chunks_once_the_window_is_done() {
        let m = manifest(20 * 10, 10);
        let cfg = StoreConfig { capacity: 1000, batch: 50, fill_behind: true, ..StoreConfig::default() };
        let mut s = ChunkStore::new(m.clone(), cfg);
        let now = crate::testing::t0();
        s.set_read_position(15);
        let first = s.poll_request(now).unwrap();
        // The window (15..20) first, then the chunks behind the reader.
        assert_eq!(first.chunks, (15..20).chain(0..15).collect::<Vec<_>>());
        for ix in 0..20 {
            s.handle_chunk(now, ix, data(&m, ix)).unwrap();
        }
        assert!((0..20).all(|ix| s.seen(ix)));
        assert_eq!(s.poll_request(now), None);
        // Without fill_behind, the part before the reader is never asked for.
        let mut s = ChunkStore::new(m.clone(), StoreConfig { capacity: 1000, batch: 50, ..StoreConfig::default() });
        s.set_read_position(15);
        assert_eq!(s.poll_request(now).unwrap().chunks, (15..20).collect::<Vec<_>>());
        assert_eq!(s.poll_request(now), None);
    }

    #[test]
    fn requests_window_within_bound_then_critical_first() {
        let m = manifest(100 * 10, 10);
        let cfg = StoreConfig { capacity: 50, max_in_flight: 100, batch: 100, ..Default::default() };
        let mut s = ChunkStore::new(m, cfg);
        let t = crate::testing::t0();
        let r = s.poll_request(t).unwrap();
        assert_eq!(r, ChunkRequest { chunks: vec![0, 1, 2, 3, 4], priority: Priority::Window });
        assert!(s.poll_request(t).is_none(), "bound reached");
        s.want(70);
        let r = s.poll_request(t).unwrap();
        assert_eq!(r, ChunkRequest { chunks: vec![70], priority: Priority::Critical });
    }

    #[test]
    fn window_requests_come_in_batches() {
        let m = manifest(1000 * 10, 10);
        let cfg = StoreConfig { capacity: 1 << 20, max_in_flight: 40, batch: 10, ..Default::default() };
        let mut s = ChunkStore::new(m.clone(), cfg);
        let t = crate::testing::t0();
        let mut asked = vec![];
        while let Some(r) = s.poll_request(t) {
            asked.extend(r.chunks);
        }
        assert_eq!(asked, (0..40).collect::<Vec<_>>());
        // One arrival frees one slot: not worth a message yet.
        s.handle_chunk(t, 0, data(&m, 0)).unwrap();
        assert!(s.poll_request(t).is_none());
        for ix in 1..10 {
            s.handle_chunk(t, ix, data(&m, ix)).unwrap();
        }
        assert_eq!(s.poll_request(t).unwrap().chunks, (40..50).collect::<Vec<_>>());
    }

    #[test]
    fn rejects_bad_chunks() {
        let m = manifest(25, 10);
        let mut s = ChunkStore::new(m, StoreConfig::default());
        let t = crate::testing::t0();
        assert_eq!(s.handle_chunk(t, 3, vec![0; 10]), Err(StoreError::OutOfRange(3)));
        assert_eq!(s.handle_chunk(t, 2, vec![0; 10]), Err(StoreError::WrongLength { index: 2, got: 10, expected: 5 }));
        assert_eq!(s.handle_chunk(t, 2, vec![0; 5]), Ok(Arrival::Stored));
        assert_eq!(s.handle_chunk(t, 2, vec![0; 5]), Ok(Arrival::Duplicate));
    }

    #[test]
    fn evicts_far_behind_first_then_far_ahead() {
        let m = manifest(100 * 10, 10);
        let cfg = StoreConfig { capacity: 40, ..Default::default() };
        let mut s = ChunkStore::new(m.clone(), cfg);
        let t = crate::testing::t0();
        for ix in [1, 2, 5, 6] {
            s.handle_chunk(t, ix, data(&m, ix)).unwrap();
        }
        s.set_read_position(5);
        s.handle_chunk(t, 7, data(&m, 7)).unwrap();
        assert!(!s.has(1) && s.has(2), "farthest behind goes first");
        s.handle_chunk(t, 8, data(&m, 8)).unwrap();
        assert!(!s.has(2));
        // Nothing behind now: the farthest ahead goes, which is the new chunk itself.
        assert_eq!(s.handle_chunk(t, 90, data(&m, 90)), Ok(Arrival::Dropped));
        assert!(s.has(5) && s.has(8));
    }

    #[test]
    fn a_chunk_dropped_ahead_is_asked_for_again_once_there_is_room() {
        let m = manifest(100 * 10, 10);
        let mut s = ChunkStore::new(m.clone(), StoreConfig { capacity: 40, ..Default::default() });
        let t = crate::testing::t0();
        for ix in [10, 11, 12, 13] {
            s.handle_chunk(t, ix, data(&m, ix)).unwrap();
        }
        assert_eq!(s.handle_chunk(t, 14, data(&m, 14)), Ok(Arrival::Dropped), "no room ahead");
        s.set_read_position(12);
        assert_eq!(s.poll_request(t).unwrap().chunks, vec![14, 15], "room for two again, from the first missing");
    }

    #[test]
    fn chunks_on_disk_are_never_asked_for_again() {
        let m = manifest(100, 10);
        let t = crate::testing::t0();
        // On disk (a resumed copy, or evicted under --save): skipped by the window.
        let mut s = ChunkStore::new(m.clone(), StoreConfig { on_disk: true, capacity: 30, ..Default::default() });
        for ix in [0, 1, 3] {
            s.mark_on_disk(ix);
        }
        assert_eq!(s.poll_request(t).unwrap().chunks, vec![2, 4, 5]);
        // Without a disk, a chunk seen but not held must come again.
        let mut s = ChunkStore::new(m, StoreConfig { capacity: 30, ..Default::default() });
        s.mark_on_disk(0);
        assert_eq!(s.poll_request(t).unwrap().chunks, vec![0, 1, 2]);
    }

    #[test]
    fn timed_out_requests_are_made_again() {
        let m = manifest(30, 10);
        let mut s = ChunkStore::new(m, StoreConfig::default());
        let t = crate::testing::t0();
        assert_eq!(s.poll_request(t).unwrap().chunks, vec![0, 1, 2]);
        assert!(s.poll_request(t).is_none());
        let deadline = s.poll_timeout().unwrap();
        s.handle_timeout(deadline);
        assert_eq!(s.poll_request(deadline).unwrap().chunks, vec![0, 1, 2]);
    }

    proptest! {
        /// Whatever arrives, in whatever order, the store never holds more than its bound.
        #[test]
        fn never_exceeds_bound(
            cap_chunks in 1..20u64,
            arrivals in proptest::collection::vec((0..60u32, 0..60u32), 0..300),
        ) {
            let m = manifest(60 * 100 - 37, 100);
            let cfg = StoreConfig { capacity: cap_chunks * 100, ..Default::default() };
            let mut s = ChunkStore::new(m.clone(), cfg);
            let t = crate::testing::t0();
            for (ix, pos) in arrivals {
                s.set_read_position(pos);
                s.handle_chunk(t, ix, data(&m, ix)).unwrap();
                prop_assert!(s.held_bytes() <= cap_chunks * 100);
                prop_assert_eq!(s.held_bytes(), (0..60).filter(|i| s.has(*i)).map(|i| m.chunk_len(i).unwrap() as u64).sum::<u64>());
                // Nothing held is asked for again (what the read-ahead's walk skips is right).
                if let Some(r) = s.poll_request(t) {
                    prop_assert!(r.chunks.iter().all(|&ix| !s.has(ix)), "asked for a held chunk: {:?}", r.chunks);
                }
            }
        }

        /// A reader moving through the file with random arrivals gets every chunk exactly,
        /// holding no more than the bound.
        #[test]
        fn reader_gets_whole_file(cap_chunks in 2..10u64, seed in any::<u64>()) {
            use rand::{SeedableRng, seq::SliceRandom};
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let m = manifest(40 * 100 - 1, 100);
            let cfg = StoreConfig { capacity: cap_chunks * 100, batch: 7, max_in_flight: 9, ..Default::default() };
            let mut s = ChunkStore::new(m.clone(), cfg);
            let t = crate::testing::t0();
            let mut pending: Vec<u32> = vec![];
            let mut pos = 0;
            let mut steps = 0;
            while pos < m.chunks {
                steps += 1;
                prop_assert!(steps < 10_000, "no progress");
                while let Some(r) = s.poll_request(t) { pending.extend(r.chunks); }
                pending.shuffle(&mut rng);
                if let Some(ix) = pending.pop() {
                    s.handle_chunk(t, ix, data(&m, ix)).unwrap();
                }
                while let Some(d) = s.get(pos) {
                    let want = data(&m, pos);
                    prop_assert_eq!(d, want.as_slice());
                    pos += 1;
                    s.set_read_position(pos);
                }
                prop_assert!(s.held_bytes() <= cap_chunks * 100);
            }
        }
    }

    #[test]
    fn a_growing_space_never_grows_past_what_a_manifest_may_hold() {
        let mut s = ChunkStore::new(manifest(64 << 10, 64 << 10), StoreConfig::default());
        s.grow(u64::MAX);
        assert_eq!(s.manifest().chunks, MAX_CHUNKS);
        assert_eq!(s.manifest().size, MAX_CHUNKS as u64 * (64 << 10));
        let last = s.manifest().chunk_len(MAX_CHUNKS - 1);
        assert_eq!(last, Some(64 << 10));
    }

    #[test]
    fn a_short_last_chunk_held_before_its_space_grew_is_asked_for_again_not_read_past() {
        // Found by the manifest_store fuzz target: a 20-byte space of 16-byte chunks holds its
        // short last chunk (4 bytes), then grows to 40: a read at byte 24 ran past those 4.
        let mut s = ChunkStore::new(manifest(20, 16), StoreConfig::default());
        let t = crate::testing::t0();
        s.poll_request(t);
        s.handle_chunk(t, 0, vec![1u8; 16]).unwrap();
        s.handle_chunk(t, 1, vec![2u8; 4]).unwrap();
        s.grow(40);
        let mut buf = [0u8; 8];
        assert_eq!(s.read_at(24, &mut buf), Read::Wait, "the old short chunk is gone");
        assert!(!s.has(1) && !s.seen(1));
        assert_eq!(s.manifest().chunk_len(1), Some(16));
        assert_eq!(s.read_at(0, &mut buf), Read::Bytes(8));
    }
}
