use std::time::Duration;

use bytes::BytesMut;

use super::*;
use crate::api::Command;
use crate::protocol::stream::{self, Priority};

const MS: Duration = Duration::from_millis(1);

pub(super) fn config(on_disk: bool) -> ParticipantConfig {
    ParticipantConfig {
        name: "ann".into(),
        decodes: true,
        keeps_original: None,
        quality: "auto".into(),
        store: StoreConfig { on_disk, ..StoreConfig::default() },
        ladder: vec![],
        host: Some((host_key().public(), ROOM.into())),
        relay: None,
    }
}

pub(super) const ROOM: &str = "films-room";

/// The host this participant's link names.
pub(super) fn host_key() -> crate::protocol::identity::HostKey {
    crate::protocol::identity::HostSecret::from_bytes([5; 32]).host_key()
}

#[test]
fn the_files_hash_is_taken_only_as_the_host_signed_it_for_this_room() {
    use crate::protocol::identity::{HostSecret, Purpose};
    let t0 = crate::testing::t0();
    let digest = [9u8; 32];
    let hash = |sig: String| Message::FileHash { sha256: serde_bytes::ByteBuf::from(digest.to_vec()), sig };
    let forged = [
        HostSecret::from_bytes([6; 32]).host_key().sign(Purpose::FileHash, &[ROOM.as_bytes(), &digest]),
        host_key().sign(Purpose::FileHash, &[b"another-room", &digest]),
        host_key().sign(Purpose::Offer, &[ROOM.as_bytes(), &digest]),
    ];
    for sig in forged {
        let mut c = ParticipantCore::new(t0, manifest(), config(false), &[]);
        assert!(c.handle_message(t0, hash(sig)).is_err());
        assert_eq!(c.host_sha256(), None);
    }
    let mut c = ParticipantCore::new(t0, manifest(), config(false), &[]);
    c.handle_message(t0, hash(host_key().sign(Purpose::FileHash, &[ROOM.as_bytes(), &digest]))).unwrap();
    assert_eq!(c.host_sha256(), Some(&digest));
}

/// A 10 s file of 1 Mb/s in 64 KiB chunks.
fn manifest() -> Manifest {
    crate::sim::media(10, 1000, 64 << 10)
}

fn drain(c: &mut ParticipantCore) -> Vec<ParticipantOutput> {
    std::iter::from_fn(|| c.poll_output()).collect()
}

fn sent(outs: &[ParticipantOutput]) -> Vec<&Message> {
    outs.iter().filter_map(|o| if let ParticipantOutput::Send(m) = o { Some(m) } else { None }).collect()
}

fn chunk(m: &Manifest, index: u32) -> BytesMut {
    let len = m.chunk_len(index).unwrap();
    let mut b = BytesMut::from(&stream::encode_chunk_header(ORIGINAL, index, len)[..]);
    b.extend_from_slice(&vec![7u8; len]);
    b
}

#[test]
fn it_asks_for_the_file_from_the_start_and_a_chunk_is_stored_saved_and_counted_once() {
    let t0 = crate::testing::t0();
    let m = manifest();
    let mut c = ParticipantCore::new(t0, m.clone(), config(true), &[]);
    let outs = drain(&mut c);
    assert!(matches!(sent(&outs)[0], Message::Request { space: 0, priority: Priority::Window, chunks } if chunks[0] == 0), "{outs:?}");
    c.handle_chunk(t0 + MS, chunk(&m, 0)).unwrap();
    let outs = drain(&mut c);
    assert!(outs.contains(&ParticipantOutput::Wake), "a blocked reader looks again");
    assert!(outs.iter().any(|o| matches!(o, ParticipantOutput::Save { index: 0, .. })));
    c.handle_chunk(t0 + 2 * MS, chunk(&m, 0)).unwrap();
    assert!(!drain(&mut c).iter().any(|o| matches!(o, ParticipantOutput::Save { .. })), "saved once");
    let snap = c.snapshot(t0, 0, EdgeFacts::default());
    assert_eq!((snap.received_chunks, snap.duplicate_chunks), (1, 1));
}

#[test]
fn chunks_nobody_asked_for_are_dropped_unstored_and_unsaved() {
    let t0 = crate::testing::t0();
    let m = crate::sim::media(600, 1000, 64 << 10);
    let mut c = ParticipantCore::new(t0, m.clone(), config(true), &[]);
    let asked: Vec<u32> = sent(&drain(&mut c))
        .iter()
        .flat_map(|msg| match msg {
            Message::Request { chunks, .. } => chunks.clone(),
            _ => vec![],
        })
        .collect();
    let last = m.chunks - 1;
    assert!(!asked.contains(&last), "the test needs a chunk not asked for yet: {asked:?}");
    // A hostile host sends the end of the file, again and again.
    for i in 0..5 {
        c.handle_chunk(t0 + (i + 1) * MS, chunk(&m, last)).unwrap();
    }
    let outs = drain(&mut c);
    assert!(!outs.iter().any(|o| matches!(o, ParticipantOutput::Save { .. } | ParticipantOutput::Wake)), "{outs:?}");
    let snap = c.snapshot(t0, 0, EdgeFacts::default());
    assert_eq!((snap.received_chunks, snap.buffered_bytes, snap.unasked_chunks), (0, 0, 5));
    // What was asked for is taken.
    c.handle_chunk(t0 + 10 * MS, chunk(&m, asked[0])).unwrap();
    assert_eq!(c.snapshot(t0, 0, EdgeFacts::default()).received_chunks, 1);
}

#[test]
fn a_chunk_that_does_not_fit_the_file_is_a_protocol_violation() {
    let t0 = crate::testing::t0();
    let m = manifest();
    let mut c = ParticipantCore::new(t0, m.clone(), config(false), &[]);
    let mut b = chunk(&m, 0);
    b.truncate(b.len() - 1);
    assert!(c.handle_chunk(t0, b).is_err());
    let mut late = BytesMut::from(&stream::encode_chunk_header(ORIGINAL, m.chunks, 1)[..]);
    late.extend_from_slice(&[0]);
    assert!(c.handle_chunk(t0, late).is_err(), "past the end");
    let unknown = BytesMut::from(&stream::encode_chunk_header(9, 0, 0)[..]);
    assert!(c.handle_chunk(t0, unknown).is_err(), "a rendition never announced");
    assert!(c.handle_control(t0, &stream::encode(&Message::Ping { client_us: 1 })).is_err(), "a participant's message");
}

#[test]
fn a_reader_that_waits_for_a_chunk_makes_it_critical() {
    let t0 = crate::testing::t0();
    let m = manifest();
    let mut c = ParticipantCore::new(t0, m.clone(), config(false), &[]);
    drop(drain(&mut c));
    let mut buf = [0u8; 16];
    let far = 10 * m.chunk_size as u64;
    assert_eq!(c.read_at(ORIGINAL, far, &mut buf), Read::Wait);
    c.handle_wake(t0 + MS);
    let outs = drain(&mut c);
    assert!(sent(&outs).iter().any(|m| matches!(m, Message::Request { priority: Priority::Critical, chunks, .. } if chunks == &[10])), "{outs:?}");
    assert_eq!(c.read_at(ORIGINAL, m.size, &mut buf), Read::End);
    assert_eq!(c.read_at(5, 0, &mut buf), Read::Gone);
}

#[test]
fn a_participant_that_keeps_the_original_says_so_and_stays_high() {
    let t0 = crate::testing::t0();
    let mut m = manifest();
    m.levels = vec!["high".into(), "low".into()];
    let cfg = ParticipantConfig { quality: "low".into(), keeps_original: keeps_original(true, true, false), ..config(false) };
    let mut c = ParticipantCore::new(t0, m, cfg, &[]);
    let outs = drain(&mut c);
    assert!(outs.contains(&ParticipantOutput::Event(Event::Error { message: "quality low: staying at high, mpv plays the original".into() })), "{outs:?}");
    c.handle_command(t0, Command::Quality("low".into()));
    assert!(matches!(&drain(&mut c)[..], [ParticipantOutput::Event(Event::Error { .. })]));
    assert_eq!(c.snapshot(t0, 0, EdgeFacts::default()).quality_choice, "high");
    assert_eq!(keeps_original(false, false, false), Some("it does not play"));
    assert_eq!(keeps_original(true, false, true), Some("--save keeps the original"));
    assert_eq!(keeps_original(true, false, false), None);
}

/// A core that knows the clock (host = local + 1 s) and the room: `playing` from `position_us`
/// at `t0` (state `seq`).
fn in_room(t0: Instant, playing: bool, position_us: u64, seq: u64) -> ParticipantCore {
    let mut c = ParticipantCore::new(t0, manifest(), config(false), &[]);
    c.handle_message(t0, Message::Pong { client_us: 0, host_us: 1_000_000 }).unwrap();
    let state = Message::State { playing, position_us, at_host_us: 1_000_000, rate_milli: 1000, seq, waiting: vec![] };
    c.handle_message(t0, state).unwrap();
    c
}

/// The chunks cancelled at the host.
fn cancelled(outs: &[ParticipantOutput]) -> Vec<u32> {
    sent(outs).into_iter().filter_map(|m| if let Message::Cancel { chunks, .. } = m { Some(chunks.clone()) } else { None }).flatten().collect()
}

#[test]
fn read_ahead_the_room_and_the_reader_have_passed_is_cancelled_at_the_host() {
    // The host keeps what was asked in its queue until it sends it: asked before the reader
    // went to where the room is, it would go out seconds later to nobody's use.
    let t0 = crate::testing::t0();
    let mut c = in_room(t0, true, 8_000_000, 1);
    let asked: Vec<u32> =
        sent(&drain(&mut c)).into_iter().filter_map(|m| if let Message::Request { chunks, .. } = m { Some(chunks.clone()) } else { None }).flatten().collect();
    assert!(asked.contains(&0) && asked.contains(&13), "{asked:?}");
    // The reader goes to where the room is (8 s: chunk 16 at 2 chunks a second).
    let chunk_len = manifest().chunk_size as u64;
    assert!(matches!(c.read_at(ORIGINAL, 16 * chunk_len, &mut [0u8; 1]), Read::Wait));
    c.handle_timeout(t0 + Duration::from_secs(1));
    // Over 2 s behind the room (9 s at 1 s: chunk 14) and over 2 s behind the reader (chunk
    // 12): chunks 0 to 11.
    let gone = cancelled(&drain(&mut c));
    assert_eq!(gone, asked.iter().copied().filter(|&ix| ix < 12).collect::<Vec<_>>());
    c.handle_timeout(t0 + Duration::from_secs(2));
    assert!(cancelled(&drain(&mut c)).is_empty(), "each once, and 12 and 13 the reader may still come back to");
    // In a room at its start, nothing is behind.
    let mut c = in_room(t0, true, 0, 1);
    drop(drain(&mut c));
    c.handle_timeout(t0 + Duration::from_secs(1));
    assert!(cancelled(&drain(&mut c)).is_empty());
}

#[test]
fn commands_go_to_the_host_and_a_relative_seek_counts_from_the_room() {
    let t0 = crate::testing::t0();
    let mut c = in_room(t0, false, 4_000_000, 3);
    drop(drain(&mut c));
    c.handle_command(t0, Command::SeekBy(-1.5));
    assert_eq!(sent(&drain(&mut c)), [&Message::Command(stream::Command::Seek(2_500_000))]);
    c.handle_command(t0, Command::Quit);
    assert_eq!(drain(&mut c), [ParticipantOutput::End(TurnEnd::Quit)]);
    c.handle_message(t0, Message::StreamEnd { reason: "bye".into() }).unwrap();
    assert!(drain(&mut c).contains(&ParticipantOutput::End(TurnEnd::StreamEnd("bye".into()))));
}

#[test]
fn pings_then_stats_each_second_with_a_report_and_what_was_asked_is_asked_again_on_a_new_link() {
    let t0 = crate::testing::t0();
    let mut c = ParticipantCore::new(t0, manifest(), config(false), &[]);
    let first = drain(&mut c);
    let asked = sent(&first).len();
    assert!(asked > 0);
    assert_eq!(c.poll_timeout(), Some((t0, Timer::Cadence)));
    c.handle_timeout(t0);
    let outs = drain(&mut c);
    assert!(matches!(sent(&outs)[0], Message::Ping { .. }));
    assert!(outs.contains(&ParticipantOutput::Stats));
    let next = c.poll_timeout().unwrap();
    assert_eq!(next, (t0 + 50 * MS, Timer::Cadence), "the quick pings");
    c.handle_timeout(t0 + Duration::from_secs(1));
    let outs = drain(&mut c);
    assert!(outs.contains(&ParticipantOutput::Stats));
    assert!(sent(&outs).iter().any(|m| matches!(m, Message::Report { .. })), "a report at least every 900 ms");
    // The link is new: the host knows nothing of the requests out on the old one.
    c.handle_link_lost(t0 + Duration::from_secs(2), "gone".into());
    drop(drain(&mut c));
    assert!(c.handle_connected_to(t0 + Duration::from_secs(2), &manifest()));
    let outs = drain(&mut c);
    assert!(outs.iter().any(|o| matches!(o, ParticipantOutput::Event(Event::Reconnected { .. }))));
    assert_eq!(sent(&outs).iter().filter(|m| matches!(m, Message::Request { .. })).count(), asked, "asked again");
}

#[test]
fn a_resumed_copy_is_said_and_never_asked_for() {
    let t0 = crate::testing::t0();
    let m = manifest();
    let saved: Vec<u32> = (0..m.chunks).collect();
    let mut c = ParticipantCore::new(t0, m.clone(), config(true), &saved);
    let outs = drain(&mut c);
    assert_eq!(outs[0], ParticipantOutput::Event(Event::Resumed { chunks: m.chunks, bytes: m.size }));
    assert!(sent(&outs).is_empty(), "{outs:?}");
    let mut buf = [0u8; 8];
    assert_eq!(c.read_at(ORIGINAL, 10, &mut buf), Read::Disk(8), "read from the copy");
}

#[test]
fn a_participant_that_does_not_decode_never_asks_to_be_woken_in_the_past() {
    // It once did after a reconnection (the level switch's re-ask was never made) and after
    // a seek of the room (a seek for a decoder it does not have): a busy loop.
    let t0 = crate::testing::t0();
    let mut c =
        ParticipantCore::new(t0, manifest(), ParticipantConfig { decodes: false, keeps_original: keeps_original(false, false, false), ..config(false) }, &[]);
    c.handle_message(t0, Message::Pong { client_us: 0, host_us: 1_000_000 }).unwrap();
    let far = Message::State { playing: true, position_us: 60_000_000, at_host_us: 1_000_000, rate_milli: 1000, seq: 2, waiting: vec![] };
    c.handle_message(t0, far).unwrap();
    c.handle_link_lost(t0 + MS, "gone".into());
    assert!(c.handle_connected_to(t0 + MS, &manifest()));
    let mut now = t0 + MS;
    for _ in 0..20 {
        c.handle_timeout(now);
        drop(drain(&mut c));
        let (next, why) = c.poll_timeout().unwrap();
        assert!(next > now, "woken again at once for {why:?}");
        now = next;
    }
    assert!(now > t0 + Duration::from_millis(300), "time moves on");
}

#[test]
fn a_lost_link_is_tried_again_at_once_then_with_growing_pauses_for_90_s_and_only_for_the_same_file() {
    let t0 = crate::testing::t0();
    let m = manifest();
    let mut c = ParticipantCore::new(t0, m.clone(), config(false), &[]);
    drop(drain(&mut c));
    c.handle_link_lost(t0, "the WebRTC connection failed".into());
    let reason = "the WebRTC connection failed".to_string();
    assert_eq!(drain(&mut c), [ParticipantOutput::Event(Event::Reconnecting { reason: reason.clone(), attempt: 1 }), ParticipantOutput::Connect]);
    assert_eq!(c.poll_timeout(), None, "nothing but the attempt meanwhile");
    let mut attempts = vec![];
    let mut now = t0;
    loop {
        c.handle_connect_failed(now + MS, "refused");
        let outs = drain(&mut c);
        if let [ParticipantOutput::GiveUp(msg)] = &outs[..] {
            assert!(msg.starts_with("connection to the host lost (the WebRTC connection failed) and not back within 90 s: refused"), "{msg}");
            break;
        }
        let (next, why) = c.poll_timeout().unwrap();
        assert_eq!(why, Timer::Reconnect);
        c.handle_timeout(next);
        let outs = drain(&mut c);
        assert!(outs.contains(&ParticipantOutput::Connect) && !sent(&outs).iter().any(|m| matches!(m, Message::Ping { .. })), "{outs:?}");
        attempts.push((next - t0).as_millis());
        now = next;
    }
    assert_eq!(&attempts[..5], [501, 1502, 3503, 7504, 12505], "1 ms to fail, then 0.5, 1, 2, 4, 5 s");
    assert!(*attempts.last().unwrap() <= 90_000);
    // Back in, to another file: the end.
    c.handle_link_lost(now, "gone".into());
    drop(drain(&mut c));
    let other = Manifest { name: "other.mp4".into(), ..m.clone() };
    assert!(!c.handle_connected_to(now, &other));
    assert_eq!(drain(&mut c), [ParticipantOutput::GiveUp("the host is streaming another file now (other.mp4); not resuming sim.mp4".into())]);
}

#[test]
fn chunk_hashes_are_taken_only_as_the_host_signed_them_for_this_room_and_run() {
    use crate::protocol::hashes::{ChunkHash, HashBatch};
    use crate::protocol::identity::HostSecret;
    let t0 = crate::testing::t0();
    let m = manifest();
    let hashes: Vec<ChunkHash> = (0..11).map(|i| [i; 32]).collect();
    let forged = [
        HashBatch::sign(&HostSecret::from_bytes([6; 32]).host_key(), ROOM, &m.stream, 0, 0, &hashes),
        HashBatch::sign(&host_key(), "another-room", &m.stream, 0, 0, &hashes),
        HashBatch::sign(&host_key(), ROOM, &[9; 16], 0, 0, &hashes),
    ];
    let key = std::sync::Arc::new(crate::protocol::guest::GuestSecret::from_bytes([1; 32]).key_for(ROOM));
    let relaying = ParticipantConfig { relay: Some(RelayConfig { key, limit_bps: 0, digest: crate::protocol::hashes::chunk_hash }), ..config(false) };
    for batch in forged {
        let mut c = ParticipantCore::new(t0, m.clone(), relaying.clone(), &[]);
        assert!(c.handle_message(t0, Message::HashBatch(batch.clone())).is_err());
        assert!(c.hashes().is_empty());
        // One that does not relay checks no chunk against them, and keeps none.
        let mut plain = ParticipantCore::new(t0, m.clone(), config(false), &[]);
        plain.handle_message(t0, Message::HashBatch(batch)).unwrap();
        assert!(plain.hashes().is_empty());
    }
    let mut c = ParticipantCore::new(t0, m.clone(), relaying, &[]);
    c.handle_message(t0, Message::HashBatch(HashBatch::sign(&host_key(), ROOM, &m.stream, 0, 0, &hashes))).unwrap();
    assert_eq!(c.hashes().hash(ORIGINAL, 3), Some([3; 32]));
}

/// What the decoder holds: `n` frames from `from_ms`, 40 ms apart.
fn frames(from_ms: i64, n: i64) -> PictureView {
    let queued = (0..n).map(|i| (from_ms + i * 40) * 1000).collect();
    PictureView { current: QueueView { queued, ..QueueView::default() }, incoming: None, frame_us: Some(40_000) }
}

/// The `buffering` of every report sent.
fn reported(outs: &[ParticipantOutput]) -> Vec<bool> {
    sent(outs).iter().filter_map(|m| if let Message::Report { buffering, .. } = m { Some(*buffering) } else { None }).collect()
}

#[test]
fn a_freeze_shorter_than_the_grace_is_never_reported_and_a_longer_one_is_once_the_grace_is_over() {
    let t0 = crate::testing::t0();
    let mut c = in_room(t0, true, 0, 1);
    c.handle_picture(t0, &frames(0, 5));
    drain(&mut c);
    // 400 ms in, the decoder has nothing past 160 ms: frozen (its clock holds there); 50 ms
    // later it has caught up.
    c.handle_picture(t0 + 400 * MS, &frames(80, 3));
    let mut outs = drain(&mut c);
    c.handle_timeout(t0 + 420 * MS);
    c.handle_picture(t0 + 450 * MS, &frames(400, 5));
    outs.extend(drain(&mut c));
    assert!(!reported(&outs).contains(&true), "a 50 ms freeze does not hold the room: {:?}", reported(&outs));
    // At 1 s it freezes again, for good: the host hears once the grace is over, not before.
    c.handle_picture(t0 + 1000 * MS, &frames(0, 0));
    let mut outs = drain(&mut c);
    c.handle_timeout(t0 + 1000 * MS + STALL_GRACE - MS);
    outs.extend(drain(&mut c));
    assert!(!reported(&outs).contains(&true), "{outs:?}");
    let due = c.poll_timeout().map(|(t, _)| t).expect("a wake-up");
    assert!(due <= t0 + 1000 * MS + STALL_GRACE, "woken when the grace ends, not later");
    c.handle_timeout(t0 + 1000 * MS + STALL_GRACE);
    assert_eq!(reported(&drain(&mut c)), [true]);
}

/// A room playing from 0, the picture smooth (woken every 10 ms) until `freeze_ms`, then
/// frozen for good: how long after the freeze the host first hears `buffering`.
fn freeze_told_after(freeze_ms: u32) -> Option<u32> {
    let t0 = crate::testing::t0();
    let mut c = in_room(t0, true, 0, 1);
    for ms in (0..freeze_ms + 1000).step_by(10) {
        let now = t0 + ms * MS;
        c.handle_timeout(now);
        let decoded = if ms < freeze_ms { frames(ms as i64 / 40 * 40, 5) } else { frames(0, 0) };
        c.handle_picture(now, &decoded);
        if reported(&drain(&mut c)).contains(&true) {
            return Some(ms - freeze_ms);
        }
    }
    None
}

#[test]
fn a_freeze_is_told_when_its_grace_ends_wherever_it_falls_between_periodic_reports() {
    // The frame showing goes stale 150 ms after the freeze, the grace is 150 ms more; a
    // freeze starting anywhere in the report cycle (reports come about every 900 ms) is told
    // then, not at the next periodic report.
    for freeze in (2000..3000).step_by(20) {
        let after = freeze_told_after(freeze);
        assert!(after.is_some_and(|d| d <= 150 + 40 + STALL_GRACE.as_millis() as u32 + 20), "a freeze at {freeze} ms told after {after:?} ms");
    }
}
