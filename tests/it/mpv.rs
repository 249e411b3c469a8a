//! `--player mpv` with Debian's mpv (no window, no sound): mpv follows the room.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::harness::{Proc, clip_sized, link_of};

const T: Duration = Duration::from_secs(60);

fn mpv_ms(v: &Value) -> Option<(f64, bool)> {
    let m = &v["mpv"];
    Some((m["position_ms"].as_f64()?, m["paused"].as_bool()?))
}

#[test]
fn mpv_follows_a_room_pause_and_seek() {
    if !Command::new("mpv").arg("--version").output().is_ok_and(|o| o.status.success()) {
        eprintln!("SKIPPED: mpv is not installed (scripts/setup-debian.sh installs it)");
        return;
    }
    let file = clip_sized("mpv.mp4", 30, "1Mb/s", "320x180");
    let dir = super::harness::test_dir();
    let mut host = Proc::host(&file, dir.path(), &[]);
    let link = link_of(&mut host);
    let mut p = Proc::join(&link, "mo", dir.path(), &["--player", "mpv", "--mpv-args", "--vo=null --ao=null"]);
    // mpv is up and paused with the room.
    p.wait_for("mpv paused at 0", T, |v| v["event"] == "stats" && mpv_ms(v).is_some_and(|(pos, paused)| paused && pos < 100.0));
    // Its command line (which every local user can read) holds no URL: that went over IPC.
    let cmdline = mpv_cmdline_of(p.child.id());
    assert!(cmdline.contains("--ytdl=no") && cmdline.contains("--demuxer-lavf-format=mov"), "{cmdline}");
    assert!(!cmdline.contains("http"), "mpv's command line holds the stream's URL: {cmdline}");
    host.send("play");
    let playing = p.wait_for("mpv playing", T, |v| v["event"] == "stats" && mpv_ms(v).is_some_and(|(pos, paused)| !paused && pos > 1500.0));
    let (pos, _) = mpv_ms(&playing).unwrap();
    let room = playing["position_ms"].as_f64().unwrap();
    assert!((pos - room).abs() < 250.0, "mpv at {pos} ms while the room is at {room} ms");

    let mark = p.mark();
    host.send("pause");
    let paused = host
        .wait_for("room paused", T, |v| v["event"] == "state" && v["playing"] == false && v["seq"].as_u64() > Some(0) && v["position_ms"].as_u64() > Some(0));
    let at = paused["position_ms"].as_f64().unwrap();
    let s = p.wait_after(mark, "mpv paused with the room", T, |v| {
        v["event"] == "stats" && mpv_ms(v).is_some_and(|(pos, paused)| paused && (pos - at).abs() <= 100.0)
    });
    // And it stays there.
    let t = s["t_ms"].as_f64().unwrap();
    let later = p.wait_for("a second later", T, |v| v["event"] == "stats" && v["t_ms"].as_f64().unwrap() > t + 1000.0);
    let (pos, paused) = mpv_ms(&later).unwrap();
    assert!(paused && (pos - at).abs() <= 100.0, "{later}");

    let mark = p.mark();
    host.send("seek 20");
    p.wait_after(mark, "mpv at the seek target", T, |v| {
        v["event"] == "stats" && mpv_ms(v).is_some_and(|(pos, paused)| paused && (pos - 20_000.0).abs() <= 100.0)
    });
    let mark = p.mark();
    host.send("play");
    p.wait_after(mark, "mpv playing on from 20 s", T, |v| {
        v["event"] == "stats" && mpv_ms(v).is_some_and(|(pos, paused)| !paused && pos > 20_500.0 && pos < 25_000.0)
    });
    assert_eq!(p.quit(), 0);
    assert_eq!(host.quit(), 0);
}

/// The command line of the mpv that `parent` started (found by its parent in /proc).
fn mpv_cmdline_of(parent: u32) -> String {
    let parent_of = |pid: u32| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // After "pid (comm) state": the parent's pid.
        stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().nth(1)).and_then(|pp| pp.parse::<u32>().ok())
    };
    let pids = std::fs::read_dir("/proc").unwrap().flatten().filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok());
    let mpvs: Vec<String> = pids
        .filter(|&pid| parent_of(pid) == Some(parent))
        .map(|pid| String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default()).replace('\0', " "))
        .filter(|c| c.starts_with("mpv"))
        .collect();
    assert_eq!(mpvs.len(), 1, "one mpv under the participant: {mpvs:?}");
    mpvs.into_iter().next().unwrap()
}
