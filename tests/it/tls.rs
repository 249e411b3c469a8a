//! Issue 6: TLS for the signaling server — `wss://` and `syncys://` links, verified clients.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::harness::{Proc, bin, clip_sized, daemon, free_port, sha256};

const T: Duration = Duration::from_secs(60);

/// A self-signed certificate for 127.0.0.1 and localhost: (cert.pem, key.pem).
fn certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let c = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let (cert, key) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
    std::fs::write(&cert, c.cert.pem()).unwrap();
    std::fs::write(&key, c.signing_key.serialize_pem()).unwrap();
    (cert, key)
}

fn tls_link(host: &mut Proc) -> String {
    let link = host.event("room", T)["link"].as_str().unwrap().to_string();
    assert!(link.starts_with("syncys://127.0.0.1:"), "{link}");
    link
}

#[test]
fn an_embedded_tls_server_gives_syncys_links_and_only_verified_clients_get_in() {
    let file = clip_sized("tls.mp4", 6, "1Mb/s", "320x180");
    let want = sha256(&file);
    let dir = super::harness::test_dir();
    let (cert, key) = certificate(dir.path(), "server");
    let mut host = Proc::host(&file, dir.path(), &["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()]);
    let link = tls_link(&mut host);

    // Trusting the certificate: in, byte-exact.
    let mut ann = Proc::join(&link, "ann", dir.path(), &["--tls-ca", cert.to_str().unwrap()]);
    assert_eq!(ann.event("complete", T)["sha256"], want.as_str());

    // Not trusting it (not in the system's roots): refused with the reason, nothing joined.
    let mut eve = Proc::join(&link, "eve", dir.path(), &[]);
    assert_ne!(eve.wait(T), 0);
    let err = eve.stderr_text();
    assert!(err.contains("certificate") && err.contains("signaling server"), "{err}");

    // Trusting a different certificate: refused as well.
    let (other, _) = certificate(dir.path(), "other");
    let mut mal = Proc::join(&link, "mal", dir.path(), &["--tls-ca", other.to_str().unwrap()]);
    assert_ne!(mal.wait(T), 0);
    assert!(mal.stderr_text().contains("certificate"), "{}", mal.stderr_text());

    // A plain ws:// client at a TLS server does not get in either.
    let plain = link.replacen("syncys://", "syncy://", 1);
    let mut bob = Proc::join(&plain, "bob", dir.path(), &[]);
    assert_ne!(bob.wait(T), 0);

    host.drain();
    let joined: Vec<_> = host.seen.iter().filter(|v| v["event"] == "peer_joined").map(|v| v["name"].clone()).collect();
    assert_eq!(joined, ["ann"], "only the verified participant joined");
    assert_eq!(ann.quit(), 0);
    assert_eq!(host.quit(), 0);
}

#[test]
fn a_host_on_an_external_wss_server_verifies_it_too() {
    let file = clip_sized("tls.mp4", 6, "1Mb/s", "320x180");
    let want = sha256(&file);
    let dir = super::harness::test_dir();
    let (cert, key) = certificate(dir.path(), "server");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let _server = daemon(bin(), &["serve", "--listen", &listen, "--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()], port);
    let url = format!("wss://{listen}/");

    // Without trusting the certificate the host cannot open its room.
    let mut untrusting = Proc::spawn(&["host", file.to_str().unwrap(), "--headless", "--server", &url], dir.path(), "untrusting");
    assert_ne!(untrusting.wait(T), 0);
    assert!(untrusting.stderr_text().contains("certificate"), "{}", untrusting.stderr_text());

    let mut host = Proc::spawn(&["host", file.to_str().unwrap(), "--headless", "--server", &url, "--tls-ca", cert.to_str().unwrap()], dir.path(), "host");
    let link = tls_link(&mut host);
    let mut ann = Proc::join(&link, "ann", dir.path(), &["--tls-ca", cert.to_str().unwrap()]);
    assert_eq!(ann.event("complete", T)["sha256"], want.as_str());
    assert_eq!(ann.quit(), 0);
    assert_eq!(host.quit(), 0);
}
