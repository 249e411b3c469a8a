//! Issue 6: NAT traversal — relay-only ICE through a real TURN server (Debian's coturn) on
//! 127.0.0.1.

use std::path::Path;
use std::time::{Duration, Instant};

use super::harness::{Daemon, Proc, clip_sized, daemon, free_port, link_of, sha256};

const T: Duration = Duration::from_secs(60);

/// coturn on 127.0.0.1 with one user, logging sessions (and their byte counts) to `log`.
pub(super) fn coturn(dir: &Path, port: u16, log: &Path) -> Daemon {
    assert!(
        std::process::Command::new("turnserver").arg("--help").output().is_ok(),
        "coturn's turnserver is missing: run scripts/setup-debian.sh (it installs the coturn package)"
    );
    let p = port.to_string();
    let (pid, db) = (dir.join("turn.pid"), dir.join("turndb"));
    let args = [
        "-n",
        "-v",
        "--listening-ip=127.0.0.1",
        "--relay-ip=127.0.0.1",
        "--listening-port",
        &p,
        "--min-port=49152",
        "--max-port=65535",
        "--lt-cred-mech",
        "--user=syncy:secret",
        "--realm=syncy.test",
        "--no-tls",
        "--no-dtls",
        "--no-cli",
        "--allow-loopback-peers",
        "--simple-log",
        "--log-binding",
        &format!("--log-file={}", log.display()),
        &format!("--pidfile={}", pid.display()),
        &format!("--userdb={}", db.display()),
    ];
    daemon("turnserver", &args, port)
}

/// Bytes coturn relayed from its clients, summed over closed sessions (`usage: … rb=N`).
fn relayed_bytes(log: &Path) -> u64 {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter(|l| l.contains(" usage: ") && !l.contains("peer usage"))
        .filter_map(|l| l.split(", rb=").nth(1)?.split(',').next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn relay_only_ice_through_coturn_delivers_byte_exact() {
    let file = clip_sized("turn.mp4", 6, "1Mb/s", "320x180");
    let want = sha256(&file);
    let size = std::fs::metadata(&file).unwrap().len();
    let dir = super::harness::test_dir();
    let port = free_port();
    let log = dir.path().join("turn.log");
    let turn = coturn(dir.path(), port, &log);
    let url = format!("turn:127.0.0.1:{port}");
    let relay = ["--turn", &url, "--turn-user", "syncy", "--turn-pass", "secret", "--ice-policy", "relay"];

    let mut host = Proc::host(&file, dir.path(), &relay);
    let link = link_of(&mut host);
    let mut ann = Proc::join(&link, "ann", dir.path(), &relay);
    assert_eq!(ann.event("complete", T)["sha256"], want.as_str());
    assert_eq!(sha256(&dir.path().join("ann.copy")), want);
    assert_eq!(ann.quit(), 0);
    assert_eq!(host.quit(), 0);

    // Every byte went through the relay: coturn counts what its two allocations received
    // (the file plus DTLS/SCTP framing and the control channel) when they close.
    let deadline = Instant::now() + Duration::from_secs(30);
    while relayed_bytes(&log) < size && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
    }
    let relayed = relayed_bytes(&log);
    assert!(relayed >= size, "coturn relayed {relayed} bytes, the file has {size}:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
    drop(turn);
}

#[test]
fn relay_only_with_a_wrong_turn_password_fails_clearly() {
    let file = clip_sized("turn.mp4", 6, "1Mb/s", "320x180");
    let dir = super::harness::test_dir();
    let port = free_port();
    let _turn = coturn(dir.path(), port, &dir.path().join("turn.log"));
    let url = format!("turn:127.0.0.1:{port}");
    let mut host = Proc::host(&file, dir.path(), &["--turn", &url, "--turn-user", "syncy", "--turn-pass", "secret", "--ice-policy", "relay"]);
    let link = link_of(&mut host);
    let mut eve = Proc::join(&link, "eve", dir.path(), &["--turn", &url, "--turn-user", "syncy", "--turn-pass", "wrong", "--ice-policy", "relay"]);
    assert_ne!(eve.wait(T), 0, "no path without the relay");
    let err = eve.stderr_text();
    assert!(err.contains("connect") || err.contains("WebRTC"), "{err}");
    assert_eq!(host.quit(), 0);
}

#[test]
fn stun_through_coturn_adds_reflexive_candidates_and_delivers_byte_exact() {
    // coturn answers STUN too. On loopback the reflexive address is the host address itself,
    // so this checks that gathering with a STUN server works end to end, not NAT traversal.
    let file = clip_sized("turn.mp4", 6, "1Mb/s", "320x180");
    let want = sha256(&file);
    let dir = super::harness::test_dir();
    let port = free_port();
    let log = dir.path().join("turn.log");
    let _turn = coturn(dir.path(), port, &log);
    let url = format!("stun:127.0.0.1:{port}");
    let mut host = Proc::host(&file, dir.path(), &["--stun", &url]);
    let link = link_of(&mut host);
    let mut ann = Proc::join(&link, "ann", dir.path(), &["--stun", &url]);
    assert_eq!(ann.event("complete", T)["sha256"], want.as_str());
    assert_eq!(ann.quit(), 0);
    assert_eq!(host.quit(), 0);
    // Both sides asked coturn for their address.
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(text.matches("BINDING").count() >= 2, "no STUN binding requests in coturn's log:\n{text}");
}
