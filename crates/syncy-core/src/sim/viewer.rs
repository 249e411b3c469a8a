//! A simulated participant: the real [`ParticipantCore`] (stores, presenter, level switch,
//! cadences) with a model of its decoder — frames 40 ms apart, each decoded once the chunk
//! holding its bytes is there (the bit rate taken as constant), at most eight queued, read
//! through the core as the real decoder reads (a missing chunk is wanted at once).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::api::Event;
use crate::buffer::{ChunkSource, Read, StoreConfig};
use crate::clock::Micros;
use crate::participant::{EdgeFacts, ParticipantConfig, ParticipantCore, ParticipantOutput, PictureAction, PictureView, QueueView, RelayConfig, TurnEnd};
use crate::protocol::stream::{Manifest, Message, ORIGINAL};

/// A frame at 25 fps.
const FRAME_US: Micros = 40_000;
/// Frames the decoder queues at most.
const QUEUE: usize = 8;

/// What a simulated participant went through.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ViewerStats {
    /// Times the picture froze while the room played.
    pub stalls: u32,
    /// Time spent frozen while the room played.
    pub stalled_for: Duration,
    /// Chunk bytes received (duplicates included), from the host and from neighbours.
    pub received: u64,
    /// Of those, from neighbours.
    pub relayed: u64,
    /// Of those, from the host.
    pub host: u64,
    /// When it first showed a picture.
    pub first_picture: Option<Instant>,
    /// Links made anew.
    pub reconnects: u32,
}

/// The decoder model.
struct Decoder {
    /// The next frame it decodes.
    next: Micros,
    queued: VecDeque<Micros>,
    duration: Micros,
}

impl Decoder {
    /// Decodes what the store lets it.
    fn run(&mut self, core: &mut ParticipantCore, size: u64) {
        let mut byte = [0u8; 1];
        while self.queued.len() < QUEUE && self.next < self.duration {
            let at = (self.next as u128 * size as u128 / self.duration.max(1) as u128) as u64;
            match core.read_at(ORIGINAL, at.min(size.saturating_sub(1)), &mut byte) {
                Read::Bytes(_) | Read::Disk(_) => {
                    self.queued.push_back(self.next);
                    self.next += FRAME_US;
                }
                _ => break,
            }
        }
    }

    fn seek(&mut self, to: Micros) {
        self.queued.clear();
        self.next = to.max(0) / FRAME_US * FRAME_US;
    }

    fn view(&self) -> PictureView {
        let eof = self.next >= self.duration;
        PictureView {
            current: QueueView { queued: self.queued.iter().copied().collect(), eof, ..QueueView::default() },
            incoming: None,
            frame_us: Some(FRAME_US),
        }
    }
}

/// A participant's own clock. Real machines' crystals run fast or slow by tens of parts per
/// million: this one reads `rate` seconds for each of the world's, from `epoch`. The core
/// only ever sees this clock, as a real participant only sees its own.
#[derive(Debug, Clone, Copy)]
struct LocalClock {
    epoch: Instant,
    rate: f64,
}

impl LocalClock {
    fn local(&self, world: Instant) -> Instant {
        if self.rate == 1.0 {
            return world;
        }
        self.epoch + world.saturating_duration_since(self.epoch).mul_f64(self.rate)
    }

    /// The world's instant when this clock reads `local`, rounded up (a microsecond late):
    /// woken then, the core finds its deadline passed.
    fn world(&self, local: Instant) -> Instant {
        if self.rate == 1.0 {
            return local;
        }
        self.epoch + local.saturating_duration_since(self.epoch).div_f64(self.rate) + Duration::from_micros(1)
    }
}

/// One participant.
pub struct Viewer {
    /// Its name.
    pub name: String,
    core: ParticipantCore,
    clock: LocalClock,
    decoder: Decoder,
    size: u64,
    out: VecDeque<Message>,
    /// Relay outputs, for the world to carry out.
    relay_out: VecDeque<ParticipantOutput>,
    stalled_since: Option<Instant>,
    /// What it went through.
    pub stats: ViewerStats,
    /// Notices and refusals the host sent it.
    pub notices: Vec<String>,
    /// The host ended the stream.
    pub ended: bool,
}

impl Viewer {
    /// A participant whose link came up at `now`, its clock off the world's by `ppm` parts per
    /// million.
    pub fn new(now: Instant, name: &str, manifest: Manifest, store: StoreConfig, ppm: f64, relay: Option<RelayConfig>) -> Viewer {
        let cfg = ParticipantConfig {
            name: name.into(),
            decodes: true,
            keeps_original: None,
            quality: "auto".into(),
            store,
            ladder: vec![],
            host: Some((super::host_key().public(), "sim".into())),
            relay,
        };
        let decoder = Decoder { next: 0, queued: VecDeque::new(), duration: manifest.duration_ms.unwrap_or(0) as Micros * 1000 };
        let size = manifest.size;
        let mut v = Viewer {
            name: name.to_string(),
            core: ParticipantCore::new(now, manifest, cfg, &[]),
            clock: LocalClock { epoch: now, rate: 1.0 + ppm * 1e-6 },
            decoder,
            size,
            out: VecDeque::new(),
            relay_out: VecDeque::new(),
            stalled_since: None,
            stats: ViewerStats::default(),
            notices: vec![],
            ended: false,
        };
        v.pump(now);
        v
    }

    /// The next message to the host (on the control channel).
    pub fn poll_send(&mut self) -> Option<Message> {
        self.out.pop_front()
    }

    /// The next relay output (a link to open, a message or chunk to a neighbour).
    pub fn poll_relay(&mut self) -> Option<ParticipantOutput> {
        self.relay_out.pop_front()
    }

    /// This side's SDP for a relay link.
    pub fn handle_relay_local_sdp(&mut self, now: Instant, link: u32, sdp: String) {
        self.core.handle_relay_local_sdp(self.clock.local(now), link, sdp);
        self.pump(now);
    }

    /// A relay link is up.
    pub fn handle_relay_up(&mut self, now: Instant, link: u32) {
        self.core.handle_relay_up(self.clock.local(now), link);
        self.pump(now);
    }

    /// A relay link is gone.
    pub fn handle_relay_gone(&mut self, now: Instant, link: u32) {
        self.core.handle_relay_gone(self.clock.local(now), link, "the link went");
        self.pump(now);
    }

    /// A message from a neighbour.
    pub fn handle_relay_message(&mut self, now: Instant, link: u32, msg: Message) {
        self.core.handle_relay_message(self.clock.local(now), link, msg);
        self.pump(now);
    }

    /// A chunk from a neighbour.
    pub fn handle_relay_chunk(&mut self, now: Instant, link: u32, space: crate::protocol::stream::Space, index: u32, data: Bytes) {
        self.stats.relayed += data.len() as u64;
        self.stats.received += data.len() as u64;
        self.core.handle_relay_chunk_parts(self.clock.local(now), link, data.len() + 16, space, index, data);
        self.pump(now);
    }

    /// A chunk to a neighbour went out.
    pub fn handle_relay_sent(&mut self, now: Instant, link: u32, len: usize) {
        self.core.handle_relay_sent(self.clock.local(now), link, len);
        self.pump(now);
    }

    /// When it next wants to be woken.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.ended { None } else { self.core.poll_timeout().map(|(t, _)| self.clock.world(t)) }
    }

    /// A control message from the host.
    pub fn handle_control(&mut self, now: Instant, msg: Message) {
        if let Err(e) = self.core.handle_message(self.clock.local(now), msg) {
            panic!("{}: the host broke the protocol: {e}", self.name);
        }
        self.pump(now);
    }

    /// A chunk arrived on the chunks channel.
    pub fn handle_chunk(&mut self, now: Instant, index: u32, data: Bytes) {
        self.stats.received += data.len() as u64;
        self.stats.host += data.len() as u64;
        if let Err(e) = self.core.handle_chunk_parts(self.clock.local(now), data.len() + 16, ORIGINAL, index, data) {
            panic!("{}: the host sent a bad chunk: {e}", self.name);
        }
        self.pump(now);
    }

    /// Time passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.core.handle_timeout(self.clock.local(now));
        self.pump(now);
    }

    /// The decoder decodes, the presenter presents, until neither has news (a real decoder's
    /// news wakes its driver; here it is looked at at once).
    fn pump(&mut self, now: Instant) {
        for _ in 0..4 {
            self.decoder.run(&mut self.core, self.size);
            self.core.handle_picture(self.clock.local(now), &self.decoder.view());
            if !self.carry_out() {
                break;
            }
        }
        self.note_stall(now);
    }

    /// Does what the core said; whether the decoder may have more to do.
    fn carry_out(&mut self) -> bool {
        let mut again = false;
        while let Some(out) = self.core.poll_output() {
            match out {
                ParticipantOutput::Send(m) => self.out.push_back(m),
                ParticipantOutput::Picture(PictureAction::Seek(t)) => {
                    self.decoder.seek(t);
                    again = true;
                }
                ParticipantOutput::Picture(PictureAction::Pop(n)) => {
                    self.decoder.queued.drain(..n.min(self.decoder.queued.len()));
                    again = true;
                }
                ParticipantOutput::Wake => again = true,
                ParticipantOutput::Notice(text) => self.notices.push(text),
                ParticipantOutput::Event(Event::Error { message }) => tracing::debug!("{}: {message}", self.name),
                ParticipantOutput::End(TurnEnd::StreamEnd(_)) => self.ended = true,
                o @ (ParticipantOutput::RelayOpen { .. }
                | ParticipantOutput::RelayRemoteSdp { .. }
                | ParticipantOutput::RelaySend { .. }
                | ParticipantOutput::RelayChunk { .. }
                | ParticipantOutput::RelayClose { .. }) => self.relay_out.push_back(o),
                _ => {}
            }
        }
        again
    }

    fn note_stall(&mut self, now: Instant) {
        let p = self.core.presenter();
        if !p.buffering() && p.frame_pts().is_some() {
            self.stats.first_picture.get_or_insert(now);
        }
        let frozen = p.buffering() && p.clock_runs();
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

    /// Its link dropped (the world makes the attempt to get back in).
    pub fn link_lost(&mut self, now: Instant) {
        self.core.handle_link_lost(self.clock.local(now), "the link dropped".into());
        self.carry_out();
    }

    /// Back on a new link (the driver keeps the core across reconnections).
    pub fn reconnected(&mut self, now: Instant) {
        self.stats.reconnects += 1;
        let manifest = self.core.manifest().clone();
        assert!(self.core.handle_connected_to(self.clock.local(now), &manifest), "{}: back to the same file", self.name);
        self.pump(now);
    }

    /// Chunks that came twice (or again after eviction).
    pub fn duplicates(&self, now: Instant) -> u32 {
        self.core.snapshot(self.clock.local(now), 0, EdgeFacts::default()).duplicate_chunks
    }

    /// Its playback position at `now`, µs.
    pub fn position_us(&self, now: Instant) -> Micros {
        self.core.presenter().position(self.clock.local(now))
    }

    /// Local − room at `now`, once it knows the room.
    pub fn drift_us(&self, now: Instant) -> Option<Micros> {
        self.core.presenter().drift(self.clock.local(now))
    }

    /// The picture is frozen for want of data.
    pub fn buffering(&self) -> bool {
        self.core.presenter().buffering()
    }

    /// The room plays, and so does this picture.
    pub fn playing(&self) -> bool {
        self.core.presenter().playing()
    }

    /// How its relaying goes.
    pub fn relay_report(&mut self, now: Instant) -> Option<crate::protocol::stream::RelayReport> {
        let local = self.clock.local(now);
        self.core.relay_report(local)
    }

    /// The core, to look at.
    pub fn core(&self) -> &ParticipantCore {
        &self.core
    }
}
