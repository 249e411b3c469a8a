//! What comes to the participant — chunks and messages from the host, commands from the
//! person — and what each does to the core.

use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::{ParticipantCore, ParticipantError, ParticipantOutput, TurnEnd};
use crate::api::{Command, Event};
use crate::buffer::Arrival;
use crate::clock::{MediaState, Micros};
use crate::level_switch::{Choice, RenditionNews};
use crate::protocol::identity::Purpose;
use crate::protocol::stream::{self, Message, ORIGINAL, Role, Space, StreamError};

impl ParticipantCore {
    /// Bytes from the chunks channel.
    pub fn handle_chunk(&mut self, now: Instant, b: BytesMut) -> Result<(), ParticipantError> {
        let len = b.len();
        let Some(parts) = stream::decode_chunk(b, self.manifest.chunk_size)? else {
            return Err(StreamError::Invalid("only chunks belong on the chunks channel").into());
        };
        // A rendition's chunk is checked against its own store (see `rendition_chunk`).
        if parts.space == ORIGINAL {
            parts.check_len(self.manifest.chunk_len(parts.index))?;
        }
        tracing::trace!(index = parts.index, "chunk {} of space {} from the host", parts.index, parts.space);
        self.handle_chunk_parts(now, len, parts.space, parts.index, parts.data)
    }

    /// A chunk of `space` (`wire`: its bytes on the wire, header included).
    pub fn handle_chunk_parts(&mut self, now: Instant, wire: usize, space: Space, index: u32, data: Bytes) -> Result<(), ParticipantError> {
        self.now = now;
        self.down.record(now, wire as u64);
        self.switch.handle_received(data.len());
        let arrival = if space == ORIGINAL { self.original_chunk(now, index, data)? } else { self.rendition_chunk(now, space, index, data)? };
        if arrival == Some(Arrival::Stored) {
            self.out.push_back(ParticipantOutput::Wake);
        }
        self.flush();
        Ok(())
    }

    fn original_chunk(&mut self, now: Instant, index: u32, data: Bytes) -> Result<Option<Arrival>, ParticipantError> {
        let store = self.stores.original_mut();
        if !store.expects(index) {
            let seen = store.seen(index);
            return Ok(self.unasked(index, seen));
        }
        let fresh = !store.seen(index);
        let on_disk = self.cfg.store.on_disk;
        let arrival = store.handle_chunk(now, index, data.clone())?;
        if arrival == Arrival::Stored {
            self.stored(ORIGINAL, index);
        }
        if fresh && on_disk {
            self.out.push_back(ParticipantOutput::Save { index, data });
        }
        if arrival != Arrival::Duplicate && fresh {
            self.received += 1;
        }
        // Twice, or once more after eviction or a resumed copy had it: either way fetched again.
        if arrival == Arrival::Duplicate || !fresh {
            self.duplicates += 1;
            tracing::debug!(index, "chunk {index} came again");
        }
        Ok(Some(arrival))
    }

    /// A rendition's chunk: into its store, or dropped if it was replaced.
    fn rendition_chunk(&mut self, now: Instant, space: Space, index: u32, data: Bytes) -> Result<Option<Arrival>, ParticipantError> {
        let Some(store) = self.switch.route(space)?.then(|| self.stores.get_mut(space)).flatten() else {
            tracing::trace!("late chunk of replaced rendition {space}");
            return Ok(None);
        };
        match store.manifest().chunk_len(index) {
            Some(l) if l == data.len() => {}
            Some(_) => return Err(StreamError::Invalid("chunk has the wrong length").into()),
            None => return Err(StreamError::Invalid("chunk index out of range").into()),
        }
        if !store.expects(index) {
            let seen = store.seen(index);
            return Ok(self.unasked(index, seen));
        }
        let arrival = store.handle_chunk(now, index, data)?;
        if arrival == Arrival::Stored {
            self.stored(space, index);
        }
        if arrival == Arrival::Duplicate {
            self.duplicates += 1;
        }
        Ok(Some(arrival))
    }

    /// The host's word on the whole file, checked with its key: a hash the host did not sign
    /// is a protocol violation (on the data channels only the host can speak, so this is a
    /// broken host; over the HTTP fallback, someone else).
    fn handle_file_hash(&mut self, sha256: &[u8], sig: &str) -> Result<(), ParticipantError> {
        let Some((key, room)) = &self.cfg.host else {
            return Err(StreamError::Invalid("a file hash, and no host key to check it with").into());
        };
        let digest: [u8; 32] = sha256.try_into().map_err(|_| StreamError::Invalid("a file hash is 32 bytes"))?;
        if !key.verify(Purpose::FileHash, &[room.as_bytes(), &digest], sig) {
            return Err(StreamError::Invalid("the file's hash is not signed by the host").into());
        }
        self.host_sha256 = Some(digest);
        Ok(())
    }

    /// Signed chunk hashes, checked with the host's key over the room and this run. From the
    /// host's own link a batch it did not sign is a broken host (or, over the HTTP fallback,
    /// someone else).
    pub(super) fn handle_hash_batch(&mut self, batch: &crate::protocol::hashes::HashBatch) -> Result<(), ParticipantError> {
        let Some((key, room)) = self.cfg.host.as_ref().filter(|_| self.relay.is_some()) else {
            // Only chunks from neighbours are checked against them.
            return Ok(());
        };
        if self.hashes.batch(batch.space, batch.first).is_some_and(|b| b.count() >= batch.count()) {
            return Ok(()); // held: no need to check a signature again
        }
        if !batch.verify(key, room, &self.manifest.stream) {
            return Err(StreamError::Invalid("chunk hashes not signed by the host").into());
        }
        let near = self.stores.get(batch.space).map_or(0, |s| s.read_position());
        self.hashes.insert(batch.clone(), near);
        Ok(())
    }

    /// A chunk not asked for: dropped, not stored or saved. A second copy of one that came
    /// (asked for twice, both answered) counts as a duplicate, as it always has.
    fn unasked(&mut self, index: u32, seen: bool) -> Option<Arrival> {
        if seen {
            self.duplicates += 1;
            tracing::debug!(index, "chunk {index} came again, unasked");
        } else {
            tracing::debug!("dropping chunk {index}: not asked for");
            self.unasked += 1;
        }
        None
    }

    /// Bytes from the control channel.
    pub fn handle_control(&mut self, now: Instant, b: &[u8]) -> Result<(), ParticipantError> {
        let msg = stream::decode_from(b, Role::Host, Some(&self.manifest))?;
        self.handle_message(now, msg)
    }

    /// A message from the host.
    pub fn handle_message(&mut self, now: Instant, msg: Message) -> Result<(), ParticipantError> {
        self.now = now;
        match msg {
            Message::StreamEnd { reason } => self.out.push_back(ParticipantOutput::End(TurnEnd::StreamEnd(reason))),
            Message::Pong { client_us, host_us } => {
                self.presenter.handle_pong(now, client_us as Micros, host_us as Micros);
                self.out.push_back(ParticipantOutput::RoomClock(self.presenter.room_view()));
            }
            Message::State { playing, position_us, at_host_us, rate_milli, seq, waiting } => {
                let state = MediaState { playing, position_us: position_us as Micros, at_host_us: at_host_us as Micros, rate_milli, seq };
                self.presenter.handle_state(now, state, waiting);
                self.out.push_back(ParticipantOutput::RoomClock(self.presenter.room_view()));
            }
            Message::Roster { peers } => {
                let me = self.cfg.name.as_str();
                let list = peers
                    .into_iter()
                    .filter(|p| p.name != me)
                    .map(|p| (p.name, format!("{} {}", if p.buffering { "buffering" } else { "watching" }, p.level)))
                    .collect();
                self.out.push_back(ParticipantOutput::Roster(list));
            }
            Message::FileHash { sha256, sig } => self.handle_file_hash(&sha256, &sig)?,
            Message::HashBatch(b) => self.handle_hash_batch(&b)?,
            Message::RelayIntro(intro) => self.relay_intro(now, intro)?,
            Message::RelaySignal(sdp) => self.relay_signal(now, sdp),
            Message::RelayBye { link, reason } => {
                tracing::debug!(link, "the host ends the relay link: {reason}");
                self.drop_link(now, link, None);
            }
            Message::Seed { space, chunks } => self.seed(now, space, chunks),
            Message::Elsewhere { space, chunks } => self.elsewhere(now, space, chunks),
            Message::Notice { text } => {
                self.out.push_back(ParticipantOutput::Notice(text.clone()));
                self.event(Event::Error { message: format!("host: {text}") });
            }
            Message::QualityChange { level, space, first_us, produced, done, granted } => {
                self.switch.handle_quality_change(RenditionNews { level, space, first_us, produced, done, granted })?;
                self.apply_switch();
            }
            Message::LevelRefused { level, reason } => {
                self.switch.handle_refused(&level, now);
                self.apply_switch();
                self.event(Event::Error { message: format!("quality {level}: {reason}") });
                self.out.push_back(ParticipantOutput::Notice(format!("{level}: {reason}")));
            }
            Message::Hello { .. } => {}
            _ => return Err(StreamError::Invalid("a message only a participant sends").into()),
        }
        self.flush();
        Ok(())
    }

    /// A command from stdin, the view or mpv.
    pub fn handle_command(&mut self, now: Instant, cmd: Command) {
        self.now = now;
        let wire = match cmd {
            Command::Quit => return self.out.push_back(ParticipantOutput::End(TurnEnd::Quit)),
            Command::Quality(q) => return self.choose(&q),
            Command::DownloadLimit(limit) => {
                tracing::info!("download limit now {limit} B/s");
                self.stores.set_download_limit(limit);
                self.switch.set_download_limit(limit);
                // Whether it takes seeds, and so how far the host serves it, may change.
                self.update_host_window();
                return self.flush();
            }
            Command::Approve(_) | Command::Deny(_) | Command::Kick(_) | Command::Ban(_) => return tracing::info!("approve, deny, kick and ban are for a host"),
            Command::Play => stream::Command::Play,
            Command::Pause => stream::Command::Pause,
            Command::SeekTo(s) => stream::Command::Seek((s * 1e6) as u64),
            Command::SeekBy(d) => stream::Command::Seek((self.room_position(now) + (d * 1e6) as Micros).max(0) as u64),
        };
        self.send(Message::Command(wire));
    }

    fn choose(&mut self, q: &str) {
        if let Some(why) = self.cfg.keeps_original.filter(|_| q != "high") {
            return self.event(Event::Error { message: format!("quality {q}: staying at high, {why}") });
        }
        if let Err(e) = self.switch.choose(Choice::parse(q)) {
            self.event(Event::Error { message: format!("quality {q}: {e}") });
        }
        self.apply_switch();
        self.flush();
    }
}
