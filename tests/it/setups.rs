//! Issue 17 (#3): WebRTC set-ups that are abandoned (the newcomer leaves mid-way, or never
//! answers until the host gives up) leave nothing behind on the host: no sockets, no memory.

use std::time::{Duration, Instant};

use syncy::net::signal_client::SignalClient;
use syncy::protocol::link::Link;
use syncy::protocol::signal::{ClientMsg, ErrorCode, ServerMsg, SignalPayload};

use super::harness::{Proc, clip_sized, link_of};

const T: Duration = Duration::from_secs(30);
/// Set-ups the newcomer leaves in the middle of (the host's set-up is cancelled).
const LEFT: usize = 85;
/// Set-ups the newcomer never answers, until the host's connect timeout gives up on them: as
/// many as the room holds beside the others running at once (20 by default).
const SILENT: usize = 15;
/// How many of those that leave run at once.
const AT_ONCE: usize = 5;

/// Joins at the signaling level and waits for the host's offer: a set-up the host has begun.
/// The previous batch's places in the room are given back as the server sees them leave: a
/// full room is asked again until they have.
async fn take_offer(link: &Link, name: String) -> SignalClient {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let mut c = SignalClient::connect(&link.signal_url(), None).await.unwrap();
        let nonce = syncy::protocol::auth::nonce();
        c.tx.send(join_msg(&link.room, link.key.join_token(), &name, nonce)).await.unwrap();
        loop {
            match tokio::time::timeout_at(deadline, c.rx.recv()).await.expect("an offer in time") {
                Some(ServerMsg::Signal { payload: SignalPayload::Offer { .. }, .. }) => return c,
                Some(ServerMsg::Error { code: ErrorCode::RoomFull, .. }) => break,
                Some(ServerMsg::Error { code, message }) => panic!("refused: {code:?} {message}"),
                Some(_) => continue,
                None => panic!("signaling closed before the offer"),
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count()
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_hundred_abandoned_set_ups_leave_the_host_as_it_was() {
    let file = clip_sized("setups.mp4", 4, "500kb/s", "160x90");
    let dir = super::harness::test_dir();
    let mut host = Proc::host(&file, dir.path(), &[]);
    let link = Link::parse(&link_of(&mut host)).unwrap();
    let pid = host.child.id();
    let (fds_before, rss_before) = (fds(pid), rss_kib(pid));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let last_offer = rt.block_on(async {
        let silent = futures::future::join_all((0..SILENT).map(|i| take_offer(&link, format!("mute{i}")))).await;
        let silent_since = Instant::now();
        for batch in 0..LEFT / AT_ONCE {
            let names = (0..AT_ONCE).map(|i| format!("gone{batch}-{i}"));
            drop(futures::future::join_all(names.map(|n| take_offer(&link, n))).await);
        }
        let last_offer = Instant::now();
        tokio::time::sleep_until((silent_since + syncy::net::peer::CONNECT_TIMEOUT + Duration::from_secs(1)).into()).await;
        drop(silent);
        last_offer
    });
    // What the host holds settles by 30 s after the last set-up began.
    std::thread::sleep((last_offer + T).saturating_duration_since(Instant::now()));
    let (fds_after, rss_after) = (fds(pid), rss_kib(pid));
    eprintln!("host fds {fds_before} -> {fds_after}, RSS {rss_before} -> {rss_after} KiB");
    assert!(fds_after <= fds_before + 2, "open files {fds_before} -> {fds_after}");
    assert!(rss_after <= rss_before + 20 * 1024, "RSS {rss_before} -> {rss_after} KiB");
    // And an honest newcomer still gets in.
    let mut p = Proc::join(&link.to_string(), "ann", dir.path(), &[]);
    p.event("complete", T);
    assert_eq!(p.quit(), 0);
    assert_eq!(host.quit(), 0);
}

/// A `Join` as a participant sends it: a fresh key of its own, and its proof.
pub fn join_msg(room: &str, join_token: String, name: &str, nonce: String) -> ClientMsg {
    let k = syncy::protocol::guest::GuestSecret::random().key_for(room);
    let name = syncy::protocol::signal::clean_name(name);
    let proof = k.join_proof(room, &nonce, &name);
    ClientMsg::Join { room: room.into(), join_token, name, nonce, key: k.public().to_hex(), proof }
}
