//! `syncy bench --suite playback`: how well a room watches together, on loopback, in this
//! process — sync spread (3 and 10 participants), a late joiner's time to first frame, seek
//! latency to an unfetched point, and decode+render frames per second into a half-block area
//! beside decode alone (the baseline, same run).

use std::path::Path;
use std::time::{Duration, Instant};

use color_eyre::eyre::{Result, bail};
use tokio::sync::mpsc;

use crate::headless::{Command, Event};
use crate::host::{self, PlaybackPolicy};
use crate::media::decode::{self, FrameQueue};
use crate::media::sample::{SampleSpec, write_sample};
use crate::participant::{self, JoinOptions, Render};
use crate::player::picture::{Graphics, Picture};

/// One participant's events, stamped when received.
type Tagged = (usize, Instant, Event);

struct Room {
    host: mpsc::UnboundedSender<Command>,
    host_events: mpsc::UnboundedReceiver<Event>,
    events: mpsc::UnboundedReceiver<Tagged>,
    tx: mpsc::UnboundedSender<Tagged>,
    quits: Vec<mpsc::UnboundedSender<Command>>,
    link: crate::protocol::link::Link,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl Room {
    async fn open(clip: &Path, n: usize) -> Result<Room> {
        let r = host::start_local(clip.to_path_buf(), None, "bench", PlaybackPolicy::default()).await?;
        let (tx, events) = mpsc::unbounded_channel();
        let mut room = Room { host: r.commands, host_events: r.events, events, tx, quits: vec![], link: r.link, task: r.task };
        for _ in 0..n {
            room.join();
        }
        Ok(room)
    }

    fn join(&mut self) -> usize {
        let i = self.quits.len();
        let (qtx, qrx) = mpsc::unbounded_channel();
        self.quits.push(qtx);
        // A small buffer, so the seek target is not fetched ahead of time.
        let opts = JoinOptions {
            link: self.link.clone(),
            name: format!("p{i}"),
            save: None,
            buffer: 2 << 20,
            ice_addr: None,
            render: Render::None,
            mpv: None,
            playback: true,
            sound: false,
        };
        let (etx, mut erx) = mpsc::unbounded_channel();
        let tx = self.tx.clone();
        tokio::spawn(async move {
            while let Some(e) = erx.recv().await {
                let _ = tx.send((i, Instant::now(), e));
            }
        });
        tokio::spawn(async move {
            if let Err(e) = participant::run(opts, etx.clone(), qrx).await {
                let _ = etx.send(Event::Error { message: e.to_string() });
            }
        });
        i
    }

    /// Waits until every participant in `who` has sent an event matching `pred`; returns when
    /// each did (received time), and every event seen meanwhile.
    async fn until_all(&mut self, who: &[usize], timeout: Duration, pred: impl Fn(&Event) -> bool) -> Result<(Vec<Instant>, Vec<Tagged>)> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut when: Vec<Option<Instant>> = vec![None; self.quits.len()];
        let mut seen = vec![];
        while who.iter().any(|&i| when[i].is_none()) {
            let Ok(ev) = tokio::time::timeout_at(deadline, self.events.recv()).await else { bail!("timed out waiting for participants") };
            let Some((i, t, e)) = ev else { bail!("participants stopped") };
            if let Event::Error { message } = &e {
                bail!("participant {i}: {message}");
            }
            if who.contains(&i) && when[i].is_none() && pred(&e) {
                when[i] = Some(t);
            }
            seen.push((i, t, e));
        }
        Ok((who.iter().map(|&i| when[i].expect("all seen")).collect(), seen))
    }

    async fn close(self) {
        let _ = self.host.send(Command::Quit);
        for q in &self.quits {
            let _ = q.send(Command::Quit);
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

fn showing(playing: bool) -> impl Fn(&Event) -> bool {
    move |e| matches!(e, Event::State { buffering: false, playing: p, .. } if *p == playing)
}

/// Worst spread of positions: at each of participant 0's stats samples, everyone's nearest
/// sample carried to the same instant.
fn worst_spread(samples: &[Vec<(f64, f64)>]) -> (f64, usize) {
    let mut worst: f64 = 0.0;
    let mut n = 0;
    for &(t, pos) in &samples[0] {
        let mut at_t = vec![pos];
        for other in &samples[1..] {
            if let Some(&(t2, p2)) = other.iter().min_by(|a, b| (a.0 - t).abs().total_cmp(&(b.0 - t).abs()))
                && (t2 - t).abs() <= 600.0
            {
                at_t.push(p2 + (t - t2));
            }
        }
        if at_t.len() == samples.len() {
            let max = at_t.iter().cloned().fold(f64::MIN, f64::max);
            let min = at_t.iter().cloned().fold(f64::MAX, f64::min);
            worst = worst.max(max - min);
            n += 1;
        }
    }
    (worst, n)
}

/// Figures of one room size.
struct RoomFigures {
    n: usize,
    spread_ms: f64,
    instants: usize,
    seek_ms: f64,
    late_first_frame_ms: f64,
}

async fn room_figures(clip: &Path, n: usize, play_secs: u64) -> Result<RoomFigures> {
    let mut room = Room::open(clip, n).await?;
    let all: Vec<usize> = (0..n).collect();
    room.until_all(&all, Duration::from_secs(60), showing(false)).await?;
    room.host.send(Command::Play)?;
    let started = crate::headless::now_ms();
    room.until_all(&all, Duration::from_secs(30), showing(true)).await?;
    // Play, collecting stats.
    let mut samples = vec![vec![]; n];
    let end = tokio::time::Instant::now() + Duration::from_secs(play_secs);
    while let Ok(Some((i, _, e))) = tokio::time::timeout_at(end, room.events.recv()).await {
        if let Event::JoinStats { position_ms, playing: true, t_ms, .. } = e
            && t_ms > started + 1_000.0
        {
            samples[i].push((t_ms, position_ms as f64));
        }
    }
    let (spread_ms, instants) = worst_spread(&samples);

    // Seek to an unfetched point (the buffer holds 2 MiB ahead).
    let t0 = Instant::now();
    room.host.send(Command::SeekTo(45.0))?;
    let (when, _) = room
        .until_all(&all, Duration::from_secs(30), |e| matches!(e, Event::State { buffering: false, playing: true, position_ms, .. } if *position_ms >= 44_000))
        .await?;
    let seek_ms = when.iter().map(|t| t.duration_since(t0).as_secs_f64() * 1000.0).fold(0.0, f64::max);

    // A late joiner: from the call to its first frame of the playing room.
    let t0 = Instant::now();
    let late = room.join();
    let (when, _) = room.until_all(&[late], Duration::from_secs(30), showing(true)).await?;
    let late_first_frame_ms = when[0].duration_since(t0).as_secs_f64() * 1000.0;
    while room.host_events.try_recv().is_ok() {}
    room.close().await;
    Ok(RoomFigures { n, spread_ms, instants, seek_ms, late_first_frame_ms })
}

/// Frames per second: decode alone, and decode + scale + half-block encode + draw.
fn render_fps(clip: &Path, cols: u16, rows: u16) -> Result<(f64, f64, u64)> {
    let run = |target: Option<(u32, u32)>, draw: bool| -> Result<(f64, u64)> {
        let q = FrameQueue::new(4, target);
        let t = decode::spawn(Box::new(std::fs::File::open(clip)?), q.clone());
        let picture = Picture::new(Graphics::Halfblocks);
        let area = ratatui::layout::Rect::new(0, 0, cols, rows);
        let mut buf = ratatui::buffer::Buffer::empty(area);
        let start = Instant::now();
        let mut frames = 0u64;
        while !(q.eof() && q.is_empty()) {
            if let Some(e) = q.error() {
                bail!("decode: {e}");
            }
            let Some(f) = q.pop_until(i64::MAX) else {
                std::thread::sleep(Duration::from_micros(200));
                continue;
            };
            if draw {
                let (_, cells) = picture.fit(area, (1280, 720));
                let p = picture.encode(&f, cells).ok_or_else(|| color_eyre::eyre::eyre!("encode failed"))?;
                use ratatui::widgets::Widget;
                ratatui_image::Image::new(&p).render(cells, &mut buf);
            }
            frames += 1;
        }
        q.close();
        let _ = t.join();
        Ok((frames as f64 / start.elapsed().as_secs_f64(), frames))
    };
    let (decode_only, frames) = run(None, false)?;
    let (full, _) = run(Some((cols as u32, rows as u32 * 2)), true)?;
    Ok((decode_only, full, frames))
}

/// Runs the playback suite; returns the Markdown section.
pub async fn run(participants: &[u32]) -> Result<String> {
    let dir = tempfile::tempdir()?;
    let clip = dir.path().join("room.mp4");
    let hd = dir.path().join("hd.mp4");
    eprintln!("preparing clips…");
    {
        let (clip, hd) = (clip.clone(), hd.clone());
        tokio::task::spawn_blocking(move || -> Result<()> {
            write_sample(&clip, &SampleSpec { duration: 60.0, width: 320, height: 180, video_bitrate: 2_000_000, ..Default::default() })?;
            write_sample(&hd, &SampleSpec { duration: 10.0, width: 1280, height: 720, video_bitrate: 4_000_000, ..Default::default() })?;
            Ok(())
        })
        .await??;
    }
    let mut out = String::from(
        "| participants | sync spread, worst (ms) | instants compared | seek to unfetched point, all playing (ms) | late joiner, first frame (ms) |\n|---|---|---|---|---|\n",
    );
    for &n in participants {
        let f = room_figures(&clip, n as usize, 12).await?;
        eprintln!("{} participants: spread {:.1} ms over {} instants, seek {:.0} ms, late joiner {:.0} ms", f.n, f.spread_ms, f.instants, f.seek_ms, f.late_first_frame_ms);
        out += &format!("| {} | {:.1} | {} | {:.0} | {:.0} |\n", f.n, f.spread_ms, f.instants, f.seek_ms, f.late_first_frame_ms);
    }
    let hd2 = hd.clone();
    let (decode_only, full, frames) = tokio::task::spawn_blocking(move || render_fps(&hd2, 160, 45)).await??;
    eprintln!("720p: decode only {decode_only:.0} fps; decode + scale + half-blocks 160x45 + draw {full:.0} fps");
    out += &format!(
        "\n720p H.264 ({frames} frames), one thread drawing: decode alone {decode_only:.0} frames/s (baseline); decode + swscale to 160×90 + half-block encode + draw into a 160×45 buffer {full:.0} frames/s ({:.0}% of decode alone).\n",
        full / decode_only * 100.0
    );
    Ok(out)
}
