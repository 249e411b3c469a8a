//! `syncy serve --cluster`: two signaling servers and a real Redis on a Unix socket. A room
//! spans both; killing one leaves the other's connections working and its rooms reachable.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::harness::{Daemon, Proc, bin, clip_with, sha256};

const T: Duration = Duration::from_secs(60);
const KEY: &str = "a cluster key for the test only";

/// A Redis on a Unix socket in `dir`, saving nothing; `None` where there is no redis-server.
fn redis(dir: &Path) -> Option<(Daemon, String)> {
    let sock = dir.join("redis.sock");
    let child = Command::new("redis-server")
        .args(["--port", "0", "--unixsocket", sock.to_str().unwrap(), "--unixsocketperm", "700", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join("redis.log")).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let d = Daemon(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::os::unix::net::UnixStream::connect(&sock).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not listen on {}", sock.display());
        std::thread::sleep(Duration::from_millis(20));
    }
    Some((d, format!("redis+unix://{}", sock.display())))
}

/// `redis`, or `None` after saying why the test cannot run (a failure under CI).
fn redis_or_skip(dir: &Path) -> Option<(Daemon, String)> {
    let found = redis(dir);
    if found.is_none() {
        let why = "no redis-server here (scripts/setup-debian.sh installs it)";
        assert!(std::env::var_os("CI").is_none(), "the cluster test cannot run and CI is set: {why}");
        eprintln!("SKIPPED: {why}");
    }
    found
}

/// `syncy serve --cluster URL` on a port of the OS's choosing: the process and its address.
fn serve(dir: &Path, tag: &str, url: &str) -> (Daemon, String) {
    let log = dir.join(format!("{tag}.stderr"));
    let child = Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--cluster", url])
        .env("SYNCY_CLUSTER_KEY", KEY)
        .env("XDG_CONFIG_HOME", dir.join("xdg-config"))
        // The test reads the servers' info lines: SYNCY_TEST_LOG without a word on syncy's
        // own level gets them too (one that sets it must keep it at info or more).
        .env("RUST_LOG", std::env::var("SYNCY_TEST_LOG").map_or_else(|_| "info".into(), |l| if l.contains("syncy") { l } else { format!("{l},syncy=info") }))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let d = Daemon(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(rest) = text.split("syncy signaling server on ws://").nth(1) {
            return (d, rest.split('/').next().unwrap().to_string());
        }
        assert!(Instant::now() < deadline, "{tag} did not start: {text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until the log at `path` says `needle`.
fn wait_log(path: &Path, needle: &str) {
    let deadline = Instant::now() + T;
    while !std::fs::read_to_string(path).unwrap_or_default().contains(needle) {
        assert!(Instant::now() < deadline, "{} never said {needle:?}", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A host of `file` on the server at `addr`, as person `who` (its own identity, so its own room).
fn host(file: &Path, addr: &str, dir: &Path, who: &str) -> (Proc, String) {
    let server = format!("ws://{addr}/");
    let config = dir.join(format!("xdg-config-{who}"));
    let mut h =
        Proc::spawn_env(&["host", file.to_str().unwrap(), "--headless", "--server", &server], dir, who, &[("XDG_CONFIG_HOME", config.to_str().unwrap())]);
    let link = h.event("room", T)["link"].as_str().unwrap().to_string();
    (h, link)
}

/// `link`, through the server at `addr` instead (as a name for several servers would give).
fn via(link: &str, addr: &str) -> String {
    let rest = link.strip_prefix("syncy://").unwrap();
    let path = &rest[rest.find('/').unwrap()..];
    format!("syncy://{addr}{path}")
}

fn join(link: &str, name: &str, dir: &Path) -> Proc {
    Proc::join(link, name, dir, &["--render", "none"])
}

fn lost_signaling(p: &Proc, after: usize) -> bool {
    p.seen.iter().skip(after).any(|v| v["event"] == "error" && v["message"].as_str().is_some_and(|m| m.contains("signaling")))
}

#[test]
fn a_room_spans_two_servers_and_one_dying_costs_only_its_own_connections() {
    let dir = super::harness::test_dir();
    let dir = dir.path();
    let Some((_redis, url)) = redis_or_skip(dir) else { return };
    let file = clip_with("cluster.mp4", 20, "200kb/s", "320x180", "32kb/s");
    let want = sha256(&file);
    let (mut s1, a1) = serve(dir, "s1", &url);
    let (_s2, a2) = serve(dir, "s2", &url);

    // Ann hosts on server 1, Bob on server 2; each has a guest through the other server.
    let (mut ann, ann_link) = host(&file, &a1, dir, "ann");
    let (mut bob, bob_link) = host(&file, &a2, dir, "bob");
    let mut cat = join(&via(&ann_link, &a2), "cat", dir);
    let mut dan = join(&via(&bob_link, &a1), "dan", dir);
    for (p, name) in [(&mut cat, "cat"), (&mut dan, "dan")] {
        assert_eq!(p.event("complete", T)["sha256"], want.as_str(), "{name}'s copy, set up through the other server");
    }
    ann.wait_for("cat in ann's room", T, |v| v["event"] == "peer_joined" && v["name"] == "cat");
    bob.wait_for("dan in bob's room", T, |v| v["event"] == "peer_joined" && v["name"] == "dan");

    // Server 1 dies.
    for p in [&mut bob, &mut cat, &mut dan] {
        p.drain();
    }
    let (bob_mark, cat_mark, dan_mark) = (bob.mark(), cat.mark(), dan.mark());
    let _ = s1.0.kill();
    let _ = s1.0.wait();
    // Its own connections see it: ann's signaling is lost (her room goes on over WebRTC).
    ann.wait_for("ann without signaling", T, |v| v["event"] == "error" && v["message"].as_str().is_some_and(|m| m.starts_with("signaling connection lost")));

    // Server 2's rooms are reachable: eve joins bob's room through it.
    let mut eve = join(&bob_link, "eve", dir);
    assert_eq!(eve.event("complete", T)["sha256"], want.as_str(), "eve's copy, after server 1 died");
    // Dan, who reached bob's room through server 1, lost his signaling with it, and cat hers
    // (her room's server): their WebRTC links carry on. Both still report, undisturbed, 3 s on.
    // Server 2 finds it gone: dan (a client of server 1) was in bob's room, cat (a client of
    // server 2) in ann's. What follows is after, not before, it acted on that.
    wait_log(&dir.join("s2.stderr"), "with 1 clients in rooms here; 1 clients here were in its rooms");
    let gone_at = super::playback::now_ms();
    for p in [&mut cat, &mut dan] {
        p.wait_for("stats 3 s after server 1 died", T, |v| v["event"] == "stats" && v["t_ms"].as_f64().unwrap() > gone_at + 3_000.0);
    }
    bob.wait_for("bob's stats 3 s on", T, |v| v["event"] == "stats" && v["t_ms"].as_f64().unwrap() > gone_at + 3_000.0);
    for (p, name, from) in [(&cat, "cat", cat_mark), (&dan, "dan", dan_mark)] {
        let upset: Vec<_> = p.seen.iter().skip(from).filter(|v| v["event"] == "reconnecting" || v["event"] == "error" || v["event"] == "stream_end").collect();
        assert!(upset.is_empty(), "{name}'s link carries on: {upset:?}");
    }
    let left: Vec<_> = bob.seen.iter().skip(bob_mark).filter(|v| v["event"] == "peer_left").collect();
    assert!(left.is_empty(), "bob keeps dan, whose server (not link) is gone: {left:?}");
    assert!(!lost_signaling(&bob, bob_mark), "bob's server is alive: his signaling was not lost");

    // Ann comes back through server 2: her room's name, held by a server that is gone, is hers.
    assert_eq!(ann.quit(), 0);
    let (mut ann, ann_link2) = host(&file, &a2, dir, "ann");
    assert_eq!(via(&ann_link2, &a1), via(&ann_link, &a1), "the same room");
    let mut fay = join(&ann_link2, "fay", dir);
    assert_eq!(fay.event("complete", T)["sha256"], want.as_str(), "fay's copy of ann's room, now on server 2");

    for p in [&mut cat, &mut dan, &mut eve, &mut fay] {
        assert_eq!(p.quit(), 0);
    }
    assert_eq!(ann.quit(), 0);
    assert_eq!(bob.quit(), 0);
}

#[test]
fn the_cluster_comes_back_after_redis_restarts_empty() {
    let dir = super::harness::test_dir();
    let dir = dir.path();
    let Some((redis_daemon, url)) = redis_or_skip(dir) else { return };
    let file = clip_with("cluster.mp4", 20, "200kb/s", "320x180", "32kb/s");
    let (_s1, a1) = serve(dir, "s1", &url);
    let (_s2, a2) = serve(dir, "s2", &url);
    let (mut ann, link) = host(&file, &a1, dir, "ann");
    // Redis goes, and comes back with nothing in it (no --save).
    drop(redis_daemon);
    let (_redis, _) = redis(dir).unwrap();
    // Both servers are back on the bus, and server 1 has told the directory of its room again.
    for s in ["s1", "s2"] {
        wait_log(&dir.join(format!("{s}.stderr")), "back on the bus");
    }
    wait_log(&dir.join("s1.stderr"), "a room written back into the directory");
    let mut dan = join(&via(&link, &a2), "dan", dir);
    assert_eq!(dan.event("complete", T)["sha256"], sha256(&file).as_str(), "dan's copy, set up through server 2");
    assert_eq!(dan.quit(), 0);
    assert_eq!(ann.quit(), 0);
}

#[test]
fn a_server_without_the_cluster_key_or_redis_says_so() {
    let dir = super::harness::test_dir();
    let out = Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--cluster", "redis://127.0.0.1:1/"])
        .env_remove("SYNCY_CLUSTER_KEY")
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.starts_with("syncy: error: --cluster needs the cluster key"), "{err}");
    // Port 1 on loopback: nothing listens, and nothing leaves this machine.
    let out = Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--cluster", "redis://127.0.0.1:1/"])
        .env("SYNCY_CLUSTER_KEY", KEY)
        .env("XDG_CONFIG_HOME", dir.path())
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(err.starts_with("syncy: error: cannot reach the cluster's Redis"), "{err}");
}
