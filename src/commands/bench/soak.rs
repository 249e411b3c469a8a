//! `syncy bench --suite soak`: a room of N participants (20 by default) plays for M minutes
//! (10 by default) on loopback, in this process. Reported: stalls (a participant buffering
//! after the room started), the worst sync spread of each minute, the process's resident
//! memory each minute (flat means no leak: its growth from the second minute to the last),
//! and CPU. Not in `--suite all`: it takes as long as it plays.

use std::time::{Duration, Instant};

use color_eyre::eyre::{Result, bail};

use crate::commands::bench::playback::{Room, showing, worst_spread};
use crate::engine::{Command, Event};
use crate::media::sample::{SampleSpec, write_sample};

/// Resident memory of this process, bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

/// One minute of the soak.
struct Minute {
    rss: u64,
    spread_ms: f64,
    stalls: u32,
    cpu_s: f64,
}

/// Runs the soak; returns the Markdown section.
pub async fn run(participants: usize, minutes: u32) -> Result<String> {
    if participants == 0 || participants > 20 || minutes == 0 {
        bail!("the soak takes 1 to 20 participants and at least a minute");
    }
    let dir = tempfile::tempdir()?;
    let clip = dir.path().join("soak.mp4");
    // A little longer than the soak, so the room never reaches the end.
    let secs = minutes as f64 * 60.0 + 30.0;
    eprintln!("preparing a {secs:.0} s clip…");
    {
        let clip = clip.clone();
        tokio::task::spawn_blocking(move || {
            write_sample(&clip, &SampleSpec { duration: secs, width: 320, height: 180, video_bitrate: 400_000, ..Default::default() })
        })
        .await??;
    }
    let size = std::fs::metadata(&clip)?.len();
    let mut room = Room::open(&clip, participants).await?;
    let all: Vec<usize> = (0..participants).collect();
    room.until_all(&all, Duration::from_secs(120), showing(false)).await?;
    room.host.send(Command::Play)?;
    room.until_all(&all, Duration::from_secs(60), showing(true)).await?;
    eprintln!("{participants} participants playing; soaking for {minutes} min");
    let started = Instant::now();
    let mut table = vec![];
    let mut total_stalls = 0;
    let mut cpu = crate::commands::bench::cpu_now();
    for m in 0..minutes {
        let end = tokio::time::Instant::now() + Duration::from_secs(60);
        let mut samples = vec![vec![]; participants];
        let mut stalls = 0;
        while let Ok(Some((i, _, e))) = tokio::time::timeout_at(end, room.events.recv()).await {
            match e {
                Event::JoinStats(s) if s.playing && !s.buffering => samples[i].push((s.t_ms, s.position_ms as f64)),
                Event::State { buffering: true, .. } => {
                    stalls += 1;
                    eprintln!("participant {i} buffering at minute {m}");
                }
                Event::Error { message } => bail!("participant {i}: {message}"),
                _ => {}
            }
        }
        let (spread_ms, _) = worst_spread(&samples);
        let now_cpu = crate::commands::bench::cpu_now();
        let row = Minute { rss: rss(), spread_ms, stalls, cpu_s: now_cpu - cpu };
        cpu = now_cpu;
        total_stalls += stalls;
        eprintln!(
            "minute {}: rss {:.1} MiB, worst spread {:.1} ms, stalls {}, cpu {:.0}% of a core",
            m + 1,
            row.rss as f64 / 1048576.0,
            row.spread_ms,
            row.stalls,
            row.cpu_s / 60.0 * 100.0
        );
        table.push(row);
    }
    let played = started.elapsed().as_secs_f64();
    room.close().await;
    let mut out = format!(
        "Soak: {participants} participants (in one process, built-in player decoding, 2 MiB buffer each) watch a {:.1} MB 320×180 clip for {played:.0} s on loopback.\n\n| minute | resident memory (MiB) | worst sync spread (ms) | stalls | CPU (% of a core) |\n|---|---|---|---|---|\n",
        size as f64 / 1e6
    );
    for (m, r) in table.iter().enumerate() {
        out += &format!("| {} | {:.1} | {:.1} | {} | {:.0} |\n", m + 1, r.rss as f64 / 1048576.0, r.spread_ms, r.stalls, r.cpu_s / 60.0 * 100.0);
    }
    let base = table.get(1).unwrap_or(&table[0]).rss as f64;
    let last = table[table.len() - 1].rss as f64;
    out += &format!(
        "\nStalls after the room started: {total_stalls}. Memory from minute 2 to minute {}: {:+.1}% ({:.1} → {:.1} MiB).\n",
        table.len(),
        (last / base - 1.0) * 100.0,
        base / 1048576.0,
        last / 1048576.0
    );
    Ok(out)
}
