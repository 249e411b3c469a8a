//! The participant's quality levels: the original's chunk store and the rendition's, which
//! one the picture plays, the switch from one to the other, and the automatic choice.
//!
//! A switch to a rendition asks the host for the level from the room position (`Level`); the
//! host answers with the rendition's chunk space (`QualityChange`) and keeps telling how far it
//! has grown. A second decoder starts on the new space at the room position and the picture
//! moves over once it has the frame for it (`Playback::switch_source`), so a switch costs a
//! re-buffer only if the new level is slower to arrive than the old one plays out. The
//! original's store stays (what it holds is reused on the way back up); a replaced rendition's
//! store goes, and its requests are cancelled at the host.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::core::buffer::{ChunkStore, StoreConfig};
use crate::core::clock::Micros;
use crate::core::quality::{Level, LevelConfig, LevelController};
use crate::media::store_source::{ReaderCancel, SharedStore};
use crate::playback::Playback;
use crate::protocol::stream::{Manifest, Message, ORIGINAL, Space, StreamError};

/// How the level is picked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// By measured throughput and buffer.
    Auto,
    /// This level, whatever the link does.
    Fixed(String),
}

impl Choice {
    /// `auto` or a level name.
    pub fn parse(s: &str) -> Choice {
        if s == "auto" { Choice::Auto } else { Choice::Fixed(s.to_string()) }
    }
}

/// A rendition's chunk store.
struct RenditionStore {
    space: Space,
    level: String,
    shared: Arc<SharedStore>,
    first_us: Option<u64>,
    /// Its decoder's reader, once one reads it.
    reader: Option<ReaderCancel>,
}

/// What the picture reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Original,
    Rendition(Space),
}

/// The participant's levels.
pub struct Levels {
    offered: Vec<String>,
    choice: Choice,
    controller: LevelController,
    original: Arc<SharedStore>,
    original_reader: Option<ReaderCancel>,
    /// What the picture shows now, and what it is moving to.
    active: Source,
    incoming: Option<Source>,
    /// The newest rendition (active or incoming), and the one it replaces while it comes in.
    rendition: Option<RenditionStore>,
    retiring: Option<RenditionStore>,
    /// Every rendition space up to this one has been heard of: chunks of older ones are late
    /// arrivals, dropped.
    newest_space: Space,
    /// The level the choice (or the controller) wants, and whether the host was asked for it.
    wanted: String,
    asked: bool,
    original_bps: u64,
    download_limit: u64,
    store_cfg: StoreConfig,
    chunk_size: u32,
    /// Bytes received since the last throughput sample.
    received: u64,
    /// Wakes the engine when a reader wants a chunk.
    wake: Arc<dyn Fn() + Send + Sync>,
}

impl Levels {
    /// Levels for `manifest`; the picture starts on the original (`original`, read through
    /// `reader`). `download_limit` (bytes/s, 0: none) caps what the throughput estimate may
    /// claim: the limit is part of the link.
    pub fn new(manifest: &Manifest, choice: Choice, original: Arc<SharedStore>, reader: Option<ReaderCancel>, store_cfg: StoreConfig, wake: Arc<dyn Fn() + Send + Sync>) -> Levels {
        let original_bps = manifest.duration_ms.filter(|&d| d > 0).map_or(0, |d| manifest.size * 8 * 1000 / d);
        let mut ladder = vec![Level { name: "high".into(), bps: original_bps.max(1) }];
        for name in manifest.levels.iter().filter(|l| *l != "high") {
            if let Some(r) = crate::media::transcode::level(name) {
                ladder.push(Level { name: name.clone(), bps: r.bps() });
            }
        }
        let mut levels = Levels {
            offered: manifest.levels.clone(),
            choice: Choice::Auto,
            controller: LevelController::new(ladder, "high", LevelConfig::default()),
            original,
            original_reader: reader,
            active: Source::Original,
            incoming: None,
            rendition: None,
            retiring: None,
            newest_space: ORIGINAL,
            wanted: "high".into(),
            asked: true,
            original_bps,
            download_limit: store_cfg.download_limit,
            store_cfg,
            chunk_size: manifest.chunk_size,
            received: 0,
            wake,
        };
        let _ = levels.choose(choice);
        levels
    }

    /// Chooses by hand (or `auto`). Refuses a level the host does not offer.
    pub fn choose(&mut self, choice: Choice) -> Result<(), String> {
        match &choice {
            Choice::Fixed(l) if !self.offered.contains(l) => {
                return Err(format!("this room offers {}, not {l}", self.offered.join(", ")));
            }
            Choice::Fixed(l) => self.want(l.clone()),
            // Auto goes on from the level playing now.
            Choice::Auto => self.controller.set_current(&self.wanted.clone()),
        }
        self.choice = choice;
        Ok(())
    }

    fn want(&mut self, level: String) {
        if level != self.wanted {
            tracing::info!("quality: {} → {level}", self.wanted);
            self.wanted = level;
            self.asked = false;
            self.controller.set_current(&self.wanted.clone());
            // The original reads ahead only while it is the level wanted: leaving it, what
            // is buffered plays on while the rendition comes in, and the link is the
            // rendition's.
            let high = self.wanted == "high";
            self.original.lock().store.set_read_ahead(high);
        }
    }

    /// The level the picture plays.
    pub fn playing(&self) -> &str {
        match self.active {
            Source::Original => "high",
            Source::Rendition(s) => self.store(s).map_or("high", |r| r.level.as_str()),
        }
    }

    /// What the view shows: the level, and the one it is moving to.
    pub fn label(&self) -> String {
        let playing = self.playing();
        if playing == self.wanted { playing.to_string() } else { format!("{playing}→{}", self.wanted) }
    }

    /// The level being switched to, if it is not the one playing.
    pub fn next(&self) -> Option<String> {
        (self.playing() != self.wanted).then(|| self.wanted.clone())
    }

    /// Auto or a level.
    pub fn choice(&self) -> &Choice {
        &self.choice
    }

    /// `auto` or the level chosen.
    pub fn choice_name(&self) -> String {
        match &self.choice {
            Choice::Auto => "auto".into(),
            Choice::Fixed(l) => l.clone(),
        }
    }

    /// The download limit changed (bytes/s, 0: none).
    pub fn set_download_limit(&mut self, limit: u64) {
        self.download_limit = limit;
        self.store_cfg.download_limit = limit;
        let burst = (limit as f64 * 0.1).max(2.0 * self.chunk_size as f64);
        self.original.lock().store.budget().lock().unwrap_or_else(|e| e.into_inner()).set_rate(limit as f64, burst);
    }

    fn store(&self, space: Space) -> Option<&RenditionStore> {
        [&self.rendition, &self.retiring].into_iter().flatten().find(|r| r.space == space)
    }

    /// The store of a chunk space, `Ok(None)` for a late chunk of a rendition already
    /// replaced, an error for a space the host never announced.
    pub fn store_for(&self, space: Space) -> Result<Option<Arc<SharedStore>>, StreamError> {
        if space == ORIGINAL {
            return Ok(Some(self.original.clone()));
        }
        match self.store(space) {
            Some(r) => Ok(Some(r.shared.clone())),
            None if space <= self.newest_space => Ok(None),
            None => Err(StreamError::Invalid("chunk of a rendition the host never announced")),
        }
    }

    /// Stores whose requests go out now: what the picture moves to first (under a limit it
    /// gets the budget before the source being left, or a starved old picture would keep the
    /// new one from ever arriving), then what it reads.
    pub fn live_stores(&self) -> Vec<(Space, Arc<SharedStore>)> {
        let mut v = Vec::new();
        for s in [self.incoming, Some(self.active)].into_iter().flatten() {
            match s {
                Source::Original => v.push((ORIGINAL, self.original.clone())),
                Source::Rendition(sp) => {
                    if let Some(r) = self.store(sp) {
                        v.push((sp, r.shared.clone()));
                    }
                }
            }
        }
        v
    }

    /// Every store (to close them all on shutdown).
    pub fn all_stores(&self) -> Vec<Arc<SharedStore>> {
        let mut v = vec![self.original.clone()];
        v.extend([&self.rendition, &self.retiring].into_iter().flatten().map(|r| r.shared.clone()));
        v
    }

    /// Counts received chunk bytes (the throughput sample's numerator).
    pub fn handle_received(&mut self, bytes: usize) {
        self.received += bytes as u64;
    }

    /// The host's news about a rendition.
    pub fn handle_quality_change(&mut self, level: String, space: Space, first_us: Option<u64>, produced: u64, done: bool, playback: &mut Playback) {
        if space < self.newest_space && self.store(space).is_none() {
            return;
        }
        let available = if done { produced } else { produced / self.chunk_size as u64 * self.chunk_size as u64 };
        if let Some(r) = self.retiring.as_ref().filter(|r| r.space == space) {
            r.shared.grow(available, done);
            return;
        }
        if self.rendition.as_ref().is_none_or(|r| r.space != space) {
            if level != self.wanted {
                tracing::debug!("ignoring rendition {space} ({level}): {} is wanted now", self.wanted);
                return;
            }
            self.newest_space = self.newest_space.max(space);
            let manifest = Manifest {
                name: format!("{level}.mp4"),
                size: 0,
                chunk_size: self.chunk_size,
                chunks: 0,
                duration_ms: None,
                container: "mp4".into(),
                codecs: vec![],
                levels: vec![],
            };
            let store = ChunkStore::with_budget(manifest, self.store_cfg.clone(), self.original.lock().store.budget());
            let wake = self.wake.clone();
            let shared = SharedStore::new(store, move || wake());
            // A rendition coming in that never showed is simply replaced.
            if let Some(old) = self.rendition.take() {
                if self.incoming == Some(Source::Rendition(old.space)) {
                    self.incoming = None;
                    close(old);
                } else {
                    if old.level == level {
                        // Restarted at a seek: what it holds is not where the room is, and its
                        // decoder would read it forward to the new position. Stop it; the
                        // picture waits for the new one, as after any seek.
                        if let Some(c) = &old.reader {
                            c.cancel();
                        }
                        old.shared.lock().store.set_read_ahead(false);
                    }
                    if let Some(prev) = self.retiring.replace(old) {
                        close(prev);
                    }
                }
            }
            self.rendition = Some(RenditionStore { space, level, shared, first_us: None, reader: None });
        }
        let r = self.rendition.as_mut().expect("just set");
        r.shared.grow(available, done);
        r.first_us = r.first_us.or(first_us);
        if r.reader.is_none()
            && let Some(first) = r.first_us
        {
            let (reader, cancel) = r.shared.cancellable_reader();
            r.reader = Some(cancel);
            tracing::info!("quality: starting {} (rendition {}) from {} ms", r.level, r.space, first / 1000);
            playback.switch_source(Box::new(reader), Some(first as Micros));
            self.incoming = Some(Source::Rendition(r.space));
        }
    }

    /// Call after every playback tick: when the picture has moved to the incoming source,
    /// retires the old one and returns what to tell the host (`None`: no switch happened).
    pub fn after_tick(&mut self, playback: &mut Playback, now: Instant) -> Option<Vec<Message>> {
        if !playback.take_switched() {
            return None;
        }
        let Some(new) = self.incoming.take() else { return Some(vec![]) };
        let old = std::mem::replace(&mut self.active, new);
        tracing::info!("quality: now playing {}", self.playing());
        let mut cancels = Vec::new();
        match old {
            Source::Original => {
                if let Some(c) = self.original_reader.take() {
                    c.cancel();
                }
                let chunks = self.original.lock().store.take_in_flight(now);
                if !chunks.is_empty() {
                    cancels.push(Message::Cancel { space: ORIGINAL, chunks });
                }
            }
            Source::Rendition(space) => {
                let r = if self.retiring.as_ref().is_some_and(|r| r.space == space) {
                    self.retiring.take()
                } else if self.rendition.as_ref().is_some_and(|r| r.space == space) && new == Source::Original {
                    self.rendition.take()
                } else {
                    None
                };
                if let Some(r) = r {
                    let chunks = r.shared.lock().store.take_in_flight(now);
                    if !chunks.is_empty() {
                        cancels.push(Message::Cancel { space, chunks });
                    }
                    close(r);
                }
            }
        }
        if new == Source::Original && self.playing() == "high" && self.wanted == "high" {
            // Tell the host it may stop the rendition.
            cancels.push(Message::Level { level: "high".into(), from_us: 0 });
        }
        Some(cancels)
    }

    /// What to send the host so the picture gets to the wanted level; `room_us` is the room
    /// position (a rendition starts there). Switching back to the original needs no host.
    pub fn drive(&mut self, playback: &mut Playback, room_us: Option<Micros>) -> Option<Message> {
        if self.asked {
            return None;
        }
        if self.wanted == "high" {
            self.asked = true;
            if self.active == Source::Original {
                // A rendition on its way in is not needed any more.
                if let Some(Source::Rendition(_)) = self.incoming.take() {
                    playback.abandon_switch();
                    if let Some(r) = self.rendition.take() {
                        close(r);
                    }
                }
                return Some(Message::Level { level: "high".into(), from_us: 0 });
            }
            if self.incoming != Some(Source::Original) {
                let (reader, cancel) = self.original.cancellable_reader();
                self.original_reader = Some(cancel);
                playback.switch_source(Box::new(reader), None);
                self.incoming = Some(Source::Original);
            }
            return None;
        }
        let from = room_us?;
        self.asked = true;
        Some(Message::Level { level: self.wanted.clone(), from_us: from.max(0) as u64 })
    }

    /// The room sought: a rendition must cover the new position (the host keeps it or
    /// starts another there).
    pub fn handle_seek(&mut self, to_us: Micros) -> Option<Message> {
        (self.wanted != "high").then(|| Message::Level { level: self.wanted.clone(), from_us: to_us.max(0) as u64 })
    }

    /// Once a second: feeds the automatic choice a throughput sample (bytes over the time
    /// requests were out, capped by the download limit) and the playback time buffered.
    pub fn sample(&mut self, now: Instant, stalled: bool) {
        let received = std::mem::take(&mut self.received);
        let mut busy = Duration::ZERO;
        for s in self.all_stores() {
            busy += s.lock().store.take_busy(now);
        }
        let ahead_bits: u64 = self.live_stores().iter().map(|(_, s)| s.lock().store.contiguous_ahead() * 8).sum();
        tracing::trace!("quality: {received} bytes, {busy:?} busy, {ahead_bits} bits ahead, {:?}", self.choice);
        if self.choice != Choice::Auto {
            return;
        }
        let bps = self.controller.current().map_or(self.original_bps, |l| l.bps).max(1);
        let buffered = if stalled { Duration::ZERO } else { Duration::from_secs_f64(ahead_bits as f64 / bps as f64) };
        // Less than a chunk in the second says nothing about the link (the buffer is full, or
        // the host has nothing yet). A little does: bytes over the time they took.
        if received < self.chunk_size as u64 || busy.is_zero() {
            return;
        }
        let mut throughput = received as f64 * 8.0 / busy.as_secs_f64();
        if self.download_limit > 0 {
            throughput = throughput.min(self.download_limit as f64 * 8.0);
        }
        tracing::debug!("quality sample: {:.2} Mb/s over {busy:?} busy, {buffered:?} buffered", throughput / 1e6);
        self.controller.handle_sample(now, throughput, buffered);
        if let Some(l) = self.controller.poll_switch().map(|l| l.name.clone()) {
            self.want(l);
        }
    }
}

fn close(r: RenditionStore) {
    if let Some(c) = &r.reader {
        c.cancel();
    }
    r.shared.close();
}
