//! The participant's presenter (sans-IO): the room-clock follower and the clock-offset
//! estimator, and what the picture shows for the clock — which decoded frame, when to drop
//! frames (behind), when to stall the clock (the frame is not decoded yet), when a second
//! decoder (a quality switch) takes over. The decoders and their queues live at the edge; it
//! is told what they hold ([`PictureView`]) and answers with [`PictureAction`]s, and says when
//! it next has something to do (the next frame's time, a stall's, the drift check's).

use std::time::{Duration, Instant};

use crate::clock::{Follower, FollowerConfig, FollowerOutput, MediaState, Micros, OffsetEstimator};

/// While the room plays, the drift is looked at this often (the follower's rate nudges).
const FOLLOW_EVERY: Duration = Duration::from_millis(100);

/// What one decoder's queue holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueView {
    /// Times of the decoded frames waiting, in order.
    pub queued: Vec<Micros>,
    /// The decoder reached the end of its input (and no seek is pending).
    pub eof: bool,
    /// A seek is asked for and not yet started by the decoder.
    pub seek_pending: bool,
    /// The decoder stopped with this error.
    pub error: Option<String>,
}

impl QueueView {
    /// What a queue holds right after a seek.
    fn sought() -> QueueView {
        QueueView { seek_pending: true, ..QueueView::default() }
    }
}

/// The decoders as they are now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PictureView {
    /// The one the picture shows.
    pub current: QueueView,
    /// A decoder started on another source (a quality switch), if any.
    pub incoming: Option<QueueView>,
    /// One frame's duration, once the decoder knows it.
    pub frame_us: Option<Micros>,
}

impl PictureView {
    /// The same decoders with their frames held back: the picture waits on (see
    /// `ParticipantCore::buffer_goal_unmet`).
    pub fn holding_back(&self) -> PictureView {
        let hold = |q: &QueueView| QueueView { queued: vec![], ..q.clone() };
        PictureView { current: hold(&self.current), incoming: self.incoming.as_ref().map(hold), frame_us: self.frame_us }
    }
}

/// What the edge does to the decoders.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub enum PictureAction {
    /// Reposition the decoders (current and incoming) at this media time.
    Seek(Micros),
    /// The incoming decoder failed: close it; the picture stays.
    DropIncoming(String),
    /// The picture moves to the incoming decoder (the old one is closed).
    Switch,
    /// Take this many frames off the front of the current queue: the last is the picture.
    Pop(usize),
    /// The sound's clock: it plays (or not) from `position_us` at `at`, at `rate`.
    SoundClock {
        /// Sound plays.
        playing: bool,
        /// Media position at `at`.
        position_us: Micros,
        /// When.
        at: Instant,
        /// Playback rate.
        rate: f64,
    },
}

/// What changed for the room to hear.
#[derive(Debug, Clone, PartialEq)]
pub enum PresenterEvent {
    /// Frames are showing again (after a join, seek or stall), or the room's clock changed
    /// while they show.
    Showing,
    /// The picture froze: the frame for the position is not decoded yet.
    Buffering,
    /// The decoder failed; the participant plays nothing from now on (and never holds the
    /// room).
    Failed(String),
}

/// The room's clock as this participant sees it (for an external player).
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
    /// The room's media position at `now`.
    pub fn position_at(&self, now: Instant) -> Micros {
        let local = now.saturating_duration_since(self.epoch).as_micros() as Micros;
        self.state.position_at(local + self.offset)
    }
}

/// The presenter.
pub struct Presenter {
    epoch: Instant,
    follower: Follower,
    offset: OffsetEstimator,
    /// A state that came before the first pong (no offset yet).
    held_state: Option<MediaState>,
    waiting: Vec<String>,
    /// Time of the frame showing.
    current: Option<Micros>,
    showing: bool,
    reported: (Option<u64>, bool),
    failed: bool,
    /// Where the decoder was last sent, until a frame from there shows.
    seek_target: Option<Micros>,
    /// Seeks and switches decided outside `present` (a state, a pong), not yet carried out.
    pending: Vec<PictureAction>,
    /// The latest seek, for the level switch (a rendition may need to restart there).
    sought: Option<Micros>,
    /// When `present` next has something to do.
    next: Option<Instant>,
}

impl Presenter {
    /// A presenter whose local clock starts at `epoch`; `decodes`: off for a participant that
    /// plays nothing (it never shows, and never holds the room).
    pub fn new(epoch: Instant, decodes: bool) -> Presenter {
        Presenter {
            epoch,
            follower: Follower::new(FollowerConfig::default()),
            offset: OffsetEstimator::new(16),
            held_state: None,
            waiting: vec![],
            current: None,
            showing: false,
            reported: (None, false),
            failed: !decodes,
            seek_target: None,
            pending: vec![],
            sought: None,
            next: None,
        }
    }

    /// The local clock at `now` (µs since the epoch); pings carry it.
    pub fn local(&self, now: Instant) -> Micros {
        now.saturating_duration_since(self.epoch).as_micros() as Micros
    }

    /// A pong for a ping sent at local time `sent`.
    pub fn handle_pong(&mut self, now: Instant, sent: Micros, host_us: Micros) {
        let local = self.local(now);
        self.offset.handle_pong(sent, host_us, local);
        if let (Some(state), Some(offset)) = (self.held_state.take(), self.offset.offset()) {
            self.follower.handle_state(local, state, offset);
            self.take_seeks();
        }
    }

    /// The room's clock changed; `waiting`: who it waits for.
    pub fn handle_state(&mut self, now: Instant, state: MediaState, waiting: Vec<String>) {
        self.waiting = waiting;
        match self.offset.offset() {
            Some(offset) => {
                self.follower.handle_state(self.local(now), state, offset);
                self.take_seeks();
            }
            None => self.held_state = Some(state),
        }
    }

    fn take_seeks(&mut self) {
        while let Some(FollowerOutput::Seek(t)) = self.follower.poll_output() {
            if self.failed {
                continue; // no decoder to send anywhere
            }
            tracing::debug!("playback: seek to {} ms", t / 1000);
            self.pending.push(PictureAction::Seek(t));
            self.current = None;
            self.sought = Some(t);
            self.seek_target = Some(t);
        }
    }

    /// The room position of the latest seek, once.
    pub fn take_seek(&mut self) -> Option<Micros> {
        self.sought.take()
    }

    /// Decides what the picture shows at `now` given the decoders' `view`: the actions for the
    /// edge, in order, and what changed for the room. Call on every wake-up.
    pub fn present(&mut self, now: Instant, view: &PictureView) -> (Vec<PictureAction>, Option<PresenterEvent>) {
        let mut acts = std::mem::take(&mut self.pending);
        let seeking = !acts.is_empty();
        self.next = None;
        if self.failed {
            return (acts, None);
        }
        if let Some(e) = view.current.error.clone().filter(|_| view.incoming.is_none()) {
            self.failed = true;
            return (acts, Some(PresenterEvent::Failed(e)));
        }
        let Some(offset) = self.offset.offset() else { return (acts, None) };
        let local = self.local(now);
        self.follower.handle_timeout(local, offset);
        self.take_seeks();
        let seeking = seeking || !self.pending.is_empty();
        acts.append(&mut self.pending);
        // A seek empties the queues: what the view saw is gone.
        let (mut cur, mut inc) = match seeking {
            true => (QueueView::sought(), view.incoming.as_ref().map(|_| QueueView::sought())),
            false => (view.current.clone(), view.incoming.clone()),
        };
        let frame_us = view.frame_us.unwrap_or(40_000);
        let pos = self.follower.position(local);
        if let Some(i) = inc.take() {
            match self.switch_ready(&i, &cur, pos, frame_us) {
                Some(Ok(())) => {
                    acts.push(PictureAction::Switch);
                    cur = i;
                    self.current = None;
                }
                Some(Err(e)) => acts.push(PictureAction::DropIncoming(e)),
                None => inc = Some(i),
            }
        }
        let limit = present_limit(pos, frame_us, self.current.is_none(), self.seek_target);
        let n = cur.queued.iter().take_while(|&&t| t <= limit).count();
        if n > 0 {
            acts.push(PictureAction::Pop(n));
            self.current = Some(cur.queued[n - 1]);
            self.seek_target = None;
        }
        let drained = cur.eof && cur.queued.len() == n;
        let late = (3 * frame_us).max(150_000);
        let showing = match self.current {
            Some(t) => pos - t <= late || drained,
            None => drained && !cur.seek_pending,
        };
        self.follower.handle_stall(local, !showing && self.follower.playing(), offset);
        let pos = self.follower.position(local);
        acts.push(PictureAction::SoundClock { playing: self.follower.running() && showing, position_us: pos, at: now, rate: self.follower.rate() });
        // At the end, the last frame shows for good: nothing goes stale.
        let stale = (showing && !drained).then_some(late);
        self.next = self.next_wake(now, pos, cur.queued.get(n).copied(), inc.as_ref(), stale, frame_us);
        (acts, self.event(showing))
    }

    /// Whether the incoming decoder takes over now: it has the frame for `pos` (or the current
    /// one failed: something beats nothing), or it failed itself.
    fn switch_ready(&self, inc: &QueueView, cur: &QueueView, pos: Micros, frame_us: Micros) -> Option<Result<(), String>> {
        if let Some(e) = &inc.error {
            tracing::warn!("the new source does not play ({e}); staying on the current one");
            return Some(Err(e.clone()));
        }
        let ready = inc.queued.first().is_some_and(|&t| t <= pos + frame_us || cur.error.is_some()) || (inc.eof && inc.queued.is_empty());
        ready.then(|| {
            tracing::info!("playback: switched source at {} ms", pos / 1000);
            Ok(())
        })
    }

    /// When the picture next changes on its own, the room playing: the next frame is due, the
    /// one showing goes stale (a stall), the incoming decoder's first frame is due, or the drift
    /// is checked. Paused or frozen, only the decoders change anything: their news wakes the
    /// edge, which calls `present`.
    fn next_wake(&self, now: Instant, pos: Micros, next: Option<Micros>, inc: Option<&QueueView>, late: Option<Micros>, frame_us: Micros) -> Option<Instant> {
        if !self.follower.playing() {
            return None;
        }
        let rate = self.follower.rate().max(0.01);
        // Never `now` itself: the position must have moved by the time it wakes.
        let at = |media: Micros| now + Duration::from_micros(((media - pos).max(1) as f64 / rate).ceil() as u64);
        let stale = self.current.zip(late).map(|(t, late)| t + late + 1).filter(|&t| t > pos).map(at);
        let switch = inc.and_then(|i| i.queued.first()).map(|&t| at(t - frame_us));
        [next.map(at), stale, switch, Some(now + FOLLOW_EVERY)].into_iter().flatten().min()
    }

    fn event(&mut self, showing: bool) -> Option<PresenterEvent> {
        let room = (self.follower.room().map(|r| r.seq), self.follower.playing());
        let event = if showing != self.showing {
            self.showing = showing;
            Some(if showing { PresenterEvent::Showing } else { PresenterEvent::Buffering })
        } else if showing && room != self.reported {
            Some(PresenterEvent::Showing)
        } else {
            None
        };
        if event.is_some() {
            self.reported = room;
        }
        event
    }

    /// When `present` next has work of its own; a pending seek, at once.
    pub fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        if self.failed {
            return None;
        }
        if !self.pending.is_empty() {
            return Some(now);
        }
        self.next
    }

    /// The room's clock, once both a state and the offset are known.
    pub fn room_view(&self) -> Option<RoomView> {
        Some(RoomView { state: *self.follower.room()?, offset: self.offset.offset()?, epoch: self.epoch })
    }

    /// Round trip of the latest ping, ms.
    pub fn rtt_ms(&self) -> Option<u32> {
        self.offset.last_rtt().map(|r| (r / 1000) as u32)
    }

    /// Local playback position at `now`, µs.
    pub fn position(&self, now: Instant) -> Micros {
        self.follower.position(self.local(now))
    }

    /// Local − room, µs.
    pub fn drift(&self, now: Instant) -> Option<Micros> {
        self.follower.drift(self.local(now), self.offset.offset()?)
    }

    /// The room's position at `now`, µs.
    pub fn room_position(&self, now: Instant) -> Option<Micros> {
        self.follower.room_position(self.local(now), self.offset.offset()?)
    }

    /// Time of the picture showing now.
    pub fn frame_pts(&self) -> Option<Micros> {
        self.current
    }

    /// The room plays and frames are showing.
    pub fn playing(&self) -> bool {
        self.follower.playing() && self.showing
    }

    /// The local clock is meant to run (the room plays), whether or not the picture shows.
    pub fn clock_runs(&self) -> bool {
        self.follower.playing()
    }

    /// The room is meant to play (even if it waits for someone right now): what a
    /// play/pause key toggles.
    pub fn room_wants_playing(&self) -> bool {
        self.follower.room().is_some_and(|r| r.playing) || !self.waiting.is_empty()
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
#[path = "presenter_tests.rs"]
mod tests;
