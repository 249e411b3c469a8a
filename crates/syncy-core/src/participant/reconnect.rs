//! Getting back in after the link drops (sans-IO): an attempt at once, then with a growing
//! pause (the host may be restarting its network, or this machine waking up), for at most
//! [`RECONNECT_FOR`] from the loss; back only to the same file. The driver makes the attempts
//! ([`ParticipantOutput::Connect`]) and says how each went.

use std::time::{Duration, Instant};

use super::{ParticipantCore, ParticipantOutput};
use crate::api::Event;
use crate::backoff::Backoff;
use crate::protocol::stream::Manifest;

/// How long a participant whose link dropped keeps trying to get back in.
pub const RECONNECT_FOR: Duration = Duration::from_secs(90);

/// Attempts in all at a first connection whose ICE found a path but whose DTLS/SCTP never
/// came up over it (a lost handshake flight, say): each is a fresh set-up.
pub const FIRST_ATTEMPTS: u32 = 3;

/// The first connection's attempts. There is no core yet (it needs the host's manifest), so
/// the join's driver asks this after each failure.
#[derive(Debug)]
pub struct FirstConnection {
    attempt: u32,
}

impl Default for FirstConnection {
    fn default() -> Self {
        FirstConnection { attempt: 1 }
    }
}

impl FirstConnection {
    /// The attempt under way, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The attempt stalled after ICE: the next attempt's number, or `None` when the join
    /// fails with this attempt's error. (Any other failure fails the join at once: a refusal
    /// or a missing path does not mend in a moment.)
    pub fn stalled(&mut self) -> Option<u32> {
        (self.attempt < FIRST_ATTEMPTS).then(|| {
            self.attempt += 1;
            self.attempt
        })
    }
}

/// A reconnection under way.
pub(super) struct Reconnect {
    backoff: Backoff,
    attempt: u32,
    why: String,
    /// The next attempt, after a failed one.
    next: Option<Instant>,
}

impl Reconnect {
    /// When the next attempt is due, if one waits.
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.next
    }
}

impl ParticipantCore {
    /// The link went away at `now` (`why`): the first attempt goes at once.
    pub fn handle_link_lost(&mut self, now: Instant, why: String) {
        self.now = now;
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(5)).within(RECONNECT_FOR);
        backoff.lost(now);
        self.reconnect = Some(Reconnect { backoff, attempt: 0, why, next: None });
        // Introductions were the host's: it makes new ones once back.
        self.drop_all_links(now);
        self.attempt();
    }

    fn attempt(&mut self) {
        let Some(r) = self.reconnect.as_mut() else { return };
        r.attempt += 1;
        r.next = None;
        tracing::info!("link lost ({}); reconnecting, attempt {}", r.why, r.attempt);
        let ev = Event::Reconnecting { reason: r.why.clone(), attempt: r.attempt };
        self.event(ev);
        self.out.push_back(ParticipantOutput::Connect);
    }

    /// An attempt failed (`err`): the next after a pause, or the end once the time is up.
    pub fn handle_connect_failed(&mut self, now: Instant, err: &str) {
        self.now = now;
        let Some(r) = self.reconnect.as_mut() else { return };
        tracing::info!("reconnect attempt {} failed: {err}", r.attempt);
        match r.backoff.failed(now) {
            Some(next) => r.next = Some(next),
            None => {
                let msg = format!("connection to the host lost ({}) and not back within {} s: {err}", r.why, RECONNECT_FOR.as_secs());
                self.reconnect = None;
                self.out.push_back(ParticipantOutput::GiveUp(msg));
            }
        }
    }

    /// An attempt reached the host, which streams `manifest`: back in if it is the same file
    /// (`true`: the stores, the picture and the hash go on; the link is new), else the end.
    pub fn handle_connected_to(&mut self, now: Instant, manifest: &Manifest) -> bool {
        if self.reconnect.take().is_none() {
            return false;
        }
        if manifest.identity() != self.manifest.identity() {
            let msg = format!("the host is streaming another file now ({}); not resuming {}", manifest.name, self.manifest.name);
            self.out.push_back(ParticipantOutput::GiveUp(msg));
            return false;
        }
        if manifest.stream != self.manifest.stream {
            // The host restarted: what it signs now is signed for its new run.
            self.manifest.stream = manifest.stream;
            self.hashes = super::hashes::HashTable::default();
        }
        self.handle_reconnected(now);
        true
    }

    /// Time passed while reconnecting: the next attempt, when due. `true` while reconnecting
    /// (nothing else runs meanwhile: there is no link to ping or report on).
    pub(super) fn reconnect_timeout(&mut self, now: Instant) -> bool {
        let Some(r) = &self.reconnect else { return false };
        if r.next.is_some_and(|t| t <= now) {
            self.attempt();
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stalled_first_connection_is_tried_three_times_in_all() {
        let mut first = FirstConnection::default();
        assert_eq!(first.attempt(), 1);
        assert_eq!((first.stalled(), first.stalled(), first.stalled()), (Some(2), Some(3), None));
        assert_eq!(first.attempt(), FIRST_ATTEMPTS);
    }
}
