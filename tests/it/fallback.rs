//! Issue 6: the HTTP range fallback — a participant whose WebRTC link does not come up
//! watches over the host's `--http` server instead, says so, and gets the same bytes.

use std::io::{Read, Write};
use std::time::Duration;

use serde_json::Value;

use super::harness::{Proc, clip_sized, link_of, sha256};

const T: Duration = Duration::from_secs(90);

/// WebRTC that cannot come up: relayed paths only, through a TURN server that is not there.
const NO_WEBRTC: [&str; 8] = ["--ice-policy", "relay", "--turn", "turn:127.0.0.1:9", "--turn-user", "u", "--turn-pass", "p"];

fn http_get(addr: &str, path: &str, auth: Option<&str>) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let auth = auth.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Range: bytes=0-15\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn a_participant_without_webrtc_falls_back_to_http_and_says_so() {
    let file = clip_sized("fallback.mp4", 20, "1Mb/s", "320x180");
    let want = sha256(&file);
    let dir = tempfile::tempdir().unwrap();
    let mut host = Proc::host(&file, dir.path(), &["--http", "127.0.0.1:0"]);
    let link = link_of(&mut host);
    let mut ann = Proc::join(&link, "ann", dir.path(), &NO_WEBRTC);
    let fb = ann.event("fallback", T);
    let url = fb["url"].as_str().unwrap().to_string();
    assert!(url.starts_with("http://127.0.0.1:") && fb["reason"].as_str().unwrap().contains("WebRTC"), "{fb}");
    assert_eq!(ann.event("manifest", T)["size"].as_u64().unwrap(), std::fs::metadata(&file).unwrap().len());
    let done = ann.event("complete", T);
    assert_eq!((&done["sha256"], &done["matched"]), (&Value::from(want.as_str()), &Value::from(true)), "checked against the hash the host signed, over HTTP");
    assert_eq!(sha256(&dir.path().join("ann.copy")), want);

    // It follows the room's clock over HTTP too.
    host.send("play");
    let p = ann.wait_for("playing with the room", T, |v| v["event"] == "stats" && v["playing"] == true && v["position_ms"].as_u64().unwrap_or(0) > 2_000);
    assert!(p["position_ms"].as_u64().is_some());
    let hs = host.wait_for("host stats", T, |v| v["event"] == "stats" && v["playing"] == true);
    let mine = ann.wait_for("stats after the host's", T, |v| v["event"] == "stats" && v["t_ms"].as_f64() > hs["t_ms"].as_f64() && v["playing"] == true);
    let room_at = hs["position_ms"].as_f64().unwrap() + mine["t_ms"].as_f64().unwrap() - hs["t_ms"].as_f64().unwrap();
    let off = (mine["position_ms"].as_f64().unwrap() - room_at).abs();
    assert!(off <= 100.0, "{off} ms off the room clock over HTTP");

    // Without the token derived from the room key, nothing.
    let (addr, room) = url.trim_start_matches("http://").trim_end_matches('/').split_once('/').unwrap();
    assert!(http_get(addr, &format!("/{room}/file"), None).starts_with("HTTP/1.1 401"));
    assert!(http_get(addr, &format!("/{room}/file"), Some("0123")).starts_with("HTTP/1.1 401"));

    // A participant whose WebRTC works does not fall back.
    let mut bob = Proc::join(&link, "bob", dir.path(), &[]);
    let done = bob.event("complete", T);
    assert_eq!((&done["sha256"], &done["matched"]), (&Value::from(want.as_str()), &Value::from(true)));
    bob.drain();
    assert!(!bob.seen.iter().any(|v| v["event"] == "fallback"));
    assert_eq!(ann.quit(), 0);
    assert_eq!(bob.quit(), 0);
    assert_eq!(host.quit(), 0);
}

#[test]
fn without_a_fallback_a_participant_whose_webrtc_fails_says_why() {
    let file = clip_sized("fallback.mp4", 20, "1Mb/s", "320x180");
    let dir = tempfile::tempdir().unwrap();
    let mut host = Proc::host(&file, dir.path(), &[]);
    let link = link_of(&mut host);
    let mut ann = Proc::join(&link, "ann", dir.path(), &NO_WEBRTC);
    assert_ne!(ann.wait(T), 0);
    assert!(ann.stderr_text().contains("cannot connect to the host"), "{}", ann.stderr_text());
    assert_eq!(host.quit(), 0);
}
