//! Issue 6: fault injection — 5% loss and 100 ms round trips between host and participants.
//!
//! Two ways to make the bad network, both on this machine only:
//! - two network namespaces the test makes, joined by a link that drops 5% and delays 50 ms
//!   each way (tunlink.rs: `tc netem`'s loss and delay, carried in user space over TUN
//!   devices, because these kernels have no `sch_netem`). The host is in one, the
//!   participants in the other, and they talk directly (host candidates). Needs root.
//! - a user-space relay in front of a local TURN server (coturn), with relay-only ICE: every
//!   packet of every link crosses it (see impair.rs). This is what found the two relayed-path
//!   bugs: relayed packets waiting for the next driver pass (vendor/webrtc/SYNCY-PATCH.md)
//!   and the participant's hello lost before the channel opened (`peer::wait_open`).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use std::process::Stdio;

use super::harness::{Daemon, Proc, bin, clip_with, daemon, free_port, sha256};
use super::playback::spreads;
use super::tunlink::{self, A_ADDR, B_ADDR};
use super::turn::coturn;

const T: Duration = Duration::from_secs(120);
/// How long after the room (re)starts playing it is judged, and for how long.
const SETTLE_MS: f64 = 12_000.0;
const WINDOW_MS: f64 = 6_000.0;

fn f(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or_else(|| panic!("{k} missing in {v}"))
}

fn received(v: &Value) -> u64 {
    v["received_chunks"].as_u64().unwrap_or(0)
}

/// Position samples (t_ms, position_ms) of a participant while the room played, after `from`.
fn playing_samples(p: &Proc, from: f64) -> Vec<(f64, f64)> {
    p.seen
        .iter()
        .filter(|v| v["event"] == "stats" && v["playing"] == true && v["buffering"] == false && f(v, "t_ms") > from)
        .map(|v| (f(v, "t_ms"), f(v, "position_ms")))
        .collect()
}

/// How one side's processes run: a wrapper (`ip netns exec NS`) and network flags.
struct Side<'a> {
    wrapper: &'a [&'a str],
    net: &'a [&'a str],
}

/// When the room last went from paused to playing, by the host's state events.
fn last_resume(host: &Proc) -> Option<f64> {
    let mut playing = false;
    let mut at = None;
    for v in host.seen.iter().filter(|v| v["event"] == "state") {
        let now = v["playing"] == true;
        if now && !playing {
            at = Some(f(v, "t_ms"));
        }
        playing = now;
    }
    at
}

/// The room plays on a bad network: both participants get byte-exact copies, one killed
/// mid-way resumes its copy, the signaling server restarted mid-stream does not stop the
/// picture, and the two play within 40 ms of each other.
fn a_room_on_a_bad_network(dir: &Path, host_side: Side, join_side: Side, serve: &dyn Fn() -> Daemon, server_url: &str) -> (f64, f64) {
    // What webrtc-rs's SCTP carries under 5% loss and 100 ms round trips is little (about
    // 25-60 KB/s per link here), so the clip is a small one: ~110 kb/s in all, 16 KiB chunks.
    let file = clip_with("faults.mp4", 60, "80kb/s", "320x180", "32kb/s");
    let want = sha256(&file);
    let mut server = Some(serve());
    let mut host_args = vec!["host", file.to_str().unwrap(), "--headless", "--server", server_url, "--chunk-size", "16KiB"];
    host_args.extend_from_slice(host_side.net);
    let mut host = Proc::spawn_wrapped(host_side.wrapper, &host_args, dir, "host", &[]);
    let link = host.event("room", T)["link"].as_str().unwrap().to_string();
    let join = |name: &str, tag: &str, extra: &[&str]| {
        let save = dir.join(format!("{name}.copy"));
        let mut args = vec!["join", &link, "--headless", "--name", name, "--save", save.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.extend_from_slice(join_side.net);
        Proc::spawn_wrapped(join_side.wrapper, &args, dir, tag, &[])
    };
    let mut ann = join("ann", "ann", &[]);
    // Bob's first run is held to 400 kb/s, so he is a third of the way in, not done, when he
    // is killed, however fast the link is.
    let mut bob = join("bob", "bob", &["--download-limit", "400kb/s"]);
    let chunks = bob.event("manifest", T)["chunks"].as_u64().unwrap();
    ann.event("manifest", T);

    // Bob is killed a third of the way in and comes back: he resumes his copy.
    let third = f(&bob.wait_for("bob a third of the way", T, |v| v["event"] == "stats" && received(v) * 3 >= chunks), "t_ms");
    // The progress record is written before each stats line: one more, then the kill.
    bob.wait_for("one more progress record", T, |v| v["event"] == "stats" && f(v, "t_ms") > third);
    let _ = bob.child.kill();
    bob.wait(T);
    let mut bob = join("bob", "bob-again", &[]);
    let kept = bob.event("resumed", T)["chunks"].as_u64().unwrap();
    assert!(kept > 0 && kept < chunks, "bob kept {kept} of {chunks}");

    // The room plays; the signaling server goes away and comes back meanwhile.
    host.send("play");
    let played = f(&host.wait_for("the room playing", T, |v| v["event"] == "state" && v["playing"] == true), "t_ms");
    // The fault is for a room that plays: both show frames (a resumed copy's first frame
    // may wait for a chunk held up in SCTP's retransmissions), 2 s on.
    for p in [&mut ann, &mut bob] {
        p.wait_for("2 s on, playing", T, |v| v["event"] == "stats" && v["playing"] == true && v["buffering"] == false && f(v, "t_ms") > played + 2_000.0);
    }
    host.drain();
    let down = host.mark();
    drop(server.take());
    let restart_at = super::playback::now_ms();
    // Back once the host has noticed it gone.
    host.wait_after(down, "the host without signaling", T, |v| {
        v["event"] == "error" && v["message"].as_str().is_some_and(|m| m.starts_with("signaling connection lost"))
    });
    server = Some(serve());
    assert!(restart_at > played);

    for (p, name) in [(&mut ann, "ann"), (&mut bob, "bob")] {
        assert_eq!(p.event("complete", T)["sha256"], want.as_str(), "{name}'s copy");
        assert_eq!(sha256(&dir.join(format!("{name}.copy"))), want, "{name}'s saved copy");
    }
    // Eighteen seconds after the restart: the picture went on.
    for p in [&mut ann, &mut bob] {
        p.wait_for("18 s of stats after the restart", T, |v| v["event"] == "stats" && f(v, "t_ms") > restart_at + SETTLE_MS + WINDOW_MS);
    }
    let samples: Vec<_> = [&ann, &bob].iter().map(|p| playing_samples(p, restart_at + SETTLE_MS)).collect();
    host.drain();
    for (s, p) in samples.iter().zip([&ann, &bob]) {
        let events: Vec<String> = p.seen.iter().filter(|v| v["event"] != "stats").map(|v| v.to_string().chars().take(160).collect()).collect();
        let last = p.seen.iter().rev().find(|v| v["event"] == "stats").map(|v| v.to_string());
        let host_events: Vec<String> = host.seen.iter().filter(|v| v["event"] == "peer_left" || v["event"] == "peer_joined").map(|v| v.to_string()).collect();
        assert!(s.len() >= 4, "{} samples of playing after the restart; events {events:?}; last stats {last:?}; host saw {host_events:?}", s.len());
        // The room may pause a moment for someone buffering on this link; it must not stop.
        let (a, b) = (s[0], s[s.len() - 1]);
        assert!(b.1 - a.1 >= 0.5 * (b.0 - a.0), "the picture kept going: {:.0} ms of playing in {:.0} ms", b.1 - a.1, b.0 - a.0);
    }
    // Sync is judged in steady state: over 6 s from 12 s after the room last started playing
    // (the restart, or the end of a pause for someone buffering on this link, after which a
    // participant can be ~100 ms off for a moment until the rate nudge brings it back: seen
    // 111 ms 8 s after the room started again, settling to 3 ms within 4 s). The follower's policy itself
    // is checked in simulated time (syncy-core sim::tests).
    let mut from = restart_at;
    for _ in 0..3 {
        for p in [&mut ann, &mut bob] {
            p.wait_for("the window's stats", T, |v| v["event"] == "stats" && f(v, "t_ms") > from + SETTLE_MS + WINDOW_MS);
        }
        host.drain();
        match last_resume(&host) {
            Some(t) if t > from => from = t,
            _ => break,
        }
    }
    let samples: Vec<_> = [&ann, &bob].iter().map(|p| playing_samples(p, from + SETTLE_MS)).collect();
    let sp = spreads(&samples);
    assert!(sp.len() >= 4, "{} comparable instants", sp.len());
    let worst = sp.iter().cloned().fold(0.0, f64::max);
    let hs = host.wait_for("host stats with round trips", T, |v| {
        v["event"] == "stats" && v["peers"].as_array().is_some_and(|p| p.len() == 2 && p.iter().all(|p| p["rtt_ms"].as_u64().is_some()))
    });
    let rtt = hs["peers"].as_array().unwrap().iter().map(|p| p["rtt_ms"].as_u64().unwrap() as f64).fold(f64::MAX, f64::min);
    eprintln!("bad network: worst spread {worst:.1} ms over {} instants, round trip {rtt} ms, bob kept {kept}/{chunks}", sp.len());
    // What each did around the window, to tell a local stall from a room that paused.
    let around = |p: &Proc| -> Vec<String> {
        p.seen
            .iter()
            .filter(|v| f(v, "t_ms") > from && (v["event"] != "stats" || v["buffering"] == true))
            .map(|v| v.to_string().chars().take(200).collect())
            .collect()
    };
    assert!(worst <= 40.0, "spread {worst} ms: {sp:?}; ann {:?}; bob {:?}; host {:?}", around(&ann), around(&bob), around(&host));
    assert_eq!(ann.quit(), 0);
    assert_eq!(bob.quit(), 0);
    assert_eq!(host.quit(), 0);
    drop(server);
    (worst, rtt)
}

/// A room through the lossy relay: `loss` and `delay` per crossing (each packet crosses twice
/// per direction).
fn through_a_lossy_relay(loss: f64, delay: Duration) -> (f64, f64) {
    // (Before any port is chosen: a port is not held while waiting for the lock.)
    let _real_time = super::harness::real_time();
    let dir = super::harness::test_dir();
    let turn_port = free_port();
    let _turn = coturn(dir.path(), turn_port, &dir.path().join("turn.log"));
    let relay = super::impair::start(format!("127.0.0.1:{turn_port}").parse().unwrap(), loss, delay);
    let url = format!("turn:{}", relay.addr);
    let net = ["--turn", &url, "--turn-user", "syncy", "--turn-pass", "secret", "--ice-policy", "relay"];
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let serve = || daemon(bin(), &["serve", "--listen", &listen], port);
    let side = || Side { wrapper: &[], net: &net };
    let (worst, rtt) = a_room_on_a_bad_network(dir.path(), side(), side(), &serve, &format!("ws://{listen}/"));
    relay.counts.assert_loss(loss, "relay datagrams");
    (worst, rtt)
}

#[test]
fn five_percent_loss_through_a_lossy_relay() {
    // 2.53% per crossing, two crossings per direction: 5% per direction.
    through_a_lossy_relay(0.0253, Duration::ZERO);
}

#[test]
#[ignore = "through TURN at 100 ms round trips a DTLS handshake sometimes runs out of retransmissions (rtc-dtls: 7, 1 s apart): 1 run in 12 before first connections were tried again (issue 15: up to 3 attempts); kept out of CI until it has passed enough runs with the retry; run with --ignored"]
fn five_percent_loss_and_100_ms_round_trips_through_a_lossy_relay() {
    // 25 ms per crossing: 50 ms per direction, 100 ms round trips.
    let (_, rtt) = through_a_lossy_relay(0.0253, Duration::from_millis(25));
    assert!(rtt >= 90.0, "the relay's delay shows in the round trip: {rtt} ms");
}

#[test]
fn five_percent_loss_and_100_ms_round_trips_between_two_namespaces() {
    let _real_time = super::harness::real_time();
    // 5% of packets dropped and 50 ms added each way, on every packet between the namespaces:
    // media, SCTP acknowledgements, ICE checks and signaling alike.
    let link = match tunlink::start(&format!("f{}", std::process::id()), 0.05, Duration::from_millis(50)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("SKIPPED: cannot make the namespaces and their link here ({e}); needs root, iproute2 and /dev/net/tun");
            return;
        }
    };
    let dir = super::harness::test_dir();
    let (in_a, in_b) = (link.a.wrapper(), link.b.wrapper());
    // The signaling server and the host in namespace a, the participants in namespace b.
    let listen = format!("{A_ADDR}:7878");
    let server_log = std::fs::File::create(dir.path().join("serve.stderr")).unwrap();
    let serve = || {
        let d = Daemon(
            Command::new(in_a[0])
                .args(&in_a[1..])
                .args([bin(), "serve", "--listen", &listen])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(server_log.try_clone().unwrap())
                .spawn()
                .unwrap(),
        );
        // Up once it listens (it is in namespace a: ask there).
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let listening = || {
            let out = Command::new(in_a[0]).args(&in_a[1..]).args(["ss", "-ltn"]).output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
            out.is_ok_and(|o| o.contains(":7878"))
        };
        while !listening() {
            assert!(std::time::Instant::now() < deadline, "syncy serve did not listen in namespace a");
            std::thread::sleep(Duration::from_millis(20));
        }
        d
    };
    let host = Side { wrapper: &in_a, net: &["--ice-addr", A_ADDR] };
    let join = Side { wrapper: &in_b, net: &["--ice-addr", B_ADDR] };
    let (_, rtt) = a_room_on_a_bad_network(dir.path(), host, join, &serve, &format!("ws://{listen}/"));
    link.counts.assert_loss(0.05, "link packets");
    assert!(rtt >= 90.0, "the link's delay shows in the round trip: {rtt} ms");
}
