//! mpv as the player (`--player mpv`): started on the local range server's URL with JSON IPC,
//! kept on the room clock (pause, seek, speed nudges, with the same drift policy as the
//! built-in player), and its own pause/seek keys turned into room commands.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, watch};

use crate::core::api::Command;
use crate::core::clock::{Correction, FollowerConfig, Micros, correct};
use crate::core::participant::RoomView;

pub use crate::core::api::MpvStatus;

/// What the mpv driver tells the engine.
#[derive(Debug, Clone, PartialEq)]
pub enum MpvOut {
    /// The user pressed a key in mpv that the room should apply.
    Command(Command),
    /// mpv's state changed.
    Status(MpvStatus),
    /// mpv went away (closed by the user, or failed).
    Exited(String),
}

/// A running mpv.
pub struct Mpv {
    clock: watch::Sender<Option<RoomView>>,
    /// Events from mpv.
    pub out: mpsc::UnboundedReceiver<MpvOut>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Mpv {
    /// Starts mpv on `url`, paused, with `extra` arguments (e.g. `--vo=null --ao=null`), the
    /// demuxer pinned to `format` (see [`lavf_format`]). The URL holds the range server's
    /// secret path: it goes over the private IPC socket, never on mpv's command line, which
    /// every local user can read in `/proc`.
    pub async fn spawn(url: &str, format: &str, extra: &[String]) -> std::io::Result<Mpv> {
        let dir = tempfile::tempdir()?;
        let sock = dir.path().join("mpv.sock");
        let mut cmd = tokio::process::Command::new("mpv");
        cmd.arg("--no-terminal")
            .arg(format!("--input-ipc-server={}", sock.display()))
            .arg("--pause")
            .arg("--keep-open=yes")
            // Waits for the file over IPC.
            .arg("--idle=yes")
            .arg("--hr-seek=yes")
            // The bytes are the host's: no youtube-dl, no playlists, one demuxer for one format.
            .arg("--ytdl=no")
            .arg("--load-unsafe-playlists=no")
            .arg("--demuxer=lavf")
            .arg(format!("--demuxer-lavf-format={format}"))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .map_err(|e| std::io::Error::new(e.kind(), format!("cannot start mpv ({e}); install it (apt install mpv) or use the built-in player")))?;
        let mut stream = connect(&sock).await?;
        let load = json!({ "command": ["loadfile", url] }).to_string() + "\n";
        stream.write_all(load.as_bytes()).await?;
        let (clock, clock_rx) = watch::channel(None);
        let (out_tx, out) = mpsc::unbounded_channel();
        let task = tokio::spawn(drive(child, stream, clock_rx, out_tx));
        Ok(Mpv { clock, out, task, _dir: dir })
    }

    /// The room's clock changed (or its offset estimate did).
    pub fn set_clock(&self, view: Option<RoomView>) {
        let _ = self.clock.send(view);
    }
}

impl Drop for Mpv {
    fn drop(&mut self) {
        // Aborting drops the child, which kills mpv.
        self.task.abort();
    }
}

/// The FFmpeg demuxer mpv is to use for a file the host says is `container` (FFmpeg's own
/// name, as the host probed it): one of a few, or none (`--player mpv` is then refused).
pub fn lavf_format(container: &str) -> Option<&'static str> {
    const KNOWN: [(&str, &str); 6] = [("mp4", "mov"), ("matroska", "matroska"), ("webm", "matroska"), ("mpegts", "mpegts"), ("avi", "avi"), ("flv", "flv")];
    container.split(',').find_map(|name| KNOWN.iter().find(|(n, _)| *n == name).map(|(_, f)| *f))
}

async fn connect(sock: &PathBuf) -> std::io::Result<UnixStream> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match UnixStream::connect(sock).await {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() > deadline => return Err(std::io::Error::new(e.kind(), format!("mpv did not open its IPC socket: {e}"))),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// The driver's view of mpv.
#[derive(Default)]
struct State {
    paused: Option<bool>,
    /// What we last asked `pause` to be: a change to anything else is the user's.
    expected_pause: Option<bool>,
    time_pos: Option<(f64, Instant)>,
    speed: f64,
    /// Seeks we issued and mpv has not finished.
    our_seeks: u32,
    /// A seek the user made in mpv: report its position once known.
    user_seek: bool,
    restarted_after_user_seek: bool,
    correcting: bool,
}

impl State {
    fn position_us(&self) -> Option<Micros> {
        let (pos, at) = self.time_pos?;
        let running = self.paused == Some(false) && self.our_seeks == 0;
        let extra = if running { at.elapsed().as_secs_f64() * self.speed } else { 0.0 };
        Some(((pos + extra) * 1e6) as Micros)
    }

    fn status(&self) -> MpvStatus {
        MpvStatus {
            position_ms: (self.position_us().unwrap_or(0).max(0) / 1000) as u64,
            paused: self.paused.unwrap_or(true),
            speed: self.speed,
            sampled: Some(Instant::now()),
        }
    }
}

async fn drive(mut child: tokio::process::Child, stream: UnixStream, mut clock: watch::Receiver<Option<RoomView>>, out: mpsc::UnboundedSender<MpvOut>) {
    let (rd, mut wr) = stream.into_split();
    let mut lines = BufReader::new(rd).lines();
    let mut st = State { speed: 1.0, ..State::default() };
    let cfg = FollowerConfig { deadband_us: 40_000, settle_us: 10_000, ..FollowerConfig::default() };
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut send_queue: Vec<Value> = vec![];
    for (id, prop) in ["pause", "time-pos", "speed"].iter().enumerate() {
        send_queue.push(json!({"command": ["observe_property", id + 1, prop]}));
    }
    let reason = loop {
        for cmd in send_queue.drain(..) {
            tracing::debug!("to mpv: {cmd}");
            let mut line = cmd.to_string();
            line.push('\n');
            if wr.write_all(line.as_bytes()).await.is_err() {
                break;
            }
        }
        tokio::select! {
            line = lines.next_line() => match line {
                Ok(Some(line)) => {
                    let Ok(v) = serde_json::from_str::<Value>(&line) else { continue };
                    if v["name"] != "time-pos" {
                        tracing::debug!("mpv: {line}");
                    }
                    if let Some(ev) = handle_event(&mut st, &v) {
                        let _ = out.send(ev);
                    }
                }
                _ => break "mpv closed its IPC connection".to_string(),
            },
            changed = clock.changed() => {
                if changed.is_err() {
                    break "the engine stopped".to_string();
                }
                let view = *clock.borrow_and_update();
                steer(&mut st, view, &cfg, &mut send_queue);
            }
            _ = tick.tick() => {
                let view = *clock.borrow();
                steer(&mut st, view, &cfg, &mut send_queue);
                let _ = out.send(MpvOut::Status(st.status()));
            }
            status = child.wait() => {
                break format!("mpv exited ({})", status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()));
            }
        }
    };
    let _ = out.send(MpvOut::Exited(reason));
}

/// Reacts to one IPC message; returns a room command when the user acted in mpv.
fn handle_event(st: &mut State, v: &Value) -> Option<MpvOut> {
    match v["event"].as_str()? {
        "property-change" => match v["name"].as_str()? {
            "pause" => {
                let p = v["data"].as_bool()?;
                st.paused = Some(p);
                if let Some((pos, _)) = st.time_pos {
                    st.time_pos = Some((pos, Instant::now()));
                }
                if st.expected_pause.is_some() && st.expected_pause != Some(p) {
                    st.expected_pause = Some(p);
                    return Some(MpvOut::Command(if p { Command::Pause } else { Command::Play }));
                }
                None
            }
            "time-pos" => {
                let pos = v["data"].as_f64()?;
                st.time_pos = Some((pos, Instant::now()));
                if st.user_seek && st.restarted_after_user_seek {
                    st.user_seek = false;
                    st.restarted_after_user_seek = false;
                    return Some(MpvOut::Command(Command::SeekTo(pos.max(0.0))));
                }
                None
            }
            "speed" => {
                st.speed = v["data"].as_f64().unwrap_or(1.0);
                None
            }
            _ => None,
        },
        "seek" => {
            if st.our_seeks == 0 {
                st.user_seek = true;
            }
            None
        }
        "playback-restart" => {
            if st.our_seeks > 0 {
                st.our_seeks -= 1;
            } else if st.user_seek {
                st.restarted_after_user_seek = true;
            }
            None
        }
        _ => None,
    }
}

/// Brings mpv to the room's clock.
fn steer(st: &mut State, view: Option<RoomView>, cfg: &FollowerConfig, q: &mut Vec<Value>) {
    let Some(view) = view else { return };
    // Until mpv has told us its own pause state, a change could not be told apart from ours.
    if st.paused.is_none() || st.our_seeks > 0 || st.user_seek {
        return;
    }
    let target = view.position_at(Instant::now());
    let seek = |st: &mut State, q: &mut Vec<Value>, to: Micros| {
        st.our_seeks += 1;
        q.push(json!({"command": ["seek", to.max(0) as f64 / 1e6, "absolute+exact"]}));
    };
    let want_pause = !view.state.playing;
    if st.expected_pause != Some(want_pause) || st.paused != Some(want_pause) {
        st.expected_pause = Some(want_pause);
        q.push(json!({"command": ["set_property", "pause", want_pause]}));
    }
    let Some(here) = st.position_us() else { return };
    let drift = here - target;
    if want_pause {
        if drift.abs() > 40_000 {
            seek(st, q, target);
        }
        return;
    }
    let room_rate = view.state.rate_milli as f64 / 1000.0;
    match correct(cfg, drift, &mut st.correcting) {
        Correction::Seek => seek(st, q, target),
        Correction::Rate(r) => {
            let speed = room_rate * r;
            if (speed - st.speed).abs() > 0.002 {
                st.speed = speed;
                q.push(json!({"command": ["set_property", "speed", speed]}));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prop(name: &str, data: Value) -> Value {
        json!({"event": "property-change", "name": name, "data": data})
    }

    #[test]
    fn our_own_pause_and_seek_are_not_room_commands() {
        let mut st = State { speed: 1.0, ..State::default() };
        assert_eq!(handle_event(&mut st, &prop("pause", json!(true))), None, "initial state");
        let view = RoomView {
            state: crate::core::clock::MediaState { playing: true, position_us: 5_000_000, at_host_us: 0, rate_milli: 1000, seq: 3 },
            offset: 0,
            epoch: Instant::now(),
        };
        handle_event(&mut st, &prop("time-pos", json!(0.0)));
        let mut q = vec![];
        steer(&mut st, Some(view), &FollowerConfig::default(), &mut q);
        // Unpause, and seek: 5 s off is past the seek threshold.
        assert!(q.iter().any(|c| c["command"] == json!(["set_property", "pause", false])), "{q:?}");
        assert!(q.iter().any(|c| c["command"][0] == "seek"), "{q:?}");
        assert_eq!(handle_event(&mut st, &prop("pause", json!(false))), None);
        assert_eq!(handle_event(&mut st, &json!({"event": "seek"})), None);
        assert_eq!(handle_event(&mut st, &json!({"event": "playback-restart"})), None);
        assert_eq!(handle_event(&mut st, &prop("time-pos", json!(5.0))), None);
        assert_eq!(st.our_seeks, 0);
    }

    #[test]
    fn the_users_keys_in_mpv_become_room_commands() {
        let mut st = State { speed: 1.0, expected_pause: Some(false), paused: Some(false), ..State::default() };
        assert_eq!(handle_event(&mut st, &prop("pause", json!(true))), Some(MpvOut::Command(Command::Pause)));
        assert_eq!(handle_event(&mut st, &prop("pause", json!(false))), Some(MpvOut::Command(Command::Play)));
        // A seek nobody asked mpv for: reported at the position mpv lands on.
        assert_eq!(handle_event(&mut st, &json!({"event": "seek"})), None);
        assert_eq!(handle_event(&mut st, &json!({"event": "playback-restart"})), None);
        assert_eq!(handle_event(&mut st, &prop("time-pos", json!(42.5))), Some(MpvOut::Command(Command::SeekTo(42.5))));
        assert_eq!(handle_event(&mut st, &prop("time-pos", json!(42.6))), None);
    }

    #[test]
    fn small_drift_nudges_speed_large_drift_seeks() {
        let cfg = FollowerConfig { deadband_us: 40_000, settle_us: 10_000, ..FollowerConfig::default() };
        let view = |pos: Micros| RoomView {
            state: crate::core::clock::MediaState { playing: true, position_us: pos, at_host_us: 0, rate_milli: 1000, seq: 1 },
            offset: 0,
            epoch: Instant::now(),
        };
        let mut st = State { speed: 1.0, paused: Some(false), expected_pause: Some(false), ..State::default() };
        st.time_pos = Some((10.0, Instant::now()));
        let mut q = vec![];
        // mpv 200 ms behind: speed up (by at most 5%).
        steer(&mut st, Some(view(10_200_000)), &cfg, &mut q);
        assert_eq!(q.len(), 1, "{q:?}");
        let speed = q[0]["command"][2].as_f64().unwrap();
        assert!(speed > 1.0 && speed <= 1.05 + 1e-9, "{speed}");
        // 3 s behind: seek.
        q.clear();
        steer(&mut st, Some(view(13_000_000)), &cfg, &mut q);
        assert_eq!(q[0]["command"][0], "seek");
    }
}
