//! Retry schedules: when to try a lost connection again. Sans-IO: the caller says when an
//! attempt failed, the schedule says when the next may go.

use std::time::{Duration, Instant};

/// A growing pause between attempts, within an optional budget.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    budget: Option<Duration>,
    /// When the trouble started (the first failure since the last reset).
    since: Option<Instant>,
    pause: Duration,
}

impl Backoff {
    /// First pause `first`, each next one twice the last, at most `max`.
    pub fn new(first: Duration, max: Duration) -> Self {
        Backoff { first, max, budget: None, since: None, pause: first }
    }

    /// Gives up once an attempt would start more than `budget` after the first failure.
    pub fn within(mut self, budget: Duration) -> Self {
        self.budget = Some(budget);
        self
    }

    /// The connection was lost at `now`: the budget counts from here (not from the first
    /// failed attempt, which may come much later).
    pub fn lost(&mut self, now: Instant) {
        self.since.get_or_insert(now);
    }

    /// An attempt failed (or the connection was lost) at `now`: when to try next, or `None`
    /// when the budget is spent.
    pub fn failed(&mut self, now: Instant) -> Option<Instant> {
        let since = *self.since.get_or_insert(now);
        let next = now + self.pause;
        if self.budget.is_some_and(|b| next > since + b) {
            return None;
        }
        self.pause = (self.pause * 2).min(self.max);
        Some(next)
    }

    /// The connection is back: the next trouble starts afresh.
    pub fn reset(&mut self) {
        self.since = None;
        self.pause = self.first;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_the_cap() {
        let t0 = crate::testing::t0();
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(5));
        let mut now = t0;
        let mut pauses = vec![];
        for _ in 0..6 {
            let next = b.failed(now).unwrap();
            pauses.push((next - now).as_millis());
            now = next;
        }
        assert_eq!(pauses, [500, 1000, 2000, 4000, 5000, 5000]);
        b.reset();
        assert_eq!(b.failed(now).unwrap() - now, Duration::from_millis(500));
    }

    #[test]
    fn gives_up_past_the_budget() {
        let t0 = crate::testing::t0();
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(2)).within(Duration::from_secs(4));
        assert_eq!(b.failed(t0), Some(t0 + Duration::from_secs(1)));
        assert_eq!(b.failed(t0 + Duration::from_secs(1)), Some(t0 + Duration::from_secs(3)));
        assert_eq!(b.failed(t0 + Duration::from_secs(3)), None, "5 s is past the 4 s budget");
    }
}
