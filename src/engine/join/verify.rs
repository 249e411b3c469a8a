//! The in-order check: hashes the file as far as it is held (or saved) and, once every byte
//! has been through and the host has said its own, says `complete` with the file's sha256 and
//! whether it matched the hash the host signed.

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
    /// The copy's hash, once every byte has been through.
    local: Option<[u8; 32]>,
    done: bool,
    started: Instant,
    /// Seconds from the join to the last byte (not to the host's word).
    seconds: f64,
}

impl Verify {
    pub(super) fn new(started: Instant) -> Verify {
        Verify { next: 0, hasher: Sha256::new(), local: None, done: false, started, seconds: 0.0 }
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
        if self.next == chunks && self.local.is_none() {
            self.local = Some(std::mem::take(&mut self.hasher).finalize().into());
            self.seconds = self.started.elapsed().as_secs_f64();
        }
        let (Some(local), Some(host), false) = (self.local, core.host_sha256().copied(), self.done) else { return Ok(()) };
        self.done = true;
        let matched = local == host;
        let sha256 = hex::encode(local);
        if !matched {
            let message = format!("the copy's sha256 {sha256} is not the one the host signed ({}): some bytes came wrong", hex::encode(host));
            let _ = events.send(Event::Error { message });
        }
        let _ = events.send(Event::Complete { sha256, size, seconds: self.seconds, matched });
        // The record goes either way: a whole copy has nothing to resume, and a wrong one (which
        // chunks are wrong is not known) must not be resumed.
        if let Some(f) = save {
            f.finish();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::core::buffer::StoreConfig;
    use crate::core::participant::ParticipantConfig;
    use crate::protocol::identity::{HostSecret, Purpose};
    use crate::protocol::stream::{MIN_CHUNK_SIZE, Manifest, Message};

    /// A participant core that holds a two-chunk file whose host signed `host_digest`.
    fn core_with_file(bytes: &[u8], host_digest: [u8; 32]) -> ParticipantCore {
        let key = HostSecret::from_bytes([3; 32]).host_key();
        let chunk = MIN_CHUNK_SIZE;
        let m = Manifest {
            name: "f".into(),
            size: bytes.len() as u64,
            chunk_size: chunk,
            chunks: (bytes.len() as u64).div_ceil(chunk as u64) as u32,
            duration_ms: None,
            container: "mov,mp4".into(),
            codecs: vec![],
            levels: vec!["high".into()],
        };
        let cfg = ParticipantConfig {
            name: "ann".into(),
            decodes: false,
            keeps_original: Some("it does not play"),
            quality: "high".into(),
            store: StoreConfig::default(),
            ladder: vec![],
            host: Some((key.public(), "room".into())),
        };
        let now = Instant::now();
        let mut core = ParticipantCore::new(now, m.clone(), cfg, &[]);
        while core.poll_output().is_some() {}
        for (ix, piece) in bytes.chunks(chunk as usize).enumerate() {
            let msg = Message::Chunk { space: 0, index: ix as u32, data: serde_bytes::ByteBuf::from(piece.to_vec()) };
            core.handle_chunk(now, bytes::BytesMut::from(&crate::protocol::stream::encode(&msg)[..])).unwrap();
        }
        let sig = key.sign(Purpose::FileHash, &[b"room", &host_digest]);
        core.handle_message(now, Message::FileHash { sha256: serde_bytes::ByteBuf::from(host_digest.to_vec()), sig }).unwrap();
        core
    }

    fn complete(core: &mut ParticipantCore) -> Vec<Event> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        Verify::new(Instant::now()).advance(core, None, &tx).unwrap();
        std::iter::from_fn(|| rx.try_recv().ok()).collect()
    }

    #[test]
    fn complete_says_whether_the_copy_is_the_file_the_host_signed() {
        let bytes: Vec<u8> = (0..MIN_CHUNK_SIZE + 100).map(|i| i as u8).collect();
        let right: [u8; 32] = Sha256::digest(&bytes).into();
        let events = complete(&mut core_with_file(&bytes, right));
        assert!(matches!(&events[..], [Event::Complete { matched: true, sha256, .. }] if *sha256 == hex::encode(right)), "{events:?}");
        let events = complete(&mut core_with_file(&bytes, [0; 32]));
        assert!(matches!(&events[..], [Event::Error { .. }, Event::Complete { matched: false, .. }]), "{events:?}");
    }
}
