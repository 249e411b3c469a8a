//! What the network tests share: the real `syncy` run inside namespaces (`syncy::netlab`),
//! servers on the "internet", and the sync check.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use syncy::netlab::{Coturn, Daemon, Netns};

use super::harness::Proc;

pub const T: Duration = Duration::from_secs(60);

/// The network, or None after saying why it cannot be built (SKIPPED; a failure under CI).
pub fn build<N>(make: impl FnOnce() -> Result<N, String>) -> Option<N> {
    if let Err(e) = syncy::netlab::available() {
        syncy::netlab::skip(&e);
        return None;
    }
    match make() {
        Ok(n) => Some(n),
        Err(e) => {
            syncy::netlab::skip(&format!("cannot build the test network: {e}"));
            None
        }
    }
}

pub use super::harness::test_dir;

/// `syncy args…` on the machine `ns`, as a user there would run it.
pub fn syncy(ns: &Netns, args: &[&str], dir: &Path, tag: &str, env: &[(&str, &str)]) -> Proc {
    Proc::spawn_wrapped(&ns.wrapper(), args, dir, tag, env)
}

/// A daemon inside `ns` (its output in `dir/tag.log`), gone when dropped.
pub fn daemon_in(ns: &Netns, program: &str, args: &[&str], dir: &Path, tag: &str) -> Daemon {
    ns.daemon(program, args, &dir.join(format!("{tag}.log"))).unwrap()
}

/// `syncy serve` on `ip:7878` inside `ns`, listening when this returns.
pub fn serve_in(ns: &Netns, ip: &str, dir: &Path) -> Daemon {
    syncy::netlab::serve(ns, Path::new(super::harness::bin()), ip, dir).unwrap()
}

/// coturn on `ip` inside `ns` (STUN and TURN on 3478, UDP and TCP; user syncy/secret).
pub fn coturn_in(ns: &Netns, ip: &str, dir: &Path) -> Daemon {
    coturn_on(ns, ip, &[], dir)
}

/// The same, also listening on the addresses `also` (a second STUN server, to tell a symmetric
/// NAT by).
pub fn coturn_on(ns: &Netns, ip: &str, also: &[&str], dir: &Path) -> Daemon {
    let opts = Coturn { also: also.iter().map(|a| a.to_string()).collect(), tls: None };
    syncy::netlab::coturn(ns, ip, &opts, dir).unwrap()
}

/// coturn with TURN over TLS on 5349 too, with this certificate and key (PEM files).
pub fn coturn_tls(ns: &Netns, ip: &str, cert: &Path, key: &Path, dir: &Path) -> Daemon {
    let opts = Coturn { also: vec![], tls: Some((cert.to_path_buf(), key.to_path_buf())) };
    syncy::netlab::coturn(ns, ip, &opts, dir).unwrap()
}

/// Debian's miniupnpd on `router` (WAN `wan0`, LAN `lan0`), with the nftables chains its
/// nft backend fills; mappings only for its LAN, ports 1024 and up. Ready when this returns.
pub fn miniupnpd_with(router: &Netns, lan: &str, upnp: bool, dir: &Path) -> Daemon {
    assert!(
        Command::new("miniupnpd").arg("--version").output().is_ok(),
        "miniupnpd is missing: run scripts/setup-debian.sh (it installs the miniupnpd package)"
    );
    router
        .nft(
            "table inet filter {
  chain forward { type filter hook forward priority 0; policy accept; jump miniupnpd; }
  chain miniupnpd { }
  chain prerouting { type nat hook prerouting priority -100; policy accept; jump prerouting_miniupnpd; }
  chain postrouting { type nat hook postrouting priority 100; policy accept; jump postrouting_miniupnpd; }
  chain prerouting_miniupnpd { }
  chain postrouting_miniupnpd { }
}
",
        )
        .unwrap();
    let conf = dir.join("miniupnpd.conf");
    let leases = dir.join("upnp.leases");
    std::fs::write(
        &conf,
        format!(
            "ext_ifname=wan0\nlistening_ip=lan0\nenable_upnp={}\nenable_natpmp=yes\nsecure_mode=yes\nsystem_uptime=no\n\
             lease_file={}\nuuid=6b0c2e6e-5f4b-4d2a-9a55-7a1f3c2d9e10\nallow 1024-65535 {lan}.0/24 1024-65535\ndeny 0-65535 0.0.0.0/0 0-65535\n",
            if upnp { "yes" } else { "no" },
            leases.display()
        ),
    )
    .unwrap();
    // A pid file of its own: the default one is the machine's, shared by tests running at once.
    let pid = dir.join("miniupnpd.pid");
    let d = daemon_in(router, "miniupnpd", &["-d", "-f", conf.to_str().unwrap(), "-P", pid.to_str().unwrap()], dir, "miniupnpd");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let listening = if upnp { ":1900" } else { ":5351" };
    while !router.exec("ss", &["-lun"]).unwrap_or_default().contains(listening) {
        assert!(std::time::Instant::now() < deadline, "miniupnpd did not start: {}", std::fs::read_to_string(dir.join("miniupnpd.log")).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(50));
    }
    d
}

/// A config dir for `XDG_CONFIG_HOME` holding `syncy/config.toml` with `toml` (0600).
pub fn config_dir(dir: &Path, name: &str, toml: &str) -> std::path::PathBuf {
    syncy::netlab::config_dir(dir, name, toml).unwrap()
}

fn f(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or_else(|| panic!("{k} missing in {v}"))
}

/// The worst sync spread (ms) between `participants` and the host's room clock over `window`,
/// starting `settle` after the room started playing (steady state, as the fault tests judge).
pub fn steady_spread(host: &mut Proc, participants: &mut [&mut Proc], settle: Duration, window: Duration) -> f64 {
    let started = f(&host.wait_for("the room playing", T, |v| v["event"] == "state" && v["playing"] == true), "t_ms");
    let (from, to) = (started + settle.as_secs_f64() * 1000.0, started + (settle + window).as_secs_f64() * 1000.0);
    let past = |v: &Value| v["event"] == "stats" && f(v, "t_ms") > to;
    host.wait_for("stats past the window", T, past);
    for p in participants.iter_mut() {
        p.wait_for("stats past the window", T, past);
    }
    let in_window = |p: &Proc, room: bool| -> Vec<(f64, f64)> {
        p.seen
            .iter()
            .filter(|v| v["event"] == "stats" && v["playing"] == true && (room || v["buffering"] == false))
            .filter(|v| (from..=to).contains(&f(v, "t_ms")))
            .map(|v| (f(v, "t_ms"), f(v, "position_ms")))
            .collect()
    };
    let mut samples = vec![in_window(host, true)];
    samples.extend(participants.iter().map(|p| in_window(p, false)));
    let sp = super::playback::spreads(&samples);
    assert!(sp.len() >= window.as_secs() as usize / 2, "{} comparable instants in {window:?}: {samples:?}", sp.len());
    sp.iter().cloned().fold(0.0, f64::max)
}

/// The host's links from its `room` event: (url, kind).
pub fn links(room: &Value) -> Vec<(String, String)> {
    room["links"].as_array().unwrap().iter().map(|l| (l["url"].as_str().unwrap().to_string(), l["kind"].as_str().unwrap().to_string())).collect()
}
