//! What the host does with each message a connected participant sends on its control
//! channel (already decoded and checked against the manifest, after its hello).

use std::time::Instant;

use super::{CONTROL_RATE, HostCore, INDICES_PER_UNIT, POSITION_SLACK};
use crate::clock::Micros;
use crate::protocol::signal::PeerId;
use crate::protocol::stream::{self, Message, ORIGINAL, Priority, Space};
use crate::room::{Origin, RoomCommand};

impl HostCore {
    /// A message from `peer`.
    pub fn handle_control(&mut self, now: Instant, peer: PeerId, msg: Message) {
        self.now = now;
        let Some(p) = self.peers.get_mut(&peer).filter(|p| p.connected) else {
            return;
        };
        if !p.control.try_take(now, control_cost(&msg)) {
            return self.flooded(now, peer);
        }
        match msg {
            Message::Request { space, chunks, priority } => self.request(now, peer, space, chunks, priority),
            Message::Cancel { space, chunks } => {
                self.scheduler.handle_cancel(peer, space, &chunks);
                self.seeds_declined(peer, space, &chunks);
            }
            Message::Level { level, from_us } => self.level(now, peer, level, from_us),
            Message::Report { position_ms, buffered_bytes, rtt_ms, buffering, seq, drift_ms, relay, .. } => {
                if relay.is_some() {
                    self.relay_report(now, peer, relay);
                }
                let position_ms = position_ms.min(self.plausible_position_ms(now));
                self.plan.handle_position(peer, position_ms.saturating_mul(1000));
                if let Some(p) = self.peers.get_mut(&peer) {
                    (p.position_ms, p.buffered_bytes, p.rtt_ms, p.drift_ms, p.buffering) = (position_ms, buffered_bytes, rtt_ms, drift_ms, buffering);
                }
                let us = self.host_us(now);
                self.room.handle_report(us, peer, buffering, seq);
            }
            Message::Ping { client_us } => {
                let host_us = self.host_us(now).max(0) as u64;
                self.send(peer, Message::Pong { client_us, host_us });
            }
            Message::Command(c) => self.peer_command(now, peer, c),
            Message::HashAsk { space, first } => self.hash_ask(peer, space, first),
            Message::Have(have) => self.relay_have(now, peer, &have),
            Message::RelaySignal(sdp) => self.relay_signal(peer, sdp),
            Message::RelayBye { link, reason } => self.relay_bye(peer, link, &reason),
            Message::BadChunk { link, space, index } => self.relay_bad_chunk(peer, link, space, index),
            Message::Hello { .. } => {}
            other => tracing::warn!(peer, "unexpected {other:?}"),
        }
        self.settle(now);
    }

    /// `peer` sends control messages faster than any participant needs: it is let go (what
    /// it sent is work the host does, and the driver queues it before it gets here).
    fn flooded(&mut self, now: Instant, peer: PeerId) {
        let reason = format!("sent control messages faster than {CONTROL_RATE} a second");
        tracing::warn!(peer, "{reason}: letting it go");
        // A goodbye (the driver lets it out before closing): it ends the participant's run,
        // rather than looking like a lost link it would come back from, flooding again.
        self.send(peer, Message::StreamEnd { reason: format!("the host let you go: you {reason}") });
        self.revoke(peer);
        self.remove_peer(now, peer, &reason, false);
        self.settle(now);
    }

    /// The furthest a participant can have played by `now`: the room's position and a slack
    /// ([`POSITION_SLACK`]). Reported positions are cut to it before they set how far
    /// renditions run (TRUST-REVIEW #12: a viewer claiming the end had the film transcoded).
    fn plausible_position_ms(&self, now: Instant) -> u64 {
        let room_ms = (self.room_position(now).max(0) / 1000) as u64;
        room_ms.saturating_add(POSITION_SLACK.as_millis() as u64)
    }

    fn request(&mut self, now: Instant, peer: PeerId, space: Space, chunks: Vec<u32>, priority: Priority) {
        if space == ORIGINAL {
            // Read-ahead a neighbour can bring is left to it; what the room plays next is urgent.
            let (urgent, rest) = self.triage(now, peer, chunks, priority);
            self.scheduler.handle_request(peer, ORIGINAL, &urgent, Priority::Critical);
            return self.scheduler.handle_request(peer, ORIGINAL, &rest, Priority::Window);
        }
        // Only the rendition it is on, and only what exists: a request for a rendition
        // replaced since (a race with a seek) is dropped quietly.
        let chunk_size = self.manifest.chunk_size;
        match self.plan.job(space).filter(|_| self.plan.space_of(peer) == Some(space)) {
            Some(j) => {
                let ok: Vec<u32> = chunks.into_iter().filter(|&ix| j.chunk_len(ix, chunk_size).is_some()).collect();
                self.scheduler.handle_request(peer, space, &ok, priority);
            }
            None => tracing::debug!(peer, "request for rendition {space}, which it is not on"),
        }
    }

    fn level(&mut self, now: Instant, peer: PeerId, level: String, from_us: u64) {
        let Some(p) = self.peers.get_mut(&peer) else { return };
        // A rendition costs the host a transcoder: a participant asking again and again (a
        // held key, a broken client) is refused beyond a few a second.
        if !p.level_asks.try_take(now, 1.0) {
            let reason = "quality changes come too fast; try again in a moment".to_string();
            return self.send(peer, Message::LevelRefused { level, reason });
        }
        // Past the end, a rendition would have nothing to show.
        let end = self.manifest.duration_ms.map_or(u64::MAX, |d| d.saturating_mul(1000).saturating_sub(1_000_000));
        let from_us = from_us.min(end);
        tracing::info!(peer, "{} asks for {level} from {} ms", p.name, from_us / 1000);
        self.plan.handle_level(peer, &level, from_us);
    }

    fn peer_command(&mut self, now: Instant, peer: PeerId, c: stream::Command) {
        let cmd = match c {
            stream::Command::Play => RoomCommand::Play,
            stream::Command::Pause => RoomCommand::Pause,
            stream::Command::Seek(us) => RoomCommand::SeekTo(us.min(i64::MAX as u64) as Micros),
        };
        let Some(p) = self.peers.get_mut(&peer) else { return };
        let name = p.name.clone();
        tracing::info!(peer, "{name} asked for {cmd:?}");
        // Each one stops everyone (a seek has them all fetch and wait): a participant that
        // keeps at it is refused, as under host-only control.
        if !p.commands.try_take(now, 1.0) {
            tracing::info!(peer, "refused: {name} sends commands too fast");
            let text = "play, pause and seek come too fast from you; try again in a moment".to_string();
            return self.send(peer, Message::Notice { text });
        }
        if let Err(refusal) = self.room.handle_command(self.host_us(now), Origin::Peer(peer), cmd) {
            self.send(peer, Message::Notice { text: refusal.to_string() });
        }
    }
}

/// What a message costs against its sender's control budget: one, or one per
/// [`INDICES_PER_UNIT`] chunk indices it names.
pub(crate) fn control_cost(msg: &Message) -> f64 {
    let indices = match msg {
        Message::Request { chunks, .. } | Message::Cancel { chunks, .. } => chunks.len(),
        // What a `Have` costs the host grows with the chunks it covers (a few bytes can name a
        // whole film); a `HashAsk` is answered with a kilobyte; an SDP is forwarded whole.
        Message::Have(h) => (h.added.covered() + h.dropped.covered()) as usize / HAVE_INDICES_PER_INDEX,
        Message::HashAsk { .. } => HASH_ASK_COST * INDICES_PER_UNIT,
        Message::RelaySignal(sdp) => sdp.sdp.len() / 1024 * INDICES_PER_UNIT,
        _ => 0,
    };
    indices.div_ceil(INDICES_PER_UNIT).max(1) as f64
}

/// A `Have` costs one unit per this many chunks it covers, over the units of a request (so
/// 256 × 64 per unit: a whole 2-hour film's holdings, 110 000 chunks, is 7 units).
const HAVE_INDICES_PER_INDEX: usize = 256;
/// Units a `HashAsk` costs: its answer is a kilobyte, so at most about 60 KB/s of them.
const HASH_ASK_COST: usize = 16;
