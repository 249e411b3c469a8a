//! The room's playback authority, run by the host: play, pause and seek for everyone, and the
//! wait-for-buffering policy. Participants' commands come here; the resulting media clock is
//! broadcast to every participant.
//!
//! The room is "wanted playing" when someone pressed play; it is actually playing only when,
//! in addition, nobody it waits for is buffering (unless the room does not wait).
//!
//! Nobody holds the room for ever (TRUST-REVIEW #19): a participant that keeps a playing room
//! waiting for [`HOLD_LIMIT`] is let go from the wait ([`RoomOutput::LetGo`]); the room plays
//! on, and waits for it again once it has caught up (not buffering, the latest seek confirmed).

use std::collections::{BTreeMap, VecDeque};

use super::clock::{MediaState, Micros};

/// How long one participant may keep a room that wants to play waiting, µs. A seek to an
/// unfetched point plays again within a second in the simulated room and a stall on a link
/// too slow for the file lasts seconds; thirty is far beyond an honest wait and short enough
/// that the others are not held hostage.
pub const HOLD_LIMIT: Micros = 30_000_000;

/// Who sent a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The host itself.
    Host,
    /// A participant.
    Peer(u64),
}

/// A playback command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomCommand {
    /// Play.
    Play,
    /// Pause.
    Pause,
    /// Seek to a media position.
    SeekTo(Micros),
    /// Seek relative to the current position.
    SeekBy(Micros),
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// `--host-only-control`.
    #[error("only the host controls playback in this room")]
    HostOnly,
}

/// Room policy.
#[derive(Debug, Clone, Copy)]
pub struct RoomConfig {
    /// Pause the room while anyone is buffering (`--no-wait` turns it off).
    pub wait_for_buffering: bool,
    /// Only the host may play, pause and seek.
    pub host_only_control: bool,
    /// Media duration, when known: playing stops there.
    pub duration_us: Option<Micros>,
}

/// What the host must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomOutput {
    /// Broadcast this media clock, with who the room waits for.
    State {
        /// The clock.
        state: MediaState,
        /// Peers being waited for.
        waiting: Vec<u64>,
    },
    /// `peer` kept the room waiting [`HOLD_LIMIT`]: the room no longer waits for it until it
    /// has caught up.
    LetGo {
        /// Who.
        peer: u64,
    },
}

#[derive(Debug, Clone, Copy, Default)]
struct PeerSync {
    /// The peer says it is buffering.
    buffering: bool,
    /// It must confirm a state at least this new before it counts as ready.
    pending_seq: u64,
    /// Latest state seq it has confirmed.
    seen_seq: u64,
    /// Since when it has kept a room that wants to play waiting.
    holding_since: Option<Micros>,
    /// It held the room too long, or joined while others watched: not waited for until it
    /// has caught up.
    let_go: bool,
    /// It has shown a picture (reported not buffering) since it joined.
    shown: bool,
}

impl PeerSync {
    /// It is not ready: buffering, or it has not confirmed the latest seek.
    fn waiting(&self) -> bool {
        self.buffering || self.seen_seq < self.pending_seq
    }

    /// The room waits for it (under the wait policy).
    fn blocking(&self) -> bool {
        self.waiting() && !self.let_go
    }
}

/// The playback authority.
#[derive(Debug, Clone)]
pub struct Room {
    cfg: RoomConfig,
    wanted_playing: bool,
    state: MediaState,
    peers: BTreeMap<u64, PeerSync>,
    outputs: VecDeque<RoomOutput>,
    last_waiting: Vec<u64>,
}

impl Room {
    /// A paused room at 0:00; `autoplay` wants it playing from the start.
    pub fn new(now: Micros, cfg: RoomConfig, autoplay: bool) -> Self {
        let mut room =
            Room { cfg, wanted_playing: autoplay, state: MediaState::start(now), peers: BTreeMap::new(), outputs: VecDeque::new(), last_waiting: vec![] };
        room.state.playing = autoplay;
        room
    }

    /// The current clock.
    pub fn state(&self) -> MediaState {
        self.state
    }

    /// Media position now.
    pub fn position(&self, now: Micros) -> Micros {
        self.state.position_at(now)
    }

    /// Whether someone wants the room playing (it may still be waiting).
    pub fn wanted_playing(&self) -> bool {
        self.wanted_playing
    }

    /// Peers not ready (buffering, or behind the latest seek). Under the wait policy the room
    /// waits for them, except those let go (named still, as a room that does not wait names
    /// who buffers).
    pub fn waiting(&self) -> Vec<u64> {
        self.peers.iter().filter(|(_, p)| p.waiting()).map(|(id, _)| *id).collect()
    }

    /// Peers the room is held for now: it wants to play, waits under its policy, and they
    /// are not ready (and not let go).
    pub fn holding(&self) -> Vec<u64> {
        if !(self.cfg.wait_for_buffering && self.wanted_playing) {
            return vec![];
        }
        self.peers.iter().filter(|(_, p)| p.blocking()).map(|(id, _)| *id).collect()
    }

    /// A participant connected. It is not waited for until it says it is buffering; and one
    /// that joins while others watch (someone has been ready while the room wanted to play)
    /// is not waited for until it has caught up (it joins where the room is; a hundred joining
    /// over a minute would otherwise hold everyone a hundred times). Those there before
    /// anyone watched start together, as do all in a room gathering, paused until play.
    pub fn add_peer(&mut self, peer: u64) {
        self.add_peer_as(peer, false);
    }

    /// The same, for one that is to be waited for like anyone (`returning`): one that was in
    /// the room before (a link that dropped and came back), or any newcomer where the host
    /// wants a late joiner to start in step (a room where nobody relays).
    pub fn add_peer_as(&mut self, peer: u64, returning: bool) {
        let others_watch = !returning && self.peers.values().any(|p| p.shown);
        // Taken as buffering until it says otherwise (it has no picture yet): one not buffering
        // counts as caught up, and would be waited for from its first report on.
        self.peers.entry(peer).or_insert(PeerSync { let_go: others_watch, buffering: others_watch, ..PeerSync::default() });
    }

    /// A participant left: it can no longer hold the room.
    pub fn remove_peer(&mut self, now: Micros, peer: u64) {
        if self.peers.remove(&peer).is_some() {
            self.apply(now, false);
        }
    }

    /// A participant's report: whether it is buffering and the newest state it has applied.
    pub fn handle_report(&mut self, now: Micros, peer: u64, buffering: bool, seen_seq: u64) {
        let Some(p) = self.peers.get_mut(&peer) else { return };
        p.buffering = buffering;
        // Shown while the room wants to play (it may be waiting for others): a first frame in
        // a room still gathering, paused until someone presses play, is not watching.
        p.shown |= !buffering && self.wanted_playing;
        p.seen_seq = p.seen_seq.max(seen_seq);
        self.apply(now, false);
    }

    /// A play/pause/seek request.
    pub fn handle_command(&mut self, now: Micros, origin: Origin, cmd: RoomCommand) -> Result<(), Refusal> {
        if self.cfg.host_only_control && origin != Origin::Host {
            return Err(Refusal::HostOnly);
        }
        match cmd {
            RoomCommand::Play => {
                self.wanted_playing = true;
                // Pressing play at the end starts over.
                if self.cfg.duration_us.is_some_and(|d| self.position(now) >= d) {
                    return self.seek(now, 0);
                }
                self.apply(now, false);
            }
            RoomCommand::Pause => {
                self.wanted_playing = false;
                self.apply(now, false);
            }
            RoomCommand::SeekTo(t) => return self.seek(now, t),
            RoomCommand::SeekBy(d) => {
                let t = self.position(now).saturating_add(d);
                return self.seek(now, t);
            }
        }
        Ok(())
    }

    fn seek(&mut self, now: Micros, to: Micros) -> Result<(), Refusal> {
        let mut to = to.max(0);
        if let Some(d) = self.cfg.duration_us {
            to = to.min(d);
        }
        self.state.position_us = to;
        self.state.at_host_us = now;
        // Everyone has to fetch and decode the new position before the room goes on.
        let next_seq = self.state.seq + 1;
        for p in self.peers.values_mut() {
            p.pending_seq = next_seq;
        }
        self.apply(now, true);
        Ok(())
    }

    /// When something is due: the end of the media, or letting go of a participant holding
    /// the room.
    pub fn poll_timeout(&self) -> Option<Micros> {
        [self.end_at(), self.let_go_at()].into_iter().flatten().min()
    }

    /// When a participant holding the room is to be let go.
    pub fn let_go_at(&self) -> Option<Micros> {
        self.peers.values().filter_map(|p| p.holding_since).min().map(|t| t.saturating_add(HOLD_LIMIT))
    }

    /// When the clock reaches the end of the media.
    pub fn end_at(&self) -> Option<Micros> {
        let d = self.cfg.duration_us?;
        if !self.state.playing || self.state.rate_milli == 0 {
            return None;
        }
        let left = d - self.state.position_us;
        Some(self.state.at_host_us + (left.max(0) * 1000 / self.state.rate_milli as i64))
    }

    /// Lets go of whoever has held the room too long; stops the clock at the end of the media
    /// once it gets there.
    pub fn handle_timeout(&mut self, now: Micros) {
        self.let_go_of_holders(now);
        if let Some(d) = self.cfg.duration_us
            && self.state.playing
            && self.position(now) >= d
        {
            self.wanted_playing = false;
            self.state.position_us = d;
            self.state.at_host_us = now;
            self.state.playing = false;
            self.state.seq += 1;
            self.emit();
        }
    }

    fn let_go_of_holders(&mut self, now: Micros) {
        let mut any = false;
        for (&peer, p) in self.peers.iter_mut() {
            if p.holding_since.is_some_and(|t| t.saturating_add(HOLD_LIMIT) <= now) {
                (p.let_go, p.holding_since) = (true, None);
                self.outputs.push_back(RoomOutput::LetGo { peer });
                any = true;
            }
        }
        if any {
            self.apply(now, false);
        }
    }

    /// Notes who holds the room from when, and forgives whoever has caught up.
    fn track_holds(&mut self, now: Micros) {
        let room_waits = self.cfg.wait_for_buffering && self.wanted_playing;
        for p in self.peers.values_mut() {
            if !p.waiting() {
                p.let_go = false;
            }
            p.holding_since = if room_waits && p.blocking() { Some(p.holding_since.unwrap_or(now)) } else { None };
        }
    }

    /// Recomputes whether the room plays; publishes a new state if anything changed.
    fn apply(&mut self, now: Micros, force: bool) {
        self.track_holds(now);
        let waiting = self.waiting();
        let blocked = self.cfg.wait_for_buffering && self.peers.values().any(PeerSync::blocking);
        let playing = self.wanted_playing && !blocked;
        if playing {
            // Everyone ready while the room plays is watching, whether or not it reports
            // again before the next newcomer comes (who then joins where the room is, rather
            // than holding it: a room that a hundred join over a minute would otherwise play
            // only in the moments between one newcomer's first picture and the next's join).
            self.peers.values_mut().filter(|p| !p.waiting()).for_each(|p| p.shown = true);
        }
        let changed = playing != self.state.playing || force;
        if changed {
            self.state.position_us = self.state.position_at(now);
            self.state.at_host_us = now;
            self.state.playing = playing;
            self.state.seq += 1;
            self.emit();
        } else if waiting != self.last_waiting {
            // Same clock, but who we wait for changed: say so (same seq, so followers ignore
            // it as a clock change).
            self.emit();
        }
    }

    fn emit(&mut self) {
        let waiting = self.waiting();
        self.last_waiting = waiting.clone();
        self.outputs.push_back(RoomOutput::State { state: self.state, waiting });
    }

    /// Next thing to broadcast.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<RoomOutput> {
        self.outputs.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Micros = 1_000_000;

    fn cfg() -> RoomConfig {
        RoomConfig { wait_for_buffering: true, host_only_control: false, duration_us: Some(600 * S) }
    }

    fn drain(room: &mut Room) -> Vec<RoomOutput> {
        std::iter::from_fn(|| room.poll_output()).collect()
    }

    fn last_state(room: &mut Room) -> (MediaState, Vec<u64>) {
        match drain(room).pop() {
            Some(RoomOutput::State { state, waiting }) => (state, waiting),
            other => panic!("no state: {other:?}"),
        }
    }

    /// Runs the room's timers until `until` (as the host would); what came out.
    fn run_until(room: &mut Room, until: Micros) -> Vec<(Micros, RoomOutput)> {
        let mut out = vec![];
        while let Some(t) = room.poll_timeout().filter(|t| *t <= until) {
            room.handle_timeout(t);
            out.extend(drain(room).into_iter().map(|o| (t, o)));
        }
        out
    }

    #[test]
    fn a_participant_buffering_for_ever_is_let_go_after_30_s_and_waited_for_again_once_caught_up() {
        // TRUST-REVIEW #19: a participant reporting buffering for ever paused everyone.
        let mut room = Room::new(0, RoomConfig { duration_us: Some(3600 * S), ..cfg() }, true);
        room.add_peer(1);
        room.add_peer(2);
        drain(&mut room);
        room.handle_report(10 * S, 2, true, 0);
        assert!(!last_state(&mut room).0.playing);
        assert_eq!(room.let_go_at(), Some(10 * S + HOLD_LIMIT));
        let out = run_until(&mut room, 100 * S);
        assert_eq!(out.first(), Some(&(40 * S, RoomOutput::LetGo { peer: 2 })), "{out:?}");
        let (at, RoomOutput::State { state, waiting }) = &out[1] else { panic!("{out:?}") };
        assert!(*at == 40 * S && state.playing && state.position_us == 10 * S, "plays on from where it held: {state:?}");
        assert_eq!(waiting, &[2], "still named");
        // Saying buffering again and again does not hold it again.
        room.handle_report(50 * S, 2, true, state.seq);
        assert!(room.state().playing && room.let_go_at().is_none());
        // Caught up: the next stall is waited for (and let go of again after 30 s).
        room.handle_report(60 * S, 2, false, state.seq);
        room.handle_report(70 * S, 2, true, state.seq);
        assert!(!room.state().playing, "waited for again");
        assert_eq!(room.let_go_at(), Some(100 * S));
        // A pause stops the count: nobody holds a room that does not want to play.
        room.handle_command(80 * S, Origin::Host, RoomCommand::Pause).unwrap();
        assert_eq!(room.let_go_at(), None);
        room.handle_command(90 * S, Origin::Host, RoomCommand::Play).unwrap();
        assert_eq!(room.let_go_at(), Some(120 * S));
    }

    #[test]
    fn a_newcomer_to_a_room_others_watch_holds_it_only_once_caught_up_and_a_gathering_room_waits_for_all() {
        // Playing, ann watching: bob joins, buffers, and the room plays on.
        let mut room = Room::new(0, cfg(), true);
        room.add_peer(1);
        room.handle_report(S, 1, false, 0);
        room.add_peer(2);
        room.handle_report(2 * S, 2, true, 0);
        assert!(room.state().playing, "a newcomer does not stop those watching");
        // Caught up, it is waited for like anyone.
        room.handle_report(3 * S, 2, false, 0);
        room.handle_report(4 * S, 2, true, 0);
        assert!(!room.state().playing);
        // A paused room gathering: a first frame is not watching; whoever joins before play
        // still holds it.
        let mut room = Room::new(0, cfg(), false);
        room.add_peer(1);
        room.handle_report(S, 1, false, 0);
        room.add_peer(2);
        room.handle_report(2 * S, 2, true, 0);
        let _ = room.handle_command(3 * S, Origin::Host, RoomCommand::Play);
        assert!(!room.state().playing, "it waits for bob");
        room.handle_report(4 * S, 2, false, 0);
        assert!(room.state().playing);
        // Bob's link drops and comes back (a new id): waited for, as before the drop.
        room.remove_peer(5 * S, 2);
        room.add_peer_as(3, true);
        room.handle_report(6 * S, 3, true, 0);
        assert!(!room.state().playing, "one back from a dropped link is no newcomer");
    }

    #[test]
    fn those_ready_when_the_room_starts_playing_are_watching_without_reporting_again() {
        // An autoplaying room: ann's first picture starts it; bob joins a moment later, before
        // ann reports again, and buffers: the room plays on.
        let mut room = Room::new(0, cfg(), true);
        room.add_peer(1);
        room.handle_report(S, 1, true, 0);
        assert!(!room.state().playing, "it waits for ann's first picture");
        room.handle_report(2 * S, 1, false, 0);
        assert!(room.state().playing);
        room.add_peer(2);
        room.handle_report(2 * S + S / 10, 2, true, 0);
        assert!(room.state().playing, "bob joined a room ann watches");
        // Two there before anyone watched, one of them ready: the room waits for the other.
        let mut room = Room::new(0, cfg(), true);
        room.add_peer(1);
        room.add_peer(2);
        room.handle_report(S, 1, false, 0);
        room.handle_report(S, 2, true, 0);
        assert!(!room.state().playing, "both came before anyone watched");
    }

    #[test]
    fn a_participant_never_confirming_a_seek_is_let_go_until_it_does() {
        let mut room = Room::new(0, cfg(), true);
        room.add_peer(1);
        room.add_peer(2);
        room.handle_command(S, Origin::Peer(1), RoomCommand::SeekTo(100 * S)).unwrap();
        let seq = room.state().seq;
        room.handle_report(S, 1, false, seq);
        // 2 says it is not buffering but never confirms the seek.
        room.handle_report(2 * S, 2, false, seq - 1);
        assert!(!room.state().playing);
        let out = run_until(&mut room, 40 * S);
        assert!(out.iter().any(|(t, o)| *t == 31 * S && *o == RoomOutput::LetGo { peer: 2 }), "{out:?}");
        assert!(room.state().playing);
        // Not buffering, still behind: still let go (a wait for it would end in 30 s again).
        room.handle_report(35 * S, 2, false, seq - 1);
        assert!(room.state().playing);
        room.handle_report(36 * S, 2, false, room.state().seq);
        room.handle_command(37 * S, Origin::Host, RoomCommand::SeekTo(0)).unwrap();
        assert_eq!(room.waiting(), vec![1, 2], "both waited for after the next seek");
    }

    #[test]
    fn starts_paused_unless_autoplay() {
        assert!(!Room::new(0, cfg(), false).state().playing);
        assert!(Room::new(0, cfg(), true).state().playing);
    }

    #[test]
    fn play_pause_seek_from_anyone() {
        let mut room = Room::new(0, cfg(), false);
        room.add_peer(1);
        room.handle_command(S, Origin::Peer(1), RoomCommand::Play).unwrap();
        let (s, _) = last_state(&mut room);
        assert!(s.playing);
        assert_eq!(room.position(11 * S), 10 * S);
        room.handle_command(11 * S, Origin::Host, RoomCommand::Pause).unwrap();
        let (s, _) = last_state(&mut room);
        assert!(!s.playing);
        assert_eq!(s.position_us, 10 * S);
        room.handle_command(12 * S, Origin::Peer(1), RoomCommand::SeekBy(-4 * S)).unwrap();
        assert_eq!(last_state(&mut room).0.position_us, 6 * S);
        room.handle_command(12 * S, Origin::Host, RoomCommand::SeekTo(9_999 * S)).unwrap();
        assert_eq!(last_state(&mut room).0.position_us, 600 * S, "clamped to the duration");
        room.handle_command(12 * S, Origin::Host, RoomCommand::SeekBy(-9_999 * S)).unwrap();
        assert_eq!(last_state(&mut room).0.position_us, 0);
    }

    #[test]
    fn host_only_control_refuses_participants() {
        let mut room = Room::new(0, RoomConfig { host_only_control: true, ..cfg() }, false);
        room.add_peer(1);
        assert_eq!(room.handle_command(S, Origin::Peer(1), RoomCommand::Play), Err(Refusal::HostOnly));
        assert!(drain(&mut room).is_empty());
        room.handle_command(S, Origin::Host, RoomCommand::Play).unwrap();
        assert!(room.state().playing);
    }

    #[test]
    fn waits_for_a_buffering_peer_then_resumes() {
        let mut room = Room::new(0, cfg(), true);
        room.add_peer(1);
        room.add_peer(2);
        drain(&mut room);
        room.handle_report(5 * S, 2, true, 0);
        let (s, waiting) = last_state(&mut room);
        assert!(!s.playing);
        assert_eq!(s.position_us, 5 * S);
        assert_eq!(waiting, vec![2]);
        assert!(room.wanted_playing());
        // Time passes while waiting: the position holds.
        assert_eq!(room.position(9 * S), 5 * S);
        room.handle_report(9 * S, 2, false, s.seq);
        let (s, waiting) = last_state(&mut room);
        assert!(s.playing);
        assert!(waiting.is_empty());
        assert_eq!(room.position(10 * S), 6 * S);
    }

    #[test]
    fn a_leaving_peer_does_not_hold_the_room() {
        let mut room = Room::new(0, cfg(), true);
        room.add_peer(1);
        room.handle_report(S, 1, true, 0);
        assert!(!room.state().playing);
        room.remove_peer(2 * S, 1);
        assert!(room.state().playing);
    }

    #[test]
    fn no_wait_keeps_playing_but_says_who() {
        let mut room = Room::new(0, RoomConfig { wait_for_buffering: false, ..cfg() }, true);
        room.add_peer(1);
        drain(&mut room);
        room.handle_report(S, 1, true, 0);
        let (s, waiting) = last_state(&mut room);
        assert!(s.playing);
        assert_eq!(waiting, vec![1]);
    }

    #[test]
    fn a_seek_waits_until_everyone_confirms_it() {
        let mut room = Room::new(0, cfg(), true);
        room.add_peer(1);
        room.add_peer(2);
        drain(&mut room);
        room.handle_command(S, Origin::Peer(1), RoomCommand::SeekTo(300 * S)).unwrap();
        let (s, waiting) = last_state(&mut room);
        assert!(!s.playing);
        assert_eq!(s.position_us, 300 * S);
        assert_eq!(waiting, vec![1, 2]);
        // A report about an older state does not count.
        room.handle_report(S, 1, false, s.seq - 1);
        assert!(!room.state().playing);
        room.handle_report(S, 1, false, s.seq);
        assert!(!room.state().playing);
        room.handle_report(2 * S, 2, false, s.seq);
        let (s, waiting) = last_state(&mut room);
        assert!(s.playing && waiting.is_empty());
        assert_eq!(room.position(3 * S), 301 * S);
    }

    #[test]
    fn stops_at_the_end_and_play_starts_over() {
        let mut room = Room::new(0, RoomConfig { duration_us: Some(10 * S), ..cfg() }, true);
        assert_eq!(room.poll_timeout(), Some(10 * S));
        room.handle_timeout(9 * S);
        assert!(room.state().playing);
        room.handle_timeout(10 * S + 5);
        assert!(!room.state().playing);
        assert_eq!(room.position(20 * S), 10 * S);
        assert_eq!(room.poll_timeout(), None);
        room.handle_command(21 * S, Origin::Host, RoomCommand::Play).unwrap();
        assert!(room.state().playing);
        assert_eq!(room.position(22 * S), S);
    }
}
