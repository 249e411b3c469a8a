//! Decoding through the custom AVIO over a chunk store that a simulated host fills.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::decode::{self, FrameQueue};
use super::sample::{Mp4Layout, SampleSpec, write_sample};
use super::store_source::SharedStore;
use crate::core::buffer::{Arrival, ChunkStore, StoreConfig};
use crate::protocol::stream::{Manifest, Priority};

const CHUNK: u32 = 16 * 1024;

fn clip(dir: &Path, name: &str, seconds: f64, layout: Mp4Layout) -> PathBuf {
    let p = dir.join(name);
    let spec = SampleSpec { duration: seconds, width: 320, height: 180, video_bitrate: 1_000_000, mp4_layout: layout, ..Default::default() };
    write_sample(&p, &spec).unwrap();
    p
}

fn manifest_for(path: &Path) -> (Manifest, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap();
    let size = bytes.len() as u64;
    let m = Manifest {
        name: "clip".into(),
        size,
        chunk_size: CHUNK,
        chunks: Manifest::chunk_count(size, CHUNK) as u32,
        duration_ms: None,
        container: String::new(),
        codecs: vec![],
        levels: vec!["high".into()],
        stream: [0; 16],
    };
    (m, bytes)
}

fn chunk(bytes: &[u8], ix: u32) -> Vec<u8> {
    let start = ix as usize * CHUNK as usize;
    bytes[start..(start + CHUNK as usize).min(bytes.len())].to_vec()
}

/// Every frame timestamp, decoding straight from the file.
fn direct_pts(path: &Path) -> Vec<i64> {
    let q = FrameQueue::new(1000, None);
    let t = decode::spawn(Box::new(std::fs::File::open(path).unwrap()), q.clone());
    let mut out = vec![];
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(q.eof() && q.is_empty()) {
        assert!(Instant::now() < deadline, "direct decode timed out");
        match q.pop_until(i64::MAX) {
            Some(f) => out.push(f.pts_us),
            None => std::thread::sleep(Duration::from_millis(2)),
        }
    }
    assert_eq!(q.error(), None);
    q.close();
    t.join().unwrap();
    out
}

#[test]
fn plays_through_a_store_that_receives_chunks_in_random_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = clip(dir.path(), "a.mp4", 3.0, Mp4Layout::MoovAtEnd);
    let expected = direct_pts(&path);
    assert!(expected.len() >= 70, "{} frames", expected.len());
    let (m, bytes) = manifest_for(&path);
    let shared = SharedStore::new(ChunkStore::new(m.clone(), StoreConfig::default()), None, || {});
    // The "host": every chunk once, in a shuffled order, a little at a time.
    let host = {
        let shared = shared.clone();
        let bytes = bytes.clone();
        std::thread::spawn(move || {
            let mut order: Vec<u32> = (0..m.chunks).collect();
            order.shuffle(&mut StdRng::seed_from_u64(7));
            for ix in order {
                let arrival = shared.lock().handle_chunk(Instant::now(), ix, chunk(&bytes, ix)).unwrap();
                if arrival == Arrival::Stored {
                    shared.arrived();
                }
                std::thread::sleep(Duration::from_micros(300));
            }
        })
    };
    let q = FrameQueue::new(4, Some((32, 18)));
    let t = decode::spawn(Box::new(shared.reader()), q.clone());
    let mut got = vec![];
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(q.eof() && q.is_empty()) {
        assert!(Instant::now() < deadline, "decode over the store timed out");
        match q.pop_until(i64::MAX) {
            Some(f) => {
                assert_eq!((f.width, f.height, f.rgb.len()), (32, 18, 32 * 18 * 3));
                got.push(f.pts_us);
            }
            None => std::thread::sleep(Duration::from_millis(1)),
        }
    }
    assert_eq!(q.error(), None);
    assert_eq!(got, expected);
    q.close();
    shared.close();
    t.join().unwrap();
    host.join().unwrap();
}

/// A host that answers only the reader's critical requests, counting the bytes it sends.
struct CriticalHost {
    sent: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CriticalHost {
    fn start(shared: Arc<SharedStore<ChunkStore>>, bytes: Vec<u8>) -> CriticalHost {
        let sent = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (sent, stop) = (sent.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let mut g = shared.lock();
                    let mut served = false;
                    while let Some(req) = g.poll_request(Instant::now()) {
                        if req.priority != Priority::Critical {
                            continue; // read-ahead is not what this test measures
                        }
                        for ix in req.chunks {
                            let c = chunk(&bytes, ix);
                            sent.fetch_add(c.len() as u64, Ordering::Relaxed);
                            served |= g.handle_chunk(Instant::now(), ix, c).unwrap() == Arrival::Stored;
                        }
                    }
                    drop(g);
                    if served {
                        shared.arrived();
                    }
                    std::thread::sleep(Duration::from_micros(200));
                }
            })
        };
        CriticalHost { sent, stop, thread: Some(thread) }
    }
}

impl Drop for CriticalHost {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn wait_frame(q: &FrameQueue) -> decode::VideoFrame {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "no frame (decoder error: {:?})", q.error());
        if let Some(f) = q.pop_until(i64::MAX) {
            return f;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn first_frame_and_seek_fetch_only_a_small_part_of_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("moov-at-end.mp4", Mp4Layout::MoovAtEnd),
        ("faststart.mp4", Mp4Layout::Faststart),
        ("fragmented.mp4", Mp4Layout::Fragmented),
        ("clip.mkv", Mp4Layout::MoovAtEnd),
    ];
    for (name, layout) in cases {
        let path = clip(dir.path(), name, 30.0, layout);
        let (m, bytes) = manifest_for(&path);
        let size = m.size;
        let shared = SharedStore::new(ChunkStore::new(m, StoreConfig::default()), None, || {});
        let host = CriticalHost::start(shared.clone(), bytes);
        let q = FrameQueue::new(2, None);
        let t = decode::spawn(Box::new(shared.reader()), q.clone());
        let first = wait_frame(&q);
        let to_first = host.sent.load(Ordering::Relaxed);
        assert!(first.pts_us < 100_000, "{name}: first frame at {} µs", first.pts_us);
        // Seek to 20 s of 30: only the new position's data is read.
        q.seek(20_000_000);
        let after = wait_frame(&q);
        let to_seek = host.sent.load(Ordering::Relaxed) - to_first;
        assert!((19_900_000..20_200_000).contains(&after.pts_us), "{name}: seek landed at {} µs", after.pts_us);
        eprintln!("{name}: {size} bytes; first frame fetched {to_first}, seek fetched {to_seek}");
        assert!(to_first * 100 / size <= 12, "{name}: first frame fetched {to_first} of {size} bytes");
        assert!(to_seek * 100 / size <= 12, "{name}: the seek fetched {to_seek} of {size} bytes");
        q.close();
        shared.close();
        t.join().unwrap();
    }
}

/// A rendition made from mid-file, fetched while it is still being written (the store grows
/// a chunk at a time, the transcoder and the "host" run together), decodes on the room's
/// timeline: its frames land on the original's frame times, from the start position on, and
/// a seek inside it works.
#[test]
fn a_rendition_decodes_from_a_mid_file_start_while_it_grows() {
    use super::transcode::{Progress, Rendition, transcode};
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.mp4");
    write_sample(&src, &SampleSpec { duration: 10.0, width: 640, height: 360, video_bitrate: 2_000_000, ..Default::default() }).unwrap();
    let original = direct_pts(&src);
    let out = dir.path().join("low.mp4");
    let first = Arc::new(AtomicU64::new(u64::MAX));
    let finished = Arc::new(AtomicBool::new(false));
    let spec = Rendition { height: 240, video_bps: 400_000, audio_bps: 64_000 };
    let transcoder = {
        let (src, out, first, finished) = (src.clone(), out.clone(), first.clone(), finished.clone());
        std::thread::spawn(move || {
            transcode(&src, &out, &spec, 4_000_000, |p: Progress| {
                first.store(p.first_us as u64, Ordering::Relaxed);
                // Slower than the reader, so it really reads a growing file.
                std::thread::sleep(Duration::from_millis(10));
                true
            })
            .unwrap();
            finished.store(true, Ordering::Release);
        })
    };
    while first.load(Ordering::Relaxed) == u64::MAX {
        std::thread::sleep(Duration::from_millis(2));
    }
    let first_us = first.load(Ordering::Relaxed) as i64;
    let empty = Manifest {
        name: "low".into(),
        size: 0,
        chunk_size: CHUNK,
        chunks: 0,
        duration_ms: None,
        container: String::new(),
        codecs: vec![],
        levels: vec![],
        stream: [0; 16],
    };
    let shared = SharedStore::new(ChunkStore::new(empty, StoreConfig::default()), None, || {});
    shared.lock().set_growing(true);
    // The "host": serves whole chunks of what the file holds, then the tail once it is done.
    let host = {
        let (shared, out, finished) = (shared.clone(), out.clone(), finished.clone());
        std::thread::spawn(move || {
            let mut next = 0u32;
            loop {
                let done = finished.load(Ordering::Acquire);
                let bytes = std::fs::read(&out).unwrap_or_default();
                let available = if done { bytes.len() as u64 } else { bytes.len() as u64 / CHUNK as u64 * CHUNK as u64 };
                {
                    let mut g = shared.lock();
                    g.grow(available);
                    g.set_growing(!done);
                }
                shared.arrived();
                while (next as u64) * (CHUNK as u64) < available {
                    let data = chunk(&bytes[..available as usize], next);
                    let arrival = shared.lock().handle_chunk(Instant::now(), next, data).unwrap();
                    if arrival == Arrival::Stored {
                        shared.arrived();
                    }
                    next += 1;
                }
                if done {
                    return;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let q = FrameQueue::with_shift(4, None, None, Some(first_us));
    q.seek(6_000_000);
    let t = decode::spawn(Box::new(shared.reader()), q.clone());
    let mut got = vec![];
    let deadline = Instant::now() + Duration::from_secs(120);
    while !(q.eof() && q.is_empty()) {
        assert!(Instant::now() < deadline, "rendition decode timed out");
        assert_eq!(q.error(), None);
        match q.pop_until(i64::MAX) {
            Some(f) => {
                // Playing starts while the rendition is still being made (a demuxer that
                // indexes the whole file first would wait for the end).
                assert!(!got.is_empty() || !finished.load(Ordering::Acquire), "the first frame came only after the transcode finished");
                got.push(f.pts_us)
            }
            None => std::thread::sleep(Duration::from_millis(1)),
        }
    }
    q.close();
    t.join().unwrap();
    host.join().unwrap();
    transcoder.join().unwrap();
    // Every frame from 6 s to the end, each on one of the original's frame times (±1 ms).
    let expected: Vec<i64> = original.iter().copied().filter(|&p| p >= 6_000_000 - 20_000).collect();
    assert_eq!(got.len(), expected.len(), "frames from 6 s on: got {:?}…, expected {:?}…", &got[..got.len().min(3)], &expected[..3]);
    for (g, e) in got.iter().zip(&expected) {
        assert!((g - e).abs() <= 1_000, "frame at {g} µs, the original's at {e} µs");
    }
}
