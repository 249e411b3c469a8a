//! Who gets into the room: the host's ids for participants across signaling reconnections,
//! under `--approve` who waits at the door, and which keys are banned.

use std::collections::{HashSet, VecDeque};

use crate::protocol::guest::GuestId;
use crate::protocol::signal::PeerId;

/// How far apart the ids of two signaling connections are. The server numbers its peers
/// afresh when it restarts, so the host's ids are the server's plus a base that moves on at
/// each reconnection: a newcomer after a restart is never taken for someone already in.
const EPOCH: u64 = 1 << 32;

/// Someone at the door: the host's id for it, its name, and its `Join` nonce and key (which
/// its offer is signed over).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Newcomer {
    pub peer: PeerId,
    pub name: String,
    pub nonce: String,
    pub guest: GuestId,
}

/// Why `approve`/`deny` found nobody to take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotOne {
    /// No knocker of that name or id.
    Nobody,
    /// Several of that name: these (name and id).
    Several(Vec<String>),
}

/// The door.
#[derive(Debug, Default)]
pub struct Admission {
    approve: bool,
    base: u64,
    /// Oldest first.
    knocking: Vec<Newcomer>,
    /// Keys turned away for the room's life (`ban`; the driver keeps them across restarts).
    banned: HashSet<GuestId>,
    /// The latest joins seen (key and nonce), oldest first: a join replayed word for word
    /// is nobody new.
    seen: HashSet<(GuestId, String)>,
    seen_order: VecDeque<(GuestId, String)>,
}

/// How many joins are remembered against replay.
const JOINS_KEPT: usize = 4096;

impl Admission {
    /// With `approve`, newcomers wait until the host lets them in.
    pub fn new(approve: bool) -> Self {
        Admission { approve, ..Default::default() }
    }

    /// The same, with the keys banned before (by earlier runs of this room's host).
    pub fn with_bans(approve: bool, banned: impl IntoIterator<Item = GuestId>) -> Self {
        Admission { approve, banned: banned.into_iter().collect(), ..Default::default() }
    }

    /// The host's id for the server's `id`; `None` for an id no server hands out (0, or one
    /// that would reach into another connection's ids).
    pub fn local(&self, id: PeerId) -> Option<PeerId> {
        (id != 0 && id < EPOCH).then(|| self.base.checked_add(id)).flatten()
    }

    /// The server's id for the host's `peer` (of the current connection).
    pub fn remote(&self, peer: PeerId) -> PeerId {
        peer - self.base
    }

    /// A newcomer: `true` when it must wait to be let in (it is then knocking).
    pub fn knock(&mut self, newcomer: &Newcomer) -> bool {
        if self.approve {
            self.knocking.push(newcomer.clone());
        }
        self.approve
    }

    /// Takes the knocker `who` names: its id (as the `knock` event gives it), or its name when
    /// only one knocker has it. Names are anyone's to choose: two knockers of one name are not
    /// told apart by guessing (the first might be an impostor); the host is shown both ids.
    pub fn take(&mut self, who: &str) -> Result<Newcomer, NotOne> {
        if let Ok(id) = who.parse::<PeerId>()
            && let Some(i) = self.knocking.iter().position(|n| n.peer == id)
        {
            return Ok(self.knocking.remove(i));
        }
        let named: Vec<usize> = (0..self.knocking.len()).filter(|&i| self.knocking[i].name == who).collect();
        match named[..] {
            [i] => Ok(self.knocking.remove(i)),
            [] => Err(NotOne::Nobody),
            _ => Err(NotOne::Several(named.iter().map(|&i| format!("{} (id {})", self.knocking[i].name, self.knocking[i].peer)).collect())),
        }
    }

    /// Knockers named `who` by id, or else by name: the host's ids (any number).
    pub fn named(&self, who: &str) -> Vec<PeerId> {
        if let Ok(id) = who.parse::<PeerId>()
            && self.knocking.iter().any(|n| n.peer == id)
        {
            return vec![id];
        }
        self.knocking.iter().filter(|n| n.name == who).map(|n| n.peer).collect()
    }

    /// Whether this join (key and nonce) is new; remembers it.
    pub fn first_join(&mut self, guest: GuestId, nonce: &str) -> bool {
        let join = (guest, nonce.to_string());
        if !self.seen.insert(join.clone()) {
            return false;
        }
        self.seen_order.push_back(join);
        if self.seen_order.len() > JOINS_KEPT
            && let Some(old) = self.seen_order.pop_front()
        {
            self.seen.remove(&old);
        }
        true
    }

    /// Everyone knocking, oldest first.
    pub fn knockers(&self) -> impl Iterator<Item = &Newcomer> {
        self.knocking.iter()
    }

    /// The knocker `peer`, if it is one.
    pub fn knocker(&self, peer: PeerId) -> Option<&Newcomer> {
        self.knocking.iter().find(|n| n.peer == peer)
    }

    /// Bans `guest`: the knockers with that key, taken from the door.
    pub fn ban(&mut self, guest: GuestId) -> Vec<Newcomer> {
        self.banned.insert(guest);
        let (gone, stay) = std::mem::take(&mut self.knocking).into_iter().partition(|n| n.guest == guest);
        self.knocking = stay;
        gone
    }

    /// Whether `guest` is banned.
    pub fn banned(&self, guest: &GuestId) -> bool {
        self.banned.contains(guest)
    }

    /// `peer` left signaling; `true` if it was still knocking.
    pub fn left(&mut self, peer: PeerId) -> bool {
        let before = self.knocking.len();
        self.knocking.retain(|n| n.peer != peer);
        self.knocking.len() != before
    }

    /// The signaling connection is lost: whoever knocked is gone with it.
    pub fn lost(&mut self) {
        self.knocking.clear();
    }

    /// A new signaling connection: ids start a new epoch.
    pub fn reconnected(&mut self) {
        self.knocking.clear();
        self.base += EPOCH;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_of_a_new_connection_never_meet_the_old_ones() {
        let mut a = Admission::new(false);
        let first = a.local(1);
        a.reconnected();
        assert_ne!(a.local(1), first);
        assert_eq!(a.remote(a.local(7).unwrap()), 7);
        assert_eq!(a.local(0), None);
        assert_eq!(a.local(EPOCH), None, "a hostile server's id past its range");
        assert_eq!(a.local(u64::MAX), None);
    }

    #[test]
    fn knockers_wait_and_are_taken_by_id_or_by_a_name_only_one_has() {
        let n = |peer, name: &str| Newcomer { peer, name: name.into(), nonce: format!("n{peer}"), guest: guest(peer as u8) };
        let mut a = Admission::new(true);
        assert!(a.knock(&n(1, "bob")));
        assert!(a.knock(&n(2, "bob")));
        assert!(a.knock(&n(3, "cy")));
        // Two of one name: neither is taken by the name; the ids are listed.
        assert_eq!(a.take("bob"), Err(NotOne::Several(vec!["bob (id 1)".into(), "bob (id 2)".into()])));
        assert_eq!(a.take("2"), Ok(n(2, "bob")));
        assert_eq!(a.take("bob"), Ok(n(1, "bob")), "one left of that name");
        assert!(a.left(3));
        assert!(!a.left(3));
        assert_eq!(a.take("cy"), Err(NotOne::Nobody));
        assert!(a.knock(&n(4, "dee")));
        a.lost();
        assert_eq!(a.take("dee"), Err(NotOne::Nobody));
        assert!(!Admission::new(false).knock(&n(1, "dee")));
    }

    fn guest(seed: u8) -> GuestId {
        crate::protocol::guest::GuestSecret::from_bytes([seed; 32]).key_for("r").public()
    }

    #[test]
    fn a_ban_takes_every_knocker_of_that_key_and_lasts_across_reconnections() {
        let mut a = Admission::new(true);
        let n = |peer, name: &str, g| Newcomer { peer, name: name.into(), nonce: String::new(), guest: guest(g) };
        for k in [n(1, "eve", 6), n(2, "bob", 2), n(3, "eve's alt", 6)] {
            a.knock(&k);
        }
        assert_eq!(a.named("eve"), vec![1]);
        assert_eq!(a.named("3"), vec![3]);
        assert_eq!(a.knocker(2).map(|k| k.name.as_str()), Some("bob"));
        let gone: Vec<PeerId> = a.ban(guest(6)).iter().map(|k| k.peer).collect();
        assert_eq!(gone, vec![1, 3]);
        assert_eq!(a.named("eve"), Vec::<PeerId>::new());
        a.reconnected();
        assert!(a.banned(&guest(6)) && !a.banned(&guest(2)));
    }
}
