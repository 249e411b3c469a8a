//! Speed meters: exact bytes over a sliding window, in simulated or real time.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Bytes per second over the last `window`, from exact byte counts.
#[derive(Debug, Clone)]
pub struct Meter {
    window: Duration,
    bucket: Duration,
    /// (bucket start, bytes) — coalesced so memory is bounded by window / bucket.
    samples: VecDeque<(Instant, u64)>,
    in_window: u64,
    total: u64,
    started: Option<Instant>,
}

impl Meter {
    /// A meter averaging over `window`.
    pub fn new(window: Duration) -> Self {
        Meter { window, bucket: window / 100, samples: VecDeque::new(), in_window: 0, total: 0, started: None }
    }

    /// `bytes` moved at `now`.
    pub fn record(&mut self, now: Instant, bytes: u64) {
        self.started.get_or_insert(now);
        self.total += bytes;
        self.in_window += bytes;
        match self.samples.back_mut() {
            Some((t, b)) if now.saturating_duration_since(*t) < self.bucket => *b += bytes,
            _ => self.samples.push_back((now, bytes)),
        }
        self.expire(now);
    }

    fn expire(&mut self, now: Instant) {
        while let Some(&(t, b)) = self.samples.front() {
            if now.saturating_duration_since(t) > self.window {
                self.in_window -= b;
                self.samples.pop_front();
            } else {
                break;
            }
        }
    }

    /// Bytes per second at `now` (over less than the window while the meter is young).
    pub fn rate(&mut self, now: Instant) -> f64 {
        self.expire(now);
        let Some(start) = self.started else { return 0.0 };
        let span = now.saturating_duration_since(start).min(self.window);
        let span = span.max(self.bucket).as_secs_f64();
        self.in_window as f64 / span
    }

    /// All bytes ever recorded.
    pub fn total(&self) -> u64 {
        self.total
    }
}

/// A token bucket: `rate` tokens per second, holding at most `burst`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl TokenBucket {
    /// A full bucket. `rate == 0` means unlimited.
    pub fn new(rate: f64, burst: f64) -> Self {
        TokenBucket { rate, burst, tokens: burst, last: None }
    }

    fn refill(&mut self, now: Instant) {
        if let Some(last) = self.last {
            let dt = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        }
        self.last = Some(now);
    }

    /// Changes the rate (and the most credit); 0 is unlimited.
    pub fn set_rate(&mut self, rate: f64, burst: f64) {
        self.rate = rate;
        self.burst = burst;
        self.tokens = self.tokens.min(burst);
    }

    /// Whether a send may start now: the bucket is not in debt (always, when unlimited).
    pub fn ready(&mut self, now: Instant) -> bool {
        self.ready_overdrawn(now, 0.0)
    }

    /// Whether a send may start with the bucket at most `overdraft` in debt (an urgent
    /// sender may run a little ahead of the rate; the long-run rate stays exact).
    pub fn ready_overdrawn(&mut self, now: Instant, overdraft: f64) -> bool {
        if self.rate == 0.0 {
            return true;
        }
        self.refill(now);
        // A rounding hair below counts as paid.
        self.tokens >= -overdraft - 1e-6
    }

    /// The most credit it holds.
    pub fn burst(&self) -> f64 {
        self.burst
    }

    /// Spends `n` tokens, going into debt if there are fewer: a sender of whole chunks checks
    /// [`ready`](Self::ready), sends, then pays the exact size, so the long-run rate is exact
    /// whatever the chunk sizes.
    pub fn consume(&mut self, now: Instant, n: f64) {
        if self.rate == 0.0 {
            return;
        }
        self.refill(now);
        self.tokens -= n;
    }

    /// When the bucket is out of debt again, if it is in debt now.
    pub fn ready_at(&self, now: Instant) -> Option<Instant> {
        self.ready_at_overdrawn(now, 0.0)
    }

    /// When the debt is down to `overdraft`, if it is deeper now.
    pub fn ready_at_overdrawn(&self, now: Instant, overdraft: f64) -> Option<Instant> {
        if self.rate == 0.0 || self.tokens >= -overdraft - 1e-6 {
            return None;
        }
        let since = self.last.map_or(Duration::ZERO, |l| now.saturating_duration_since(l)).as_secs_f64();
        // Rounded up to whole nanoseconds, at least one, so a caller sleeping until then never
        // wakes a hair early and spins.
        let wait = ((-self.tokens - overdraft) / self.rate - since).max(0.0);
        Some(now + Duration::from_nanos(((wait * 1e9).ceil() as u64).max(1)))
    }

    /// Takes `n` tokens if there are enough.
    pub fn try_take(&mut self, now: Instant, n: f64) -> bool {
        if self.rate == 0.0 {
            return true;
        }
        self.refill(now);
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_rate_is_measured_exactly() {
        let t0 = crate::testing::t0();
        let mut m = Meter::new(Duration::from_secs(1));
        for i in 0..3000u64 {
            m.record(t0 + Duration::from_millis(i), 1000);
        }
        let r = m.rate(t0 + Duration::from_millis(3000));
        assert!((r - 1_000_000.0).abs() < 20_000.0, "{r}");
        assert_eq!(m.total(), 3_000_000);
        assert!(m.samples.len() <= 102);
        assert_eq!(m.rate(t0 + Duration::from_secs(10)), 0.0);
    }

    #[test]
    fn token_bucket_holds_its_rate() {
        let t0 = crate::testing::t0();
        let mut b = TokenBucket::new(100.0, 10.0);
        let mut taken = 0;
        for ms in 0..10_000u64 {
            if b.try_take(t0 + Duration::from_millis(ms), 1.0) {
                taken += 1;
            }
        }
        // 10 s at 100/s plus the initial burst, within 2%.
        assert!((taken as f64 - 1010.0).abs() <= 1010.0 * 0.02, "{taken}");
        assert!(TokenBucket::new(0.0, 0.0).try_take(t0, 1e9));
    }

    #[test]
    fn a_chunk_sender_paced_by_the_bucket_holds_the_rate_within_2_percent() {
        // 2 MiB/s in 64 KiB chunks (and a short last one now and then), woken exactly when
        // the bucket says, for 10 s of simulated time.
        let (t0, rate) = (crate::testing::t0(), 2.0 * 1024.0 * 1024.0);
        let mut b = TokenBucket::new(rate, rate * 0.1);
        let (mut now, mut sent, mut n) = (t0, 0.0, 0u64);
        let end = t0 + Duration::from_secs(10);
        while now < end {
            while b.ready(now) {
                let len = if n % 7 == 6 { 1_000.0 } else { 65_536.0 };
                b.consume(now, len);
                sent += len;
                n += 1;
            }
            now = b.ready_at(now).expect("in debt after sending");
        }
        let expected = rate * 10.0 + rate * 0.1;
        assert!((sent - expected).abs() <= expected * 0.02, "{sent} vs {expected}");
        let mut free = TokenBucket::new(0.0, 0.0);
        free.consume(t0, 1e12);
        assert!(free.ready(t0) && free.ready_at(t0).is_none(), "0 is unlimited");
    }
}
