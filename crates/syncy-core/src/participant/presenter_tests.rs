use std::time::{Duration, Instant};

use super::*;

const MS: Duration = Duration::from_millis(1);

fn frames(from_ms: i64, n: i64) -> Vec<Micros> {
    (0..n).map(|i| (from_ms + i * 40) * 1000).collect()
}

fn view(queued: Vec<Micros>) -> PictureView {
    PictureView { current: QueueView { queued, ..QueueView::default() }, incoming: None, frame_us: Some(40_000) }
}

/// A presenter that knows the clock (host = local + 1 s) and the room: playing from 0 at
/// `t0`, or paused at 0.
fn ready(t0: Instant, playing: bool) -> Presenter {
    let mut p = Presenter::new(t0, true);
    p.handle_pong(t0, 0, 1_000_000);
    let state = MediaState { playing, position_us: 0, at_host_us: 1_000_000, rate_milli: 1000, seq: 1 };
    p.handle_state(t0, state, vec![]);
    p
}

fn pops(acts: &[PictureAction]) -> Vec<usize> {
    acts.iter().filter_map(|a| if let PictureAction::Pop(n) = a { Some(*n) } else { None }).collect()
}

#[test]
fn a_paused_room_just_behind_a_fresh_seek_still_shows_its_first_frame() {
    // The decoder went to 1189 ms and its first frame is at 1200 ms; the room then paused
    // at 999 ms. The frame must be shown, or nobody plays again.
    assert!(present_limit(999_000, 40_000, true, Some(1_189_000)) >= 1_200_000);
    // Otherwise, as before: a frame past the position waits for it.
    assert_eq!(present_limit(999_000, 40_000, true, None), 1_039_000);
    assert_eq!(present_limit(999_000, 40_000, false, Some(1_189_000)), 999_000);
    // A seek target behind the position does not hold back anything.
    assert_eq!(present_limit(999_000, 40_000, true, Some(500_000)), 1_039_000);
}

#[test]
fn nothing_shows_before_the_clock_is_known_and_a_state_waits_for_the_first_pong() {
    let t0 = crate::testing::t0();
    let mut p = Presenter::new(t0, true);
    p.handle_state(t0, MediaState { playing: true, position_us: 0, at_host_us: 0, rate_milli: 1000, seq: 1 }, vec![]);
    let (acts, ev) = p.present(t0, &view(frames(0, 8)));
    assert!(acts.is_empty() && ev.is_none() && p.poll_timeout(t0).is_none(), "{acts:?}");
    p.handle_pong(t0 + 10 * MS, 0, 5_000);
    let (acts, ev) = p.present(t0 + 10 * MS, &view(frames(0, 8)));
    // With no picture yet, a frame just past the position shows too (a seek lands there).
    assert_eq!(pops(&acts), [2]);
    assert_eq!(ev, Some(PresenterEvent::Showing));
}

#[test]
fn frames_show_at_their_time_and_the_core_wakes_for_the_next_one_only_while_playing() {
    let t0 = crate::testing::t0();
    let mut p = ready(t0, true);
    // The first picture: up to a frame past the position.
    let (acts, ev) = p.present(t0, &view(frames(0, 8)));
    assert_eq!((pops(&acts), ev), (vec![2], Some(PresenterEvent::Showing)));
    assert_eq!(p.poll_timeout(t0), Some(t0 + 80 * MS), "the next frame is due at 80 ms");
    // 170 ms on: the frames of 80, 120 and 160 ms are due; the last is the picture.
    let (acts, ev) = p.present(t0 + 170 * MS, &view(frames(80, 6)));
    assert_eq!((pops(&acts), ev), (vec![3], None));
    assert_eq!(p.frame_pts(), Some(160_000));
    let mut paused = ready(t0, false);
    let _ = paused.present(t0, &view(frames(0, 8)));
    assert_eq!(paused.poll_timeout(t0), None, "paused, only the decoder's news wakes it");
}

#[test]
fn a_picture_that_goes_stale_freezes_the_clock_and_shows_again_when_frames_come() {
    let t0 = crate::testing::t0();
    let mut p = ready(t0, true);
    let _ = p.present(t0, &view(frames(0, 1)));
    // No frame after 0 ms: it goes stale 150 ms on, and the core wakes for that.
    let stale = p.poll_timeout(t0).unwrap();
    assert!(stale <= t0 + 151 * MS, "{:?}", stale - t0);
    let (_, ev) = p.present(t0 + 200 * MS, &view(vec![]));
    assert_eq!(ev, Some(PresenterEvent::Buffering));
    assert!(p.buffering());
    let frozen = p.position(t0 + 200 * MS);
    assert_eq!(p.position(t0 + 900 * MS), frozen, "the clock waits for the picture");
    let (acts, ev) = p.present(t0 + 900 * MS, &view(frames(40, 8)));
    assert_eq!(ev, Some(PresenterEvent::Showing));
    assert!(!pops(&acts).is_empty());
}

#[test]
fn the_picture_moves_to_the_incoming_decoder_once_it_has_the_frame_for_the_position() {
    let t0 = crate::testing::t0();
    let mut p = ready(t0, true);
    let _ = p.present(t0, &view(frames(0, 8)));
    let mut v = view(frames(40, 7));
    v.incoming = Some(QueueView { queued: frames(400, 8), ..QueueView::default() });
    let (acts, _) = p.present(t0 + 40 * MS, &v);
    assert!(!acts.contains(&PictureAction::Switch), "its first frame is 360 ms away");
    v.incoming = Some(QueueView { queued: frames(40, 8), ..QueueView::default() });
    let (acts, _) = p.present(t0 + 40 * MS, &v);
    let at = acts.iter().position(|a| *a == PictureAction::Switch).expect("switched");
    assert!(matches!(acts[at + 1], PictureAction::Pop(_)), "the new queue's frame shows");
    v.incoming = Some(QueueView { error: Some("bad".into()), ..QueueView::default() });
    let (acts, _) = p.present(t0 + 80 * MS, &v);
    assert!(acts.contains(&PictureAction::DropIncoming("bad".into())));
}

#[test]
fn a_decoder_failure_is_said_once_and_never_holds_the_room() {
    let t0 = crate::testing::t0();
    let mut p = ready(t0, true);
    let mut v = view(vec![]);
    v.current.error = Some("no video".into());
    assert_eq!(p.present(t0, &v).1, Some(PresenterEvent::Failed("no video".into())));
    assert_eq!(p.present(t0 + MS, &v).1, None);
    assert!(!p.buffering(), "a failed player never holds the room");
}

#[test]
fn a_room_that_jumps_far_seeks_the_decoders_and_what_they_held_is_ignored() {
    let t0 = crate::testing::t0();
    let mut p = ready(t0, true);
    let _ = p.present(t0, &view(frames(0, 8)));
    let state = MediaState { playing: true, position_us: 60_000_000, at_host_us: 1_000_000, rate_milli: 1000, seq: 2 };
    p.handle_state(t0, state, vec![]);
    assert_eq!(p.poll_timeout(t0), Some(t0), "the seek goes out at once");
    let (acts, _) = p.present(t0, &view(frames(40, 7)));
    assert_eq!(acts[0], PictureAction::Seek(60_000_000));
    assert!(pops(&acts).is_empty(), "the old frames are gone");
    assert_eq!(p.take_seek(), Some(60_000_000));
}

#[test]
fn at_the_end_the_last_frame_stays_without_waking_for_a_stall() {
    let t0 = crate::testing::t0();
    let mut p = ready(t0, true);
    let mut end = view(frames(0, 2));
    end.current.eof = true;
    let _ = p.present(t0, &end);
    end.current.queued.clear();
    // Long past the last frame, the room still playing: it shows, and wakes only for the drift.
    let at = t0 + Duration::from_secs(2);
    let (_, ev) = p.present(at, &end);
    assert_eq!(ev, None);
    assert!(!p.buffering());
    assert_eq!(p.poll_timeout(at), Some(at + Duration::from_millis(100)));
}
