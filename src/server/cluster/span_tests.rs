//! Two servers' spans, with the bus in between played by the test.

use std::time::Duration;

use super::*;
use crate::protocol::identity::HostSecret;
use crate::server::cluster::lanes::{DATA_QUEUE, LanesRx, lanes};
use crate::server::outbox::{OutboxReader, outbox};
use crate::server::slots::Source;

const NONCE: &str = "00112233445566778899aabbccddeeff";
const TOKEN: &str = "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";

struct Server {
    span: Span,
    ops: LanesRx,
    rooms: Arc<Mutex<Rooms>>,
}

fn server() -> Server {
    let cfg = ServerConfig::default();
    let rooms = Arc::new(Mutex::new(Rooms::new(cfg.clone())));
    let (tx, ops) = lanes();
    Server { span: Span::new(rooms.clone(), Arc::new(cfg), tx), ops, rooms }
}

impl Server {
    /// The next bus message this server sends (waiting a moment for a carrying task).
    async fn said(&mut self) -> (ServerId, BusMsg) {
        match tokio::time::timeout(Duration::from_secs(5), self.ops.recv()).await {
            Ok(Some(Op::Publish { to, msg })) => (to, msg),
            other => panic!("expected a bus message, got {other:?}"),
        }
    }

    fn quiet(&mut self) {
        assert!(self.ops.try_recv().is_none(), "nothing more on the bus");
    }

    /// Opens a room here: its id, host peer and the host's outbox.
    fn open(&self) -> (String, PeerId, OutboxReader) {
        let key = HostSecret::random().host_key().public();
        let (o, r) = outbox(1 << 20);
        let (room, host) = self.rooms.lock().unwrap().create(key.fingerprint(), TOKEN.into(), "h".into(), key, Source::of([10, 0, 0, 1].into()), o).unwrap();
        (room, host, r)
    }
}

fn who() -> (String, String, String) {
    (NONCE.into(), crate::protocol::guest::GuestSecret::random().key_for("r").public().to_hex(), String::new())
}

fn ice() -> SignalPayload {
    SignalPayload::Ice { candidate: "c".into(), sdp_mid: None, sdp_mline_index: None }
}

/// Server b's client joins server a's room: its id there and its outbox on b.
async fn join_across(a: &mut Server, b: &mut Server, room: &str) -> (PeerId, OutboxReader) {
    let (o, r) = outbox(1 << 20);
    let (_, answer) = b.span.join("a", room, TOKEN, "ann", who(), o);
    let (to, msg) = b.said().await;
    assert_eq!(to, "a");
    a.span.on_bus("b", msg);
    let (to, msg) = a.said().await;
    assert_eq!(to, "b");
    b.span.on_bus("a", msg);
    let (peer, ..) = answer.await.unwrap().unwrap();
    let mut r = r;
    assert!(matches!(r.try_recv_msg(), Some(ServerMsg::Joined { peer: p, .. }) if p == peer), "told in order, before anything else");
    (peer, r)
}

#[tokio::test]
async fn a_client_of_one_server_joins_and_signals_in_a_room_of_another() {
    let (mut a, mut b) = (server(), server());
    let (room, host, mut host_rx) = a.open();
    let (peer, mut client_rx) = join_across(&mut a, &mut b, &room).await;
    assert!(matches!(host_rx.try_recv_msg(), Some(ServerMsg::PeerJoined { peer: p, name, .. }) if p == peer && name == "ann"));
    assert_eq!(b.span.partners(), ["a"]);
    assert_eq!(a.span.partners(), ["b"]);

    // The host to the client: through a's room, carried to b, into the client's outbox.
    assert!(a.rooms.lock().unwrap().relay(&room, host, peer, ice()).unwrap());
    let (to, msg) = a.said().await;
    assert_eq!(to, "b");
    b.span.on_bus("a", msg);
    assert!(matches!(client_rx.try_recv_msg(), Some(ServerMsg::Signal { from, .. }) if from == host));

    // The client to the host.
    b.span.signal(&room, peer, host, ice()).unwrap();
    let (_, msg) = b.said().await;
    a.span.on_bus("b", msg);
    assert!(matches!(host_rx.try_recv_msg(), Some(ServerMsg::Signal { from, .. }) if from == peer));

    // The client leaves: the host is told.
    b.span.leave(&room, peer);
    let (_, msg) = b.said().await;
    a.span.on_bus("b", msg);
    assert!(matches!(host_rx.try_recv_msg(), Some(ServerMsg::PeerLeft { peer: p, .. }) if p == peer));
    assert!(a.span.partners().is_empty() && b.span.partners().is_empty());
}

#[tokio::test]
async fn a_server_speaks_only_for_its_own_clients() {
    let (mut a, mut b) = (server(), server());
    let (room, host, mut host_rx) = a.open();
    let (peer, mut client_rx) = join_across(&mut a, &mut b, &room).await;
    let _ = host_rx.try_recv_msg();
    // Server c signals and leaves for b's client: the room hears nothing (c is told that
    // client of its, as it claims, is not in the room).
    a.span.on_bus("c", BusMsg::Signal { room: room.clone(), from: peer, to: host, payload: ice() });
    a.span.on_bus("c", BusMsg::Leave { room: room.clone(), peer });
    assert!(host_rx.try_recv().is_none());
    let (to, msg) = a.said().await;
    assert!(to == "c" && matches!(msg, BusMsg::Deliver { closing: true, .. }), "{to} {msg:?}");
    a.quiet();
    // Nor can c deliver to b's client as if it held the room.
    let text = signal::encode(&ServerMsg::Signal { from: host, payload: ice() });
    b.span.on_bus("c", BusMsg::Deliver { room: room.clone(), peer, text, closing: false });
    assert!(client_rx.try_recv().is_none());
    // Nor answer a join that was asked of a.
    let (o, _r) = outbox(1 << 20);
    let (ticket, mut answer) = b.span.join("a", &room, TOKEN, "bob", who(), o);
    let _ = b.said().await;
    b.span.on_bus("c", BusMsg::Joined { ticket, room: room.clone(), peer: 99, host, host_key: "00".into() });
    assert!(answer.try_recv().is_err(), "still waiting for a");
}

#[tokio::test]
async fn a_refused_join_says_why_and_a_late_answer_is_undone() {
    let (mut a, mut b) = (server(), server());
    let (room, _, mut host_rx) = a.open();
    let (o, _r) = outbox(1 << 20);
    let (_, answer) = b.span.join("a", &room, &"0".repeat(64), "ann", who(), o);
    let (_, msg) = b.said().await;
    a.span.on_bus("b", msg);
    let (_, msg) = a.said().await;
    b.span.on_bus("a", msg);
    assert_eq!(answer.await.unwrap().unwrap_err().0, ErrorCode::BadToken);

    // A client that stopped waiting: the join, when it comes, is undone at the room.
    let (o, _r) = outbox(1 << 20);
    let (ticket, _answer) = b.span.join("a", &room, TOKEN, "late", who(), o);
    b.span.give_up(ticket);
    let (_, msg) = b.said().await;
    a.span.on_bus("b", msg);
    let (_, msg) = a.said().await;
    b.span.on_bus("a", msg);
    let (to, msg) = b.said().await;
    assert!(to == "a" && matches!(msg, BusMsg::Leave { .. }), "{msg:?}");
    a.span.on_bus("b", msg);
    assert!(matches!(host_rx.try_recv_msg(), Some(ServerMsg::PeerJoined { .. })));
    assert!(matches!(host_rx.try_recv_msg(), Some(ServerMsg::PeerLeft { .. })));
    assert!(a.span.partners().is_empty() && b.span.partners().is_empty());
}

#[tokio::test]
async fn a_room_closing_closes_its_members_elsewhere() {
    let (mut a, mut b) = (server(), server());
    let (room, host, _host_rx) = a.open();
    let (_, mut client_rx) = join_across(&mut a, &mut b, &room).await;
    assert!(a.rooms.lock().unwrap().leave(&room, host), "the host left: the room closed");
    let (_, msg) = a.said().await;
    assert!(matches!(msg, BusMsg::Deliver { closing: true, .. }));
    b.span.on_bus("a", msg);
    assert!(matches!(client_rx.try_recv(), Some(Outgoing::Message { closing: true, .. })));
    // b tells a it let its client go; a forgets it.
    let (_, msg) = b.said().await;
    a.span.on_bus("b", msg);
    assert!(a.span.partners().is_empty() && b.span.partners().is_empty());
}

#[tokio::test]
async fn a_server_gone_costs_only_its_own_clients() {
    let (mut a, mut b) = (server(), server());
    let (room, host, mut host_rx) = a.open();
    let (peer, mut client_rx) = join_across(&mut a, &mut b, &room).await;
    let _ = host_rx.try_recv_msg();
    // a finds b gone: b's client is out of a's room, whose host goes on and is not told (the
    // participant lost its signaling, not its WebRTC link: a PeerLeft would drop that).
    a.span.server_gone("b");
    assert!(host_rx.try_recv().is_none());
    assert!(a.rooms.lock().unwrap().has(&room));
    assert!(!a.rooms.lock().unwrap().relay(&room, host, peer, ice()).unwrap(), "no longer a member");
    assert!(a.span.partners().is_empty());
    // b finds a gone: its client hears that its room is gone (and a, should it be back after
    // all, is told the client left).
    b.span.server_gone("a");
    assert!(matches!(client_rx.try_recv_msg(), Some(ServerMsg::Error { code: ErrorCode::RoomClosed, .. })));
    let (to, msg) = b.said().await;
    assert!(to == "a" && matches!(msg, BusMsg::Leave { .. }), "{msg:?}");
    // A join waiting on a gone server is answered.
    let (o, _r) = outbox(1 << 20);
    let (_, answer) = b.span.join("c", &room, TOKEN, "x", who(), o);
    b.span.server_gone("c");
    assert_eq!(answer.await.unwrap().unwrap_err().0, ErrorCode::NoSuchRoom);
}

#[tokio::test]
async fn a_signal_the_room_refuses_closes_the_client_elsewhere() {
    let (mut a, mut b) = (server(), server());
    let (room, host, _host_rx) = a.open();
    let (peer, mut client_rx) = join_across(&mut a, &mut b, &room).await;
    let big = SignalPayload::Ice { candidate: "c".repeat(40_000), sdp_mid: None, sdp_mline_index: None };
    a.span.on_bus("b", BusMsg::Signal { room: room.clone(), from: peer, to: host, payload: big });
    let (_, msg) = a.said().await;
    b.span.on_bus("a", msg);
    assert!(matches!(client_rx.try_recv_msg(), Some(ServerMsg::Error { code: ErrorCode::TooLarge, .. })));
}

#[tokio::test]
async fn a_flood_of_signals_is_refused_and_never_crowds_out_leaving() {
    let (mut a, mut b) = (server(), server());
    let (room, host, mut host_rx) = a.open();
    let (peer, _client_rx) = join_across(&mut a, &mut b, &room).await;
    let _ = host_rx.try_recv_msg();
    // Nothing drains b's edge: its signal lane fills, and the next signal is refused.
    for _ in 0..DATA_QUEUE {
        b.span.signal(&room, peer, host, ice()).unwrap();
    }
    assert_eq!(b.span.signal(&room, peer, host, ice()).unwrap_err().0, ErrorCode::RateLimited);
    // Its leaving still goes, and first.
    b.span.leave(&room, peer);
    let (to, msg) = b.said().await;
    assert!(to == "a" && matches!(msg, BusMsg::Leave { .. }), "{msg:?}");
}

#[tokio::test]
async fn a_guest_is_told_it_joined_before_anything_its_room_says() {
    let (mut a, mut b) = (server(), server());
    let (room, host, _host_rx) = a.open();
    let (o, mut client_rx) = outbox(1 << 20);
    let (_, answer) = b.span.join("a", &room, TOKEN, "ann", who(), o);
    let (_, join) = b.said().await;
    a.span.on_bus("b", join);
    // The host says something to the newcomer at once, and leaves: all after `Joined`.
    let (_, joined) = a.said().await;
    let BusMsg::Joined { peer, .. } = joined else { panic!("{joined:?}") };
    assert!(a.rooms.lock().unwrap().relay(&room, host, peer, ice()).unwrap());
    let (_, deliver) = a.said().await;
    assert!(matches!(deliver, BusMsg::Deliver { closing: false, .. }), "{deliver:?}");
    // b hears them in that order.
    b.span.on_bus("a", joined);
    b.span.on_bus("a", deliver);
    assert!(answer.await.unwrap().is_ok());
    assert!(matches!(client_rx.try_recv_msg(), Some(ServerMsg::Joined { .. })));
    assert!(matches!(client_rx.try_recv_msg(), Some(ServerMsg::Signal { .. })));
}
