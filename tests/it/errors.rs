//! Issue 15: errors for people — one line, a hint where one helps, exit 2 for every usage
//! error, and a closed stdout (`| head`) ends the program quietly.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::harness::{bin, clip_sized};

/// Runs `syncy args…` with a config dir of its own and no RUST_BACKTRACE (what a user sees).
fn syncy(args: &[&str], config: &std::path::Path) -> Output {
    Command::new(bin()).args(args).env("XDG_CONFIG_HOME", config).env_remove("RUST_BACKTRACE").stdin(Stdio::null()).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn a_bad_link_is_a_usage_error_on_one_line() {
    let dir = super::harness::test_dir();
    let o = syncy(&["join", "not a link"], dir.path());
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(err.starts_with("syncy: error: not a Syncy link: a Syncy link starts with syncy://"), "{err}");
    assert!(!err.contains("Backtrace") && !err.contains('\x1b'), "{err}");
    // The whole report on demand.
    let o = syncy(&["--verbose", "join", "not a link"], dir.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("syncy: error:"), "{}", stderr(&o));
}

#[test]
fn every_usage_error_exits_2() {
    let dir = super::harness::test_dir();
    let file = clip_sized("errors.mp4", 2, "1Mb/s", "320x180");
    let f = file.to_str().unwrap();
    // A relay-only policy without a relay; a TURN server without credentials.
    for args in [&["host", f, "--ice-policy", "relay"][..], &["host", f, "--turn", "turn:127.0.0.1:3478"][..], &["join", "nope", "--stun", "http://x"][..]] {
        let o = syncy(args, dir.path());
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    }
    // A config file with a mistake names the file and the key, on one line.
    std::fs::create_dir_all(dir.path().join("syncy")).unwrap();
    std::fs::write(dir.path().join("syncy/config.toml"), "stun = [\"stun.example.org\"]\n").unwrap();
    let o = syncy(&["join", "syncy://127.0.0.1:9/r#AAAAAAAAAAAAAAAAAAAAAA"], dir.path());
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("config.toml") && err.contains("stun:") && err.lines().count() == 1, "{err}");
}

#[test]
fn a_failure_that_is_not_usage_exits_1_with_a_hint() {
    let dir = super::harness::test_dir();
    // Nothing listens on the port: the host is not running.
    let port = super::harness::free_port();
    let link = format!("syncy://127.0.0.1:{port}/room#AAAAAAAAAAAAAAAAAAAAAA");
    let o = syncy(&["join", &link, "--headless"], dir.path());
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("syncy: error: cannot reach the host"), "{err}");
    assert!(err.contains("syncy: hint: check that the host is still running"), "{err}");
    let o = syncy(&["host", "/nonexistent/movie.mp4"], dir.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).starts_with("syncy: error: cannot open /nonexistent/movie.mp4"), "{}", stderr(&o));
}

/// `syncy host FILE | head -1`: head takes the first line and goes; the host notices its
/// stdout closed and exits quietly with 0, however little it prints after that.
#[test]
fn a_closed_stdout_ends_the_host_quietly() {
    let dir = super::harness::test_dir();
    let file = clip_sized("head.mp4", 2, "1Mb/s", "320x180");
    let script = format!("set -o pipefail; '{}' host '{}' --listen 127.0.0.1:0 | head -1", bin(), file.display());
    let started = Instant::now();
    let mut child = Command::new("bash")
        .args(["-c", &script])
        .env("XDG_CONFIG_HOME", dir.path())
        .env_remove("RUST_BACKTRACE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("the host did not notice its stdout closed");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "host and head both exit 0: {}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("Room open."), "{:?}", o.stdout);
    assert!(!stderr(&o).contains("error") && !stderr(&o).contains("panicked"), "{}", stderr(&o));
}
