//! The automatic quality level (sans-IO): from once-a-second samples of measured download
//! throughput and of how much playback time the buffer holds ahead, pick the level the link
//! sustains. Down quickly when the buffer drains, up slowly and only after the better level has
//! been sustainable for a while, so a noisy link does not flap between levels.

use std::time::{Duration, Instant};

/// A throughput sample, bits per second, from `bytes` received over the time requests were
/// outstanding (`busy`), capped by the download limit (bytes/s, 0: none) — the limit is part
/// of the link. `None` when the period says nothing about the link: less than `min_bytes`
/// arrived (the buffer is full, or the host has nothing yet) or nothing was asked for.
pub fn link_throughput(bytes: u64, busy: Duration, limit: u64, min_bytes: u64) -> Option<f64> {
    if bytes < min_bytes || busy.is_zero() {
        return None;
    }
    let bps = bytes as f64 * 8.0 / busy.as_secs_f64();
    Some(if limit > 0 { bps.min(limit as f64 * 8.0) } else { bps })
}

/// One rendition the host offers.
#[derive(Debug, Clone, PartialEq)]
pub struct Level {
    /// Its name ("low", "medium", "high").
    pub name: String,
    /// Its bit rate, bits per second.
    pub bps: u64,
}

/// Tuning of a [`LevelController`].
#[derive(Debug, Clone)]
pub struct LevelConfig {
    /// A level is sustainable when throughput ≥ its bit rate × this.
    pub headroom: f64,
    /// Below this much buffered playback time, a link that does not sustain the current level
    /// steps down at once.
    pub low_buffer: Duration,
    /// Step down after this many consecutive samples below the current level's bit rate,
    /// even with buffer left.
    pub down_samples: u32,
    /// A better level must be sustainable this long before stepping up.
    pub up_after: Duration,
    /// Weight of a new throughput sample in the running estimate (0–1).
    pub smoothing: f64,
}

impl Default for LevelConfig {
    fn default() -> Self {
        LevelConfig { headroom: 1.4, low_buffer: Duration::from_secs(4), down_samples: 2, up_after: Duration::from_secs(10), smoothing: 0.5 }
    }
}

/// Picks a level from throughput and buffer samples.
#[derive(Debug, Clone)]
pub struct LevelController {
    cfg: LevelConfig,
    /// Levels, lowest bit rate first.
    levels: Vec<Level>,
    current: usize,
    estimate: Option<f64>,
    below: u32,
    better_since: Option<Instant>,
    /// A switch not yet polled.
    switched: bool,
}

impl LevelController {
    /// A controller over `levels` (any order), starting at `start` (clamped to the levels).
    pub fn new(mut levels: Vec<Level>, start: &str, cfg: LevelConfig) -> Self {
        levels.sort_by_key(|l| l.bps);
        let current = levels.iter().position(|l| l.name == start).unwrap_or(levels.len().saturating_sub(1));
        LevelController { cfg, levels, current, estimate: None, below: 0, better_since: None, switched: false }
    }

    /// The level now.
    pub fn current(&self) -> Option<&Level> {
        self.levels.get(self.current)
    }

    /// Makes `name` the current level (a choice by hand, or where auto resumes from).
    pub fn set_current(&mut self, name: &str) {
        if let Some(i) = self.levels.iter().position(|l| l.name == name) {
            self.current = i;
            self.below = 0;
            self.better_since = None;
            self.switched = false;
        }
    }

    /// The best level the estimate sustains with headroom (the lowest if none does).
    fn sustainable(&self, estimate: f64) -> usize {
        self.levels.iter().rposition(|l| l.bps as f64 * self.cfg.headroom <= estimate).unwrap_or(0)
    }

    /// The new level, once, after a sample changed it.
    pub fn poll_switch(&mut self) -> Option<&Level> {
        if std::mem::take(&mut self.switched) { self.levels.get(self.current) } else { None }
    }

    /// One sample: throughput in bits per second, playback time buffered ahead.
    pub fn handle_sample(&mut self, now: Instant, throughput_bps: f64, buffered: Duration) {
        if self.levels.is_empty() {
            return;
        }
        let a = self.cfg.smoothing;
        let estimate = self.estimate.map_or(throughput_bps, |e| e * (1.0 - a) + throughput_bps * a);
        self.estimate = Some(estimate);
        let current_bps = self.levels[self.current].bps as f64;

        // Down: the link falls short of the current level — at once when the buffer runs low,
        // otherwise after a few samples in a row (one bad second is noise). Going down follows
        // the raw sample when it is the lower, so a sudden drop is not smoothed away.
        let target = self.sustainable(estimate.min(throughput_bps));
        if target < self.current {
            self.better_since = None;
            self.below = if throughput_bps < current_bps { self.below + 1 } else { 0 };
            if buffered < self.cfg.low_buffer || self.below >= self.cfg.down_samples {
                self.below = 0;
                self.current = target;
                self.switched = true;
            }
            return;
        }
        self.below = 0;
        // Up: one step at a time, once a better level has been sustainable for a while.
        let target = self.sustainable(estimate);
        if target > self.current {
            let since = *self.better_since.get_or_insert(now);
            if now.saturating_duration_since(since) >= self.cfg.up_after && buffered >= self.cfg.low_buffer {
                self.better_since = None;
                self.current += 1;
                self.switched = true;
            }
        } else {
            self.better_since = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn levels() -> Vec<Level> {
        vec![Level { name: "high".into(), bps: 6_000_000 }, Level { name: "low".into(), bps: 1_000_000 }, Level { name: "medium".into(), bps: 2_500_000 }]
    }

    /// Runs one-second samples; returns the level name after each.
    fn run(c: &mut LevelController, t0: Instant, trace: &[(f64, u64)]) -> Vec<String> {
        trace
            .iter()
            .enumerate()
            .map(|(i, &(bps, buffered_s))| {
                let before = c.current().unwrap().name.clone();
                c.handle_sample(t0 + Duration::from_secs(i as u64), bps, Duration::from_secs(buffered_s));
                let now = c.current().unwrap().name.clone();
                // A change is reported once, and only a change.
                assert_eq!(c.poll_switch().map(|l| l.name.clone()), (now != before).then(|| now.clone()));
                assert!(c.poll_switch().is_none());
                now
            })
            .collect()
    }

    #[test]
    fn steps_down_within_three_seconds_of_a_throughput_drop() {
        let t0 = crate::testing::t0();
        let mut c = LevelController::new(levels(), "high", LevelConfig::default());
        // 20 s at 20 Mb/s, then the link drops to 1.6 Mb/s with 30 s still buffered.
        let mut trace = vec![(20e6, 30); 20];
        trace.extend(vec![(1.6e6, 30); 10]);
        let names = run(&mut c, t0, &trace);
        assert!(names[..20].iter().all(|n| n == "high"), "{names:?}");
        let first_low = names.iter().skip(20).position(|n| n == "low").expect("reaches low");
        assert!(first_low < 3, "stepped down after {} s: {names:?}", first_low + 1);
        // The buffer running dry makes it immediate.
        let mut c = LevelController::new(levels(), "high", LevelConfig::default());
        let names = run(&mut c, t0, &[(20e6, 1), (1.6e6, 1)]);
        assert_eq!(names[1], "low");
    }

    #[test]
    fn does_not_flap_on_a_noisy_link_and_climbs_back_slowly() {
        let t0 = crate::testing::t0();
        let mut c = LevelController::new(levels(), "medium", LevelConfig::default());
        // A link around 4 Mb/s (medium sustainable with headroom, high not), ±40% noise from
        // a fixed pseudo-random sequence, for five minutes.
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let trace: Vec<(f64, u64)> = (0..300)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let noise = (x % 800) as f64 / 1000.0 - 0.4;
                (4e6 * (1.0 + noise), 20)
            })
            .collect();
        let names = run(&mut c, t0, &trace);
        let switches = names.windows(2).filter(|w| w[0] != w[1]).count();
        assert!(switches <= 2, "{switches} switches: {names:?}");
        assert!(names.iter().all(|n| n != "high"), "high is never sustainable at 4 Mb/s ±40%");

        // From low, a fast link climbs one level at a time, ten seconds apart.
        let mut c = LevelController::new(levels(), "low", LevelConfig::default());
        let names = run(&mut c, t0, &vec![(50e6, 30); 25]);
        let medium_at = names.iter().position(|n| n == "medium").unwrap();
        let high_at = names.iter().position(|n| n == "high").unwrap();
        assert!((9..=11).contains(&medium_at) && high_at >= medium_at + 10, "{names:?}");
    }

    #[test]
    fn throughput_is_bytes_over_busy_time_capped_by_the_limit() {
        let ms = Duration::from_millis;
        // 64 KiB in 2 ms of requests out: a fast link, whatever the wall clock did.
        assert_eq!(link_throughput(65_536, ms(2), 0, 65_536), Some(65_536.0 * 8.0 / 0.002));
        // Under a 1.5 Mb/s limit the limit is the link.
        assert_eq!(link_throughput(65_536, ms(2), 187_500, 65_536), Some(1.5e6));
        // Too little, or nothing asked for: no sample.
        assert_eq!(link_throughput(1_000, ms(2), 0, 65_536), None);
        assert_eq!(link_throughput(1 << 20, Duration::ZERO, 0, 65_536), None);
    }

    #[test]
    fn no_levels_no_decisions() {
        let mut c = LevelController::new(vec![], "high", LevelConfig::default());
        c.handle_sample(crate::testing::t0(), 1e6, Duration::ZERO);
        assert!(c.poll_switch().is_none());
        assert!(c.current().is_none());
    }
}
