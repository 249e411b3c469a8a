//! The picture suite's room: does drawing sixel into a terminal move a participant off the
//! room clock? A host (headless), a participant drawing sixel in xterm at 150×48 pinned to one
//! core, and a headless one drawing nothing, play the same 720p clip; the host's stats give
//! each one's drift (its picture against the room clock) every second.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use color_eyre::eyre::{Result, bail, eyre};

use crate::xlab::{Display, Term};

/// Seconds of play measured (after the first few, when both have joined).
pub const SECONDS: u64 = 15;

/// A child process, stopped when dropped.
struct Stopping(Child);

impl Drop for Stopping {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

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
    let mut lines = BufReader::new(host.0.stdout.take().ok_or_else(|| eyre!("no host stdout"))?).lines();
    let link = loop {
        let v: serde_json::Value = serde_json::from_str(&lines.next().ok_or_else(|| eyre!("the host ended"))??)?;
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
    let deadline = Instant::now() + Duration::from_secs(SECONDS + 60);
    let mut started: Option<Instant> = None;
    while Instant::now() < deadline && started.is_none_or(|t| t.elapsed() < Duration::from_secs(SECONDS)) {
        let Some(line) = lines.next() else { bail!("the host ended") };
        let v: serde_json::Value = serde_json::from_str(&line?)?;
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
