//! Issue 15: between real machines. Each test builds its network out of namespaces
//! (`syncy::netlab`, NETWORKS.md) and runs the README's commands in them, as users would:
//! no `--ice-addr`, no test-only flags. SKIPPED with the reason where namespaces cannot be made.

use std::time::Duration;

use syncy::netlab::Lan;

use super::harness::{clip_sized, sha256};
use super::nets::{self, T, syncy};

/// The README's `syncy host` and a plain `syncy join LINK` on another machine of the LAN:
/// the links name the LAN address and no loopback one, the copy is byte-exact, the path is
/// direct, and a third participant on the host's own machine joins the same room, in sync.
#[test]
fn on_a_lan_the_readme_commands_work_between_two_machines() {
    let Some(lan) = nets::build(Lan::v4) else {
        return;
    };
    let file = clip_sized("lan.mp4", 30, "1Mb/s", "320x180");
    let want = sha256(&file);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut host = syncy(&lan.a, &["host", file.to_str().unwrap(), "--listen", "0.0.0.0:7878", "--headless"], d, "host", &[]);
    let room = host.event("room", T);
    let links = nets::links(&room);
    assert!(links.iter().any(|(u, k)| u.starts_with("syncy://10.99.0.1:7878/") && k == "lan"), "{links:?}");
    assert!(!links.iter().any(|(u, _)| u.contains("127.0.0.1") || u.contains("[::1]")), "{links:?}");
    let link = room["link"].as_str().unwrap().to_string();
    assert_eq!(link, links[0].0);

    let copy = |n: &str| d.join(format!("{n}.copy")).to_str().unwrap().to_string();
    let (bob_copy, cy_copy) = (copy("bob"), copy("cy"));
    let mut bob = syncy(&lan.b, &["join", &link, "--headless", "--name", "bob", "--save", &bob_copy], d, "bob", &[]);
    let path = bob.event("path", T);
    assert_eq!(path["kind"], "direct", "{path}");
    assert_eq!(path["remote"]["address"], "10.99.0.1", "{path}");
    // The third participant, on the host's machine, by the same link.
    let mut cy = syncy(&lan.a, &["join", &link, "--headless", "--name", "cy", "--save", &cy_copy], d, "cy", &[]);
    assert_eq!(cy.event("path", T)["kind"], "direct");
    for (p, c) in [(&mut bob, &bob_copy), (&mut cy, &cy_copy)] {
        assert_eq!(p.event("complete", T)["sha256"], want.as_str());
        assert_eq!(sha256(std::path::Path::new(c)), want);
    }
    host.send("play");
    let worst = nets::steady_spread(&mut host, &mut [&mut bob, &mut cy], Duration::from_secs(4), Duration::from_secs(8));
    eprintln!("LAN: worst spread {worst:.1} ms");
    assert!(worst <= 20.0, "spread {worst} ms");
    assert_eq!(bob.quit(), 0);
    assert_eq!(cy.quit(), 0);
    assert_eq!(host.quit(), 0);
}

/// The command the issue saw fail: a wildcard `--listen` with `--advertise` the LAN address.
#[test]
fn on_a_lan_a_wildcard_listen_with_advertise_connects() {
    let Some(lan) = nets::build(Lan::v4) else {
        return;
    };
    let file = clip_sized("lan-adv.mp4", 6, "1Mb/s", "320x180");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let args = ["host", file.to_str().unwrap(), "--listen", "0.0.0.0:7878", "--advertise", "10.99.0.1", "--headless"];
    let mut host = syncy(&lan.a, &args, d, "host", &[]);
    let room = host.event("room", T);
    assert_eq!(nets::links(&room), vec![(room["link"].as_str().unwrap().to_string(), "advertised".to_string())]);
    let link = room["link"].as_str().unwrap();
    assert!(link.starts_with("syncy://10.99.0.1:7878/"), "{link}");
    let mut bob = syncy(&lan.b, &["join", link, "--headless", "--name", "bob"], d, "bob", &[]);
    assert_eq!(bob.event("complete", T)["sha256"], sha256(&file).as_str());
    assert_eq!(bob.quit(), 0);
    assert_eq!(host.quit(), 0);
}

/// The same over IPv6 only: `--listen [::]:7878`, links with brackets, ICE over IPv6.
#[test]
fn on_an_ipv6_only_lan_links_listen_and_ice_work() {
    let Some(lan) = nets::build(Lan::v6) else {
        return;
    };
    let file = clip_sized("lan6.mp4", 6, "1Mb/s", "320x180");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut host = syncy(&lan.a, &["host", file.to_str().unwrap(), "--listen", "[::]:7878", "--headless"], d, "host", &[]);
    let room = host.event("room", T);
    let links = nets::links(&room);
    assert!(links.iter().any(|(u, k)| u.starts_with("syncy://[fd99::1]:7878/") && k == "lan"), "{links:?}");
    let link = links.iter().find(|(u, _)| u.contains("[fd99::1]")).unwrap().0.clone();
    let mut bob = syncy(&lan.b, &["join", &link, "--headless", "--name", "bob"], d, "bob", &[]);
    let path = bob.event("path", T);
    assert_eq!((path["kind"].as_str(), path["remote"]["address"].as_str()), (Some("direct"), Some("fd99::1")), "{path}");
    assert_eq!(bob.event("complete", T)["sha256"], sha256(&file).as_str());
    // --advertise takes an IPv6 address too.
    let args = ["host", file.to_str().unwrap(), "--listen", "[::]:7879", "--advertise", "fd99::1", "--headless"];
    let mut host2 = syncy(&lan.a, &args, d, "host2", &[]);
    let link2 = host2.event("room", T)["link"].as_str().unwrap().to_string();
    assert!(link2.starts_with("syncy://[fd99::1]:7879/"), "{link2}");
    let mut cy = syncy(&lan.b, &["join", &link2, "--headless", "--name", "cy"], d, "cy", &[]);
    assert_eq!(cy.event("complete", T)["sha256"], sha256(&file).as_str());
    for p in [&mut bob, &mut cy, &mut host, &mut host2] {
        assert_eq!(p.quit(), 0);
    }
}
