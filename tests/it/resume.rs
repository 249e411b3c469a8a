//! Issue 6: a participant gets back into the room by itself and never fetches again what it
//! holds — after its link drops (the process frozen past ICE's failure timeout, as a laptop
//! asleep) and after being killed and started again with the same `--save` file.

use std::time::Duration;

use super::harness::{Proc, clip, link_of, sha256};

const T: Duration = Duration::from_secs(90);

fn signal(p: &Proc, sig: &str) {
    let st = std::process::Command::new("kill").args([sig, &p.child.id().to_string()]).status().unwrap();
    assert!(st.success());
}

fn received(v: &serde_json::Value) -> u64 {
    v["received_chunks"].as_u64().unwrap_or(0)
}

#[test]
fn a_participant_whose_link_drops_reconnects_and_keeps_what_it_holds() {
    let file = clip("room.mp4", 12, "6Mb/s");
    let want = sha256(&file);
    let dir = super::harness::test_dir();
    // Slow enough that the transfer is in the middle when the link drops.
    let mut host = Proc::host(&file, dir.path(), &["--upload-limit", "1MiB/s", "--autoplay"]);
    let link = link_of(&mut host);
    let mut ann = Proc::join(&link, "ann", dir.path(), &[]);
    let chunks = ann.event("manifest", T)["chunks"].as_u64().unwrap();
    let before = ann.wait_for("a third of the file", T, |v| v["event"] == "stats" && received(v) * 3 >= chunks);
    assert!(received(&before) < chunks, "still in the middle");

    // Frozen past the failure timeout: both sides give the link up.
    signal(&ann, "-STOP");
    host.wait_for("the host drops the frozen link", T, |v| v["event"] == "peer_left" && v["name"] == "ann");
    signal(&ann, "-CONT");
    let r = ann.event("reconnecting", T);
    assert!(r["reason"].is_string() && r["attempt"] == 1, "{r}");
    let back = ann.event("reconnected", T);
    assert!(back["held_bytes"].as_u64().unwrap() > 0, "kept what it held: {back}");
    let joins = host.mark();
    host.wait_after(joins, "ann back in the room", T, |v| v["event"] == "peer_joined" && v["name"] == "ann");

    assert_eq!(ann.event("complete", T)["sha256"], want.as_str());
    assert_eq!(sha256(&dir.path().join("ann.copy")), want);
    let s = ann.wait_for("stats after everything arrived", T, |v| v["event"] == "stats" && received(v) == chunks);
    let dup = s["duplicate_chunks"].as_u64().unwrap();
    assert!(dup * 20 <= chunks, "{dup} of {chunks} chunks fetched again after the reconnect");
    // Playback goes on after the drop.
    let p = ann.wait_for("playing again", T, |v| v["event"] == "stats" && v["playing"] == true && v["position_ms"].as_u64().unwrap_or(0) > 0);
    assert!(p["position_ms"].as_u64().is_some());
    assert_eq!(ann.quit(), 0);
    assert_eq!(host.quit(), 0);
}

#[test]
fn a_participant_killed_and_restarted_resumes_its_saved_copy() {
    let file = clip("room.mp4", 12, "6Mb/s");
    let want = sha256(&file);
    let dir = super::harness::test_dir();
    let mut host = Proc::host(&file, dir.path(), &["--upload-limit", "1MiB/s"]);
    let link = link_of(&mut host);
    let mut ann = Proc::join(&link, "ann", dir.path(), &[]);
    let chunks = ann.event("manifest", T)["chunks"].as_u64().unwrap();
    let at_kill = received(&ann.wait_for("a third of the file", T, |v| v["event"] == "stats" && received(v) * 3 >= chunks));
    // The progress record is written before each stats line: one more, then kill -9.
    let t_kill = ann.seen.iter().rev().find(|v| v["event"] == "stats").and_then(|v| v["t_ms"].as_f64()).unwrap_or(0.0);
    ann.wait_for("one more progress record", T, |v| v["event"] == "stats" && v["t_ms"].as_f64().is_some_and(|t| t > t_kill));
    signal(&ann, "-KILL");
    assert_ne!(ann.wait(T), 0);
    let record = dir.path().join("ann.copy.syncy-progress");
    assert!(record.exists(), "a progress record beside the copy");

    let mut again = Proc::join(&link, "ann", dir.path(), &[]);
    let resumed = again.event("resumed", T);
    let kept = resumed["chunks"].as_u64().unwrap();
    assert!(kept >= at_kill && kept < chunks, "kept {kept} of {chunks} chunks (had {at_kill} a second before the kill)");
    assert_eq!(again.event("complete", T)["sha256"], want.as_str());
    assert_eq!(sha256(&dir.path().join("ann.copy")), want);
    let s = again.wait_for("stats after everything arrived", T, |v| v["event"] == "stats" && received(v) + kept >= chunks);
    assert_eq!(received(&s) + kept, chunks, "only what was missing came over the wire");
    assert_eq!(s["duplicate_chunks"], 0, "nothing saved was fetched again: {s}");
    assert!(!record.exists(), "the record goes once the copy is whole");
    assert_eq!(again.quit(), 0);
    assert_eq!(host.quit(), 0);
}
