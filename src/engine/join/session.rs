//! One participant's time in the room, across reconnections, at the edge: the core (behind
//! the lock its decoders read through), the decoders, the disk thread (the saved copy and the
//! in-order hash), the view and mpv. [`Session::turn`] waits for the next thing, hands it to
//! the core, and carries out what the core says; it decides nothing. Messages to the host are
//! queued (`Tx`), and chunks to the disk thread ([`Disk`]), never awaited; a lost link ends the
//! turn with a reason ([`TurnEnd`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use tokio::sync::mpsc;

use super::connect::{Connection, Incoming, Reconnected, Setup, Tx, close_link, connect, link_failed};
use super::disk::{CopyReader, Disk, DiskCopy, News, Pending};
use super::relays::{RelayNews, Relays};
use super::save::SaveFile;
use super::{JoinEnd, JoinOptions};
use crate::core::buffer::StoreConfig;
pub use crate::core::participant::TurnEnd;
use crate::core::participant::{EdgeFacts, ParticipantConfig, ParticipantCore, ParticipantError, ParticipantOutput, RelayConfig, keeps_original};
use crate::core::quality::Level;
use crate::engine::{Command, Event, sleep_until_opt};
use crate::media::store_source::{ReaderCancel, SharedStore};
use crate::net::peer::{IceConfig, Reach};
use crate::player::mpv::{Mpv, MpvOut, MpvStatus};
use crate::player::playback::{Playback, Waker};
use crate::player::range_server::RangeServer;
use crate::player::screen::{PIECE_BINS, Screen};
use crate::protocol::identity::HostId;
use crate::protocol::stream::{Manifest, ORIGINAL, Space};

/// Why a participant stops with an error.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// The host broke the protocol.
    #[error(transparent)]
    Core(#[from] ParticipantError),
    /// `--save`'s copy could not be written or read.
    #[error("the saved copy: {0}")]
    Save(#[from] std::io::Error),
}

/// The participant's core, shared with the readers of its stores and the disk thread.
pub(super) type Core = SharedStore<ParticipantCore>;

/// What woke the driver.
enum Input {
    Timeout,
    Chunk(BytesMut),
    Control(BytesMut),
    Command(Command),
    /// A reader or a decoder has news.
    Wake,
    /// So has the disk thread.
    Disk(News),
    /// So has a relay link.
    Relay(RelayNews),
}

/// The participant's edge.
pub(super) struct Session {
    core: Arc<Core>,
    playback: Playback,
    decodes: bool,
    /// The decoders' readers, by the space they read.
    readers: BTreeMap<Space, ReaderCancel<ParticipantCore>>,
    disk: Disk,
    /// Links to neighbours (issue 19).
    relays: Relays,
    events: mpsc::UnboundedSender<Event>,
    screen: Option<Arc<Screen>>,
    mpv: Option<Mpv>,
    mpv_status: Option<MpvStatus>,
    /// mpv said something new since the view last got a snapshot.
    mpv_news: bool,
    _range_server: Option<RangeServer>,
    wake: Arc<tokio::sync::Notify>,
    signal_open: bool,
    /// What the core said before there was a link to say it on (its first requests).
    deferred: Vec<ParticipantOutput>,
    /// The path that carries the link (for stats).
    pub path: Option<crate::net::path::Path>,
}

/// The core's configuration from the command line's options.
fn core_config(opts: &JoinOptions, manifest: &Manifest, host_key: HostId) -> ParticipantConfig {
    let saves = opts.save.is_some();
    let ladder = manifest.levels.iter().filter_map(|name| crate::media::transcode::level(name).map(|r| Level { name: name.clone(), bps: r.bps() })).collect();
    ParticipantConfig {
        name: opts.name.clone(),
        decodes: opts.playback,
        keeps_original: keeps_original(opts.playback, opts.mpv.is_some(), saves),
        quality: opts.quality.clone(),
        store: StoreConfig { capacity: opts.buffer, fill_behind: saves, download_limit: opts.download_limit, on_disk: saves, ..StoreConfig::default() },
        ladder,
        host: Some((host_key, opts.link.room.clone())),
        // Without relaying this side declines introductions (`RelayBye`), and the host
        // serves it everything.
        relay: opts.relay.map(|limit_bps| RelayConfig {
            key: Arc::new(opts.guest.key_for(&opts.link.room)),
            limit_bps,
            digest: crate::protocol::hashes::chunk_hash,
        }),
    }
}

impl Session {
    /// Sets up the core, the saved copy, the decoders, the view and mpv for `manifest`.
    pub(super) async fn start(opts: JoinOptions, manifest: Manifest, host_key: HostId, events: mpsc::UnboundedSender<Event>) -> color_eyre::Result<Session> {
        let (save, saved) = match &opts.save {
            // A copy an earlier run left half-way is kept: what it holds is read from disk,
            // not fetched again (see `save`).
            Some(path) => {
                let (s, held) = SaveFile::open(path, &manifest, opts.force).map_err(|e| color_eyre::eyre::eyre!("cannot write {}: {e}", path.display()))?;
                (Some(s), held)
            }
            None => (None, vec![]),
        };
        let now = Instant::now();
        let mut core = ParticipantCore::new(now, manifest.clone(), core_config(&opts, &manifest, host_key), &saved);
        core.handle_wall_clock(now, crate::output::headless::now_ms());
        let wake = Arc::new(tokio::sync::Notify::new());
        let waker: Waker = {
            let wake = wake.clone();
            Arc::new(move || wake.notify_one())
        };
        // Chunks handed to the disk thread and not written yet are read from memory.
        let pending = Arc::new(Pending::default());
        let on_disk = save.as_ref().map(|s| {
            let reader = CopyReader { file: s.file().clone(), pending: pending.clone(), chunk_size: manifest.chunk_size as u64 };
            Arc::new(reader) as Arc<dyn crate::media::store_source::OnDisk>
        });
        let core = {
            let w = waker.clone();
            SharedStore::new(core, on_disk, move || w())
        };
        let disk = Disk::start(core.clone(), save.map(|s| Box::new(s) as Box<dyn DiskCopy>), pending, now)?;
        let mut readers = BTreeMap::new();
        let playback = if opts.playback {
            let (reader, cancel) = core.space_reader(ORIGINAL);
            readers.insert(ORIGINAL, cancel);
            // With mpv the view shows the status only: no pixels for anyone.
            let pictures = matches!(opts.render, super::Render::Screen(_)) && opts.mpv.is_none();
            Playback::start(Box::new(reader), pictures, opts.sound && opts.mpv.is_none(), waker)
        } else {
            Playback::inert()
        };
        // mpv reads the store over local HTTP and follows the same room clock.
        let (range_server, mpv) = match &opts.mpv {
            Some(args) => {
                let Some(format) = crate::player::mpv::lavf_format(&manifest.container) else {
                    color_eyre::eyre::bail!(
                        "--player mpv plays MP4, MKV, WebM, MPEG-TS, AVI and FLV; the host's file is {:?}: use the built-in player",
                        manifest.container
                    );
                };
                let server = crate::player::range_server::start(core.clone()).await?;
                let mpv = Mpv::spawn(&server.url, format, args).await?;
                tracing::info!("mpv playing the room's file as {format}");
                (Some(server), Some(mpv))
            }
            None => (None, None),
        };
        let mut s = Session {
            screen: opts.render.screen().cloned(),
            decodes: opts.playback,
            core,
            playback,
            readers,
            disk,
            relays: Relays::new(IceConfig::new(Reach::of_host(&opts.link.host), opts.ice_addr.as_deref(), &opts.nat)),
            events,
            mpv,
            mpv_status: None,
            mpv_news: false,
            _range_server: range_server,
            wake,
            signal_open: true,
            deferred: Vec::new(),
            path: None,
        };
        // What the core has to say at once (a resumed copy, the quality chosen) is said now,
        // before anything the hash finds; its requests wait for the link.
        for out in std::iter::from_fn(|| s.core.lock().poll_output()) {
            match out {
                ParticipantOutput::Event(e) => s.event(e),
                out => s.deferred.push(out),
            }
        }
        s.show_start(&opts, &manifest);
        // A resumed copy may already hold a run of chunks from the start (or all of them).
        s.disk.advance();
        Ok(s)
    }

    fn show_start(&self, opts: &JoinOptions, manifest: &Manifest) {
        let Some(s) = &self.screen else { return };
        s.attach_queue(self.playback.queue());
        let now = self.snapshot(Instant::now(), true);
        s.update(|st| {
            st.now = now;
            st.name = opts.name.clone();
            st.file = manifest.name.clone();
            st.duration_ms = manifest.duration_ms;
            st.levels = manifest.levels.clone();
            st.link = opts.link.to_string();
        });
    }

    /// The participant now (the core builds it), with what only the edge knows.
    fn snapshot(&self, now: Instant, pieces: bool) -> crate::core::api::JoinSnapshot {
        let edge = EdgeFacts { sound: self.playback.sound_stats(), mpv: self.mpv_status, path: self.path.clone() };
        self.core.lock().snapshot(now, if pieces { PIECE_BINS } else { 0 }, edge)
    }

    /// Shows the latest snapshot (the buffer map stays the last stats').
    fn publish(&self, now: Instant) {
        if let Some(s) = &self.screen {
            let snap = self.snapshot(now, false);
            s.update(|st| st.now = crate::core::api::JoinSnapshot { pieces: std::mem::take(&mut st.now.pieces), ..snap });
        }
    }

    /// One connected stretch: until the link goes, the stream ends or the user quits.
    pub(super) async fn turn(&mut self, conn: &mut Connection, commands: &mut mpsc::UnboundedReceiver<Command>) -> Result<TurnEnd, JoinError> {
        let mut input = Input::Wake;
        loop {
            if let Some(end) = self.handle(input, &conn.tx)? {
                return Ok(end);
            }
            let deadline = self.core.lock().poll_timeout().map(|(t, _)| t);
            input = tokio::select! {
                _ = sleep_until_opt(deadline) => Input::Timeout,
                // While the disk is behind, the host waits (see `disk`).
                item = conn.incoming.recv(), if self.disk.has_room() => match item {
                    Some(Incoming::Chunk(b)) => Input::Chunk(b),
                    Some(Incoming::Control(b)) => Input::Control(b),
                    Some(Incoming::Closed(why)) => return Ok(TurnEnd::LinkLost(why)),
                    None => return Ok(TurnEnd::LinkLost("connection to the host lost".into())),
                },
                _ = link_failed(&conn.link) => return Ok(TurnEnd::LinkLost("the WebRTC connection failed".into())),
                _ = self.wake.notified() => Input::Wake,
                // Behind the same gate as the host's chunks.
                news = self.relays.next(), if self.disk.has_room() => Input::Relay(news),
                // Its end without a word is a thread that died (a panic): a failure too.
                news = self.disk.news() => Input::Disk(news.unwrap_or_else(|| News::Failed(std::io::Error::other("the disk thread stopped")))),
                cmd = commands.recv() => Input::Command(cmd.unwrap_or(Command::Quit)),
                out = recv_mpv(&mut self.mpv) => self.on_mpv(out),
                msg = conn.signal.rx.recv(), if self.signal_open => {
                    self.on_signal(msg);
                    Input::Wake
                }
            };
        }
    }

    /// Hands `input` to the core (the decoders' view with it), then carries out what it says.
    fn handle(&mut self, input: Input, tx: &Tx) -> Result<Option<TurnEnd>, JoinError> {
        let now = Instant::now();
        let command = matches!(input, Input::Command(_));
        let mut outs = Vec::new();
        {
            let shared = self.core.clone();
            let mut core = shared.lock();
            match input {
                Input::Timeout => core.handle_timeout(now),
                Input::Chunk(b) => {
                    core.handle_chunk(now, b)?;
                    self.disk.advance();
                }
                Input::Control(b) => {
                    core.handle_control(now, &b)?;
                    // The host's hash may be what the check waited for.
                    self.disk.advance();
                }
                Input::Command(c) => core.handle_command(now, c),
                Input::Wake => core.handle_wake(now),
                Input::Disk(news) => self.disk_news(&mut core, news)?,
                Input::Relay(news) => {
                    self.relay_news(&mut core, now, news);
                    self.disk.advance();
                }
            }
            if self.decodes {
                core.handle_picture(now, &self.playback.view());
            }
            self.collect(&mut core, &mut outs)?;
        }
        // mpv's status (every 200 ms) shows at once, not with the next stats.
        let mut show = command || std::mem::take(&mut self.mpv_news);
        let mut end = None;
        for out in std::mem::take(&mut self.deferred).into_iter().chain(outs) {
            show |= matches!(out, ParticipantOutput::Event(_) | ParticipantOutput::Notice(_) | ParticipantOutput::Roster(_) | ParticipantOutput::RoomClock(_));
            // Everything decided goes out; the end, once all of it has.
            end = end.or(self.carry_out(out, tx, now)?);
        }
        self.show(now, show);
        Ok(end)
    }

    /// Takes the core's outputs; hands the saved copy's chunks to the disk thread at once
    /// (under the lock, so a reader the core sends to the disk for one finds it pending).
    fn collect(&mut self, core: &mut ParticipantCore, outs: &mut Vec<ParticipantOutput>) -> Result<(), JoinError> {
        while let Some(out) = core.poll_output() {
            match out {
                ParticipantOutput::Save { index, data } => self.disk.write(index, data)?,
                out => outs.push(out),
            }
        }
        Ok(())
    }

    /// What a relay link's task says, to the core.
    fn relay_news(&mut self, core: &mut ParticipantCore, now: Instant, news: RelayNews) {
        match news {
            RelayNews::LocalSdp(link, sdp) => core.handle_relay_local_sdp(now, link, sdp),
            RelayNews::Up(link, out) => {
                if self.relays.up(link, out) {
                    core.handle_relay_up(now, link);
                }
            }
            RelayNews::Control(link, b) => core.handle_relay_control(now, link, &b),
            RelayNews::Chunk(link, b) => core.handle_relay_chunk(now, link, b),
            RelayNews::Sent(link, bytes) => core.handle_relay_sent(now, link, bytes),
            RelayNews::Gone(link, why) => {
                self.relays.close(link);
                core.handle_relay_gone(now, link, &why);
            }
        }
    }

    /// What the disk thread found: how far the hash got goes to the core; the verdict and a
    /// failure to the user.
    fn disk_news(&self, core: &mut ParticipantCore, news: News) -> Result<(), JoinError> {
        match news {
            News::Verified(next) => core.handle_verified(next),
            News::Verdict(v) => v.events().into_iter().for_each(|e| self.event(e)),
            News::Failed(e) => return Err(JoinError::Save(e)),
            // The loop looks at the link again.
            News::Room => {}
        }
        Ok(())
    }

    /// Does what the core said.
    fn carry_out(&mut self, out: ParticipantOutput, tx: &Tx, now: Instant) -> Result<Option<TurnEnd>, JoinError> {
        match out {
            ParticipantOutput::Send(m) => tx.send(&m),
            ParticipantOutput::Event(e) => self.event(e),
            ParticipantOutput::Picture(a) => {
                let switched = a == crate::core::participant::PictureAction::Switch;
                self.playback.apply(a);
                if let (true, Some(s)) = (switched, &self.screen) {
                    s.attach_queue(self.playback.queue());
                }
            }
            ParticipantOutput::StartDecoder { space, shift } => {
                let (reader, cancel) = self.core.space_reader(space);
                self.readers.insert(space, cancel);
                let from = self.core.lock().presenter().position(now);
                self.playback.switch_source(Box::new(reader), shift, from);
            }
            ParticipantOutput::AbandonIncoming => self.playback.abandon_switch(),
            ParticipantOutput::StopReader { space } => {
                if let Some(c) = self.readers.remove(&space) {
                    c.cancel();
                }
            }
            ParticipantOutput::Wake => self.core.arrived(),
            ParticipantOutput::Save { .. } => {}
            ParticipantOutput::RoomClock(view) => {
                if let Some(m) = &self.mpv {
                    m.set_clock(view);
                }
            }
            ParticipantOutput::Stats => self.on_stats(),
            ParticipantOutput::Roster(list) => self.view(|st| st.peers = list),
            ParticipantOutput::Notice(text) => self.view(|st| st.message = Some(text)),
            ParticipantOutput::End(end) => return Ok(Some(end)),
            // Only between turns (see `back_in`).
            ParticipantOutput::Connect | ParticipantOutput::GiveUp(_) => {}
            ParticipantOutput::RelayOpen { link, offerer, name } => {
                tracing::debug!(link, "linking with {name}");
                self.relays.open(link, offerer);
            }
            ParticipantOutput::RelayRemoteSdp { link, sdp } => self.relays.remote_sdp(link, sdp),
            ParticipantOutput::RelaySend { link, msg } => self.relays.send(link, &msg),
            ParticipantOutput::RelayChunk { link, space, index, data } => self.relays.send_chunk(link, space, index, &data),
            ParticipantOutput::RelayClose { link } => self.relays.close(link),
        }
        Ok(None)
    }

    fn view(&self, f: impl FnOnce(&mut crate::player::screen::Status)) {
        if let Some(s) = &self.screen {
            s.update(f);
        }
    }

    /// The newest frame to the view, and the snapshot with it or after a change.
    fn show(&mut self, now: Instant, changed: bool) {
        let Some(s) = &self.screen else { return };
        let frame = self.playback.take_new_frame();
        let new = frame.is_some();
        if let Some(f) = frame {
            s.set_frame(f);
        }
        if new || changed {
            self.publish(now);
        }
    }

    /// Once a second: the saved copy's checkpoint, the stats (with the buffer map for a view).
    /// The position and `t_ms` are read at one moment, whatever this pass was held up by.
    fn on_stats(&mut self) {
        self.disk.checkpoint();
        let now = Instant::now();
        self.core.lock().handle_wall_clock(now, crate::output::headless::now_ms());
        let snap = self.snapshot(now, self.screen.is_some());
        if let Some(s) = &self.screen {
            let now = snap.clone();
            s.update(|st| {
                st.sample_down(now.down_bps);
                st.now = now;
            });
        }
        self.event(Event::JoinStats(Box::new(snap)));
    }

    fn event(&self, ev: Event) {
        let _ = self.events.send(ev);
    }

    fn on_mpv(&mut self, out: MpvOut) -> Input {
        match out {
            MpvOut::Command(c) => Input::Command(c),
            MpvOut::Status(st) => {
                self.mpv_status = Some(st);
                self.mpv_news = true;
                Input::Wake
            }
            MpvOut::Exited(why) => {
                tracing::info!("{why}");
                self.event(Event::Error { message: format!("{why}; leaving the room") });
                Input::Command(Command::Quit)
            }
        }
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

    /// After the link dropped (`why`): attempts to get back in when the core says, until it
    /// is back (what the core says then goes out on the new link with the next turn), the
    /// host ended the stream, or the core gives up.
    pub(super) async fn back_in(&mut self, opts: &JoinOptions, why: String) -> color_eyre::Result<Reconnected> {
        self.core.lock().handle_link_lost(Instant::now(), why);
        loop {
            let outs: Vec<_> = std::iter::from_fn(|| self.core.lock().poll_output()).collect();
            for out in outs {
                match out {
                    ParticipantOutput::Event(e) => self.event(e),
                    // Relay links go with the host link, at once (the host introduces again).
                    ParticipantOutput::RelayClose { link } => self.relays.close(link),
                    ParticipantOutput::GiveUp(why) => color_eyre::eyre::bail!(why),
                    ParticipantOutput::Connect => match connect(opts).await {
                        Ok(c) if self.core.lock().handle_connected_to(Instant::now(), &c.manifest) => {
                            self.signal_open = true;
                            return Ok(Reconnected::Again(c));
                        }
                        Ok(c) => close_link(&c.link).await,
                        Err(Setup::Ended(end)) => return Ok(Reconnected::Ended(end)),
                        Err(Setup::Final(e)) => return Err(e),
                        Err(Setup::Retry(e) | Setup::Stalled(e)) => self.core.lock().handle_connect_failed(Instant::now(), &e.to_string()),
                    },
                    out => self.deferred.push(out),
                }
            }
            let deadline = self.core.lock().poll_timeout().map(|(t, _)| t);
            sleep_until_opt(deadline).await;
            self.core.lock().handle_timeout(Instant::now());
        }
    }

    /// The end: the copy written and checkpointed (and the verdict, if the last chunks
    /// brought it), what the host ended with, then every read stopped, decoders stopped, the
    /// view closed.
    pub(super) async fn finish(self, end: &JoinEnd) -> color_eyre::Result<()> {
        let mut failed = None;
        for news in self.disk.close().await {
            match news {
                News::Verdict(v) => v.events().into_iter().for_each(|e| drop(self.events.send(e))),
                News::Failed(e) => failed = Some(JoinError::Save(e)),
                News::Verified(_) | News::Room => {}
            }
        }
        if let JoinEnd::StreamEnd(reason) = end {
            let _ = self.events.send(Event::StreamEnd { reason: reason.clone() });
        }
        self.core.close();
        let mut playback = self.playback;
        tokio::task::spawn_blocking(move || playback.stop()).await?;
        tracing::info!("playback stopped");
        if let Some(s) = &self.screen {
            s.close();
        }
        failed.map_or(Ok(()), |e| Err(e.into()))
    }
}

/// The join's end, or the reason to reconnect.
pub(super) fn outcome(end: TurnEnd) -> Result<JoinEnd, String> {
    {
        match end {
            TurnEnd::Quit => Ok(JoinEnd::Quit),
            TurnEnd::StreamEnd(r) => Ok(JoinEnd::StreamEnd(r)),
            TurnEnd::LinkLost(why) => Err(why),
        }
    }
}

async fn recv_mpv(mpv: &mut Option<Mpv>) -> MpvOut {
    match mpv {
        Some(m) => m.out.recv().await.unwrap_or(MpvOut::Exited("mpv driver stopped".into())),
        None => std::future::pending().await,
    }
}
