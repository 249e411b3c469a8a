//! The in-order check: hashes the file as far as it is held (or saved) and, once every byte
//! has been through, says `complete` with the file's sha256 (what the throughput benchmark and
//! the tests compare with the host's file).

use std::os::unix::fs::FileExt;
use std::time::Instant;

use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::save::SaveFile;
use crate::core::participant::ParticipantCore;
use crate::engine::Event;

/// Reads the original's store in order.
pub(super) struct Verify {
    next: u32,
    hasher: Sha256,
    done: bool,
    started: Instant,
}

impl Verify {
    pub(super) fn new(started: Instant) -> Verify {
        Verify { next: 0, hasher: Sha256::new(), done: false, started }
    }

    /// Hashes on from where it stopped; tells the core how far it got.
    pub(super) fn advance(&mut self, core: &mut ParticipantCore, save: Option<&mut SaveFile>, events: &mpsc::UnboundedSender<Event>) -> std::io::Result<()> {
        let (chunks, chunk_size, size) = {
            let m = core.manifest();
            (m.chunks, m.chunk_size as u64, m.size)
        };
        let mut buf = Vec::new();
        while self.next < chunks {
            let store = core.original();
            if let Some(data) = store.get(self.next) {
                self.hasher.update(data);
            } else if let Some(f) = save.as_ref()
                && store.seen(self.next)
            {
                // Evicted from memory, but on disk.
                buf.resize(core.manifest().chunk_len(self.next).unwrap_or(0), 0);
                f.file().read_exact_at(&mut buf, self.next as u64 * chunk_size)?;
                self.hasher.update(&buf);
            } else {
                break;
            }
            self.next += 1;
        }
        core.handle_verified(self.next);
        if self.next == chunks && !self.done {
            self.done = true;
            let sha256 = hex::encode(std::mem::take(&mut self.hasher).finalize());
            let _ = events.send(Event::Complete { sha256, size, seconds: self.started.elapsed().as_secs_f64() });
            if let Some(f) = save {
                f.finish();
            }
        }
        Ok(())
    }
}
