//! The host's say over who is in the room: newcomers at the door (`--approve`), approve, deny,
//! kick and ban. Names are anyone's to choose, so every command takes an id, or a name only
//! one person has; a ban names the person's key, which outlives its peer id and its name.

use std::time::Instant;

use super::admission::{self, Newcomer};
use super::{HostCore, HostOutput};
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

    /// Sends a participant away: one connected is told the stream ended for it and closed;
    /// one watching over the HTTPS fallback loses its pass.
    pub(super) fn kick(&mut self, now: Instant, who: &str) {
        let mut pool: Vec<(PeerId, String)> = self.peers.iter().filter(|(_, p)| p.connected).map(|(&id, p)| (id, p.name.clone())).collect();
        pool.extend(self.watchers());
        match one_of(who, &pool) {
            Ok(peer) if self.peers.contains_key(&peer) => self.send_away(now, peer, "the host sent you away", "sent away by the host"),
            Ok(peer) => self.unwatch(peer, "sent away by the host"),
            Err(e) => return self.not_one("kick", who, e),
        }
        self.settle(now);
    }

    /// Bans the key of whoever `who` names (in the room, connecting, watching over the
    /// fallback, or knocking) for the room's life: everyone with that key is sent away, and
    /// turned away when they come back, to this run of the host or a later one.
    pub(super) fn ban(&mut self, now: Instant, who: &str) {
        let mut pool: Vec<(PeerId, String)> = self.peers.iter().map(|(&id, p)| (id, p.name.clone())).collect();
        pool.extend(self.watchers());
        pool.extend(self.admission.knockers().map(|k| (k.peer, k.name.clone())));
        let (guest, name) = match one_of(who, &pool).map(|peer| (self.guest_of(peer), pool.iter().find(|(p, _)| *p == peer))) {
            Ok((Some(guest), Some((_, name)))) => (guest, name.clone()),
            Ok(_) => return,
            Err(e) => return self.not_one("ban", who, e),
        };
        tracing::info!("banning {}", guest.fingerprint());
        self.out.push_back(HostOutput::Ban { guest, name });
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
        let watching: Vec<PeerId> = self.watchers().map(|(id, _)| id).filter(|id| self.admitted.get(id).is_some_and(|(_, g)| *g == guest)).collect();
        for peer in watching {
            self.unwatch(peer, "banned by the host");
        }
        self.settle(now);
    }

    /// Those let in whose WebRTC link is gone while they stay in the room: watching over the
    /// HTTPS fallback, or about to leave.
    fn watchers(&self) -> impl Iterator<Item = (PeerId, String)> + '_ {
        self.admitted.iter().filter(|(id, _)| !self.peers.contains_key(id)).map(|(&id, (name, _))| (id, name.clone()))
    }

    /// A watcher sent away: its pass goes.
    fn unwatch(&mut self, peer: PeerId, reason: &str) {
        if let Some((name, _)) = self.admitted.get(&peer).cloned() {
            self.revoke(peer);
            self.event(Event::PeerLeft { peer, name, reason: reason.into() });
        }
    }

    /// Whatever lets `peer` in besides its link (the fallback's pass) goes; it is no longer
    /// one of those let in.
    pub(super) fn revoke(&mut self, peer: PeerId) {
        self.admitted.remove(&peer);
        self.out.push_back(HostOutput::Revoke { peer });
    }

    fn guest_of(&self, peer: PeerId) -> Option<GuestId> {
        let known = self.peers.get(&peer).map(|p| p.guest).or_else(|| self.admitted.get(&peer).map(|(_, g)| *g));
        known.or_else(|| self.admission.knocker(peer).map(|k| k.guest))
    }

    /// `peer` is told `told` (if connected), loses its fallback pass and is closed.
    fn send_away(&mut self, now: Instant, peer: PeerId, told: &str, reason: &str) {
        if self.peers.get(&peer).is_some_and(|p| p.connected) {
            self.out.push_back(HostOutput::Control { peer, msg: Message::StreamEnd { reason: told.into() } });
        }
        self.revoke(peer);
        self.remove_peer(now, peer, reason, true);
    }

    /// Says why `approve`/`deny`/`kick`/`ban` took nobody.
    fn not_one(&mut self, verb: &str, who: &str, e: admission::NotOne) {
        let message = match e {
            admission::NotOne::Nobody if verb == "kick" => format!("{verb} {who}: nobody of that name or id is watching"),
            admission::NotOne::Nobody if verb == "ban" => format!("{verb} {who}: nobody of that name or id is in the room or waiting to join"),
            admission::NotOne::Nobody => format!("{verb} {who}: nobody of that name or id is waiting to join"),
            admission::NotOne::Several(them) => format!("{verb} {who}: {} go by that name; give the id: {verb} ID ({})", them.len(), them.join(", ")),
        };
        self.event(Event::Error { message });
    }
}

/// The one in `pool` (ids and names) that `who` names: its id, or a name only it has.
fn one_of(who: &str, pool: &[(PeerId, String)]) -> Result<PeerId, admission::NotOne> {
    if let Ok(id) = who.parse::<PeerId>()
        && pool.iter().any(|(p, _)| *p == id)
    {
        return Ok(id);
    }
    let named: Vec<PeerId> = pool.iter().filter(|(_, n)| n == who).map(|(p, _)| *p).collect();
    match named[..] {
        [id] => Ok(id),
        [] => Err(admission::NotOne::Nobody),
        _ => Err(admission::NotOne::Several(named.iter().map(|id| format!("{who} (id {id})")).collect())),
    }
}
