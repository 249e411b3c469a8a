//! Requests given up: ones the room has left behind, and ones that timed out. A request
//! waits in the host's queue (or a neighbour's) until it is served, and one this side no
//! longer waits for would still be sent, late, to nobody's use: in a hundred-participant room
//! the host spent two fifths of its upload on read-ahead asked for many seconds before and
//! sent after the room had played past it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::ParticipantCore;
use crate::participant::ParticipantOutput;
use crate::protocol::stream::{Message, Space};

/// How far behind the room (or this side's picture, if ahead of it) and behind the reader a
/// chunk must lie, at the stream's average rate, to be given up: a demuxer reads back and
/// forth a little (sound and picture interleaved), and a file's rate varies.
pub const PASSED: Duration = Duration::from_secs(2);

impl ParticipantCore {
    /// Request timeouts, and what is still asked for but lies [`PASSED`] behind both the
    /// reader and the room's position: each cancelled where it was asked (what timed out is
    /// asked afresh as the store sees fit).
    pub(super) fn give_up_requests(&mut self, now: Instant) {
        let here = self.presenter.position(now);
        let behind_us = self.presenter.room_position(now).map(|r| r.max(here) - PASSED.as_micros() as i64);
        let live = self.switch.live_spaces();
        let mut given_up: Vec<(Space, Vec<u32>)> = Vec::new();
        for space in self.stores.spaces() {
            let Some(s) = self.stores.get_mut(space) else { continue };
            let mut gone = s.handle_timeout(now);
            let m = s.manifest();
            let duration_us = m.duration_ms.filter(|&d| d > 0).map(|d| d as f64 * 1000.0);
            if let (Some(behind_us), Some(duration_us), true) = (behind_us.filter(|&b| b > 0), duration_us, live.contains(&space)) {
                let per_us = m.chunks as f64 / duration_us;
                let margin = (PASSED.as_micros() as f64 * per_us).ceil() as u32;
                let before = ((behind_us as f64 * per_us) as u32).min(s.read_position().saturating_sub(margin));
                gone.extend(s.take_passed(now, before));
            }
            if !gone.is_empty() {
                given_up.push((space, gone));
            }
        }
        for (space, chunks) in given_up {
            tracing::debug!(space, "{} requests given up (timed out, or the room played past them): cancelled", chunks.len());
            self.cancel_where_asked(space, chunks);
        }
    }

    /// Cancels `chunks` of `space` with the neighbour each was asked of, else with the host.
    fn cancel_where_asked(&mut self, space: Space, chunks: Vec<u32>) {
        let mut by_link: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        let mut to_host = Vec::new();
        for ix in chunks {
            let link = self.relay.as_mut().and_then(|r| {
                r.waiting.remove(&(space, ix));
                r.swarm.links.iter_mut().find_map(|(&l, n)| n.forget(space, ix).then_some(l))
            });
            match link {
                Some(link) => by_link.entry(link).or_default().push(ix),
                None => to_host.push(ix),
            }
        }
        for (link, chunks) in by_link {
            self.out.push_back(ParticipantOutput::RelaySend { link, msg: Message::Cancel { space, chunks } });
        }
        if !to_host.is_empty() {
            self.send(Message::Cancel { space, chunks: to_host });
        }
    }
}
