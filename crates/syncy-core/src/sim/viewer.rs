//! A simulated participant: the participant's core machines (chunk store, room-clock
//! follower, offset estimator) with its cadences (pings, reports, request timeouts) and a
//! model of the decoder — a picture shows while the chunk under the playback position is held;
//! the reader asks for what lies half a second ahead of it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::buffer::{ChunkStore, StoreConfig};
use crate::clock::{Follower, FollowerConfig, MediaState, Micros, OffsetEstimator};
use crate::protocol::stream::{Manifest, Message, ORIGINAL};

/// How often the model presents (a frame at 25 fps).
const FRAME: Duration = Duration::from_millis(40);
/// How far ahead of the picture the demuxer reads.
const READ_AHEAD_US: Micros = 500_000;

/// What a simulated participant went through.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ViewerStats {
    /// Times the picture froze while the room played.
    pub stalls: u32,
    /// Time spent frozen while the room played.
    pub stalled_for: Duration,
    /// Chunk bytes received (duplicates included).
    pub received: u64,
    /// Chunks that came twice.
    pub duplicates: u32,
    /// When it first showed a picture.
    pub first_picture: Option<Instant>,
}

/// One participant.
pub struct Viewer {
    /// Its name.
    pub name: String,
    manifest: Manifest,
    store: ChunkStore,
    follower: Follower,
    offset: OffsetEstimator,
    /// Its local clock: µs since `epoch`, plus an arbitrary skew from the host's.
    epoch: Instant,
    skew_us: Micros,
    held_state: Option<MediaState>,
    showing: bool,
    reported: (Option<u64>, bool),
    pings: u32,
    next_ping: Instant,
    next_stats: Instant,
    next_frame: Option<Instant>,
    last_report: Instant,
    stalled_since: Option<Instant>,
    /// The latest time it was woken at (its pacing deadline is relative to it).
    last_seen: Instant,
    out: VecDeque<Message>,
    /// What it went through.
    pub stats: ViewerStats,
    /// Notices and refusals the host sent it.
    pub notices: Vec<String>,
    /// The host ended the stream.
    pub ended: bool,
}

impl Viewer {
    /// A participant whose link came up at `now`, with a local clock `skew_us` off the host's.
    pub fn new(now: Instant, name: &str, manifest: Manifest, cfg: StoreConfig, skew_us: Micros) -> Viewer {
        Viewer {
            name: name.to_string(),
            store: ChunkStore::new(manifest.clone(), cfg),
            manifest,
            follower: Follower::new(FollowerConfig::default()),
            offset: OffsetEstimator::new(16),
            epoch: now,
            skew_us,
            held_state: None,
            showing: false,
            reported: (None, false),
            pings: 0,
            next_ping: now,
            next_stats: now + Duration::from_secs(1),
            next_frame: Some(now),
            last_report: now,
            stalled_since: None,
            last_seen: now,
            out: VecDeque::new(),
            stats: ViewerStats::default(),
            notices: vec![],
            ended: false,
        }
    }

    /// The next message to the host (on the control channel).
    pub fn poll_send(&mut self) -> Option<Message> {
        self.out.pop_front()
    }

    /// When it next wants to be woken.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.ended {
            return None;
        }
        let cadence = self.next_ping.min(self.next_stats);
        // The store's request timeouts are looked at with the stats, once a second (as the
        // participant engine does); its download pacing says when the next request may go.
        let paced = self.store.request_ready_at(self.last_seen);
        [Some(cadence), self.next_frame, paced].into_iter().flatten().min()
    }

    /// A control message from the host.
    pub fn handle_control(&mut self, now: Instant, msg: Message) {
        let local = self.local(now);
        match msg {
            Message::Pong { client_us, host_us } => {
                self.offset.handle_pong(client_us as Micros, host_us as Micros, local);
                if let (Some(state), Some(offset)) = (self.held_state, self.offset.offset()) {
                    self.held_state = None;
                    self.follower.handle_state(local, state, offset);
                }
            }
            Message::State { playing, position_us, at_host_us, rate_milli, seq, .. } => {
                let state = MediaState { playing, position_us: position_us as Micros, at_host_us: at_host_us as Micros, rate_milli, seq };
                match self.offset.offset() {
                    Some(offset) => self.follower.handle_state(local, state, offset),
                    None => self.held_state = Some(state),
                }
                while self.follower.poll_output().is_some() {}
                self.next_frame.get_or_insert(now);
            }
            Message::Notice { text } | Message::LevelRefused { reason: text, .. } => self.notices.push(text),
            Message::StreamEnd { .. } => self.ended = true,
            _ => {}
        }
        self.present(now);
    }

    /// A chunk arrived on the chunks channel.
    pub fn handle_chunk(&mut self, now: Instant, index: u32, data: Bytes) {
        self.stats.received += data.len() as u64;
        match self.store.handle_chunk(now, index, data) {
            Ok(crate::buffer::Arrival::Duplicate) => self.stats.duplicates += 1,
            Ok(_) => {}
            Err(e) => panic!("{}: the host sent a bad chunk: {e}", self.name),
        }
        self.present(now);
    }

    /// Time passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_seen = now;
        if now >= self.next_ping {
            self.pings += 1;
            // 8 quick pings, then one a second (as the participant engine).
            self.next_ping = now + if self.pings < 8 { Duration::from_millis(50) } else { Duration::from_secs(1) };
            self.out.push_back(Message::Ping { client_us: self.local(now).max(0) as u64 });
        }
        if now >= self.next_stats {
            self.next_stats = now + Duration::from_secs(1);
            self.store.handle_timeout(now);
            if now - self.last_report >= Duration::from_millis(900) {
                self.report(now);
            }
        }
        self.present(now);
    }

    /// The decoder model: show what the position needs, read ahead, report changes, request.
    fn present(&mut self, now: Instant) {
        let local = self.local(now);
        let Some(offset) = self.offset.offset() else {
            // Nothing to show before the clock is known; the pong wakes it.
            self.next_frame = None;
            return self.request(now);
        };
        self.follower.handle_timeout(local, offset);
        while self.follower.poll_output().is_some() {}
        let pos = self.follower.position(local);
        let reading = self.chunk_at(pos + READ_AHEAD_US);
        self.store.set_read_position(self.chunk_at(pos));
        self.store.want(reading);
        let ended = pos >= self.duration_us();
        let showing = self.follower.room().is_some() && (ended || self.store.has(self.chunk_at(pos)));
        self.follower.handle_stall(local, !showing && self.follower.playing(), offset);
        self.note_stall(now, showing);
        if showing {
            self.stats.first_picture.get_or_insert(now);
        }
        let room = (self.follower.room().map(|r| r.seq), self.follower.playing());
        if showing != self.showing || (showing && room != self.reported) {
            self.showing = showing;
            self.reported = room;
            self.report(now);
        }
        let moving = self.follower.playing() || !showing;
        self.next_frame = (moving && !ended).then_some(now + FRAME);
        self.request(now);
    }

    fn note_stall(&mut self, now: Instant, showing: bool) {
        let frozen = !showing && self.follower.playing();
        match (frozen, self.stalled_since) {
            (true, None) => {
                self.stalled_since = Some(now);
                if self.stats.first_picture.is_some() {
                    self.stats.stalls += 1;
                }
            }
            (false, Some(since)) => {
                if self.stats.first_picture.is_some() {
                    self.stats.stalled_for += now - since;
                }
                self.stalled_since = None;
            }
            _ => {}
        }
    }

    fn request(&mut self, now: Instant) {
        while let Some(r) = self.store.poll_request(now) {
            self.out.push_back(Message::Request { space: ORIGINAL, chunks: r.chunks, priority: r.priority });
        }
    }

    fn report(&mut self, now: Instant) {
        self.last_report = now;
        let local = self.local(now);
        let position_ms = (self.follower.position(local).max(0) / 1000) as u64;
        let drift_ms = self.offset.offset().and_then(|o| self.follower.drift(local, o)).map(|d| d / 1000);
        let rtt_ms = self.offset.last_rtt().map(|r| (r / 1000) as u32);
        let (buffering, seq) = (!self.showing, self.follower.room().map_or(0, |r| r.seq));
        let buffered_bytes = self.store.held_bytes();
        self.out.push_back(Message::Report { position_ms, buffered_bytes, down_bps: 0, buffering, rtt_ms, seq, drift_ms });
    }

    /// Its playback position at `now`, µs.
    pub fn position_us(&self, now: Instant) -> Micros {
        self.follower.position(self.local(now))
    }

    /// Local − room at `now`, once it knows the room.
    pub fn drift_us(&self, now: Instant) -> Option<Micros> {
        self.follower.drift(self.local(now), self.offset.offset()?)
    }

    /// The picture is frozen for want of data.
    pub fn buffering(&self) -> bool {
        !self.showing
    }

    /// The room plays, and so does this picture.
    pub fn playing(&self) -> bool {
        self.showing && self.follower.playing()
    }

    fn local(&self, now: Instant) -> Micros {
        now.saturating_duration_since(self.epoch).as_micros() as Micros + self.skew_us
    }

    fn duration_us(&self) -> Micros {
        self.manifest.duration_ms.unwrap_or(0) as Micros * 1000
    }

    /// The chunk holding media time `us` (the bit rate taken as constant).
    fn chunk_at(&self, us: Micros) -> u32 {
        let d = self.duration_us().max(1);
        let byte = (us.clamp(0, d) as u128 * self.manifest.size as u128 / d as u128) as u64;
        (byte / self.manifest.chunk_size as u64).min(self.manifest.chunks.saturating_sub(1) as u64) as u32
    }
}
