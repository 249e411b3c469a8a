//! The real binary in a real terminal (tmux): the picture shows and keys control the room.

use std::process::Command;
use std::time::{Duration, Instant};

use super::harness::{Proc, bin, clip_sized, link_of};

struct Tmux {
    socket: String,
}

impl Tmux {
    fn available() -> bool {
        Command::new("tmux").arg("-V").output().is_ok_and(|o| o.status.success())
    }

    fn new(tag: &str, width: u16, height: u16, cmd: &str) -> Tmux {
        let socket = format!("syncy-test-{tag}-{}", std::process::id());
        let t = Tmux { socket };
        let ok = t.tmux(&["new-session", "-d", "-s", "main", "-x", &width.to_string(), "-y", &height.to_string(), cmd]);
        assert!(ok.status.success(), "tmux new-session: {}", String::from_utf8_lossy(&ok.stderr));
        t.tmux(&["set-option", "-t", "main", "remain-on-exit", "on"]);
        t
    }

    fn tmux(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux").arg("-L").arg(&self.socket).args(args).output().unwrap()
    }

    /// The pane's text, with colours as escape sequences when `escapes`.
    fn capture(&self, escapes: bool) -> String {
        let mut args = vec!["capture-pane", "-p", "-t", "main"];
        if escapes {
            args.push("-e");
        }
        String::from_utf8_lossy(&self.tmux(&args).stdout).into_owned()
    }

    /// Whether the pane is on its alternate screen.
    fn alternate_on(&self) -> bool {
        String::from_utf8_lossy(&self.tmux(&["display-message", "-p", "-t", "main", "#{alternate_on}"]).stdout).trim() != "0"
    }

    fn keys(&self, keys: &str) {
        self.tmux(&["send-keys", "-t", "main", keys]);
    }

    fn wait_for(&self, what: &str, timeout: Duration, pred: impl Fn(&str, &str) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            let (plain, colored) = (self.capture(false), self.capture(true));
            if pred(&plain, &colored) {
                return;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}; screen:\n{plain}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.tmux(&["kill-server"]);
    }
}

/// Cells drawn as coloured half blocks: a `▀`/`▄` (or a blank with a background colour)
/// preceded by a 24-bit or 256-colour background.
fn coloured_cells(colored: &str) -> usize {
    colored.matches("[48;2;").count() + colored.matches("[48;5;").count()
}

#[test]
fn join_in_a_terminal_shows_the_picture_and_space_pauses_the_room() {
    if !Tmux::available() {
        eprintln!("SKIPPED: tmux is not installed (scripts/setup-debian.sh installs it)");
        return;
    }
    let file = clip_sized("tmux.mp4", 30, "1Mb/s", "320x180");
    let dir = super::harness::test_dir();
    let mut host = Proc::host(&file, dir.path(), &["--autoplay"]);
    let link = link_of(&mut host);
    let log = dir.path().join("tm.log");
    // The exit code goes to a file: tmux's own record of it is not reliable under load.
    let code_file = dir.path().join("exit.code");
    let cmd = format!(
        "RUST_LOG=info,rtc=warn,rtc_ice=warn,rtc_dtls=warn,webrtc=warn {} join '{link}' --render halfblocks --name tm --log {}; echo $? > {}",
        bin(),
        log.display(),
        code_file.display()
    );
    let t = Tmux::new("join", 100, 30, &cmd);
    t.wait_for("a picture and the playing status", Duration::from_secs(30), |plain, colored| {
        plain.contains("▶ playing") && coloured_cells(colored) > 100 && (plain.contains('▀') || plain.contains('▄'))
    });
    let screen = t.capture(false);
    assert!(screen.contains("space play/pause"), "footer:\n{screen}");
    let mark = host.mark();
    t.keys("Space");
    let paused = host.wait_after(mark, "the room paused", Duration::from_secs(15), |v| v["event"] == "state" && v["playing"] == false);
    assert!(paused["position_ms"].as_u64().unwrap() > 0);
    t.wait_for("the paused status", Duration::from_secs(10), |plain, _| plain.contains("⏸ paused"));
    // v steps through the quality choices the room offers (this clip: only the original).
    assert!(t.capture(false).contains("quality high auto"), "{}", t.capture(false));
    t.keys("v");
    t.wait_for("high chosen by hand", Duration::from_secs(10), |plain, _| plain.contains("quality: high") && plain.contains("quality high  you"));
    t.keys("v");
    t.wait_for("back to auto", Duration::from_secs(10), |plain, _| plain.contains("quality high auto"));
    t.keys("q");
    let asked = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(60);
    let code = loop {
        if let Some(c) = std::fs::read_to_string(&code_file).ok().and_then(|s| s.trim().parse::<i32>().ok()) {
            break c;
        }
        assert!(Instant::now() < deadline, "syncy join did not exit on q:\n{}\nlog:\n{}", t.capture(false), std::fs::read_to_string(&log).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(100));
    };
    eprintln!("exited {:?} after q", asked.elapsed());
    assert_eq!(code, 0, "exit code; screen:\n{}", t.capture(false));
    host.wait_for("peer_left tm", Duration::from_secs(15), |v| v["event"] == "peer_left" && v["name"] == "tm");
    assert_eq!(host.quit(), 0);
}

#[test]
fn the_demo_draws_the_dashboard_space_pauses_every_participant_and_q_leaves_a_clean_terminal() {
    if !Tmux::available() {
        eprintln!("SKIPPED: tmux is not installed (scripts/setup-debian.sh installs it)");
        return;
    }
    let dir = super::harness::test_dir();
    let log = dir.path().join("demo.log");
    let code_file = dir.path().join("exit.code");
    // No COLORTERM: the terminal is taken for a 256-colour one, as over SSH.
    let cmd = format!("env -u COLORTERM {} demo --duration 20 --render halfblocks --log {}; echo $? > {}", bin(), log.display(), code_file.display());
    let t = Tmux::new("demo", 80, 24, &cmd);
    t.wait_for("the dashboard with three peers, speeds and a picture", Duration::from_secs(90), |plain, colored| {
        plain.contains("peers (3)")
            && ["ann", "bob", "cy"].iter().all(|n| plain.lines().any(|l| l.starts_with(&format!("│{n} "))))
            && plain.contains("B/s")
            && plain.contains("▶ playing")
            && coloured_cells(colored) > 50
    });
    let colored = t.capture(true);
    assert!(!colored.contains("[48;2;") && !colored.contains("[38;2;"), "24-bit colour on a 256-colour terminal");
    // 80 columns: the footer keeps the essentials; wider, it lists every key.
    assert!(!t.capture(false).contains("y copy link"));
    t.tmux(&["resize-window", "-t", "main", "-x", "170", "-y", "50"]);
    t.wait_for("the wider layout", Duration::from_secs(10), |plain, _| plain.contains("y copy link · v quality · l log · ? help · q quit"));
    // A participant outside the process, headless, follows the same room.
    let screen = t.capture(false);
    let link = screen.split_whitespace().find(|w| w.starts_with("syncy://")).expect("the link on the dashboard").to_string();
    let mut zed = Proc::join(&link, "zed", dir.path(), &[]);
    zed.wait_for("zed playing", Duration::from_secs(30), |v| v["event"] == "state" && v["playing"] == true && v["buffering"] == false);
    t.wait_for("zed in the peers table", Duration::from_secs(15), |plain, _| plain.contains("peers (4)"));
    let mark = zed.mark();
    t.keys("Space");
    let paused = zed.wait_after(mark, "the room paused, headless side", Duration::from_secs(15), |v| v["event"] == "state" && v["playing"] == false);
    assert!(paused["position_ms"].as_u64().unwrap() > 0, "{paused}");
    t.wait_for("the paused bar", Duration::from_secs(10), |plain, _| plain.contains("⏸ paused"));
    // Every in-process participant stops too: their reported positions stop moving.
    let at = |plain: &str| -> Vec<String> {
        // The position column is the row's only m:ss figure.
        let clock = |w: &&str| w.split_once(':').is_some_and(|(m, s)| !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()) && s.len() == 2);
        plain
            .lines()
            .filter(|l| ["│ann ", "│bob ", "│cy "].iter().any(|n| l.starts_with(n)))
            .filter_map(|l| l.split_whitespace().find(clock).map(String::from))
            .collect()
    };
    // Time is counted in zed's once-a-second stats. The rows show what the host's own
    // once-a-second stats last heard from each participant, so two seconds go by first (the
    // paused positions reach the table), then the positions must hold for two seconds running.
    let mut next_second = || {
        zed.drain();
        let m = zed.mark();
        zed.wait_after(m, "zed's next stats", Duration::from_secs(5), |v| v["event"] == "stats");
    };
    next_second();
    next_second();
    let settle_by = Instant::now() + Duration::from_secs(15);
    let (mut before, mut held) = (at(&t.capture(false)), 0);
    while held < 2 {
        next_second();
        let now = at(&t.capture(false));
        held = if now.len() == 3 && now == before { held + 1 } else { 0 };
        assert!(held > 0 || Instant::now() < settle_by, "positions move while paused ({before:?}, then {now:?}):\n{}", t.capture(false));
        before = now;
    }
    t.keys("?");
    t.wait_for("the help overlay", Duration::from_secs(5), |plain, _| plain.contains("quit, always"));
    // Back to the size the pane started at before quitting: tmux restores the main screen
    // into a window that grew while the alternate screen was on by keeping some of the
    // alternate screen's rows (seen in full-suite runs), whatever the program wrote.
    t.tmux(&["resize-window", "-t", "main", "-x", "80", "-y", "24"]);
    t.wait_for("the 80-column layout again", Duration::from_secs(10), |plain, _| plain.contains("peers (4)") && !plain.contains("y copy link"));
    t.keys("q");
    let deadline = Instant::now() + Duration::from_secs(60);
    let code = loop {
        if let Some(c) = std::fs::read_to_string(&code_file).ok().and_then(|s| s.trim().parse::<i32>().ok()) {
            break c;
        }
        assert!(Instant::now() < deadline, "the demo did not exit on q:\n{}", t.capture(false));
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(code, 0, "exit code; screen:\n{}", t.capture(false));
    // A clean terminal: the alternate screen left, as tmux's own flag for the pane says (its
    // cursor flag reads 0 for any pane whose process has exited, so it says nothing here), and
    // nothing of the dashboard or the picture left on show. tmux reads the pane's output on its
    // own time, so give it a while under load.
    let deadline = Instant::now() + Duration::from_secs(20);
    while t.alternate_on() {
        assert!(Instant::now() < deadline, "the alternate screen is still on after exit:\n{}", t.capture(false));
        std::thread::sleep(Duration::from_millis(100));
    }
    t.wait_for("the dashboard gone from the terminal", Duration::from_secs(20), |after, _| !after.contains("peers (") && !after.contains('▀'));
    zed.event("stream_end", Duration::from_secs(15));
}

#[test]
fn on_the_dashboard_tab_selects_a_participant_and_b_twice_bans_them() {
    if !Tmux::available() {
        eprintln!("SKIPPED: tmux is not installed (scripts/setup-debian.sh installs it)");
        return;
    }
    let file = clip_sized("tmux-ban.mp4", 20, "1Mb/s", "320x180");
    let dir = super::harness::test_dir();
    let cmd = format!(
        "XDG_CONFIG_HOME={} {} host {} --listen 127.0.0.1:0 --log {}",
        dir.path().join("host-config").display(),
        bin(),
        file.display(),
        dir.path().join("host.log").display()
    );
    let t = Tmux::new("ban", 200, 30, &cmd);
    let link = std::cell::RefCell::new(String::new());
    t.wait_for("the link", Duration::from_secs(30), |plain, _| {
        let found = plain.split_whitespace().find(|w| w.starts_with("syncy://") && w.contains('#'));
        found.map(|l| *link.borrow_mut() = l.to_string()).is_some()
    });
    let mut eve = Proc::join(&link.borrow(), "eve", dir.path(), &[]);
    eve.event("manifest", Duration::from_secs(30));
    t.wait_for("eve in the table", Duration::from_secs(15), |plain, _| plain.contains("eve") && plain.contains("peers (1)"));
    t.keys("Tab");
    t.wait_for("eve selected", Duration::from_secs(10), |plain, _| plain.contains("eve (key ") && plain.contains("selected"));
    t.keys("b");
    t.wait_for("asked again", Duration::from_secs(10), |plain, _| plain.contains("b again bans eve"));
    t.keys("b");
    let end = eve.event("stream_end", Duration::from_secs(15));
    assert!(end["reason"].as_str().unwrap().contains("banned"), "{end}");
    t.wait_for("the table empty", Duration::from_secs(15), |plain, _| plain.contains("peers (0)"));
    t.keys("q");
    t.wait_for("the host gone", Duration::from_secs(30), |_, _| !t.alternate_on());
}
