//! The participant's quality levels at the edge: the chunk stores (the original's and the
//! renditions'), their decoders' readers, and the playback's second decoder — driven by the
//! sans-IO [`LevelSwitch`], which decides everything (what to ask the host, what its answers
//! mean, which space the picture reads). This file only carries out its [`SwitchAction`]s.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use crate::core::buffer::{ChunkStore, StoreConfig};
use crate::core::clock::Micros;
use crate::core::level_switch::{LevelSwitch, RenditionNews, SwitchAction};
use crate::core::quality::Level;
use crate::media::store_source::{ReaderCancel, SharedStore};
use crate::player::playback::Playback;
use crate::protocol::stream::{Manifest, Message, ORIGINAL, Space, StreamError};

pub use crate::core::level_switch::Choice;

/// A rendition's chunk store and its decoder's reader.
struct RenditionStore {
    shared: Arc<SharedStore>,
    reader: Option<ReaderCancel>,
}

/// The participant's levels.
pub struct Levels {
    switch: LevelSwitch,
    original: Arc<SharedStore>,
    original_reader: Option<ReaderCancel>,
    /// At most two: the one the picture shows and the one on its way.
    renditions: BTreeMap<Space, RenditionStore>,
    store_cfg: StoreConfig,
    chunk_size: u32,
    /// Messages decided where they could not be sent, sent with the next ones.
    outbox: Vec<Message>,
    /// Wakes the engine when a reader wants a chunk.
    wake: Arc<dyn Fn() + Send + Sync>,
}

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
        let ladder =
            manifest.levels.iter().filter_map(|name| crate::media::transcode::level(name).map(|r| Level { name: name.clone(), bps: r.bps() })).collect();
        Levels {
            switch: LevelSwitch::new(manifest, ladder, store_cfg.download_limit),
            original,
            original_reader: reader,
            renditions: BTreeMap::new(),
            chunk_size: manifest.chunk_size,
            store_cfg,
            outbox: Vec::new(),
            wake,
        }
    }

    /// Chooses by hand (or `auto`). Refuses a level the host does not offer.
    pub fn choose(&mut self, choice: Choice) -> Result<(), String> {
        let r = self.switch.choose(choice);
        self.hold(Instant::now());
        r
    }

    /// The level the picture plays.
    pub fn playing(&self) -> &str {
        self.switch.playing()
    }

    /// The level being switched to, if it is not the one playing.
    pub fn next(&self) -> Option<String> {
        self.switch.next()
    }

    /// `auto` or the level chosen.
    pub fn choice_name(&self) -> String {
        self.switch.choice_name()
    }

    /// The download limit changed (bytes/s, 0: none).
    pub fn set_download_limit(&mut self, limit: u64) {
        self.store_cfg.download_limit = limit;
        self.switch.set_download_limit(limit);
        // The budget is shared; each store also sizes its request batches by the limit.
        for s in self.all_stores() {
            s.lock().store.set_download_limit(limit);
        }
    }

    /// The store of a chunk space, `Ok(None)` for a late chunk of a rendition already
    /// replaced, an error for a space the host never announced.
    pub fn store_for(&self, space: Space) -> Result<Option<Arc<SharedStore>>, StreamError> {
        Ok(self.switch.route(space)?.then(|| self.store(space)).flatten())
    }

    fn store(&self, space: Space) -> Option<Arc<SharedStore>> {
        if space == ORIGINAL { Some(self.original.clone()) } else { self.renditions.get(&space).map(|r| r.shared.clone()) }
    }

    /// Stores whose requests go out now, in the order the switch gives.
    pub fn live_stores(&self) -> Vec<(Space, Arc<SharedStore>)> {
        self.switch.live_spaces().into_iter().filter_map(|s| Some((s, self.store(s)?))).collect()
    }

    /// Every store (to close them all on shutdown).
    pub fn all_stores(&self) -> Vec<Arc<SharedStore>> {
        self.switch.spaces().into_iter().filter_map(|s| self.store(s)).collect()
    }

    /// Counts received chunk bytes (the throughput sample's numerator).
    pub fn handle_received(&mut self, bytes: usize) {
        self.switch.handle_received(bytes);
    }

    /// The host's news about a rendition (`granted`: the answer to our latest `Level`): what
    /// to send the host because of it.
    pub fn handle_quality_change(&mut self, news: RenditionNews, playback: &mut Playback) -> Result<Vec<Message>, StreamError> {
        self.switch.handle_quality_change(news)?;
        Ok(self.apply(Some(playback), Instant::now()))
    }

    /// The host cannot give us `level`: we stay where it last put us.
    pub fn handle_refused(&mut self, level: &str, now: Instant) {
        self.switch.handle_refused(level, now);
        self.hold(now);
    }

    /// Call after every playback tick: when the picture has moved to the incoming source,
    /// retires the old one and returns what to tell the host (`None`: no switch happened).
    pub fn after_tick(&mut self, playback: &mut Playback, now: Instant) -> Option<Vec<Message>> {
        if !playback.take_switched() {
            return None;
        }
        self.switch.handle_switched();
        Some(self.apply(Some(playback), now))
    }

    /// What to send the host so the picture gets to the wanted level; `room_us` is the room
    /// position (a rendition starts there).
    pub fn drive(&mut self, playback: &mut Playback, room_us: Option<Micros>, now: Instant) -> Vec<Message> {
        self.switch.handle_timeout(now, room_us);
        self.apply(Some(playback), now)
    }

    /// The link was made anew: ask again for the level wanted.
    pub fn reconnected(&mut self) {
        self.switch.reconnected();
    }

    /// The room sought: a rendition must cover the new position.
    pub fn handle_seek(&mut self, to_us: Micros, now: Instant) -> Vec<Message> {
        self.switch.handle_seek(to_us, now);
        self.apply(None, now)
    }

    /// Once a second: feeds the automatic choice what the stores saw.
    pub fn sample(&mut self, now: Instant, stalled: bool) {
        let mut busy = std::time::Duration::ZERO;
        for s in self.all_stores() {
            busy += s.lock().store.take_busy(now);
        }
        let ahead_bits: u64 = self.live_stores().iter().map(|(_, s)| s.lock().store.contiguous_ahead() * 8).sum();
        self.switch.sample(now, stalled, busy, ahead_bits);
        self.hold(now);
    }

    /// Carries out what the switch decided; returns the messages for the host. Decoder
    /// actions need `playback` (the switch asks for them only where it has one).
    fn apply(&mut self, mut playback: Option<&mut Playback>, now: Instant) -> Vec<Message> {
        let mut out = std::mem::take(&mut self.outbox);
        while let Some(action) = self.switch.poll_action() {
            match action {
                SwitchAction::Send(m) => out.push(m),
                SwitchAction::NewStore { space, level } => self.new_store(space, &level),
                SwitchAction::Grow { space, available, done } => {
                    if let Some(r) = self.renditions.get(&space) {
                        r.shared.grow(available, done);
                    }
                }
                SwitchAction::StartIncoming { space, shift } => match playback.as_deref_mut() {
                    Some(p) => self.start_incoming(p, space, shift),
                    None => tracing::error!("quality: a decoder to start without playback"),
                },
                SwitchAction::AbandonIncoming => {
                    if let Some(p) = playback.as_deref_mut() {
                        p.abandon_switch();
                    }
                }
                SwitchAction::StopReader { space } => self.stop_reader(space),
                SwitchAction::CloseStore { space } => {
                    if let Some(r) = self.renditions.remove(&space) {
                        if let Some(c) = &r.reader {
                            c.cancel();
                        }
                        r.shared.close();
                    }
                }
                SwitchAction::ReadAhead { space, on } => {
                    if let Some(s) = self.store(space) {
                        s.lock().store.set_read_ahead(on);
                    }
                }
                SwitchAction::CancelInFlight { space } => {
                    let chunks = self.store(space).map(|s| s.lock().store.take_in_flight(now)).unwrap_or_default();
                    if !chunks.is_empty() {
                        out.push(Message::Cancel { space, chunks });
                    }
                }
            }
        }
        out
    }

    /// Carries out what the switch decided where nothing can be sent: the messages go with
    /// the next ones.
    fn hold(&mut self, now: Instant) {
        let out = self.apply(None, now);
        self.outbox.extend(out);
    }

    fn new_store(&mut self, space: Space, level: &str) {
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
        // A quarter of the memory bound each: with the original's store, whose chunks stay for
        // the way back up, the participant holds at most 1.5 times its --buffer.
        let cfg = StoreConfig { capacity: (self.store_cfg.capacity / 4).max(4 * self.chunk_size as u64), fill_behind: false, ..self.store_cfg.clone() };
        let store = ChunkStore::with_budget(manifest, cfg, self.original.lock().store.budget());
        let wake = self.wake.clone();
        self.renditions.insert(space, RenditionStore { shared: SharedStore::new(store, move || wake()), reader: None });
    }

    fn start_incoming(&mut self, playback: &mut Playback, space: Space, shift: Option<Micros>) {
        let Some(shared) = self.store(space) else { return };
        let (reader, cancel) = shared.cancellable_reader();
        if space == ORIGINAL {
            self.original_reader = Some(cancel);
        } else if let Some(r) = self.renditions.get_mut(&space) {
            r.reader = Some(cancel);
        }
        playback.switch_source(Box::new(reader), shift);
    }

    fn stop_reader(&mut self, space: Space) {
        if space == ORIGINAL {
            if let Some(c) = self.original_reader.take() {
                c.cancel();
            }
        } else if let Some(c) = self.renditions.get(&space).and_then(|r| r.reader.as_ref()) {
            c.cancel();
        }
    }
}
