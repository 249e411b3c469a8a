//! Who gets into the room: the host's ids for participants across signaling reconnections,
//! and, under `--approve`, who waits at the door.

use crate::protocol::signal::PeerId;

/// How far apart the ids of two signaling connections are. The server numbers its peers
/// afresh when it restarts, so the host's ids are the server's plus a base that moves on at
/// each reconnection: a newcomer after a restart is never taken for someone already in.
const EPOCH: u64 = 1 << 32;

/// Someone at the door: the host's id for it, its name and its `Join` nonce (which its
/// offer is signed over).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Newcomer {
    pub peer: PeerId,
    pub name: String,
    pub nonce: String,
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
}

impl Admission {
    /// With `approve`, newcomers wait until the host lets them in.
    pub fn new(approve: bool) -> Self {
        Admission { approve, ..Default::default() }
    }

    /// The host's id for the server's `id`.
    pub fn local(&self, id: PeerId) -> PeerId {
        self.base + id
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
        assert_eq!(a.remote(a.local(7)), 7);
    }

    #[test]
    fn knockers_wait_and_are_taken_by_id_or_by_a_name_only_one_has() {
        let n = |peer, name: &str| Newcomer { peer, name: name.into(), nonce: format!("n{peer}") };
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
}
