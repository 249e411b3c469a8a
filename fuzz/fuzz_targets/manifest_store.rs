//! A hostile host: a manifest of its choosing, then chunks of any index and length, sizes to
//! grow to, and the participant's own reads, wants, timeouts and requests in any order. Never a
//! panic; the store never holds more than its capacity; what it asks for is in the file.
//!
//! The input: a mode byte, a manifest (bincode as on the wire, or its numbers alone), then
//! operations (see `step`).
#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use syncy::core::buffer::{ChunkStore, Read, StoreConfig};
use syncy::protocol::stream::{self, Manifest, Message, Role};

/// Most chunks a store is made for: what main's `Manifest::validate` allows now (2^22), so
/// the target means the same before and after that bound (beyond it, `ChunkStore::new`'s
/// per-chunk tables alone outgrow any memory limit).
const MAX_CHUNKS: u64 = 1 << 22;

/// The input, read from the front; past its end, zeros.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0; N];
        let n = N.min(self.0.len());
        out[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        out
    }

    fn u8(&mut self) -> u8 {
        self.bytes::<1>()[0]
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.bytes())
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.bytes())
    }

    /// `N` little-endian bytes as a number.
    fn uint<const N: usize>(&mut self) -> u64 {
        self.bytes::<N>().iter().rev().fold(0, |acc, &b| acc << 8 | u64::from(b))
    }

    /// A slice of up to `n` bytes.
    fn take(&mut self, n: usize) -> &[u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }
}

/// The manifest as the host sends it (mode bit 0), or made of numbers from the input with a
/// chunk count that matches or not.
fn manifest(mode: u8, input: &mut Input) -> Option<Manifest> {
    if mode & 1 == 1 {
        let len = usize::from(input.u16());
        return match stream::decode_from(input.take(len), Role::Host, None) {
            Ok(Message::Manifest(m)) => Some(m),
            _ => None,
        };
    }
    let size = input.uint::<5>();
    let chunk_size = input.uint::<3>() as u32;
    let chunks = if mode & 2 == 0 { Manifest::chunk_count(size, chunk_size.max(1)).min(u64::from(u32::MAX)) as u32 } else { input.u32() };
    let levels = vec!["high".into(), "low".into()];
    Some(Manifest { name: "clip.mkv".into(), size, chunk_size, chunks, duration_ms: Some(1000), container: "matroska".into(), codecs: vec![], levels, stream: [0; 16] })
}

/// A small store, tuned from the mode byte.
fn config(mode: u8) -> StoreConfig {
    StoreConfig {
        capacity: 64 * 1024 * (1 + u64::from(mode >> 2 & 7)),
        max_in_flight: 8,
        batch: 4,
        request_timeout: Duration::from_secs(1),
        fill_behind: mode & 0x20 != 0,
        download_limit: if mode & 0x40 != 0 { 100_000 } else { 0 },
        on_disk: mode & 0x80 != 0,
    }
}

/// A participant's run against one store.
struct Run {
    store: ChunkStore,
    capacity: u64,
    /// The largest size a rendition of this file may grow to (as `level_switch` bounds it).
    max_size: u64,
    now: Instant,
}

impl Run {
    /// A chunk index: mostly within the file, or any at all.
    fn index(&self, op: u8, input: &mut Input) -> u32 {
        if op & 0x10 == 0 { u32::from(input.u16()) % (self.store.manifest().chunks + 1) } else { input.u32() }
    }

    /// One operation, chosen by the low bits of `op`.
    fn step(&mut self, op: u8, input: &mut Input) {
        match op & 7 {
            0 => {
                let index = self.index(op, input);
                let len = match self.store.manifest().chunk_len(index) {
                    Some(len) if op & 8 == 0 => len,
                    _ => usize::from(input.u16()) * 4,
                };
                let _ = self.store.handle_chunk(self.now, index, vec![index as u8; len]);
            }
            1 => {
                let chunk = u64::from(self.store.manifest().chunk_size);
                let more = u64::from(input.u16());
                // Whole chunks while a rendition grows, any size once it is done; a host may go
                // on growing it after that (regressions/manifest_store/: a short last chunk held,
                // then read past its end; the store now forgets it and asks again).
                let size = (self.store.manifest().size + if op & 8 == 0 { more * chunk } else { more }).min(self.max_size);
                self.store.grow(size);
            }
            2 => {
                let pos = if op & 0x10 == 0 { u64::from(input.u32()) } else { input.uint::<8>() };
                let mut buf = vec![0; usize::from(input.u8()) * 256];
                match self.store.read_at(pos, &mut buf) {
                    Read::Bytes(n) | Read::Disk(n) => assert!(n <= buf.len()),
                    Read::End | Read::Wait | Read::Grows | Read::Gone => {}
                }
            }
            3 => {
                let index = self.index(op, input);
                self.store.want(index);
            }
            4 => self.store.handle_timeout(self.now),
            5 => {
                if let Some(request) = self.store.poll_request(self.now) {
                    let chunks = self.store.manifest().chunks;
                    assert!(!request.chunks.is_empty() && request.chunks.iter().all(|&ix| ix < chunks), "{request:?} of {chunks}");
                }
            }
            6 => self.tweak(op, input),
            _ => self.now += Duration::from_millis(u64::from(input.u16())),
        }
    }

    /// The rest of what a participant does to a store.
    fn tweak(&mut self, op: u8, input: &mut Input) {
        match op >> 3 & 7 {
            0 => self.store.set_read_position(input.u32()),
            1 => {
                let chunks = self.store.manifest().chunks;
                assert!(self.store.take_in_flight(self.now).iter().all(|&ix| ix < chunks));
            }
            2 => self.store.set_read_ahead(op & 0x80 != 0),
            3 => self.store.set_growing(op & 0x80 != 0),
            4 => self.store.set_download_limit(u64::from(input.u16()) * 64),
            5 => {
                let bins = usize::from(input.u8());
                assert_eq!(self.store.piece_map(bins).len(), bins);
            }
            6 => {
                let _ = (self.store.contiguous_ahead(), self.store.request_ready_at(self.now), self.store.poll_timeout());
                let _ = self.store.take_busy(self.now);
            }
            _ => self.store.mark_on_disk(input.u32()),
        }
    }
}

/// Where the clock starts: fixed, so each run sees the same times.
fn t0() -> Instant {
    static T0: OnceLock<Instant> = OnceLock::new();
    *T0.get_or_init(Instant::now)
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let mode = input.u8();
    let Some(m) = manifest(mode, &mut input) else { return };
    if m.validate().is_err() || u64::from(m.chunks) > MAX_CHUNKS {
        return;
    }
    let cfg = config(mode);
    let max_size = u64::from(m.chunk_size) * MAX_CHUNKS;
    let mut run = Run { capacity: cfg.capacity, store: ChunkStore::new(m, cfg), max_size, now: t0() };
    while let Some((&op, rest)) = input.0.split_first() {
        input.0 = rest;
        run.step(op, &mut input);
        assert!(run.store.held_bytes() <= run.capacity, "{} bytes held, over the capacity of {}", run.store.held_bytes(), run.capacity);
    }
});
