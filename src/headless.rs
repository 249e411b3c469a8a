//! Headless mode (DESIGN §9): events as JSON lines on stdout, commands as lines on stdin.
//!
//! Engines emit typed [`Event`]s; this module only formats them (adding `t_ms`) and parses
//! commands. The same events feed the demo's progress view.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Per-participant figures in the host's `stats`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PeerStats {
    /// Peer id.
    pub peer: u64,
    /// Display name.
    pub name: String,
    /// Measured upload rate to this peer, bytes per second.
    pub up_bps: u64,
    /// Round trip as the peer measured it.
    pub rtt_ms: Option<u32>,
    /// Bytes the peer holds.
    pub buffered_bytes: u64,
    /// Peer's playback position.
    pub position_ms: u64,
    /// Quality level.
    pub quality: String,
    /// Bytes sent to this peer so far.
    pub sent_bytes: u64,
    /// Their playback drift from the room clock, as they report it.
    pub drift_ms: Option<i64>,
    /// They are waiting for data.
    pub buffering: bool,
}

/// One of the host's links, in the `room` event.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LinkInfo {
    /// The link.
    pub url: String,
    /// From where it works.
    pub kind: crate::net::links::LinkKind,
    /// Says so in words.
    pub note: String,
}

/// Something an engine reports.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Host: the room is open.
    Room {
        /// Join link: the first of `links`, the one to share when in doubt.
        link: String,
        /// Every link, each with where it works from.
        links: Vec<LinkInfo>,
        /// Room id.
        room: String,
        /// The hosted file's name.
        file: String,
        /// Its size in bytes.
        size: u64,
        /// Its duration, when the container says.
        duration_ms: Option<u64>,
    },
    /// Host with `--approve`: someone wants in; `approve NAME` or `deny NAME`.
    Knock {
        /// Peer id.
        peer: u64,
        /// Name.
        name: String,
    },
    /// A participant joined (host) or the participant's link is up (participant).
    PeerJoined {
        /// Peer id.
        peer: u64,
        /// Name.
        name: String,
    },
    /// A participant left.
    PeerLeft {
        /// Peer id.
        peer: u64,
        /// Name.
        name: String,
        /// Why, if known.
        reason: String,
    },
    /// Participant: the file.
    Manifest {
        /// File name.
        name: String,
        /// Bytes.
        size: u64,
        /// Chunk count.
        chunks: u32,
        /// Chunk size.
        chunk_size: u32,
        /// Duration.
        duration_ms: Option<u64>,
        /// Codecs.
        codecs: Vec<String>,
        /// Quality levels the host offers (`high` is the original).
        levels: Vec<String>,
    },
    /// The playback state changed. Host: the room's clock. Participant: what it shows, sent
    /// when it starts showing frames after a join, seek or stall, and when it starts waiting.
    State {
        /// Playing (participant: the room plays and frames are shown).
        playing: bool,
        /// Media position at `t_ms`.
        position_ms: u64,
        /// Participant: waiting for data (the picture is frozen).
        buffering: bool,
        /// Names of the participants the room waits for.
        waiting: Vec<String>,
        /// The room clock's sequence number.
        seq: u64,
        /// When `position_ms` was sampled (Unix ms).
        t_ms: f64,
    },
    /// Host stats.
    #[serde(rename = "stats")]
    HostStats {
        /// Room position.
        position_ms: u64,
        /// Room playing.
        playing: bool,
        /// Total upload rate.
        up_bps: u64,
        /// Per participant.
        peers: Vec<PeerStats>,
    },
    /// Participant stats.
    #[serde(rename = "stats")]
    JoinStats {
        /// Download rate.
        down_bps: u64,
        /// Bytes held in memory.
        buffered_bytes: u64,
        /// Chunks received so far (distinct).
        received_chunks: u32,
        /// Chunks that arrived while already held (sent twice: wasted upload).
        duplicate_chunks: u32,
        /// Chunks in the file.
        chunks: u32,
        /// Playback position.
        position_ms: u64,
        /// Playing.
        playing: bool,
        /// Quality level playing (`high`, `medium`, `low`).
        quality: String,
        /// The level being switched to, while a switch is under way.
        #[serde(skip_serializing_if = "Option::is_none")]
        quality_next: Option<String>,
        /// Time of the picture shown now, ms (none before the first frame).
        #[serde(skip_serializing_if = "Option::is_none")]
        frame_ms: Option<u64>,
        /// Drift from the room clock.
        drift_ms: i64,
        /// Waiting for data.
        buffering: bool,
        /// With sound on a device: how much sound and silence it played.
        #[serde(skip_serializing_if = "Option::is_none")]
        sound: Option<crate::player::audio::SoundStats>,
        /// With `--player mpv`: what mpv does.
        #[serde(skip_serializing_if = "Option::is_none")]
        mpv: Option<crate::player::mpv::MpvStatus>,
        /// The path that carries the link (as in the last `path` event).
        #[serde(skip_serializing_if = "Option::is_none")]
        path: Option<crate::net::path::Path>,
        /// When `position_ms` was sampled (Unix ms).
        t_ms: f64,
    },
    /// Participant: the path that carries the link (after each connection), with its ICE
    /// candidates.
    Path(crate::net::path::Path),
    /// Participant: every byte arrived; sha256 of the whole file.
    Complete {
        /// Hex sha256.
        sha256: String,
        /// Bytes.
        size: u64,
        /// Seconds from join to complete.
        seconds: f64,
    },
    /// Participant: `--save`'s file holds chunks from an earlier run; they are not fetched
    /// again.
    Resumed {
        /// Chunks already saved.
        chunks: u32,
        /// Their bytes.
        bytes: u64,
    },
    /// Participant: WebRTC did not come up; the file and the room's clock come over the
    /// host's HTTP fallback instead.
    Fallback {
        /// What happened to WebRTC.
        reason: String,
        /// The fallback's address.
        url: String,
    },
    /// Participant: the link to the host dropped; trying to get back in (keeping every chunk
    /// held).
    Reconnecting {
        /// Why the link dropped.
        reason: String,
        /// Attempt number, from 1.
        attempt: u32,
    },
    /// Participant: back in the room after a drop, for the same file.
    Reconnected {
        /// Bytes held in memory when the link came back (none of them is fetched again).
        held_bytes: u64,
    },
    /// The host ended the stream.
    StreamEnd {
        /// Why.
        reason: String,
    },
    /// Something did not work, and the engine carries on without it (a STUN server that did
    /// not answer, say).
    Warning {
        /// What, and what it means.
        message: String,
    },
    /// Something went wrong.
    Error {
        /// What.
        message: String,
    },
}

/// Unix time in milliseconds.
pub fn now_ms() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0)
}

/// The JSON line for an event, with `t_ms`.
pub fn to_line(event: &Event) -> String {
    let mut v = serde_json::to_value(event).expect("events serialize");
    // Events that sample something carry their own time; the rest are stamped now.
    if let Some(obj) = v.as_object_mut()
        && !obj.contains_key("t_ms")
    {
        obj.insert("t_ms".into(), serde_json::json!((now_ms() * 1000.0).round() / 1000.0));
    }
    v.to_string()
}

/// Prints an event line on stdout. A closed stdout (the reader went away) is not an error:
/// it ends the program quietly (see `crate::stdout`).
pub fn print(event: &Event) {
    crate::stdout::write(&format!("{}\n", to_line(event)));
}

/// A command read from stdin (or sent by the UI).
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Start playing.
    Play,
    /// Pause.
    Pause,
    /// Seek to an absolute position (seconds).
    SeekTo(f64),
    /// Seek relative to now (seconds, signed).
    SeekBy(f64),
    /// Choose a quality level (`auto` or a level name).
    Quality(String),
    /// Change the download limit (bytes per second, 0: none).
    DownloadLimit(u64),
    /// Host with `--approve`: let the participant of this name in.
    Approve(String),
    /// Host with `--approve`: turn the participant of this name away.
    Deny(String),
    /// Leave cleanly.
    Quit,
}

/// Parses one command line.
pub fn parse_command(line: &str) -> Result<Command, String> {
    let mut words = line.split_whitespace();
    let cmd = words.next().unwrap_or("");
    let arg = words.next();
    if words.next().is_some() {
        return Err(format!("too many words in {line:?}"));
    }
    let seconds = |a: &str| a.parse::<f64>().ok().filter(|s| s.is_finite());
    match (cmd, arg) {
        ("play", None) => Ok(Command::Play),
        ("pause", None) => Ok(Command::Pause),
        ("quit", None) => Ok(Command::Quit),
        ("seek", Some(a)) if a.starts_with(['+', '-']) => seconds(a).map(Command::SeekBy).ok_or(format!("bad seek {a:?}")),
        ("seek", Some(a)) => seconds(a).filter(|s| *s >= 0.0).map(Command::SeekTo).ok_or(format!("bad seek {a:?}")),
        ("quality", Some(l)) if ["auto", "low", "medium", "high"].contains(&l) => Ok(Command::Quality(l.into())),
        ("download-limit", Some(r)) => crate::units::parse_bytes(r).map(Command::DownloadLimit).map_err(|e| e.to_string()),
        ("approve", Some(n)) => Ok(Command::Approve(n.into())),
        ("deny", Some(n)) => Ok(Command::Deny(n.into())),
        _ => Err(format!(
            "unknown command {line:?} (try play, pause, seek S, seek +S, seek -S, quality auto|low|medium|high, download-limit RATE, approve NAME, deny NAME, quit)"
        )),
    }
}

/// Reads stdin lines into commands until EOF (EOF does not quit: stdin may simply be closed).
pub fn spawn_stdin_reader(tx: tokio::sync::mpsc::UnboundedSender<Command>) {
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut line = String::new();
        loop {
            line.clear();
            match stdin.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line.trim().is_empty() {
                continue;
            }
            match parse_command(line.trim()) {
                Ok(c) => {
                    if tx.send(c).is_err() {
                        return;
                    }
                }
                Err(e) => print(&Event::Error { message: e }),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_have_event_and_t_ms() {
        let line = to_line(&Event::Room { link: "syncy://x".into(), links: vec![], room: "r".into(), file: "a.mp4".into(), size: 9, duration_ms: Some(1000) });
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["event"], "room");
        assert!(v["t_ms"].as_f64().unwrap() > 1.6e12);
        let line = to_line(&Event::HostStats { position_ms: 0, playing: false, up_bps: 1, peers: vec![] });
        assert!(line.contains(r#""event":"stats""#));
    }

    #[test]
    fn parses_commands() {
        assert_eq!(parse_command("play"), Ok(Command::Play));
        assert_eq!(parse_command("seek 12.5"), Ok(Command::SeekTo(12.5)));
        assert_eq!(parse_command("seek +5"), Ok(Command::SeekBy(5.0)));
        assert_eq!(parse_command("seek -5"), Ok(Command::SeekBy(-5.0)));
        assert_eq!(parse_command("quality low"), Ok(Command::Quality("low".into())));
        assert_eq!(parse_command("download-limit 1.5Mb/s"), Ok(Command::DownloadLimit(187_500)));
        assert_eq!(parse_command("download-limit 0"), Ok(Command::DownloadLimit(0)));
        assert!(parse_command("download-limit fast").is_err());
        assert_eq!(parse_command("approve bob"), Ok(Command::Approve("bob".into())));
        assert_eq!(parse_command("deny bob"), Ok(Command::Deny("bob".into())));
        assert!(parse_command("approve").is_err());
        for bad in ["", "seek", "seek x", "seek NaN", "jump", "quit now", "quality ultra"] {
            assert!(parse_command(bad).is_err(), "{bad}");
        }
    }
}
