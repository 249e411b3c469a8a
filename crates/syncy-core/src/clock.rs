//! Time for the room: the clock-offset estimate to the host, the host's media clock, and the
//! follower that keeps a participant's playback clock on the room's.
//!
//! All times are microseconds on some monotonic clock, passed in: `local` times are the
//! participant's own clock, `host` times the host's. Nothing here reads a clock.

use std::collections::VecDeque;

/// Microseconds.
pub type Micros = i64;

/// The room's media clock as the host publishes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaState {
    /// Playing or paused.
    pub playing: bool,
    /// Media position at `at_host_us`.
    pub position_us: Micros,
    /// Host clock reading the position refers to.
    pub at_host_us: Micros,
    /// Playback rate in thousandths (1000 = normal speed).
    pub rate_milli: u32,
    /// Increases with every change.
    pub seq: u64,
}

impl MediaState {
    /// A paused clock at 0:00.
    pub fn start(at_host_us: Micros) -> Self {
        MediaState { playing: false, position_us: 0, at_host_us, rate_milli: 1000, seq: 0 }
    }

    /// Media position at host time `host_us`.
    pub fn position_at(&self, host_us: Micros) -> Micros {
        if !self.playing {
            return self.position_us;
        }
        // Saturating: the times come from the host (bounded on the wire, `stream::MAX_TIME_US`),
        // but a rate times a long span still overflows `i64` past 2^49 µs.
        let elapsed = host_us.saturating_sub(self.at_host_us);
        self.position_us.saturating_add(elapsed.saturating_mul(self.rate_milli as i64) / 1000).max(0)
    }
}

/// One ping/pong exchange.
#[derive(Debug, Clone, Copy)]
struct OffsetSample {
    rtt: Micros,
    offset: Micros,
    /// Bounds on the offset this exchange proves (one-way delays are never negative):
    /// `host - recv <= offset <= host - sent`.
    low: Micros,
    high: Micros,
}

/// NTP-style offset estimate with a min-RTT filter: of the last few exchanges, the one with the
/// shortest round trip has the least queueing in it, so its midpoint is the best guess. It is
/// refined by intersecting what every sample proves (`host - recv <= offset <= host - sent`):
/// the intersection is bounded by the least-delayed exchange in each direction separately,
/// which is tighter than any single round trip. If the bounds disagree (clock skew over the
/// window), the min-RTT midpoint stands.
///
/// No two-way method can see a fixed asymmetry between the directions: the error is half the
/// difference of the smallest one-way delays.
#[derive(Debug, Clone)]
pub struct OffsetEstimator {
    samples: VecDeque<OffsetSample>,
    keep: usize,
}

impl OffsetEstimator {
    /// Keeps the last `keep` samples (at 1 Hz pings, `keep` seconds of history).
    pub fn new(keep: usize) -> Self {
        OffsetEstimator { samples: VecDeque::new(), keep: keep.max(1) }
    }

    /// A pong arrived: the ping left at `sent_local`, the host stamped `host_us`, and the
    /// answer arrived at `recv_local`. Impossible samples (negative round trip) are ignored.
    pub fn handle_pong(&mut self, sent_local: Micros, host_us: Micros, recv_local: Micros) {
        let rtt = recv_local.saturating_sub(sent_local);
        if rtt < 0 {
            return;
        }
        // Saturating: `host_us` and the echoed `sent_local` come from the network.
        let offset = host_us.saturating_sub(sent_local.saturating_add(rtt / 2));
        if self.samples.len() == self.keep {
            self.samples.pop_front();
        }
        let (low, high) = (host_us.saturating_sub(recv_local), host_us.saturating_sub(sent_local));
        self.samples.push_back(OffsetSample { rtt, offset, low, high });
    }

    fn best(&self) -> Option<&OffsetSample> {
        self.samples.iter().min_by_key(|s| s.rtt)
    }

    /// `host = local + offset`, once any pong has arrived.
    pub fn offset(&self) -> Option<Micros> {
        let best = self.best()?;
        let low = self.samples.iter().map(|s| s.low).max()?;
        let high = self.samples.iter().map(|s| s.high).min()?;
        if low <= high { Some(low + (high - low) / 2) } else { Some(best.offset) }
    }

    /// Round trip of the best sample.
    #[cfg(test)]
    pub fn min_rtt(&self) -> Option<Micros> {
        self.best().map(|s| s.rtt)
    }

    /// Round trip of the latest sample.
    pub fn last_rtt(&self) -> Option<Micros> {
        self.samples.back().map(|s| s.rtt)
    }

    /// Number of samples held.
    pub fn samples(&self) -> usize {
        self.samples.len()
    }
}

/// How the follower corrects drift.
#[derive(Debug, Clone, Copy)]
pub struct FollowerConfig {
    /// Start nudging the rate when the drift exceeds this.
    pub deadband_us: Micros,
    /// Stop nudging once the drift is back under this.
    pub settle_us: Micros,
    /// Largest rate change, as a fraction (0.05 = ±5%).
    pub max_nudge: f64,
    /// Drift is corrected over roughly this long (proportional gain = 1/horizon).
    pub horizon_us: Micros,
    /// Beyond this drift, seek instead of nudging.
    pub seek_threshold_us: Micros,
    /// A backward jump longer than this needs the decoder to seek (shorter: show what we have).
    pub rewind_seek_us: Micros,
}

impl Default for FollowerConfig {
    fn default() -> Self {
        FollowerConfig { deadband_us: 15_000, settle_us: 3_000, max_nudge: 0.05, horizon_us: 1_000_000, seek_threshold_us: 1_000_000, rewind_seek_us: 200_000 }
    }
}

/// What the follower asks of the player.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowerOutput {
    /// Reposition the decoder at this media position.
    Seek(Micros),
}

/// What to do about drift (local − room) while the room plays.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Correction {
    /// Too far off to nudge: jump to the room's position.
    Seek,
    /// Play at this multiple of the room's rate (1.0 = leave it).
    Rate(f64),
}

/// The drift policy shared by the built-in player and mpv: proportional rate nudges within
/// ±`max_nudge`, with hysteresis (start past `deadband_us`, stop under `settle_us`), and a
/// seek beyond `seek_threshold_us`. `correcting` carries the hysteresis state.
pub fn correct(cfg: &FollowerConfig, drift: Micros, correcting: &mut bool) -> Correction {
    if drift.abs() > cfg.seek_threshold_us {
        *correcting = false;
        return Correction::Seek;
    }
    if drift.abs() > cfg.deadband_us {
        *correcting = true;
    } else if drift.abs() < cfg.settle_us {
        *correcting = false;
    }
    if !*correcting {
        return Correction::Rate(1.0);
    }
    let nudge = (drift as f64 / cfg.horizon_us as f64).clamp(-cfg.max_nudge, cfg.max_nudge);
    Correction::Rate(1.0 - nudge)
}

/// A participant's playback clock, following the room's media clock.
///
/// The local clock runs at `rate` while playing and not stalled; the player stalls it when the
/// frame for the current position is not decoded yet (buffering). Drift is local − room.
#[derive(Debug, Clone)]
pub struct Follower {
    cfg: FollowerConfig,
    room: Option<MediaState>,
    playing: bool,
    stalled: bool,
    position_us: Micros,
    at_local_us: Micros,
    rate: f64,
    correcting: bool,
    /// Since when it has been stalled (local µs).
    stalled_since: Micros,
    /// It went ahead of the room while stalled (see `catch_up`): once it shows, its clock
    /// stands until the room gets there.
    ahead: bool,
    outputs: VecDeque<FollowerOutput>,
}

/// How far past the room a stalled follower goes at most (see `Follower::catch_up`).
const MAX_LEAD_US: Micros = 10_000_000;

impl Follower {
    /// A follower that has not heard from the room yet.
    pub fn new(cfg: FollowerConfig) -> Self {
        Follower {
            cfg,
            room: None,
            playing: false,
            stalled: false,
            position_us: 0,
            at_local_us: 0,
            rate: 1.0,
            correcting: false,
            stalled_since: 0,
            ahead: false,
            outputs: VecDeque::new(),
        }
    }

    /// Local playback position at `now`.
    pub fn position(&self, now: Micros) -> Micros {
        if !self.playing || self.stalled {
            return self.position_us;
        }
        self.position_us + ((now - self.at_local_us) as f64 * self.rate) as Micros
    }

    /// Whether the local clock is meant to run (the room plays).
    pub fn playing(&self) -> bool {
        self.playing
    }

    /// Whether the local clock runs now: the room plays, no stall, and it is not standing
    /// ahead of the room waiting for it.
    pub fn running(&self) -> bool {
        self.playing && !self.stalled && self.rate > 0.0
    }

    /// Current rate (1.0 = normal).
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// The room's last state.
    pub fn room(&self) -> Option<&MediaState> {
        self.room.as_ref()
    }

    /// Local − room at `now`, given the offset to the host clock.
    pub fn drift(&self, now: Micros, offset: Micros) -> Option<Micros> {
        let room = self.room?;
        Some(self.position(now) - room.position_at(now + offset))
    }

    /// The room's media position at local time `now`.
    pub fn room_position(&self, now: Micros, offset: Micros) -> Option<Micros> {
        self.room.map(|r| r.position_at(now + offset))
    }

    fn rebase(&mut self, now: Micros) {
        self.position_us = self.position(now);
        self.at_local_us = now;
    }

    fn jump(&mut self, now: Micros, target: Micros) {
        let here = self.position(now);
        // Forward by less than the seek threshold: the decoder gets there by decoding on (the
        // player drops the frames in between). Backward or far forward: it must seek.
        if target < here - self.cfg.rewind_seek_us || target > here + self.cfg.seek_threshold_us {
            self.outputs.push_back(FollowerOutput::Seek(target));
        }
        self.stand_at(now, target);
    }

    /// The clock reads `target` from `now` on, without a seek.
    fn stand_at(&mut self, now: Micros, target: Micros) {
        self.position_us = target;
        self.at_local_us = now;
        self.correcting = false;
    }

    /// A new room state arrived (stale ones, by `seq`, are ignored).
    pub fn handle_state(&mut self, now: Micros, state: MediaState, offset: Micros) {
        if let Some(old) = self.room
            && state.seq < old.seq
        {
            return;
        }
        let first = self.room.is_none();
        let seeked = self.room.is_some_and(|old| old.position_at(state.at_host_us) != state.position_us);
        // The room started playing. The news may come late (a lost packet waits for its
        // retransmission: a second or more through a lossy link); by then the room is that far
        // in. Starting where the room is costs a few dropped frames; starting behind would cost
        // seconds of nudging at most 5% faster (17 s for 850 ms).
        let started = self.room.is_some_and(|old| !old.playing) && state.playing;
        self.room = Some(state);
        let target = state.position_at(now + offset);
        if first || seeked {
            // A late joiner starts where the room is, not at 0:00.
            self.rebase(now);
            if first && target > self.cfg.rewind_seek_us {
                self.outputs.push_back(FollowerOutput::Seek(target));
                self.position_us = target;
                self.at_local_us = now;
            } else {
                self.jump(now, target);
            }
        } else if started {
            self.rebase(now);
            self.jump(now, target);
        }
        if first || seeked || started {
            // A stall from before counts for nothing at the new position (see `catch_up`).
            self.stalled_since = now;
        }
        self.rebase(now);
        self.playing = state.playing;
        self.update(now, offset);
    }

    /// The player stalled (no frame for the current position) or resumed.
    pub fn handle_stall(&mut self, now: Micros, stalled: bool, offset: Micros) {
        if stalled == self.stalled {
            return;
        }
        self.rebase(now);
        self.stalled = stalled;
        self.at_local_us = now;
        if stalled {
            self.stalled_since = now;
        } else {
            self.update(now, offset);
        }
    }

    /// Re-evaluates the rate; call every ~100 ms and after any input.
    pub fn handle_timeout(&mut self, now: Micros, offset: Micros) {
        self.update(now, offset);
    }

    fn update(&mut self, now: Micros, offset: Micros) {
        let Some(room) = self.room else { return };
        let target = room.position_at(now + offset);
        let here = self.position(now);
        let drift = here - target;
        let room_rate = room.rate_milli as f64 / 1000.0;
        if !room.playing {
            // Paused: the clock stands at the room's position. A picture just ahead of it (the
            // pause came a few hundred ms late, through a busy link) stays: on resume the clock
            // reaches it by running. A seek back would empty the decoder and have it report
            // buffering while paused, holding the room's resume — and in a big room, with
            // everyone a little ahead when a pause comes, that is everyone.
            self.rate = room_rate;
            // (Standing ahead of the room after a catch-up, the picture stays too: the stretch
            // between was never fetched, and a seek back would hold the resume.)
            let stays = drift > 0 && (drift <= self.cfg.seek_threshold_us || self.ahead);
            self.ahead = false;
            if stays {
                self.stand_at(now, target);
            } else if drift != 0 {
                self.jump(now, target);
            }
            return;
        }
        if self.stalled {
            self.catch_up(now, drift, target, room_rate);
            return;
        }
        if self.ahead {
            // Ready ahead of the room: the picture stands until the room reaches it, and the
            // clock then takes the room's position (it is looked at every 100 ms or so: the
            // room is up to that far past, which decoding on catches up, and a nudge would
            // take seconds).
            self.rebase(now);
            if drift > 0 {
                self.rate = 0.0;
                return;
            }
            self.ahead = false;
            self.stand_at(now, target);
            self.rate = room_rate;
            return;
        }
        match correct(&self.cfg, drift, &mut self.correcting) {
            Correction::Seek => {
                self.jump(now, target);
                self.rebase(now);
                self.rate = room_rate;
            }
            Correction::Rate(r) => {
                self.rebase(now);
                self.rate = room_rate * r;
            }
        }
    }

    /// Stalled while the room plays on: once the room is a seek's worth past the frozen
    /// picture, it goes to where the room will be by the time it has loaded that far — ahead
    /// by as long again as it has stalled so far (at least the seek threshold, at most
    /// [`MAX_LEAD_US`]; in media time at the room's rate). Waiting where it froze, its first picture would come seconds behind
    /// and the seek to catch up would stall it again: every late joiner to a playing room
    /// stalled right after its first picture.
    fn catch_up(&mut self, now: Micros, drift: Micros, target: Micros, room_rate: f64) {
        if drift >= -self.cfg.seek_threshold_us {
            return;
        }
        let waited = now - self.stalled_since;
        let lead = (waited.max(self.cfg.seek_threshold_us).min(MAX_LEAD_US.max(self.cfg.seek_threshold_us)) as f64 * room_rate) as Micros;
        tracing::debug!("playback: {} ms behind a playing room after a stall: ahead to {} ms", -drift / 1000, (target + lead) / 1000);
        self.outputs.push_back(FollowerOutput::Seek(target + lead));
        self.stand_at(now, target + lead);
        self.ahead = true;
    }

    /// Next thing the player must do.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<FollowerOutput> {
        self.outputs.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    const MS: Micros = 1000;
    const S: Micros = 1_000_000;

    proptest::proptest! {
        /// Whatever the times (the host's, echoed ones), the clock arithmetic does not overflow
        /// (a debug build panics on overflow; TRUST-REVIEW #14).
        #[test]
        fn clock_arithmetic_never_overflows(position in proptest::num::i64::ANY, at in proptest::num::i64::ANY, now in proptest::num::i64::ANY, sent in proptest::num::i64::ANY, recv in proptest::num::i64::ANY, rate in 0u32..=16_000) {
            let state = MediaState { playing: true, position_us: position, at_host_us: at, rate_milli: rate, seq: 1 };
            proptest::prop_assert!(state.position_at(now) >= 0);
            let mut est = OffsetEstimator::new(4);
            est.handle_pong(sent, now, recv);
            est.handle_pong(sent / 2, at, recv / 2);
            let _ = est.offset();
        }
    }

    /// Exponential jitter with the given mean, as queueing tends to look.
    fn jitter(rng: &mut StdRng, mean: f64) -> Micros {
        let u: f64 = rng.random_range(1e-9..1.0);
        (-u.ln() * mean) as Micros
    }

    #[test]
    fn offset_within_a_millisecond_under_asymmetry_and_jitter() {
        for seed in 0..20 {
            let mut rng = StdRng::seed_from_u64(seed);
            let true_offset: Micros = rng.random_range(-3_600 * S..3_600 * S);
            // Up 2 ms, down 3 ms (asymmetric: 0.5 ms of error no method can see), plus
            // queueing jitter with an 8 ms mean each way.
            let (up, down) = (2 * MS, 3 * MS);
            let mut est = OffsetEstimator::new(32);
            let mut local: Micros = 1_000 * S;
            for _ in 0..32 {
                let sent = local;
                let at_host = sent + up + jitter(&mut rng, 8_000.0);
                let host_us = at_host + true_offset;
                let recv = at_host + down + jitter(&mut rng, 8_000.0);
                est.handle_pong(sent, host_us, recv);
                local += S;
            }
            let err = est.offset().unwrap() - true_offset;
            assert!(err.abs() <= MS, "seed {seed}: error {err} µs");
        }
    }

    #[test]
    fn offset_ignores_impossible_samples_and_forgets_old_ones() {
        let mut est = OffsetEstimator::new(4);
        est.handle_pong(100, 5_000, 50);
        assert_eq!(est.offset(), None);
        est.handle_pong(0, 1_000, 10); // rtt 10: offset 995
        for i in 0..4 {
            est.handle_pong(100 * i, 2_000 + 100 * i, 100 * i + 50);
        }
        // The rtt-10 sample has been pushed out; the rtt-50 ones remain.
        assert_eq!(est.min_rtt(), Some(50));
        assert_eq!(est.offset(), Some(1_975));
        // Bounds that cannot all hold (a skewed clock) fall back to the min-RTT sample.
        est.handle_pong(1_000, 9_000, 1_040);
        assert_eq!(est.min_rtt(), Some(40));
        assert_eq!(est.offset(), Some(7_980));
    }

    #[test]
    fn media_state_positions() {
        let mut s = MediaState::start(0);
        assert_eq!(s.position_at(10 * S), 0);
        s.playing = true;
        s.position_us = 5 * S;
        s.at_host_us = 100 * S;
        assert_eq!(s.position_at(102 * S), 7 * S);
        s.rate_milli = 500;
        assert_eq!(s.position_at(102 * S), 6 * S);
    }

    fn playing_state(position_us: Micros, at_host_us: Micros, seq: u64) -> MediaState {
        MediaState { playing: true, position_us, at_host_us, rate_milli: 1000, seq }
    }

    /// A follower of a room that started playing at 0 at host time 0 (offset 0).
    fn playing_from_zero() -> Follower {
        let mut f = Follower::new(FollowerConfig::default());
        f.handle_state(0, playing_state(0, 0, 1), 0);
        f
    }

    /// Runs a follower that starts `drift` off the room, ticking every 100 ms for `secs`.
    /// Returns the drift trace.
    fn converge(cfg: FollowerConfig, drift: Micros, secs: i64) -> (Follower, Vec<Micros>) {
        let offset = 7 * S;
        let mut f = Follower::new(cfg);
        f.handle_state(0, playing_state(60 * S, offset, 1), offset);
        while f.poll_output().is_some() {}
        // Knock the local clock off by `drift`, as a slow decoder or a stall would.
        f.position_us += drift;
        let mut trace = vec![];
        let mut now = 0;
        while now <= secs * S {
            f.handle_timeout(now, offset);
            trace.push(f.drift(now, offset).unwrap());
            now += 100 * MS;
        }
        (f, trace)
    }

    #[test]
    fn follower_converges_from_two_seconds_by_rate_without_oscillating() {
        let cfg = FollowerConfig { seek_threshold_us: 5 * S, ..FollowerConfig::default() };
        for drift in [2 * S, -2 * S] {
            let (mut f, trace) = converge(cfg, drift, 90);
            assert_eq!(f.poll_output(), None, "no seek under the threshold");
            // Monotonic towards zero, never crossing it by more than the settle band.
            for w in trace.windows(2) {
                assert!(w[1].abs() <= w[0].abs() + 1, "drift grew: {} -> {}", w[0], w[1]);
                assert!(w[1].signum() == drift.signum() || w[1].abs() <= cfg.settle_us, "overshoot to {}", w[1]);
            }
            let last = *trace.last().unwrap();
            assert!(last.abs() <= cfg.deadband_us, "still {last} µs off");
            // Never nudged more than the limit.
            assert!((f.rate() - 1.0).abs() <= cfg.max_nudge + 1e-9);
            // Drift of 2 s at 5% takes 40 s plus the tail.
            let settled_at = trace.iter().position(|d| d.abs() <= cfg.deadband_us).unwrap();
            assert!(settled_at <= 500, "settled only after {settled_at} ticks");
        }
    }

    #[test]
    fn follower_seeks_when_drift_is_large() {
        for drift in [2 * S, -2 * S] {
            let (mut f, trace) = converge(FollowerConfig::default(), drift, 2);
            assert!(matches!(f.poll_output(), Some(FollowerOutput::Seek(_))));
            assert!(trace[0].abs() <= MS, "one seek puts it right: {}", trace[0]);
            assert!(trace.iter().all(|d| d.abs() <= MS));
        }
    }

    #[test]
    fn follower_small_drift_is_left_alone() {
        let (f, trace) = converge(FollowerConfig::default(), 10 * MS, 5);
        assert_eq!(f.rate(), 1.0);
        assert!(trace.iter().all(|d| *d == 10 * MS));
    }

    #[test]
    fn late_joiner_starts_at_the_room_position() {
        let offset = -3 * S;
        let mut f = Follower::new(FollowerConfig::default());
        // The room started playing 42 s of media ago (host time).
        f.handle_state(10 * S, playing_state(0, 10 * S + offset - 42 * S, 3), offset);
        assert_eq!(f.poll_output(), Some(FollowerOutput::Seek(42 * S)));
        assert_eq!(f.position(10 * S), 42 * S);
        assert_eq!(f.drift(11 * S, offset), Some(0));
    }

    #[test]
    fn pause_and_seek_follow_the_room() {
        let offset = 0;
        let mut f = playing_from_zero();
        assert_eq!(f.poll_output(), None);
        assert_eq!(f.position(S), S);
        f.handle_state(S, MediaState { playing: false, position_us: S, at_host_us: S, rate_milli: 1000, seq: 2 }, offset);
        assert!(!f.playing());
        assert_eq!(f.position(5 * S), S);
        // A seek back to 0:00 while paused needs the decoder.
        f.handle_state(6 * S, MediaState { playing: false, position_us: 0, at_host_us: 6 * S, rate_milli: 1000, seq: 3 }, offset);
        assert_eq!(f.poll_output(), Some(FollowerOutput::Seek(0)));
        // A stale state is ignored.
        f.handle_state(7 * S, playing_state(50 * S, 7 * S, 2), offset);
        assert!(!f.playing());
        assert_eq!(f.position(7 * S), 0);
    }

    #[test]
    fn a_pause_that_arrives_late_keeps_the_picture_just_ahead_and_seeks_back_only_from_far() {
        let offset = 0;
        let mut f = playing_from_zero();
        while f.poll_output().is_some() {}
        // The room paused at 10 s; the news comes 300 ms late: the clock stands at 10 s, and
        // the picture 300 ms on stays (no seek: the decoder keeps what it holds).
        f.handle_state(10 * S + 300 * MS, MediaState { playing: false, position_us: 10 * S, at_host_us: 10 * S, rate_milli: 1000, seq: 2 }, offset);
        assert_eq!(f.poll_output(), None);
        assert_eq!(f.position(11 * S), 10 * S);
        // It plays again from 10 s.
        f.handle_state(12 * S, playing_state(10 * S, 12 * S, 3), offset);
        assert_eq!(f.poll_output(), None);
        assert_eq!(f.position(13 * S), 11 * S);
        // A pause 1.5 s late (past the seek threshold) has it seek back.
        f.handle_state(20 * S + 1_500 * MS, MediaState { playing: false, position_us: 18 * S, at_host_us: 20 * S, rate_milli: 1000, seq: 4 }, offset);
        assert_eq!(f.poll_output(), Some(FollowerOutput::Seek(18 * S)));
    }

    #[test]
    fn a_play_that_arrives_late_starts_where_the_room_is() {
        let offset = 0;
        let mut f = Follower::new(FollowerConfig::default());
        f.handle_state(0, MediaState { playing: false, position_us: 10 * S, at_host_us: 0, rate_milli: 1000, seq: 1 }, offset);
        while f.poll_output().is_some() {}
        // The room played from 10 s at host time 5 s; the news is 850 ms late.
        f.handle_state(5 * S + 850 * MS, playing_state(10 * S, 5 * S, 2), offset);
        assert_eq!(f.poll_output(), None, "under a second ahead: decoding on gets there, no seek");
        assert_eq!(f.drift(5 * S + 850 * MS, offset), Some(0), "in step at once, not nudged in over 17 s");
        assert_eq!(f.position(6 * S + 850 * MS), 11 * S + 850 * MS);
    }

    #[test]
    fn a_stall_freezes_the_local_clock() {
        let offset = 0;
        let mut f = playing_from_zero();
        f.handle_stall(S, true, offset);
        assert_eq!(f.position(3 * S), S);
        assert_eq!(f.drift(3 * S, offset), Some(-2 * S));
        // Resuming with 2 s of drift (over the threshold): one seek to the room.
        f.handle_stall(3 * S, false, offset);
        assert_eq!(f.poll_output(), Some(FollowerOutput::Seek(3 * S)));
        assert_eq!(f.drift(4 * S, offset), Some(0));
    }

    #[test]
    fn stalled_while_the_room_plays_on_it_goes_ahead_of_the_room_and_stands_until_the_room_gets_there() {
        let offset = 0;
        let mut f = playing_from_zero();
        f.handle_stall(S, true, offset);
        f.handle_timeout(1_900 * MS, offset);
        assert_eq!(f.poll_output(), None, "under a second behind: it waits where it is");
        // 1.5 s behind, stalled for 1.5 s: it goes as far past the room.
        f.handle_timeout(2_500 * MS, offset);
        assert_eq!(f.poll_output(), Some(FollowerOutput::Seek(4 * S)));
        assert_eq!(f.position(3 * S), 4 * S);
        // Ready a second before the room gets there: the picture stands, the sound does not run.
        f.handle_stall(3 * S, false, offset);
        assert!(f.playing() && !f.running());
        f.handle_timeout(3_500 * MS, offset);
        assert_eq!(f.position(3_900 * MS), 4 * S);
        assert_eq!(f.poll_output(), None, "no seek back to the room");
        // The room arrives (looked at 60 ms late): it plays on in step at once.
        f.handle_timeout(4_060 * MS, offset);
        assert!(f.running());
        assert_eq!(f.drift(5 * S, offset), Some(0));
        assert_eq!(f.poll_output(), None);
    }

    #[test]
    fn a_pause_while_it_stands_ahead_leaves_the_picture_where_it_is() {
        let offset = 0;
        let mut f = playing_from_zero();
        f.handle_stall(0, true, offset);
        f.handle_timeout(3 * S, offset);
        assert_eq!(f.poll_output(), Some(FollowerOutput::Seek(6 * S)));
        f.handle_stall(3_500 * MS, false, offset);
        // Paused at 4 s, 2 s short of the picture: no seek back into what it never fetched.
        f.handle_state(4 * S, MediaState { playing: false, position_us: 4 * S, at_host_us: 4 * S, rate_milli: 1000, seq: 2 }, offset);
        assert_eq!(f.poll_output(), None);
        assert_eq!(f.position(5 * S), 4 * S, "the clock stands at the room's");
        // Played again: the clock runs from the room's position up to the picture.
        f.handle_state(10 * S, playing_state(4 * S, 10 * S, 3), offset);
        assert_eq!(f.poll_output(), None);
        assert!(f.running());
        assert_eq!(f.drift(11 * S, offset), Some(0));
    }

    #[test]
    fn a_long_stall_goes_ever_further_ahead_at_most_ten_seconds() {
        let offset = 0;
        let mut f = playing_from_zero();
        f.handle_stall(0, true, offset);
        let mut targets = Vec::new();
        for t in (0..60).map(|i| i * 500 * MS) {
            f.handle_timeout(t, offset);
            while let Some(FollowerOutput::Seek(to)) = f.poll_output() {
                targets.push((t, to));
            }
        }
        // Each time the room passes it by over a second, it goes as far past the room as it
        // has stalled: 1.5 s, then 4.5 s, then 10 s (the most).
        assert_eq!(targets[..3], [(1_500 * MS, 3 * S), (4_500 * MS, 9 * S), (10_500 * MS, 20_500 * MS)]);
        assert!(targets.iter().all(|(t, to)| to - t <= 10 * S), "{targets:?}");
    }
}
