//! The host's keys for people: Tab selects a row of the peers table, `k` sends the selected
//! participant away, `b` twice bans its key for the room's life, `a`/`d` let in or turn away
//! whoever has knocked longest. Every command names an id (two people may share a name).

use std::time::{Duration, Instant};

use super::host_model::{PeerState, RoomModel};
use super::keys::Action;
use super::view_state::ViewState;
use crate::core::api::Command;

/// How long a first `b` waits for the second.
const BAN_ARMED: Duration = Duration::from_secs(3);

/// What a moderation key does: the flash to show and the command (if any) for the engine.
/// `None` for keys that are not about people.
pub fn on_key(a: Action, view: &mut ViewState, model: &RoomModel, now: Instant) -> Option<Option<Command>> {
    let (flash, command) = match a {
        Action::LetIn | Action::TurnAway => door(a == Action::LetIn, model),
        Action::SelectNext => (select_next(view, model), None),
        Action::Kick => kick(view, model),
        Action::Ban => ban(view, model, now),
        _ => return None,
    };
    view.flash(flash, now);
    Some(command)
}

/// The selected row, if it is still in the table.
pub fn selected<'m>(view: &ViewState, model: &'m RoomModel) -> Option<&'m super::host_model::PeerRow> {
    view.selected.and_then(|id| model.peers.iter().find(|p| p.peer == id))
}

fn door(let_in: bool, model: &RoomModel) -> (String, Option<Command>) {
    match model.oldest_knocking() {
        Some((peer, name)) => {
            let id = peer.to_string();
            let flash = format!("{} {name}", if let_in { "letting in" } else { "turning away" });
            (flash, Some(if let_in { Command::Approve(id) } else { Command::Deny(id) }))
        }
        None => ("nobody is waiting to join".into(), None),
    }
}

fn select_next(view: &mut ViewState, model: &RoomModel) -> String {
    let at = selected(view, model).and_then(|row| model.peers.iter().position(|p| p.peer == row.peer));
    let next = match at {
        Some(i) => model.peers.get(i + 1),
        None => model.peers.first(),
    };
    view.selected = next.map(|p| p.peer);
    view.ban_armed = None;
    match next {
        Some(p) => format!("{} (key {}) selected: k sends them away, b b bans them", p.name, p.guest),
        None => "nobody selected".into(),
    }
}

fn kick(view: &ViewState, model: &RoomModel) -> (String, Option<Command>) {
    match selected(view, model) {
        None => ("select someone with tab first".into(), None),
        Some(p) if p.state == PeerState::Knocking => (format!("{} is waiting to join: d turns them away", p.name), None),
        Some(p) => (format!("sending {} away", p.name), Some(Command::Kick(p.peer.to_string()))),
    }
}

fn ban(view: &mut ViewState, model: &RoomModel, now: Instant) -> (String, Option<Command>) {
    let Some(p) = selected(view, model) else { return ("select someone with tab first".into(), None) };
    if view.ban_armed.is_some_and(|(id, until)| id == p.peer && now < until) {
        view.ban_armed = None;
        return (format!("banning {} for this room", p.name), Some(Command::Ban(p.peer.to_string())));
    }
    view.ban_armed = Some((p.peer, now + BAN_ARMED));
    (format!("b again bans {} (whatever name they use) for this room", p.name), None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::api::Event;

    fn room(t: Instant) -> RoomModel {
        let mut m = RoomModel::default();
        m.apply(&Event::PeerJoined { peer: 1, name: "ann".into(), guest: "Z3Vlc3Qga2V5".into() }, t);
        m.apply(&Event::PeerJoined { peer: 2, name: "bob".into(), guest: "Z3Vlc3Qga2V5".into() }, t);
        m.apply(&Event::Knock { peer: 3, name: "cy".into(), guest: "Y3kncyBrZXkx".into() }, t);
        m
    }

    #[test]
    fn tab_walks_the_table_and_k_sends_the_selected_one_away_by_id() {
        let t = Instant::now();
        let (m, mut v) = (room(t), ViewState::default());
        assert_eq!(on_key(Action::Kick, &mut v, &m, t), Some(None), "nobody selected");
        assert_eq!(on_key(Action::SelectNext, &mut v, &m, t), Some(None));
        assert_eq!(on_key(Action::SelectNext, &mut v, &m, t), Some(None));
        assert!(v.flash.as_deref().unwrap().starts_with("bob (key Z3Vlc3Qga2V5) selected"), "{:?}", v.flash);
        assert_eq!(on_key(Action::Kick, &mut v, &m, t), Some(Some(Command::Kick("2".into()))));
        on_key(Action::SelectNext, &mut v, &m, t);
        assert_eq!(on_key(Action::Kick, &mut v, &m, t), Some(None), "a knocker is turned away with d, not kicked");
        on_key(Action::SelectNext, &mut v, &m, t);
        assert_eq!(v.selected, None, "past the last row: nobody");
        assert_eq!(on_key(Action::TogglePlay, &mut v, &m, t), None, "not a key about people");
    }

    #[test]
    fn b_bans_only_when_pressed_twice_for_the_same_participant_in_time() {
        let t = Instant::now();
        let (m, mut v) = (room(t), ViewState::default());
        on_key(Action::SelectNext, &mut v, &m, t);
        assert_eq!(on_key(Action::Ban, &mut v, &m, t), Some(None));
        assert_eq!(on_key(Action::Ban, &mut v, &m, t + Duration::from_secs(1)), Some(Some(Command::Ban("1".into()))));
        // Too slow: armed again, not banned.
        on_key(Action::Ban, &mut v, &m, t);
        assert_eq!(on_key(Action::Ban, &mut v, &m, t + BAN_ARMED), Some(None));
        // Armed for ann, then bob selected: b for bob starts over.
        on_key(Action::SelectNext, &mut v, &m, t);
        assert_eq!(on_key(Action::Ban, &mut v, &m, t), Some(None));
        assert_eq!(on_key(Action::Ban, &mut v, &m, t), Some(Some(Command::Ban("2".into()))));
    }

    #[test]
    fn a_and_d_take_whoever_knocked_first_by_id() {
        let t = Instant::now();
        let (m, mut v) = (room(t), ViewState::default());
        assert_eq!(on_key(Action::LetIn, &mut v, &m, t), Some(Some(Command::Approve("3".into()))));
        assert_eq!(on_key(Action::TurnAway, &mut v, &m, t), Some(Some(Command::Deny("3".into()))));
        assert_eq!(on_key(Action::LetIn, &mut v, &RoomModel::default(), t), Some(None));
    }
}
