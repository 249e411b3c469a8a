//! Issue 2: byte-exact delivery to a room over real WebRTC on loopback.

use std::time::Duration;

use super::harness::{Proc, clip, link_of, sha256};

const T: Duration = Duration::from_secs(90);

#[test]
fn three_participants_get_byte_identical_copies_and_a_late_joiner_too() {
    let file = clip("room.mp4", 12, "6Mb/s");
    let want = sha256(&file);
    let dir = super::harness::test_dir();
    let mut host = Proc::host(&file, dir.path(), &[]);
    let link = link_of(&mut host);
    let mut ps: Vec<Proc> = ["ann", "bob", "cy"].iter().map(|n| Proc::join(&link, n, dir.path(), &[])).collect();
    for p in ps.iter_mut() {
        let m = p.event("manifest", T);
        assert_eq!(m["size"].as_u64().unwrap(), std::fs::metadata(&file).unwrap().len());
        assert!(m["chunks"].as_u64().unwrap() > 20, "a multi-MiB file: {m}");
        assert!(m["duration_ms"].as_u64().unwrap() > 11_000);
        let c = p.event("complete", T);
        assert_eq!(c["sha256"], want.as_str());
        assert_eq!(c["matched"], true, "checked against the hash the host signed: {c}");
    }
    for n in ["ann", "bob", "cy"] {
        assert_eq!(sha256(&dir.path().join(format!("{n}.copy"))), want, "{n}'s saved copy");
    }
    // Stats carry real measured rates.
    let s = ps[0].wait_for("stats with a rate", T, |v| v["event"] == "stats" && v["down_bps"].as_u64().unwrap_or(0) > 0);
    assert!(s["buffered_bytes"].as_u64().unwrap() > 0);
    // Nothing is sent twice beyond the odd race (a bug once resent every chunk). With relays
    // on, a few races are the design's: a chunk the host sends just before the participant's
    // `Cancel` reaches it, once a neighbour turned out to hold it; an upgraded request. Seen:
    // 1–4 of 144 usually, 8 once in 16 full-suite runs; one in ten is the bound.
    for p in ps.iter_mut() {
        let s = p.wait_for("stats after everything arrived", T, |v| v["event"] == "stats" && v["received_chunks"] == v["chunks"]);
        let (dup, chunks) = (s["duplicate_chunks"].as_u64().unwrap(), s["chunks"].as_u64().unwrap());
        assert!(dup * 10 <= chunks, "{dup} of {chunks} chunks arrived twice");
    }
    let hs = host.wait_for("host stats with three peers and their round trips", T, |v| {
        v["event"] == "stats" && v["peers"].as_array().is_some_and(|p| p.len() == 3 && p.iter().all(|p| p["rtt_ms"].is_u64()))
    });
    for p in hs["peers"].as_array().unwrap() {
        assert!(p["name"].is_string() && p["up_bps"].is_u64() && p["quality"] == "high", "{p}");
    }
    assert!(host.seen.iter().any(|v| v["event"] == "stats" && v["up_bps"].as_u64().unwrap_or(0) > 0), "host measured upload");

    // A late joiner after everyone is done.
    let mut late = Proc::join(&link, "dee", dir.path(), &[]);
    assert_eq!(late.event("complete", T)["sha256"], want.as_str());
    assert_eq!(sha256(&dir.path().join("dee.copy")), want);
    host.wait_for("peer_joined dee", T, |v| v["event"] == "peer_joined" && v["name"] == "dee");

    assert_eq!(late.quit(), 0);
    host.wait_for("peer_left dee", T, |v| v["event"] == "peer_left" && v["name"] == "dee");
    // The host quitting ends the stream for everyone, cleanly.
    assert_eq!(host.quit(), 0);
    for p in ps.iter_mut() {
        p.event("stream_end", T);
        assert_eq!(p.wait(Duration::from_secs(15)), 0);
    }
}

#[test]
fn a_participant_killed_mid_transfer_does_not_stop_the_others() {
    let file = clip("big.mp4", 20, "16Mb/s");
    let want = sha256(&file);
    let dir = super::harness::test_dir();
    let mut host = Proc::host(&file, dir.path(), &[]);
    let link = link_of(&mut host);
    let mut victim = Proc::join(&link, "victim", dir.path(), &[]);
    let mut a = Proc::join(&link, "ann", dir.path(), &[]);
    let mut b = Proc::join(&link, "bob", dir.path(), &[]);
    victim.event("manifest", T);
    victim.child.kill().unwrap();
    let _ = victim.child.wait();
    host.wait_for("peer_left victim", T, |v| v["event"] == "peer_left" && v["name"] == "victim");
    assert_eq!(a.event("complete", T)["sha256"], want.as_str());
    assert_eq!(b.event("complete", T)["sha256"], want.as_str());
    assert_eq!(host.quit(), 0);
}

#[test]
fn a_wrong_join_token_is_refused_clearly() {
    let file = clip("room.mp4", 12, "6Mb/s");
    let dir = super::harness::test_dir();
    let mut host = Proc::host(&file, dir.path(), &[]);
    let link = link_of(&mut host);
    let (base, _key) = link.split_once('#').unwrap();
    let wrong = format!("{base}#AAAAAAAAAAAAAAAAAAAAAA");
    let mut p = Proc::join(&wrong, "mallory", dir.path(), &[]);
    let err = p.event("error", T);
    assert!(err["message"].as_str().unwrap().contains("wrong join token"), "{err}");
    assert_ne!(p.wait(Duration::from_secs(10)), 0);
    assert!(p.stderr_text().contains("wrong join token"));
    assert!(!host.seen.iter().any(|v| v["event"] == "peer_joined"));
    assert_eq!(host.quit(), 0);
}

#[test]
fn the_twenty_first_participant_is_refused_clearly() {
    use syncy::net::signal_client::SignalClient;
    use syncy::protocol::link::Link;
    use syncy::protocol::signal::ServerMsg;

    let file = clip("room.mp4", 12, "6Mb/s");
    let dir = super::harness::test_dir();
    let mut host = Proc::host(&file, dir.path(), &[]);
    let link = link_of(&mut host);
    let parsed = Link::parse(&link).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Twenty members at the signaling level fill the room (they need not finish WebRTC).
    let _members: Vec<SignalClient> = rt.block_on(async {
        let mut v = vec![];
        for i in 0..20 {
            let mut c = SignalClient::connect(&parsed.signal_url(), None).await.unwrap();
            let nonce = syncy::protocol::auth::nonce();
            c.tx.send(super::setups::join_msg(&parsed.room, parsed.key.join_token(), &format!("p{i}"), nonce)).await.unwrap();
            assert!(matches!(c.rx.recv().await, Some(ServerMsg::Joined { .. })));
            v.push(c);
        }
        v
    });
    let mut p = Proc::join(&link, "twentyfirst", dir.path(), &[]);
    let err = p.event("error", T);
    assert!(err["message"].as_str().unwrap().contains("is full (20 participants)"), "{err}");
    assert_ne!(p.wait(Duration::from_secs(10)), 0);
    drop(host);
}

// The upload and download limits are checked in simulated time now (issue 16):
// syncy-core sim::tests::the_upload_limit_holds_for_the_whole_room_within_ten_percent and
// sim::tests::the_download_limit_holds_within_ten_percent.
