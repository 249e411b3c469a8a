//! How much the host lets wait in a participant's send buffer.
//!
//! Whatever sits in the data channel's buffer is sent before anything the scheduler picks
//! next, so a critical chunk (a seek, a decoder stuck) waits behind all of it. A fixed 1 MiB
//! is nothing on loopback (10 ms) but 20 s on a 50 KB/s link with loss. The window follows the
//! measured drain rate instead: about `horizon` of sending, between `min` and `max` bytes.
//! Sans-IO: the edge reports what it sends and what is still outstanding, with the time.

use std::time::{Duration, Instant};

/// Shortest span a drain-rate sample covers.
const SAMPLE: Duration = Duration::from_millis(200);

/// The send window of one channel.
#[derive(Debug, Clone)]
pub struct SendWindow {
    min: u64,
    max: u64,
    horizon: Duration,
    /// Bytes handed to the channel so far.
    sent: u64,
    /// Start of the current sample: when, and bytes acknowledged by then.
    sample: Option<(Instant, u64)>,
    /// Drain rate, bytes per second, once measured.
    rate: Option<f64>,
    /// In this sample, the window held a send back, or the buffer never ran dry: what was
    /// acknowledged is what the link could take, not just what there was to send.
    limited: bool,
    drained: bool,
}

impl SendWindow {
    /// A window of about `horizon` of sending, never under `min` or over `max` bytes.
    pub fn new(min: u64, max: u64, horizon: Duration) -> Self {
        SendWindow { min, max: max.max(min), horizon, sent: 0, sample: None, rate: None, limited: false, drained: false }
    }

    /// `n` bytes were handed to the channel.
    pub fn on_send(&mut self, n: u64) {
        self.sent += n;
    }

    /// The channel holds `outstanding` bytes not yet acknowledged, at `now`.
    pub fn observe(&mut self, now: Instant, outstanding: u64) {
        let acked = self.sent.saturating_sub(outstanding);
        self.drained |= outstanding == 0;
        match self.sample {
            None => self.sample = Some((now, acked)),
            Some((since, acked_then)) => {
                let span = now.saturating_duration_since(since);
                if span >= SAMPLE {
                    // A sample of an idle sender (nothing asked for) says nothing of the link.
                    if self.limited || !self.drained {
                        let r = acked.saturating_sub(acked_then) as f64 / span.as_secs_f64();
                        self.rate = Some(match self.rate {
                            Some(old) => old * 0.7 + r * 0.3,
                            None => r,
                        });
                    }
                    self.sample = Some((now, acked));
                    self.limited = false;
                    self.drained = outstanding == 0;
                }
            }
        }
    }

    /// Bytes the buffer may hold.
    pub fn target(&self) -> u64 {
        match self.rate {
            // Unknown yet: a middle start, so a slow link does not begin with a long queue.
            None => (self.min * 2).min(self.max),
            Some(r) => ((r * self.horizon.as_secs_f64()) as u64).clamp(self.min, self.max),
        }
    }

    /// Whether `n` more bytes may go now (one message always may, into an empty buffer).
    /// A "no" counts as the window limiting the sender.
    pub fn fits(&mut self, outstanding: u64, n: u64) -> bool {
        let ok = outstanding == 0 || outstanding + n <= self.target();
        self.limited |= !ok;
        ok
    }

    /// The measured drain rate, bytes per second.
    pub fn rate(&self) -> Option<f64> {
        self.rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: u64 = 1024;

    /// A link draining `rate` bytes/s, fed whenever the window lets it, for `secs`.
    fn run(rate: f64, secs: f64) -> (SendWindow, u64) {
        let mut w = SendWindow::new(128 * KIB, 1024 * KIB, Duration::from_millis(300));
        let t0 = Instant::now();
        let mut outstanding = 0u64;
        let mut worst = 0;
        let step = Duration::from_millis(10);
        let mut t = t0;
        while t < t0 + Duration::from_secs_f64(secs) {
            outstanding = outstanding.saturating_sub((rate * step.as_secs_f64()) as u64);
            w.observe(t, outstanding);
            while w.fits(outstanding, 64 * KIB) {
                w.on_send(64 * KIB);
                outstanding += 64 * KIB;
            }
            worst = worst.max(outstanding);
            t += step;
        }
        (w, worst)
    }

    #[test]
    fn a_slow_link_gets_a_short_queue_and_a_fast_one_the_whole_buffer() {
        // 50 KB/s: the queue settles at the minimum, about 2.6 s of sending, not 20 s.
        let (w, worst) = run(50_000.0, 10.0);
        assert!((40_000.0..60_000.0).contains(&w.rate().unwrap()), "{:?}", w.rate());
        assert_eq!(w.target(), 128 * KIB);
        assert!(worst <= 256 * KIB, "at most the starting window: {worst}");
        // 10 MB/s: 300 ms of it is 3 MB, capped at 1 MiB.
        let (w, _) = run(10_000_000.0, 3.0);
        assert_eq!(w.target(), 1024 * KIB, "{:?}", w.rate());
        // 1 MB/s: about 300 KB.
        let (w, _) = run(1_000_000.0, 5.0);
        assert!((250_000..350_000).contains(&w.target()), "{} {:?}", w.target(), w.rate());
    }

    #[test]
    fn an_idle_link_teaches_nothing_and_one_message_always_fits() {
        let mut w = SendWindow::new(100, 1000, Duration::from_millis(300));
        let t = Instant::now();
        w.on_send(100);
        w.observe(t, 0);
        w.observe(t + Duration::from_secs(5), 0);
        assert_eq!(w.rate(), None, "drained and never held back: no sample");
        assert_eq!(w.target(), 200);
        assert!(w.fits(0, 5000), "one message larger than the window still goes");
        assert!(!w.fits(150, 100));
    }
}
