//! The host dashboard's model: a fold over the engine's events — the same ones `--headless`
//! prints — so the view draws a snapshot and never reaches into the engine. Sans-IO: events
//! and the current time go in, the view reads fields out.

use std::collections::VecDeque;
use std::time::Instant;

use crate::core::api::{Event, PeerStats};

/// Seconds of upload history the sparkline shows (stats arrive once a second).
pub const HISTORY: usize = 60;
/// Log lines kept for the log pane.
pub const LOG_LINES: usize = 200;

/// Where a participant is, as the host sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    /// Waiting for the host to let them in (`--approve`).
    Knocking,
    /// Joined the room; no report over the data channel yet.
    Connecting,
    /// Reporting and showing frames.
    Watching,
    /// Reporting, waiting for data.
    Buffering,
}

impl PeerState {
    /// The word the peers table shows.
    pub fn word(self) -> &'static str {
        match self {
            PeerState::Knocking => "knocking",
            PeerState::Connecting => "connecting",
            PeerState::Watching => "watching",
            PeerState::Buffering => "buffering",
        }
    }
}

/// One row of the peers table.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerRow {
    /// Peer id.
    pub peer: u64,
    /// Display name.
    pub name: String,
    /// Connection state.
    pub state: PeerState,
    /// Their key's fingerprint: the same person shows the same one each time.
    pub guest: String,
    /// Their latest figures (None until the first stats that include them).
    pub stats: Option<PeerStats>,
}

/// The hosted file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FileInfo {
    /// File name.
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// Duration, when known.
    pub duration_ms: Option<u64>,
}

/// Everything the host view shows.
#[derive(Debug, Clone, Default)]
pub struct RoomModel {
    /// Room id.
    pub room: String,
    /// Join link (the one to share when in doubt).
    pub link: String,
    /// Every link with where it works from (the first is `link`).
    pub links: Vec<crate::core::api::LinkInfo>,
    /// The hosted file.
    pub file: FileInfo,
    /// The room clock plays.
    pub playing: bool,
    /// Room position at `position_at`.
    pub position_ms: u64,
    position_at: Option<Instant>,
    /// Who the room waits for.
    pub waiting: Vec<String>,
    /// Total upload rate.
    pub up_bps: u64,
    /// Bytes the host sent, and bytes participants relayed to each other.
    pub sent_bytes: u64,
    pub relayed_bytes: u64,
    /// Upload rate, one sample per stats event, oldest first (at most [`HISTORY`]).
    pub up_history: VecDeque<u64>,
    /// Participants in join order.
    pub peers: Vec<PeerRow>,
    /// Joins, leaves, state changes and errors, oldest first (at most [`LOG_LINES`]).
    pub log: VecDeque<String>,
    /// The latest error, for the status line.
    pub error: Option<String>,
}

impl RoomModel {
    /// The name of who has waited longest to be let in.
    pub fn oldest_knocking(&self) -> Option<(u64, &str)> {
        self.peers.iter().find(|p| p.state == PeerState::Knocking).map(|p| (p.peer, p.name.as_str()))
    }

    /// Folds one engine event in.
    pub fn apply(&mut self, event: &Event, now: Instant) {
        match event {
            Event::Room { link, links, room, file, size, duration_ms } => {
                self.link = link.clone();
                self.links = links.clone();
                self.room = room.clone();
                self.file = FileInfo { name: file.clone(), size: *size, duration_ms: *duration_ms };
                self.note(event.to_string());
            }
            Event::Knock { peer, name, guest } => {
                if !self.peers.iter().any(|p| p.peer == *peer) {
                    self.peers.push(PeerRow { peer: *peer, name: name.clone(), state: PeerState::Knocking, guest: guest.clone(), stats: None });
                }
                self.note(format!("{event} (a: let in, d: turn away)"));
            }
            Event::PeerJoined { peer, name, guest } => {
                match self.peers.iter_mut().find(|p| p.peer == *peer) {
                    Some(row) => row.state = PeerState::Connecting,
                    None => self.peers.push(PeerRow { peer: *peer, name: name.clone(), state: PeerState::Connecting, guest: guest.clone(), stats: None }),
                }
                self.note(event.to_string());
            }
            Event::PeerLeft { peer, .. } => {
                self.peers.retain(|p| p.peer != *peer);
                self.note(event.to_string());
            }
            Event::State { playing, position_ms, waiting, .. } => {
                self.playing = *playing;
                self.set_position(*position_ms, now);
                self.waiting = waiting.clone();
                self.note(event.to_string());
            }
            Event::HostStats { position_ms, playing, up_bps, sent_bytes, relayed_bytes, peers } => {
                (self.sent_bytes, self.relayed_bytes) = (*sent_bytes, *relayed_bytes);
                self.playing = *playing;
                self.set_position(*position_ms, now);
                self.up_bps = *up_bps;
                self.up_history.push_back(*up_bps);
                while self.up_history.len() > HISTORY {
                    self.up_history.pop_front();
                }
                for row in self.peers.iter_mut().filter(|r| r.state != PeerState::Knocking) {
                    if let Some(s) = peers.iter().find(|s| s.peer == row.peer) {
                        // A round trip is measured over the data channel: the peer is connected.
                        row.state = match (s.rtt_ms, s.buffering) {
                            (None, _) => PeerState::Connecting,
                            (Some(_), true) => PeerState::Buffering,
                            (Some(_), false) => PeerState::Watching,
                        };
                        row.stats = Some(s.clone());
                    }
                }
            }
            Event::Error { message } => {
                self.error = Some(message.clone());
                self.note(event.to_string());
            }
            Event::Warning { .. } => self.note(event.to_string()),
            _ => {}
        }
    }

    fn set_position(&mut self, position_ms: u64, now: Instant) {
        self.position_ms = position_ms;
        self.position_at = Some(now);
    }

    fn note(&mut self, line: String) {
        self.log.push_back(line);
        while self.log.len() > LOG_LINES {
            self.log.pop_front();
        }
    }

    /// The room position now: the last report carried forward while playing, held at the
    /// duration.
    pub fn position_now(&self, now: Instant) -> u64 {
        let carried = match (self.playing && self.waiting.is_empty(), self.position_at) {
            (true, Some(at)) => self.position_ms + now.saturating_duration_since(at).as_millis() as u64,
            _ => self.position_ms,
        };
        self.file.duration_ms.map_or(carried, |d| carried.min(d))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn stats(peer: u64, name: &str, rtt: Option<u32>, buffering: bool) -> PeerStats {
        PeerStats {
            peer,
            name: name.into(),
            up_bps: 1_000,
            rtt_ms: rtt,
            buffered_bytes: 5,
            position_ms: 1_000,
            quality: "high".into(),
            sent_bytes: 9,
            drift_ms: Some(2),
            buffering,
            relay_up_bps: None,
        }
    }

    #[test]
    fn peers_go_from_connecting_to_watching_and_buffering_and_leave() {
        let t = Instant::now();
        let mut m = RoomModel::default();
        m.apply(&Event::Knock { peer: 1, name: "ann".into(), guest: "Qm9iIGtleSAx".into() }, t);
        assert_eq!((m.peers[0].state, m.oldest_knocking()), (PeerState::Knocking, Some((1, "ann"))));
        m.apply(&Event::PeerJoined { peer: 1, name: "ann".into(), guest: "Z3Vlc3Qga2V5".into() }, t);
        assert_eq!((m.peers.len(), m.oldest_knocking()), (1, None), "let in: the same row, connecting");
        m.apply(&Event::PeerJoined { peer: 2, name: "bob".into(), guest: "Z3Vlc3Qga2V5".into() }, t);
        assert!(m.peers.iter().all(|p| p.state == PeerState::Connecting));
        let peers = vec![stats(1, "ann", Some(3), false), stats(2, "bob", Some(4), true)];
        m.apply(&Event::HostStats { position_ms: 0, playing: false, up_bps: 7, sent_bytes: 0, relayed_bytes: 0, peers }, t);
        assert_eq!(m.peers[0].state, PeerState::Watching);
        assert_eq!(m.peers[1].state, PeerState::Buffering);
        assert_eq!(m.peers[1].stats.as_ref().unwrap().rtt_ms, Some(4));
        m.apply(&Event::PeerLeft { peer: 1, name: "ann".into(), reason: "left".into() }, t);
        assert_eq!(m.peers.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["bob"]);
        assert_eq!(m.log.back().unwrap(), "- ann left (left)");
    }

    #[test]
    fn upload_history_keeps_the_last_minute() {
        let t = Instant::now();
        let mut m = RoomModel::default();
        for i in 0..100 {
            m.apply(&Event::HostStats { position_ms: 0, playing: false, up_bps: i, sent_bytes: 0, relayed_bytes: 0, peers: vec![] }, t);
        }
        assert_eq!(m.up_history.len(), HISTORY);
        assert_eq!(m.up_history.front(), Some(&40));
        assert_eq!(m.up_bps, 99);
    }

    #[test]
    fn the_position_runs_while_playing_and_holds_while_paused_or_waiting() {
        let t = Instant::now();
        let mut m = RoomModel::default();
        m.apply(&Event::Room { link: "l".into(), links: vec![], room: "r".into(), file: "f".into(), size: 1, duration_ms: Some(10_000) }, t);
        let state = |playing, position_ms, waiting: Vec<String>| Event::State { playing, position_ms, buffering: false, waiting, seq: 1, t_ms: 0.0 };
        m.apply(&state(true, 2_000, vec![]), t);
        assert_eq!(m.position_now(t + Duration::from_millis(1_500)), 3_500);
        assert_eq!(m.position_now(t + Duration::from_secs(60)), 10_000, "held at the end");
        m.apply(&state(true, 2_000, vec!["bob".into()]), t);
        assert_eq!(m.position_now(t + Duration::from_secs(5)), 2_000, "the room waits");
        assert!(m.log.iter().any(|l| l.ends_with("at 0:02 (waiting for bob)")), "{:?}", m.log);
        m.apply(&state(false, 4_000, vec![]), t);
        assert_eq!(m.position_now(t + Duration::from_secs(5)), 4_000);
    }

    #[test]
    fn the_log_is_bounded() {
        let t = Instant::now();
        let mut m = RoomModel::default();
        for i in 0..(LOG_LINES + 50) {
            m.apply(&Event::Error { message: format!("e{i}") }, t);
        }
        assert_eq!(m.log.len(), LOG_LINES);
        assert_eq!(m.error.as_deref(), Some(format!("e{}", LOG_LINES + 49).as_str()));
    }
}
