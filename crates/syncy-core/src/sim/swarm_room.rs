//! The room of issue 19, for its test and `syncy bench --suite relay`: an 8 Mb/s stream, a
//! host uploading three streams, relaying participants joining over the first minute with
//! uplinks log-uniform over 1–50 Mb/s (downlinks 100 Mb/s), round trips uniform over
//! 20–150 ms, 1 % loss.

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use super::{LinkSpec, World, host_config, media};
use crate::buffer::StoreConfig;

/// The stream, kb/s.
pub const SWARM_KBPS: u64 = 8_000;

/// The room at `start`, with `n` participants drawn from `seed` joined on schedule (the
/// world runs until the last has joined).
pub fn swarm_room(start: Instant, n: usize, seed: u64) -> World {
    let limit = 3 * SWARM_KBPS * 1000 / 8;
    let mut w = World::new(start, media(300, SWARM_KBPS, 64 * 1024), host_config(true, true, limit, 300), None, seed);
    for (i, (at, up, rtt)) in swarm_joins(n, seed).into_iter().enumerate() {
        w.run_until(start + at);
        let link = LinkSpec::rtt(rtt, 0.01);
        let slot = w.join_linked(&format!("p{i}"), (link.capped(12_500_000), link.capped(up)), StoreConfig::default(), 0.0);
        w.relaying(slot, 0);
    }
    w
}

/// The joins in order: when, uplink B/s, round trip ms.
pub fn swarm_joins(n: usize, seed: u64) -> Vec<(Duration, u64, u64)> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut joins: Vec<(Duration, u64, u64)> = (0..n)
        .map(|_| {
            let at = Duration::from_millis(rng.random_range(0..60_000));
            let up_mbps = rng.random_range(1f64.ln()..50f64.ln()).exp();
            (at, (up_mbps * 125_000.0) as u64, rng.random_range(20..=150))
        })
        .collect();
    joins.sort();
    joins
}
