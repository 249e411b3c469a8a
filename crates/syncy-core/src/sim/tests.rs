//! The room's policy in simulated time: what the binary tests used to check by playing real
//! clips for minutes (fairness, upload and download limits, waiting for buffering, a late
//! joiner's position, seeks, twenty in sync), each in well under a second.

use std::time::Duration;

use super::*;
use crate::api::{Command, Event};
use crate::protocol::stream::ORIGINAL;

const CHUNK: u32 = 64 * 1024;
/// A generous bound on steps for any of these rooms (the livelock guard).
const STEPS: u64 = 2_000_000;

fn store() -> StoreConfig {
    StoreConfig::default()
}

fn room(autoplay: bool, wait: bool, upload_limit: u64, uplink: Option<u64>) -> World {
    World::new(crate::testing::t0(), media(120, 2_000, CHUNK), host_config(autoplay, wait, upload_limit, 120), uplink, 7)
}

/// The latest room state the host reported.
fn last_state(w: &World) -> Option<(bool, Vec<String>)> {
    w.events.iter().rev().find_map(|(_, e)| match e {
        Event::State { playing, waiting, .. } => Some((*playing, waiting.clone())),
        _ => None,
    })
}

/// The largest difference between participants' positions now, ms.
fn spread_ms(w: &World) -> f64 {
    let pos: Vec<i64> = w.viewers().map(|v| v.position_us(w.now)).collect();
    (pos.iter().max().unwrap() - pos.iter().min().unwrap()) as f64 / 1000.0
}

#[test]
fn three_participants_on_one_capped_uplink_get_a_fair_share() {
    // The file is 2 Mb/s; the uplink carries 600 KB/s for all three: each gets a third.
    let mut w = room(false, true, 0, Some(600_000));
    for name in ["ann", "bob", "cy"] {
        w.join(name, LinkSpec::rtt(20, 0.0), store());
    }
    w.run_for(Duration::from_secs(20));
    let got: Vec<u64> = w.viewers().map(|v| v.stats.received).collect();
    let (lo, hi) = (*got.iter().min().unwrap() as f64, *got.iter().max().unwrap() as f64);
    assert!(hi / lo < 1.15, "shares {got:?}");
    let total: u64 = got.iter().sum();
    assert!(total as f64 > 0.9 * 600_000.0 * 19.0, "the uplink is used: {total} bytes in 20 s");
}

#[test]
fn the_upload_limit_holds_for_the_whole_room_within_ten_percent() {
    // Replaces the binary test streaming::the_upload_limit_holds_within_ten_percent.
    let limit = 300_000;
    let mut w = room(false, true, limit, None);
    for name in ["ann", "bob"] {
        w.join(name, LinkSpec::rtt(20, 0.01), store());
    }
    w.run_for(Duration::from_secs(2));
    let (before, from) = (w.uploaded, w.now);
    w.run_for(Duration::from_secs(20));
    let rate = (w.uploaded - before) as f64 / (w.now - from).as_secs_f64();
    assert!((rate - limit as f64).abs() < 0.1 * limit as f64, "{rate:.0} B/s against {limit}");
}

#[test]
fn the_download_limit_holds_within_ten_percent() {
    // Replaces the binary test streaming::the_download_limit_holds_within_ten_percent.
    let limit = 200_000;
    let mut w = room(false, true, 0, None);
    let slow = w.join("slow", LinkSpec::rtt(20, 0.01), StoreConfig { download_limit: limit, ..store() });
    let fast = w.join("fast", LinkSpec::rtt(20, 0.01), store());
    w.run_for(Duration::from_secs(2));
    let before = w.viewer(slow).stats.received;
    w.run_for(Duration::from_secs(20));
    let rate = (w.viewer(slow).stats.received - before) as f64 / 20.0;
    assert!((rate - limit as f64).abs() < 0.1 * limit as f64, "{rate:.0} B/s against {limit}");
    assert_eq!(w.viewer(fast).stats.received, w.manifest.size, "the other is not held back");
}

#[test]
fn the_room_waits_for_a_participant_who_buffers_and_names_them() {
    let mut w = room(true, true, 0, None);
    w.join("fast", LinkSpec::rtt(20, 0.0), store());
    // 150 KB/s for a 250 KB/s file: it runs dry.
    let slow = w.join("slow", LinkSpec::rtt(20, 0.0).capped(150_000), store());
    w.drive_bounded(Duration::from_secs(60), STEPS, |w| last_state(w).is_some_and(|(playing, waiting)| !playing && waiting == ["slow"]));
    // The one who does not wait holds still at the room's position meanwhile: nobody runs
    // ahead.
    let paused_at = w.events.iter().rev().find_map(|(_, e)| match e {
        Event::State { position_ms, .. } => Some(*position_ms as i64 * 1000),
        _ => None,
    });
    w.run_for(Duration::from_millis(200));
    assert!(last_state(&w).is_some_and(|(playing, _)| !playing), "still waiting");
    assert!((w.viewer(0).position_us(w.now) - paused_at.unwrap()).abs() < 1000);
    assert!(w.viewer(slow).buffering());
}

#[test]
fn without_waiting_the_room_plays_on_past_a_participant_who_buffers() {
    let mut w = room(true, false, 0, None);
    w.join("fast", LinkSpec::rtt(20, 0.0), store());
    let slow = w.join("slow", LinkSpec::rtt(20, 0.0).capped(150_000), store());
    w.drive_bounded(Duration::from_secs(60), STEPS, |w| w.slots[slow].viewer.as_ref().is_some_and(|v| v.stats.stalls > 0));
    w.run_for(Duration::from_secs(5));
    assert!(w.events.iter().all(|(_, e)| !matches!(e, Event::State { playing: false, .. })), "the room never paused");
}

#[test]
fn three_play_in_sync_pause_together_and_a_late_joiner_starts_at_the_room_position() {
    // Replaces the binary test playback::three_participants_play_in_sync_pause_together_and_a_late_joiner_starts_at_the_room_position
    // for its policy; the binary keeps a smaller smoke of real decoding.
    let mut w = room(true, true, 0, None);
    for name in ["ann", "bob", "cy"] {
        w.join(name, LinkSpec::rtt(40, 0.01), store());
    }
    w.run_for(Duration::from_secs(15));
    assert!(spread_ms(&w) < 20.0, "spread {} ms", spread_ms(&w));
    w.command(Command::Pause);
    w.run_for(Duration::from_secs(1));
    let paused: Vec<i64> = w.viewers().map(|v| v.position_us(w.now)).collect();
    w.run_for(Duration::from_secs(2));
    let still: Vec<i64> = w.viewers().map(|v| v.position_us(w.now)).collect();
    assert_eq!(paused, still, "everyone paused");
    w.command(Command::Play);
    w.run_for(Duration::from_secs(10));
    let late = w.join("dee", LinkSpec::rtt(40, 0.01), store());
    let took = w.drive_bounded(Duration::from_secs(10), STEPS, |w| w.slots[late].viewer.as_ref().is_some_and(|v| v.playing()));
    let (ann, dee) = (w.viewer(0).position_us(w.now), w.viewer(late).position_us(w.now));
    assert!(ann > 20_000_000 && (dee - ann).abs() < 500_000, "dee at {dee} µs, ann at {ann}, after {took:?}");
    w.run_for(Duration::from_secs(8));
    assert!(spread_ms(&w) < 20.0, "spread {} ms with the late joiner", spread_ms(&w));
}

#[test]
fn a_seek_to_an_unfetched_point_plays_on_everyone_within_a_second() {
    // Replaces the binary test playback::a_seek_to_an_unfetched_point_plays_on_every_participant_within_half_a_second
    // for its policy (with a 64 KiB-chunk file, at 40 ms round trips and 1% loss).
    let mut w = room(true, true, 0, None);
    for name in ["ann", "bob", "cy"] {
        w.join(name, LinkSpec::rtt(40, 0.01), StoreConfig { capacity: 4 << 20, ..store() });
    }
    w.run_for(Duration::from_secs(5));
    w.command(Command::SeekTo(90.0));
    let took = w.drive_bounded(Duration::from_secs(5), STEPS, |w| w.viewers().all(|v| v.playing() && v.position_us(w.now) > 90_000_000));
    assert!(took < Duration::from_secs(1), "playing again after {took:?}");
    w.run_for(Duration::from_secs(8));
    assert!(spread_ms(&w) < 20.0, "spread {} ms after the seek", spread_ms(&w));
}

#[test]
fn twenty_participants_at_20_ms_and_1_percent_loss_stay_within_20_ms() {
    let mut w = room(true, true, 0, None);
    for i in 0..20 {
        w.join(&format!("p{i}"), LinkSpec::rtt(20, 0.01), store());
    }
    w.run_for(Duration::from_secs(10));
    let stalls = |w: &World| w.viewers().map(|v| v.stats.stalls).collect::<Vec<_>>();
    let settled = stalls(&w);
    let from: Vec<i64> = w.viewers().map(|v| v.position_us(w.now)).collect();
    let mut worst: f64 = 0.0;
    for _ in 0..40 {
        w.run_for(Duration::from_millis(500));
        assert!(w.viewers().count() == 20 && w.viewers().all(|v| v.playing()), "everyone plays");
        worst = worst.max(spread_ms(&w));
    }
    let to: Vec<i64> = w.viewers().map(|v| v.position_us(w.now)).collect();
    assert!(from.iter().zip(&to).all(|(a, b)| (b - a - 20_000_000).abs() < 100_000), "20 s played by everyone");
    assert!(worst < 20.0, "worst spread {worst} ms");
    assert_eq!(stalls(&w), settled, "nobody stalled once playing");
}

#[test]
fn a_room_runs_the_same_way_for_the_same_seed() {
    let run = || {
        let mut w = room(true, true, 0, Some(400_000));
        for name in ["ann", "bob"] {
            w.join(name, LinkSpec::rtt(30, 0.05), store());
        }
        w.run_for(Duration::from_secs(10));
        (w.uploaded, w.viewers().map(|v| v.position_us(w.now)).collect::<Vec<_>>(), w.steps)
    };
    assert_eq!(run(), run());
}

#[test]
fn a_participant_whose_link_drops_comes_back_with_what_it_held_and_plays_in_step() {
    // The policy of the binary test resume::a_participant_whose_link_drops_reconnects_and_keeps_what_it_holds
    // (which keeps the real failure detection and re-signaling): the stores, the picture and
    // the counts live on in the core; the host knows nothing of the old link's requests.
    let mut w = room(true, false, 1_000_000, None);
    w.join("ann", LinkSpec::rtt(40, 0.01), store());
    let bob = w.join("bob", LinkSpec::rtt(40, 0.01), store());
    w.run_for(Duration::from_secs(10));
    let (held, dup) = (w.viewer(bob).core().original().held_bytes(), w.viewer(bob).duplicates(w.now));
    assert!(held > 0 && held < w.manifest.size, "in the middle: {held} bytes");
    w.drop_link(bob, Duration::from_secs(3));
    assert!(w.events.iter().any(|(_, e)| matches!(e, Event::PeerLeft { name, .. } if name == "bob")), "the host let the link go");
    w.drive_bounded(Duration::from_secs(20), STEPS, |w| w.viewer(bob).stats.reconnects == 1 && w.viewer(bob).playing());
    assert!(w.viewer(bob).core().original().held_bytes() >= held, "kept what it held");
    let all = |w: &World| w.viewer(bob).core().snapshot(w.now, 0, crate::participant::EdgeFacts::default()).received_chunks == w.manifest.chunks;
    w.drive_bounded(Duration::from_secs(120), STEPS, all);
    let again = w.viewer(bob).duplicates(w.now) - dup;
    assert!(again * 20 <= w.manifest.chunks, "{again} chunks fetched again after the drop");
    w.run_for(Duration::from_secs(5));
    assert!(spread_ms(&w) < 20.0, "in step again: spread {} ms", spread_ms(&w));
}

#[test]
fn participants_whose_clocks_run_fast_or_slow_play_the_rooms_minutes_within_the_deadband() {
    // Crystals are off by tens of parts per million; 200 is a bad one: over two and a half
    // minutes those clocks part by 60 ms. Each participant plays the room's minutes, not its
    // own clock's, and keeps within the follower's dead band of the room (15 ms: inside it the
    // rate is left alone, so a fast clock drifts to its edge, is nudged back, and drifts again;
    // 16.5 ms at worst here by the host's clock, with the offset estimate's error). Two clocks
    // drifting opposite ways can so be twice the dead band apart: 32 ms here at ±200 ppm. The
    // follower learns no clock rate (see the issue 16 note).
    let deadband_ms = crate::clock::FollowerConfig::default().deadband_us as f64 / 1000.0;
    let mut w = World::new(crate::testing::t0(), media(300, 2_000, CHUNK), host_config(true, true, 0, 300), None, 11);
    for (i, ppm) in [-200.0, 40.0, 200.0].into_iter().enumerate() {
        w.join_with_clock(&format!("p{i}"), LinkSpec::rtt(20, 0.01), store(), ppm);
    }
    w.run_for(Duration::from_secs(10));
    let from: Vec<i64> = w.viewers().map(|v| v.position_us(w.now)).collect();
    let (mut worst, mut worst_off): (f64, f64) = (0.0, 0.0);
    for _ in 0..150 {
        w.run_for(Duration::from_secs(1));
        assert!(w.viewers().count() == 3 && w.viewers().all(|v| v.playing()), "everyone plays");
        worst = worst.max(spread_ms(&w));
        // Off the room as the host's clock has it, not as each participant estimates it.
        let room = w.host.room_position(w.now);
        let off = w.viewers().map(|v| (v.position_us(w.now) - room).abs() as f64 / 1000.0).fold(0.0, f64::max);
        worst_off = worst_off.max(off);
    }
    let to: Vec<i64> = w.viewers().map(|v| v.position_us(w.now)).collect();
    // The room's 150 s (a participant on its own clock would be 30 ms off).
    assert!(from.iter().zip(&to).all(|(a, b)| (b - a - 150_000_000).abs() < 15_000), "{from:?} → {to:?}");
    assert!(worst_off <= deadband_ms + 5.0, "a participant {worst_off} ms off the room");
    assert!(worst <= 2.0 * deadband_ms + 5.0, "worst spread {worst} ms");
}

#[test]
fn a_participant_fetching_as_fast_as_the_fastest_link_stays_inside_half_its_control_budget() {
    // The host lets go a participant over CONTROL_RATE (TRUST-REVIEW #11). The most an honest
    // one sends: read-ahead in the smallest chunks (16 KiB) at the fastest the data channel
    // has run (490 MB/s, BENCHMARKS.md), with room in its store for all of it.
    let small = crate::protocol::stream::MIN_CHUNK_SIZE;
    let mut w = World::new(crate::testing::t0(), media(600, 16_000, small), host_config(true, true, 0, 600), None, 3);
    let fast = w.join("fast", LinkSpec::rtt(2, 0.0).capped(490_000_000), StoreConfig { capacity: 2 << 30, ..store() });
    w.run_for(Duration::from_secs(1));
    let (before, received) = (w.slots[fast].controls, w.viewer(fast).stats.received);
    w.run_for(Duration::from_secs(1));
    let (sent, cost) = (w.slots[fast].controls.0 - before.0, w.slots[fast].controls.1 - before.1);
    let rate = (w.viewer(fast).stats.received - received) as f64;
    eprintln!("{sent} control messages costing {cost} in a second, at {:.0} MB/s", rate / 1e6);
    assert!(rate > 300e6, "the link is used: {rate} B/s");
    assert!(cost < crate::host::CONTROL_RATE / 2.0, "{cost} of the budget's {} a second", crate::host::CONTROL_RATE);
    assert!(!w.events.iter().any(|(_, e)| matches!(e, Event::PeerLeft { .. })), "nobody was let go");
}

#[test]
fn a_participants_uplink_and_downlink_are_capped_apart() {
    // Two on the same fast downlink; bob's uplink is a trickle (a home line's upload under
    // load). His chunks come as fast as ann's; his reports, which cost what they weigh, wait.
    let mut w = room(true, false, 0, None);
    let fast = LinkSpec::rtt(20, 0.0).capped(1_000_000);
    w.join("ann", fast, store());
    w.join_linked("bob", (fast, LinkSpec::rtt(20, 0.0).capped(40)), store(), 0.0);
    w.run_for(Duration::from_secs(10));
    let got: Vec<u64> = w.viewers().map(|v| v.stats.received).collect();
    assert!(got[1] as f64 > got[0] as f64 * 0.8, "the downlink is his to use: {got:?}");
    // What the host knows of each comes up their uplinks: bob's news is seconds old.
    let reported = |name: &str| {
        w.events.iter().rev().find_map(|(_, e)| match e {
            Event::HostStats { peers, .. } => peers.iter().find(|p| p.name == name).map(|p| p.position_ms),
            _ => None,
        })
    };
    let (ann, bob) = (reported("ann").unwrap(), reported("bob").unwrap());
    assert!(bob + 2_000 < ann, "bob's reports queue on his uplink: ann at {ann} ms, bob at {bob} ms as the host sees them");
}

#[test]
fn a_hundred_joining_at_once_on_uncapped_links_is_no_livelock() {
    // Their chunks arrive microseconds apart: ten thousand deliveries in a row within a
    // microsecond each once tripped the livelock guard (`bench --suite sim` at 100).
    let mut w = World::new(crate::testing::t0(), media(60, 2_000, CHUNK), host_config(true, true, 0, 60), None, 1);
    for i in 0..100 {
        w.join(&format!("p{i}"), LinkSpec::rtt(20, 0.01), StoreConfig { capacity: 64 << 20, ..StoreConfig::default() });
    }
    w.run_for(Duration::from_millis(500));
    assert!(w.viewers().count() == 100 && w.uploaded > 0);
}

#[test]
fn every_range_served_is_hashed_and_every_participant_holds_its_signed_hashes_for_a_small_cost() {
    let mut w = room(true, true, 0, None);
    for name in ["ann", "bob", "cy"] {
        let slot = w.join(name, LinkSpec::rtt(40, 0.01), store());
        w.relaying(slot, 0);
    }
    w.run_for(Duration::from_secs(30));
    let batches = w.manifest.chunks.div_ceil(crate::protocol::hashes::HASH_BATCH) as usize;
    for v in w.viewers() {
        let held = v.core().original();
        let holds: Vec<u32> = (0..w.manifest.chunks).filter(|&i| held.has(i)).collect();
        assert!(holds.len() > 100, "{}: holds {} chunks", v.name, holds.len());
        // The first batch was made before it said it relays (it got those chunks from the
        // host: no check needed); every batch after came to it.
        let hashed = holds.iter().filter(|&&i| v.core().hashes().hash(ORIGINAL, i).is_some()).count();
        let first = crate::protocol::hashes::HASH_BATCH as usize;
        assert!(hashed + first >= holds.len(), "{}: hashes for {hashed} of the {} chunks it holds", v.name, holds.len());
        assert!(v.core().hashes().len() <= batches);
    }
    let share = w.hash_bytes as f64 / w.uploaded as f64;
    assert!(share > 0.0 && share < 0.03, "hash batches are {:.2} % of the upload", share * 100.0);
}

/// A room of `n` relaying participants on `2 Mb/s` media with a host that uploads `host_x`
/// times the stream, each participant's uplink `up` bytes/s (down 100 Mb/s).
fn relay_room(n: usize, host_x: f64, up: impl Fn(usize) -> u64) -> World {
    let kbps = 2_000;
    let limit = (host_x * kbps as f64 * 1000.0 / 8.0) as u64;
    let mut w = World::new(crate::testing::t0(), media(180, kbps, CHUNK), host_config(true, true, limit, 180), None, 11);
    for i in 0..n {
        let link = LinkSpec::rtt(40, 0.01);
        let slot = w.join_linked(&format!("p{i}"), (link.capped(12_500_000), link.capped(up(i))), store(), 0.0);
        w.relaying(slot, 0);
    }
    w
}

#[test]
fn ten_relaying_participants_start_together_and_play_without_stalls_on_a_host_uploading_one_and_a_half_streams() {
    let mut w = relay_room(10, 1.5, |_| 1_000_000);
    w.run_for(Duration::from_secs(20));
    let (from, sent_before) = (w.now, w.uploaded);
    w.run_for(Duration::from_secs(60));
    assert!(w.host.room_position(w.now) > 60_000_000, "the room plays on: {} s", w.host.room_position(w.now) / 1_000_000);
    for v in w.viewers() {
        assert_eq!(v.stats.stalls, 0, "{} stalled after its first picture: {:?}", v.name, v.stats);
        assert!(v.stats.first_picture.is_some());
    }
    let relayed: u64 = w.viewers().map(|v| v.stats.relayed).sum();
    let host: u64 = w.viewers().map(|v| v.stats.host).sum();
    assert!(relayed > 4 * host, "relays carry most of it: host {host}, relays {relayed}");
    assert!(host < 2 * w.manifest.size, "the host sends less than twice the file: {host}");
    // Within its budget (1.5 × 2 Mb/s), within ten percent.
    let rate = (w.uploaded - sent_before) as f64 / (w.now - from).as_secs_f64();
    assert!(rate < 1.1 * 375_000.0, "host upload {rate:.0} B/s");
}

/// What a room did, for the relay tests and the benchmark.
pub(super) struct SwarmOutcome {
    /// How far the room played.
    pub(super) room_s: f64,
    /// Host chunk bytes per second.
    pub(super) host_bps: f64,
    /// Participants that stalled after their first picture.
    pub(super) stalled: Vec<String>,
}

pub(super) fn outcome(w: &World) -> SwarmOutcome {
    let secs = (w.now - w.start).as_secs_f64();
    SwarmOutcome {
        room_s: w.host.room_position(w.now) as f64 / 1e6,
        host_bps: w.uploaded as f64 / secs,
        stalled: w.viewers().filter(|v| v.stats.stalls > 0).map(|v| format!("{} {:?}", v.name, v.stats)).collect(),
    }
}

#[test]
#[ignore = "issue 19, not met yet: of 120 s the room plays 90, and 11 of the 100 stall (measured 2026-12-07) — each at one chunk missing at the reader, asked of a slow neighbour that alone held it and brought it late (see the issue's note)"]
fn a_hundred_relaying_participants_joining_over_a_minute_play_without_stalls_on_three_streams_of_host_upload() {
    let mut w = super::swarm_room(crate::testing::t0(), 100, 3);
    w.run_for(Duration::from_secs(60));
    let o = outcome(&w);
    eprintln!("room played {:.0} s, host {:.2} MB/s, {} stalled", o.room_s, o.host_bps / 1e6, o.stalled.len());
    assert!(o.stalled.is_empty(), "{:#?}", o.stalled);
    assert!(o.room_s > 100.0, "the room played {:.0} s", o.room_s);
    assert!(o.host_bps <= 1.05 * 3_000_000.0, "host upload {:.0} B/s", o.host_bps);
}

#[test]
fn a_relay_that_lies_is_caught_cut_off_and_barred_and_nobody_keeps_its_bytes() {
    let mut w = relay_room(8, 2.0, |_| 1_000_000);
    w.lying(3);
    w.run_for(Duration::from_secs(60));
    let warnings: Vec<&str> = w.events.iter().filter_map(|(_, e)| if let Event::Warning { message } = e { Some(message.as_str()) } else { None }).collect();
    assert!(warnings.iter().any(|m| m.contains("p3 relayed chunks that are not the host's to two participants")), "{warnings:?}");
    for v in w.viewers().filter(|v| v.name != "p3") {
        let o = v.core().original();
        let held: Vec<u32> = (0..w.manifest.chunks).filter(|&i| o.has(i)).collect();
        assert!(held.len() > 100, "{} plays on: holds {}", v.name, held.len());
        assert!(held.iter().all(|&i| o.get(i).is_some_and(|b| b.iter().all(|&x| x == 0))), "{} keeps only the host's bytes", v.name);
    }
    // Barred: no link of the liar's is up any more.
    let now = w.now;
    let liar = w.slots[3].viewer.as_mut().unwrap().relay_report(now).unwrap();
    assert_eq!(liar.links, 0, "{liar:?}");
}

#[test]
fn a_relay_that_leaves_mid_chunk_costs_its_neighbours_only_a_re_request() {
    let mut w = relay_room(8, 2.0, |_| 1_000_000);
    w.run_for(Duration::from_secs(40));
    let stalls: Vec<u32> = w.viewers().map(|v| v.stats.stalls).collect();
    let dups: u32 = w.viewers().map(|v| v.duplicates(w.now)).sum();
    // p2's link drops while its neighbours are fetching from it; it comes back 10 s later.
    w.drop_link(2, Duration::from_secs(10));
    w.run_for(Duration::from_secs(30));
    for (i, v) in w.viewers().enumerate().filter(|(_, v)| v.name != "p2") {
        assert_eq!(v.stats.stalls, stalls[i], "{} stalled when p2 left: {:?}", v.name, v.stats);
    }
    let dups_after: u32 = w.viewers().map(|v| v.duplicates(w.now)).sum();
    assert!(dups_after - dups < 20, "{} chunks came twice", dups_after - dups);
}
