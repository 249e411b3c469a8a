//! The participant as one machine (sans-IO): its chunk stores, the presenter (room-clock
//! follower, offset estimator, what the picture shows), the level switch, the ping, stats and
//! report cadence, and the policy that joins them — what a message from the host does, what
//! a command does, what is asked for and when, what a report and a snapshot say.
//!
//! Its driver owns the link, the decoders, the saved copy and the view; it feeds this core
//! what happens (`handle_*`), carries out its [`ParticipantOutput`]s, and sleeps until
//! [`ParticipantCore::poll_timeout`]. The decoders read the stores through the core
//! ([`ChunkSource`]): the driver keeps the core behind the one lock they share.

pub mod hashes;
mod inputs;
mod passed;
pub mod presenter;
mod reconnect;
#[cfg(test)]
mod relay_tests;
mod relaying;
mod stores;
pub mod swarm;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::api::{Event, JoinSnapshot, MpvStatus, SoundStats};
use crate::buffer::{ChunkSource, ChunkStore, Read, StoreConfig, StoreError};
use crate::cadence::Cadence;
use crate::clock::Micros;
use crate::level_switch::{Choice, LevelSwitch, SwitchAction};
use crate::protocol::have::Have;
use crate::protocol::identity::HostId;
use crate::protocol::stream::{Manifest, Message, ORIGINAL, Priority, Space, StreamError};
use crate::quality::Level;
use crate::rate::Meter;

use presenter::Presenter;
pub use presenter::{PictureAction, PictureView, PresenterEvent, QueueView, RoomView};
pub use reconnect::{FIRST_ATTEMPTS, FirstConnection, RECONNECT_FOR};
pub use relaying::{BUFFER_GOAL, CRITICAL_WITHIN, HORIZON, RELAY_EVERY, RelayConfig, SOON};
pub use stores::Stores;

/// How a participant runs.
#[derive(Debug, Clone)]
pub struct ParticipantConfig {
    /// Its display name.
    pub name: String,
    /// It decodes and follows the room clock. Off: it only fetches the file in order (the
    /// throughput benchmark), never holding the room.
    pub decodes: bool,
    /// Why it stays on the original whatever the link does (renditions play in the built-in
    /// player only), if it does: see [`keeps_original`].
    pub keeps_original: Option<&'static str>,
    /// `auto` or a level.
    pub quality: String,
    /// The original's store (a rendition's takes a quarter of its bound).
    pub store: StoreConfig,
    /// The renditions' bit rates.
    pub ladder: Vec<Level>,
    /// The host's key (checked against the link) and the room id: what the host signs is
    /// checked with them. `None`: nothing signed is taken.
    pub host: Option<(HostId, String)>,
    /// How it relays chunks to and from the neighbours the host introduces (`None`: it does
    /// not; `--no-relay`).
    pub relay: Option<RelayConfig>,
}

/// Renditions play in the built-in player only: why a participant stays on the original.
pub fn keeps_original(decodes: bool, mpv: bool, saves: bool) -> Option<&'static str> {
    if !decodes {
        Some("it does not play")
    } else if mpv {
        Some("mpv plays the original")
    } else if saves {
        Some("--save keeps the original")
    } else {
        None
    }
}

/// How one connected stretch ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TurnEnd {
    /// The user quit (or mpv went away).
    Quit,
    /// The host ended the stream.
    StreamEnd(String),
    /// The link went away: reconnect.
    LinkLost(String),
}

/// The host broke the protocol: the participant stops.
#[derive(Debug, thiserror::Error)]
pub enum ParticipantError {
    /// A message that does not belong.
    #[error("protocol violation: {0}")]
    Protocol(#[from] StreamError),
    /// A chunk that does not fit the file.
    #[error("protocol violation: {0}")]
    Chunk(#[from] StoreError),
}

/// What the driver does.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub enum ParticipantOutput {
    /// Send this to the host (on the control channel).
    Send(Message),
    /// Report this (headless, the view).
    Event(Event),
    /// Do this to the decoders.
    Picture(PictureAction),
    /// Start a decoder on `space` beside the picture (`shift`: the room position of its time
    /// zero, `None` for the original); the presenter moves the picture over when it is ready.
    StartDecoder {
        /// Which space it reads.
        space: Space,
        /// Where its time zero is in the room.
        shift: Option<Micros>,
    },
    /// Close the decoder started by the last `StartDecoder` (the picture stays).
    AbandonIncoming,
    /// The readers of `space` stop (its store may stay for the next).
    StopReader {
        /// Which.
        space: Space,
    },
    /// Blocked readers look again (a chunk arrived, a store grew or went).
    Wake,
    /// Write this chunk of the original to the `--save` copy.
    Save {
        /// Index.
        index: u32,
        /// Bytes.
        data: Bytes,
    },
    /// The room's clock as this participant sees it changed (mpv follows it).
    RoomClock(Option<RoomView>),
    /// Stats are due: build [`ParticipantCore::snapshot`], tell it, checkpoint the saved copy.
    Stats,
    /// The others in the room, each with what they do (for the view).
    Roster(Vec<(String, String)>),
    /// A line for the view's message bar.
    Notice(String),
    /// The connected stretch is over.
    End(TurnEnd),
    /// Reconnecting: make an attempt to get back in, and say how it went
    /// ([`ParticipantCore::handle_connected_to`], [`ParticipantCore::handle_connect_failed`]).
    Connect,
    /// Reconnecting is over without getting back in: the participant stops, for this reason.
    GiveUp(String),
    /// Open a relay link to a neighbour the host introduced, with the host link's STUN/TURN.
    /// The offerer writes the offer and hands it over with
    /// [`ParticipantCore::handle_relay_local_sdp`]; the answerer waits for `RelayRemoteSdp`,
    /// then does the same with its answer. Report with `handle_relay_up` or `handle_relay_gone`.
    RelayOpen {
        /// The link.
        link: u32,
        /// This side offers.
        offerer: bool,
        /// The neighbour's name (for logs).
        name: String,
    },
    /// The neighbour's SDP, its signature checked: apply it (an answerer then answers).
    RelayRemoteSdp {
        /// The link.
        link: u32,
        /// Its offer or answer.
        sdp: String,
    },
    /// A message to a neighbour (its control channel; dropped if the link is not up).
    RelaySend {
        /// The link.
        link: u32,
        /// What.
        msg: Message,
    },
    /// A chunk to a neighbour (its chunks channel); report with `handle_relay_sent` once it
    /// went out (or could not).
    RelayChunk {
        /// The link.
        link: u32,
        /// Chunk space.
        space: Space,
        /// Chunk index.
        index: u32,
        /// Its bytes.
        data: Bytes,
    },
    /// Close a relay link.
    RelayClose {
        /// The link.
        link: u32,
    },
}

/// Why the core wants to be woken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// A ping or the stats are due.
    Cadence,
    /// The download limit lets the next request go.
    Requests,
    /// The picture changes (a frame is due, a stall, the drift check).
    Present,
    /// The level switch may ask the host again.
    Levels,
    /// The next attempt to get back in.
    Reconnect,
    /// Relaying's periodic pass.
    Relay,
}

/// What only the edge knows, for a snapshot.
#[derive(Debug, Clone, Default)]
pub struct EdgeFacts {
    /// Sound played on a device, if any.
    pub sound: Option<SoundStats>,
    /// What mpv does, with `--player mpv`.
    pub mpv: Option<MpvStatus>,
    /// The path that carries the link.
    pub path: Option<crate::path::Path>,
}

/// The participant.
pub struct ParticipantCore {
    cfg: ParticipantConfig,
    manifest: Manifest,
    stores: Stores,
    switch: LevelSwitch,
    presenter: Presenter,
    cadence: Cadence,
    down: Meter,
    /// The download rate at the last stats.
    down_bps: u64,
    received: u32,
    duplicates: u32,
    /// It resumed a saved copy: chunks on disk the host cannot see in its `Have`s.
    resumed: bool,
    /// Chunks the host sent that were never asked for (dropped).
    unasked: u64,
    /// The whole file's SHA-256 as the host signed it, once it has said.
    host_sha256: Option<[u8; 32]>,
    /// Each chunk's SHA-256 as the host signed it, where known.
    hashes: hashes::HashTable,
    /// Neighbours and serving them (`None`: it does not relay).
    relay: Option<relaying::Relaying>,
    /// Under a download limit, when the next request may go.
    requests_at: Option<Instant>,
    /// Unix ms at an instant (for the events' `t_ms`).
    wall: (Instant, f64),
    /// After the link dropped, until back in.
    reconnect: Option<reconnect::Reconnect>,
    /// Since when the picture has been frozen while the room's clock runs (a stall), until
    /// it shows again: the host hears of it only after [`STALL_GRACE`].
    frozen_since: Option<Instant>,
    /// It has shown a picture (the grace is for freezes after that, never for the first).
    shown_once: bool,
    now: Instant,
    out: VecDeque<ParticipantOutput>,
}

/// A picture that freezes while the room plays is reported as buffering only once it has
/// stayed frozen this long. A freeze the decoder gets out of by decoding on (the clock
/// jumped ahead of its queue when a late state came, or it seeks back a little) lasts
/// less; reported at once, it would pause the whole room for a round trip and the report
/// interval, and the pause and resume — coming late to those far from the host — would make
/// others jump and freeze in turn: a hundred participants kept pausing the room every second
/// or two although every one of them held the next seconds.
pub const STALL_GRACE: Duration = Duration::from_millis(150);

impl ParticipantCore {
    /// A participant that got `manifest` at `now`; `saved`: the chunks a `--save` copy of an
    /// earlier run holds (read from there, never fetched).
    pub fn new(now: Instant, manifest: Manifest, cfg: ParticipantConfig, saved: &[u32]) -> ParticipantCore {
        let mut store = cfg.store.clone();
        store.capacity = store.capacity.max(manifest.chunk_size as u64 * 4);
        let mut core = ParticipantCore {
            stores: Stores::new(&manifest, store.clone()),
            switch: LevelSwitch::new(&manifest, cfg.ladder.clone(), store.download_limit),
            presenter: Presenter::new(now, cfg.decodes),
            cadence: Cadence::new(now),
            down: Meter::new(Duration::from_secs(1)),
            down_bps: 0,
            received: 0,
            duplicates: 0,
            resumed: false,
            frozen_since: None,
            shown_once: false,
            unasked: 0,
            host_sha256: None,
            hashes: hashes::HashTable::default(),
            relay: cfg.relay.clone().map(|r| relaying::Relaying::new(now, r)),
            requests_at: None,
            wall: (now, 0.0),
            reconnect: None,
            now,
            out: VecDeque::new(),
            manifest,
            cfg,
        };
        core.restore(saved);
        core.update_host_window();
        if core.relays() {
            // First: the host learns this side relays before it hears what it wants.
            for have in core.full_haves().into_iter().chain(std::iter::once(Have::empty(ORIGINAL))).take(1) {
                core.send(Message::Have(have));
            }
        }
        core.choose_first();
        core.flush();
        core
    }

    fn restore(&mut self, saved: &[u32]) {
        saved.iter().for_each(|&ix| self.stores.original_mut().mark_on_disk(ix));
        if !saved.is_empty() {
            self.resumed = true;
            let bytes = saved.iter().map(|&ix| self.manifest.chunk_len(ix).unwrap_or(0) as u64).sum();
            self.event(Event::Resumed { chunks: saved.len() as u32, bytes });
        }
    }

    fn choose_first(&mut self) {
        let q = self.cfg.quality.clone();
        let choice = match self.cfg.keeps_original {
            Some(why) => {
                if q != "auto" && q != "high" {
                    self.event(Event::Error { message: format!("quality {q}: staying at high, {why}") });
                }
                Choice::Fixed("high".into())
            }
            None => Choice::parse(&q),
        };
        if let Err(e) = self.switch.choose(choice) {
            self.event(Event::Error { message: format!("quality: {e}; choosing automatically") });
        }
        self.apply_switch();
    }

    /// The next thing to do.
    pub fn poll_output(&mut self) -> Option<ParticipantOutput> {
        self.out.pop_front()
    }

    /// When the core next wants to be woken, and why.
    pub fn poll_timeout(&self) -> Option<(Instant, Timer)> {
        if let Some(r) = &self.reconnect {
            return r.poll_timeout().map(|t| (t, Timer::Reconnect));
        }
        let room_known = self.presenter.room_position(self.now).is_some();
        [
            Some((self.cadence.poll_timeout(), Timer::Cadence)),
            self.requests_at.map(|t| (t, Timer::Requests)),
            self.presenter.poll_timeout(self.now).map(|t| (t, Timer::Present)),
            self.switch.poll_timeout(self.now, room_known).map(|t| (t, Timer::Levels)),
            self.relay.as_ref().map(|r| (r.poll_timeout(), Timer::Relay)),
        ]
        .into_iter()
        .flatten()
        .min_by_key(|(t, _)| *t)
    }

    /// The wall clock reads `unix_ms` at `now` (events carry wall time).
    pub fn handle_wall_clock(&mut self, now: Instant, unix_ms: f64) {
        self.wall = (now, unix_ms);
    }

    fn wall_ms(&self, now: Instant) -> f64 {
        self.wall.1 + now.saturating_duration_since(self.wall.0).as_secs_f64() * 1e3
    }

    /// Time passed: pings, stats, the level switch's retries, paced requests.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        if self.reconnect_timeout(now) {
            return;
        }
        for due in self.cadence.handle_timeout(now) {
            match due {
                crate::cadence::Due::Ping => self.send(Message::Ping { client_us: self.presenter.local(now).max(0) as u64 }),
                crate::cadence::Due::Stats => self.on_stats(now),
                crate::cadence::Due::Report => self.report(now),
            }
        }
        self.drive_switch(now);
        self.relay_tick(now);
        self.flush();
    }

    /// What the decoders hold now: the presenter decides what the picture shows. Call at the
    /// end of every wake-up (a participant that does not decode may skip it).
    pub fn handle_picture(&mut self, now: Instant, view: &PictureView) {
        self.now = now;
        let held;
        let view = match self.buffer_goal_unmet(view) {
            true => {
                held = view.holding_back();
                &held
            }
            false => view,
        };
        let (actions, event) = self.presenter.present(now, view);
        for a in actions {
            let switched = a == PictureAction::Switch;
            self.out.push_back(ParticipantOutput::Picture(a));
            if switched {
                self.switch.handle_switched();
                self.apply_switch();
            }
        }
        if let Some(t) = self.presenter.take_seek() {
            self.switch.handle_seek(t, now);
            self.apply_switch();
        }
        self.drive_switch(now);
        match event {
            Some(PresenterEvent::Failed(e)) => {
                // Not fatal: the bytes still arrive (and --save still keeps them).
                self.event(Event::Error { message: format!("cannot play {}: {e}", self.manifest.name) });
                self.report_change(now);
            }
            Some(PresenterEvent::Buffering) if self.shown_once && self.presenter.clock_runs() => {
                self.event(self.state_event(now));
                self.frozen_since = Some(now);
                self.cadence.report_by(now + STALL_GRACE);
            }
            Some(e) => {
                self.shown_once |= e == PresenterEvent::Showing;
                self.frozen_since = None;
                self.event(self.state_event(now));
                self.report_change(now);
            }
            None => {}
        }
        self.flush();
    }

    /// A reader wants something (it marked it in the store): ask the host.
    pub fn handle_wake(&mut self, now: Instant) {
        self.now = now;
        self.flush();
    }

    /// The in-order check (the file's hash, at the edge) has read every chunk below `next`.
    /// Without a player it is the reader: the store fetches ahead of it. It never marks the
    /// next chunk critical: that chunk is normally already on its way, and a critical
    /// re-request makes the host send it again (it halved bench throughput).
    pub fn handle_verified(&mut self, next: u32) {
        if !self.cfg.decodes {
            self.stores.original_mut().set_read_position(next);
            self.flush();
        }
    }

    /// Back on a new link: the host knows nothing of what was asked on the old one.
    fn handle_reconnected(&mut self, now: Instant) {
        self.now = now;
        self.stores.all_mut().for_each(|s| drop(s.take_in_flight(now)));
        if self.relays() {
            // The host forgot what this side holds with the old link.
            for have in self.full_haves() {
                self.send(Message::Have(have));
            }
        }
        self.switch.reconnected();
        self.cadence.reconnected(now);
        self.event(Event::Reconnected { held_bytes: self.stores.original().held_bytes() });
        self.flush();
    }

    fn drive_switch(&mut self, now: Instant) {
        self.switch.handle_timeout(now, self.presenter.room_position(now));
        self.apply_switch();
    }

    /// Once a second: request timeouts, the quality sample, stats, a report if none went.
    fn on_stats(&mut self, now: Instant) {
        self.give_up_requests(now);
        let busy = self.stores.take_busy(now);
        let ahead_bits = self.switch.live_spaces().iter().filter_map(|&s| self.stores.get(s)).map(|s| s.contiguous_ahead() * 8).sum();
        let stalled = self.presenter.buffering() && self.presenter.room_wants_playing();
        self.switch.sample(now, stalled, busy, ahead_bits);
        self.apply_switch();
        self.down_bps = self.down.rate(now) as u64;
        self.out.push_back(ParticipantOutput::Stats);
        if self.cadence.report_due(now) {
            self.report(now);
        }
    }

    /// A change the host should hear of: a report now, or a moment after the last.
    fn report_change(&mut self, now: Instant) {
        if self.cadence.changed(now) {
            self.report(now);
        }
    }

    fn report(&mut self, now: Instant) {
        let p = &self.presenter;
        let report = Message::Report {
            position_ms: (p.position(now).max(0) / 1000) as u64,
            buffered_bytes: self.stores.original().held_bytes(),
            down_bps: self.down.rate(now) as u64,
            buffering: p.buffering() && self.frozen_since.is_none_or(|t| now >= t + STALL_GRACE),
            rtt_ms: p.rtt_ms(),
            seq: p.seq(),
            drift_ms: p.drift(now).map(|d| d / 1000),
            relay: self.relay_report(now),
        };
        self.send(report);
        self.cadence.reported(now);
        // A report inside a freeze's grace (the periodic one) said it was not buffering: the
        // one at the grace's end is still due.
        if let Some(t) = self.frozen_since.filter(|t| self.presenter.buffering() && now < *t + STALL_GRACE) {
            self.cadence.report_by(t + STALL_GRACE);
        }
    }

    fn state_event(&self, now: Instant) -> Event {
        let p = &self.presenter;
        Event::State {
            playing: p.playing(),
            position_ms: (p.position(now).max(0) / 1000) as u64,
            buffering: p.buffering(),
            waiting: p.waiting().to_vec(),
            seq: p.seq(),
            t_ms: self.wall_ms(now),
        }
    }

    /// Carries out what the level switch decided.
    fn apply_switch(&mut self) {
        let now = self.now;
        while let Some(action) = self.switch.poll_action() {
            match action {
                SwitchAction::Send(m) => self.send(m),
                SwitchAction::NewStore { space, level } => {
                    self.stores.add(space, &level);
                    self.update_host_window();
                }
                SwitchAction::Grow { space, available, done } => {
                    if let Some(s) = self.stores.get_mut(space).filter(|_| space != ORIGINAL) {
                        s.grow(available);
                        s.set_growing(!done);
                        self.out.push_back(ParticipantOutput::Wake);
                    }
                }
                SwitchAction::StartIncoming { space, shift } => self.out.push_back(ParticipantOutput::StartDecoder { space, shift }),
                SwitchAction::AbandonIncoming => self.out.push_back(ParticipantOutput::AbandonIncoming),
                SwitchAction::StopReader { space } => self.out.push_back(ParticipantOutput::StopReader { space }),
                SwitchAction::CloseStore { space } => {
                    self.stores.remove(space);
                    self.hashes.drop_space(space);
                    self.out.push_back(ParticipantOutput::StopReader { space });
                    self.out.push_back(ParticipantOutput::Wake);
                }
                SwitchAction::ReadAhead { space, on } => self.stores.get_mut(space).into_iter().for_each(|s| s.set_read_ahead(on)),
                SwitchAction::CancelInFlight { space } => {
                    let chunks = self.stores.get_mut(space).map(|s| s.take_in_flight(now)).unwrap_or_default();
                    if !chunks.is_empty() {
                        self.send(Message::Cancel { space, chunks });
                    }
                }
            }
        }
    }

    /// Sends what the stores the picture reads want; notes when the download limit lets the
    /// next request go, if it holds some back. After every input.
    fn flush(&mut self) {
        let mut ready: Option<Instant> = None;
        for space in self.switch.live_spaces() {
            let (requests, at) = self.stores.poll_requests(self.now, space);
            ready = [ready, at].into_iter().flatten().min();
            for r in requests {
                // Neighbours first, where one holds the chunk and would bring it in time.
                let chunks = if self.relay.as_ref().is_some_and(|r| r.swarm.up() > 0) {
                    self.ask_neighbours(self.now, space, &r.chunks, r.priority == Priority::Critical)
                } else {
                    r.chunks
                };
                if !chunks.is_empty() {
                    tracing::trace!("request space {space}: {:?} {:?}", r.priority, chunks);
                    self.send(Message::Request { space, chunks, priority: r.priority });
                }
            }
        }
        self.requests_at = ready;
    }

    fn send(&mut self, msg: Message) {
        self.out.push_back(ParticipantOutput::Send(msg));
    }

    fn event(&mut self, ev: Event) {
        self.out.push_back(ParticipantOutput::Event(ev));
    }

    /// The participant now: what its view shows and its `stats` say, built here only.
    /// `pieces`: the buffer map in this many slices (0: none; it costs a pass over the store).
    pub fn snapshot(&self, now: Instant, pieces: usize, edge: EdgeFacts) -> JoinSnapshot {
        let (p, s) = (&self.presenter, self.stores.original());
        JoinSnapshot {
            down_bps: self.down_bps,
            buffered_bytes: s.held_bytes(),
            received_chunks: self.received,
            duplicate_chunks: self.duplicates,
            unasked_chunks: self.unasked,
            chunks: self.manifest.chunks,
            position_ms: (p.position(now).max(0) / 1000) as u64,
            playing: p.playing(),
            quality: self.switch.playing().to_string(),
            quality_next: self.switch.next(),
            frame_ms: p.frame_pts().map(|t| (t.max(0) / 1000) as u64),
            drift_ms: p.drift(now).map(|d| d / 1000),
            buffering: p.buffering(),
            sound: edge.sound,
            mpv: edge.mpv.map(|m| m.at(now)),
            path: edge.path,
            t_ms: self.wall_ms(now),
            room_playing: p.room_wants_playing(),
            waiting: p.waiting().to_vec(),
            quality_choice: self.switch.choice_name(),
            pieces: if pieces > 0 { s.piece_map(pieces) } else { Vec::new() },
            read_fraction: s.read_position() as f64 / self.manifest.chunks.max(1) as f64,
            relay: self.relay.as_ref().map(|r| r.stats()),
        }
    }

    /// The file.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The whole file's SHA-256 as the host signed it, once the host has said.
    pub fn host_sha256(&self) -> Option<&[u8; 32]> {
        self.host_sha256.as_ref()
    }

    /// The host's chunk hashes held.
    pub fn hashes(&self) -> &hashes::HashTable {
        &self.hashes
    }

    /// The original's store (the in-order check reads it).
    pub fn original(&self) -> &ChunkStore {
        self.stores.original()
    }

    /// The room's position at `now`, or the picture's before the room is known.
    pub fn room_position(&self, now: Instant) -> Micros {
        self.presenter.room_position(now).unwrap_or_else(|| self.presenter.position(now))
    }

    /// The presenter (positions, drift, state), to read.
    pub fn presenter(&self) -> &Presenter {
        &self.presenter
    }
}

impl ChunkSource for ParticipantCore {
    /// What the reader now wants goes out with the driver's next pass (the reader wakes it).
    fn read_at(&mut self, space: Space, pos: u64, buf: &mut [u8]) -> Read {
        self.stores.read_at(space, pos, buf)
    }

    fn size(&self, space: Space) -> Option<u64> {
        self.stores.get(space).map(|s| s.manifest().size)
    }

    fn growing(&self, space: Space) -> bool {
        self.stores.get(space).is_some_and(|s| s.growing())
    }
}
