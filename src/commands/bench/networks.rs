//! `syncy bench --suite networks`: time from `syncy join` to the first frame, and the sync
//! spread, per topology — a LAN, two homes behind NAT routers (STUN), behind symmetric NATs
//! (TURN), and with UDP blocked (TURN over TCP) — built from network namespaces
//! (`crate::netlab`) with the real binary in them. Needs root, iproute2, nftables and coturn.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use color_eyre::eyre::{Result, bail, eyre};
use serde_json::Value;

use crate::netlab::{Homes, HomesSpec, Lan, Netns};

/// One topology's figures over the runs.
struct Figures {
    topology: &'static str,
    path: String,
    first_frame_ms: Vec<f64>,
    spread_ms: Vec<f64>,
}

/// A process in a namespace with its JSON events; killed when dropped.
struct Running {
    child: Child,
    events: Receiver<Value>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(ns: &Netns, args: &[&str], config: &std::path::Path) -> Result<Running> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns.name()])
        .arg(exe)
        .args(args)
        .env("XDG_CONFIG_HOME", config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let out = child.stdout.take().ok_or_else(|| eyre!("no stdout"))?;
    let (tx, events) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(|l| l.ok()) {
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && tx.send(v).is_err()
            {
                return;
            }
        }
    });
    Ok(Running { child, events })
}

impl Running {
    fn wait_for(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Result<Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self.events.recv_timeout(left).map_err(|_| eyre!("no {what} within 60 s"))?;
            if v["event"] == "error" {
                bail!("{what}: {}", v["message"]);
            }
            if pred(&v) {
                return Ok(v);
            }
        }
    }

    fn send(&mut self, line: &str) {
        use std::io::Write;
        if let Some(s) = self.child.stdin.as_mut() {
            let _ = writeln!(s, "{line}");
        }
    }
}

fn t(v: &Value) -> f64 {
    v["t_ms"].as_f64().unwrap_or(0.0)
}

/// One room: the host on `host_ns`, a participant on `join_ns` started now. Returns the path,
/// the time to its first frame and the worst drift from the room clock over 6 s of play.
fn one_room(
    host_ns: &Netns,
    join_ns: &Netns,
    file: &std::path::Path,
    host_args: &[&str],
    configs: (&std::path::Path, &std::path::Path),
) -> Result<(String, f64, f64)> {
    let mut args = vec!["host", file.to_str().unwrap_or_default(), "--headless"];
    args.extend_from_slice(host_args);
    let mut host = spawn(host_ns, &args, configs.0)?;
    let link = host.wait_for("the room", |v| v["event"] == "room")?["link"].as_str().unwrap_or_default().to_string();
    let started = crate::output::headless::now_ms();
    let join = spawn(join_ns, &["join", &link, "--headless", "--name", "bench", "--no-sound"], configs.1)?;
    let path = join.wait_for("the path", |v| v["event"] == "path")?["kind"].as_str().unwrap_or_default().to_string();
    let first = join.wait_for("the first frame", |v| v["event"] == "state" && v["buffering"] == false)?;
    let first_frame = t(&first) - started;
    host.send("play");
    let playing = host.wait_for("the room playing", |v| v["event"] == "state" && v["playing"] == true)?;
    let t0 = t(&playing);
    // The room's clock as the host last stated it (it pauses while someone buffers).
    let mut clock = (t0, playing["position_ms"].as_f64().unwrap_or(0.0), true);
    let mut worst: f64 = 0.0;
    loop {
        let v = host.events.try_recv().ok();
        if let Some(s) = v.filter(|v| v["event"] == "state") {
            clock = (t(&s), s["position_ms"].as_f64().unwrap_or(0.0), s["playing"] == true);
        }
        let s = join.wait_for("stats", |v| v["event"] == "stats")?;
        let steady = t(&s) > t0 + 4000.0 && clock.2 && s["playing"] == true && s["buffering"] == false;
        if steady {
            let room = clock.1 + (t(&s) - clock.0);
            worst = worst.max((s["position_ms"].as_f64().unwrap_or(0.0) - room).abs());
        }
        if t(&s) > t0 + 10_000.0 {
            break;
        }
    }
    host.send("quit");
    Ok((path, first_frame, worst))
}

fn config(dir: &std::path::Path, name: &str, toml: &str) -> Result<std::path::PathBuf> {
    crate::netlab::config_dir(dir, name, toml).map_err(|e| eyre!(e))
}

/// A room across two homes built as `spec`, with `syncy serve` and coturn on the internet.
fn homes(spec: HomesSpec, a_turn: &str, b_turn: &str, dir: &std::path::Path, file: &std::path::Path) -> Result<(String, f64, f64)> {
    let h = Homes::new(&spec).map_err(|e| eyre!(e))?;
    let ip = h.server_ip.clone();
    let exe = std::env::current_exe()?;
    let _serve = crate::netlab::serve(&h.wan, &exe, &ip, dir).map_err(|e| eyre!(e))?;
    let _turn = crate::netlab::coturn(&h.wan, &ip, &Default::default(), dir).map_err(|e| eyre!(e))?;
    let toml =
        |turn: &str| format!("server = \"ws://{ip}:7878/\"\nstun = [\"stun:{ip}:3478\"]\nturn = [\"{turn}\"]\nturn_user = \"syncy\"\nturn_pass = \"secret\"\n");
    let (a, b) = (config(dir, "a", &toml(a_turn))?, config(dir, "b", &toml(b_turn))?);
    one_room(&h.home_a, &h.home_b, file, &[], (&a, &b))
}

/// Measures each topology `reps` times.
pub fn run(reps: u32) -> Result<String> {
    crate::netlab::available().map_err(|e| eyre!("the network benchmark needs its namespaces: {e}"))?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("clip.mp4");
    let spec = crate::media::sample::SampleSpec { duration: 30.0, width: 640, height: 360, ..Default::default() };
    crate::media::sample::write_sample(&file, &spec)?;
    let turn = "turn:10.99.100.1:3478";
    let turn_tcp = "turn:10.99.100.1:3478?transport=tcp";
    let mut all = vec![];
    for (topology, which) in [("LAN", 0), ("two NATs (STUN)", 1), ("symmetric NATs (TURN)", 2), ("UDP blocked (TURN/TCP)", 3)] {
        let mut f = Figures { topology, path: String::new(), first_frame_ms: vec![], spread_ms: vec![] };
        for rep in 0..reps.max(1) {
            let d = dir.path().join(format!("{which}-{rep}"));
            std::fs::create_dir_all(&d)?;
            eprintln!("{topology}, run {}…", rep + 1);
            let (path, first, spread) = match which {
                0 => {
                    let lan = Lan::v4().map_err(|e| eyre!(e))?;
                    let empty = config(&d, "none", "")?;
                    one_room(&lan.a, &lan.b, &file, &["--listen", "0.0.0.0:7878"], (&empty, &empty))?
                }
                1 => homes(HomesSpec::default(), turn, turn, &d, &file)?,
                2 => homes(HomesSpec { symmetric: true, ..Default::default() }, turn, turn, &d, &file)?,
                _ => homes(HomesSpec { block_udp_b: true, ..Default::default() }, turn, turn_tcp, &d, &file)?,
            };
            f.path = path;
            f.first_frame_ms.push(first);
            f.spread_ms.push(spread);
        }
        all.push(f);
    }
    Ok(table(&all))
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.get(s.len() / 2).copied().unwrap_or(0.0)
}

fn table(all: &[Figures]) -> String {
    let mut out = String::from(
        "\n| topology | path | first frame after `syncy join` (median, all runs) | worst drift from the room clock (median, max) |\n|---|---|---|---|\n",
    );
    for f in all {
        let runs: Vec<String> = f.first_frame_ms.iter().map(|v| format!("{v:.0}")).collect();
        let max = f.spread_ms.iter().cloned().fold(0.0, f64::max);
        out += &format!(
            "| {} | {} | {:.0} ms ({}) | {:.1} ms ({max:.1}) |\n",
            f.topology,
            f.path,
            median(&f.first_frame_ms),
            runs.join(", "),
            median(&f.spread_ms)
        );
    }
    out
}
