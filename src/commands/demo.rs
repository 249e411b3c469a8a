//! `syncy demo`: an embedded server, a generated clip, a host and N participants in one process,
//! all on loopback. At a terminal it is the host's dashboard with one participant's picture,
//! until `q`; otherwise per-participant progress until every copy is complete and verified.

use std::collections::BTreeMap;
use std::time::Duration;

use color_eyre::eyre::{Result, bail, eyre};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::engine::host::{self, DEFAULT_UPLOAD_LIMIT};
use crate::engine::join::{self, JoinOptions};
use crate::engine::{Command, Event};
use crate::media::sample::{SampleSpec, write_sample};
use crate::player::picture::Graphics;
use crate::player::screen::Screen;
use crate::protocol::link::Link;
use crate::ui::host_app::{self, Inset};

const NAMES: [&str; 20] =
    ["ann", "bob", "cy", "dee", "eve", "fay", "gus", "hal", "ivy", "jo", "kim", "lou", "max", "ned", "oz", "pia", "quin", "rex", "sue", "tom"];

#[derive(Default)]
struct Progress {
    received: u32,
    chunks: u32,
    down_bps: u64,
    sha256: Option<String>,
    seconds: f64,
    size: u64,
}

/// The demo's participants, all in this process.
struct Crowd {
    quits: Vec<mpsc::UnboundedSender<Command>>,
    tasks: Vec<tokio::task::JoinHandle<Result<join::JoinEnd>>>,
}

impl Crowd {
    /// Starts `n` participants (named from [`NAMES`]) on `link`; their events come tagged with
    /// their index.
    fn start(link: &Link, n: usize, render: impl Fn(usize) -> join::Render) -> (Crowd, mpsc::UnboundedReceiver<(usize, Event)>) {
        let (all_tx, all_rx) = mpsc::unbounded_channel();
        let mut crowd = Crowd { quits: Vec::new(), tasks: Vec::new() };
        for (i, name) in NAMES.iter().enumerate().take(n) {
            let (tx, mut rx) = mpsc::unbounded_channel();
            let (qtx, qrx) = mpsc::unbounded_channel();
            crowd.quits.push(qtx);
            let all_tx = all_tx.clone();
            tokio::spawn(async move {
                while let Some(ev) = rx.recv().await {
                    let _ = all_tx.send((i, ev));
                }
            });
            let opts = JoinOptions { name: (*name).into(), render: render(i), sound: false, ..JoinOptions::new(link.clone()) };
            crowd.tasks.push(tokio::spawn(join::run(opts, tx, qrx)));
        }
        (crowd, all_rx)
    }

    /// Asks everyone to leave and waits (a few seconds at most) for them.
    async fn stop(self) {
        for q in &self.quits {
            let _ = q.send(Command::Quit);
        }
        // One deadline for all of them, not five seconds each.
        let _ = tokio::time::timeout(Duration::from_secs(5), futures::future::join_all(self.tasks)).await;
    }
}

/// Generates the demo clip, saying so (it takes a few seconds).
async fn make_clip(dir: &std::path::Path, duration: f64) -> Result<std::path::PathBuf> {
    let clip = dir.join("syncy-demo.mp4");
    eprintln!("generating a {duration:.0} s 1280x720 sample clip…");
    let spec = SampleSpec { duration, width: 1280, height: 720, video_bitrate: 4_000_000, ..Default::default() };
    let c = clip.clone();
    tokio::task::spawn_blocking(move || write_sample(&c, &spec)).await??;
    Ok(clip)
}

/// The dashboard demo: the host's view with `NAMES[0]`'s picture (`graphics`; none without),
/// until the user quits.
pub async fn run_dashboard(participants: u32, duration: f64, graphics: Option<Graphics>) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let clip = make_clip(dir.path(), duration).await?;
    let room =
        host::start_local(clip, Some("demo".into()), "host", host::PlaybackPolicy { autoplay: true, ..Default::default() }, DEFAULT_UPLOAD_LIMIT).await?;
    let (ui_tx, ui_rx) = mpsc::unbounded_channel::<Event>();
    // The host's events feed the dashboard; participants' errors join them.
    {
        let (mut host_rx, ui_tx) = (room.events, ui_tx.clone());
        tokio::spawn(async move {
            while let Some(ev) = host_rx.recv().await {
                if ui_tx.send(ev).is_err() {
                    break;
                }
            }
        });
    }
    let screen = Screen::new();
    let (crowd, mut crowd_rx) = Crowd::start(&room.link, participants as usize, |i| match (i, graphics) {
        (0, Some(_)) => join::Render::Screen(screen.clone()),
        _ => join::Render::None,
    });
    {
        let ui_tx = ui_tx.clone();
        tokio::spawn(async move {
            while let Some((i, ev)) = crowd_rx.recv().await {
                if let Event::Error { message } = ev {
                    let _ = ui_tx.send(Event::Error { message: format!("{}: {message}", NAMES[i]) });
                }
            }
        });
    }
    drop(ui_tx);
    let inset = graphics.map(|graphics| Inset { screen: screen.clone(), graphics });
    let (opened, host_cmd) = (room.opened, room.commands.clone());
    let view = tokio::task::spawn_blocking(move || host_app::run(vec![opened], ui_rx, host_cmd, inset));
    let shown = view.await?;
    let _ = room.commands.send(Command::Quit);
    crowd.stop().await;
    let _ = tokio::time::timeout(Duration::from_secs(5), room.task).await;
    shown.map_err(|e| eyre!("terminal: {e}"))
}

/// Runs the demo; returns when every participant holds a verified copy (or on Ctrl-C).
pub async fn run(participants: u32, duration: f64, mut commands: mpsc::UnboundedReceiver<Command>) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let clip = make_clip(dir.path(), duration).await?;
    let expected = hex::encode(Sha256::digest(std::fs::read(&clip)?));

    let room =
        host::start_local(clip.clone(), Some("demo".into()), "host", host::PlaybackPolicy { autoplay: true, ..Default::default() }, DEFAULT_UPLOAD_LIMIT)
            .await?;
    let (link, mut host_rx, host_cmd, host_task) = (room.link, room.events, room.commands, room.task);
    println!("room open: {link}");

    let (crowd, mut p_rx) = Crowd::start(&link, participants as usize, |_| join::Render::None);

    let mut progress: BTreeMap<usize, Progress> = (0..participants as usize).map(|i| (i, Progress::default())).collect();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let outcome: Result<()> = loop {
        tokio::select! {
            Some((i, ev)) = p_rx.recv() => {
                let p = progress.get_mut(&i).expect("known participant");
                match ev {
                    Event::Manifest { chunks, .. } => p.chunks = chunks,
                    Event::JoinStats(s) => { p.received = s.received_chunks; p.down_bps = s.down_bps; }
                    Event::Complete { matched: false, .. } => break Err(eyre!("{}: the copy is not the host's file", NAMES[i])),
                    Event::Complete { sha256, seconds, size, .. } => {
                        p.received = p.chunks;
                        p.sha256 = Some(sha256);
                        p.seconds = seconds;
                        p.size = size;
                    }
                    Event::Error { message } => break Err(eyre!("{}: {message}", NAMES[i])),
                    _ => {}
                }
                if progress.values().all(|p| p.sha256.is_some()) {
                    break Ok(());
                }
            }
            Some(ev) = host_rx.recv() => {
                if let Event::PeerJoined { .. } | Event::PeerLeft { .. } = ev {
                    println!("{ev}");
                }
            }
            _ = tick.tick() => println!("{}", line(&progress)),
            _ = commands.recv() => break Ok(()),
        }
    };
    println!("{}", line(&progress));
    let _ = host_cmd.send(Command::Quit);
    crowd.stop().await;
    let _ = tokio::time::timeout(Duration::from_secs(5), host_task).await;
    outcome?;
    let mut ok = true;
    for (i, p) in &progress {
        match &p.sha256 {
            Some(h) if *h == expected => println!(
                "{}: {:.1} MB in {:.2} s from joining ({:.0} MB/s), sha256 matches the host's file",
                NAMES[*i],
                p.size as f64 / 1e6,
                p.seconds,
                p.size as f64 / 1e6 / p.seconds.max(1e-3)
            ),
            Some(h) => {
                ok = false;
                println!("{}: sha256 {h} DIFFERS from the host's {expected}", NAMES[*i]);
            }
            None => println!("{}: stopped before complete", NAMES[*i]),
        }
    }
    if !ok {
        bail!("a copy differs from the original");
    }
    Ok(())
}

fn line(progress: &BTreeMap<usize, Progress>) -> String {
    progress
        .iter()
        .map(|(i, p)| {
            let pct = if p.chunks == 0 { 0.0 } else { p.received as f64 * 100.0 / p.chunks as f64 };
            format!("{} {:>3.0}% {:>6.1} MB/s", NAMES[*i], pct, p.down_bps as f64 / 1e6)
        })
        .collect::<Vec<_>>()
        .join(" | ")
}
