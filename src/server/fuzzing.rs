//! The signaling server without sockets, for `cargo fuzz` (`fuzz/fuzz_targets/signal_server.rs`):
//! a few clients, each a real [`Conn`] with its own outbox, send frames to one [`Rooms`]
//! through the code a socket's frames go through, and read their outboxes when the input says.
//! Built only under `--cfg fuzzing`, which cargo fuzz sets.
//!
//! The input is a list of operations, each a byte naming the client (bits 3-4) and what it
//! does (bits 0-2), with its arguments after it (see [`Harness::step`]). A fuzzer forges no
//! signature, so one operation sends a valid `Create` made from one byte: a room of one of two
//! fixed host keys, signed over that client's nonce. Nonces are a counter, so a seed can carry
//! a `Create` signed in advance ([`seeds`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Mutex, OnceLock};

use bytes::Bytes;
use futures::FutureExt;
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};

use super::conn::Conn;
use super::outbox::{Outbox, OutboxReader, Outgoing, outbox};
use super::{Rooms, ServerConfig, Source};
use crate::protocol::identity::{HostKey, HostSecret};
use crate::protocol::signal::{self, ClientMsg, PeerId, SignalPayload};

/// Clients at once.
const CLIENTS: usize = 4;
/// Room labels the made-up `Create`s and `Join`s use.
const LABELS: [Option<&str>; 3] = [None, Some("a"), Some("films")];

/// Small limits, so a short input reaches every one of them.
fn config() -> ServerConfig {
    ServerConfig {
        max_peers: 2,
        max_rooms: 3,
        max_rooms_per_source: 2,
        max_message: 1024,
        // Four of the largest messages: the least `Server::start` allows.
        outbox_budget: 4096,
        // A burst and next to no refill: the same input meets the rate limit the same way
        // however fast it runs.
        msg_rate: 1e-9,
        msg_burst: 48.0,
        ..ServerConfig::default()
    }
}

/// One of the two fixed host keys, derived once: under the sanitizers, Ed25519 is most of a
/// run's time.
fn host(which: u8) -> &'static HostKey {
    static KEYS: OnceLock<[HostKey; 2]> = OnceLock::new();
    &KEYS.get_or_init(|| [1, 2].map(|b| HostSecret::from_bytes([b; 32]).host_key()))[usize::from(which & 1)]
}

/// The `n`th connection's nonce.
fn nonce(n: u32) -> String {
    format!("{n:032x}")
}

/// A client: its connection and both ends of its outbox.
struct Client {
    conn: Conn,
    outbox: Outbox,
    reader: OutboxReader,
    nonce: String,
}

/// One server and its clients.
pub struct Harness {
    cfg: ServerConfig,
    rooms: Mutex<Rooms>,
    clients: Vec<Client>,
    /// Connections opened so far (each one's nonce).
    opened: u32,
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness {
    /// A server with `CLIENTS` fresh connections, two per source address.
    pub fn new() -> Harness {
        let cfg = config();
        let rooms = Mutex::new(Rooms::new(cfg.clone()));
        let mut h = Harness { cfg, rooms, clients: Vec::new(), opened: 0 };
        for i in 0..CLIENTS {
            let c = h.connect(i);
            h.clients.push(c);
        }
        h
    }

    fn connect(&mut self, i: usize) -> Client {
        let nonce = nonce(self.opened);
        self.opened += 1;
        let source = Source::of(IpAddr::V4(Ipv4Addr::new(10, 0, 0, (i / 2) as u8)));
        let (outbox, reader) = outbox(self.cfg.outbox_budget);
        outbox.push(&signal::ServerMsg::Hello { nonce: nonce.clone() });
        Client { conn: Conn::new(source, nonce.clone(), &self.cfg), outbox, reader, nonce }
    }

    /// Client `i`'s connection ends (as `conn::serve` ends it) and a new one takes its place.
    fn reconnect(&mut self, i: usize) {
        self.clients[i].conn.leave(&self.rooms, None);
        self.clients[i] = self.connect(i);
    }

    /// Runs every operation in `input`, checking the invariants after each; then every
    /// connection ends, and no room may be left.
    pub fn run(input: &[u8]) {
        let mut h = Harness::new();
        let mut input = input;
        while let Some((&op, rest)) = input.split_first() {
            input = h.step(op, rest);
            assert!(h.rooms.lock().expect("rooms lock").len() <= h.cfg.max_rooms);
        }
        for i in 0..CLIENTS {
            h.read(i);
            h.clients[i].conn.leave(&h.rooms, None);
        }
        assert!(h.rooms.lock().expect("rooms lock").is_empty(), "a room outlived every connection");
    }

    /// One operation by client `op >> 3 & 3`; returns the input after its arguments.
    fn step<'a>(&mut self, op: u8, args: &'a [u8]) -> &'a [u8] {
        let i = usize::from(op >> 3) % CLIENTS;
        let (arg, after_byte) = args.split_first().map_or((0, args), |(&a, rest)| (a, rest));
        match op & 7 {
            // Text: two bytes of length, then the text.
            0 => {
                let len = usize::from(u16::from_le_bytes([arg, after_byte.first().copied().unwrap_or(0)]));
                let rest = after_byte.get(1..).unwrap_or(&[]);
                let (text, rest) = rest.split_at(len.min(rest.len()));
                self.frame(i, Some(Ok(Ws::Text(String::from_utf8_lossy(text).into_owned().into()))));
                return rest;
            }
            1 => self.send(i, &self.made_create(i, arg)),
            2 => self.send(i, &made_join(arg)),
            3 => self.send(i, &made_signal(arg)),
            4 => {
                self.read(i);
                return args;
            }
            5 => {
                self.frame(i, if arg & 1 == 0 { None } else { Some(Ok(Ws::Close(None))) });
            }
            6 => self.frame(i, Some(Ok(Ws::Ping(Bytes::from(vec![0; usize::from(arg) * 64]))))),
            _ => self.frame(i, odd_frame(arg)),
        }
        after_byte
    }

    fn send(&mut self, i: usize, msg: &ClientMsg) {
        self.frame(i, Some(Ok(Ws::Text(signal::encode(msg).into()))));
    }

    /// A frame through `Conn::on_frame`; a refusal ends the connection.
    fn frame(&mut self, i: usize, frame: Option<Result<Ws, WsError>>) {
        let c = &mut self.clients[i];
        if c.conn.on_frame(frame, &self.rooms, &c.outbox, &self.cfg, None).is_err() {
            self.reconnect(i);
        }
    }

    /// The client reads all that waits for it: never more than the budget. An overflow or an
    /// error ends the connection, as in `conn::serve`.
    fn read(&mut self, i: usize) {
        let mut queued = 0;
        let mut ended = false;
        while let Some(Some(out)) = self.clients[i].reader.recv().now_or_never() {
            match out {
                Outgoing::Message { text, closing } => {
                    queued += text.len();
                    ended |= closing;
                }
                Outgoing::Overflow => ended = true,
            }
        }
        assert!(queued <= self.cfg.outbox_budget, "{queued} bytes queued, over the budget of {}", self.cfg.outbox_budget);
        if ended {
            self.reconnect(i);
        }
    }

    /// A valid `Create` by client `i` from one byte: which key, which label, which token.
    /// Signed once for each nonce (the same few nonces come back in every input).
    fn made_create(&self, i: usize, arg: u8) -> ClientMsg {
        thread_local! {
            static SIGNED: RefCell<HashMap<(u8, String), ClientMsg>> = RefCell::new(HashMap::new());
        }
        let arg = arg & 0b1111;
        let nonce = &self.clients[i].nonce;
        SIGNED.with_borrow_mut(|signed| {
            if signed.len() > 4096 {
                signed.clear();
            }
            let made = || create(host(arg), LABELS[usize::from(arg >> 1) % 3], token(arg >> 3), nonce);
            signed.entry((arg, nonce.clone())).or_insert_with(made).clone()
        })
    }
}

/// A `Create` signed over `nonce`.
fn create(key: &HostKey, label: Option<&str>, join_token: String, nonce: &str) -> ClientMsg {
    let room = key.room_id(label);
    let proof = key.create_proof(&room, &join_token, nonce);
    ClientMsg::Create { room, join_token, name: "host".into(), host_key: key.public().to_hex(), proof }
}

/// One of two join tokens.
fn token(which: u8) -> String {
    if which & 1 == 0 { "ab".repeat(32) } else { "cd".repeat(32) }
}

/// A valid participant key: the Ed25519 base point (no key derivation in the loop; the server
/// checks a key's shape, the host its proof).
const GUEST_KEY: &str = "5866666666666666666666666666666666666666666666666666666666666666";
/// No point at all.
const NO_KEY: &str = "0200000000000000000000000000000000000000000000000000000000000000";

/// A `Join` from one byte: which room, which token, a valid nonce or not, a name's length, a
/// valid key or not.
fn made_join(arg: u8) -> ClientMsg {
    let room = host(arg).room_id(LABELS[usize::from(arg >> 1) % 3]);
    let nonce = if arg & 0x10 == 0 { nonce(u32::from(arg)) } else { "short".into() };
    let key = if arg & 0x80 == 0 { GUEST_KEY } else { NO_KEY }.to_string();
    let name = "p".repeat(usize::from((arg >> 5) & 3) * 12);
    ClientMsg::Join { room, join_token: token(arg >> 3), name, nonce, key, proof: "00".repeat(64) }
}

/// A `Signal` to a peer from one byte (peers are numbered from 1).
fn made_signal(arg: u8) -> ClientMsg {
    let payload = SignalPayload::Ice { candidate: "c".repeat(usize::from(arg >> 4) * 60), sdp_mid: None, sdp_mline_index: Some(0) };
    ClientMsg::Signal { to: PeerId::from(arg & 15), payload }
}

/// The frames other than text: binary, too large, broken.
fn odd_frame(arg: u8) -> Option<Result<Ws, WsError>> {
    match arg % 4 {
        0 => Some(Ok(Ws::Binary(Bytes::from_static(b"\x00\x01")))),
        1 => Some(Ok(Ws::Pong(Bytes::new()))),
        2 => Some(Err(WsError::Capacity(CapacityError::MessageTooLong { size: 1 << 20, max_size: 1024 }))),
        _ => Some(Err(WsError::ConnectionClosed)),
    }
}

/// Inputs that reach the rooms: real messages, encoded as the client would, in the format
/// above (a host creates, participants join and signal, someone reads, the host leaves).
pub fn seeds() -> Vec<Vec<u8>> {
    let key = host(0);
    let room = key.room_id(None);
    let create0 = create(key, None, token(0), &nonce(0));
    let join = |n: u32| ClientMsg::Join {
        room: room.clone(),
        join_token: token(0),
        name: "guest".into(),
        nonce: nonce(100 + n),
        key: GUEST_KEY.into(),
        proof: "00".repeat(64),
    };
    let signal = |to: PeerId| ClientMsg::Signal { to, payload: SignalPayload::Answer { sdp: "v=0".into(), mac: "00".repeat(32), sig: "00".repeat(64) } };
    let text = |i: u8, msg: &ClientMsg| {
        let t = signal::encode(msg);
        let len = u16::try_from(t.len()).expect("a short message");
        let mut v = vec![i << 3];
        v.extend_from_slice(&len.to_le_bytes());
        v.extend_from_slice(t.as_bytes());
        v
    };
    let read = |i: u8| vec![i << 3 | 4];
    let close = |i: u8| vec![i << 3 | 5, 0];
    let host_and_two = [text(0, &create0), text(1, &join(1)), text(2, &join(2)), text(1, &signal(1)), text(0, &signal(2)), read(0), read(1), read(2)].concat();
    let host_leaves = [host_and_two.clone(), close(0), read(1), read(2)].concat();
    let made = [vec![1, 0, 2 << 3 | 2, 0, 3 << 3 | 1, 2, 1 << 3 | 3, 1, 4], read(3)].concat();
    let garbage = [text(3, &join(3)), vec![3 << 3, 5, 0], b"{\"ty".to_vec(), read(3)].concat();
    vec![host_and_two, host_leaves, made, garbage]
}
