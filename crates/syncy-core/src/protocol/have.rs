//! "Have" updates: which chunks a participant holds, told to the host (which coordinates who
//! fetches what from whom) and to its relay neighbours.
//!
//! Holdings are mostly long contiguous stretches (read-ahead runs in order), so a set travels
//! as runs: each a gap after the previous run's end and a length, varint-encoded. A whole
//! store's holdings are a few bytes; a change is sent as what was added and what was dropped
//! since the last update.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::stream::{MAX_CHUNKS, Space};

/// Most runs in one message (a set with more goes in several).
pub const MAX_RUNS: usize = 4096;

/// A set of chunk indices as `(gap, length)` runs in ascending order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Runs(Vec<(u32, u32)>);

impl Runs {
    /// The runs of ascending, distinct indices.
    pub fn from_sorted(indices: impl IntoIterator<Item = u32>) -> Runs {
        let mut ranges: Vec<Range<u32>> = Vec::new();
        for i in indices {
            match ranges.last_mut() {
                Some(r) if r.end == i => r.end += 1,
                _ => ranges.push(i..i + 1),
            }
        }
        Runs::from_ranges(ranges)
    }

    /// The runs of ascending, disjoint, non-empty ranges.
    pub fn from_ranges(ranges: impl IntoIterator<Item = Range<u32>>) -> Runs {
        let mut end = 0;
        let runs = ranges
            .into_iter()
            .map(|r| {
                let run = (r.start - end, r.end - r.start);
                end = r.end;
                run
            })
            .collect();
        Runs(runs)
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of runs (what bounds a message).
    pub fn runs(&self) -> usize {
        self.0.len()
    }

    /// The ranges it holds. Only meaningful for a set that is [`Runs::well_formed`].
    pub fn ranges(&self) -> impl Iterator<Item = Range<u32>> + '_ {
        let mut end = 0u32;
        self.0.iter().map(move |&(gap, len)| {
            let start = end.saturating_add(gap);
            end = start.saturating_add(len);
            start..end
        })
    }

    /// Every index it holds.
    pub fn indices(&self) -> impl Iterator<Item = u32> + '_ {
        self.ranges().flatten()
    }

    /// How many indices it holds (saturating).
    pub fn covered(&self) -> u64 {
        self.0.iter().map(|&(_, len)| len as u64).sum()
    }

    /// At most [`MAX_RUNS`] non-empty runs, ending at or before `bound`.
    pub fn well_formed(&self, bound: u32) -> bool {
        let mut end = 0u64;
        for &(gap, len) in &self.0 {
            if len == 0 {
                return false;
            }
            end += gap as u64 + len as u64;
        }
        self.0.len() <= MAX_RUNS && end <= bound.min(MAX_CHUNKS) as u64
    }

    /// Split into pieces of at most [`MAX_RUNS`] runs each.
    pub fn split(self) -> Vec<Runs> {
        let ranges: Vec<Range<u32>> = self.ranges().collect();
        ranges.chunks(MAX_RUNS).map(|c| Runs::from_ranges(c.iter().cloned())).collect()
    }
}

/// A change in what a peer holds of one space.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Have {
    /// Chunk space.
    pub space: Space,
    /// Forget what was said of this space before: `added` is all of it (a first update, or
    /// one after the store was emptied).
    pub reset: bool,
    /// Newly held.
    pub added: Runs,
    /// No longer held (evicted).
    pub dropped: Runs,
}

impl Have {
    /// Holding nothing of `space` (a first word).
    pub fn empty(space: Space) -> Have {
        Have { space, reset: true, added: Runs::default(), dropped: Runs::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::stream::{Message, Role, decode_from, encode};
    use proptest::prelude::*;

    #[test]
    fn contiguous_holdings_are_a_few_bytes() {
        let have = Have { space: 0, reset: true, added: Runs::from_sorted((100..3000).chain(5000..5001)), dropped: Runs::default() };
        assert_eq!(have.added.ranges().collect::<Vec<_>>(), vec![100..3000, 5000..5001]);
        let bytes = encode(&Message::Have(have.clone()));
        assert!(bytes.len() < 16, "{} bytes", bytes.len());
        assert_eq!(decode_from(&bytes, Role::Participant, None).unwrap(), Message::Have(have));
    }

    #[test]
    fn sets_past_their_bound_or_with_empty_runs_are_refused() {
        assert!(Runs::from_sorted([0, 1, 9]).well_formed(10));
        assert!(!Runs::from_sorted([0, 1, 10]).well_formed(10));
        assert!(!Runs(vec![(0, 0)]).well_formed(10), "an empty run");
        assert!(!Runs(vec![(u32::MAX, u32::MAX), (u32::MAX, 1)]).well_formed(u32::MAX), "past the largest space");
        let many = Runs::from_sorted((0..=MAX_RUNS as u32).map(|i| i * 2));
        assert!(!many.well_formed(MAX_CHUNKS));
        let pieces = many.clone().split();
        assert_eq!(pieces.len(), 2);
        assert!(pieces.iter().all(|p| p.well_formed(MAX_CHUNKS)));
        let back: Vec<u32> = pieces.iter().flat_map(|p| p.indices().collect::<Vec<_>>()).collect();
        assert_eq!(back, many.indices().collect::<Vec<_>>());
    }

    proptest! {
        #[test]
        fn runs_round_trip_any_set(mut set in proptest::collection::vec(0u32..100_000, 0..300)) {
            set.sort_unstable();
            set.dedup();
            let runs = Runs::from_sorted(set.iter().copied());
            prop_assert!(runs.well_formed(100_000));
            prop_assert_eq!(runs.indices().collect::<Vec<_>>(), set);
        }
    }
}
