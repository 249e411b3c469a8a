//! The participant's level switching (sans-IO): which level it wants (by hand or by the
//! automatic choice), what it asks the host for, what the host's answers mean, and which chunk
//! space the picture reads. Its driver owns the stores and the decoders and carries out the
//! [`SwitchAction`]s; this machine only decides.
//!
//! The protocol: a switch to a rendition asks the host for the level from the room position
//! (`Level`); the host answers with the rendition's chunk space (`QualityChange`, `granted`) and
//! keeps telling how far it has grown. One request is out at a time, so every answer belongs to
//! the latest request and both sides agree where the participant is. A second decoder starts
//! on the new space at the room position and the picture moves over once it has the frame for
//! it (`handle_switched`). The original's store stays (what it holds is reused on the way back
//! up); a replaced rendition's store goes, and its requests are cancelled at the host.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::clock::Micros;
use crate::protocol::stream::{Manifest, Message, ORIGINAL, Space, StreamError};
use crate::quality::{Level, LevelConfig, LevelController, link_throughput};

/// How long the automatic choice leaves a refused level alone.
pub const REFUSED_FOR: Duration = Duration::from_secs(15);
/// How long after a refusal the level playing is asked for again.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);
/// An answer to a `Level` not come by then is not coming (an older host).
pub const ANSWER_WITHIN: Duration = Duration::from_secs(5);

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

/// What the driver must do.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub enum SwitchAction {
    /// Send this to the host.
    Send(Message),
    /// Make a store for the rendition the host put us on.
    NewStore {
        /// Its chunk space.
        space: Space,
        /// Its level.
        level: String,
    },
    /// A rendition's store may hold this many bytes now (`done`: and no more will come).
    Grow {
        /// Which.
        space: Space,
        /// Bytes that may be fetched.
        available: u64,
        /// Final.
        done: bool,
    },
    /// Start decoding `space` beside the picture (`shift`: the room position of its time zero;
    /// `None` for the original); the picture moves over when it has the frame for the position.
    StartIncoming {
        /// Which space.
        space: Space,
        /// Where its time zero is in the room.
        shift: Option<Micros>,
    },
    /// Give up the decoder started by the last `StartIncoming` (the picture stays).
    AbandonIncoming,
    /// Stop the decoder reading `space` (its store stays).
    StopReader {
        /// Which.
        space: Space,
    },
    /// Close `space`'s store and stop its reader.
    CloseStore {
        /// Which.
        space: Space,
    },
    /// Fetch ahead in `space` or not.
    ReadAhead {
        /// Which.
        space: Space,
        /// On or off.
        on: bool,
    },
    /// Take back the requests out for `space` and tell the host (`Cancel`) if there are any.
    CancelInFlight {
        /// Which.
        space: Space,
    },
}

/// The host's news about a rendition (its `QualityChange` message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenditionNews {
    /// The level.
    pub level: String,
    /// Its chunk space.
    pub space: Space,
    /// Room position of its time zero, once known.
    pub first_us: Option<u64>,
    /// Bytes made so far.
    pub produced: u64,
    /// Finished.
    pub done: bool,
    /// The answer to our latest `Level`.
    pub granted: bool,
}

/// What the picture reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Original,
    Rendition(Space),
}

/// A rendition the host put us on.
#[derive(Debug, Clone)]
struct Rendition {
    space: Space,
    level: String,
    first_us: Option<u64>,
    /// A decoder reads it.
    reading: bool,
}

/// The participant's levels.
pub struct LevelSwitch {
    offered: Vec<String>,
    choice: Choice,
    controller: LevelController,
    /// What the picture shows now, and what it is moving to.
    active: Source,
    incoming: Option<Source>,
    /// The rendition the picture shows (when `active` is one), and the one on its way.
    current: Option<Rendition>,
    next: Option<Rendition>,
    /// Every rendition space up to this one has been heard of: chunks of older ones are late
    /// arrivals, dropped.
    newest_space: Space,
    /// The level wanted, and whether the host was asked for it.
    wanted: String,
    asked: bool,
    /// After the host refused a level, the automatic choice leaves it alone until then.
    refused_until: Option<Instant>,
    /// After a refusal, the next request waits until then.
    ask_after: Option<Instant>,
    /// A `Level` sent and not yet answered, since then.
    awaiting: Option<Instant>,
    /// The room sought while a request was out: ask again from the new position.
    pending_seek: bool,
    original_bps: u64,
    chunk_size: u32,
    download_limit: u64,
    /// A rendition is never larger than this (a host claiming more is misbehaving).
    max_rendition: u64,
    /// Bytes received since the last sample.
    received: u64,
    out: VecDeque<SwitchAction>,
}

impl LevelSwitch {
    /// Levels for `manifest`, the renditions' bit rates in `ladder` (the original's is the
    /// file's own); the picture starts on the original. `download_limit` (bytes/s, 0: none) caps
    /// what the throughput estimate may claim: the limit is part of the link.
    pub fn new(manifest: &Manifest, ladder: Vec<Level>, download_limit: u64) -> LevelSwitch {
        let original_bps = manifest.duration_ms.filter(|&d| d > 0).map_or(0, |d| manifest.size.saturating_mul(8000) / d);
        let mut levels = vec![Level { name: "high".into(), bps: original_bps.max(1) }];
        levels.extend(ladder.into_iter().filter(|l| l.name != "high" && manifest.levels.contains(&l.name)));
        LevelSwitch {
            offered: manifest.levels.clone(),
            choice: Choice::Auto,
            controller: LevelController::new(levels, "high", LevelConfig::default()),
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
            chunk_size: manifest.chunk_size,
            download_limit,
            // Levels are offered only well under the original's bit rate; the slack covers
            // container overhead on short files.
            max_rendition: manifest.size.saturating_add(64 << 20),
            received: 0,
            out: VecDeque::new(),
        }
    }

    /// The next thing to do.
    pub fn poll_action(&mut self) -> Option<SwitchAction> {
        self.out.pop_front()
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
                self.controller.set_current(&self.wanted);
                self.refused_until = None;
            }
        }
        self.choice = choice;
        Ok(())
    }

    fn want(&mut self, level: String) {
        if level == self.wanted {
            return;
        }
        tracing::info!("quality: {} → {level}", self.wanted);
        self.wanted = level;
        self.asked = false;
        self.controller.set_current(&self.wanted);
        if self.wanted == "high" {
            self.out.push_back(SwitchAction::ReadAhead { space: ORIGINAL, on: true });
        }
    }

    /// The level the picture plays.
    pub fn playing(&self) -> &str {
        match (self.active, &self.current) {
            (Source::Rendition(s), Some(r)) if r.space == s => r.level.as_str(),
            _ => "high",
        }
    }

    /// The level wanted (playing, or on its way).
    pub fn wanted(&self) -> &str {
        &self.wanted
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
        self.download_limit = limit;
    }

    /// Where a chunk of `space` goes: `Ok(true)` into its store, `Ok(false)` nowhere (a late
    /// chunk of a rendition already replaced), an error for a space the host never announced.
    pub fn route(&self, space: Space) -> Result<bool, StreamError> {
        if space == ORIGINAL || self.rendition(space).is_some() {
            return Ok(true);
        }
        if space <= self.newest_space {
            return Ok(false);
        }
        Err(StreamError::Invalid("chunk of a rendition the host never announced"))
    }

    /// Spaces whose requests go out now: what the picture moves to first (under a limit it
    /// gets the budget before the source being left, or a starved old picture would keep the
    /// new one from ever arriving), then what it reads.
    pub fn live_spaces(&self) -> Vec<Space> {
        let mut v = Vec::new();
        for s in [self.incoming, Some(self.active)].into_iter().flatten() {
            match s {
                Source::Original => v.push(ORIGINAL),
                Source::Rendition(sp) if self.rendition(sp).is_some() => v.push(sp),
                Source::Rendition(_) => {}
            }
        }
        v
    }

    /// Every space with a store.
    pub fn spaces(&self) -> Vec<Space> {
        let mut v = vec![ORIGINAL];
        v.extend([&self.current, &self.next].into_iter().flatten().map(|r| r.space));
        v
    }

    fn rendition(&self, space: Space) -> Option<&Rendition> {
        [&self.current, &self.next].into_iter().flatten().find(|r| r.space == space)
    }

    /// Counts received chunk bytes (the throughput sample's numerator).
    pub fn handle_received(&mut self, bytes: usize) {
        self.received += bytes as u64;
    }

    /// Gives up the rendition on its way, if any (the picture stays where it is).
    fn drop_next(&mut self) {
        if let Some(r) = self.next.take() {
            if self.incoming == Some(Source::Rendition(r.space)) {
                self.out.push_back(SwitchAction::AbandonIncoming);
                self.incoming = None;
            }
            self.out.push_back(SwitchAction::CloseStore { space: r.space });
        }
    }

    /// The host's news about a rendition (`granted`: the answer to our latest `Level`). A
    /// size beyond any rendition of this file is a protocol violation.
    pub fn handle_quality_change(&mut self, news: RenditionNews) -> Result<(), StreamError> {
        let RenditionNews { level, space, first_us, produced, done, granted } = news;
        if produced > self.max_rendition {
            return Err(StreamError::Invalid("rendition larger than the file it is made from"));
        }
        if granted {
            self.awaiting = None;
        }
        let available = if done { produced } else { produced / self.chunk_size as u64 * self.chunk_size as u64 };
        if self.current.as_ref().is_some_and(|r| r.space == space) {
            self.out.push_back(SwitchAction::Grow { space, available, done });
            return Ok(());
        }
        if self.next.as_ref().is_none_or(|r| r.space != space) {
            // News of a rendition we are not on is stale, unless it answers our latest request:
            // that is where the host has us now, even on a space we left before (the host
            // shares a rendition still running; it may also have refused the request that made
            // us leave it).
            if !granted {
                tracing::debug!("ignoring rendition {space} ({level}): not ours");
                return Ok(());
            }
            self.put_on(space, level);
        }
        self.out.push_back(SwitchAction::Grow { space, available, done });
        let Some(r) = self.next.as_mut() else { return Ok(()) };
        r.first_us = r.first_us.or(first_us);
        if !r.reading
            && let Some(first) = r.first_us
        {
            r.reading = true;
            tracing::info!("quality: starting {} (rendition {}) from {} ms", r.level, r.space, first / 1000);
            let shift = Some(first.min(i64::MAX as u64) as Micros);
            self.out.push_back(SwitchAction::StartIncoming { space: r.space, shift });
            self.incoming = Some(Source::Rendition(r.space));
            // What is buffered of the original plays on while the rendition comes in; the
            // link is the rendition's.
            self.out.push_back(SwitchAction::ReadAhead { space: ORIGINAL, on: false });
        }
        Ok(())
    }

    /// Where the host has put us, even if we have changed our mind since (the next request
    /// moves us on): the two sides never disagree about it.
    fn put_on(&mut self, space: Space, level: String) {
        self.newest_space = self.newest_space.max(space);
        self.drop_next();
        if let Some(cur) = self.current.as_ref().filter(|c| c.level == level) {
            // Restarted at a seek: what the one on screen holds is not where the room is, and
            // its decoder would read it forward to the new position. Stop it; the picture
            // waits for the new one, as after any seek.
            let space = cur.space;
            self.out.push_back(SwitchAction::StopReader { space });
            self.out.push_back(SwitchAction::ReadAhead { space, on: false });
        }
        self.out.push_back(SwitchAction::NewStore { space, level: level.clone() });
        self.next = Some(Rendition { space, level, first_us: None, reading: false });
    }

    /// The host cannot give us `level`: we stay where it last put us (the rendition on its
    /// way, or what plays).
    pub fn handle_refused(&mut self, level: &str, now: Instant) {
        self.awaiting = None;
        let stays = self.next.as_ref().map_or_else(|| self.playing().to_string(), |r| r.level.clone());
        tracing::info!("quality: {level} refused; staying on {stays}");
        if self.wanted == level {
            self.controller.set_current(&stays);
            if stays == "high" {
                self.out.push_back(SwitchAction::ReadAhead { space: ORIGINAL, on: true });
            }
            self.wanted = stays;
        }
        self.asked = false;
        self.refused_until = Some(now + REFUSED_FOR);
        self.ask_after = Some(now + RETRY_AFTER);
    }

    /// The picture moved to the source of the latest `StartIncoming`: retires the old one.
    pub fn handle_switched(&mut self) {
        let Some(new) = self.incoming.take() else { return };
        let old = std::mem::replace(&mut self.active, new);
        // The one left: its reader stops, its requests are cancelled at the host.
        match old {
            Source::Original => {
                self.out.push_back(SwitchAction::StopReader { space: ORIGINAL });
                self.out.push_back(SwitchAction::CancelInFlight { space: ORIGINAL });
            }
            Source::Rendition(space) => {
                if self.current.take_if(|r| r.space == space).is_some() {
                    self.out.push_back(SwitchAction::CancelInFlight { space });
                    self.out.push_back(SwitchAction::CloseStore { space });
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
            Source::Original => self.out.push_back(SwitchAction::Send(Message::Level { level: "high".into(), from_us: 0 })),
        }
        tracing::info!("quality: now playing {}", self.playing());
    }

    /// Asks for what gets the picture to the wanted level; `room_us` is the room position (a
    /// rendition starts there). Switching back to the original needs no host. Call often.
    pub fn handle_timeout(&mut self, now: Instant, room_us: Option<Micros>) {
        if self.asked || self.ask_after.is_some_and(|t| now < t) || self.awaiting.is_some_and(|t| now < t + ANSWER_WITHIN) {
            return;
        }
        if self.wanted == "high" {
            self.asked = true;
            // A rendition on its way is not needed any more.
            self.drop_next();
            if self.active == Source::Original {
                return self.send(Message::Level { level: "high".into(), from_us: 0 });
            }
            if self.incoming != Some(Source::Original) {
                self.out.push_back(SwitchAction::StartIncoming { space: ORIGINAL, shift: None });
                self.incoming = Some(Source::Original);
            }
            return;
        }
        let Some(from) = room_us else { return };
        // Already where we want to be (a refusal re-asks what plays; a kept rendition needs no
        // new request unless the room moved, which `handle_seek` covers).
        let on_it = self.next.as_ref().or(self.current.as_ref()).is_some_and(|r| r.level == self.wanted);
        self.asked = true;
        if on_it && !std::mem::take(&mut self.pending_seek) {
            return;
        }
        self.pending_seek = false;
        self.awaiting = Some(now);
        self.send(Message::Level { level: self.wanted.clone(), from_us: from.max(0) as u64 });
    }

    /// When `handle_timeout` next has something to do (`room_known`: the room position is
    /// known, which a request for a rendition needs). Before any of its holds, never.
    pub fn poll_timeout(&self, now: Instant, room_known: bool) -> Option<Instant> {
        if self.asked || (!room_known && self.wanted != "high") {
            return None;
        }
        let holds = [self.ask_after, self.awaiting.map(|t| t + ANSWER_WITHIN)];
        Some(holds.into_iter().flatten().max().map_or(now, |t| t.max(now)))
    }

    /// The link was made anew: the host knows nothing of the level this participant is on (its
    /// renditions for the old connection are gone), so ask again for the level wanted, from the
    /// room's position. The picture plays on from what is held until the answer.
    pub fn reconnected(&mut self) {
        self.awaiting = None;
        self.ask_after = None;
        self.refused_until = None;
        self.asked = false;
        self.pending_seek = true;
    }

    /// The room sought: a rendition must cover the new position (the host keeps it or starts
    /// another there). Waits for the answer to a request still out; `handle_timeout` then asks
    /// from the room's new position.
    pub fn handle_seek(&mut self, to_us: Micros, now: Instant) {
        if self.wanted == "high" {
            return;
        }
        if self.awaiting.is_some_and(|t| now < t + ANSWER_WITHIN) {
            // The answer will be for the old position: ask again once it is here.
            self.asked = false;
            self.pending_seek = true;
            return;
        }
        self.awaiting = Some(now);
        self.send(Message::Level { level: self.wanted.clone(), from_us: to_us.max(0) as u64 });
    }

    /// Once a second: feeds the automatic choice a throughput sample (bytes over the time
    /// requests were out, `busy`, capped by the download limit) and the playback time buffered
    /// (`ahead_bits` of the stores read, none while `stalled`).
    pub fn sample(&mut self, now: Instant, stalled: bool, busy: Duration, ahead_bits: u64) {
        let received = std::mem::take(&mut self.received);
        if self.choice != Choice::Auto {
            return;
        }
        let bps = self.controller.current().map_or(self.original_bps, |l| l.bps).max(1);
        let buffered = if stalled { Duration::ZERO } else { Duration::from_secs_f64(ahead_bits as f64 / bps as f64) };
        // Less than a chunk in the second says nothing about the link; a little does.
        let Some(throughput) = link_throughput(received, busy, self.download_limit, self.chunk_size as u64) else { return };
        tracing::debug!("quality sample: {:.2} Mb/s over {busy:?} busy, {buffered:?} buffered", throughput / 1e6);
        self.controller.handle_sample(now, throughput, buffered);
        if let Some(l) = self.controller.poll_switch().map(|l| l.name.clone()) {
            if self.refused_until.is_some_and(|t| now < t) {
                // The host just said no; do not ask again at once.
                self.controller.set_current(&self.wanted);
                return;
            }
            self.want(l);
        }
    }

    fn send(&mut self, msg: Message) {
        self.out.push_back(SwitchAction::Send(msg));
    }
}

#[cfg(test)]
mod tests;
