//! Rooms that span servers: which clients here are members of rooms held elsewhere, which
//! members of rooms here are clients elsewhere, and what each bus message does to them. No
//! Redis here: what is to be said on the bus goes out as [`Op`]s on two lanes (`lanes`), so
//! this is tested alone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::bus::{BusMsg, ServerId};
use super::lanes::Lanes;
pub use super::lanes::Op;
use crate::protocol::signal::{self, ErrorCode, PeerId, ServerMsg, SignalPayload, clean_name};
use crate::server::outbox::{Outbox, Outgoing};
use crate::server::rooms::Refusal;
use crate::server::{Rooms, ServerConfig};

/// A join answered: peer, host and host key (hex).
pub type JoinedAs = (PeerId, PeerId, String);

/// A join asked of another server, until it answers.
struct Pending {
    home: ServerId,
    outbox: Outbox,
    reply: oneshot::Sender<Result<JoinedAs, Refusal>>,
}

/// A client here in a room held on `home`.
struct Away {
    home: ServerId,
    outbox: Outbox,
}

#[derive(Default)]
struct Tables {
    next_ticket: u64,
    pending: HashMap<u64, Pending>,
    /// Clients here in rooms elsewhere, by room and the peer id the room's server gave.
    away: HashMap<(String, PeerId), Away>,
    /// Members of rooms here that are clients of another server, and which.
    guests: HashMap<(String, PeerId), ServerId>,
}

/// The cross-server memberships of one server.
pub struct Span {
    rooms: Arc<Mutex<Rooms>>,
    cfg: Arc<ServerConfig>,
    ops: Lanes,
    tables: Mutex<Tables>,
}

impl Span {
    /// A server's span over its `rooms`; what it has to say goes to `ops`.
    pub fn new(rooms: Arc<Mutex<Rooms>>, cfg: Arc<ServerConfig>, ops: Lanes) -> Span {
        Span { rooms, cfg, ops, tables: Mutex::new(Tables::default()) }
    }

    fn tables(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn rooms(&self) -> std::sync::MutexGuard<'_, Rooms> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues control message `msg` for `to`; false if its lane is full (the edge is that far
    /// behind).
    fn publish(&self, to: &str, msg: BusMsg) -> bool {
        let ok = self.ops.control.try_send(Op::Publish { to: to.to_string(), msg }).is_ok();
        if !ok {
            tracing::warn!(to, "cluster bus queue full: a message to another server is lost");
        }
        ok
    }

    /// Frees the room's name in the cluster once it closed here (`token`: its claim's).
    pub fn release(&self, room: &str, token: String) {
        if self.ops.control.try_send(Op::Release { room: room.to_string(), token }).is_err() {
            tracing::warn!(room, "cluster bus queue full: the room's name is freed by the next tidying of the directory");
        }
    }

    /// A client here asks to join `room`, held on `home`: the answer comes on the receiver.
    /// `who` as in [`Rooms::join`]; messages for the client will go to `outbox`.
    pub fn join(
        &self,
        home: &str,
        room: &str,
        join_token: &str,
        name: &str,
        who: (String, String, String),
        outbox: Outbox,
    ) -> (u64, oneshot::Receiver<Result<JoinedAs, Refusal>>) {
        let (reply, answer) = oneshot::channel();
        let ticket = {
            let mut t = self.tables();
            t.next_ticket += 1;
            let ticket = t.next_ticket;
            t.pending.insert(ticket, Pending { home: home.to_string(), outbox, reply });
            ticket
        };
        let (nonce, key, proof) = who;
        let msg = BusMsg::Join { ticket, room: room.into(), join_token: join_token.into(), name: name.into(), nonce, key, proof };
        if !self.publish(home, msg) {
            self.give_up(ticket);
        }
        (ticket, answer)
    }

    /// The client stopped waiting for its join (an answer after this is undone).
    pub fn give_up(&self, ticket: u64) {
        self.tables().pending.remove(&ticket);
    }

    /// A signal from a client here that is a member of `room` elsewhere.
    pub fn signal(&self, room: &str, from: PeerId, to: PeerId, payload: SignalPayload) -> Result<(), Refusal> {
        let home = self.tables().away.get(&(room.to_string(), from)).map(|a| a.home.clone());
        let Some(home) = home else { return Ok(()) };
        let op = Op::Publish { to: home, msg: BusMsg::Signal { room: room.into(), from, to, payload } };
        self.ops.data.try_send(op).map_err(|_| (ErrorCode::RateLimited, "the signaling cluster is behind: try again".into()))
    }

    /// A client here that was a member of `room` elsewhere has gone.
    pub fn leave(&self, room: &str, peer: PeerId) {
        let away = self.tables().away.remove(&(room.to_string(), peer));
        if let Some(a) = away {
            self.publish(&a.home, BusMsg::Leave { room: room.into(), peer });
        }
    }

    /// The servers this one has members with (to be watched for going away).
    pub fn partners(&self) -> Vec<ServerId> {
        let t = self.tables();
        let mut all: Vec<ServerId> =
            t.away.values().map(|a| a.home.clone()).chain(t.guests.values().cloned()).chain(t.pending.values().map(|p| p.home.clone())).collect();
        all.sort();
        all.dedup();
        all
    }

    /// What a message from server `from` does.
    pub fn on_bus(&self, from: &str, msg: BusMsg) {
        match msg {
            BusMsg::Join { ticket, room, join_token, name, nonce, key, proof } => self.guest_joins(from, ticket, room, &join_token, &name, (nonce, key, proof)),
            BusMsg::Joined { ticket, room, peer, host, host_key } => self.answered(from, ticket, &room, Ok((peer, host, host_key)), peer),
            BusMsg::Refused { ticket, code, message } => self.answered(from, ticket, "", Err((code, message)), 0),
            BusMsg::Signal { room, from: peer, to, payload } => self.guest_signals(from, room, peer, to, payload),
            BusMsg::Leave { room, peer } => self.guest_leaves(from, &room, peer),
            BusMsg::Deliver { room, peer, text, closing } => self.deliver(from, room, peer, text, closing),
        }
    }

    /// A client of `from` joins a room here: a member like any other, whose outbox is carried
    /// over the bus by a task of its own.
    fn guest_joins(&self, from: &str, ticket: u64, room: String, token: &str, name: &str, who: (String, String, String)) {
        let (outbox, reader) = crate::server::outbox::outbox(self.cfg.outbox_budget);
        // Under the rooms' lock until `Joined` is queued: nothing is said to the guest (the
        // room closing, the host's first signal) before it.
        let mut rooms = self.rooms();
        match rooms.join(&room, token, clean_name(name), who, outbox) {
            Ok((peer, host, host_key)) => {
                if !self.publish(from, BusMsg::Joined { ticket, room: room.clone(), peer, host, host_key: host_key.to_hex() }) {
                    rooms.leave(&room, peer);
                    return;
                }
                self.tables().guests.insert((room.clone(), peer), from.to_string());
                drop(rooms);
                tokio::spawn(carry(reader, self.ops.data.clone(), from.to_string(), room, peer));
            }
            Err((code, message)) => {
                drop(rooms);
                self.publish(from, BusMsg::Refused { ticket, code, message });
            }
        }
    }

    /// The answer to a join asked of `from`. A client that stopped waiting is taken out of
    /// the room again.
    fn answered(&self, from: &str, ticket: u64, room: &str, result: Result<JoinedAs, Refusal>, peer: PeerId) {
        let mut t = self.tables();
        let Some(p) = t.pending.remove(&ticket) else {
            drop(t);
            if result.is_ok() {
                self.publish(from, BusMsg::Leave { room: room.into(), peer });
            }
            return;
        };
        if p.home != from {
            tracing::warn!(from, home = p.home, "a join answered by a server it was not asked of; ignored");
            t.pending.insert(ticket, p);
            return;
        }
        let joined = result.is_ok();
        if let Ok((peer, host, host_key)) = &result {
            // Told here, not by the client's task once it wakes: the host's first signal may
            // be next on the bus, and must come after.
            p.outbox.push(&ServerMsg::Joined { room: room.to_string(), peer: *peer, host: *host, host_key: host_key.clone() });
            t.away.insert((room.to_string(), *peer), Away { home: p.home, outbox: p.outbox });
        }
        // Answered under the lock: a client giving up (`give_up`, then a last look at its
        // receiver) sees either the answer or no ticket, never neither.
        if p.reply.send(result).is_err() && joined {
            t.away.remove(&(room.to_string(), peer));
            drop(t);
            self.publish(from, BusMsg::Leave { room: room.into(), peer });
        }
    }

    /// Whether `peer` of `room` is a guest from `from` (a server speaks for its own clients only).
    fn is_guest(&self, from: &str, room: &str, peer: PeerId) -> bool {
        let ok = self.tables().guests.get(&(room.to_string(), peer)).is_some_and(|s| s == from);
        if !ok {
            tracing::debug!(from, room, peer, "a bus message for a member that is not that server's; ignored");
        }
        ok
    }

    fn guest_signals(&self, from: &str, room: String, peer: PeerId, to: PeerId, payload: SignalPayload) {
        if !self.is_guest(from, &room, peer) {
            // Not (or no longer) in the room here, as its server thinks: it is let go there.
            let gone = ServerMsg::Error { code: ErrorCode::RoomClosed, message: "you are no longer in this room".into() };
            self.publish(from, BusMsg::Deliver { room, peer, text: signal::encode(&gone), closing: true });
            return;
        }
        let relayed = self.rooms().relay(&room, peer, to, payload);
        if let Err((code, message)) = relayed {
            // Refused as a client here would be: the error, and its connection closed.
            let text = signal::encode(&ServerMsg::Error { code, message });
            self.publish(from, BusMsg::Deliver { room, peer, text, closing: true });
        }
    }

    fn guest_leaves(&self, from: &str, room: &str, peer: PeerId) {
        if !self.is_guest(from, room, peer) {
            return;
        }
        self.tables().guests.remove(&(room.to_string(), peer));
        self.rooms().leave(room, peer);
    }

    /// A message for a client here, from the server that holds its room.
    fn deliver(&self, from: &str, room: String, peer: PeerId, text: String, closing: bool) {
        let key = (room, peer);
        let mut t = self.tables();
        match t.away.get(&key) {
            Some(a) if a.home == from => {
                a.outbox.push_text(text, closing);
                if closing {
                    // The client is let go after this: the room's server forgets it too.
                    t.away.remove(&key);
                    drop(t);
                    self.publish(from, BusMsg::Leave { room: key.0, peer });
                }
            }
            Some(_) => tracing::warn!(from, "a delivery from a server that does not hold the member's room; ignored"),
            None => {
                drop(t);
                // Gone here: the room's server is to forget it too.
                if !closing {
                    self.publish(from, BusMsg::Leave { room: key.0, peer });
                }
            }
        }
    }

    /// Server `gone` is no longer on the bus: its clients are forgotten by the rooms here
    /// (their hosts are not told: those participants lost their signaling, not their WebRTC
    /// links), and the clients here in its rooms are told their room has gone.
    pub fn server_gone(&self, gone: &str) {
        let (guests, away, pending) = {
            let mut t = self.tables();
            let guests: Vec<_> = t.guests.iter().filter(|(_, s)| *s == gone).map(|(k, _)| k.clone()).collect();
            for k in &guests {
                t.guests.remove(k);
            }
            let away: Vec<_> = t.away.iter().filter(|(_, a)| a.home == gone).map(|(k, _)| k.clone()).collect();
            let away: Vec<((String, PeerId), Away)> = away.into_iter().filter_map(|k| t.away.remove(&k).map(|a| (k, a))).collect();
            let tickets: Vec<u64> = t.pending.iter().filter(|(_, p)| p.home == gone).map(|(k, _)| *k).collect();
            let pending: Vec<Pending> = tickets.iter().filter_map(|k| t.pending.remove(k)).collect();
            (guests, away, pending)
        };
        tracing::info!("a server of the cluster is gone: {gone}, with {} clients in rooms here; {} clients here were in its rooms", guests.len(), away.len());
        {
            let mut rooms = self.rooms();
            for (room, peer) in guests {
                rooms.forget(&room, peer);
            }
        }
        let closed =
            ServerMsg::Error { code: ErrorCode::RoomClosed, message: "the server holding this room is gone; the room is closed until its host is back".into() };
        for (key, a) in away {
            a.outbox.push(&closed);
            // (Should it be back after all, it forgets them too.)
            self.publish(gone, BusMsg::Leave { room: key.0, peer: key.1 });
        }
        for p in pending {
            let _ = p.reply.send(Err((ErrorCode::NoSuchRoom, "the server holding this room is gone".into())));
        }
    }
}

/// Carries what a room here says to a guest over the bus, in order, until the room lets it go.
async fn carry(mut reader: crate::server::outbox::OutboxReader, ops: tokio::sync::mpsc::Sender<Op>, to: ServerId, room: String, peer: PeerId) {
    while let Some(out) = reader.recv().await {
        let (text, closing) = match out {
            Outgoing::Message { text, closing } => (text, closing),
            Outgoing::Overflow => {
                let budget = "more bytes waiting for you than the server keeps: not reading";
                (signal::encode(&ServerMsg::Error { code: ErrorCode::TooSlow, message: budget.into() }), true)
            }
        };
        // Waits for room on the queue: a guest's outbox fills meanwhile, and is let go past it.
        if ops.send(Op::Publish { to: to.clone(), msg: BusMsg::Deliver { room: room.clone(), peer, text, closing } }).await.is_err() || closing {
            return;
        }
    }
}

#[cfg(test)]
#[path = "span_tests.rs"]
mod tests;
