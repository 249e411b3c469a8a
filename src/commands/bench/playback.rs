//! `syncy bench --suite playback`: how well a room watches together, on loopback, in this
//! process — sync spread (3 and 10 participants), a late joiner's time to first frame, seek
//! latency to an unfetched point, and decode+render frames per second into a half-block area
//! beside decode alone (the baseline, same run).

use std::path::Path;
use std::time::{Duration, Instant};

use color_eyre::eyre::{Result, bail};
use tokio::sync::mpsc;

use crate::engine::host::{self, PlaybackPolicy};
use crate::engine::join::{self, JoinOptions};
use crate::engine::{Command, Event};
use crate::media::decode::{self, FrameQueue, VideoFrame};
use crate::media::sample::{SampleSpec, write_sample};
use crate::player::picture::{Graphics, Picture};

/// One participant's events, stamped when received.
pub(crate) type Tagged = (usize, Instant, Event);

pub(crate) struct Room {
    pub(crate) host: mpsc::UnboundedSender<Command>,
    host_events: mpsc::UnboundedReceiver<Event>,
    pub(crate) events: mpsc::UnboundedReceiver<Tagged>,
    tx: mpsc::UnboundedSender<Tagged>,
    quits: Vec<mpsc::UnboundedSender<Command>>,
    link: crate::protocol::link::Link,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl Room {
    pub(crate) async fn open(clip: &Path, n: usize) -> Result<Room> {
        let r = host::start_local(clip.to_path_buf(), None, "bench", PlaybackPolicy::default(), 0).await?;
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
            name: format!("p{i}"),
            buffer: 2 << 20,
            sound: false,
            download_limit: 0,
            quality: "high".into(),
            ..JoinOptions::new(self.link.clone())
        };
        let (etx, mut erx) = mpsc::unbounded_channel();
        let tx = self.tx.clone();
        tokio::spawn(async move {
            while let Some(e) = erx.recv().await {
                let _ = tx.send((i, Instant::now(), e));
            }
        });
        tokio::spawn(async move {
            if let Err(e) = join::run(opts, etx.clone(), qrx).await {
                let _ = etx.send(Event::Error { message: e.to_string() });
            }
        });
        i
    }

    /// Waits until every participant in `who` has sent an event matching `pred`; returns when
    /// each did (received time), and every event seen meanwhile.
    pub(crate) async fn until_all(&mut self, who: &[usize], timeout: Duration, pred: impl Fn(&Event) -> bool) -> Result<(Vec<Instant>, Vec<Tagged>)> {
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

    pub(crate) async fn close(self) {
        let _ = self.host.send(Command::Quit);
        for q in &self.quits {
            let _ = q.send(Command::Quit);
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

pub(crate) fn showing(playing: bool) -> impl Fn(&Event) -> bool {
    move |e| matches!(e, Event::State { buffering: false, playing: p, .. } if *p == playing)
}

/// Worst spread of positions: at each of participant 0's stats samples, everyone's nearest
/// sample carried to the same instant.
pub(crate) fn worst_spread(samples: &[Vec<(f64, f64)>]) -> (f64, usize) {
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
    /// Seek latencies (all participants playing the new point), ms.
    seeks: Vec<f64>,
    /// Late joiners' times to first frame, ms.
    late: Vec<f64>,
}

/// Median and worst of a few figures.
fn med_max(v: &[f64]) -> (f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    (s[s.len() / 2], s[s.len() - 1])
}

async fn room_figures(clip: &Path, n: usize, play_secs: u64) -> Result<RoomFigures> {
    let mut room = Room::open(clip, n).await?;
    let all: Vec<usize> = (0..n).collect();
    room.until_all(&all, Duration::from_secs(60), showing(false)).await?;
    room.host.send(Command::Play)?;
    let started = crate::output::headless::now_ms();
    room.until_all(&all, Duration::from_secs(30), showing(true)).await?;
    // Play, collecting stats.
    let mut samples = vec![vec![]; n];
    let end = tokio::time::Instant::now() + Duration::from_secs(play_secs);
    while let Ok(Some((i, _, e))) = tokio::time::timeout_at(end, room.events.recv()).await {
        if let Event::JoinStats(s) = e
            && s.playing
            && s.t_ms > started + 1_000.0
        {
            samples[i].push((s.t_ms, s.position_ms as f64));
        }
    }
    let (spread_ms, instants) = worst_spread(&samples);

    // Seeks to unfetched points (the buffer holds 2 MiB, ~8 s of this clip, around the
    // playhead): forward, back, forward again.
    let mut seeks = vec![];
    for target_s in [45u64, 25, 55] {
        let t0 = Instant::now();
        room.host.send(Command::SeekTo(target_s as f64))?;
        let lo = target_s * 1000;
        let (when, _) = room
            .until_all(
                &all,
                Duration::from_secs(30),
                |e| matches!(e, Event::State { buffering: false, playing: true, position_ms, .. } if (lo..lo + 2_000).contains(position_ms)),
            )
            .await?;
        seeks.push(when.iter().map(|t| t.duration_since(t0).as_secs_f64() * 1000.0).fold(0.0, f64::max));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Late joiners, one after another: from the call to the first frame of the playing room.
    let mut late = vec![];
    for _ in 0..3 {
        let t0 = Instant::now();
        let who = room.join();
        let (when, seen) = room.until_all(&[who], Duration::from_secs(30), showing(true)).await?;
        let ms = when[0].duration_since(t0).as_secs_f64() * 1000.0;
        let manifest =
            seen.iter().find(|(i, _, e)| *i == who && matches!(e, Event::Manifest { .. })).map(|(_, t, _)| t.duration_since(t0).as_secs_f64() * 1000.0);
        eprintln!("late joiner: manifest after {manifest:.0?} ms, first frame after {ms:.0} ms");
        late.push(ms);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    while room.host_events.try_recv().is_ok() {}
    room.close().await;
    Ok(RoomFigures { n, spread_ms, instants, seeks, late })
}

/// CPU time the calling thread has used, for costs that wall time on a shared machine blurs.
pub(crate) fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime only writes the timespec we pass it.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Decodes `clip` scaled to `target` pixels, handing each frame to `each`; frames per second.
pub(crate) fn decode_each(clip: &Path, target: (u32, u32), each: &mut dyn FnMut(VideoFrame) -> Result<()>) -> Result<f64> {
    let q = FrameQueue::new(4, Some(target));
    let t = decode::spawn(Box::new(std::fs::File::open(clip)?), q.clone());
    let start = Instant::now();
    let mut n = 0u64;
    while !(q.eof() && q.is_empty()) {
        if let Some(e) = q.error() {
            bail!("decode: {e}");
        }
        match q.pop_until(i64::MAX) {
            Some(f) => {
                each(f)?;
                n += 1;
            }
            None => std::thread::sleep(Duration::from_micros(200)),
        }
    }
    let fps = n as f64 / start.elapsed().as_secs_f64();
    q.close();
    let _ = t.join();
    Ok(fps)
}

/// What the terminal picture costs next to decoding.
struct RenderFigures {
    frames: usize,
    /// Decode + swscale to the picture size, frames per second (wall clock, decoder threads).
    decode_fps: f64,
    /// Decode + swscale + half-block encode + draw, frames per second (wall clock).
    shown_fps: f64,
    /// CPU time to half-block encode and draw one frame, µs (median of 5 passes).
    draw_us: f64,
}

/// Decodes the clip scaled to the picture size (and again drawing each frame as it comes, for
/// the end-to-end rate), then encodes and draws every frame as half-blocks on this thread alone,
/// so the draw cost is measured with the decoder idle.
fn render_cost(clip: &Path, cols: u16, rows: u16) -> Result<RenderFigures> {
    let picture = Picture::new(Graphics::Halfblocks);
    let area = ratatui::layout::Rect::new(0, 0, cols, rows);
    let mut buf = ratatui::buffer::Buffer::empty(area);
    let mut draw = |f: &VideoFrame| -> Result<()> {
        let (_, cells) = picture.fit(area, (1280, 720), 1.0);
        let p = picture.encode(f, cells, 0).ok_or_else(|| color_eyre::eyre::eyre!("encode failed"))?;
        use ratatui::widgets::Widget;
        if let crate::player::picture::Drawing::Cells(p) = &p {
            ratatui_image::Image::new(p).render(cells, &mut buf);
        }
        Ok(())
    };
    let target = (cols as u32, rows as u32 * 2);
    let decode = |each: &mut dyn FnMut(VideoFrame) -> Result<()>| decode_each(clip, target, each);
    let mut frames = Vec::new();
    let decode_fps = decode(&mut |f| {
        frames.push(f);
        Ok(())
    })?;
    if frames.is_empty() {
        bail!("the clip decoded to no frames");
    }
    let shown_fps = decode(&mut |f| draw(&f))?;
    let mut passes = Vec::new();
    for _ in 0..5 {
        let cpu = thread_cpu();
        for f in &frames {
            draw(f)?;
        }
        passes.push((thread_cpu() - cpu).as_secs_f64() * 1e6 / frames.len() as f64);
    }
    passes.sort_by(f64::total_cmp);
    Ok(RenderFigures { frames: frames.len(), decode_fps, shown_fps, draw_us: passes[passes.len() / 2] })
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
        "| participants | sync spread, worst (ms) | instants compared | seek to unfetched point, all playing: median / worst of 3 (ms) | late joiner, first frame: median / worst of 3 (ms) |\n|---|---|---|---|---|\n",
    );
    for &n in participants {
        let f = room_figures(&clip, n as usize, 12).await?;
        let ((sm, sw), (lm, lw)) = (med_max(&f.seeks), med_max(&f.late));
        eprintln!("{} participants: spread {:.1} ms over {} instants, seeks {:.0?} ms, late joiners {:.0?} ms", f.n, f.spread_ms, f.instants, f.seeks, f.late);
        out += &format!("| {} | {:.1} | {} | {sm:.0} / {sw:.0} | {lm:.0} / {lw:.0} |\n", f.n, f.spread_ms, f.instants);
    }
    let hd2 = hd.clone();
    let r = tokio::task::spawn_blocking(move || render_cost(&hd2, 160, 45)).await??;
    let core_at = |fps: f64| r.draw_us * fps / 1e4;
    eprintln!("720p: decode + scale {:.0} fps; + half-blocks 160x45 + draw {:.0} fps; draw {:.0} µs/frame", r.decode_fps, r.shown_fps, r.draw_us);
    out += &format!(
        "\n720p H.264 ({} frames) into a 160×45 half-block area: decode + swscale to 160×90 (baseline) {:.0} frames/s; decode + swscale + half-block encode + draw {:.0} frames/s ({:.0}% of the baseline). Half-block encode + draw alone, on frames decoded beforehand: {:.0} µs of CPU per frame (median of 5 passes) = {:.1}% of one core at 10 fps, {:.1}% at 25 fps.\n",
        r.frames,
        r.decode_fps,
        r.shown_fps,
        r.shown_fps / r.decode_fps * 100.0,
        r.draw_us,
        core_at(10.0),
        core_at(25.0)
    );
    Ok(out)
}
