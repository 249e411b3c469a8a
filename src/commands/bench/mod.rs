//! `syncy bench`: loopback throughput of Syncy beside two baselines measured in the same run —
//! a bare WebRTC data channel (same stack and settings, no Syncy protocol) and plain TCP — with
//! CPU seconds per GiB delivered. Everything runs in this process on 127.0.0.1 only.

pub mod networks;
pub mod picture;
pub mod picture_sync;
pub mod playback;
pub mod quality;
pub mod relay;
pub mod sim;
pub mod soak;
pub mod ui;

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use color_eyre::eyre::{Result, bail, eyre};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::cli::BenchArgs;
use crate::engine::host;
use crate::engine::join::{self, JoinOptions};
use crate::engine::{Command, Event};
use crate::media::sample::{SampleSpec, write_sample};
use crate::net::peer::{self, IceConfig, PeerLink};
use crate::protocol::auth::RoomKey;

const MSG: usize = 64 * 1024;

/// One measured run.
#[derive(Debug, Clone)]
pub struct Figure {
    /// What was measured.
    pub name: String,
    /// Receivers.
    pub receivers: u32,
    /// Bytes delivered in total (all receivers).
    pub bytes: u64,
    /// Wall time.
    pub seconds: f64,
    /// Process CPU time (user + system) during the run.
    pub cpu_seconds: f64,
}

impl Figure {
    fn mb_s(&self) -> f64 {
        self.bytes as f64 / self.seconds / 1e6
    }
    fn cpu_per_gib(&self) -> f64 {
        self.cpu_seconds / (self.bytes as f64 / (1u64 << 30) as f64)
    }
}

/// CPU seconds this process has used (user + system).
pub(crate) fn cpu_now() -> f64 {
    // SAFETY: getrusage writes into the struct we pass and nothing else.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

/// Runs all measurements and prints a table (and Markdown, if asked).
pub async fn run(args: BenchArgs) -> Result<()> {
    use crate::cli::BenchSuite;
    let mut text = String::new();
    let all = args.suite == BenchSuite::All;
    if all || args.suite == BenchSuite::Throughput {
        text += &throughput(&args).await?;
    }
    if all || args.suite == BenchSuite::Quality {
        let t = crate::commands::bench::quality::run().await?;
        println!("{t}");
        text += &t;
    }
    if all || args.suite == BenchSuite::Ui {
        let t = crate::commands::bench::ui::run().await?;
        println!("{t}");
        text += &t;
    }
    if all || args.suite == BenchSuite::Playback {
        if args.participants.iter().any(|n| *n == 0 || *n > 20) {
            bail!("--participants takes counts from 1 to 20");
        }
        let t = crate::commands::bench::playback::run(&args.participants).await?;
        println!("{t}");
        text += &t;
    }
    if args.suite == BenchSuite::Networks {
        let reps = args.reps;
        let t = tokio::task::spawn_blocking(move || crate::commands::bench::networks::run(reps)).await??;
        println!("{t}");
        text += &t;
    }
    if args.suite == BenchSuite::Soak {
        let t = crate::commands::bench::soak::run(args.soak_participants, args.minutes).await?;
        println!("{t}");
        text += &t;
    }
    if args.suite == BenchSuite::Picture {
        let t = match (&args.in_terminal, &args.clip) {
            (Some(out), Some(clip)) => {
                crate::commands::bench::picture::in_terminal(out, clip, args.render.unwrap_or(crate::cli::RenderArg::Auto))?;
                return Ok(());
            }
            _ => tokio::task::spawn_blocking(crate::commands::bench::picture::run).await??,
        };
        println!("{t}");
        text += &t;
    }
    if args.suite == BenchSuite::Relay {
        let seed = args.seed;
        let t = tokio::task::spawn_blocking(move || crate::commands::bench::relay::run(seed)).await?;
        println!("{t}");
        text += &t;
    }
    if args.suite == BenchSuite::Sim {
        let t = crate::commands::bench::sim::run(args.sim_participants, args.minutes);
        println!("{t}");
        text += &t;
    }
    if let Some(path) = &args.markdown {
        std::fs::File::create(path)?.write_all(text.as_bytes())?;
    }
    Ok(())
}

async fn throughput(args: &BenchArgs) -> Result<String> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("bench.ts");
    eprintln!("preparing a {} MiB file…", args.size >> 20);
    make_file(&file, args.size)?;
    let mut figures = vec![];
    // Single links, interleaved and repeated: this machine is noisy, so compare medians.
    let (mut bare, mut one) = (vec![], vec![]);
    for _ in 0..args.reps.max(1) {
        figures.push(measure("plain TCP", 1, args.size, tcp(args.size)).await?);
        let b = measure("bare data channel", 1, args.size, bare_channel(args.size)).await?;
        bare.push(b.mb_s());
        figures.push(b);
        let s = measure("syncy host→1", 1, args.size, syncy(&file, 1)).await?;
        one.push(s.mb_s());
        figures.push(s);
    }
    let (mb, ms) = (median(&mut bare), median(&mut one));
    let summary = format!(
        "\nSingle link, median of {} interleaved runs: bare data channel {mb:.1} MB/s, Syncy {ms:.1} MB/s = {:.0}% of bare.\n",
        args.reps.max(1),
        ms / mb * 100.0
    );
    for &n in args.peers.iter().filter(|n| **n != 1) {
        if n == 0 || n > 20 {
            bail!("--peers takes counts from 1 to 20");
        }
        figures.push(measure(&format!("syncy host→{n}"), n, args.size * n as u64, syncy(&file, n)).await?);
    }
    let table = render(&figures) + &summary;
    println!("{table}");
    Ok(table)
}

/// Time and CPU of one transfer, over the same window (set-up excluded).
struct Window {
    start: Instant,
    cpu: f64,
}

impl Window {
    fn open() -> Self {
        Window { start: Instant::now(), cpu: cpu_now() }
    }
    fn close(self) -> (Duration, f64) {
        (self.start.elapsed(), cpu_now() - self.cpu)
    }
}

async fn measure(name: &str, receivers: u32, bytes: u64, work: impl Future<Output = Result<(Duration, f64)>>) -> Result<Figure> {
    let (took, cpu_seconds) = work.await?;
    let f = Figure { name: name.into(), receivers, bytes, seconds: took.as_secs_f64(), cpu_seconds };
    eprintln!("{:<20} x{:<2} {:>8.1} MB/s  {:>5.2} CPU s/GiB", f.name, f.receivers, f.mb_s(), f.cpu_per_gib());
    Ok(f)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn render(figures: &[Figure]) -> String {
    let mut bare: Vec<f64> = figures.iter().filter(|f| f.name == "bare data channel").map(|f| f.mb_s()).collect();
    let bare = (!bare.is_empty()).then(|| median(&mut bare));
    let mut s = String::from(
        "| what | receivers | MB/s (all receivers) | MB/s per receiver | all receivers vs bare channel (median) | CPU s per GiB delivered |\n|---|---|---|---|---|---|\n",
    );
    for f in figures {
        let vs = bare.map(|b| format!("{:.0}%", f.mb_s() / b * 100.0)).unwrap_or_default();
        s += &format!("| {} | {} | {:.1} | {:.1} | {} | {:.2} |\n", f.name, f.receivers, f.mb_s(), f.mb_s() / f.receivers as f64, vs, f.cpu_per_gib());
    }
    s
}

/// A real (probeable) MPEG-TS clip padded with pseudo-random bytes to `size`: only the bytes'
/// count matters for throughput, and a TS demuxer reads the head.
fn make_file(path: &Path, size: u64) -> Result<()> {
    write_sample(path, &SampleSpec { duration: 2.0, width: 320, height: 180, ..Default::default() })?;
    let f = std::fs::OpenOptions::new().write(true).open(path)?;
    let mut off = f.metadata()?.len();
    if off > size {
        bail!("--size must be at least {off} bytes");
    }
    let mut x = 0x9E3779B97F4A7C15u64;
    let mut buf = vec![0u8; 1 << 20];
    while off < size {
        for b in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b.copy_from_slice(&x.to_le_bytes()[..b.len()]);
        }
        let n = ((size - off) as usize).min(buf.len());
        f.write_all_at(&buf[..n], off)?;
        off += n as u64;
    }
    Ok(())
}

async fn tcp(size: u64) -> Result<(Duration, f64)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let recv = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await?;
        let mut buf = vec![0u8; MSG];
        let mut got = 0u64;
        while got < size {
            let n = s.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            got += n as u64;
        }
        Ok::<_, std::io::Error>(got)
    });
    let window = Window::open();
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let buf = vec![7u8; MSG];
    let mut sent = 0u64;
    while sent < size {
        let n = ((size - sent) as usize).min(MSG);
        s.write_all(&buf[..n]).await?;
        sent += n as u64;
    }
    let got = recv.await??;
    let took = window.close();
    if got != size {
        bail!("TCP baseline lost bytes");
    }
    Ok(took)
}

/// Two peer links in this process, the same WebRTC settings Syncy uses, raw 64 KiB messages.
async fn bare_channel(size: u64) -> Result<(Duration, f64)> {
    let ice = IceConfig::new(crate::net::peer::Reach::of_host("127.0.0.1"), None, &Default::default());
    let key = RoomKey::random();
    let host = crate::protocol::identity::HostSecret::random().host_key();
    let guest = crate::protocol::guest::GuestSecret::random().key_for(&host.room_id(None));
    let setup = crate::protocol::auth::SetupAuth { room: host.room_id(None), peer: 1, nonce: crate::protocol::auth::nonce(), guest: guest.public() };
    let (offer_tx, mut offer_rx) = mpsc::channel(4);
    let (answer_tx, mut answer_rx) = mpsc::channel(4);
    let (ice2, key2, host_id, setup2) = (ice.clone(), key.clone(), host.public(), setup.clone());
    let answerer = tokio::spawn(async move {
        let Some(crate::protocol::signal::SignalPayload::Offer { sdp, sig }) = offer_rx.recv().await else {
            return Err(eyre!("no offer"));
        };
        let auth = crate::net::peer::AnswerAuth { host: &host_id, key: &key2, guest: &guest, setup: setup2 };
        let link = PeerLink::answer(&ice2, &auth, (sdp, sig), async |p| answer_tx.send(p).await.is_ok()).await?;
        Ok::<_, color_eyre::Report>(link)
    });
    let auth = crate::net::peer::OfferAuth { host: &host, key: &key, setup };
    let sender = PeerLink::offer(&ice, &auth, async |p| offer_tx.send(p).await.is_ok(), &mut answer_rx).await?;
    let receiver = answerer.await??;
    let dc = receiver.chunks.clone();
    let recv = tokio::spawn(async move {
        let mut got = 0u64;
        while got < size {
            match dc.poll().await {
                Some(webrtc::data_channel::DataChannelEvent::OnMessage(m)) => got += m.data.len() as u64,
                Some(_) => {}
                None => break,
            }
        }
        got
    });
    let window = Window::open();
    let buf = vec![7u8; MSG];
    let mut sent = 0u64;
    while sent < size {
        let n = ((size - sent) as usize).min(MSG);
        peer::send(&sender.chunks, &buf[..n]).await?;
        sent += n as u64;
    }
    let got = recv.await?;
    let took = window.close();
    sender.close().await;
    receiver.close().await;
    if got != size {
        bail!("bare channel delivered {got} of {size} bytes");
    }
    Ok(took)
}

/// A host and `n` participants in this process; from the first manifest to the last complete.
async fn syncy(file: &Path, n: u32) -> Result<(Duration, f64)> {
    let room = host::start_local(file.to_path_buf(), None, "bench", host::PlaybackPolicy::default(), 0).await?;
    let (link, mut host_rx, host_cmd, host_task) = (room.link, room.events, room.commands, room.task);
    tokio::spawn(async move { while host_rx.recv().await.is_some() {} });
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel::<Event>();
    let mut quits = vec![];
    for i in 0..n {
        let (qtx, qrx) = mpsc::unbounded_channel::<Command>();
        quits.push(qtx);
        let opts = JoinOptions {
            name: format!("p{i}"),
            buffer: 32 << 20,
            playback: false,
            sound: false,
            download_limit: 0,
            quality: "high".into(),
            ..JoinOptions::new(link.clone())
        };
        let tx = ev_tx.clone();
        tokio::spawn(async move {
            if let Err(e) = join::run(opts, tx.clone(), qrx).await {
                let _ = tx.send(Event::Error { message: e.to_string() });
            }
        });
    }
    drop(ev_tx);
    let (mut first, mut done) = (None, 0);
    while done < n {
        match ev_rx.recv().await {
            Some(Event::Manifest { .. }) => {
                first.get_or_insert_with(Window::open);
            }
            Some(Event::Complete { .. }) => done += 1,
            Some(Event::Error { message }) => bail!("participant: {message}"),
            Some(_) => {}
            None => bail!("participants stopped early"),
        }
    }
    let took = first.ok_or_else(|| eyre!("no manifest"))?.close();
    let _ = host_cmd.send(Command::Quit);
    for q in quits {
        let _ = q.send(Command::Quit);
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), host_task).await;
    Ok(took)
}
