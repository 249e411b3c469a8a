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

    /// Takes the oldest knocker called `name`.
    pub fn take(&mut self, name: &str) -> Option<Newcomer> {
        let i = self.knocking.iter().position(|n| n.name == name)?;
        Some(self.knocking.remove(i))
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
    fn knockers_wait_and_are_taken_by_name_oldest_first() {
        let n = |peer, name: &str| Newcomer { peer, name: name.into(), nonce: format!("n{peer}") };
        let mut a = Admission::new(true);
        assert!(a.knock(&n(1, "bob")));
        assert!(a.knock(&n(2, "bob")));
        assert!(a.knock(&n(3, "cy")));
        assert_eq!(a.take("bob"), Some(n(1, "bob")));
        assert!(a.left(3));
        assert!(!a.left(3));
        assert_eq!(a.take("cy"), None);
        a.lost();
        assert_eq!(a.take("bob"), None);
        assert!(!Admission::new(false).knock(&n(1, "dee")));
    }
}
