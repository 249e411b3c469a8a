//! Every event's words for people, in one place: the plain printer, the dashboard's log and
//! the participant's view all show these (each may add a hint of its own, such as which key
//! does what).

use std::fmt;

use super::Event;

/// A media position as `M:SS` (or `H:MM:SS`).
pub fn clock(ms: u64) -> String {
    let s = ms / 1000;
    if s >= 3600 { format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60) } else { format!("{}:{:02}", s / 60, s % 60) }
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// "playing at 1:12", "buffering at 0:40", "waiting at 0:40 (waiting for bob)" (a room that
/// does not wait plays on: "playing at 0:40 (waiting for bob)").
pub fn state_line(playing: bool, buffering: bool, waiting: &[String], position_ms: u64) -> String {
    let what = match (buffering, playing, waiting.is_empty()) {
        (true, _, _) => "buffering",
        (false, true, _) => "playing",
        (false, false, false) => "waiting",
        (false, false, true) => "paused",
    };
    let wait = if waiting.is_empty() { String::new() } else { format!(" (waiting for {})", waiting.join(", ")) };
    format!("{what} at {}{wait}", clock(position_ms))
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The links themselves are shown apart (the plain printer's list, the dashboard's pane).
            Event::Room { room, .. } => write!(f, "room {room} open"),
            Event::Knock { name, peer, guest } => write!(f, "? {name} (id {peer}, key {guest}) wants to join"),
            Event::PeerJoined { name, .. } => write!(f, "+ {name} joined"),
            Event::PeerLeft { name, reason, .. } => write!(f, "- {name} left ({reason})"),
            Event::Manifest { name, size, chunks, duration_ms, codecs, .. } => {
                let length = duration_ms.map_or("unknown length".into(), |d| format!("{:.1} s", d as f64 / 1000.0));
                write!(f, "{name}: {:.1} MB in {chunks} chunks, {length}, {}", mb(*size), codecs.join("/"))
            }
            Event::State { playing, position_ms, buffering, waiting, .. } => f.write_str(&state_line(*playing, *buffering, waiting, *position_ms)),
            Event::HostStats { up_bps, peers, .. } => {
                let list: Vec<String> = peers.iter().map(|p| format!("{} {:.1} MB/s", p.name, mb(p.up_bps))).collect();
                write!(f, "up {:.1} MB/s | {} watching | {}", mb(*up_bps), peers.len(), list.join(", "))
            }
            Event::JoinStats(s) => {
                let received = s.received_chunks as f64 * 100.0 / s.chunks.max(1) as f64;
                write!(f, "down {:.1} MB/s | {received:.0}% received | {:.1} MB buffered", mb(s.down_bps), mb(s.buffered_bytes))
            }
            Event::Path(p) => write!(f, "connected to the host: {p}"),
            Event::Complete { sha256, size, seconds, matched } => {
                let check = if *matched { "the host's" } else { "NOT the host's" };
                write!(f, "complete: {:.1} MB in {seconds:.1} s, sha256 {sha256} ({check})", mb(*size))
            }
            Event::Resumed { chunks, bytes } => write!(f, "resuming the saved copy: {chunks} chunks ({:.1} MB) already here", mb(*bytes)),
            Event::Fallback { reason, url } => write!(f, "{reason}: watching over HTTP from {url}"),
            Event::Reconnecting { reason, attempt } => write!(f, "link lost ({reason}): reconnecting, attempt {attempt}"),
            Event::Reconnected { held_bytes } => write!(f, "back in the room; kept {:.1} MB", mb(*held_bytes)),
            Event::StreamEnd { reason } => write!(f, "stream ended: {reason}"),
            Event::Warning { message } => write!(f, "warning: {message}"),
            Event::Error { message } => write!(f, "error: {message}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_event() {
        let left = Event::PeerLeft { peer: 1, name: "bob".into(), reason: "left the room".into() };
        assert_eq!(left.to_string(), "- bob left (left the room)");
        let waiting = Event::State { playing: false, position_ms: 40_000, buffering: false, waiting: vec!["bob".into()], seq: 3, t_ms: 0.0 };
        assert_eq!(waiting.to_string(), "waiting at 0:40 (waiting for bob)");
        assert_eq!(clock(3_725_000), "1:02:05");
        let resumed = Event::Resumed { chunks: 3, bytes: 2_500_000 };
        assert_eq!(resumed.to_string(), "resuming the saved copy: 3 chunks (2.5 MB) already here");
    }
}
