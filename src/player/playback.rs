//! The participant's playback: the decoder thread over the chunk store, the room-clock
//! follower, and the presenter that picks the frame for the clock's position (dropping frames
//! when behind, stalling the clock when the frame is not there yet).
//!
//! The engine drives it: `handle_pong`, `handle_state`, and `tick` every few milliseconds.

use std::sync::Arc;
use std::time::Instant;

use crate::core::clock::{Follower, FollowerConfig, FollowerOutput, MediaState, Micros, OffsetEstimator};
use crate::media::avio::ByteSource;
use crate::media::decode::{self, FrameQueue, VideoFrame};
use crate::player::audio::{self, AudioClock, AudioOut, AudioQueue, ClockPoint, SoundMeter, SoundStats};

/// What the presenter noticed on a tick.
#[derive(Debug, Clone, PartialEq)]
pub enum PlaybackEvent {
    /// Frames are showing again (after a join, seek or stall), or the room's clock changed
    /// while they show.
    Showing,
    /// The picture froze: the frame for the position is not decoded yet.
    Buffering,
}

/// The room's clock as this participant sees it: enough to compute the room's position at
/// any moment (for an external player).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoomView {
    /// The room's media clock (host time).
    pub state: MediaState,
    /// host = local + offset.
    pub offset: Micros,
    /// Local clock zero.
    pub epoch: Instant,
}

impl RoomView {
    /// The room's media position now.
    pub fn position_now(&self) -> Micros {
        let local = self.epoch.elapsed().as_micros() as Micros;
        self.state.position_at(local + self.offset)
    }
}

/// Playback of one participant.
pub struct Playback {
    epoch: Instant,
    queue: Arc<FrameQueue>,
    decoder: Option<std::thread::JoinHandle<()>>,
    follower: Follower,
    offset: OffsetEstimator,
    /// A state that came before the first pong (no offset yet).
    held_state: Option<MediaState>,
    waiting: Vec<String>,
    current: Option<Arc<VideoFrame>>,
    showing: bool,
    reported_seq: Option<u64>,
    reported_playing: bool,
    new_frame: bool,
    failed: bool,
    sound: Option<AudioOut>,
    audio_clock: Arc<AudioClock>,
    meter: Arc<SoundMeter>,
    /// A decoder started on another source (a quality switch), shown from its first frame
    /// for the position on; until then the current one goes on showing.
    incoming: Option<(Arc<FrameQueue>, std::thread::JoinHandle<()>)>,
    /// The latest switch completed and not yet taken.
    switched: bool,
    /// The follower's latest seek, not yet taken (a rendition may need to restart there).
    sought: Option<Micros>,
    /// Where the decoder was last sent, until a frame from there shows.
    seek_target: Option<Micros>,
}

impl Playback {
    /// Starts decoding `source`; frames are scaled to `target` (None: not scaled, no picture).
    /// With `sound`, audio plays on the default output device when there is one.
    pub fn start(source: Box<dyn ByteSource>, target: Option<(u32, u32)>, sound: bool) -> Playback {
        let clock = AudioClock::new();
        let meter = Arc::new(SoundMeter::default());
        let (out, audio_queue) = if sound {
            match audio::open(AudioQueue::new, clock.clone(), meter.clone()) {
                Ok((out, q)) => {
                    tracing::info!("sound on the default output device at {} Hz", q.rate);
                    (Some(out), Some(q))
                }
                Err(why) => {
                    tracing::info!("no sound: {why}; picture only");
                    (None, None)
                }
            }
        } else {
            (None, None)
        };
        let queue = FrameQueue::with_audio(8, target, audio_queue);
        let decoder = decode::spawn(source, queue.clone());
        let mut p = Playback::new(queue, Some(decoder));
        p.sound = out;
        p.audio_clock = clock;
        p.meter = meter;
        p
    }

    fn new(queue: Arc<FrameQueue>, decoder: Option<std::thread::JoinHandle<()>>) -> Playback {
        Playback {
            epoch: Instant::now(),
            queue,
            decoder,
            follower: Follower::new(FollowerConfig::default()),
            offset: OffsetEstimator::new(16),
            held_state: None,
            waiting: vec![],
            current: None,
            showing: false,
            reported_seq: None,
            reported_playing: false,
            new_frame: false,
            failed: false,
            sound: None,
            audio_clock: AudioClock::new(),
            meter: Arc::new(SoundMeter::default()),
            incoming: None,
            switched: false,
            sought: None,
            seek_target: None,
        }
    }

    /// Starts decoding `source` beside the current decoder, from the current position;
    /// `shift` is the room position of the source's time zero (a rendition), `None` for the
    /// original. The picture moves over once the new decoder has the frame for the
    /// position (`take_switched` says when); a switch still under way is abandoned.
    pub fn switch_source(&mut self, source: Box<dyn ByteSource>, shift: Option<Micros>) {
        if let Some((q, _)) = self.incoming.take() {
            q.close();
        }
        let q = FrameQueue::with_shift(8, self.queue.target(), self.queue.audio(), shift);
        // Not `seek`: that would drop the sound the current decoder has queued, which plays
        // on until the picture moves over.
        q.start_at(self.position());
        let decoder = decode::spawn(source, q.clone());
        self.incoming = Some((q, decoder));
    }

    /// Gives up a switch under way (the picture stays where it is).
    pub fn abandon_switch(&mut self) {
        if let Some((q, _)) = self.incoming.take() {
            q.close();
        }
    }

    /// True once after the picture moved to the source of the latest `switch_source`.
    pub fn take_switched(&mut self) -> bool {
        std::mem::take(&mut self.switched)
    }

    /// The room position of the follower's latest seek, once.
    pub fn take_seek(&mut self) -> Option<Micros> {
        self.sought.take()
    }

    /// Moves the picture to the incoming decoder once it has the frame for `pos`.
    fn maybe_switch(&mut self, pos: Micros, frame_us: Micros) {
        let Some((q, _)) = &self.incoming else { return };
        if let Some(e) = q.error() {
            tracing::warn!("the new source does not play ({e}); staying on the current one");
            q.close();
            self.incoming = None;
            return;
        }
        // Also when the current one has failed: showing something beats showing nothing.
        let ready = q.front_pts().is_some_and(|t| t <= pos + frame_us || self.queue.error().is_some()) || (q.eof() && q.is_empty());
        if !ready {
            return;
        }
        let (q, decoder) = self.incoming.take().expect("checked");
        self.queue.close();
        // The old decoder may be blocked on a read; its source is cancelled by the engine,
        // and the thread ends on its own.
        drop(self.decoder.replace(decoder));
        self.queue = q;
        self.current = None;
        self.switched = true;
        tracing::info!("playback: switched source at {} ms", pos / 1000);
    }

    /// Playback that decodes nothing and never holds the room (a participant that only
    /// fetches, as the throughput benchmark does).
    pub fn inert() -> Playback {
        let mut p = Playback::new(FrameQueue::new(1, None), None);
        p.failed = true;
        p
    }

    /// The local clock (µs since this playback started); pings carry it.
    pub fn now(&self) -> Micros {
        self.epoch.elapsed().as_micros() as Micros
    }

    /// A pong for a ping sent at local time `sent`.
    pub fn handle_pong(&mut self, sent: Micros, host_us: Micros) {
        let now = self.now();
        self.offset.handle_pong(sent, host_us, now);
        if let (Some(state), Some(offset)) = (self.held_state.take(), self.offset.offset()) {
            self.follower.handle_state(now, state, offset);
            self.apply_outputs();
        }
    }

    /// The room's clock, once both a state and the offset are known.
    pub fn room_view(&self) -> Option<RoomView> {
        Some(RoomView { state: *self.follower.room()?, offset: self.offset.offset()?, epoch: self.epoch })
    }

    /// Round trip of the latest ping, ms.
    pub fn rtt_ms(&self) -> Option<u32> {
        self.offset.last_rtt().map(|r| (r / 1000) as u32)
    }

    /// The room's clock changed.
    pub fn handle_state(&mut self, state: MediaState, waiting: Vec<String>) {
        self.waiting = waiting;
        match self.offset.offset() {
            Some(offset) => {
                let now = self.now();
                self.follower.handle_state(now, state, offset);
                self.apply_outputs();
            }
            None => self.held_state = Some(state),
        }
    }

    fn apply_outputs(&mut self) {
        while let Some(out) = self.follower.poll_output() {
            match out {
                FollowerOutput::Seek(t) => {
                    tracing::debug!("playback: seek to {} ms", t / 1000);
                    self.queue.seek(t);
                    if let Some((q, _)) = &self.incoming {
                        q.seek(t);
                    }
                    self.current = None;
                    self.sought = Some(t);
                    self.seek_target = Some(t);
                }
            }
        }
    }

    /// Presents what is due; returns what changed. Call every few milliseconds. A decoder
    /// failure is returned once; after it, playback is inert and never holds the room.
    pub fn tick(&mut self) -> Result<Option<PlaybackEvent>, String> {
        if self.failed {
            return Ok(None);
        }
        if let Some(e) = self.queue.error()
            && self.incoming.is_none()
        {
            self.failed = true;
            return Err(e);
        }
        // The source being left failed (its reads were cut): the incoming one takes over.
        let Some(offset) = self.offset.offset() else { return Ok(None) };
        let now = self.now();
        self.follower.handle_timeout(now, offset);
        self.apply_outputs();
        let frame_us = self.queue.info().map_or(40_000, |i| i.frame_us);
        let pos = self.follower.position(now);
        self.maybe_switch(pos, frame_us);
        let limit = present_limit(pos, frame_us, self.current.is_none(), self.seek_target);
        while let Some(f) = self.queue.pop_until(limit) {
            self.current = Some(Arc::new(f));
            self.new_frame = true;
            self.seek_target = None;
        }
        let late = (3 * frame_us).max(150_000);
        let showing = match &self.current {
            Some(f) => pos - f.pts_us <= late || (self.queue.eof() && self.queue.is_empty()),
            None => self.queue.eof() && self.queue.is_empty() && !self.queue.seek_pending(),
        };
        self.follower.handle_stall(now, !showing && self.follower.playing(), offset);
        if self.sound.is_some() {
            let pos = self.follower.position(now);
            self.audio_clock.set(ClockPoint { playing: self.follower.playing() && showing, position_us: pos, at: Instant::now(), rate: self.follower.rate() });
        }
        let seq = self.follower.room().map(|r| r.seq);
        let playing = self.follower.playing();
        let event = if showing != self.showing {
            self.showing = showing;
            Some(if showing { PlaybackEvent::Showing } else { PlaybackEvent::Buffering })
        } else if showing && (seq != self.reported_seq || playing != self.reported_playing) {
            Some(PlaybackEvent::Showing)
        } else {
            None
        };
        if event.is_some() {
            self.reported_seq = seq;
            self.reported_playing = playing;
        }
        Ok(event)
    }

    /// The frame to draw, once per new frame.
    pub fn take_new_frame(&mut self) -> Option<Arc<VideoFrame>> {
        if std::mem::take(&mut self.new_frame) { self.current.clone() } else { None }
    }

    /// Time of the picture showing now.
    pub fn frame_pts(&self) -> Option<Micros> {
        self.current.as_ref().map(|f| f.pts_us)
    }

    /// The decoder's frame queue (the view sets the picture size on it).
    pub fn queue(&self) -> Arc<FrameQueue> {
        self.queue.clone()
    }

    /// Local playback position, µs.
    pub fn position(&self) -> Micros {
        self.follower.position(self.now())
    }

    /// Local − room, µs.
    pub fn drift(&self) -> Option<Micros> {
        self.follower.drift(self.now(), self.offset.offset()?)
    }

    /// The room's position now, µs.
    pub fn room_position(&self) -> Option<Micros> {
        self.follower.room_position(self.now(), self.offset.offset()?)
    }

    /// The room plays and frames are showing.
    pub fn playing(&self) -> bool {
        self.follower.playing() && self.showing
    }

    /// The room is meant to play (even if it waits for someone right now): what a
    /// play/pause key toggles.
    pub fn room_wants_playing(&self) -> bool {
        self.follower.room().is_some_and(|r| r.playing) || !self.waiting.is_empty()
    }

    /// Sound played so far, when a device plays it.
    pub fn sound_stats(&self) -> Option<SoundStats> {
        self.sound.as_ref().map(|_| self.meter.stats())
    }

    /// The picture is frozen waiting for data.
    pub fn buffering(&self) -> bool {
        !self.showing && !self.failed
    }

    /// The latest room state seq applied.
    pub fn seq(&self) -> u64 {
        self.follower.room().map_or(0, |r| r.seq)
    }

    /// Who the room waits for.
    pub fn waiting(&self) -> &[String] {
        &self.waiting
    }

    /// Stops the decoder (the store must be closed too, to free a blocked read).
    pub fn stop(&mut self) {
        self.queue.close();
        if let Some((q, t)) = self.incoming.take() {
            q.close();
            let _ = t.join();
        }
        if let Some(t) = self.decoder.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Playback {
    fn drop(&mut self) {
        self.queue.close();
        if let Some((q, _)) = &self.incoming {
            q.close();
        }
    }
}

/// How far ahead of the room position `pos` a decoded frame may be and still be shown now.
/// Normally none. With no picture yet, the first frame after a seek may sit a frame after
/// its target; and the decoder's seek target itself may be ahead of `pos`: the follower does
/// not seek for a step back under 200 ms (playing, the clock catches up), so a room that
/// pauses just behind a fresh seek would otherwise wait for a frame that, paused, never
/// comes due — the participant buffering for ever, and the room waiting for it (seen here
/// through a lossy relay).
fn present_limit(pos: Micros, frame_us: Micros, no_picture: bool, seek_target: Option<Micros>) -> Micros {
    if !no_picture {
        return pos;
    }
    pos.max(seek_target.unwrap_or(pos)) + frame_us
}

#[cfg(test)]
mod tests {
    use super::present_limit;

    #[test]
    fn a_paused_room_just_behind_a_fresh_seek_still_shows_its_first_frame() {
        // The decoder went to 1189 ms and its first frame is at 1200 ms; the room then paused
        // at 999 ms. The frame must be shown, or nobody plays again.
        assert!(present_limit(999_000, 40_000, true, Some(1_189_000)) >= 1_200_000);
        // Otherwise, as before: a frame past the position waits for it.
        assert_eq!(present_limit(999_000, 40_000, true, None), 1_039_000);
        assert_eq!(present_limit(999_000, 40_000, false, Some(1_189_000)), 999_000);
        // A seek target behind the position does not hold back anything.
        assert_eq!(present_limit(999_000, 40_000, true, Some(500_000)), 1_039_000);
    }
}
