//! A real `syncy serve` under siege from many loopback addresses (127.0.0.0/8 is all this
//! machine's): thousands of idle sockets, clients that never read while others flood them,
//! one address taking room slots. Its memory and descriptors stay bounded, the sockets are let
//! go, and an honest room keeps working throughout.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use syncy::protocol::identity::HostSecret;
use syncy::protocol::signal::{ClientMsg, ErrorCode, ServerMsg, SignalPayload, decode_server, encode};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as Ws;

use super::harness::{Daemon, bin};

type Socket = WebSocketStream<TcpStream>;

/// A `syncy serve` on a port of the OS's choosing, and its address.
fn serve(args: &[&str]) -> (Daemon, SocketAddr) {
    let mut child = Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env("RUST_LOG", std::env::var("SYNCY_TEST_LOG").unwrap_or_else(|_| "warn".into()))
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = lines.by_ref().map(Result::unwrap).find(|l| l.starts_with("syncy signaling server on")).expect("the server says where it listens");
    // "syncy signaling server on ws://127.0.0.1:PORT/ (Ctrl-C to stop)"
    let addr = first.split("ws://").nth(1).and_then(|r| r.split('/').next()).unwrap_or_else(|| panic!("{first}"));
    std::thread::spawn(move || {
        lines.for_each(|l| {
            if std::env::var_os("SYNCY_TEST_LOG").is_some() {
                eprintln!("serve: {}", l.unwrap_or_default())
            }
        })
    });
    (Daemon(child), addr.parse().unwrap())
}

/// The server's resident memory (KiB) and open descriptors.
fn usage(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next()).unwrap().parse().unwrap();
    (rss, std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count())
}

/// A TCP connection from 127.0.0.`from`, with a small receive buffer if asked (so a client
/// that does not read backs up quickly).
async fn tcp(server: SocketAddr, from: u8, small_rcvbuf: bool) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    if small_rcvbuf {
        s.set_recv_buffer_size(4096)?;
    }
    s.bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, from)), 0))?;
    s.connect(server).await
}

/// A connection from 127.0.0.`from` that sends half an HTTP request and no more.
async fn slowloris(server: SocketAddr, from: u8) -> std::io::Result<TcpStream> {
    use tokio::io::AsyncWriteExt;
    let mut s = tcp(server, from, false).await?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await?;
    Ok(s)
}

/// A signaling client from 127.0.0.`from`, past the server's Hello: the socket and its nonce.
async fn client(server: SocketAddr, from: u8, small_rcvbuf: bool) -> (Socket, String) {
    let stream = tcp(server, from, small_rcvbuf).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{server}/"), stream).await.unwrap();
    match next_msg(&mut ws).await {
        Some(ServerMsg::Hello { nonce }) => (ws, nonce),
        other => panic!("no hello: {other:?}"),
    }
}

async fn next_msg(ws: &mut Socket) -> Option<ServerMsg> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await.ok()?? {
            Ok(Ws::Text(t)) => return decode_server(t.as_str(), 1 << 20).ok(),
            Ok(Ws::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// A room of a fresh host key, opened from 127.0.0.`from`: the host's socket, room and token.
async fn open_room(server: SocketAddr, from: u8) -> Result<(Socket, String, String), ErrorCode> {
    let (mut ws, nonce) = client(server, from, false).await;
    let key = HostSecret::random().host_key();
    let (room, join_token) = (key.room_id(None), hex::encode(rand_bytes()));
    let proof = key.create_proof(&room, &join_token, &nonce);
    let create = ClientMsg::Create { room: room.clone(), join_token: join_token.clone(), name: "h".into(), host_key: key.public().to_hex(), proof };
    ws.send(Ws::Text(encode(&create).into())).await.unwrap();
    match next_msg(&mut ws).await {
        Some(ServerMsg::Created { .. }) => Ok((ws, room, join_token)),
        Some(ServerMsg::Error { code, .. }) => Err(code),
        other => panic!("{other:?}"),
    }
}

fn rand_bytes() -> [u8; 32] {
    use sha2::Digest;
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    sha2::Sha256::digest(format!("{}-{n}-{:?}", std::process::id(), Instant::now())).into()
}

/// Joins `room` from 127.0.0.`from`: the socket and its peer id.
async fn join(server: SocketAddr, from: u8, room: &str, token: &str, small_rcvbuf: bool) -> (Socket, u64) {
    let (mut ws, _) = client(server, from, small_rcvbuf).await;
    let join = super::setups::join_msg(room, token.into(), "p", "0123456789abcdef0123456789abcdef".into());
    ws.send(Ws::Text(encode(&join).into())).await.unwrap();
    match next_msg(&mut ws).await {
        Some(ServerMsg::Joined { peer, .. }) => (ws, peer),
        other => panic!("{other:?}"),
    }
}

fn ice(len: usize) -> SignalPayload {
    SignalPayload::Ice { candidate: "c".repeat(len), sdp_mid: None, sdp_mline_index: None }
}

/// An honest room at work: a participant joins, and a signal goes each way, within 3 s.
async fn honest_round(server: SocketAddr) {
    let work = async {
        let (mut host, room, token) = open_room(server, 1).await.expect("an honest host opens its room");
        let (mut p, peer) = join(server, 1, &room, &token, false).await;
        assert!(matches!(next_msg(&mut host).await, Some(ServerMsg::PeerJoined { .. })));
        let to_p = ClientMsg::Signal { to: peer, payload: ice(10) };
        host.send(Ws::Text(encode(&to_p).into())).await.unwrap();
        assert!(matches!(next_msg(&mut p).await, Some(ServerMsg::Signal { .. })));
    };
    tokio::time::timeout(Duration::from_secs(3), work).await.expect("an honest room works within 3 s");
}

/// Waits until `cond` holds of the server's usage, for at most `limit`.
async fn until(pid: u32, limit: Duration, what: &str, cond: impl Fn(u64, usize) -> bool) -> (u64, usize) {
    let deadline = Instant::now() + limit;
    loop {
        let (rss, fds) = usage(pid);
        if cond(rss, fds) {
            return (rss, fds);
        }
        assert!(Instant::now() < deadline, "{what}: still {rss} KiB and {fds} descriptors");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn a_server_under_siege_stays_bounded_and_honest_rooms_keep_working() {
    let _real_time = super::harness::real_time();
    raise_fd_limit(8192);
    let rt = tokio::runtime::Runtime::new().unwrap();
    // No rate limit to speak of, so a flooder floods as fast as the server reads.
    let (server, addr) = serve(&["--msg-rate", "100000"]);
    let pid = server.0.id();
    rt.block_on(async {
        // (Before any client: the honest rounds' sockets may linger a moment after each.)
        let (base_rss, base_fds) = usage(pid);
        honest_round(addr).await;
        let mut peak = base_rss;

        // 1. Two thousand idle sockets from forty addresses, 50 each (under the cap of 64).
        // In batches the server is seen to take (a burst of SYNs past the listen backlog is
        // dropped and tried again a second later); each sends half a request and stops, as a
        // slowloris does.
        let started = Instant::now();
        let mut idle: Vec<TcpStream> = Vec::new();
        let mut rss = base_rss;
        for batch in 0..40 {
            let socks = futures::future::join_all((0..50).map(|_| slowloris(addr, 10 + batch as u8))).await;
            idle.extend(socks.into_iter().map(Result::unwrap));
            let n = idle.len();
            rss = until(pid, Duration::from_secs(5), "the idle sockets accepted", |_, fds| fds >= base_fds + n).await.0;
        }
        assert!(started.elapsed() < Duration::from_secs(8), "connecting took {:?}: the join timeout may have closed some", started.elapsed());
        peak = peak.max(rss);
        // One address past its cap is told so in HTTP and closed.
        let more = futures::future::join_all((0..20).map(|_| tcp(addr, 10, false))).await;
        let more: Vec<TcpStream> = more.into_iter().map(Result::unwrap).collect();
        let answers: Vec<Option<String>> = futures::future::join_all(more.into_iter().map(|s| read_all(s, Duration::from_secs(2)))).await;
        let refused = answers.iter().flatten().filter(|r| r.contains("503") && r.contains("too many connections from one address")).count();
        assert_eq!(refused, 6, "50 held + 14 more = the cap of 64; the other 6 are turned away at once: {answers:?}");
        assert_eq!(answers.iter().filter(|a| a.is_none()).count(), 14, "{answers:?}");
        honest_round(addr).await;
        // They had 10 s from their accept to join: then they are closed, every one.
        let (rss, _) = until(pid, Duration::from_secs(20), "idle sockets let go", |_, fds| fds <= base_fds + 2).await;
        peak = peak.max(rss);
        let idle_peak = peak;
        let closed = futures::future::join_all(idle.into_iter().map(|s| read_all(s, Duration::from_secs(5)))).await.into_iter().flatten().count();
        assert_eq!(closed, 2000, "every idle socket sees its end");

        // 2. Clients that never read, flooded by the host of their own room with 60 KB messages.
        let before_flood = usage(pid).0;
        let mut flood_peak = before_flood;
        let mut floods = Vec::new();
        for f in 0..4u8 {
            let (mut host, room, token) = open_room(addr, 100 + f).await.unwrap();
            let mut readers = Vec::new();
            for _ in 0..16 {
                readers.push(join(addr, 110 + f, &room, &token, true).await);
            }
            while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(200), next_msg(&mut host)).await {}
            floods.push(tokio::spawn(async move {
                let ids: Vec<u64> = readers.iter().map(|r| r.1).collect();
                let big = Ws::Text(encode(&ClientMsg::Signal { to: 0, payload: ice(60_000) }).into());
                let mut sent = 0usize;
                'flood: for round in 0..60 {
                    for &to in &ids {
                        let msg = ClientMsg::Signal { to, payload: ice(60_000 + round) };
                        if host.send(Ws::Text(encode(&msg).into())).await.is_err() {
                            break 'flood;
                        }
                        sent += big.len();
                    }
                }
                (sent, readers)
            }));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while floods.iter().any(|f| !f.is_finished()) {
            flood_peak = flood_peak.max(usage(pid).0);
            peak = peak.max(flood_peak);
            assert!(Instant::now() < deadline, "the flood did not end");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        honest_round(addr).await;
        let mut flooded = 0;
        for f in floods {
            let (sent, readers) = f.await.unwrap();
            flooded += sent;
            // Every reader that fell behind is let go: reading now, it finds the end.
            for (mut ws, _) in readers {
                let ended = tokio::time::timeout(Duration::from_secs(20), async {
                    while let Some(Ok(frame)) = ws.next().await {
                        if let Ws::Close(_) = frame {
                            break;
                        }
                    }
                })
                .await;
                assert!(ended.is_ok(), "a reader that fell behind was not let go");
            }
        }
        assert!(flooded > 200 << 20, "the flood was a flood: {flooded} bytes");
        // Its own growth, apart from what the idle sockets left: 64 outboxes of 256 KiB and
        // tungstenite's buffers of the same at most (a byte budget per client).
        let flood_grown = flood_peak.saturating_sub(before_flood);
        assert!(flood_grown < 48 * 1024, "the flood grew the server by {flood_grown} KiB");

        // 3. Room slots: one address opens its 16, no more; others still open theirs.
        let mut squat = Vec::new();
        for _ in 0..16 {
            squat.push(open_room(addr, 200).await.expect("under the per-address cap"));
        }
        assert_eq!(open_room(addr, 200).await.err(), Some(ErrorCode::ServerFull));
        honest_round(addr).await;
        let (rss, fds) = usage(pid);
        peak = peak.max(rss);
        let grown = peak.saturating_sub(base_rss);
        eprintln!(
            "siege: base {base_rss} KiB, {base_fds} fds; 2000 idle: {idle_peak} KiB; peak {peak} KiB (+{grown}); now {fds} fds; flood {} MiB",
            flooded >> 20
        );
        // Measured: +46 to +54 MiB, nearly all of it the 2000 idle sockets (about 23 KiB each in
        // a debug build); the flood of 220 MiB to 64 clients that do not read adds nothing
        // past that. Before the outbox had a byte budget it would have queued all of it.
        assert!(grown < 80 * 1024, "the server grew by {grown} KiB under siege");
    });
}

/// Everything a socket receives until it closes (`None` if it did not close within `limit`).
async fn read_all(mut s: TcpStream, limit: Duration) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    match tokio::time::timeout(limit, s.read_to_end(&mut buf)).await {
        Ok(Ok(_)) => Some(String::from_utf8_lossy(&buf).into_owned()),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => Some(String::from_utf8_lossy(&buf).into_owned()),
        _ => None,
    }
}

/// This test holds thousands of sockets at once.
fn raise_fd_limit(want: u64) {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain calls on a struct of ours.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        if lim.rlim_cur < want {
            lim.rlim_cur = want.min(lim.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
        }
    }
}
