//! The participant's cadences (sans-IO): pings — a burst of eight 50 ms apart, so the clock
//! offset is known before the room's state matters, then one a second — stats each second, and
//! reports to the host at least every 900 ms (besides the ones a change sends at once).

use std::time::{Duration, Instant};

/// Quick pings after a (re)connection.
const QUICK_PINGS: u32 = 8;
const QUICK: Duration = Duration::from_millis(50);
const SLOW: Duration = Duration::from_secs(1);
/// How often stats are due.
pub const STATS_EVERY: Duration = Duration::from_secs(1);
/// A report goes at least this often.
pub const REPORT_AT_LEAST: Duration = Duration::from_millis(900);
/// Reports a change sends go at most this often: a picture that flickers between showing
/// and waiting (data arriving just in time) would otherwise send one per frame, past the
/// host's control budget (it let whole simulated relay rooms go for it).
pub const REPORT_AT_MOST: Duration = Duration::from_millis(100);

/// What is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Send a ping.
    Ping,
    /// Take stats (and look at what times out).
    Stats,
    /// Send the report a change asked for.
    Report,
}

/// The schedule.
#[derive(Debug, Clone)]
pub struct Cadence {
    pings: u32,
    next_ping: Instant,
    next_stats: Instant,
    last_report: Instant,
    /// A change wants a report, held back until then.
    report_at: Option<Instant>,
}

impl Cadence {
    /// Starting at `now`: a ping and stats at once.
    pub fn new(now: Instant) -> Cadence {
        Cadence { pings: 0, next_ping: now, next_stats: now, last_report: now, report_at: None }
    }

    /// A new connection: the quick pings again.
    pub fn reconnected(&mut self, now: Instant) {
        self.pings = 0;
        self.next_ping = now;
    }

    /// When something is next due.
    pub fn poll_timeout(&self) -> Instant {
        self.next_ping.min(self.next_stats).min(self.report_at.unwrap_or(self.next_stats))
    }

    /// What is due at `now` (each once).
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Due> {
        let mut due = Vec::new();
        if now >= self.next_ping {
            self.pings += 1;
            self.next_ping = now + if self.pings < QUICK_PINGS { QUICK } else { SLOW };
            due.push(Due::Ping);
        }
        if now >= self.next_stats {
            self.next_stats = now + STATS_EVERY;
            due.push(Due::Stats);
        }
        if self.report_at.is_some_and(|t| now >= t) {
            self.report_at = None;
            due.push(Due::Report);
        }
        due
    }

    /// Something changed that the host should hear: whether a report may go now; if not, one
    /// is due (`Due::Report`) [`REPORT_AT_MOST`] after the last.
    pub fn changed(&mut self, now: Instant) -> bool {
        let next = self.last_report + REPORT_AT_MOST;
        if now >= next {
            return true;
        }
        self.report_at.get_or_insert(next);
        false
    }

    /// A report is wanted at `at` (not before: see `ParticipantCore`'s stall grace), or
    /// later if one is already held back until then.
    pub fn report_by(&mut self, at: Instant) {
        self.report_at = Some(self.report_at.map_or(at, |t| t.max(at)));
    }

    /// A report went out at `now`.
    pub fn reported(&mut self, now: Instant) {
        self.last_report = now;
        self.report_at = None;
    }

    /// The last report is old enough for another.
    pub fn report_due(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last_report) >= REPORT_AT_LEAST
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eight_quick_pings_then_one_a_second_and_again_after_a_reconnection() {
        let t0 = crate::testing::t0();
        let mut c = Cadence::new(t0);
        let mut pings = vec![];
        let mut now = t0;
        while now < t0 + Duration::from_millis(3500) {
            if c.handle_timeout(now).contains(&Due::Ping) {
                pings.push((now - t0).as_millis());
            }
            now = c.poll_timeout();
        }
        assert_eq!(pings, [0, 50, 100, 150, 200, 250, 300, 350, 1350, 2350, 3350]);
        c.reconnected(now);
        assert_eq!(c.poll_timeout(), now);
        assert!(c.handle_timeout(now).contains(&Due::Ping));
        assert_eq!(c.poll_timeout(), now + QUICK);
    }

    #[test]
    fn stats_each_second_and_reports_at_least_every_900_ms() {
        let t0 = crate::testing::t0();
        let mut c = Cadence::new(t0);
        assert_eq!(c.handle_timeout(t0), [Due::Ping, Due::Stats]);
        assert_eq!(c.handle_timeout(t0 + STATS_EVERY), [Due::Ping, Due::Stats]);
        assert!(c.report_due(t0 + REPORT_AT_LEAST));
        c.reported(t0 + Duration::from_millis(950));
        assert!(!c.report_due(t0 + Duration::from_millis(1500)));
    }

    #[test]
    fn reports_a_change_sends_go_at_most_every_100_ms_and_a_held_one_goes_later() {
        let t0 = crate::testing::t0();
        let mut c = Cadence::new(t0);
        c.reported(t0);
        assert!(!c.changed(t0 + Duration::from_millis(10)), "too soon after the last");
        assert!(!c.changed(t0 + Duration::from_millis(20)));
        assert_eq!(c.report_at, Some(t0 + REPORT_AT_MOST), "one report, held back");
        assert!(c.poll_timeout() <= t0 + REPORT_AT_MOST);
        assert!(c.handle_timeout(t0 + REPORT_AT_MOST).contains(&Due::Report));
        c.reported(t0 + REPORT_AT_MOST);
        assert!(!c.handle_timeout(t0 + REPORT_AT_MOST * 2).contains(&Due::Report), "once");
        assert!(c.changed(t0 + REPORT_AT_MOST * 2));
    }
}
