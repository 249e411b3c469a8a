//! Issue 6: what a malicious signaling server or participant can and cannot do. The rogue
//! sides are built from the library's own parts; the honest sides are the real binary.

use std::time::Duration;

use syncy::net::peer::{self, AnswerAuth, IceConfig, PeerLink};
use syncy::net::signal_client::SignalClient;
use syncy::protocol::auth::{RoomKey, SetupAuth};
use syncy::protocol::guest::{GuestKey, GuestSecret};
use syncy::protocol::identity::{HostId, HostSecret};
use syncy::protocol::link::Link;
use syncy::protocol::signal::{ClientMsg, PeerId, ServerMsg, SignalPayload};
use syncy::protocol::stream::{self, Message, PROTOCOL_VERSION};

use super::harness::{Proc, clip_sized, link_of};

const T: Duration = Duration::from_secs(30);

/// A member of a room at the signaling level, with the host's offer to it.
struct Member {
    c: SignalClient,
    host: PeerId,
    host_key: HostId,
    /// What its set-up is authenticated over (room, its peer id, its nonce, its key).
    setup: SetupAuth,
    /// Its key in the room.
    guest: GuestKey,
    sdp: String,
    sig: String,
}

/// Joins `link`'s room at the signaling level (the join token is public to the server) and
/// waits for the host's offer.
async fn join_signaling(link: &Link, name: &str) -> Member {
    let mut c = SignalClient::connect(&link.signal_url(), None).await.unwrap();
    let nonce = syncy::protocol::auth::nonce();
    let guest = GuestSecret::random().key_for(&link.room);
    let (key, proof) = (guest.public().to_hex(), guest.join_proof(&link.room, &nonce, name));
    c.tx.send(ClientMsg::Join { room: link.room.clone(), join_token: link.key.join_token(), name: name.into(), nonce: nonce.clone(), key, proof })
        .await
        .unwrap();
    let (peer, host, host_key) = match c.rx.recv().await {
        Some(ServerMsg::Joined { peer, host, host_key, .. }) => (peer, host, HostId::from_hex(&host_key).unwrap()),
        other => panic!("not joined: {other:?}"),
    };
    let setup = SetupAuth { room: link.room.clone(), peer, nonce, guest: guest.public() };
    loop {
        match c.rx.recv().await {
            Some(ServerMsg::Signal { from, payload: SignalPayload::Offer { sdp, sig } }) if from == host => {
                return Member { c, host, host_key, setup, guest, sdp, sig };
            }
            Some(_) => continue,
            None => panic!("signaling closed before the offer"),
        }
    }
}

/// A participant that holds the key and connects for real, then misbehaves.
async fn rogue_participant(link: &Link, name: &str) -> (SignalClient, PeerLink) {
    let Member { c, host, host_key, setup, guest, sdp, sig } = join_signaling(link, name).await;
    let tx = c.tx.clone();
    let send = async |payload| tx.send(ClientMsg::Signal { to: host, payload }).await.is_ok();
    let ice = IceConfig::new(syncy::net::peer::Reach::of_host("127.0.0.1"), None, &Default::default());
    let auth = AnswerAuth { host: &host_key, key: &link.key, guest: &guest, setup };
    let pl = PeerLink::answer(&ice, &auth, (sdp, sig), send).await.unwrap();
    peer::send(&pl.control, &stream::encode(&Message::Hello { version: PROTOCOL_VERSION, name: name.into() })).await.unwrap();
    (c, pl)
}

#[test]
fn an_answer_not_signed_with_the_room_key_is_refused_by_the_host() {
    // What a signaling server in the middle would do: answer the host's offer with its own
    // SDP. It knows the join token, never the key.
    let file = clip_sized("trust.mp4", 10, "1Mb/s", "320x180");
    let dir = super::harness::test_dir();
    let mut host = Proc::host(&file, dir.path(), &[]);
    let link = Link::parse(&link_of(&mut host)).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _c = rt.block_on(async {
        let m = join_signaling(&link, "mallory").await;
        let forged = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n".to_string();
        let (mac, sig) = m.setup.answer_auth(&RoomKey::random(), &m.guest, &forged);
        m.c.tx.send(ClientMsg::Signal { to: m.host, payload: SignalPayload::Answer { sdp: forged, mac, sig } }).await.unwrap();
        m.c
    });
    let e = host.wait_for("the refusal", T, |v| v["event"] == "error" && v["message"].as_str().is_some_and(|m| m.contains("mallory")));
    assert!(e["message"].as_str().unwrap().contains("not signed with the room key"), "{e}");
    assert!(!host.seen.iter().any(|v| v["event"] == "peer_joined"), "mallory never joined");
    // An honest participant still gets in.
    let mut p = Proc::join(&link.to_string(), "ann", dir.path(), &[]);
    p.event("complete", T);
    assert_eq!(p.quit(), 0);
    assert_eq!(host.quit(), 0);
}

#[test]
fn a_link_holder_cannot_ride_on_another_participants_approval() {
    // Ann knocks and the host lets her in; a server that hands her offer to Mallory (who
    // holds the link, so her MAC is good) gets nowhere: the answer must be signed by the key
    // the host approved.
    let file = clip_sized("trust.mp4", 10, "1Mb/s", "320x180");
    let dir = super::harness::test_dir();
    let mut host = Proc::host(&file, dir.path(), &["--approve"]);
    let link = Link::parse(&link_of(&mut host)).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ann = rt.spawn({
        let link = link.clone();
        async move { join_signaling(&link, "ann").await }
    });
    let knock = host.event("knock", T);
    assert_eq!(knock["guest"].as_str().map(str::len), Some(syncy::protocol::guest::GUEST_FINGERPRINT_LEN), "{knock}");
    host.send(&format!("approve {}", knock["peer"]));
    let _c = rt.block_on(async {
        let m = ann.await.unwrap();
        let mallory = GuestSecret::random().key_for(&link.room);
        let forged = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n".to_string();
        let (mac, sig) = m.setup.answer_auth(&link.key, &mallory, &forged);
        m.c.tx.send(ClientMsg::Signal { to: m.host, payload: SignalPayload::Answer { sdp: forged, mac, sig } }).await.unwrap();
        m.c
    });
    let e = host.wait_for("the refusal", T, |v| v["event"] == "error" && v["message"].as_str().is_some_and(|m| m.contains("ann")));
    assert!(e["message"].as_str().unwrap().contains("the key it joined with"), "{e}");
    assert!(!host.seen.iter().any(|v| v["event"] == "peer_joined"), "nobody got in on ann's approval");
    assert_eq!(host.quit(), 0);
}

#[test]
fn a_banned_participant_is_sent_away_and_turned_away_when_it_comes_back_even_to_a_restarted_host() {
    let file = clip_sized("trust.mp4", 10, "1Mb/s", "320x180");
    let dir = super::harness::test_dir();
    let mut host = Proc::host(&file, dir.path(), &[]);
    let link = link_of(&mut host);
    // Each name its own config dir (`Proc::join`): two people.
    let mut eve = Proc::join(&link, "eve", dir.path(), &[]);
    let mut bob = Proc::join(&link, "bob", dir.path(), &[]);
    for who in ["eve", "bob"] {
        host.wait_for(who, T, |v| v["event"] == "peer_joined" && v["name"] == who);
    }
    eve.event("manifest", T);
    host.send("ban eve");
    let end = eve.event("stream_end", T);
    assert!(end["reason"].as_str().unwrap().contains("banned"), "{end}");
    let left = host.wait_for("eve gone", T, |v| v["event"] == "peer_left" && v["name"] == "eve");
    assert_eq!(left["reason"], "banned by the host");
    eve.wait(T);
    // The same person (her identity file) under another name is turned away at the door...
    let eve_cfg = dir.path().join("xdg-config-eve");
    let mut again =
        Proc::spawn_env(&["join", &link, "--headless", "--name", "not eve"], dir.path(), "eve-again", &[("XDG_CONFIG_HOME", eve_cfg.to_str().unwrap())]);
    let e = again.event("error", T);
    assert!(e["message"].as_str().unwrap().contains("banned you"), "{e}");
    assert_ne!(again.wait(T), 0);
    host.wait_for("turned away", T, |v| v["event"] == "peer_left" && v["name"] == "not eve" && v["reason"].as_str().is_some_and(|r| r.contains("banned")));
    // ...while someone new, even named eve, gets in, and bob never noticed.
    let elsewhere = super::harness::test_dir();
    let joins = host.mark();
    let mut new_eve = Proc::join(&link, "eve", elsewhere.path(), &[]);
    new_eve.event("manifest", T);
    bob.event("complete", T);
    assert!(!bob.seen.iter().any(|v| v["event"] == "stream_end"));
    // In the room as the host sees it (its manifest goes out just before the host counts it
    // in: a kick in between finds nobody of that name).
    host.wait_after(joins, "the new eve in", T, |v| v["event"] == "peer_joined" && v["name"] == "eve");
    // A kick is told as such (it used to look like a lost link, and the kicked one came back).
    host.send("kick eve");
    let end = new_eve.event("stream_end", T);
    assert!(end["reason"].as_str().unwrap().contains("sent you away"), "{end}");
    // It ends there, not back as from a lost link.
    new_eve.wait(T);
    new_eve.drain_to_end(T);
    assert!(!new_eve.seen.iter().any(|v| v["event"] == "reconnecting"), "{:?}", new_eve.seen);
    assert_eq!(bob.quit(), 0);
    assert_eq!(host.quit(), 0);
    // The room (its link) outlives its host's restart, and so does the ban: written down,
    // privately, in a list of the room's own.
    let room = Link::parse(&link).unwrap().room;
    let list = dir.path().join("xdg-config/syncy/bans").join(&room);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&list).unwrap().permissions().mode() & 0o777, 0o600);
    let eve_back = |link: &str, as_name: &str| {
        Proc::spawn_env(&["join", link, "--headless", "--name", as_name], dir.path(), as_name, &[("XDG_CONFIG_HOME", eve_cfg.to_str().unwrap())])
    };
    let mut host = Proc::host(&file, dir.path(), &[]);
    let link = link_of(&mut host);
    assert_eq!(Link::parse(&link).unwrap().room, room, "the same room");
    let mut again = eve_back(&link, "eve-after-restart");
    let e = again.event("error", T);
    assert!(e["message"].as_str().unwrap().contains("banned you"), "{e}");
    assert_ne!(again.wait(T), 0);
    host.wait_for("turned away", T, |v| {
        v["event"] == "peer_left" && v["name"] == "eve-after-restart" && v["reason"].as_str().is_some_and(|r| r.contains("banned"))
    });
    let mut other = Proc::join(&link, "eve", elsewhere.path(), &["--force"]);
    other.event("manifest", T);
    assert_eq!(other.quit(), 0, "{:?} {}", other.seen, other.stderr_text());
    assert_eq!(host.quit(), 0);
    // A new room starts with nobody banned.
    let mut host = Proc::host(&file, dir.path(), &["--new-room"]);
    let link = link_of(&mut host);
    let mut again = eve_back(&link, "eve-in-a-new-room");
    again.event("manifest", T);
    assert_eq!(again.quit(), 0);
    assert_eq!(host.quit(), 0);
}

/// What a lying signaling server tells every newcomer: `Joined` with `host_key`, then the
/// host's "offer" `(sdp, sig)`. Serves every connection so, until dropped.
async fn lying_server(host_key: String, offer: (String, String)) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message as Ws;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (host_key, offer) = (host_key.clone(), offer.clone());
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else { return };
                let say = |m: ServerMsg| Ws::Text(syncy::protocol::signal::encode(&m).into());
                let _ = ws.send(say(ServerMsg::Hello { nonce: syncy::protocol::auth::nonce() })).await;
                // Whatever the newcomer says first is its join.
                let _ = ws.next().await;
                let _ = ws.send(say(ServerMsg::Joined { room: "r".into(), peer: 7, host: 1, host_key })).await;
                let (sdp, sig) = offer;
                let _ = ws.send(say(ServerMsg::Signal { from: 1, payload: SignalPayload::Offer { sdp, sig } })).await;
                while let Some(Ok(_)) = ws.next().await {}
            });
        }
    });
    (addr, task)
}

#[test]
fn a_participant_holding_the_link_cannot_pass_as_the_host_to_a_newcomer() {
    // Mallory holds the link (room id and room key) and runs, or owns, the signaling server
    // the newcomer reaches. She is in the real room, so she has a real offer from the host,
    // signed for her own set-up; and she has a key pair of her own.
    let file = clip_sized("trust.mp4", 10, "1Mb/s", "320x180");
    let dir = super::harness::test_dir();
    let mut host = Proc::host(&file, dir.path(), &[]);
    let link = Link::parse(&link_of(&mut host)).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mallory = rt.block_on(join_signaling(&link, "mallory"));
    let real_key = mallory.host_key.to_hex();
    let her_key = HostSecret::random().host_key();
    let forged = mallory.sdp.clone();
    let attempts = [
        // 1. The host's own offer to her, replayed to the newcomer: signed for another peer
        //    and another nonce.
        ("replayed", real_key.clone(), (mallory.sdp.clone(), mallory.sig.clone()), "not signed by the host this link names"),
        // 2. An offer she signs herself, under the host's public key.
        (
            "forged",
            real_key.clone(),
            (forged.clone(), her_key.sign(syncy::protocol::identity::Purpose::Offer, &[b"anything"])),
            "not signed by the host this link names",
        ),
        // 3. Her own key in place of the host's: the link's room id names another.
        ("her key", her_key.public().to_hex(), (forged.clone(), mallory.sig.clone()), "host key does not match the link"),
    ];
    for (what, host_key, offer, expected) in attempts {
        let (addr, server) = rt.block_on(lying_server(host_key, offer));
        let lie = Link { host: "127.0.0.1".into(), port: addr.port(), ..link.clone() };
        let mut ann = Proc::join(&lie.to_string(), "ann", dir.path(), &[]);
        let e = ann.event("error", T);
        assert!(e["message"].as_str().unwrap().contains(expected), "{what}: {e}");
        assert!(!ann.seen.iter().any(|v| v["event"] == "manifest"), "{what}");
        assert_ne!(ann.wait(T), 0, "{what}: it gives up");
        server.abort();
    }
    drop(mallory);
    assert_eq!(host.quit(), 0);
}

#[test]
fn the_host_restarted_keeps_its_link_and_a_new_room_makes_a_new_one() {
    let file = clip_sized("trust.mp4", 10, "1Mb/s", "320x180");
    let dir = super::harness::test_dir();
    let host_on = |extra: &[&str]| Proc::host(&file, dir.path(), extra);
    let mut host = host_on(&[]);
    let first = Link::parse(&link_of(&mut host)).unwrap();
    assert_eq!(host.quit(), 0);
    let secret = dir.path().join("xdg-config/syncy/host-identity");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777, 0o600);
    // The same file, the same room id and key: a friend's old link still works (on a fixed
    // --listen port it is the same text; here the OS picks a new port each time).
    let mut host = host_on(&[]);
    let again = Link::parse(&link_of(&mut host)).unwrap();
    assert_eq!(again, Link { port: again.port, ..first.clone() });
    let mut ann = Proc::join(&again.to_string(), "ann", dir.path(), &[]);
    ann.event("complete", T);
    assert_eq!(ann.quit(), 0);
    assert_eq!(host.quit(), 0);
    // A label is another room of the same host; --new-room is another host.
    let mut host = host_on(&["--room", "films"]);
    let films = Link::parse(&link_of(&mut host)).unwrap();
    assert_eq!(host.quit(), 0);
    assert!(films.room.starts_with("films-") && films.room.ends_with(&first.room), "{} vs {}", films.room, first.room);
    assert_ne!(films.key, first.key);
    let mut host = host_on(&["--new-room"]);
    let renewed = Link::parse(&link_of(&mut host)).unwrap();
    assert_ne!(renewed.room, first.room);
    assert_ne!(renewed.key, first.key);
    assert_eq!(host.quit(), 0);
}

#[test]
fn a_participant_sending_chunks_or_host_messages_is_disconnected() {
    let file = clip_sized("trust.mp4", 10, "1Mb/s", "320x180");
    let dir = super::harness::test_dir();
    let mut host = Proc::host(&file, dir.path(), &[]);
    let link = Link::parse(&link_of(&mut host)).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Chunks from a participant.
    let (_c1, pl1) = rt.block_on(rogue_participant(&link, "mallory"));
    host.wait_for("mallory joined", T, |v| v["event"] == "peer_joined" && v["name"] == "mallory");
    rt.block_on(async {
        let mut chunk = stream::encode_chunk_header(stream::ORIGINAL, 0, 4);
        chunk.extend_from_slice(b"evil");
        let _ = peer::send(&pl1.chunks, &chunk).await;
    });
    let left = host.wait_for("mallory thrown out", T, |v| v["event"] == "peer_left" && v["name"] == "mallory");
    assert!(left["reason"].as_str().unwrap().contains("may not send on the chunks channel"), "{left}");
    // The room's clock from a participant.
    let (_c2, pl2) = rt.block_on(rogue_participant(&link, "trudy"));
    host.wait_for("trudy joined", T, |v| v["event"] == "peer_joined" && v["name"] == "trudy");
    rt.block_on(async {
        let state = Message::State { playing: true, position_us: 0, at_host_us: 0, rate_milli: 1000, seq: 99, waiting: vec![] };
        let _ = peer::send(&pl2.control, &stream::encode(&state)).await;
    });
    let left = host.wait_for("trudy thrown out", T, |v| v["event"] == "peer_left" && v["name"] == "trudy");
    assert!(left["reason"].as_str().unwrap().contains("protocol violation"), "{left}");
    // The room goes on for everyone else.
    let mut p = Proc::join(&link.to_string(), "ann", dir.path(), &[]);
    p.event("complete", T);
    assert_eq!(p.quit(), 0);
    assert_eq!(host.quit(), 0);
}

#[test]
fn with_approve_newcomers_wait_until_the_host_lets_them_in_or_turns_them_away() {
    let file = clip_sized("trust.mp4", 10, "1Mb/s", "320x180");
    let dir = super::harness::test_dir();
    let mut host = Proc::host(&file, dir.path(), &["--approve"]);
    let link = link_of(&mut host);
    let mut ann = Proc::join(&link, "ann", dir.path(), &[]);
    let k = host.event("knock", T);
    assert_eq!(k["name"], "ann");
    // Nothing has reached her when she knocks: no manifest, no link. That nothing does
    // however long she waits is the host core's test, in simulated time
    // (host::tests::under_approve_…): this only checks the knock's moment.
    ann.drain();
    host.drain();
    assert!(ann.seen.iter().all(|v| v["event"] != "manifest"), "{:?}", ann.seen);
    assert!(!host.seen.iter().any(|v| v["event"] == "peer_joined"), "{:?}", host.seen);
    host.send("approve ann");
    host.wait_for("ann in", T, |v| v["event"] == "peer_joined" && v["name"] == "ann");
    ann.event("complete", T);
    // Bob is turned away, and told so.
    let mut bob = Proc::join(&link, "bob", dir.path(), &[]);
    host.wait_for("bob knocks", T, |v| v["event"] == "knock" && v["name"] == "bob");
    host.send("deny bob");
    let e = bob.event("error", T);
    assert!(e["message"].as_str().unwrap().contains("did not let you in"), "{e}");
    assert_ne!(bob.wait(T), 0);
    let left = host.wait_for("bob gone", T, |v| v["event"] == "peer_left" && v["name"] == "bob");
    assert_eq!(left["reason"], "turned away");
    // A name nobody has.
    host.send("approve zed");
    let e = host.wait_for("no zed", T, |v| v["event"] == "error" && v["message"].as_str().is_some_and(|m| m.contains("zed")));
    assert!(e["message"].as_str().unwrap().contains("nobody of that name or id is waiting"), "{e}");
    assert_eq!(ann.quit(), 0);
    assert_eq!(host.quit(), 0);
}

#[test]
fn a_signaling_server_restart_does_not_interrupt_established_links_and_the_room_comes_back() {
    let file = super::harness::clip("room.mp4", 12, "6Mb/s");
    let dir = super::harness::test_dir();
    let port = super::harness::free_port();
    let listen = format!("127.0.0.1:{port}");
    let serve = || super::harness::daemon(super::harness::bin(), &["serve", "--listen", &listen], port);
    let server = serve();
    let url = format!("ws://{listen}/");
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Slow enough that the transfer is in the middle when the server goes.
    let mut host = Proc::spawn(&["host", file.to_str().unwrap(), "--headless", "--server", &url, "--upload-limit", "2MiB/s", "--autoplay"], dir.path(), "host");
    let link = link_of(&mut host);
    let mut p = Proc::join(&link, "ann", dir.path(), &[]);
    p.event("manifest", T);
    drop(server);
    let _server = serve();
    // Mallory holds the link and races the host for its room on the fresh server, with a key
    // of her own: the room id names the host's key, so the server refuses her.
    let parsed = Link::parse(&link).unwrap();
    let (code, message) = rt.block_on(async {
        let mut c = SignalClient::connect(&url, None).await.unwrap();
        let key = HostSecret::random().host_key();
        let proof = key.create_proof(&parsed.room, &parsed.key.join_token(), &c.nonce);
        let create = ClientMsg::Create {
            room: parsed.room.clone(),
            join_token: parsed.key.join_token(),
            name: "mallory".into(),
            host_key: key.public().to_hex(),
            proof,
        };
        c.tx.send(create).await.unwrap();
        match c.rx.recv().await {
            Some(ServerMsg::Error { code, message }) => (code, message),
            other => panic!("mallory's room: {other:?}"),
        }
    });
    assert_eq!(code, syncy::protocol::signal::ErrorCode::NotYourRoom, "{message}");
    // The link carries on: every byte arrives, and the picture plays on.
    let c = p.event("complete", T);
    assert_eq!(c["sha256"], super::harness::sha256(&file).as_str());
    let playing = p.wait_for("still playing", T, |v| v["event"] == "stats" && v["playing"] == true && v["t_ms"].as_f64() > c["t_ms"].as_f64());
    assert_eq!(playing["buffering"], false, "{playing}");
    let e = host.wait_for("the host says it", T, |v| v["event"] == "error");
    assert!(e["message"].as_str().unwrap().contains("signaling"), "{e}");
    // The host takes its room back on the restarted server: the same link lets a newcomer in
    // (whose peer id the new server numbers afresh: no clash with ann's).
    let mut bob = Proc::join(&link, "bob", dir.path(), &[]);
    let c = bob.event("complete", T);
    assert_eq!(c["sha256"], super::harness::sha256(&file).as_str());
    host.wait_for("bob joined", T, |v| v["event"] == "peer_joined" && v["name"] == "bob");
    let joined: Vec<u64> = host.seen.iter().filter(|v| v["event"] == "peer_joined").map(|v| v["peer"].as_u64().unwrap()).collect();
    assert_eq!(joined.len(), 2, "{joined:?}");
    assert_ne!(joined[0], joined[1]);
    assert_eq!(p.quit(), 0);
    assert_eq!(bob.quit(), 0);
    assert_eq!(host.quit(), 0);
}

#[test]
fn a_participant_asking_for_levels_too_fast_is_refused_not_obeyed() {
    // Each granted level can cost the host a transcoder: twenty requests at once get a few
    // grants and then refusals, and never more than a handful of renditions.
    let file = super::harness::clip("levels.mp4", 60, "4Mb/s");
    let dir = super::harness::test_dir();
    let mut host = Proc::host(&file, dir.path(), &[]);
    let link = Link::parse(&link_of(&mut host)).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (granted, refused) = rt.block_on(async {
        let (_c, pl) = rogue_participant(&link, "mallory").await;
        for i in 0..20u64 {
            let level = if i % 2 == 0 { "low" } else { "medium" };
            let m = Message::Level { level: level.into(), from_us: i * 10_000_000 };
            peer::send(&pl.control, &stream::encode(&m)).await.unwrap();
        }
        let (mut granted, mut refused) = (0, 0);
        let deadline = tokio::time::Instant::now() + T;
        while granted + refused < 20 {
            let Ok(Some(ev)) = tokio::time::timeout_at(deadline, pl.control.poll()).await else {
                break;
            };
            let webrtc::data_channel::DataChannelEvent::OnMessage(m) = ev else {
                continue;
            };
            match stream::decode(&m.data, stream::MAX_CONTROL_MESSAGE) {
                Ok(Message::QualityChange { granted: true, .. }) => granted += 1,
                Ok(Message::LevelRefused { reason, .. }) => {
                    assert!(reason.contains("too fast") || reason.contains("renditions"), "{reason}");
                    refused += 1;
                }
                _ => {}
            }
        }
        (granted, refused)
    });
    eprintln!("20 level requests at once: {granted} granted, {refused} refused");
    assert_eq!(granted + refused, 20, "every request is answered");
    assert!(granted <= 8, "at most the burst is obeyed: {granted}");
    assert!(refused >= 12, "{refused}");
    assert_eq!(host.quit(), 0);
}

#[test]
fn the_link_can_stay_off_the_command_line_where_every_user_sees_it() {
    let file = clip_sized("trust.mp4", 10, "1Mb/s", "320x180");
    let dir = super::harness::test_dir();
    let mut host = Proc::host(&file, dir.path(), &[]);
    let link = link_of(&mut host);
    let key = link.split_once('#').unwrap().1.to_string();
    let path = dir.path().join("link.txt");
    std::fs::write(&path, format!("{link}\n")).unwrap();
    let by_file = Proc::spawn(&["join", "--link-file", path.to_str().unwrap(), "--headless", "--name", "ann"], dir.path(), "ann");
    let by_env = Proc::spawn_env(&["join", "--headless", "--name", "bob"], dir.path(), "bob", &[("SYNCY_LINK", &link)]);
    for mut p in [by_file, by_env] {
        p.event("manifest", T);
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", p.child.id())).unwrap();
        assert!(!String::from_utf8_lossy(&cmdline).contains(&key), "the room key on the command line");
        assert_eq!(p.quit(), 0);
    }
    // Neither: a usage error that says how.
    let o = std::process::Command::new(super::harness::bin()).args(["join"]).env_remove("SYNCY_LINK").output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--link-file"), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(host.quit(), 0);
}
