//! How much the room's relays carried, for the host's indicator: each participant's own count
//! of what it uploaded to neighbours (from its reports; a figure to show, not to trust), kept
//! per person so a participant back after its link dropped is not counted twice.

use std::collections::HashMap;

use crate::protocol::guest::GuestId;

/// People whose counts are kept apart; past this they are folded into one sum (and one of
/// them still in the room is then counted again from its next report: a room of thousands is
/// far beyond what a server admits, and the figure is only shown).
const MAX_PEOPLE: usize = 4096;

/// Bytes relays carried in this room.
#[derive(Debug, Default)]
pub(super) struct Relayed {
    /// Each person's latest count.
    by: HashMap<GuestId, u64>,
    /// Counts of runs that ended (a count that went down is a new process under the same key).
    done: u64,
}

impl Relayed {
    /// `guest` says it has uploaded `bytes` in all so far.
    pub(super) fn report(&mut self, guest: GuestId, bytes: u64) {
        if !self.by.contains_key(&guest) && self.by.len() >= MAX_PEOPLE {
            self.done = self.done.saturating_add(self.by.drain().map(|(_, b)| b).sum());
        }
        let last = self.by.entry(guest).or_insert(0);
        if bytes < *last {
            self.done = self.done.saturating_add(*last);
        }
        *last = bytes;
    }

    /// Bytes relayed in all.
    pub(super) fn total(&self) -> u64 {
        self.by.values().fold(self.done, |a, b| a.saturating_add(*b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_across_people_returns_and_restarts() {
        let key = |room| crate::protocol::guest::GuestSecret::random().key_for(room).public();
        let (ann, bob): (GuestId, GuestId) = (key("r"), key("r"));
        let mut r = Relayed::default();
        r.report(ann, 100);
        r.report(bob, 50);
        // Ann back after a dropped link: the same process, its count carries on.
        r.report(ann, 300);
        assert_eq!(r.total(), 350);
        // Bob's process restarted: its count starts again, the old one is kept.
        r.report(bob, 10);
        assert_eq!(r.total(), 360);
    }
}
