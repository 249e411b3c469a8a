//! Issue 19: participants relay verified chunks to each other, so a host whose upload is
//! little more than one stream serves a whole room.

use std::time::Duration;

use serde_json::Value;

use super::harness::{Proc, clip_with, link_of, sha256};

const T: Duration = Duration::from_secs(150);
const NAMES: [&str; 8] = ["ann", "bob", "cy", "dee", "eve", "fay", "gus", "hal"];

/// Every `state` after the participant's first picture: none may be buffering.
fn stalls_after_first_frame(p: &Proc) -> Vec<Value> {
    let states = p.seen.iter().filter(|v| v["event"] == "state");
    states.skip_while(|v| v["buffering"] != false).filter(|v| v["buffering"] == true).cloned().collect()
}

#[test]
fn eight_relaying_participants_play_a_minute_from_a_host_with_one_and_a_half_streams() {
    let _real_time = super::harness::real_time();
    let seconds = 70;
    let file = clip_with("relay.mp4", seconds, "400kb/s", "320x180", "32kb/s");
    let want = sha256(&file);
    let size = std::fs::metadata(&file).unwrap().len();
    // One and a half times the file's own rate (video, sound and container).
    let limit = size * 3 / 2 / seconds as u64;
    let dir = super::harness::test_dir();
    let mut host = Proc::host(&file, dir.path(), &["--upload-limit", &limit.to_string()]);
    let link = link_of(&mut host);
    let mut ps: Vec<Proc> = NAMES.iter().map(|n| Proc::join(&link, n, dir.path(), &["--render", "none", "--quality", "high", "--no-sound"])).collect();
    // Everyone shows its first picture (the room paused), then the room plays.
    let mut first = 0.0f64;
    for p in ps.iter_mut() {
        let joined = p.event("manifest", T)["t_ms"].as_f64().unwrap();
        let shown = p.wait_for("a first picture", T, |v| v["event"] == "state" && v["buffering"] == false)["t_ms"].as_f64().unwrap();
        first = first.max(shown - joined);
    }
    host.send("play");
    for p in ps.iter_mut() {
        p.wait_for("a minute played", T, |v| v["event"] == "stats" && v["position_ms"].as_u64().unwrap_or(0) >= 60_000);
    }
    for (p, name) in ps.iter_mut().zip(NAMES) {
        let c = p.event("complete", T);
        assert_eq!((c["sha256"].as_str(), c["matched"].as_bool()), (Some(want.as_str()), Some(true)), "{name}: {c}");
        assert_eq!(sha256(&dir.path().join(format!("{name}.copy"))), want, "{name}'s saved copy");
        p.drain();
        let stalls = stalls_after_first_frame(p);
        assert!(stalls.is_empty(), "{name} stalled after its first picture: {stalls:?}");
    }
    // The host's own share: less than two copies of the file for eight participants; the
    // relays carried the rest, each telling what it uploaded.
    host.drain();
    let mark = host.mark();
    let hs = host.wait_after(mark, "host stats after everyone is complete", T, |v| {
        v["event"] == "stats" && v["peers"].as_array().is_some_and(|p| p.len() == NAMES.len())
    });
    let sent = hs["sent_bytes"].as_u64().unwrap_or_else(|| panic!("no sent_bytes in {hs}"));
    let relayed = hs["relayed_bytes"].as_u64().unwrap_or_else(|| panic!("no relayed_bytes in {hs}"));
    let uploads: u64 = ps.iter().filter_map(|p| p.seen.iter().rev().find(|v| v["event"] == "stats")).map(|s| s["relay_up_bytes"].as_u64().unwrap_or(0)).sum();
    eprintln!(
        "eight relaying: the host sent {sent} bytes, relays {relayed} ({uploads} by the participants' own count), of a {size}-byte file; the last first picture {:.1} s after its manifest",
        first / 1000.0
    );
    assert!(sent < 2 * size, "the host sent {sent} bytes of a {size}-byte file to {} participants", NAMES.len());
    assert!(relayed > 4 * size, "relays carried {relayed} bytes of {} copies of {size}", NAMES.len());
    assert!(uploads > 4 * size, "the participants' own relay uploads add up to {uploads} bytes");
    assert_eq!(host.quit(), 0);
    for p in ps.iter_mut() {
        p.event("stream_end", T);
        assert_eq!(p.wait(Duration::from_secs(15)), 0);
    }
}

#[test]
fn a_participant_that_does_not_relay_is_served_by_the_host_and_links_with_nobody() {
    let file = clip_with("relay.mp4", 70, "400kb/s", "320x180", "32kb/s");
    let want = sha256(&file);
    let dir = super::harness::test_dir();
    let mut host = Proc::host(&file, dir.path(), &[]);
    let link = link_of(&mut host);
    let mut a = Proc::join(&link, "ann", dir.path(), &["--render", "none", "--no-relay"]);
    let mut b = Proc::join(&link, "bob", dir.path(), &["--render", "none"]);
    for p in [&mut a, &mut b] {
        assert_eq!(p.event("complete", T)["sha256"], want.as_str());
    }
    a.drain();
    let s = a.wait_for("stats", T, |v| v["event"] == "stats");
    assert!(s.get("relay_up_bytes").is_none(), "relaying is off: no relay figures in {s}");
    let s = b.wait_for("stats", T, |v| v["event"] == "stats" && v.get("relay_links").is_some());
    assert_eq!(s["relay_links"], 0, "bob's only possible neighbour relays nothing: {s}");
    assert_eq!(host.quit(), 0);
}
