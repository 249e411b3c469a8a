//! Issue 6: the HTTP range fallback — a participant whose WebRTC link does not come up
//! watches over the host's `--http` server instead, says so, and gets the same bytes.

use std::io::{Read, Write};
use std::time::Duration;

use serde_json::Value;
use syncy::protocol::signal::{ServerMsg, SignalPayload, decode_server, encode};

use super::harness::{Proc, clip_sized, link_of, sha256};

const T: Duration = Duration::from_secs(90);

/// WebRTC that cannot come up: relayed paths only, through a TURN server that is not there.
const NO_WEBRTC: [&str; 8] = ["--ice-policy", "relay", "--turn", "turn:127.0.0.1:9", "--turn-user", "u", "--turn-pass", "p"];

/// A plain-HTTP GET of `path` with a bearer token (what the fallback took before it spoke TLS).
fn http_get(addr: &str, path: &str, auth: Option<&str>) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = auth.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    // (A TLS server may close on the first bytes, before the whole request is written.)
    let _ = write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Range: bytes=0-15\r\nConnection: close\r\n\r\n");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn a_participant_without_webrtc_falls_back_to_http_and_says_so() {
    let file = clip_sized("fallback.mp4", 20, "1Mb/s", "320x180");
    let want = sha256(&file);
    let dir = super::harness::test_dir();
    let mut host = Proc::host(&file, dir.path(), &["--http", "127.0.0.1:0"]);
    let link = link_of(&mut host);
    let mut ann = Proc::join(&link, "ann", dir.path(), &NO_WEBRTC);
    let fb = ann.event("fallback", T);
    let url = fb["url"].as_str().unwrap().to_string();
    assert!(url.starts_with("https://127.0.0.1:") && fb["reason"].as_str().unwrap().contains("WebRTC"), "{fb}");
    assert_eq!(ann.event("manifest", T)["size"].as_u64().unwrap(), std::fs::metadata(&file).unwrap().len());
    let done = ann.event("complete", T);
    assert_eq!((&done["sha256"], &done["matched"]), (&Value::from(want.as_str()), &Value::from(true)), "checked against the hash the host signed, over HTTP");
    assert_eq!(sha256(&dir.path().join("ann.copy")), want);

    // It follows the room's clock over HTTP too.
    host.send("play");
    let p = ann.wait_for("playing with the room", T, |v| v["event"] == "stats" && v["playing"] == true && v["position_ms"].as_u64().unwrap_or(0) > 2_000);
    assert!(p["position_ms"].as_u64().is_some());
    let hs = host.wait_for("host stats", T, |v| v["event"] == "stats" && v["playing"] == true);
    let mine = ann.wait_for("stats after the host's", T, |v| v["event"] == "stats" && v["t_ms"].as_f64() > hs["t_ms"].as_f64() && v["playing"] == true);
    let room_at = hs["position_ms"].as_f64().unwrap() + mine["t_ms"].as_f64().unwrap() - hs["t_ms"].as_f64().unwrap();
    let off = (mine["position_ms"].as_f64().unwrap() - room_at).abs();
    assert!(off <= 100.0, "{off} ms off the room clock over HTTP");

    // Plain HTTP, with or without the bearer token the fallback took before: nothing (it
    // speaks TLS, and takes passes only).
    let (addr, room) = url.trim_start_matches("https://").trim_end_matches('/').split_once('/').unwrap();
    let token = hex::encode([0u8; 32]);
    for auth in [None, Some(token.as_str())] {
        let answer = http_get(addr, &format!("/{room}/file"), auth);
        assert!(!answer.contains("HTTP/1.1 2"), "{answer}");
    }

    // A participant whose WebRTC works does not fall back.
    let mut bob = Proc::join(&link, "bob", dir.path(), &[]);
    let done = bob.event("complete", T);
    assert_eq!((&done["sha256"], &done["matched"]), (&Value::from(want.as_str()), &Value::from(true)));
    bob.drain();
    assert!(!bob.seen.iter().any(|v| v["event"] == "fallback"));
    assert_eq!(ann.quit(), 0);
    assert_eq!(bob.quit(), 0);
    assert_eq!(host.quit(), 0);
}

#[test]
fn without_a_fallback_a_participant_whose_webrtc_fails_says_why() {
    let file = clip_sized("fallback.mp4", 20, "1Mb/s", "320x180");
    let dir = super::harness::test_dir();
    let mut host = Proc::host(&file, dir.path(), &[]);
    let link = link_of(&mut host);
    let mut ann = Proc::join(&link, "ann", dir.path(), &NO_WEBRTC);
    assert_ne!(ann.wait(T), 0);
    assert!(ann.stderr_text().contains("cannot connect to the host"), "{}", ann.stderr_text());
    assert_eq!(host.quit(), 0);
}

/// A signaling server in the middle: relays the participant's connection to the real one, but
/// puts its own address in the host's `Fallback` signal, and keeps what it saw of it.
async fn substituting_proxy(real: String, ours: String, seen: std::sync::Arc<std::sync::Mutex<Vec<SignalPayload>>>) -> std::net::SocketAddr {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message as Ws;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (real, ours, seen) = (real.clone(), ours.clone(), seen.clone());
            tokio::spawn(async move {
                let Ok(client) = tokio_tungstenite::accept_async(tcp).await else { return };
                let Ok((server, _)) = tokio_tungstenite::connect_async(real.as_str()).await else { return };
                let (mut c_tx, mut c_rx) = client.split();
                let (mut s_tx, mut s_rx) = server.split();
                let up = async move {
                    while let Some(Ok(m)) = c_rx.next().await {
                        if s_tx.send(m).await.is_err() {
                            break;
                        }
                    }
                    // The participant went: so does its connection to the server.
                    let _ = s_tx.close().await;
                };
                let down = async move {
                    while let Some(Ok(m)) = s_rx.next().await {
                        let m = match m {
                            Ws::Text(t) => match decode_server(t.as_str(), 1 << 20) {
                                Ok(ServerMsg::Signal { from, payload: payload @ SignalPayload::Fallback { .. } }) => {
                                    seen.lock().unwrap().push(payload.clone());
                                    let SignalPayload::Fallback { cert, pass, sig, .. } = payload else { unreachable!() };
                                    let swapped = SignalPayload::Fallback { addr: ours.clone(), cert, pass, sig };
                                    Ws::Text(encode(&ServerMsg::Signal { from, payload: swapped }).into())
                                }
                                _ => Ws::Text(t),
                            },
                            other => other,
                        };
                        if c_tx.send(m).await.is_err() {
                            break;
                        }
                    }
                };
                tokio::join!(up, down);
            });
        }
    });
    addr
}

#[test]
fn a_signaling_server_that_swaps_the_fallback_address_learns_nothing_and_is_not_followed() {
    use syncy::net::http::fallback_client::{HttpLink, HttpLinkError};
    use syncy::protocol::auth::{FallbackOffer, RoomKey};
    let file = clip_sized("fallback.mp4", 20, "1Mb/s", "320x180");
    let dir = super::harness::test_dir();
    let mut host = Proc::host(&file, dir.path(), &["--http", "127.0.0.1:0"]);
    let link = syncy::protocol::link::Link::parse(&link_of(&mut host)).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Where the server would rather the participant went: it counts who comes.
    let trap = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    trap.set_nonblocking(true).unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let proxy = rt.block_on(substituting_proxy(link.signal_url(), trap.local_addr().unwrap().to_string(), seen.clone()));
    let through = syncy::protocol::link::Link { host: "127.0.0.1".into(), port: proxy.port(), ..link.clone() };
    let mut ann = Proc::join(&through.to_string(), "ann", dir.path(), &NO_WEBRTC);
    // What the server sees of the fallback (address, certificate hash, pass) opens nothing
    // without the room key; the same pass with the key, as ann holds it, is let in (so the 401
    // is the key's doing). Checked while ann is in the room: its pass goes when it leaves.
    let deadline = std::time::Instant::now() + T;
    let relayed = loop {
        if let Some(p) = seen.lock().unwrap().first().cloned() {
            break p;
        }
        assert!(std::time::Instant::now() < deadline, "no fallback relayed");
        std::thread::sleep(Duration::from_millis(20));
    };
    let SignalPayload::Fallback { addr, cert, pass, .. } = relayed else { unreachable!() };
    let offer = FallbackOffer { addr, cert, pass };
    // Ann's own key, from her identity file (as her process holds it).
    let identity = syncy::engine::identity::Identity::File { path: dir.path().join("xdg-config-ann/syncy/guest-identity"), renew: false };
    let anns = std::sync::Arc::new(syncy::engine::identity::load_guest(&identity).unwrap().key_for(&link.room));
    let stolen = HttpLink::new(&offer, &link.room, &RoomKey::random(), anns.clone()).unwrap();
    assert!(matches!(rt.block_on(stolen.manifest()), Err(HttpLinkError::Status { status: 401, .. })));
    // Someone who has the link and reads the relayed pass (a plain ws:// link): no 401 but for
    // ann's key.
    let reader = std::sync::Arc::new(syncy::protocol::guest::GuestSecret::random().key_for(&link.room));
    let read_off = HttpLink::new(&offer, &link.room, &link.key, reader).unwrap();
    assert!(matches!(rt.block_on(read_off.manifest()), Err(HttpLinkError::Status { status: 401, .. })));
    let own = HttpLink::new(&offer, &link.room, &link.key, anns).unwrap();
    assert!(rt.block_on(own.manifest()).is_ok());
    // The swapped address is not signed by the host: ignored, and WebRTC alone cannot work.
    assert_ne!(ann.wait(T), 0);
    assert!(ann.stderr_text().contains("cannot connect to the host"), "{}", ann.stderr_text());
    assert!(!ann.seen.iter().any(|v| v["event"] == "fallback" || v["event"] == "manifest"));
    assert!(trap.accept().is_err(), "the participant went where the server said");
    // Ann left the room: its pass opens nothing any more.
    let deadline = std::time::Instant::now() + T;
    while rt.block_on(own.manifest()).is_ok() {
        assert!(std::time::Instant::now() < deadline, "the pass of a participant who left still works");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(host.quit(), 0);
}
