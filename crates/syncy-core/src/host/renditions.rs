//! The host's renditions as the core sees them: the plan's decisions turned into outputs
//! (start or stop a transcoder, tell a viewer its rendition), the transcoders' progress
//! turned into announcements, each transcoder kept a bounded distance ahead of its viewers.

use std::time::Instant;

use super::{HostCore, HostOutput, RENDITIONS_EVERY};
use crate::protocol::stream::{Message, Space};
use crate::renditions::{Job, PlanOutput};

/// How far one transcoder has got, as its driver reads it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RenditionProgress {
    /// Room position of the rendition's time zero.
    pub first_us: Option<u64>,
    /// Newest frame encoded, room µs.
    pub at_us: u64,
    /// Bytes in its file.
    pub produced: u64,
    /// Finished: `produced` is final.
    pub done: bool,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

impl HostCore {
    /// The progress of the transcoder of `space` (asked for by `CheckRenditions`).
    pub fn handle_rendition_progress(&mut self, now: Instant, space: Space, p: RenditionProgress) {
        self.now = now;
        if let Some(e) = &p.error {
            if p.first_us.is_none() {
                // Nothing to play at all: its viewers stay where they are.
                self.plan.handle_failed(space, &format!("the host cannot make this level: {e}"));
                return self.settle(now);
            }
            // What exists stays playable; the viewers hear why it ends there.
            if !self.plan.job(space).is_some_and(|j| j.done) {
                let text = format!("the host could not finish this rendition: {e}");
                for peer in self.plan.viewers_of(space).collect::<Vec<_>>() {
                    self.send(peer, Message::Notice { text: text.clone() });
                }
            }
        }
        self.plan.handle_progress(space, p.first_us, p.at_us, p.produced, p.done || p.error.is_some());
        if let Some(job) = self.plan.job(space) {
            let state = (job.first_us, job.available(self.manifest.chunk_size), job.done);
            if self.announced.get(&space) != Some(&state) {
                self.announced.insert(space, state);
                let msg = announcement(space, job, false);
                for peer in self.plan.viewers_of(space).collect::<Vec<_>>() {
                    self.send(peer, msg.clone());
                }
            }
        }
        self.settle(now);
    }

    /// The transcoder of `space` could not start (`reason` says why, for its viewers).
    pub fn handle_rendition_failed(&mut self, now: Instant, space: Space, reason: &str) {
        self.now = now;
        self.plan.handle_failed(space, reason);
        self.settle(now);
    }

    /// Carries out what the plan decided.
    pub(super) fn apply_plan(&mut self) {
        while let Some(out) = self.plan.poll_output() {
            match out {
                PlanOutput::Start { space, level, from_us } => {
                    let until_us = self.plan.run_until(space).unwrap_or(from_us);
                    self.out.push_back(HostOutput::StartRendition { space, level, from_us, until_us });
                    self.next_renditions.get_or_insert(self.now + RENDITIONS_EVERY);
                }
                PlanOutput::Stop { space } => {
                    tracing::info!("stopping rendition {space}: nobody watches it");
                    self.out.push_back(HostOutput::StopRendition { space });
                    self.scheduler.drop_space(space);
                    self.hashes.drop_space(space);
                    self.announced.remove(&space);
                    if self.plan.spaces().next().is_none() {
                        self.next_renditions = None;
                    }
                }
                PlanOutput::Assign { peer, space } => {
                    if let Some(msg) = self.plan.job(space).map(|j| announcement(space, j, true)) {
                        self.send(peer, msg);
                    }
                }
                PlanOutput::Refuse { peer, level, reason } => self.send(peer, Message::LevelRefused { level, reason }),
            }
        }
    }
}

fn announcement(space: Space, job: &Job, granted: bool) -> Message {
    Message::QualityChange { level: job.level.clone(), space, first_us: job.first_us, produced: job.produced, done: job.done, granted }
}
