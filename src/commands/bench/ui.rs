//! `syncy bench --suite ui`: what the dashboard costs. Each view is drawn into a real
//! crossterm backend writing to a sink (so ratatui's diff and the escape-sequence encoding
//! count), with the model changing every frame as stats would, and the picture encoded from
//! real decoded 720p frames. The figure is CPU time of the drawing thread per frame, turned into
//! the share of one core at the dashboard's 10 frames per second.

use std::io;
use std::path::Path;
use std::time::Instant;

use color_eyre::eyre::{Result, eyre};
use ratatui::backend::CrosstermBackend;
use ratatui::layout::Rect;
use ratatui::{Terminal, TerminalOptions, Viewport};

use crate::commands::bench::playback::{decode_each, thread_cpu};
use crate::engine::{Event, PeerStats};
use crate::media::decode::VideoFrame;
use crate::media::sample::{SampleSpec, write_sample};
use crate::player::picture::{Graphics, Picture};
use crate::player::screen::Status;
use crate::ui::host_model::RoomModel;
use crate::ui::view_state::ViewState;
use crate::ui::{host_view, join_view};

/// Frames drawn per measurement.
const FRAMES: usize = 300;

fn terminal(w: u16, h: u16) -> io::Result<Terminal<CrosstermBackend<io::Sink>>> {
    // A fixed viewport: no terminal is asked for its size (the bench may run without one).
    Terminal::with_options(CrosstermBackend::new(io::sink()), TerminalOptions { viewport: Viewport::Fixed(Rect::new(0, 0, w, h)) })
}

/// A room of ten, after a minute of stats.
fn room(t: Instant) -> RoomModel {
    let mut m = RoomModel::default();
    m.apply(
        &Event::Room {
            link: "syncy://127.0.0.1:7878/bench#key".into(),
            links: vec![],
            room: "bench".into(),
            file: "hd.mp4".into(),
            size: 5_000_000,
            duration_ms: Some(10_000),
        },
        t,
    );
    for p in 0..10 {
        m.apply(&Event::PeerJoined { peer: p, name: format!("p{p}"), guest: String::new() }, t);
    }
    for i in 0..60 {
        stats(&mut m, i, t);
    }
    m
}

/// One stats event; `i` changes every figure so each frame redraws for real.
fn stats(m: &mut RoomModel, i: u64, t: Instant) {
    let peers = (0..10)
        .map(|p| PeerStats {
            peer: p,
            name: format!("p{p}"),
            up_bps: 1_000_000 + (i * 7919 + p * 104_729) % 3_000_000,
            rtt_ms: Some((i + p) as u32 % 50),
            buffered_bytes: (i * 65_536 + p) % 50_000_000,
            position_ms: i * 100,
            quality: "high".into(),
            sent_bytes: i * 1_000_000,
            drift_ms: Some((i as i64 + p as i64) % 21 - 10),
            buffering: (i + p).is_multiple_of(17),
            relay_up_bps: Some(p * 10_000),
        })
        .collect();
    let (sent_bytes, relayed_bytes) = (i * 5_000_000, i * 15_000_000);
    m.apply(&Event::HostStats { position_ms: i * 100, playing: true, up_bps: 5_000_000 + (i % 30) * 100_000, sent_bytes, relayed_bytes, peers }, t);
}

fn frames_for(clip: &Path, pane: Rect, picture: &Picture) -> Result<Vec<VideoFrame>> {
    let (target, _) = picture.fit(pane, (1280, 720), 1.0);
    let mut frames = Vec::new();
    decode_each(clip, target, &mut |f| {
        frames.push(f);
        Ok(())
    })?;
    if frames.is_empty() {
        return Err(eyre!("the clip decoded to no frames"));
    }
    Ok(frames)
}

/// CPU µs per frame of drawing `FRAMES` frames with `draw_one(i, terminal)`.
fn per_frame(w: u16, h: u16, mut draw_one: impl FnMut(usize, &mut Terminal<CrosstermBackend<io::Sink>>) -> Result<()>) -> Result<f64> {
    let mut term = terminal(w, h)?;
    let cpu = thread_cpu();
    for i in 0..FRAMES {
        draw_one(i, &mut term)?;
    }
    Ok((thread_cpu() - cpu).as_secs_f64() * 1e6 / FRAMES as f64)
}

/// Costs of the three views at one size.
struct Costs {
    host: f64,
    demo: f64,
    join: f64,
}

fn costs(clip: &Path, w: u16, h: u16) -> Result<Costs> {
    let t = Instant::now();
    let picture = Picture::new(Graphics::Halfblocks);
    let view = ViewState::default();

    let mut m = room(t);
    let host = per_frame(w, h, |i, term| {
        stats(&mut m, 60 + i as u64, t);
        term.draw(|f| host_view::draw(f, &m, &view, t))?;
        Ok(())
    })?;

    let mut m = room(t);
    let pane = host_view::video_area(Rect::new(0, 0, w, h), &m, false);
    let frames = frames_for(clip, pane, &picture)?;
    let (_, cells) = picture.fit(pane, (1280, 720), 1.0);
    let demo = per_frame(w, h, |i, term| {
        stats(&mut m, 60 + i as u64, t);
        let p = picture.encode(&frames[i % frames.len()], cells, 0).map(|p| (p, cells));
        term.draw(|f| {
            host_view::draw_with_video(f, &m, &view, t, Some(p.as_ref()));
        })?;
        Ok(())
    })?;

    let mut s = Status {
        name: "p0".into(),
        duration_ms: Some(10_000),
        now: crate::core::api::JoinSnapshot { room_playing: true, quality: "high".into(), pieces: vec![100; 256], ..Default::default() },
        ..Status::default()
    };
    let pane = join_view::video_area(Rect::new(0, 0, w, h));
    let frames = frames_for(clip, pane, &picture)?;
    let (_, cells) = picture.fit(pane, (1280, 720), 1.0);
    let join = per_frame(w, h, |i, term| {
        s.now.position_ms = i as u64 * 100;
        s.sample_down(1_000_000 + i as u64 * 1000);
        s.now.read_fraction = i as f64 / FRAMES as f64;
        let p = picture.encode(&frames[i % frames.len()], cells, 0).map(|p| (p, cells));
        term.draw(|f| {
            join_view::draw(f, &s, p.as_ref(), true, &view);
        })?;
        Ok(())
    })?;
    Ok(Costs { host, demo, join })
}

/// Runs the UI suite; returns the Markdown section.
pub async fn run() -> Result<String> {
    let dir = tempfile::tempdir()?;
    let clip = dir.path().join("hd.mp4");
    eprintln!("preparing a 720p clip…");
    {
        let clip = clip.clone();
        tokio::task::spawn_blocking(move || {
            write_sample(&clip, &SampleSpec { duration: 10.0, width: 1280, height: 720, video_bitrate: 4_000_000, ..Default::default() })
        })
        .await??;
    }
    let mut out = String::from("| terminal | view | CPU per frame (µs) | one core at 10 fps |\n|---|---|---|---|\n");
    for (w, h) in [(80u16, 24u16), (160, 48)] {
        let clip = clip.clone();
        let c = tokio::task::spawn_blocking(move || costs(&clip, w, h)).await??;
        for (view, us) in [("host dashboard", c.host), ("demo: dashboard + 720p picture", c.demo), ("participant: 720p picture + panel", c.join)] {
            eprintln!("{w}x{h} {view}: {us:.0} µs/frame = {:.2}% of a core at 10 fps", us * 10.0 / 1e4);
            out += &format!("| {w}×{h} | {view} | {us:.0} | {:.2}% |\n", us * 10.0 / 1e4);
        }
    }
    out += &format!(
        "\nEach figure: {FRAMES} frames drawn through ratatui into a crossterm backend writing to a sink, every frame with new stats (and, with a picture, the next decoded 720p frame encoded as half-blocks); CPU time of the drawing thread. Decoding is not included (it runs whether or not anything is drawn; see the playback suite).\n"
    );
    Ok(out)
}
