//! The host's say over who is in the room: newcomers at the door (`--approve`), approve, deny,
//! kick and ban. Names are anyone's to choose, so every command takes an id, or a name only
//! one person has; a ban names the person's key, which outlives its peer id and its name.

use std::time::Instant;

use super::admission::{self, Newcomer};
use super::{HostCore, HostOutput, Peer};
use crate::api::Event;
use crate::protocol::guest::GuestId;
use crate::protocol::signal::PeerId;
use crate::protocol::stream::Message;

/// What a banned key is told at the door.
const BANNED: &str = "the host banned you from this room";

impl HostCore {
    /// Someone joined signaling: turned away if its key is banned, let in, or (under
    /// `--approve`) left knocking.
    pub(super) fn newcomer(&mut self, newcomer: Newcomer) {
        if self.admission.banned(&newcomer.guest) {
            tracing::info!(newcomer.peer, "turning {} away: banned", newcomer.name);
            let (peer, name) = (newcomer.peer, newcomer.name.clone());
            self.turn_away(newcomer, BANNED);
            self.event(Event::PeerLeft { peer, name, reason: "banned: turned away at the door".into() });
        } else if self.admission.knock(&newcomer) {
            // Not a byte, not even an offer, until the host says so.
            tracing::info!(newcomer.peer, "{} knocks", newcomer.name);
            self.event(Event::Knock { peer: newcomer.peer, name: newcomer.name, guest: newcomer.guest.fingerprint() });
        } else {
            self.admit(newcomer);
        }
    }

    pub(super) fn approve(&mut self, now: Instant, who: &str) {
        match self.admission.take(who) {
            Ok(newcomer) => {
                tracing::info!(newcomer.peer, "letting {} in", newcomer.name);
                self.admit(newcomer);
                self.settle(now);
            }
            Err(e) => self.not_one("approve", who, e),
        }
    }

    pub(super) fn deny(&mut self, who: &str) {
        match self.admission.take(who) {
            Ok(newcomer) => {
                tracing::info!(newcomer.peer, "turning {} away", newcomer.name);
                let (peer, name) = (newcomer.peer, newcomer.name.clone());
                self.turn_away(newcomer, "the host turned you away");
                self.event(Event::PeerLeft { peer, name, reason: "turned away".into() });
            }
            Err(e) => self.not_one("deny", who, e),
        }
    }

    /// Tells a newcomer (signed) that it is not let in.
    fn turn_away(&mut self, newcomer: Newcomer, reason: &str) {
        let Newcomer { peer, nonce, guest, .. } = newcomer;
        self.out.push_back(HostOutput::Deny { to: self.admission.remote(peer), nonce, guest, reason: reason.into() });
    }

    /// Sends a connected participant away: told the stream ended for it, then closed.
    pub(super) fn kick(&mut self, now: Instant, who: &str) {
        let connected = |p: &Peer| p.connected;
        let by_id = who.parse::<PeerId>().ok().filter(|id| self.peers.get(id).is_some_and(connected));
        let named: Vec<PeerId> = self.peers.iter().filter(|(_, p)| p.connected && p.name == who).map(|(&id, _)| id).collect();
        let peer = match (by_id, &named[..]) {
            (Some(id), _) | (None, &[id]) => id,
            (None, []) => return self.not_one("kick", who, admission::NotOne::Nobody),
            (None, _) => return self.not_one("kick", who, self.several(who, &named)),
        };
        self.send_away(now, peer, "the host sent you away", "sent away by the host");
        self.settle(now);
    }

    /// Bans the key of whoever `who` names (in the room, connecting or knocking) for the
    /// room's life: everyone with that key is sent away, and turned away when they come back.
    pub(super) fn ban(&mut self, now: Instant, who: &str) {
        let Some(guest) = self.guest_named(who) else { return };
        tracing::info!("banning {}", guest.fingerprint());
        for newcomer in self.admission.ban(guest) {
            let (peer, name) = (newcomer.peer, newcomer.name.clone());
            self.turn_away(newcomer, BANNED);
            self.event(Event::PeerLeft { peer, name, reason: "banned by the host".into() });
        }
        let theirs: Vec<(PeerId, bool)> = self.peers.iter().filter(|(_, p)| p.guest == guest).map(|(&id, p)| (id, p.connected)).collect();
        for (peer, connected) in theirs {
            if !connected {
                // Remove_peer reports only the connected; one still connecting is told here.
                let name = self.peers[&peer].name.clone();
                self.event(Event::PeerLeft { peer, name, reason: "banned by the host".into() });
            }
            self.send_away(now, peer, BANNED, "banned by the host");
        }
        self.settle(now);
    }

    /// The key of the one participant or knocker `who` names (its id, or a name only one has);
    /// says why when there is none.
    fn guest_named(&mut self, who: &str) -> Option<GuestId> {
        let by_id = who.parse::<PeerId>().ok();
        if let Some(id) = by_id {
            if let Some(p) = self.peers.get(&id) {
                return Some(p.guest);
            }
            if let Some(k) = self.admission.knocker(id) {
                return Some(k.guest);
            }
        }
        let mut named: Vec<PeerId> = self.peers.iter().filter(|(_, p)| p.name == who).map(|(&id, _)| id).collect();
        named.extend(self.admission.named(who).into_iter().filter(|&id| Some(id) != by_id));
        match named[..] {
            [id] => self.peers.get(&id).map(|p| p.guest).or_else(|| self.admission.knocker(id).map(|k| k.guest)),
            [] => {
                self.not_one("ban", who, admission::NotOne::Nobody);
                None
            }
            _ => {
                let several = self.several(who, &named);
                self.not_one("ban", who, several);
                None
            }
        }
    }

    /// `peer` is told `told` (if connected), loses its fallback pass and is closed.
    fn send_away(&mut self, now: Instant, peer: PeerId, told: &str, reason: &str) {
        if self.peers.get(&peer).is_some_and(|p| p.connected) {
            self.out.push_back(HostOutput::Control { peer, msg: Message::StreamEnd { reason: told.into() } });
        }
        self.out.push_back(HostOutput::Revoke { peer });
        self.remove_peer(now, peer, reason, true);
    }

    fn several(&self, who: &str, ids: &[PeerId]) -> admission::NotOne {
        admission::NotOne::Several(ids.iter().map(|id| format!("{who} (id {id})")).collect())
    }

    /// Says why `approve`/`deny`/`kick`/`ban` took nobody.
    fn not_one(&mut self, verb: &str, who: &str, e: admission::NotOne) {
        let message = match e {
            admission::NotOne::Nobody if verb == "kick" => format!("{verb} {who}: nobody of that name or id is in the room"),
            admission::NotOne::Nobody if verb == "ban" => format!("{verb} {who}: nobody of that name or id is in the room or waiting to join"),
            admission::NotOne::Nobody => format!("{verb} {who}: nobody of that name or id is waiting to join"),
            admission::NotOne::Several(them) => format!("{verb} {who}: {} go by that name; give the id: {verb} ID ({})", them.len(), them.join(", ")),
        };
        self.event(Event::Error { message });
    }
}
