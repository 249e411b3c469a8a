//! The engines' interface (DESIGN §9): the events a host or participant reports and the
//! commands it takes. The headless printer, the dashboards and the tests all read these; the
//! cores produce them.

mod text;

use std::time::Instant;

use serde::Serialize;

pub use text::{clock, state_line};

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
    /// What they upload to other participants now, B/s, as they report it (absent: they
    /// do not relay).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay_up_bps: Option<u64>,
}

/// One of the host's links, in the `room` event.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LinkInfo {
    /// The link.
    pub url: String,
    /// From where it works.
    pub kind: LinkKind,
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
    /// Host with `--approve`: someone wants in; `approve ID|NAME` or `deny ID|NAME`.
    Knock {
        /// Peer id.
        peer: u64,
        /// Name.
        name: String,
        /// Its key's fingerprint: the same person shows the same one each time it joins this
        /// room (a name is anyone's to take).
        guest: String,
    },
    /// A participant joined (host) or the participant's link is up (participant).
    PeerJoined {
        /// Peer id.
        peer: u64,
        /// Name.
        name: String,
        /// Its key's fingerprint (as in `knock`).
        guest: String,
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
        /// Bytes the host sent since it started (chunks and messages).
        sent_bytes: u64,
        /// Bytes participants relayed to each other, as they report it.
        relayed_bytes: u64,
        /// Per participant.
        peers: Vec<PeerStats>,
    },
    /// Participant stats (each second): the participant's snapshot.
    #[serde(rename = "stats")]
    JoinStats(Box<JoinSnapshot>),
    /// Participant: the path that carries the link (after each connection), with its ICE
    /// candidates.
    Path(crate::path::Path),
    /// Participant: every byte arrived; sha256 of the whole file.
    Complete {
        /// Hex sha256.
        sha256: String,
        /// Whether it is the hash the host signed for its file (`complete` waits for it).
        matched: bool,
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
    /// Host with `--approve`: let in the knocker of this id (the `knock` event's `peer`), or
    /// of this name when only one knocker has it.
    Approve(String),
    /// Host with `--approve`: turn away the knocker of this id, or of this name when only one
    /// has it.
    Deny(String),
    /// Host: send this participant away (its id, or a name only one has): it is told the
    /// stream ended for it, and its link closes. (It holds the link: under `--approve` it
    /// knocks again, to be turned away.)
    Kick(String),
    /// Host: ban the key of this participant or knocker (its id, or a name only one has) for
    /// the room's life: sent away now, turned away when it comes back (to this host or, once
    /// the driver kept it, a restarted one).
    Ban(String),
    /// Leave cleanly.
    Quit,
}

/// From where a link works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkKind {
    /// The name given with `--advertise`.
    Advertised,
    /// The external address and port the router mapped for us (`--upnp`: UPnP or NAT-PMP).
    Upnp,
    /// A public address of one of this machine's interfaces.
    Public,
    /// A private address of this machine: friends on the same network.
    Lan,
    /// The public address a STUN server saw: works only if the port is forwarded here.
    Internet,
    /// Loopback: this machine only.
    Local,
    /// An external signaling server (`--server`).
    Server,
}

impl LinkKind {
    /// A few words for the dashboard.
    pub fn label(self) -> &'static str {
        match self {
            LinkKind::Advertised => "as given",
            LinkKind::Upnp => "internet (port mapped)",
            LinkKind::Public => "public address",
            LinkKind::Lan => "LAN",
            LinkKind::Internet => "internet, if the port is forwarded",
            LinkKind::Local => "this machine",
            LinkKind::Server => "signaling server",
        }
    }
}

/// Played sound and silence, in milliseconds (for stats).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SoundStats {
    /// Milliseconds of decoded sound played.
    pub sound_ms: u64,
    /// Milliseconds of silence played.
    pub silent_ms: u64,
    /// Media time of the latest sound played (absent while paused).
    pub position_ms: Option<u64>,
}

/// What mpv is doing, for stats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct MpvStatus {
    /// mpv's position.
    pub position_ms: u64,
    /// mpv is paused.
    pub paused: bool,
    /// mpv's playback speed.
    pub speed: f64,
    /// When this was sampled (the position runs on from there unless paused).
    #[serde(skip)]
    pub sampled: Option<Instant>,
}

impl MpvStatus {
    /// The status carried forward to `now`.
    pub fn at(&self, now: Instant) -> MpvStatus {
        let mut s = *self;
        if let Some(at) = self.sampled.filter(|_| !self.paused) {
            s.position_ms += (now.saturating_duration_since(at).as_secs_f64() * 1000.0 * self.speed) as u64;
        }
        s.sampled = Some(now);
        s
    }
}

/// What a participant is doing, taken at one instant. Its view and its headless `stats` both
/// read this, built in one place (the participant's session); the fields after `t_ms` are for
/// the view only.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct JoinSnapshot {
    /// Download rate.
    pub down_bps: u64,
    /// Bytes held in memory.
    pub buffered_bytes: u64,
    /// Chunks received so far (distinct).
    pub received_chunks: u32,
    /// Chunks that arrived while already held (sent twice: wasted upload).
    pub duplicate_chunks: u32,
    /// Chunks the host sent that were never asked for: dropped unstored.
    pub unasked_chunks: u64,
    /// Chunks in the file.
    pub chunks: u32,
    /// Playback position.
    pub position_ms: u64,
    /// Playing.
    pub playing: bool,
    /// Quality level playing (`high`, `medium`, `low`).
    pub quality: String,
    /// The level being switched to, while a switch is under way.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quality_next: Option<String>,
    /// Time of the picture shown now, ms (none before the first frame).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame_ms: Option<u64>,
    /// Drift from the room clock (`stats` says 0 until it is known).
    #[serde(serialize_with = "zero_if_none")]
    pub drift_ms: Option<i64>,
    /// Waiting for data.
    pub buffering: bool,
    /// With sound on a device: how much sound and silence it played.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sound: Option<SoundStats>,
    /// With `--player mpv`: what mpv does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mpv: Option<MpvStatus>,
    /// The path that carries the link (as in the last `path` event).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<crate::path::Path>,
    /// When `position_ms` was sampled (Unix ms).
    pub t_ms: f64,
    /// The room wants to play (what the play/pause key toggles).
    #[serde(skip)]
    pub room_playing: bool,
    /// Who the room waits for.
    #[serde(skip)]
    pub waiting: Vec<String>,
    /// `auto` or the level chosen by hand.
    #[serde(skip)]
    pub quality_choice: String,
    /// The file in equal slices: the percentage of each slice held.
    #[serde(skip)]
    pub pieces: Vec<u8>,
    /// Where the demuxer reads in the file, 0.0–1.0.
    #[serde(skip)]
    pub read_fraction: f64,
    /// Relaying (absent with `--no-relay`).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub relay: Option<RelayStats>,
}

/// A participant's relaying, in its `stats`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RelayStats {
    /// Upload to neighbours now, B/s.
    pub relay_up_bps: u64,
    /// Bytes uploaded to neighbours so far.
    pub relay_up_bytes: u64,
    /// Bytes neighbours sent this side (each checked against the host's hash).
    pub relay_down_bytes: u64,
    /// Links to neighbours that are up.
    pub relay_links: u32,
    /// `--relay-limit`, B/s (0: none).
    pub relay_limit_bps: u64,
}

impl JoinSnapshot {
    /// The level for a person: what plays, and what it is moving to ("low→medium").
    pub fn quality_label(&self) -> String {
        match &self.quality_next {
            Some(next) => format!("{}→{next}", self.quality),
            None => self.quality.clone(),
        }
    }
}

fn zero_if_none<S: serde::Serializer>(v: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_i64(v.unwrap_or(0))
}
