//! Chunks from disk to a participant's queue, as the driver carries out `HostOutput::Chunk`:
//! the read goes to the reader threads ([`reads`](super::reads)), its result comes back to the
//! driver as an input, and the chunk is queued then (`try_send`, never waiting). Every chunk is
//! reported to the core once: queued (`handle_queued`), or not (`handle_unsent`, for whatever
//! reason), so its counts of reads out and chunks in flight stay true.

use std::io;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use tokio::sync::mpsc;

use super::reads::{ChunkFile, ChunkRead, Outcome, ReadDone, Readers};
use super::transcoders::Renditions;
use crate::core::host::HostCore;
use crate::protocol::signal::PeerId;
use crate::protocol::stream::{ORIGINAL, Space};

/// One `HostOutput::Chunk`.
pub(super) struct Chunk {
    pub peer: PeerId,
    pub space: Space,
    pub index: u32,
    pub offset: u64,
    pub len: usize,
}

/// What chunks are read from, and the reads out.
pub(super) struct Chunks {
    original: Arc<dyn ChunkFile>,
    pub renditions: Renditions,
    readers: Readers,
}

impl Chunks {
    pub(super) fn new(original: Arc<dyn ChunkFile>, renditions: Renditions) -> io::Result<Chunks> {
        Ok(Chunks { original, renditions, readers: Readers::start()? })
    }

    /// Starts reading `c` for its participant (`connected`: it has a chunk queue); never waits.
    pub(super) fn send(&mut self, core: &mut HostCore, connected: bool, c: Chunk) {
        if !connected {
            return core.handle_unsent(Instant::now(), c.peer);
        }
        let Some(from) = self.file(c.space) else {
            return failed(core, c.peer, c.index, &io::Error::new(io::ErrorKind::NotFound, "no such rendition"));
        };
        let read = ChunkRead { peer: c.peer, space: c.space, index: c.index, offset: c.offset, len: c.len, from };
        if let Err(r) = self.readers.submit(read) {
            core.handle_unsent(Instant::now(), r.peer);
        }
    }

    /// What `space`'s chunks are read from (`None`: a rendition no longer there).
    pub(super) fn file(&self, space: Space) -> Option<Arc<dyn ChunkFile>> {
        if space == ORIGINAL { Some(self.original.clone()) } else { self.renditions.file(space).map(|f| f as Arc<dyn ChunkFile>) }
    }

    /// The next finished read (cancel-safe, for `select!`).
    pub(super) async fn next(&mut self) -> Option<ReadDone> {
        self.readers.next().await
    }

    /// A read is done: its chunk goes to `queue`, the participant's chunk queue (if it still
    /// has one).
    pub(super) fn done(core: &mut HostCore, done: ReadDone, queue: Option<&mpsc::Sender<BytesMut>>) {
        match done.outcome {
            Outcome::Read(bytes) => {
                // The queue is sized to the scheduler's in-flight limit, so a refusal means
                // the peer's task is gone; its end follows.
                match queue.map(|q| q.try_send(bytes)) {
                    Some(Ok(())) => core.handle_queued(Instant::now()),
                    _ => core.handle_unsent(Instant::now(), done.peer),
                }
            }
            Outcome::Failed(e) => failed(core, done.peer, done.index, &e),
            // A rendition stopped since: its chunks are not wanted any more.
            Outcome::Withdrawn => core.handle_unsent(Instant::now(), done.peer),
        }
    }
}

/// The host cannot read what it serves: the participant goes (as it always did).
fn failed(core: &mut HostCore, peer: PeerId, index: u32, e: &io::Error) {
    tracing::error!("reading chunk {index}: {e}");
    core.handle_unsent(Instant::now(), peer);
    core.handle_gone(Instant::now(), peer, &format!("host read error: {e}"));
}

#[cfg(test)]
mod tests {
    use std::sync::{Condvar, Mutex};
    use std::time::Duration;

    use super::*;
    use crate::core::host::{HostConfig, HostOutput};
    use crate::core::room::RoomConfig;
    use crate::protocol::signal::ServerMsg;
    use crate::protocol::stream::{self, MIN_CHUNK_SIZE, Manifest, Message, Priority};

    const CHUNK: u32 = MIN_CHUNK_SIZE;

    /// A file whose reads wait on the disk until the test lets them go (or a minute passes,
    /// so a driver that read on its own task fails the test instead of hanging it).
    #[derive(Default)]
    struct SlowFile {
        bytes: Vec<u8>,
        state: Mutex<(bool, usize, usize)>,
        changed: Condvar,
    }

    impl SlowFile {
        fn new(bytes: Vec<u8>) -> SlowFile {
            SlowFile { bytes, ..SlowFile::default() }
        }

        /// Waits until a read is on the disk.
        fn wait_reading(&self) {
            let g = self.state.lock().unwrap();
            drop(self.changed.wait_while(g, |(_, started, _)| *started == 0).unwrap());
        }

        fn release(&self) {
            self.state.lock().unwrap().0 = true;
            self.changed.notify_all();
        }

        fn finished(&self) -> usize {
            self.state.lock().unwrap().2
        }
    }

    impl ChunkFile for SlowFile {
        fn read_chunk(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
            let mut g = self.state.lock().unwrap();
            g.1 += 1;
            self.changed.notify_all();
            g = self.changed.wait_timeout_while(g, Duration::from_secs(60), |(open, ..)| !*open).unwrap().0;
            buf.copy_from_slice(&self.bytes[offset as usize..offset as usize + buf.len()]);
            g.2 += 1;
            Ok(())
        }
    }

    /// A host core for a four-chunk file with one participant connected.
    fn room() -> (HostCore, PeerId) {
        let manifest = Manifest {
            name: "f.mp4".into(),
            size: 4 * CHUNK as u64,
            chunk_size: CHUNK,
            chunks: 4,
            duration_ms: Some(10_000),
            container: "mov,mp4".into(),
            codecs: vec![],
            levels: vec!["high".into()],
            stream: [0; 16],
        };
        let cfg = HostConfig {
            room: "room".into(),
            name: "host".into(),
            room_cfg: RoomConfig { wait_for_buffering: true, host_only_control: false, duration_us: Some(10_000_000) },
            autoplay: false,
            approve: false,
            upload_limit: 0,
            reconnect_signal: false,
            fallback: None,
            banned: vec![],
        };
        let now = Instant::now();
        let mut core = HostCore::new(now, 1.7e12, Arc::new(manifest), cfg);
        let (nonce, ann) = ("0123456789abcdef0123456789abcdef", crate::protocol::guest::GuestSecret::random().key_for("room"));
        let (key, proof) = (ann.public().to_hex(), ann.join_proof("room", nonce, "ann"));
        core.handle_signal(now, ServerMsg::PeerJoined { peer: 1, name: "ann".into(), nonce: nonce.into(), key, proof });
        let peer = drain(&mut core).iter().find_map(|o| if let HostOutput::Admit { peer, .. } = o { Some(*peer) } else { None }).expect("admitted");
        core.handle_connected(now, peer);
        drain(&mut core);
        (core, peer)
    }

    fn drain(core: &mut HostCore) -> Vec<HostOutput> {
        std::iter::from_fn(|| core.poll_output()).collect()
    }

    /// What the driver does with the core's outputs: chunks to the readers, the rest returned.
    fn carry_out(core: &mut HostCore, chunks: &mut Chunks) -> Vec<HostOutput> {
        let mut rest = vec![];
        for out in drain(core) {
            match out {
                HostOutput::Chunk { peer, space, index, offset, len } => chunks.send(core, true, Chunk { peer, space, index, offset, len }),
                out => rest.push(out),
            }
        }
        rest
    }

    #[tokio::test]
    async fn a_slow_read_holds_up_neither_the_driver_nor_control_traffic() {
        let bytes: Vec<u8> = (0..4 * CHUNK).map(|i| (i % 251) as u8).collect();
        let file = Arc::new(SlowFile::new(bytes.clone()));
        let (mut core, peer) = room();
        let mut chunks = Chunks::new(file.clone(), Renditions::new(std::path::Path::new("unused"))).unwrap();
        core.handle_control(Instant::now(), peer, Message::Request { space: ORIGINAL, chunks: vec![0, 1], priority: Priority::Critical });
        carry_out(&mut core, &mut chunks);
        file.wait_reading();
        // The disk holds the read; the driver is free: a ping is answered meanwhile.
        core.handle_control(Instant::now(), peer, Message::Ping { client_us: 7 });
        let out = carry_out(&mut core, &mut chunks);
        assert!(out.iter().any(|o| matches!(o, HostOutput::Control { msg: Message::Pong { client_us: 7, .. }, .. })), "{out:?}");
        assert_eq!(file.finished(), 0, "answered while the read was still on the disk");

        file.release();
        let (tx, mut rx) = mpsc::channel(8);
        for _ in 0..2 {
            let done = chunks.next().await.expect("a read comes back");
            Chunks::done(&mut core, done, Some(&tx));
        }
        let mut got: Vec<(u32, Vec<u8>)> =
            std::iter::from_fn(|| rx.try_recv().ok()).map(|b| stream::decode_chunk(b, CHUNK).unwrap().map(|c| (c.index, c.data.to_vec())).unwrap()).collect();
        got.sort();
        let want = |ix: usize| bytes[ix * CHUNK as usize..(ix + 1) * CHUNK as usize].to_vec();
        assert_eq!(got, vec![(0, want(0)), (1, want(1))]);
    }

    /// A file the disk cannot read.
    struct BadFile;

    impl ChunkFile for BadFile {
        fn read_chunk(&self, _: &mut [u8], _: u64) -> io::Result<()> {
            Err(io::Error::other("bad sector"))
        }
    }

    #[tokio::test]
    async fn a_failed_read_lets_the_participant_go() {
        let (mut core, peer) = room();
        let mut chunks = Chunks::new(Arc::new(BadFile), Renditions::new(std::path::Path::new("unused"))).unwrap();
        core.handle_control(Instant::now(), peer, Message::Request { space: ORIGINAL, chunks: vec![0], priority: Priority::Critical });
        carry_out(&mut core, &mut chunks);
        let done = chunks.next().await.expect("a read comes back");
        Chunks::done(&mut core, done, None);
        let out = drain(&mut core);
        assert!(out.iter().any(|o| matches!(o, HostOutput::Close { peer: p } if *p == peer)), "{out:?}");
    }
}
