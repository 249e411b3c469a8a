//! The host's rendition plan (sans-IO): which lower-quality renditions to make, from where,
//! and who watches which. Participants ask for a level from a room position (`Level`); a
//! rendition of that level that started just before that position is shared, otherwise a new
//! one starts there. Each rendition runs ahead of its slowest viewer by a bounded margin and
//! stops when nobody watches it. The host core (`host`) composes it; the edge (engine/host, media/transcode.rs) runs the transcoders,
//! reports their progress here and serves the chunks.

use std::collections::{BTreeMap, HashMap, VecDeque};

use super::scheduler::PeerKey;
use crate::protocol::stream::{ORIGINAL, Space};

/// Tuning of a [`RenditionPlan`].
#[derive(Debug, Clone)]
pub struct PlanConfig {
    /// A viewer joins a running rendition only if it asks for a position at most this far
    /// past the rendition's start: a rendition has no index, so a participant reads it from
    /// its start, and this bounds the bytes it fetches before its position.
    pub share_within_us: u64,
    /// How far a rendition may run ahead of its slowest viewer (bounds disk and CPU).
    pub ahead_us: u64,
    /// How many bytes a rendition may run ahead of its slowest viewer, at the bit rate it has
    /// shown so far (bounds disk whatever the level's rate; never closer than [`MIN_AHEAD_US`]).
    pub ahead_bytes: u64,
    /// Most renditions at once (each is a transcoder using a core).
    pub max_jobs: usize,
}

/// The default [`PlanConfig::ahead_bytes`]: twice what 30 s of the richest level the host
/// makes comes to at its peak (medium: 2.5 Mb/s of video allowed 3.75 at most, and 128 kb/s
/// of sound, 15 MB in 30 s), so only a rendition far richer than any the host offers is held
/// by bytes before time.
pub const AHEAD_BYTES: u64 = 32 << 20;
/// A byte bound never holds a rendition closer than this ahead of its viewer: the bit rate is
/// estimated from what was made so far, and its first frames (a key frame, the headers) run
/// high; a viewer with less than this ahead would stall.
pub const MIN_AHEAD_US: u64 = 5_000_000;

impl Default for PlanConfig {
    fn default() -> Self {
        PlanConfig { share_within_us: 4_000_000, ahead_us: 30_000_000, ahead_bytes: AHEAD_BYTES, max_jobs: 4 }
    }
}

/// What the host should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanOutput {
    /// Start transcoding `level` from `from_us` into `space`.
    Start { space: Space, level: String, from_us: u64 },
    /// Stop the transcoder of `space` and drop its bytes.
    Stop { space: Space },
    /// Tell `peer` about its rendition (and keep telling it as it grows).
    Assign { peer: PeerKey, space: Space },
    /// `peer` cannot have `level` (it stays where it is).
    Refuse { peer: PeerKey, level: String, reason: String },
}

/// One rendition being made (or made).
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Level name.
    pub level: String,
    /// Position it was started from, µs.
    pub from_us: u64,
    /// Room position of its time zero, once the transcoder knows.
    pub first_us: Option<u64>,
    /// How far it has got, room µs.
    pub at_us: u64,
    /// Bytes written.
    pub produced: u64,
    /// Finished (end of the media, or stopped ahead of nobody).
    pub done: bool,
}

impl Job {
    /// Bytes a participant may fetch: whole chunks while it grows, everything once done.
    pub fn available(&self, chunk_size: u32) -> u64 {
        if self.done { self.produced } else { self.produced / chunk_size as u64 * chunk_size as u64 }
    }

    /// Length of chunk `index` if it can be served now.
    pub fn chunk_len(&self, index: u32, chunk_size: u32) -> Option<usize> {
        let start = index as u64 * chunk_size as u64;
        let end = self.available(chunk_size);
        (start < end).then(|| (end - start).min(chunk_size as u64) as usize)
    }
}

/// The plan.
#[derive(Debug)]
pub struct RenditionPlan {
    cfg: PlanConfig,
    levels: Vec<String>,
    jobs: BTreeMap<Space, Job>,
    /// Viewer → (space, its latest position µs).
    viewers: HashMap<PeerKey, (Space, u64)>,
    next_space: Space,
    out: VecDeque<PlanOutput>,
}

impl RenditionPlan {
    /// A plan offering `levels` (the renditions the host can make; not `high`).
    pub fn new(levels: Vec<String>, cfg: PlanConfig) -> Self {
        RenditionPlan { cfg, levels, jobs: BTreeMap::new(), viewers: HashMap::new(), next_space: ORIGINAL + 1, out: VecDeque::new() }
    }

    /// `peer` wants `level` from `from_us` on (`high`: the original, no rendition).
    pub fn handle_level(&mut self, peer: PeerKey, level: &str, from_us: u64) {
        if level == "high" {
            self.leave(peer);
            return;
        }
        if !self.levels.iter().any(|l| l == level) {
            self.out.push_back(PlanOutput::Refuse { peer, level: level.to_string(), reason: format!("this host does not offer {level:?}") });
            return;
        }
        // Already on a rendition of this level that covers the position: nothing to do (the
        // participant seeks inside it).
        if let Some(&(space, _)) = self.viewers.get(&peer)
            && let Some(job) = self.jobs.get(&space)
            && job.level == level
            && job.from_us <= from_us
            && from_us <= job.at_us.max(job.from_us).saturating_add(self.cfg.share_within_us)
        {
            self.viewers.insert(peer, (space, from_us));
            // Every request is answered, so the participant knows where the host has it.
            self.out.push_back(PlanOutput::Assign { peer, space });
            return;
        }
        let shared = self
            .jobs
            .iter()
            .find(|(_, j)| j.level == level && j.from_us <= from_us && from_us <= j.from_us.saturating_add(self.cfg.share_within_us))
            .map(|(s, _)| *s);
        let space = match shared {
            Some(s) => s,
            None => {
                // The slot this viewer frees counts: a viewer moving between levels never
                // needs two.
                let freed = self.viewers.get(&peer).is_some_and(|(s, _)| self.viewers.values().filter(|(v, _)| v == s).count() == 1);
                if self.jobs.len() - usize::from(freed) >= self.cfg.max_jobs {
                    self.out.push_back(PlanOutput::Refuse {
                        peer,
                        level: level.to_string(),
                        reason: format!("the host is already making {} renditions; try again later", self.jobs.len()),
                    });
                    return;
                }
                let Some(next) = self.next_space.checked_add(1) else {
                    self.out.push_back(PlanOutput::Refuse {
                        peer,
                        level: level.to_string(),
                        reason: "the host has made all the renditions it can in this room".into(),
                    });
                    return;
                };
                let space = std::mem::replace(&mut self.next_space, next);
                self.jobs.insert(space, Job { level: level.to_string(), from_us, first_us: None, at_us: from_us, produced: 0, done: false });
                self.out.push_back(PlanOutput::Start { space, level: level.to_string(), from_us });
                space
            }
        };
        self.leave(peer);
        self.viewers.insert(peer, (space, from_us));
        self.out.push_back(PlanOutput::Assign { peer, space });
    }

    /// A viewer's playback position (from its reports).
    pub fn handle_position(&mut self, peer: PeerKey, position_us: u64) {
        if let Some(v) = self.viewers.get_mut(&peer) {
            v.1 = position_us;
        }
    }

    /// A transcoder's progress.
    pub fn handle_progress(&mut self, space: Space, first_us: Option<u64>, at_us: u64, produced: u64, done: bool) {
        if let Some(j) = self.jobs.get_mut(&space) {
            j.first_us = j.first_us.or(first_us);
            j.at_us = j.at_us.max(at_us);
            j.produced = j.produced.max(produced);
            j.done |= done;
        }
    }

    /// A rendition cannot be made (its transcoder failed before a frame): its viewers are
    /// refused, and it stops.
    pub fn handle_failed(&mut self, space: Space, reason: &str) {
        let Some(job) = self.jobs.get(&space) else { return };
        let level = job.level.clone();
        let viewers: Vec<PeerKey> = self.viewers_of(space).collect();
        for peer in viewers {
            self.out.push_back(PlanOutput::Refuse { peer, level: level.clone(), reason: reason.to_string() });
            self.leave(peer);
        }
    }

    /// A participant left.
    pub fn remove_peer(&mut self, peer: PeerKey) {
        self.leave(peer);
    }

    fn leave(&mut self, peer: PeerKey) {
        let Some((space, _)) = self.viewers.remove(&peer) else { return };
        if !self.viewers.values().any(|(s, _)| *s == space) {
            self.jobs.remove(&space);
            self.out.push_back(PlanOutput::Stop { space });
        }
    }

    /// A rendition's state.
    pub fn job(&self, space: Space) -> Option<&Job> {
        self.jobs.get(&space)
    }

    /// The level a participant plays (`high` unless on a rendition).
    pub fn level_of(&self, peer: PeerKey) -> &str {
        self.viewers.get(&peer).and_then(|(s, _)| self.jobs.get(s)).map_or("high", |j| j.level.as_str())
    }

    /// The rendition a participant is on.
    pub fn space_of(&self, peer: PeerKey) -> Option<Space> {
        self.viewers.get(&peer).map(|(s, _)| *s)
    }

    /// Who watches `space`.
    pub fn viewers_of(&self, space: Space) -> impl Iterator<Item = PeerKey> + '_ {
        self.viewers.iter().filter(move |(_, (s, _))| *s == space).map(|(p, _)| *p)
    }

    /// How far the transcoder of `space` may run, room µs: its slowest viewer plus the margin.
    pub fn run_until(&self, space: Space) -> Option<u64> {
        let margin = self.margin_us(space);
        self.viewers.values().filter(|(s, _)| *s == space).map(|(_, pos)| pos.saturating_add(margin)).min()
    }

    /// How far ahead of its slowest viewer `space` may run: `ahead_us`, or less if at the bit
    /// rate it has shown so far that would be more than `ahead_bytes`.
    fn margin_us(&self, space: Space) -> u64 {
        let time = self.cfg.ahead_us;
        let Some(job) = self.jobs.get(&space) else { return time };
        let span = job.first_us.map_or(0, |first| job.at_us.saturating_sub(first));
        if span == 0 || job.produced == 0 {
            return time;
        }
        // ahead_bytes at produced/span bytes per µs (u128: no overflow for any u64 inputs).
        let by_bytes = (self.cfg.ahead_bytes as u128 * span as u128 / job.produced as u128).min(u64::MAX as u128) as u64;
        time.min(by_bytes.max(MIN_AHEAD_US))
    }

    /// Renditions being made or kept.
    pub fn spaces(&self) -> impl Iterator<Item = Space> + '_ {
        self.jobs.keys().copied()
    }

    /// The next thing to do.
    pub fn poll_output(&mut self) -> Option<PlanOutput> {
        self.out.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> RenditionPlan {
        RenditionPlan::new(vec!["medium".into(), "low".into()], PlanConfig { max_jobs: 2, ..PlanConfig::default() })
    }

    fn drain(p: &mut RenditionPlan) -> Vec<PlanOutput> {
        std::iter::from_fn(|| p.poll_output()).collect()
    }

    #[test]
    fn viewers_share_a_rendition_started_just_before_them() {
        let mut p = plan();
        p.handle_level(1, "low", 10_000_000);
        assert_eq!(drain(&mut p), vec![PlanOutput::Start { space: 1, level: "low".into(), from_us: 10_000_000 }, PlanOutput::Assign { peer: 1, space: 1 }]);
        p.handle_level(2, "low", 12_000_000);
        assert_eq!(drain(&mut p), vec![PlanOutput::Assign { peer: 2, space: 1 }], "2 s later: shared");
        p.handle_level(3, "low", 40_000_000);
        assert_eq!(drain(&mut p), vec![PlanOutput::Start { space: 2, level: "low".into(), from_us: 40_000_000 }, PlanOutput::Assign { peer: 3, space: 2 }]);
        assert_eq!(p.level_of(3), "low");
        assert_eq!(p.level_of(9), "high");
    }

    #[test]
    fn a_rendition_nobody_watches_stops_and_a_seek_moves_its_viewers() {
        let mut p = plan();
        p.handle_level(1, "medium", 0);
        p.handle_level(2, "medium", 0);
        drain(&mut p);
        // The room seeks far: both ask again; the first starts a new one, the second shares it,
        // and the old one stops once its last viewer has moved.
        p.handle_level(1, "medium", 100_000_000);
        assert_eq!(drain(&mut p), vec![PlanOutput::Start { space: 2, level: "medium".into(), from_us: 100_000_000 }, PlanOutput::Assign { peer: 1, space: 2 }]);
        p.handle_level(2, "medium", 100_000_000);
        assert_eq!(drain(&mut p), vec![PlanOutput::Stop { space: 1 }, PlanOutput::Assign { peer: 2, space: 2 }]);
        p.handle_level(2, "high", 0);
        assert!(drain(&mut p).is_empty(), "peer 1 still watches space 2");
        p.remove_peer(1);
        assert_eq!(drain(&mut p), vec![PlanOutput::Stop { space: 2 }]);
        assert_eq!(p.spaces().count(), 0);
    }

    #[test]
    fn a_position_inside_the_current_rendition_keeps_it() {
        let mut p = plan();
        p.handle_level(1, "low", 0);
        drain(&mut p);
        p.handle_progress(1, Some(0), 20_000_000, 1 << 20, false);
        p.handle_level(1, "low", 15_000_000);
        assert_eq!(drain(&mut p), vec![PlanOutput::Assign { peer: 1, space: 1 }], "the participant seeks inside what exists");
    }

    #[test]
    fn runs_ahead_of_the_slowest_viewer_only() {
        let mut p = plan();
        p.handle_level(1, "low", 0);
        p.handle_level(2, "low", 1_000_000);
        p.handle_position(1, 5_000_000);
        p.handle_position(2, 3_000_000);
        assert_eq!(p.run_until(1), Some(33_000_000));
        assert_eq!(p.run_until(7), None);
    }

    #[test]
    fn a_rendition_far_richer_than_any_level_runs_ahead_by_bytes_not_time() {
        let mut p = plan();
        p.handle_level(1, "low", 0);
        drain(&mut p);
        // At the low level's rate (about 1.1 Mb/s: 1.4 MB in 10 s) the 30 s margin holds.
        p.handle_progress(1, Some(0), 10_000_000, 1_400_000, false);
        p.handle_position(1, 2_000_000);
        assert_eq!(p.run_until(1), Some(32_000_000));
        // At 8 MB/s (64 Mb/s) 32 MiB is about 4.2 s: the floor of 5 s holds it.
        p.handle_progress(1, Some(0), 20_000_000, 160_000_000, false);
        assert_eq!(p.run_until(1), Some(2_000_000 + MIN_AHEAD_US));
        // At 2 MB/s (16 Mb/s): 32 MiB is 16.8 s.
        let mut p = plan();
        p.handle_level(1, "low", 0);
        p.handle_progress(1, Some(0), 10_000_000, 20_000_000, false);
        p.handle_position(1, 2_000_000);
        assert_eq!(p.run_until(1), Some(2_000_000 + AHEAD_BYTES * 10_000_000 / 20_000_000));
    }

    #[test]
    fn refuses_unknown_levels_and_more_jobs_than_allowed() {
        let mut p = plan();
        p.handle_level(1, "ultra", 0);
        assert!(matches!(&drain(&mut p)[..], [PlanOutput::Refuse { peer: 1, level, .. }] if level == "ultra"));
        p.handle_level(1, "low", 0);
        p.handle_level(2, "medium", 0);
        drain(&mut p);
        p.handle_level(3, "low", 60_000_000);
        assert!(matches!(drain(&mut p)[..], [PlanOutput::Refuse { peer: 3, .. }]), "two jobs at most");
        // A viewer alone on its rendition may move: its old one frees the slot.
        p.handle_level(1, "low", 60_000_000);
        assert_eq!(
            drain(&mut p),
            vec![
                PlanOutput::Start { space: 3, level: "low".into(), from_us: 60_000_000 },
                PlanOutput::Stop { space: 1 },
                PlanOutput::Assign { peer: 1, space: 3 }
            ]
        );
    }

    #[test]
    fn a_failed_rendition_refuses_its_viewers_and_stops() {
        let mut p = plan();
        p.handle_level(1, "low", 0);
        p.handle_level(2, "low", 0);
        drain(&mut p);
        p.handle_failed(1, "no frames");
        let out = drain(&mut p);
        assert_eq!(out.iter().filter(|o| matches!(o, PlanOutput::Refuse { level, .. } if level == "low")).count(), 2, "{out:?}");
        assert_eq!(out.last(), Some(&PlanOutput::Stop { space: 1 }));
        assert_eq!((p.level_of(1), p.level_of(2)), ("high", "high"));
        // Positions at the end of time do not overflow.
        p.handle_level(3, "low", u64::MAX - 5);
        drain(&mut p);
        p.handle_position(3, u64::MAX);
        assert_eq!(p.run_until(2), Some(u64::MAX));
        p.handle_level(3, "low", u64::MAX);
        assert_eq!(drain(&mut p), vec![PlanOutput::Assign { peer: 3, space: 2 }], "inside its own rendition");
    }

    #[test]
    fn serves_whole_chunks_while_growing_and_the_tail_once_done() {
        let mut j = Job { level: "low".into(), from_us: 0, first_us: Some(0), at_us: 0, produced: 250, done: false };
        assert_eq!((j.chunk_len(0, 100), j.chunk_len(1, 100), j.chunk_len(2, 100)), (Some(100), Some(100), None));
        j.done = true;
        assert_eq!(j.chunk_len(2, 100), Some(50));
        assert_eq!(j.chunk_len(3, 100), None);
    }
}
