//! `syncy bench --suite relay`: the simulated relay room of issue 19 at 10, 20, 50 and 100
//! participants: an 8 Mb/s stream, a host uploading three streams, everyone joining over the
//! first minute with an uplink log-uniform over 1–50 Mb/s, round trips uniform over 20–150 ms,
//! 1 % loss, then a minute more. What it shows: how much of the room's data the host sends
//! itself against the room's size, how far the room plays, how long a participant waits for
//! its first picture after joining, and who stalls.

use std::time::{Duration, Instant};

use crate::core::sim::{SWARM_KBPS as KBPS, World, swarm_room};

/// Runs each room size and returns the Markdown table.
pub fn run(seed: u64) -> String {
    let mut t = String::from("## Relays in a simulated room (`syncy bench --suite relay`)\n\n");
    t += &format!(
        "An {} Mb/s stream, the host's upload held to 3 streams, participants joining over the first 60 s (uplinks log-uniform over 1–50 Mb/s, downlinks 100 Mb/s, round trips uniform over 20–150 ms, 1 % loss), then 60 s more; seed {seed}.\n\n",
        KBPS / 1000
    );
    t += "| participants | room played (of 120 s) | host upload | per participant | relays carried | first picture after joining (mean, longest; never) | stalled | CPU |\n|---|---|---|---|---|---|---|---|\n";
    for n in [10, 20, 50, 100] {
        eprintln!("simulating {n} relaying participants…");
        t += &room(n, seed);
    }
    t
}

fn room(n: usize, seed: u64) -> String {
    let cpu0 = super::cpu_now();
    let start = Instant::now();
    let mut w = swarm_room(start, n, seed);
    w.run_until(start + Duration::from_secs(120));
    let secs = 120.0;
    let host = w.uploaded as f64 / secs;
    let stream = (KBPS * 1000 / 8) as f64;
    let relayed = w.relayed as f64;
    let stalled = w.viewers().filter(|v| v.stats.stalls > 0).count();
    let (mean, longest, never) = first_pictures(&w);
    format!(
        "| {n} | {:.0} s | {:.2} MB/s ({:.2} streams) | {:.3} streams | {:.0} % | {mean:.1} s, {longest:.1} s; {never} | {stalled} | {:.1} s |\n",
        w.host.room_position(w.now) as f64 / 1e6,
        host / 1e6,
        host / stream,
        host / stream / n as f64,
        relayed * 100.0 / (relayed + w.uploaded as f64),
        super::cpu_now() - cpu0
    )
}

/// How long after joining the participants showed their first picture: the mean and the
/// longest, seconds, of those that did; and how many never did (closed, or still waiting).
fn first_pictures(w: &World) -> (f64, f64, usize) {
    let waits: Vec<f64> =
        w.slots.iter().filter_map(|s| Some(s.viewer.as_ref()?.stats.first_picture?.saturating_duration_since(s.joined).as_secs_f64())).collect();
    let mean = waits.iter().sum::<f64>() / waits.len().max(1) as f64;
    (mean, waits.iter().copied().fold(0.0, f64::max), w.slots.len() - waits.len())
}
