//! The picture suite's room: does drawing sixel into a terminal move a participant off the
//! room clock? A host (headless), a participant drawing sixel in xterm at 150×48 pinned to one
//! core, and a headless one drawing nothing, play the same 720p clip; the host's stats give
//! each one's drift (its picture against the room clock) every second.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use color_eyre::eyre::{Result, bail, eyre};

use crate::xlab::{Display, Stopping, Term};

/// Seconds of play measured (after the first few, when both have joined).
pub const SECONDS: u64 = 15;

/// Median and worst absolute drift (ms) of the viewer in the terminal and of the headless one.
pub struct Drift {
    pub viewer: (f64, f64),
    pub headless: (f64, f64),
}

/// Plays `clip` (≥ 20 s) in a room with both participants.
pub fn measure(display: &Display, dir: &Path, clip: &Path) -> Result<Drift> {
    let exe = std::env::current_exe()?;
    let mut host = Stopping(
        Command::new(&exe)
            .args(["host", &clip.to_string_lossy(), "--headless", "--autoplay", "--listen", "127.0.0.1:0"])
            .env("XDG_CONFIG_HOME", dir.join("host-config"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?,
    );
    // The host's events on a thread of their own, so every wait here has its deadline.
    let (tx, lines) = std::sync::mpsc::sync_channel(256);
    let out = host.0.stdout.take().ok_or_else(|| eyre!("no host stdout"))?;
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(SECONDS + 60);
    let next = || lines.recv_timeout(deadline.saturating_duration_since(Instant::now())).map_err(|_| eyre!("the host ended or went quiet"));
    let link = loop {
        let v: serde_json::Value = serde_json::from_str(&next()?)?;
        if v["event"] == "room" {
            break v["link"].as_str().unwrap_or_default().to_string();
        }
    };
    let join = |name: &str| format!("'{}' join '{link}' --no-sound --name {name}", exe.display());
    let script = format!("XDG_CONFIG_HOME='{}' exec taskset -c 0 {} --render sixel", dir.join("viewer-config").display(), join("viewer"));
    let _viewer = Stopping(Term::Vt340.command((150, 48), display, dir, &script).stdout(Stdio::null()).stderr(Stdio::null()).spawn()?);
    let _headless = Stopping(
        Command::new("sh")
            .args(["-c", &format!("exec {} --headless --render none", join("headless"))])
            .env("XDG_CONFIG_HOME", dir.join("headless-config"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let (mut viewer, mut headless) = (Vec::new(), Vec::new());
    let mut started: Option<Instant> = None;
    while started.is_none_or(|t| t.elapsed() < Duration::from_secs(SECONDS)) {
        let v: serde_json::Value = serde_json::from_str(&next()?)?;
        if v["event"] != "stats" || v["playing"] != true {
            continue;
        }
        let drift = |name: &str| v["peers"].as_array()?.iter().find(|p| p["name"] == name)?["drift_ms"].as_i64();
        if let (Some(a), Some(b)) = (drift("viewer"), drift("headless")) {
            started.get_or_insert_with(Instant::now);
            viewer.push(a.unsigned_abs() as f64);
            headless.push(b.unsigned_abs() as f64);
        }
    }
    if viewer.len() < 5 {
        bail!("the room did not play with both participants in it");
    }
    Ok(Drift { viewer: median_worst(viewer), headless: median_worst(headless) })
}

fn median_worst(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[v.len() - 1])
}
