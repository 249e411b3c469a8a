//! One participant's time in the room, across reconnections: the stores, the playback, the
//! levels, the saved copy, the in-order hash and the cadences, and what each thing that
//! happens does to them. [`Session::turn`] waits for the next thing and hands it to a method
//! that never waits: messages to the host are queued (`Tx`), and a lost link ends the turn with
//! a reason ([`TurnEnd`]) rather than an error.

use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::connect::{Connection, Incoming, Tx, link_failed};
use super::levels::{Choice, Levels};
use super::save::SaveFile;
use super::{JoinEnd, JoinOptions};
use crate::core::api::JoinSnapshot;
use crate::core::buffer::{Arrival, ChunkStore, StoreConfig, StoreError};
use crate::core::cadence::{Cadence, Due};
use crate::core::clock::{MediaState, Micros};
use crate::core::level_switch::RenditionNews;
use crate::core::rate::Meter;
use crate::engine::{Command, Event, sleep_until_opt};
use crate::media::store_source::SharedStore;
use crate::player::mpv::{Mpv, MpvOut, MpvStatus};
use crate::player::playback::Playback;
use crate::player::range_server::RangeServer;
use crate::player::screen::Screen;
use crate::protocol::stream::{self, Manifest, Message, ORIGINAL, Role, StreamError};

/// How one connected stretch ended.
pub(super) enum TurnEnd {
    /// The user quit (or mpv went away).
    Quit,
    /// The host ended the stream.
    StreamEnd(String),
    /// The link went away: reconnect.
    LinkLost(String),
}

/// Why a participant stops with an error.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// The host broke the protocol.
    #[error("protocol violation: {0}")]
    Protocol(#[from] StreamError),
    /// The host sent a chunk that does not fit the file.
    #[error("protocol violation: {0}")]
    Chunk(#[from] StoreError),
    /// `--save`'s copy could not be written or read.
    #[error("the saved copy: {0}")]
    Save(#[from] std::io::Error),
}

/// Reads the store in order: hashes, and tells the store where the reader is.
struct Cursor {
    next: u32,
    hasher: Sha256,
    done: bool,
}

/// Renditions play in the built-in player only: why a participant stays on the original.
fn fixed_high(opts: &JoinOptions) -> Option<&'static str> {
    if !opts.playback {
        Some("it does not play")
    } else if opts.mpv.is_some() {
        Some("mpv plays the original")
    } else if opts.save.is_some() {
        Some("--save keeps the original")
    } else {
        None
    }
}

/// The participant's state.
pub(super) struct Session {
    opts: JoinOptions,
    manifest: Manifest,
    events: mpsc::UnboundedSender<Event>,
    started: Instant,
    shared: Arc<SharedStore>,
    levels: Levels,
    playback: Playback,
    fixed_high: Option<&'static str>,
    save: Option<SaveFile>,
    screen: Option<Arc<Screen>>,
    mpv: Option<Mpv>,
    mpv_status: Option<MpvStatus>,
    _range_server: Option<RangeServer>,
    cursor: Cursor,
    down: Meter,
    received: u32,
    duplicates: u32,
    presents: u64,
    /// The download rate at the last stats.
    down_bps: u64,
    present: tokio::time::Interval,
    cadence: Cadence,
    wake: Arc<tokio::sync::Notify>,
    /// Under a download limit, when the next request may go (only asking changes it).
    requests_at: Option<Instant>,
    signal_open: bool,
    /// The path that carries the link (for stats).
    pub path: Option<crate::net::path::Path>,
}

impl Session {
    /// Sets up the stores, the saved copy, playback, levels, the view and mpv for `manifest`.
    pub(super) async fn start(opts: JoinOptions, manifest: Manifest, events: mpsc::UnboundedSender<Event>) -> color_eyre::Result<Session> {
        let (save, saved) = match &opts.save {
            // A copy an earlier run left half-way is kept: what it holds is read from disk,
            // not fetched again (see `save`).
            Some(path) => {
                let (s, held) = SaveFile::open(path, &manifest).map_err(|e| color_eyre::eyre::eyre!("cannot write {}: {e}", path.display()))?;
                (Some(s), held)
            }
            None => (None, vec![]),
        };
        let cfg = StoreConfig {
            capacity: opts.buffer.max(manifest.chunk_size as u64 * 4),
            fill_behind: save.is_some(),
            download_limit: opts.download_limit,
            on_disk: save.is_some(),
            ..StoreConfig::default()
        };
        let wake = Arc::new(tokio::sync::Notify::new());
        let wake_fn: Arc<dyn Fn() + Send + Sync> = {
            let wake = wake.clone();
            Arc::new(move || wake.notify_one())
        };
        let shared = {
            let w = wake_fn.clone();
            SharedStore::new(ChunkStore::new(manifest.clone(), cfg.clone()), move || w())
        };
        restore(&shared, save.as_ref(), &saved, &manifest, &events);
        let (reader, reader_cancel) = shared.cancellable_reader();
        let playback = if opts.playback { Playback::start(Box::new(reader), None, opts.sound && opts.mpv.is_none()) } else { Playback::inert() };
        let fixed_high = fixed_high(&opts);
        let levels = Levels::new(&manifest, shared.clone(), Some(reader_cancel), cfg, wake_fn);
        // mpv reads the store over local HTTP and follows the same room clock.
        let (range_server, mpv) = match &opts.mpv {
            Some(args) => {
                let server = crate::player::range_server::start(shared.clone(), &manifest.name).await?;
                let mpv = Mpv::spawn(&server.url, args).await?;
                tracing::info!("mpv playing {}", server.url);
                (Some(server), Some(mpv))
            }
            None => (None, None),
        };
        let mut present = tokio::time::interval(Duration::from_millis(5));
        present.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut s = Session {
            screen: opts.render.screen().cloned(),
            opts,
            manifest,
            events,
            started: Instant::now(),
            shared,
            levels,
            playback,
            fixed_high,
            save,
            mpv,
            mpv_status: None,
            _range_server: range_server,
            cursor: Cursor { next: 0, hasher: Sha256::new(), done: false },
            down: Meter::new(Duration::from_secs(1)),
            received: 0,
            duplicates: 0,
            presents: 0,
            down_bps: 0,
            present,
            cadence: Cadence::new(Instant::now()),
            wake,
            requests_at: None,
            signal_open: true,
            path: None,
        };
        s.choose_first();
        s.show_start();
        // A resumed copy may already hold a run of chunks from the start (or all of them).
        s.advance().map_err(color_eyre::Report::from)?;
        Ok(s)
    }

    fn choose_first(&mut self) {
        let choice = match self.fixed_high {
            Some(why) => {
                if self.opts.quality != "auto" && self.opts.quality != "high" {
                    self.event(Event::Error { message: format!("quality {}: staying at high, {why}", self.opts.quality) });
                }
                Choice::Fixed("high".into())
            }
            None => Choice::parse(&self.opts.quality),
        };
        if let Err(e) = self.levels.choose(choice) {
            self.event(Event::Error { message: format!("quality: {e}; choosing automatically") });
        }
    }

    fn show_start(&self) {
        let Some(s) = &self.screen else { return };
        s.attach_queue(self.playback.queue());
        let now = self.snapshot(true);
        s.update(|st| {
            st.now = now;
            st.name = self.opts.name.clone();
            st.file = self.manifest.name.clone();
            st.duration_ms = self.manifest.duration_ms;
            st.levels = self.manifest.levels.clone();
            st.link = self.opts.link.to_string();
        });
    }

    /// The participant now: what its view shows and its `stats` say, built here only.
    /// `pieces`: with the buffer map (for the view, once a second: it costs a pass over the
    /// store under the lock the decoder reads through).
    fn snapshot(&self, pieces: bool) -> JoinSnapshot {
        let p = &self.playback;
        let (buffered_bytes, pieces, read_fraction) = {
            let g = self.shared.lock();
            let read = g.store.read_position() as f64 / self.manifest.chunks.max(1) as f64;
            let map = if pieces { g.store.piece_map(crate::player::screen::PIECE_BINS) } else { Vec::new() };
            (g.store.held_bytes(), map, read)
        };
        JoinSnapshot {
            down_bps: self.down_bps,
            buffered_bytes,
            received_chunks: self.received,
            duplicate_chunks: self.duplicates,
            chunks: self.manifest.chunks,
            position_ms: (p.position().max(0) / 1000) as u64,
            playing: p.playing(),
            quality: self.levels.playing().to_string(),
            quality_next: self.levels.next(),
            frame_ms: p.frame_pts().map(|t| (t.max(0) / 1000) as u64),
            drift_ms: p.drift().map(|d| d / 1000),
            buffering: p.buffering(),
            sound: p.sound_stats(),
            mpv: self.mpv_status.map(|m| m.at(Instant::now())),
            path: self.path.clone(),
            t_ms: crate::output::headless::now_ms(),
            room_playing: p.room_wants_playing(),
            waiting: p.waiting().to_vec(),
            quality_choice: self.levels.choice_name(),
            pieces,
            read_fraction,
        }
    }

    /// Shows the latest snapshot (the buffer map stays the last stats').
    fn publish(&self) {
        if let Some(s) = &self.screen {
            let now = self.snapshot(false);
            s.update(|st| st.now = JoinSnapshot { pieces: std::mem::take(&mut st.now.pieces), ..now });
        }
    }

    fn event(&self, ev: Event) {
        let _ = self.events.send(ev);
    }

    /// One connected stretch: until the link goes, the stream ends or the user quits.
    pub(super) async fn turn(&mut self, conn: &mut Connection, commands: &mut mpsc::UnboundedReceiver<Command>) -> Result<TurnEnd, JoinError> {
        self.request_more(&conn.tx);
        loop {
            // Whatever came in may have made the stores want more; a picture tick does not
            // (a reader that wants a chunk wakes the engine).
            let mut ask = true;
            let end = tokio::select! {
                _ = sleep_until_opt(self.requests_at), if self.requests_at.is_some() => None,
                item = conn.incoming.recv() => match item {
                    Some(Incoming::Chunk(b)) => self.on_chunk(b)?,
                    Some(Incoming::Control(b)) => self.on_control(&b, &conn.tx)?,
                    Some(Incoming::Closed(why)) => Some(TurnEnd::LinkLost(why)),
                    None => Some(TurnEnd::LinkLost("connection to the host lost".into())),
                },
                _ = link_failed(&conn.link) => Some(TurnEnd::LinkLost("the WebRTC connection failed".into())),
                _ = self.wake.notified() => None,
                _ = self.present.tick() => {
                    self.on_present(&conn.tx);
                    ask = false;
                    None
                }
                _ = tokio::time::sleep_until(self.cadence.poll_timeout().into()) => self.on_cadence(&conn.tx)?,
                cmd = commands.recv() => self.on_command(cmd.unwrap_or(Command::Quit), &conn.tx),
                out = recv_mpv(&mut self.mpv) => self.on_mpv(out, &conn.tx),
                msg = conn.signal.rx.recv(), if self.signal_open => {
                    self.on_signal(msg);
                    None
                }
            };
            if let Some(end) = end {
                return Ok(end);
            }
            if ask {
                self.request_more(&conn.tx);
            }
        }
    }

    /// A chunk from the host: into its store (and the saved copy), then the hash goes on.
    fn on_chunk(&mut self, b: BytesMut) -> Result<Option<TurnEnd>, JoinError> {
        let now = Instant::now();
        self.down.record(now, b.len() as u64);
        let Some(parts) = stream::decode_chunk(b, self.manifest.chunk_size)? else {
            return Err(StreamError::Invalid("only chunks belong on the chunks channel").into());
        };
        self.levels.handle_received(parts.data.len());
        if parts.space != ORIGINAL {
            // A rendition's chunk: into its store, or dropped if it was replaced.
            let Some(store) = self.levels.store_for(parts.space)? else {
                tracing::trace!("late chunk of replaced rendition {}", parts.space);
                return Ok(None);
            };
            let arrival = {
                let mut g = store.lock();
                parts.check_len(g.store.manifest().chunk_len(parts.index))?;
                g.store.handle_chunk(now, parts.index, parts.data)?
            };
            if arrival == Arrival::Duplicate {
                self.duplicates += 1;
            }
            store.arrived(arrival);
            return Ok(None);
        }
        parts.check_len(self.manifest.chunk_len(parts.index))?;
        let (index, data) = (parts.index, parts.data);
        let arrival = {
            let mut g = self.shared.lock();
            let fresh = !g.store.seen(index);
            if let Some(f) = &mut self.save
                && fresh
            {
                f.write(index, &data)?;
            }
            let arrival = g.store.handle_chunk(now, index, data)?;
            if arrival != Arrival::Duplicate && fresh {
                self.received += 1;
            }
            // Twice, or once more after eviction or a resumed copy had it: either way fetched
            // again.
            if arrival == Arrival::Duplicate || !fresh {
                self.duplicates += 1;
            }
            arrival
        };
        self.advance()?;
        self.shared.arrived(arrival);
        Ok(None)
    }

    /// A control message from the host.
    fn on_control(&mut self, b: &[u8], tx: &Tx) -> Result<Option<TurnEnd>, JoinError> {
        match stream::decode_from(b, Role::Host, Some(&self.manifest))? {
            Message::StreamEnd { reason } => return Ok(Some(TurnEnd::StreamEnd(reason))),
            Message::Pong { client_us, host_us } => {
                self.playback.handle_pong(client_us as Micros, host_us as Micros);
                self.steer_mpv();
            }
            Message::State { playing, position_us, at_host_us, rate_milli, seq, waiting } => {
                let state = MediaState { playing, position_us: position_us as Micros, at_host_us: at_host_us as Micros, rate_milli, seq };
                self.playback.handle_state(state, waiting);
                self.steer_mpv();
            }
            Message::Roster { peers } => {
                if let Some(s) = &self.screen {
                    let me = self.opts.name.as_str();
                    let list = peers
                        .into_iter()
                        .filter(|p| p.name != me)
                        .map(|p| (p.name, format!("{} {}", if p.buffering { "buffering" } else { "watching" }, p.level)))
                        .collect();
                    s.update(|st| st.peers = list);
                }
            }
            Message::Notice { text } => {
                if let Some(s) = &self.screen {
                    s.update(|st| st.message = Some(text.clone()));
                }
                self.event(Event::Error { message: format!("host: {text}") });
            }
            Message::QualityChange { level, space, first_us, produced, done, granted } => {
                let news = RenditionNews { level, space, first_us, produced, done, granted };
                for m in self.levels.handle_quality_change(news, &mut self.playback)? {
                    tx.send(&m);
                }
            }
            Message::LevelRefused { level, reason } => {
                self.levels.handle_refused(&level, Instant::now());
                self.event(Event::Error { message: format!("quality {level}: {reason}") });
                if let Some(s) = &self.screen {
                    s.update(|st| st.message = Some(format!("{level}: {reason}")));
                }
                self.publish();
            }
            Message::Hello { .. } => {}
            _ => return Err(StreamError::Invalid("a message only a participant sends").into()),
        }
        Ok(None)
    }

    fn steer_mpv(&self) {
        if let Some(m) = &self.mpv {
            m.set_clock(self.playback.room_view());
        }
    }

    /// Every few milliseconds: the picture, switches, seeks, the view, reports on changes.
    fn on_present(&mut self, tx: &Tx) {
        let result = self.playback.tick();
        let now = Instant::now();
        if let Some(msgs) = self.levels.after_tick(&mut self.playback, now) {
            if let Some(s) = &self.screen {
                s.attach_queue(self.playback.queue());
            }
            msgs.iter().for_each(|m| tx.send(m));
        }
        if let Some(t) = self.playback.take_seek() {
            self.levels.handle_seek(t, now).iter().for_each(|m| tx.send(m));
        }
        let room_us = self.playback.room_position();
        self.levels.drive(&mut self.playback, room_us, now).iter().for_each(|m| tx.send(m));
        self.show(!matches!(result, Ok(None)));
        match result {
            Err(e) => {
                // Not fatal: the bytes still arrive (and --save still keeps them).
                self.event(Event::Error { message: format!("cannot play {}: {e}", self.manifest.name) });
                self.report(tx);
            }
            Ok(Some(_)) => {
                self.event(state_event(&self.playback));
                self.report(tx);
            }
            Ok(None) => {}
        }
    }

    /// The newest frame, and every tenth tick (or on a change) the position and state.
    fn show(&mut self, changed: bool) {
        let Some(s) = &self.screen else { return };
        if let Some(f) = self.playback.take_new_frame() {
            s.set_frame(f);
        }
        self.presents += 1;
        if self.presents.is_multiple_of(10) || changed {
            self.publish();
        }
    }

    /// Pings and stats, as the cadence says.
    fn on_cadence(&mut self, tx: &Tx) -> Result<Option<TurnEnd>, JoinError> {
        for due in self.cadence.handle_timeout(Instant::now()) {
            match due {
                Due::Ping => tx.send(&Message::Ping { client_us: self.playback.now().max(0) as u64 }),
                Due::Stats => self.on_stats(tx)?,
            }
        }
        Ok(None)
    }

    /// Once a second: the saved copy's checkpoint, request timeouts, the quality sample, stats.
    fn on_stats(&mut self, tx: &Tx) -> Result<(), JoinError> {
        let now = Instant::now();
        if let Some(f) = self.save.as_mut() {
            f.checkpoint()?;
        }
        for s in self.levels.all_stores() {
            s.lock().store.handle_timeout(now);
        }
        self.levels.sample(now, self.playback.buffering() && self.playback.room_wants_playing());
        self.down_bps = self.down.rate(now) as u64;
        let snap = self.snapshot(self.screen.is_some());
        if let Some(s) = &self.screen {
            let now = snap.clone();
            s.update(|st| {
                st.sample_down(now.down_bps);
                st.now = now;
            });
        }
        self.event(Event::JoinStats(Box::new(snap)));
        if self.cadence.report_due(now) {
            self.report(tx);
        }
        Ok(())
    }

    /// A command from stdin, the view or mpv.
    fn on_command(&mut self, cmd: Command, tx: &Tx) -> Option<TurnEnd> {
        match cmd {
            Command::Quit => return Some(TurnEnd::Quit),
            Command::Quality(q) => self.choose(&q),
            Command::DownloadLimit(limit) => {
                tracing::info!("download limit now {limit} B/s");
                self.levels.set_download_limit(limit);
            }
            c => send_command(tx, &self.playback, c),
        }
        None
    }

    fn choose(&mut self, q: &str) {
        if let Some(why) = self.fixed_high.filter(|_| q != "high") {
            return self.event(Event::Error { message: format!("quality {q}: staying at high, {why}") });
        }
        if let Err(e) = self.levels.choose(Choice::parse(q)) {
            self.event(Event::Error { message: format!("quality {q}: {e}") });
        }
        self.publish();
    }

    fn on_mpv(&mut self, out: MpvOut, tx: &Tx) -> Option<TurnEnd> {
        match out {
            MpvOut::Command(c) => send_command(tx, &self.playback, c),
            MpvOut::Status(st) => self.mpv_status = Some(st),
            MpvOut::Exited(why) => {
                tracing::info!("{why}");
                self.event(Event::Error { message: format!("{why}; leaving the room") });
                return Some(TurnEnd::Quit);
            }
        }
        None
    }

    /// Signaling is only needed to set up; once connected, its loss is not fatal.
    fn on_signal(&mut self, msg: Option<crate::protocol::signal::ServerMsg>) {
        match msg {
            Some(crate::protocol::signal::ServerMsg::Error { message, .. }) => tracing::info!("signaling: {message}"),
            Some(_) => {}
            None => {
                tracing::info!("signaling connection closed; the WebRTC link carries on");
                self.signal_open = false;
            }
        }
    }

    /// Back on a new link: the host knows nothing of what was asked on the old one.
    pub(super) fn reconnected(&mut self) {
        let now = Instant::now();
        for s in self.levels.all_stores() {
            s.lock().store.take_in_flight(now);
        }
        self.levels.reconnected();
        self.signal_open = true;
        self.cadence.reconnected(now);
        self.event(Event::Reconnected { held_bytes: self.shared.lock().store.held_bytes() });
    }

    fn report(&mut self, tx: &Tx) {
        let p = &self.playback;
        tx.send(&Message::Report {
            position_ms: (p.position().max(0) / 1000) as u64,
            buffered_bytes: self.shared.lock().store.held_bytes(),
            down_bps: self.down.rate(Instant::now()) as u64,
            buffering: p.buffering(),
            rtt_ms: p.rtt_ms(),
            seq: p.seq(),
            drift_ms: p.drift().map(|d| d / 1000),
        });
        self.cadence.reported(Instant::now());
    }

    /// Sends what the stores the picture reads want to ask for; notes when the download limit
    /// lets the next request go, if it holds some back.
    fn request_more(&mut self, tx: &Tx) {
        let mut ready_at: Option<Instant> = None;
        for (space, shared) in self.levels.live_stores() {
            let requests: Vec<_> = {
                let mut g = shared.lock();
                let now = Instant::now();
                let requests = std::iter::from_fn(|| g.store.poll_request(now)).collect();
                if let Some(t) = g.store.request_ready_at(now) {
                    ready_at = Some(ready_at.map_or(t, |r| r.min(t)));
                }
                requests
            };
            for req in requests {
                tracing::trace!("request space {space}: {:?} {:?}", req.priority, req.chunks);
                tx.send(&Message::Request { space, chunks: req.chunks, priority: req.priority });
            }
        }
        self.requests_at = ready_at;
    }

    /// Hashes the file in order as far as it is held (or saved); reports completion with the
    /// file's sha256 once every byte has been through.
    fn advance(&mut self) -> Result<(), JoinError> {
        let mut g = self.shared.lock();
        let (store, cursor, chunks) = (&mut g.store, &mut self.cursor, self.manifest.chunks);
        let mut buf = Vec::new();
        while cursor.next < chunks {
            if let Some(data) = store.get(cursor.next) {
                cursor.hasher.update(data);
            } else if let Some(f) = self.save.as_ref()
                && store.seen(cursor.next)
            {
                // Evicted from memory, but on disk.
                buf.resize(self.manifest.chunk_len(cursor.next).unwrap_or(0), 0);
                f.file().read_exact_at(&mut buf, cursor.next as u64 * self.manifest.chunk_size as u64)?;
                cursor.hasher.update(&buf);
            } else {
                break;
            }
            cursor.next += 1;
        }
        if !self.opts.playback {
            // Without a player, the in-order hash is the reader. It never marks the next chunk
            // critical: that chunk is normally already on its way, and a critical re-request
            // makes the host send it again (it halved bench throughput); lost requests time
            // out and repeat.
            store.set_read_position(cursor.next);
        }
        drop(g);
        if self.cursor.next == chunks && !self.cursor.done {
            self.cursor.done = true;
            let sha256 = hex::encode(std::mem::take(&mut self.cursor.hasher).finalize());
            self.event(Event::Complete { sha256, size: self.manifest.size, seconds: self.started.elapsed().as_secs_f64() });
            if let Some(f) = self.save.as_mut() {
                f.finish();
            }
        }
        Ok(())
    }

    /// The end: every store closed, decoders stopped, the view closed, the copy checkpointed.
    pub(super) async fn finish(mut self) -> color_eyre::Result<()> {
        for s in self.levels.all_stores() {
            s.close();
        }
        let mut playback = self.playback;
        tokio::task::spawn_blocking(move || playback.stop()).await?;
        tracing::info!("playback stopped");
        if let Some(s) = &self.screen {
            s.close();
        }
        if let Some(f) = self.save.as_mut() {
            f.checkpoint()?;
        }
        Ok(())
    }

    /// Tells what the host ended with.
    pub(super) fn ended(&self, end: &JoinEnd) {
        if let JoinEnd::StreamEnd(reason) = end {
            self.event(Event::StreamEnd { reason: reason.clone() });
        }
    }
}

impl TurnEnd {
    /// The join's end, or the reason to reconnect.
    pub(super) fn outcome(self) -> Result<JoinEnd, String> {
        match self {
            TurnEnd::Quit => Ok(JoinEnd::Quit),
            TurnEnd::StreamEnd(r) => Ok(JoinEnd::StreamEnd(r)),
            TurnEnd::LinkLost(why) => Err(why),
        }
    }
}

/// What `--save` held from an earlier run: marked on disk, and said.
fn restore(shared: &SharedStore, save: Option<&SaveFile>, saved: &[u32], manifest: &Manifest, events: &mpsc::UnboundedSender<Event>) {
    if let Some(s) = save {
        let mut g = shared.lock();
        g.disk = Some(s.file().clone());
        for &ix in saved {
            g.store.mark_on_disk(ix);
        }
    }
    if !saved.is_empty() {
        let bytes = saved.iter().map(|&ix| manifest.chunk_len(ix).unwrap_or(0) as u64).sum();
        let _ = events.send(Event::Resumed { chunks: saved.len() as u32, bytes });
    }
}

/// A playback command from stdin, the view or mpv, sent to the host.
fn send_command(tx: &Tx, playback: &Playback, c: Command) {
    let wire = match c {
        Command::Play => stream::Command::Play,
        Command::Pause => stream::Command::Pause,
        Command::SeekTo(s) => stream::Command::Seek((s * 1e6) as u64),
        Command::SeekBy(d) => {
            let here = playback.room_position().unwrap_or_else(|| playback.position());
            stream::Command::Seek((here + (d * 1e6) as Micros).max(0) as u64)
        }
        // Handled by the session.
        Command::Quality(_) | Command::DownloadLimit(_) | Command::Quit => return,
        Command::Approve(_) | Command::Deny(_) => return tracing::info!("approve/deny are for a host"),
    };
    tx.send(&Message::Command(wire));
}

async fn recv_mpv(mpv: &mut Option<Mpv>) -> MpvOut {
    match mpv {
        Some(m) => m.out.recv().await.unwrap_or(MpvOut::Exited("mpv driver stopped".into())),
        None => std::future::pending().await,
    }
}

fn state_event(playback: &Playback) -> Event {
    Event::State {
        playing: playback.playing(),
        position_ms: (playback.position().max(0) / 1000) as u64,
        buffering: playback.buffering(),
        waiting: playback.waiting().to_vec(),
        seq: playback.seq(),
        t_ms: crate::output::headless::now_ms(),
    }
}
