//! How often a picture goes to the terminal, and how large: at most `max_fps` a second, and
//! within `--max-picture-bandwidth` bytes a second (over SSH every byte of picture crosses the
//! link). A picture too big for the budget at a watchable rate is drawn smaller; frames that
//! come meanwhile are dropped, never the clock. Pure, in the caller's time.

use std::time::{Duration, Instant};

use crate::core::rate::TokenBucket;

/// Below this many pictures a second the picture is made smaller instead.
pub const MIN_FPS: f64 = 8.0;
/// The most pictures a second by default: what xterm and kitty keep up with (BENCHMARKS.md).
pub const MAX_FPS: u32 = 30;
/// The smallest the picture is made (of its width and height).
const MIN_SCALE: f64 = 0.25;
/// Scale steps: a change of size costs a refit of the decoder, so it moves in eighths.
const STEP: f64 = 0.125;

/// The pacer.
#[derive(Debug)]
pub struct Pace {
    interval: Duration,
    budget: TokenBucket,
    limited: bool,
    rate: f64,
    next: Option<Instant>,
    scale: f64,
}

impl Pace {
    /// At most `max_fps` pictures and `bytes_per_sec` bytes a second (0: no byte limit).
    pub fn new(max_fps: u32, bytes_per_sec: u64) -> Pace {
        let rate = bytes_per_sec as f64;
        Pace {
            interval: Duration::from_secs_f64(1.0 / max_fps.max(1) as f64),
            // A quarter second of credit: a first picture at once, no long burst after.
            budget: TokenBucket::new(rate, rate / 4.0),
            limited: bytes_per_sec > 0,
            rate,
            next: None,
            scale: 1.0,
        }
    }

    /// Whether the next picture may go now.
    pub fn ready(&mut self, now: Instant) -> bool {
        self.next.is_none_or(|t| now >= t) && self.budget.ready(now)
    }

    /// When the next picture may go, if not now.
    pub fn next_at(&self, now: Instant) -> Option<Instant> {
        let due = self.next.filter(|&t| t > now);
        match (due, self.budget.ready_at(now)) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// A picture of `bytes` (at the current scale) went to the terminal at `now`.
    pub fn sent(&mut self, now: Instant, bytes: u64) {
        self.next = Some(now + self.interval);
        self.budget.consume(now, bytes as f64);
        if self.limited && bytes > 0 {
            // Bytes go with the area: the scale that would give MIN_FPS within the budget.
            let fps = self.rate / bytes as f64;
            let wanted = (self.scale * (fps / MIN_FPS).sqrt()).clamp(MIN_SCALE, 1.0);
            // Down at once, up only by a step (a picture that just fits stays put).
            self.scale = match wanted < self.scale {
                true => (wanted / STEP).floor().max(MIN_SCALE / STEP) * STEP,
                false if wanted >= self.scale + STEP => (self.scale + STEP).min(1.0),
                false => self.scale,
            };
        }
    }

    /// Bytes that went to the terminal with no new picture (the rest of the view): they
    /// count against the budget too.
    pub fn spent(&mut self, now: Instant, bytes: u64) {
        self.budget.consume(now, bytes as f64);
    }

    /// How much of the fitted size to draw (1: all of it).
    pub fn scale(&self) -> f64 {
        self.scale
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends a picture of `bytes` whenever allowed for `secs` (simulated): pictures sent, bytes.
    fn run(p: &mut Pace, secs: u64, bytes: impl Fn(f64) -> u64) -> (u32, u64) {
        let start = Instant::now();
        let mut now = start;
        let (mut n, mut total) = (0, 0);
        while now < start + Duration::from_secs(secs) {
            if p.ready(now) {
                let b = bytes(p.scale());
                p.sent(now, b);
                n += 1;
                total += b;
            }
            now = p.next_at(now).unwrap_or(now + Duration::from_millis(1)).max(now + Duration::from_micros(100));
        }
        (n, total)
    }

    #[test]
    fn without_a_byte_limit_the_rate_is_capped_and_the_size_kept() {
        let mut p = Pace::new(30, 0);
        let (n, _) = run(&mut p, 10, |_| 1_000_000);
        assert!((299..=301).contains(&n), "{n}");
        assert_eq!(p.scale(), 1.0);
    }

    #[test]
    fn a_byte_limit_holds_and_a_picture_too_big_for_it_is_drawn_smaller() {
        // 400 KB pictures at full size (bytes go with the area), 1 MB/s: 2.5 a second at full
        // size; smaller until at least MIN_FPS.
        let mut p = Pace::new(30, 1_000_000);
        let (n, total) = run(&mut p, 20, |s| (400_000.0 * s * s) as u64);
        assert!(total <= 20_000_000 + 250_000 + 400_000, "within the budget: {total}");
        assert!(total >= 19_000_000, "and using it: {total}");
        assert!(p.scale() < 1.0 && p.scale() >= MIN_SCALE, "{}", p.scale());
        assert!(n as f64 / 20.0 >= MIN_FPS * 0.9, "{n} pictures in 20 s");
        // A small picture within the budget keeps its size and the frame-rate cap.
        let mut p = Pace::new(30, 1_000_000);
        let (n, _) = run(&mut p, 10, |_| 20_000);
        assert_eq!(p.scale(), 1.0);
        assert!((299..=301).contains(&n), "{n}");
    }

    #[test]
    fn the_size_comes_back_when_the_pictures_get_cheaper() {
        let mut p = Pace::new(30, 1_000_000);
        run(&mut p, 5, |s| (1_000_000.0 * s * s) as u64);
        let small = p.scale();
        assert!(small <= 0.5, "{small}");
        run(&mut p, 10, |s| (10_000.0 * s * s) as u64);
        assert_eq!(p.scale(), 1.0);
    }
}
