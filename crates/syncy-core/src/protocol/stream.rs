//! The streaming protocol between host and participant: one bincode message per data-channel
//! message. `chunks` carries only `Chunk`; everything else goes on `control`.
//!
//! Decoding is bounded (size limit, no trailing bytes) and every decoded message is checked
//! against the manifest and the sender's role before anything acts on it.

use bincode::Options;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::hashes::{HashBatch, StreamId};
use super::have::Have;
use super::relay::{RelayIntro, RelaySdp};

/// Protocol version carried in `Hello`; peers with another version are refused.
pub const PROTOCOL_VERSION: u16 = 6;
/// Default chunk payload size.
pub const DEFAULT_CHUNK_SIZE: u32 = 64 * 1024;
/// Largest chunk size a peer accepts (keeps a chunk message under SCTP's 256 KiB ceiling).
pub const MAX_CHUNK_SIZE: u32 = 192 * 1024;
/// Smallest chunk size a manifest may name: a participant keeps state per chunk, so a host
/// that chose one-byte chunks would make it as large as the file.
pub const MIN_CHUNK_SIZE: u32 = 16 * 1024;
/// Most chunks in a space: a participant's per-chunk state stays a few MiB (2^22 chunks of
/// 192 KiB is 768 GiB, of the default 64 KiB 256 GiB).
pub const MAX_CHUNKS: u32 = 1 << 22;
/// Largest non-chunk message.
pub const MAX_CONTROL_MESSAGE: u64 = 64 * 1024;
/// Most chunk indices in one `Request` or `Cancel`.
pub const MAX_INDICES: usize = 4096;
/// Longest name or string field.
pub const MAX_TEXT: usize = 256;
/// Most names in a `State`'s waiting list.
pub const MAX_WAITING: usize = 32;
/// `text` cut to at most `max` bytes, at a character's edge (a text field on the wire is
/// bounded in bytes).
pub fn clip_text(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Longest relay SDP (an SDP with a few dozen candidates is a few kilobytes).
pub const MAX_SDP: usize = 16 * 1024;
/// Most entries in a `Roster`.
pub const MAX_ROSTER: usize = 64;
/// Most a time on the wire may say, µs (2^53: 285 years, and exact as an `f64`): larger ones
/// are refused, so arithmetic on them cannot overflow (TRUST-REVIEW #14).
pub const MAX_TIME_US: u64 = 1 << 53;

/// A chunk space: which bytes a chunk index counts in. The original file is space 0; each
/// rendition the host makes gets a fresh number, so a chunk of a restarted rendition is never
/// mistaken for one of the rendition it replaced.
pub type Space = u32;
/// The original file's chunk space.
pub const ORIGINAL: Space = 0;

/// What a file is, sent by the host once the channels open.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// File name (no directories).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Bytes per chunk (the last chunk may be shorter).
    pub chunk_size: u32,
    /// Number of chunks.
    pub chunks: u32,
    /// Duration in milliseconds, when the container says.
    pub duration_ms: Option<u64>,
    /// Container format name as ffmpeg reports it.
    pub container: String,
    /// Codec names of the streams.
    pub codecs: Vec<String>,
    /// Quality levels offered (`high` is the original bytes).
    pub levels: Vec<String>,
    /// This host run's random id, in the signatures of chunk hashes and relay introductions.
    pub stream: StreamId,
}

impl Manifest {
    /// What says two manifests describe the same file: name, size and chunking.
    pub fn identity(&self) -> (&str, u64, u32, u32) {
        (self.name.as_str(), self.size, self.chunk_size, self.chunks)
    }

    /// Chunk count for a size and chunk size.
    pub fn chunk_count(size: u64, chunk_size: u32) -> u64 {
        size.div_ceil(chunk_size as u64)
    }

    /// Byte length of chunk `index`, or `None` if out of range.
    pub fn chunk_len(&self, index: u32) -> Option<usize> {
        if index >= self.chunks {
            return None;
        }
        let start = index as u64 * self.chunk_size as u64;
        Some((self.size - start).min(self.chunk_size as u64) as usize)
    }

    /// Checks internal consistency (a manifest is network input too).
    pub fn validate(&self) -> Result<(), StreamError> {
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&self.chunk_size) {
            return Err(StreamError::Invalid("chunk size out of range"));
        }
        if self.chunks > MAX_CHUNKS {
            return Err(StreamError::Invalid("too many chunks"));
        }
        if Manifest::chunk_count(self.size, self.chunk_size) != self.chunks as u64 {
            return Err(StreamError::Invalid("chunk count does not match size"));
        }
        if self.name.len() > MAX_TEXT || self.container.len() > MAX_TEXT {
            return Err(StreamError::Invalid("name too long"));
        }
        if self.codecs.len() > 16 || self.levels.len() > 8 {
            return Err(StreamError::Invalid("too many codecs or levels"));
        }
        Ok(())
    }
}

/// How urgently a participant wants chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Priority {
    /// The reader is blocked on it.
    Critical,
    /// Read-ahead.
    Window,
}

/// A playback command a participant asks the host to apply to the room.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Start playing.
    Play,
    /// Pause.
    Pause,
    /// Seek to a media position in microseconds.
    Seek(u64),
}

/// One message on a data channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// First message each way.
    Hello {
        /// `PROTOCOL_VERSION`.
        version: u16,
        /// Sender's display name.
        name: String,
    },
    /// Host → participant: the file.
    Manifest(Manifest),
    /// Host → participant: chunk bytes.
    Chunk {
        /// Chunk space (`ORIGINAL` or a rendition's).
        space: Space,
        /// Chunk index.
        index: u32,
        /// Payload.
        data: ByteBuf,
    },
    /// Host → participant: the room's media clock.
    State {
        /// Playing or paused.
        playing: bool,
        /// Media position (µs) at `at_host_us`.
        position_us: u64,
        /// Host clock reading (µs) the position refers to.
        at_host_us: u64,
        /// Playback rate in thousandths.
        rate_milli: u32,
        /// Increases with every clock change.
        seq: u64,
        /// Names of the participants the room is waiting for (buffering).
        waiting: Vec<String>,
    },
    /// Host → participant: answer to `Ping`.
    Pong {
        /// Echo of the ping's client time.
        client_us: u64,
        /// Host clock when answering.
        host_us: u64,
    },
    /// Host → participant: the rendition for the level the participant asked for (`Level`),
    /// and how much of it exists. Sent when it starts and as it grows; a new `space` for the
    /// same level means it was restarted (after a seek outside what it covers).
    QualityChange {
        /// Level name (`medium`, `low`).
        level: String,
        /// Its chunk space (never `ORIGINAL`).
        space: Space,
        /// Room media position (µs) of the rendition's time zero, once known.
        first_us: Option<u64>,
        /// Bytes that exist so far (only whole chunks are served until `done`).
        produced: u64,
        /// The rendition is complete: `produced` is its size.
        done: bool,
        /// This is the answer to the participant's latest `Level` (the host has put it on this
        /// rendition); otherwise news of its growth.
        granted: bool,
    },
    /// Host → participant: the stream is over.
    StreamEnd {
        /// Why.
        reason: String,
    },
    /// Participant → host: please send these chunks.
    Request {
        /// Chunk space.
        space: Space,
        /// Indices.
        chunks: Vec<u32>,
        /// Urgency.
        priority: Priority,
    },
    /// Participant → host: no longer needed.
    Cancel {
        /// Chunk space.
        space: Space,
        /// Indices.
        chunks: Vec<u32>,
    },
    /// Participant → host: apply to the room.
    Command(Command),
    /// Participant → host: clock probe.
    Ping {
        /// Participant clock (µs).
        client_us: u64,
    },
    /// Participant → host: how it is doing.
    Report {
        /// Playback position.
        position_ms: u64,
        /// Bytes held.
        buffered_bytes: u64,
        /// Measured download rate.
        down_bps: u64,
        /// Waiting for data.
        buffering: bool,
        /// Measured round trip to the host.
        rtt_ms: Option<u32>,
        /// Newest `State` seq applied (and, when not buffering, showing).
        seq: u64,
        /// Playback drift from the room clock.
        drift_ms: Option<i64>,
        /// How its relaying goes (`None`: it does not relay).
        relay: Option<RelayReport>,
    },
    /// Host → participant: something the participant should tell its user (a refused command).
    Notice {
        /// What.
        text: String,
    },
    /// Host → participant, once a second: who is in the room and how they are doing, so
    /// every participant's view can list the room.
    Roster {
        /// Everyone connected, the receiver included.
        peers: Vec<RosterEntry>,
    },
    /// Participant → host: play this level from this room position on (`high`: the original;
    /// the host stops serving it a rendition).
    Level {
        /// One of the manifest's levels.
        level: String,
        /// Room media position (µs) the rendition must cover.
        from_us: u64,
    },
    /// Host → participant: the level asked for with `Level` cannot be had (too many
    /// renditions, asked too often, the transcode failed); the participant stays on what the
    /// host last granted it. The answer to a `Level`, like a granted `QualityChange`.
    LevelRefused {
        /// The level.
        level: String,
        /// Why, for the user.
        reason: String,
    },
    /// Host → participant: the whole file's SHA-256, signed with the host key over the room
    /// (`Purpose::FileHash`), sent once the host has read it through (in the background: the
    /// room opens at once). A participant's `complete` says whether its copy matched.
    FileHash {
        /// The digest.
        sha256: ByteBuf,
        /// Hex Ed25519 signature.
        sig: String,
    },
    /// Host → participant, or relay → participant: signed hashes of a batch of chunks, which
    /// a chunk from a relay must match.
    HashBatch(HashBatch),
    /// Participant → host, relay → participant: what it holds of a space, as a change.
    Have(Have),
    /// Participant → host or relay: please send the hash batch starting at `first`.
    HashAsk {
        /// Chunk space.
        space: Space,
        /// The batch's first index.
        first: u32,
    },
    /// Host → participant: meet this neighbour over a relay link.
    RelayIntro(RelayIntro),
    /// Participant → host → participant: a relay link's offer or answer, signed by its writer.
    RelaySignal(RelaySdp),
    /// Either way on the control channel: the relay link is over, or will not be.
    RelayBye {
        /// The link.
        link: u32,
        /// Why, for logs.
        reason: String,
    },
    /// Host → participant: ask me for these chunks now, ahead of your read-ahead: nobody in
    /// the room holds them yet, and you are to pass them on.
    Seed {
        /// Chunk space.
        space: Space,
        /// Indices.
        chunks: Vec<u32>,
    },
    /// Host → participant: not from me, these (read-ahead you asked for): a neighbour of
    /// yours holds them or is getting them. Asked again after a while, the host sends them.
    Elsewhere {
        /// Chunk space.
        space: Space,
        /// Indices.
        chunks: Vec<u32>,
    },
    /// Participant → host: the relay on `link` sent a chunk that does not match its hash.
    BadChunk {
        /// The link.
        link: u32,
        /// Chunk space.
        space: Space,
        /// Chunk index.
        index: u32,
    },
}

/// How a participant's relaying goes, in its `Report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RelayReport {
    /// Its relay upload limit, B/s (0: none).
    pub limit_bps: u64,
    /// Relay upload rate now, B/s.
    pub up_bps: u64,
    /// Bytes it uploaded to neighbours.
    pub up_bytes: u64,
    /// Bytes it downloaded from neighbours.
    pub down_bytes: u64,
    /// Open relay links.
    pub links: u16,
    /// It takes seeds (it has no download limit of its own to keep).
    pub seeds: bool,
}

/// One participant in a [`Message::Roster`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RosterEntry {
    /// Display name.
    pub name: String,
    /// Waiting for data.
    pub buffering: bool,
    /// Drift from the room clock as they report it.
    pub drift_ms: Option<i64>,
    /// The level they play.
    pub level: String,
}

/// Who sent a message; used to enforce host-only messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The room's host.
    Host,
    /// A participant.
    Participant,
    /// A participant's relay neighbour, on their own link: it may only trade chunks.
    Relay,
}

impl Message {
    /// Whether a peer of role `from` may send this message.
    pub fn allowed_from(&self, from: Role) -> bool {
        use Message::*;
        match self {
            Hello { .. } => true,
            Manifest(_)
            | State { .. }
            | Pong { .. }
            | QualityChange { .. }
            | StreamEnd { .. }
            | Notice { .. }
            | Roster { .. }
            | LevelRefused { .. }
            | FileHash { .. }
            | RelayIntro(_)
            | Seed { .. }
            | Elsewhere { .. } => from == Role::Host,
            Chunk { .. } | HashBatch(_) => from != Role::Participant,
            Command(_) | Ping { .. } | Report { .. } | Level { .. } | BadChunk { .. } => from == Role::Participant,
            Request { .. } | Cancel { .. } | Have(_) | HashAsk { .. } => from != Role::Host,
            RelaySignal(_) | RelayBye { .. } => from != Role::Relay,
        }
    }
}

/// Why a stream message was refused.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// Not a well-formed message (truncated, unknown tag, trailing bytes, over the limit).
    #[error("malformed message: {0}")]
    Decode(#[from] bincode::Error),
    /// Well-formed but not acceptable.
    #[error("invalid message: {0}")]
    Invalid(&'static str),
    /// Sent by a role that may not send it.
    #[error("a {0:?} may not send this message")]
    Role(Role),
}

fn options(limit: u64) -> impl Options {
    bincode::DefaultOptions::new().with_limit(limit).with_little_endian().with_varint_encoding().reject_trailing_bytes()
}

/// Largest encoded message for a chunk size.
pub fn max_message(chunk_size: u32) -> u64 {
    (chunk_size as u64 + 64).max(MAX_CONTROL_MESSAGE)
}

/// Encodes a message.
pub fn encode(msg: &Message) -> Vec<u8> {
    options(u64::MAX).serialize(msg).expect("stream messages always serialize")
}

/// Variant index of `Message::Chunk` in the bincode encoding (declaration order).
const CHUNK_VARIANT: u32 = 2;

/// Encodes a chunk message header for `len` payload bytes; the payload follows it verbatim.
/// Together they are byte-identical to `encode(&Message::Chunk { .. })`, without copying the
/// payload through serde.
pub fn encode_chunk_header(space: Space, index: u32, len: usize) -> Vec<u8> {
    options(u64::MAX).serialize(&(CHUNK_VARIANT, space, index, len as u64)).expect("integers always serialize")
}

/// A chunk message split into its parts (the payload not copied).
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkParts {
    /// Chunk space.
    pub space: Space,
    /// Chunk index.
    pub index: u32,
    /// Payload.
    pub data: bytes::Bytes,
}

impl ChunkParts {
    /// Checks the payload against the length the receiver expects for this chunk (`None`:
    /// no such chunk).
    pub fn check_len(&self, expected: Option<usize>) -> Result<(), StreamError> {
        match expected {
            Some(l) if l == self.data.len() => Ok(()),
            Some(_) => Err(StreamError::Invalid("chunk has the wrong length")),
            None => Err(StreamError::Invalid("chunk index out of range")),
        }
    }
}

/// Splits a chunk message into space, index and payload without copying the payload. Returns
/// `Ok(None)` if the message is not a chunk. Checks the size limit and the length prefix; the
/// caller checks the length against the chunk's space ([`ChunkParts::check_len`]), since only
/// it knows which rendition spaces exist.
pub fn decode_chunk(mut bytes: bytes::BytesMut, chunk_size: u32) -> Result<Option<ChunkParts>, StreamError> {
    if bytes.len() as u64 > max_message(chunk_size) {
        return Err(StreamError::Invalid("message over the size limit"));
    }
    let mut cursor = std::io::Cursor::new(&bytes[..]);
    let opts = bincode::DefaultOptions::new().with_limit(64).with_little_endian().with_varint_encoding();
    let variant: u32 = opts.deserialize_from(&mut cursor)?;
    if variant != CHUNK_VARIANT {
        return Ok(None);
    }
    let (space, index, len): (Space, u32, u64) = opts.deserialize_from(&mut cursor)?;
    let header = cursor.position() as usize;
    if (bytes.len() - header) as u64 != len {
        return Err(StreamError::Invalid("chunk length prefix does not match the message"));
    }
    if len > chunk_size as u64 {
        return Err(StreamError::Invalid("chunk longer than the chunk size"));
    }
    Ok(Some(ChunkParts { space, index, data: bytes.split_off(header).freeze() }))
}

/// Whether every time the message carries is at most [`MAX_TIME_US`] (milliseconds at most
/// a thousandth of it).
fn times_in_range(msg: &Message) -> bool {
    let us = |t: u64| t <= MAX_TIME_US;
    let ms = |t: u64| t <= MAX_TIME_US / 1000;
    match msg {
        Message::State { position_us, at_host_us, .. } => us(*position_us) && us(*at_host_us),
        Message::Pong { client_us, host_us } => us(*client_us) && us(*host_us),
        Message::Ping { client_us } => us(*client_us),
        Message::QualityChange { first_us, .. } => first_us.is_none_or(us),
        Message::Level { from_us, .. } => us(*from_us),
        Message::Command(Command::Seek(t)) => us(*t),
        Message::Report { position_ms, drift_ms, .. } => ms(*position_ms) && drift_ms.is_none_or(|d| ms(d.unsigned_abs())),
        _ => true,
    }
}

/// Decodes a message of at most `limit` bytes.
pub fn decode(bytes: &[u8], limit: u64) -> Result<Message, StreamError> {
    if bytes.len() as u64 > limit {
        return Err(StreamError::Invalid("message over the size limit"));
    }
    Ok(options(limit).deserialize(bytes)?)
}

/// Decodes and checks a message from a peer of role `from`, against `manifest` if known.
pub fn decode_from(bytes: &[u8], from: Role, manifest: Option<&Manifest>) -> Result<Message, StreamError> {
    let limit = manifest.map_or(MAX_CONTROL_MESSAGE, |m| max_message(m.chunk_size));
    let msg = decode(bytes, limit)?;
    if !msg.allowed_from(from) {
        return Err(StreamError::Role(from));
    }
    check(&msg, manifest)?;
    Ok(msg)
}

fn check(msg: &Message, manifest: Option<&Manifest>) -> Result<(), StreamError> {
    if !times_in_range(msg) {
        return Err(StreamError::Invalid("a time out of range"));
    }
    let in_range = |ix: &[u32]| match manifest {
        Some(m) => ix.iter().all(|&i| i < m.chunks),
        None => false,
    };
    match msg {
        Message::Hello { name, .. } if name.len() > MAX_TEXT => Err(StreamError::Invalid("name too long")),
        Message::Manifest(m) => m.validate(),
        // A rendition's chunks are checked by the receiver, which knows how far it has grown.
        Message::Chunk { space, index, data } if *space == ORIGINAL => match manifest.and_then(|m| m.chunk_len(*index)) {
            Some(len) if len == data.len() => Ok(()),
            Some(_) => Err(StreamError::Invalid("chunk has the wrong length")),
            None => Err(StreamError::Invalid("chunk index out of range")),
        },
        Message::Chunk { data, .. } => match manifest {
            Some(m) if data.len() <= m.chunk_size as usize => Ok(()),
            _ => Err(StreamError::Invalid("chunk longer than the chunk size")),
        },
        Message::Request { chunks, space, .. } | Message::Cancel { chunks, space } | Message::Seed { chunks, space } | Message::Elsewhere { chunks, space } => {
            if chunks.len() > MAX_INDICES {
                Err(StreamError::Invalid("too many chunk indices"))
            } else if *space == ORIGINAL && !in_range(chunks) {
                Err(StreamError::Invalid("chunk index out of range"))
            } else {
                Ok(())
            }
        }
        Message::QualityChange { level, .. } | Message::Level { level, .. } | Message::StreamEnd { reason: level } | Message::Notice { text: level }
            if level.len() > MAX_TEXT =>
        {
            Err(StreamError::Invalid("text too long"))
        }
        Message::LevelRefused { level, reason } if level.len() > MAX_TEXT || reason.len() > MAX_TEXT => Err(StreamError::Invalid("text too long")),
        Message::FileHash { sha256, sig } if sha256.len() != 32 || sig.len() != 128 => Err(StreamError::Invalid("a file hash is 32 bytes, its signature 64")),
        Message::Roster { peers } => {
            if peers.len() > MAX_ROSTER || peers.iter().any(|p| p.name.len() > MAX_TEXT || p.level.len() > MAX_TEXT) {
                Err(StreamError::Invalid("roster too long"))
            } else {
                Ok(())
            }
        }
        Message::State { waiting, rate_milli, .. } => {
            if waiting.len() > MAX_WAITING || waiting.iter().any(|n| n.len() > MAX_TEXT) {
                Err(StreamError::Invalid("waiting list too long"))
            } else if *rate_milli > 16_000 {
                Err(StreamError::Invalid("playback rate out of range"))
            } else {
                Ok(())
            }
        }
        Message::QualityChange { space: ORIGINAL, .. } => Err(StreamError::Invalid("a rendition cannot use the original's chunk space")),
        _ => check_relaying(msg, manifest),
    }
}

/// The checks of the messages that relaying added.
fn check_relaying(msg: &Message, manifest: Option<&Manifest>) -> Result<(), StreamError> {
    // The original's chunks end at the manifest's count; a rendition's at the most there are.
    let bound = |space: Space| match manifest {
        Some(m) if space == ORIGINAL => m.chunks,
        _ => MAX_CHUNKS,
    };
    match msg {
        Message::HashBatch(b) if !b.well_formed() || b.first as u64 + b.count() as u64 > bound(b.space) as u64 => {
            Err(StreamError::Invalid("a malformed hash batch"))
        }
        Message::Have(h) if !h.added.well_formed(bound(h.space)) || !h.dropped.well_formed(bound(h.space)) => Err(StreamError::Invalid("a malformed have")),
        Message::HashAsk { space, first } if *first >= bound(*space) || !first.is_multiple_of(super::hashes::HASH_BATCH) => {
            Err(StreamError::Invalid("no such hash batch"))
        }
        Message::RelayIntro(i) if !i.well_formed() => Err(StreamError::Invalid("a malformed relay introduction")),
        Message::RelaySignal(s) if s.sig.len() != 128 => Err(StreamError::Invalid("a relay SDP's signature is 64 bytes")),
        Message::RelaySignal(s) if s.sdp.len() > MAX_SDP => Err(StreamError::Invalid("a relay SDP too long")),
        Message::RelayBye { reason, .. } if reason.len() > MAX_TEXT => Err(StreamError::Invalid("text too long")),
        Message::BadChunk { space, index, .. } if *index >= bound(*space) => Err(StreamError::Invalid("chunk index out of range")),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::have::Runs;
    use proptest::prelude::*;

    #[test]
    fn times_past_2_53_microseconds_are_refused() {
        let state = |position_us| Message::State { playing: true, position_us, at_host_us: 0, rate_milli: 1000, seq: 1, waiting: vec![] };
        let refused = |m: Message, from: Role| match decode_from(&encode(&m), from, Some(&manifest())) {
            Ok(_) => false,
            Err(StreamError::Invalid("a time out of range")) => true,
            Err(e) => panic!("refused for another reason: {e}"),
        };
        assert!(!refused(state(MAX_TIME_US), Role::Host), "up to the bound is fine");
        assert!(refused(state(MAX_TIME_US + 1), Role::Host));
        assert!(refused(Message::Pong { client_us: 1, host_us: u64::MAX }, Role::Host));
        assert!(refused(Message::Command(Command::Seek(u64::MAX)), Role::Participant));
        assert!(refused(Message::Ping { client_us: u64::MAX }, Role::Participant));
        let report =
            Message::Report { position_ms: 0, buffered_bytes: 0, down_bps: 0, buffering: false, rtt_ms: None, seq: 1, drift_ms: Some(i64::MIN), relay: None };
        assert!(refused(report, Role::Participant));
    }

    #[test]
    fn a_manifest_that_would_make_a_participant_hold_too_much_is_refused() {
        assert!(manifest().validate().is_ok());
        // One-byte chunks of a 4 GiB file: four billion chunks' state.
        let tiny = Manifest { size: 1 << 32, chunk_size: 1, chunks: u32::MAX, ..manifest() };
        assert!(tiny.validate().is_err());
        let small = Manifest { size: 4 * (MIN_CHUNK_SIZE as u64 - 1), chunk_size: MIN_CHUNK_SIZE - 1, chunks: 4, ..manifest() };
        assert!(small.validate().is_err());
        // The largest chunks, past the most chunks (800 TB).
        let huge = Manifest { size: MAX_CHUNK_SIZE as u64 * (MAX_CHUNKS as u64 + 1), chunk_size: MAX_CHUNK_SIZE, chunks: MAX_CHUNKS + 1, ..manifest() };
        assert!(huge.validate().is_err());
        let biggest = Manifest { size: MAX_CHUNK_SIZE as u64 * MAX_CHUNKS as u64, chunk_size: MAX_CHUNK_SIZE, chunks: MAX_CHUNKS, ..manifest() };
        assert!(biggest.validate().is_ok());
        for m in [tiny, huge] {
            assert!(decode_from(&encode(&Message::Manifest(m)), Role::Host, None).is_err());
        }
    }

    pub(crate) fn manifest() -> Manifest {
        Manifest {
            name: "clip.mp4".into(),
            size: 10 * 65536 + 100,
            chunk_size: 65536,
            chunks: 11,
            duration_ms: Some(5000),
            container: "mov,mp4".into(),
            codecs: vec!["h264".into(), "aac".into()],
            levels: vec!["high".into()],
            stream: [5; 16],
        }
    }

    fn all() -> Vec<(Message, Role)> {
        use Message::*;
        vec![
            (Hello { version: PROTOCOL_VERSION, name: "ann".into() }, Role::Participant),
            (Manifest(manifest()), Role::Host),
            (Chunk { space: ORIGINAL, index: 10, data: ByteBuf::from(vec![9u8; 100]) }, Role::Host),
            (Chunk { space: ORIGINAL, index: 0, data: ByteBuf::from(vec![1u8; 65536]) }, Role::Host),
            (Chunk { space: 3, index: 900, data: ByteBuf::from(vec![1u8; 65536]) }, Role::Host),
            (State { playing: true, position_us: 5, at_host_us: 9, rate_milli: 1000, seq: 2, waiting: vec!["ann".into()] }, Role::Host),
            (Notice { text: "only the host controls playback".into() }, Role::Host),
            (Roster { peers: vec![RosterEntry { name: "ann".into(), buffering: true, drift_ms: Some(-4), level: "low".into() }] }, Role::Host),
            (Pong { client_us: 1, host_us: 2 }, Role::Host),
            (QualityChange { level: "low".into(), space: 2, first_us: Some(4_000_000), produced: 70_000, done: false, granted: true }, Role::Host),
            (Level { level: "medium".into(), from_us: 12_000_000 }, Role::Participant),
            (FileHash { sha256: ByteBuf::from(vec![7u8; 32]), sig: "ab".repeat(64) }, Role::Host),
            (LevelRefused { level: "low".into(), reason: "busy".into() }, Role::Host),
            (StreamEnd { reason: "host quit".into() }, Role::Host),
            (Request { space: ORIGINAL, chunks: vec![0, 3, 10], priority: Priority::Critical }, Role::Participant),
            (Request { space: 2, chunks: vec![500], priority: Priority::Window }, Role::Participant),
            (Cancel { space: ORIGINAL, chunks: vec![4] }, Role::Participant),
            (Command(super::Command::Seek(1234)), Role::Participant),
            (Command(super::Command::Play), Role::Participant),
            (Ping { client_us: 77 }, Role::Participant),
            (
                Report { position_ms: 1, buffered_bytes: 2, down_bps: 3, buffering: false, rtt_ms: Some(4), seq: 7, drift_ms: Some(-3), relay: None },
                Role::Participant,
            ),
            (
                Report {
                    position_ms: 1,
                    buffered_bytes: 2,
                    down_bps: 3,
                    buffering: false,
                    rtt_ms: None,
                    seq: 7,
                    drift_ms: None,
                    relay: Some(RelayReport { limit_bps: 1, up_bps: 2, up_bytes: 3, down_bytes: 4, links: 5, seeds: true }),
                },
                Role::Participant,
            ),
            (HashBatch(batch()), Role::Host),
            (HashBatch(batch()), Role::Relay),
            (Have(have()), Role::Participant),
            (Have(have()), Role::Relay),
            (HashAsk { space: ORIGINAL, first: 0 }, Role::Relay),
            (RelayIntro(intro()), Role::Host),
            (RelaySignal(RelaySdp { link: 3, sdp: "v=0".into(), sig: "cd".repeat(64) }), Role::Participant),
            (RelaySignal(RelaySdp { link: 3, sdp: "v=0".into(), sig: "cd".repeat(64) }), Role::Host),
            (RelayBye { link: 3, reason: "gone".into() }, Role::Participant),
            (BadChunk { link: 3, space: 4, index: 900 }, Role::Participant),
            (Seed { space: ORIGINAL, chunks: vec![4, 5] }, Role::Host),
            (Elsewhere { space: ORIGINAL, chunks: vec![6] }, Role::Host),
            (Request { space: ORIGINAL, chunks: vec![1], priority: Priority::Window }, Role::Relay),
            (Chunk { space: ORIGINAL, index: 1, data: ByteBuf::from(vec![1u8; 65536]) }, Role::Relay),
        ]
    }

    fn batch() -> super::HashBatch {
        super::HashBatch { space: ORIGINAL, first: 0, hashes: ByteBuf::from(vec![3u8; 11 * 32]), sig: "ef".repeat(64) }
    }

    fn have() -> super::Have {
        super::Have { space: ORIGINAL, reset: true, added: Runs::from_sorted([0, 1, 2, 7]), dropped: Runs::from_sorted([4]) }
    }

    fn intro() -> super::RelayIntro {
        super::RelayIntro { link: 3, name: "bob".into(), key: "ab".repeat(32), offerer: true, sig: "cd".repeat(64) }
    }

    #[test]
    fn each_role_sends_only_its_own_messages() {
        use Message::*;
        let m = manifest();
        let refused = |msg: &Message, from: Role| matches!(decode_from(&encode(msg), from, Some(&m)), Err(StreamError::Role(_)));
        // A relay trades chunks and nothing else: no clock, no commands, no introductions.
        for msg in [
            State { playing: true, position_us: 0, at_host_us: 0, rate_milli: 1000, seq: 1, waiting: vec![] },
            Command(super::Command::Pause),
            RelayIntro(intro()),
            RelaySignal(RelaySdp { link: 3, sdp: "v=0".into(), sig: "cd".repeat(64) }),
            FileHash { sha256: ByteBuf::from(vec![7u8; 32]), sig: "ab".repeat(64) },
            BadChunk { link: 3, space: 0, index: 1 },
            Manifest(manifest()),
        ] {
            assert!(refused(&msg, Role::Relay), "{msg:?} from a relay");
        }
        assert!(refused(&HashBatch(batch()), Role::Participant), "only the host's batches travel");
        assert!(refused(&Have(have()), Role::Host));
        assert!(refused(&RelayIntro(intro()), Role::Participant), "a participant cannot introduce");
    }

    #[test]
    fn relaying_messages_out_of_their_bounds_are_refused() {
        use Message::*;
        let m = manifest();
        let invalid = |msg: Message, from: Role| matches!(decode_from(&encode(&msg), from, Some(&m)), Err(StreamError::Invalid(_)));
        let long = super::HashBatch { first: 0, hashes: ByteBuf::from(vec![3u8; 12 * 32]), ..batch() };
        assert!(invalid(HashBatch(long), Role::Host), "12 hashes for an 11-chunk file");
        assert!(
            !invalid(HashBatch(super::HashBatch { space: 2, hashes: ByteBuf::from(vec![3u8; 32 * 32]), ..batch() }), Role::Host),
            "a rendition's can be longer"
        );
        assert!(invalid(Have(super::Have { added: Runs::from_sorted([11]), ..have() }), Role::Participant));
        assert!(invalid(HashAsk { space: ORIGINAL, first: 32 }, Role::Participant));
        assert!(invalid(HashAsk { space: 2, first: 5 }, Role::Participant), "unaligned");
        assert!(invalid(RelayIntro(super::RelayIntro { name: "n".repeat(MAX_TEXT + 1), ..intro() }), Role::Host));
        assert!(invalid(RelayIntro(super::RelayIntro { key: "ab".into(), ..intro() }), Role::Host));
        assert!(invalid(BadChunk { link: 1, space: ORIGINAL, index: 11 }, Role::Participant));
        assert!(invalid(RelayBye { link: 1, reason: "r".repeat(MAX_TEXT + 1) }, Role::Host));
    }

    #[test]
    fn every_message_round_trips() {
        let m = manifest();
        for (msg, role) in all() {
            let bytes = encode(&msg);
            assert_eq!(decode_from(&bytes, role, Some(&m)).unwrap(), msg);
        }
    }

    #[test]
    fn rejects_truncated_messages() {
        let m = manifest();
        for (msg, role) in all() {
            let bytes = encode(&msg);
            for cut in 0..bytes.len() {
                assert!(decode_from(&bytes[..cut], role, Some(&m)).is_err(), "{msg:?} cut at {cut}");
            }
        }
    }

    #[test]
    fn rejects_oversized_trailing_unknown_and_wrong_role() {
        let m = manifest();
        let big = encode(&Message::Chunk { space: ORIGINAL, index: 0, data: ByteBuf::from(vec![0u8; 200_000]) });
        assert!(decode_from(&big, Role::Host, Some(&m)).is_err());
        let mut trailing = encode(&Message::Ping { client_us: 1 });
        trailing.push(0);
        assert!(decode_from(&trailing, Role::Participant, Some(&m)).is_err());
        assert!(decode_from(&[200, 1, 2], Role::Host, Some(&m)).is_err());
        let chunk = encode(&Message::Chunk { space: ORIGINAL, index: 1, data: ByteBuf::from(vec![0u8; 65536]) });
        assert!(matches!(decode_from(&chunk, Role::Participant, Some(&m)), Err(StreamError::Role(_))));
        let req = encode(&Message::Request { space: ORIGINAL, chunks: vec![11], priority: Priority::Window });
        assert!(decode_from(&req, Role::Participant, Some(&m)).is_err());
        let short = encode(&Message::Chunk { space: ORIGINAL, index: 1, data: ByteBuf::from(vec![0u8; 10]) });
        assert!(decode_from(&short, Role::Host, Some(&m)).is_err());
        let long = encode(&Message::Chunk { space: 5, index: 1, data: ByteBuf::from(vec![0u8; 65537]) });
        assert!(decode_from(&long, Role::Host, Some(&m)).is_err());
        let original = encode(&Message::QualityChange { level: "low".into(), space: ORIGINAL, first_us: None, produced: 0, done: false, granted: false });
        assert!(decode_from(&original, Role::Host, Some(&m)).is_err());
        let mut bad = manifest();
        bad.chunks = 3;
        assert!(decode_from(&encode(&Message::Manifest(bad)), Role::Host, None).is_err());
        // A length prefix claiming 4 GiB must not allocate it.
        let huge_vec = [10u8, 0xfc, 0xff, 0xff, 0xff, 0xff, 1];
        assert!(decode_from(&huge_vec, Role::Participant, Some(&m)).is_err());
        let entry = RosterEntry { name: "x".into(), buffering: false, drift_ms: None, level: "high".into() };
        let crowd = encode(&Message::Roster { peers: vec![entry.clone(); MAX_ROSTER + 1] });
        assert!(matches!(decode_from(&crowd, Role::Host, Some(&m)), Err(StreamError::Invalid("roster too long"))));
        let long_name = encode(&Message::Roster { peers: vec![RosterEntry { name: "n".repeat(MAX_TEXT + 1), ..entry }] });
        assert!(decode_from(&long_name, Role::Host, Some(&m)).is_err());
    }

    #[test]
    fn chunk_fast_path_matches_serde_encoding() {
        let m = manifest();
        for (space, index, len) in [(ORIGINAL, 0u32, 65536usize), (ORIGINAL, 10, 100), (ORIGINAL, 7, 65536), (9, 70_000, 65536)] {
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let slow = encode(&Message::Chunk { space, index, data: ByteBuf::from(data.clone()) });
            let mut fast = encode_chunk_header(space, index, len);
            fast.extend_from_slice(&data);
            assert_eq!(fast, slow);
            let parts = decode_chunk(bytes::BytesMut::from(&fast[..]), m.chunk_size).unwrap().unwrap();
            assert_eq!((parts.space, parts.index, &parts.data[..]), (space, index, &data[..]));
            for cut in 0..fast.len().min(20) {
                assert!(decode_chunk(bytes::BytesMut::from(&fast[..cut]), m.chunk_size).is_err());
            }
            assert!(decode_chunk(bytes::BytesMut::from(&fast[..fast.len() - 1]), m.chunk_size).is_err());
        }
        let parts = decode_chunk(bytes::BytesMut::from(&encode_chunk_header(0, 3, 0)[..]), m.chunk_size).unwrap().unwrap();
        assert!(parts.check_len(m.chunk_len(3)).is_err(), "a 0-byte chunk 3 is refused");
        assert!(parts.check_len(None).is_err());
        let mut over = encode_chunk_header(4, 0, 65537);
        over.resize(over.len() + 65537, 0);
        assert!(decode_chunk(bytes::BytesMut::from(&over[..]), m.chunk_size).is_err(), "longer than a chunk");
        let ping = encode(&Message::Ping { client_us: 5 });
        assert!(matches!(decode_chunk(bytes::BytesMut::from(&ping[..]), m.chunk_size), Ok(None)));
    }

    proptest! {
        #[test]
        fn chunk_decoder_is_total(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_chunk(bytes::BytesMut::from(&bytes[..]), manifest().chunk_size);
        }

        #[test]
        fn decoder_is_total(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let m = manifest();
            let _ = decode_from(&bytes, Role::Host, Some(&m));
            let _ = decode_from(&bytes, Role::Participant, None);
            let _ = decode_from(&bytes, Role::Relay, Some(&m));
        }

        #[test]
        fn decoder_is_total_on_the_new_messages_mangled(pick in 0usize..40, at in any::<usize>(), byte in any::<u8>()) {
            let list = all();
            let (msg, role) = &list[pick % list.len()];
            let mut bytes = encode(msg);
            let i = at % bytes.len();
            bytes[i] = byte;
            let _ = decode_from(&bytes, *role, Some(&manifest()));
        }
    }
}
