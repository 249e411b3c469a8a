//! Issue 15: a first connection whose ICE connected but whose DTLS did not finish is tried
//! again. The user-space link between the two namespaces (tunlink.rs) drops every DTLS packet
//! the host sends on its first connection — all of that attempt's handshake flights, not only
//! the first (one lost flight DTLS retransmits by itself, and would test nothing) — and the
//! join still succeeds, on the second attempt, with a warning that says so.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::harness::{Proc, clip_sized, sha256};
use super::tunlink::{self, A_ADDR};

const T: Duration = Duration::from_secs(60);

/// A UDP datagram's source port and payload, from a raw IPv4 packet.
fn udp(packet: &[u8]) -> Option<(u16, &[u8])> {
    let ihl = (*packet.first()? & 0x0f) as usize * 4;
    if packet.get(9) != Some(&17) || packet.len() < ihl + 8 {
        return None;
    }
    let src = u16::from_be_bytes([packet[ihl], packet[ihl + 1]]);
    Some((src, &packet[ihl + 8..]))
}

/// DTLS records start with a content type of 20 to 63 (RFC 7983's demultiplexing).
fn is_dtls(payload: &[u8]) -> bool {
    payload.first().is_some_and(|b| (20..=63).contains(b))
}

#[test]
fn a_first_connection_whose_dtls_is_lost_is_tried_again() {
    let first_port: Arc<Mutex<Option<u16>>> = Arc::default();
    let dropped = Arc::new(AtomicU32::new(0));
    let filter: tunlink::Filter = {
        let (first_port, dropped) = (first_port.clone(), dropped.clone());
        Arc::new(move |packet: &[u8], host_to_participant: bool| {
            let Some((port, payload)) = udp(packet).filter(|_| host_to_participant) else { return false };
            if !is_dtls(payload) {
                return false;
            }
            let mut first = first_port.lock().unwrap();
            let first = *first.get_or_insert(port);
            let drop = port == first;
            if drop {
                dropped.fetch_add(1, Ordering::Relaxed);
            }
            drop
        })
    };
    let link = match tunlink::start_filtered(&format!("r{}", std::process::id()), 0.0, Duration::ZERO, filter) {
        Ok(l) => l,
        Err(e) => return syncy::netlab::skip(&format!("cannot make the namespaces and their link here ({e}); needs root, iproute2 and /dev/net/tun")),
    };
    let file = clip_sized("retry.mp4", 4, "1Mb/s", "320x180");
    let dir = super::harness::test_dir();
    let d = dir.path();
    let (in_a, in_b) = (link.a.wrapper(), link.b.wrapper());
    // The README's commands: a wildcard --listen, a plain join.
    let mut host = Proc::spawn_wrapped(&in_a, &["host", file.to_str().unwrap(), "--listen", "0.0.0.0:7878", "--headless"], d, "host", &[]);
    let room = host.event("room", T);
    let link_url = room["link"].as_str().unwrap().to_string();
    assert!(link_url.starts_with(&format!("syncy://{A_ADDR}:7878/")), "{link_url}");
    let mut bob = Proc::spawn_wrapped(&in_b, &["join", &link_url, "--headless", "--name", "bob"], d, "bob", &[]);
    let w = bob.event("warning", T);
    assert!(w["message"].as_str().unwrap().contains("trying again (attempt 2 of 3)"), "{w}");
    assert_eq!(bob.event("complete", T)["sha256"], sha256(&file).as_str());
    let n = dropped.load(Ordering::Relaxed);
    eprintln!("retry: dropped {n} DTLS packets of the host's first connection");
    assert!(n >= 2, "the host's first DTLS flights were dropped ({n})");
    assert_eq!(bob.quit(), 0);
    assert_eq!(host.quit(), 0);
}
