//! `syncy bench --suite sim`: a simulated room of N participants playing for M minutes over
//! 20 ms round trips with 1% loss (the sans-IO host core and participant models over simulated
//! links: no network, no decoding, virtual time). What it shows: how the room's policy scales —
//! sync spread, stalls, the host's upload — and what the host core costs in CPU per simulated
//! minute, beside the whole simulation's.

use std::time::{Duration, Instant};

use crate::core::buffer::StoreConfig;
use crate::core::sim::{LinkSpec, World, host_config, media};

/// Runs the room and returns the Markdown table.
pub fn run(participants: usize, minutes: u32) -> String {
    let minutes = minutes.max(1) as u64;
    let duration_s = minutes * 60 + 30;
    eprintln!("simulating {participants} participants for {minutes} min…");
    let start = Instant::now();
    let mut w = World::new(start, media(duration_s, 2_000, 64 * 1024), host_config(true, true, 0, duration_s), None, 1);
    w.meter = Some(Instant::now);
    let cpu0 = super::cpu_now();
    for i in 0..participants {
        w.join(&format!("p{i}"), LinkSpec::rtt(20, 0.01), StoreConfig { capacity: 64 << 20, ..StoreConfig::default() });
    }
    // The first 10 s: everyone joins and buffers; the room is judged after.
    w.run_for(Duration::from_secs(10));
    let stalls0: u32 = w.viewers().map(|v| v.stats.stalls).sum();
    let host0 = w.host_time;
    let mut spreads = Vec::new();
    let end = w.now + Duration::from_secs(minutes * 60);
    while w.now < end {
        w.run_for(Duration::from_secs(1));
        let pos: Vec<i64> = w.viewers().filter(|v| v.playing()).map(|v| v.position_us(w.now)).collect();
        if pos.len() == participants {
            spreads.push((pos.iter().max().unwrap_or(&0) - pos.iter().min().unwrap_or(&0)) as f64 / 1000.0);
        }
    }
    let cpu = super::cpu_now() - cpu0;
    let stalls: u32 = w.viewers().map(|v| v.stats.stalls).sum::<u32>() - stalls0;
    let stalled: Duration = w.viewers().map(|v| v.stats.stalled_for).sum();
    spreads.sort_by(f64::total_cmp);
    let pct = |p: f64| spreads.get(((spreads.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(f64::NAN);
    // The whole run: each participant fetches as far ahead as its buffer allows from the start.
    let up_mb = w.uploaded as f64 / 1e6;
    let played_min = minutes as f64 + 10.0 / 60.0;
    let host_ms = (w.host_time - host0).as_secs_f64() * 1000.0 / minutes as f64;
    let mut t = String::from("## Simulated room (`syncy bench --suite sim`)\n\n");
    t += &format!(
        "{participants} participants, {minutes} simulated min, 2 Mb/s file in 64 KiB chunks, 20 ms round trips, 1% loss (as retransmission delay), seed 1.\n\n"
    );
    t += "| measure | value |\n|---|---|\n";
    t += &format!(
        "| sync spread, median / p99 / max (all playing, sampled each second) | {:.1} / {:.1} / {:.1} ms ({} samples) |\n",
        pct(0.5),
        pct(0.99),
        pct(1.0),
        spreads.len()
    );
    t += &format!("| stalls after the first 10 s (all participants) | {stalls} (frozen {:.1} s in all, joins included) |\n", stalled.as_secs_f64());
    let per_participant = up_mb * 1e6 / (played_min * 60.0 * 250_000.0 * participants as f64);
    t += &format!(
        "| host upload per simulated minute | {:.1} MB ({per_participant:.2} × the file's rate per participant, read-ahead included) |\n",
        up_mb / played_min
    );
    t += &format!("| host core CPU per simulated minute | {host_ms:.1} ms |\n");
    t += &format!(
        "| whole simulation CPU per simulated minute | {:.0} ms ({:.1} s wall in all) |\n",
        cpu * 1000.0 / minutes as f64,
        start.elapsed().as_secs_f64()
    );
    t
}
