//! `syncy bench --suite quality`: how fast the host makes renditions, in multiples of real
//! time, beside decoding the same clip alone (the floor any transcode pays) in the same run.

use std::path::Path;
use std::time::Instant;

use color_eyre::eyre::Result;

use crate::commands::bench::playback::decode_each;
use crate::media::sample::{SampleSpec, write_sample};
use crate::media::transcode::{levels, transcode};

/// Runs the suite; returns the Markdown section.
pub async fn run() -> Result<String> {
    let dir = tempfile::tempdir()?;
    let mut out = String::from("| source | work | seconds for 20 s of media | × real time |\n|---|---|---|---|\n");
    for (w, h) in [(1280u32, 720u32), (1920, 1080)] {
        let clip = dir.path().join(format!("src{h}.mp4"));
        eprintln!("preparing a 20 s {w}x{h} clip…");
        let spec = SampleSpec { duration: 20.0, width: w, height: h, video_bitrate: if h > 720 { 8_000_000 } else { 4_000_000 }, ..Default::default() };
        let c = clip.clone();
        tokio::task::spawn_blocking(move || write_sample(&c, &spec)).await??;
        let c = clip.clone();
        let rows = tokio::task::spawn_blocking(move || -> Result<Vec<(String, f64)>> {
            let mut rows = Vec::new();
            let t = Instant::now();
            decode_each(&c, (160, 90), &mut |_| Ok(()))?;
            rows.push(("decode only (baseline)".to_string(), t.elapsed().as_secs_f64()));
            for (name, r) in levels() {
                let out = c.with_extension(format!("{name}.mp4"));
                let t = Instant::now();
                transcode(Path::new(&c), &out, &r, 0, |_| true)?;
                rows.push((format!("transcode to {name} ({}p, {} kb/s)", r.height.min(h), r.video_bps / 1000), t.elapsed().as_secs_f64()));
            }
            Ok(rows)
        })
        .await??;
        for (what, secs) in rows {
            eprintln!("{w}x{h} {what}: {secs:.2} s = {:.1}× real time", 20.0 / secs);
            out += &format!("| {w}×{h} H.264 | {what} | {secs:.2} | {:.1}× |\n", 20.0 / secs);
        }
    }
    out += "\nOne transcode at a time on the 2-core machine, H.264 `veryfast` without B-frames + AAC into fragmented MP4, from the start of the clip; decode only is the same clip through the player's decoder thread scaled to 160×90.\n";
    let clip = dir.path().join("room720.mp4");
    eprintln!("preparing a 90 s 1280x720 clip for the host CPU…");
    let c = clip.clone();
    tokio::task::spawn_blocking(move || {
        write_sample(&c, &SampleSpec { duration: 90.0, width: 1280, height: 720, video_bitrate: 4_000_000, ..Default::default() })
    })
    .await??;
    out += "\n### Host CPU with participants on three levels\n\n";
    out += &tokio::task::spawn_blocking(move || host_cpu(&clip)).await??;
    Ok(out)
}

/// Host CPU while three participants watch on three levels, beside the same room all on
/// `high` (no transcoding) in the same run. The host and the participants are separate
/// `syncy` processes; the host's CPU time comes from /proc.
pub fn host_cpu(clip: &Path) -> Result<String> {
    let mut out = String::from("| room | host CPU, first 10 s | host CPU, the 30 s after |\n|---|---|---|\n");
    for (what, levels) in [("3 participants on high (baseline)", ["high", "high", "high"]), ("3 participants on high, medium, low", ["high", "medium", "low"])]
    {
        eprintln!("{what}…");
        let (first, steady) = room_cpu(clip, &levels)?;
        eprintln!("{what}: {:.0}% then {:.0}% of a core", first * 100.0, steady * 100.0);
        out += &format!("| {what} | {:.0}% of a core | {:.0}% of a core |\n", first * 100.0, steady * 100.0);
    }
    out += "\nCPU time of the `syncy host` process over wall time (100% = one core), participants in their own processes (`--render none --no-sound`), from the moment all three play their level. The first seconds include making each rendition 30 s ahead of its viewer; after that a rendition is made at the pace it is watched.\n";
    Ok(out)
}

/// (CPU share over the first 10 s, over the 30 s after) of a host whose participants play
/// `levels`.
fn room_cpu(clip: &Path, levels: &[&str]) -> Result<(f64, f64)> {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let exe = std::env::current_exe()?;
    let mut host = Command::new(&exe)
        .args(["host", &clip.to_string_lossy(), "--headless", "--autoplay", "--listen", "127.0.0.1:0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut lines = BufReader::new(host.stdout.take().expect("piped")).lines();
    let link = loop {
        let Some(line) = lines.next() else { color_eyre::eyre::bail!("the host stopped before its room opened") };
        let v: serde_json::Value = serde_json::from_str(&line?)?;
        if v["event"] == "room" {
            break v["link"].as_str().unwrap_or_default().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let (tx, rx) = std::sync::mpsc::channel::<(usize, String)>();
    let mut peers = vec![];
    for (i, level) in levels.iter().enumerate() {
        let mut p = Command::new(&exe)
            .args(["join", &link, "--headless", "--name", &format!("p{i}"), "--render", "none", "--no-sound", "--quality", level])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = p.stdout.take().expect("piped");
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send((i, line)).is_err() {
                    return;
                }
            }
        });
        peers.push(p);
    }
    // Everyone plays the level asked for.
    let mut ready = vec![false; levels.len()];
    let deadline = Instant::now() + std::time::Duration::from_secs(120);
    while ready.iter().any(|r| !r) {
        let left = deadline.saturating_duration_since(Instant::now());
        let (i, line) = rx.recv_timeout(left).map_err(|_| color_eyre::eyre::eyre!("participants did not reach their levels"))?;
        let v: serde_json::Value = serde_json::from_str(&line)?;
        if v["event"] == "stats" && v["quality"] == levels[i] && v["quality_next"].is_null() && v["playing"] == true {
            ready[i] = true;
        }
    }
    let cpu = |pid: u32| -> Result<f64> {
        // utime and stime, fields 14 and 15 of /proc/PID/stat, in clock ticks.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        let after_name = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
        let f: Vec<&str> = after_name.split_whitespace().collect();
        let ticks = f[11].parse::<f64>()? + f[12].parse::<f64>()?;
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        Ok(ticks / hz)
    };
    let (c0, t0) = (cpu(host.id())?, Instant::now());
    std::thread::sleep(std::time::Duration::from_secs(10));
    let (c1, t1) = (cpu(host.id())?, Instant::now());
    std::thread::sleep(std::time::Duration::from_secs(30));
    let (c2, t2) = (cpu(host.id())?, Instant::now());
    for mut p in peers {
        let _ = p.kill();
        let _ = p.wait();
    }
    let _ = host.kill();
    let _ = host.wait();
    Ok(((c1 - c0) / (t1 - t0).as_secs_f64(), (c2 - c1) / (t2 - t1).as_secs_f64()))
}
