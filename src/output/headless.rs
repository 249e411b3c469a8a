//! Headless mode (DESIGN §9): events as JSON lines on stdout, commands as lines on stdin.
//!
//! Engines emit typed [`Event`]s; this module only formats them (adding `t_ms`) and parses
//! commands. The same events feed the demo's progress view.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::core::api::{Command, Event};

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
/// it ends the program quietly (see `crate::output::stdout`).
pub fn print(event: &Event) {
    crate::output::stdout::write(&format!("{}\n", to_line(event)));
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
        ("download-limit", Some(r)) => crate::core::units::parse_bytes(r).map(Command::DownloadLimit).map_err(|e| e.to_string()),
        ("approve", Some(n)) => Ok(Command::Approve(n.into())),
        ("deny", Some(n)) => Ok(Command::Deny(n.into())),
        ("kick", Some(n)) => Ok(Command::Kick(n.into())),
        ("ban", Some(n)) => Ok(Command::Ban(n.into())),
        _ => Err(format!(
            "unknown command {line:?} (try play, pause, seek S, seek +S, seek -S, quality auto|low|medium|high, download-limit RATE, approve ID|NAME, deny ID|NAME, kick ID|NAME, ban ID|NAME, quit)"
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
        let line = to_line(&Event::HostStats { position_ms: 0, playing: false, up_bps: 1, sent_bytes: 0, relayed_bytes: 0, peers: vec![] });
        assert!(line.contains(r#""event":"stats""#));
    }

    #[test]
    fn a_participants_stats_keep_their_fields_and_nothing_of_the_view() {
        let snap = crate::core::api::JoinSnapshot { quality: "high".into(), pieces: vec![1, 2], room_playing: true, ..Default::default() };
        let v: serde_json::Value = serde_json::from_str(&to_line(&Event::JoinStats(Box::new(snap)))).unwrap();
        assert_eq!(v["event"], "stats");
        assert_eq!(v["drift_ms"], 0, "an unknown drift is 0, as before");
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        let want = [
            "buffered_bytes",
            "buffering",
            "chunks",
            "down_bps",
            "drift_ms",
            "duplicate_chunks",
            "event",
            "playing",
            "position_ms",
            "quality",
            "received_chunks",
            "t_ms",
            "unasked_chunks",
        ];
        assert_eq!(keys, want);
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
        assert_eq!(parse_command("kick 4294967299"), Ok(Command::Kick("4294967299".into())));
        assert_eq!(parse_command("ban eve"), Ok(Command::Ban("eve".into())));
        assert!(parse_command("ban").is_err());
        assert!(parse_command("approve").is_err());
        for bad in ["", "seek", "seek x", "seek NaN", "jump", "quit now", "quality ultra"] {
            assert!(parse_command(bad).is_err(), "{bad}");
        }
    }
}
