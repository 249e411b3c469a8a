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
use crate::core::quality::{Level, LevelConfig, LevelController, link_throughput};
use crate::media::store_source::{ReaderCancel, SharedStore};
use crate::player::playback::Playback;
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
    /// The rendition the picture shows (when `active` is one).
    current: Option<RenditionStore>,
    /// The rendition on its way: announced by the host, coming in once its start is known.
    next: Option<RenditionStore>,
    /// Every rendition space up to this one has been heard of: chunks of older ones are late
    /// arrivals, dropped.
    newest_space: Space,
    /// The level the choice (or the controller) wants, and whether the host was asked for it.
    wanted: String,
    asked: bool,
    /// After the host refused a level, the automatic choice leaves it alone until then.
    refused_until: Option<Instant>,
    /// After a refusal, the next request waits until then.
    ask_after: Option<Instant>,
    /// A `Level` sent and not yet answered (granted or refused), since then: one at a time,
    /// so every answer belongs to the latest request and both sides agree where we are.
    awaiting: Option<Instant>,
    /// The room sought while a request was out: ask again from the new position.
    pending_seek: bool,
    original_bps: u64,
    store_cfg: StoreConfig,
    chunk_size: u32,
    /// A rendition is never larger than this (a host claiming more is misbehaving).
    max_rendition: u64,
    /// Bytes received since the last throughput sample.
    received: u64,
    /// Wakes the engine when a reader wants a chunk.
    wake: Arc<dyn Fn() + Send + Sync>,
}

/// How long the automatic choice leaves a refused level alone.
const REFUSED_FOR: Duration = Duration::from_secs(15);
/// How long after a refusal the level playing is asked for again.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// An answer to a `Level` not come by then is not coming (an older host).
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

impl Levels {
    /// Levels for `manifest`; the picture starts on the original (`original`, read through
    /// `reader`). `store_cfg.download_limit` (bytes/s, 0: none) caps what the throughput
    /// estimate may claim: the limit is part of the link.
    pub fn new(
        manifest: &Manifest,
        original: Arc<SharedStore>,
        reader: Option<ReaderCancel>,
        store_cfg: StoreConfig,
        wake: Arc<dyn Fn() + Send + Sync>,
    ) -> Levels {
        let original_bps = manifest.duration_ms.filter(|&d| d > 0).map_or(0, |d| manifest.size.saturating_mul(8000) / d);
        let mut ladder = vec![Level { name: "high".into(), bps: original_bps.max(1) }];
        for name in manifest.levels.iter().filter(|l| *l != "high") {
            if let Some(r) = crate::media::transcode::level(name) {
                ladder.push(Level { name: name.clone(), bps: r.bps() });
            }
        }
        Levels {
            offered: manifest.levels.clone(),
            choice: Choice::Auto,
            controller: LevelController::new(ladder, "high", LevelConfig::default()),
            original,
            original_reader: reader,
            active: Source::Original,
            incoming: None,
            current: None,
            next: None,
            newest_space: ORIGINAL,
            wanted: "high".into(),
            asked: true,
            refused_until: None,
            ask_after: None,
            awaiting: None,
            pending_seek: false,
            original_bps,
            store_cfg,
            chunk_size: manifest.chunk_size,
            // Levels are offered only well under the original's bit rate; the slack covers
            // container overhead on short files.
            max_rendition: manifest.size.saturating_add(64 << 20),
            received: 0,
            wake,
        }
    }

    /// Chooses by hand (or `auto`). Refuses a level the host does not offer.
    pub fn choose(&mut self, choice: Choice) -> Result<(), String> {
        match &choice {
            Choice::Fixed(l) if !self.offered.contains(l) => {
                return Err(format!("this room offers {}, not {l}", self.offered.join(", ")));
            }
            Choice::Fixed(l) => self.want(l.clone()),
            // Auto goes on from the level asked for last (playing, or on its way).
            Choice::Auto => {
                let wanted = self.wanted.clone();
                self.controller.set_current(&wanted);
                self.refused_until = None;
            }
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
            if self.wanted == "high" {
                self.original.lock().store.set_read_ahead(true);
            }
        }
    }

    /// The level the picture plays.
    pub fn playing(&self) -> &str {
        match (self.active, &self.current) {
            (Source::Rendition(s), Some(r)) if r.space == s => r.level.as_str(),
            _ => "high",
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

    /// `auto` or the level chosen.
    pub fn choice_name(&self) -> String {
        match &self.choice {
            Choice::Auto => "auto".into(),
            Choice::Fixed(l) => l.clone(),
        }
    }

    /// The download limit changed (bytes/s, 0: none).
    pub fn set_download_limit(&mut self, limit: u64) {
        self.store_cfg.download_limit = limit;
        // The budget is shared; each store also sizes its request batches by the limit.
        for s in self.all_stores() {
            s.lock().store.set_download_limit(limit);
        }
    }

    fn store(&self, space: Space) -> Option<&RenditionStore> {
        [&self.current, &self.next].into_iter().flatten().find(|r| r.space == space)
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
        v.extend([&self.current, &self.next].into_iter().flatten().map(|r| r.shared.clone()));
        v
    }

    /// Counts received chunk bytes (the throughput sample's numerator).
    pub fn handle_received(&mut self, bytes: usize) {
        self.received += bytes as u64;
    }

    /// Gives up the rendition on its way, if any (the picture stays where it is).
    fn drop_next(&mut self, playback: &mut Playback) {
        if let Some(r) = self.next.take() {
            if self.incoming == Some(Source::Rendition(r.space)) {
                playback.abandon_switch();
                self.incoming = None;
            }
            close(r);
        }
    }

    /// The host's news about a rendition (`granted`: the answer to our latest `Level`). A
    /// size beyond any rendition of this file is a protocol violation.
    // The message's fields, one by one; the redesign (issue 16) folds this into the core.
    #[allow(clippy::too_many_arguments)]
    pub fn handle_quality_change(
        &mut self,
        level: String,
        space: Space,
        first_us: Option<u64>,
        produced: u64,
        done: bool,
        granted: bool,
        playback: &mut Playback,
    ) -> Result<(), StreamError> {
        if produced > self.max_rendition {
            return Err(StreamError::Invalid("rendition larger than the file it is made from"));
        }
        if granted {
            self.awaiting = None;
        }
        let available = if done { produced } else { produced / self.chunk_size as u64 * self.chunk_size as u64 };
        if let Some(r) = self.current.as_ref().filter(|r| r.space == space) {
            r.shared.grow(available, done);
            return Ok(());
        }
        if self.next.as_ref().is_none_or(|r| r.space != space) {
            if !granted || space <= self.newest_space {
                tracing::debug!("ignoring rendition {space} ({level}): not ours");
                return Ok(());
            }
            // Where the host has put us, even if we have changed our mind since (the next
            // request moves us on): the two sides never disagree about it.
            self.newest_space = space;
            self.drop_next(playback);
            if let Some(cur) = self.current.as_ref().filter(|c| c.level == level) {
                // Restarted at a seek: what the one on screen holds is not where the room is,
                // and its decoder would read it forward to the new position. Stop it; the
                // picture waits for the new one, as after any seek.
                if let Some(c) = &cur.reader {
                    c.cancel();
                }
                cur.shared.lock().store.set_read_ahead(false);
            }
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
            // A quarter of the memory bound each: with the original's store, whose chunks stay
            // for the way back up, the participant holds at most 1.5 times its --buffer.
            let cfg = StoreConfig { capacity: (self.store_cfg.capacity / 4).max(4 * self.chunk_size as u64), fill_behind: false, ..self.store_cfg.clone() };
            let store = ChunkStore::with_budget(manifest, cfg, self.original.lock().store.budget());
            let wake = self.wake.clone();
            let shared = SharedStore::new(store, move || wake());
            self.next = Some(RenditionStore { space, level, shared, first_us: None, reader: None });
        }
        let r = self.next.as_mut().expect("just set");
        r.shared.grow(available, done);
        r.first_us = r.first_us.or(first_us);
        if r.reader.is_none()
            && let Some(first) = r.first_us
        {
            let (reader, cancel) = r.shared.cancellable_reader();
            r.reader = Some(cancel);
            tracing::info!("quality: starting {} (rendition {}) from {} ms", r.level, r.space, first / 1000);
            playback.switch_source(Box::new(reader), Some(first.min(i64::MAX as u64) as Micros));
            self.incoming = Some(Source::Rendition(r.space));
            // What is buffered of the original plays on while the rendition comes in; the
            // link is the rendition's.
            self.original.lock().store.set_read_ahead(false);
        }
        Ok(())
    }

    /// The host cannot give us `level`: we stay where it last put us (the rendition on its
    /// way, or what plays).
    pub fn handle_refused(&mut self, level: &str, now: Instant) {
        self.awaiting = None;
        let stays = self.next.as_ref().map_or_else(|| self.playing().to_string(), |r| r.level.clone());
        tracing::info!("quality: {level} refused; staying on {stays}");
        if self.wanted == level {
            self.wanted = stays.clone();
            self.controller.set_current(&stays);
            if stays == "high" {
                self.original.lock().store.set_read_ahead(true);
            }
        }
        self.asked = false;
        self.refused_until = Some(now + REFUSED_FOR);
        self.ask_after = Some(now + RETRY_AFTER);
    }

    /// Call after every playback tick: when the picture has moved to the incoming source,
    /// retires the old one and returns what to tell the host (`None`: no switch happened).
    pub fn after_tick(&mut self, playback: &mut Playback, now: Instant) -> Option<Vec<Message>> {
        if !playback.take_switched() {
            return None;
        }
        let Some(new) = self.incoming.take() else { return Some(vec![]) };
        let old = std::mem::replace(&mut self.active, new);
        let mut out = Vec::new();
        // The one left: its reader stops, its requests are cancelled at the host.
        match old {
            Source::Original => {
                if let Some(c) = self.original_reader.take() {
                    c.cancel();
                }
                let chunks = self.original.lock().store.take_in_flight(now);
                if !chunks.is_empty() {
                    out.push(Message::Cancel { space: ORIGINAL, chunks });
                }
            }
            Source::Rendition(space) => {
                if let Some(r) = self.current.take_if(|r| r.space == space) {
                    let chunks = r.shared.lock().store.take_in_flight(now);
                    if !chunks.is_empty() {
                        out.push(Message::Cancel { space, chunks });
                    }
                    close(r);
                }
            }
        }
        match new {
            Source::Rendition(space) => {
                if let Some(r) = self.next.take_if(|r| r.space == space) {
                    self.current = Some(r);
                }
            }
            // Back on the original: the host may stop the rendition.
            Source::Original => out.push(Message::Level { level: "high".into(), from_us: 0 }),
        }
        tracing::info!("quality: now playing {}", self.playing());
        Some(out)
    }

    /// What to send the host so the picture gets to the wanted level; `room_us` is the room
    /// position (a rendition starts there). Switching back to the original needs no host.
    pub fn drive(&mut self, playback: &mut Playback, room_us: Option<Micros>, now: Instant) -> Option<Message> {
        if self.asked || self.ask_after.is_some_and(|t| now < t) || self.awaiting.is_some_and(|t| now < t + ANSWER_WITHIN) {
            return None;
        }
        if self.wanted == "high" {
            self.asked = true;
            // A rendition on its way is not needed any more.
            self.drop_next(playback);
            if self.active == Source::Original {
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
        // Already where we want to be (a refusal re-asks what plays; a kept rendition needs no
        // new request unless the room moved, which `handle_seek` covers).
        let on_it = self.next.as_ref().or(self.current.as_ref()).is_some_and(|r| r.level == self.wanted);
        self.asked = true;
        if on_it && !std::mem::take(&mut self.pending_seek) {
            return None;
        }
        self.pending_seek = false;
        self.awaiting = Some(now);
        Some(Message::Level { level: self.wanted.clone(), from_us: from.max(0) as u64 })
    }

    /// The link was made anew: the host knows nothing of the level this participant is on
    /// (its renditions for the old connection are gone), so ask again for the level wanted,
    /// from the room's position. The picture plays on from what is held until the answer.
    pub fn reconnected(&mut self) {
        self.awaiting = None;
        self.ask_after = None;
        self.refused_until = None;
        self.asked = false;
        self.pending_seek = true;
    }

    /// The room sought: a rendition must cover the new position (the host keeps it or
    /// starts another there). Waits for the answer to a request still out; `drive` then asks
    /// from the room's new position.
    pub fn handle_seek(&mut self, to_us: Micros, now: Instant) -> Option<Message> {
        if self.wanted == "high" {
            return None;
        }
        if self.awaiting.is_some_and(|t| now < t + ANSWER_WITHIN) {
            // The answer will be for the old position: ask again once it is here.
            self.asked = false;
            self.pending_seek = true;
            return None;
        }
        self.awaiting = Some(now);
        Some(Message::Level { level: self.wanted.clone(), from_us: to_us.max(0) as u64 })
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
        // Less than a chunk in the second says nothing about the link; a little does.
        let Some(throughput) = link_throughput(received, busy, self.store_cfg.download_limit, self.chunk_size as u64) else { return };
        tracing::debug!("quality sample: {:.2} Mb/s over {busy:?} busy, {buffered:?} buffered", throughput / 1e6);
        self.controller.handle_sample(now, throughput, buffered);
        if let Some(l) = self.controller.poll_switch().map(|l| l.name.clone()) {
            if self.refused_until.is_some_and(|t| now < t) {
                // The host just said no; do not ask again at once.
                let wanted = self.wanted.clone();
                self.controller.set_current(&wanted);
                return;
            }
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
