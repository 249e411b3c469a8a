//! `syncy bench --suite picture`: the picture in real terminals. Under an Xvfb of its own,
//! xterm (as a VT340: sixel; also half-blocks) and kitty (its graphics protocol) each run this
//! binary pinned to one core (`taskset -c 0`), which draws a 720p clip's frames as the
//! participant view does (encode, ratatui, the terminal) into the picture area at 80×24 and
//! 150×48. After each frame it asks DA1 and waits for the answer: the terminal answers once it
//! has taken everything before, so the frames counted are frames the terminal took. The
//! figures: those frames a second, Syncy's CPU per frame, and the bytes per frame.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use color_eyre::eyre::{Result, bail, eyre};
use ratatui::layout::Rect;
use serde::{Deserialize, Serialize};

use crate::cli::RenderArg;
use crate::media::sample::{SampleSpec, write_sample};
use crate::player::graphics::kitty::OnScreen;
use crate::player::graphics::probe;
use crate::player::picture::{Drawing, Graphics, Picture};
use crate::ui::{join_view, picture_pane, term};
use crate::xlab::{self, Display, Term};

/// Frames drawn per measurement (after a few to warm up).
const FRAMES: usize = 120;
const WARM_UP: usize = 5;

/// One terminal's figures.
#[derive(Debug, Serialize, Deserialize)]
struct Took {
    kind: String,
    pixels: (u32, u32),
    fps: f64,
    cpu_ms: f64,
    kb: f64,
}

/// The cases: terminal, size, `--render`.
const CASES: [(Term, (u16, u16), RenderArg); 6] = [
    (Term::Vt340, (80, 24), RenderArg::Halfblocks),
    (Term::Vt340, (80, 24), RenderArg::Sixel),
    (Term::Kitty, (80, 24), RenderArg::Kitty),
    (Term::Vt340, (150, 48), RenderArg::Halfblocks),
    (Term::Vt340, (150, 48), RenderArg::Sixel),
    (Term::Kitty, (150, 48), RenderArg::Kitty),
];

/// Runs every case; the table.
pub fn run() -> Result<String> {
    let missing: Vec<&str> = ["Xvfb", "xterm", "kitty", "taskset"].into_iter().filter(|p| !xlab::have(p)).collect();
    if !missing.is_empty() {
        bail!("the picture suite needs Xvfb, xterm, kitty and taskset (scripts/setup-debian.sh installs them); missing: {}", missing.join(", "));
    }
    let dir = tempfile::tempdir()?;
    let clip = dir.path().join("720p.mp4");
    eprintln!("preparing a 720p clip…");
    write_sample(&clip, &SampleSpec { width: 1280, height: 720, duration: 30.0, video_bitrate: 4_000_000, ..SampleSpec::default() })?;
    let display = Display::start().map_err(|e| eyre!(e))?;
    let mut text = String::from(
        "\n## Pictures in real terminals\n\n| terminal | size | drawn as | picture px | frames/s the terminal took | Syncy CPU/frame (one core) | KB/frame |\n|---|---|---|---|---:|---:|---:|\n",
    );
    for (term, size, render) in CASES {
        let took = case(&display, dir.path(), &clip, term, size, render)?;
        let name = if term == Term::Kitty { "kitty 0.26" } else { "xterm 379 -ti vt340" };
        let line = format!(
            "| {name} | {}×{} | {} | {}×{} | {:.1} | {:.1} ms | {:.0} |\n",
            size.0,
            size.1,
            drawn_as(&took.kind),
            took.pixels.0,
            took.pixels.1,
            took.fps,
            took.cpu_ms,
            took.kb
        );
        eprint!("{line}");
        text += &line;
    }
    eprintln!("a room with a sixel viewer and a headless participant…");
    let drift = crate::commands::bench::picture_sync::measure(&display, dir.path(), &clip)?;
    text += &format!(
        "\nSync while drawing: in one room playing the same clip, the participant drawing sixel in xterm at 150×48 (pinned to one core) drifted {:.0} ms (median) / {:.0} ms (worst) from the room clock; a headless participant in the same room {:.0} / {:.0} ms (host stats, {} s).\n",
        drift.viewer.0,
        drift.viewer.1,
        drift.headless.0,
        drift.headless.1,
        crate::commands::bench::picture_sync::SECONDS
    );
    text += &format!(
        "\n{FRAMES} frames each (after {WARM_UP}), decoded beforehand; each frame encoded, drawn through ratatui as the view draws it, then DA1 asked and its answer awaited. Syncy pinned to one core (`taskset -c 0`), the terminal not pinned; Xvfb, kitty with Mesa's software GL. Cells: xterm DejaVu Sans Mono 11 (9×19 px), kitty 10 pt.\n"
    );
    Ok(text)
}

/// A protocol's name for the table.
fn drawn_as(kind: &str) -> &'static str {
    match kind {
        k if k.starts_with("Sixel") => "sixel",
        k if k.contains("placeholders: true") => "kitty, placeholders",
        k if k.starts_with("Kitty") => "kitty, placed directly",
        _ => "half-blocks",
    }
}

/// One case: the terminal runs this binary's inner half; its figures.
fn case(display: &Display, dir: &Path, clip: &Path, term: Term, size: (u16, u16), render: RenderArg) -> Result<Took> {
    let out = dir.join("took.json");
    let _ = std::fs::remove_file(&out);
    let exe = std::env::current_exe()?;
    let render_name = format!("{render:?}").to_lowercase();
    let script = format!(
        "exec taskset -c 0 '{}' bench --suite picture --in-terminal '{}' --clip '{}' --render {render_name} 2>'{}'",
        exe.display(),
        out.display(),
        clip.display(),
        dir.join("inner.stderr").display()
    );
    let child = term.command(size, display, dir, &script).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn()?;
    let mut child = crate::xlab::Stopping(child);
    let deadline = Instant::now() + Duration::from_secs(300);
    while child.0.try_wait()?.is_none() {
        if Instant::now() > deadline {
            bail!("{term:?} {size:?} {render_name}: no end after 5 minutes");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let json = std::fs::read_to_string(&out)
        .map_err(|e| eyre!("{term:?} {size:?} {render_name}: no figures ({e}); {}", std::fs::read_to_string(dir.join("inner.stderr")).unwrap_or_default()))?;
    Ok(serde_json::from_str(&json)?)
}

/// The inner half, inside the terminal: draws the clip's frames and writes the figures to `out`.
pub fn in_terminal(out: &Path, clip: &Path, render: RenderArg) -> Result<()> {
    let graphics = match render {
        RenderArg::Sixel => Graphics::Sixel,
        RenderArg::Kitty => Graphics::Kitty,
        RenderArg::Halfblocks => Graphics::Halfblocks,
        _ => Graphics::Auto,
    };
    let picture = Picture::new(graphics);
    let (cols, rows) = crossterm::terminal::size()?;
    let area = join_view::video_area(Rect::new(0, 0, cols, rows));
    let (px, cells) = picture.fit(area, (1280, 720), 1.0);
    let mut frames = Vec::new();
    crate::commands::bench::playback::decode_each(clip, px, &mut |f| {
        if frames.len() < 60 {
            frames.push(f);
        }
        Ok(())
    })?;
    if frames.is_empty() {
        bail!("no frames decoded");
    }
    let (mut terminal, count, guard) = term::enter()?;
    let mut on_screen = OnScreen::default();
    let mut draw = |i: usize| -> Result<()> {
        let drawing = picture.encode(&frames[i % frames.len()], cells, on_screen.next_id()).ok_or_else(|| eyre!("encode failed"))?;
        let placed = if let Drawing::Escape(e) = &drawing { e.kitty_id } else { None };
        terminal.draw(|f| {
            picture_pane::render(f, area, Some(&(drawing, cells)), "", false, false);
        })?;
        let out = terminal.backend_mut();
        // As the view: the kitty image drawn before goes once the new one is placed.
        if let Some(seq) = on_screen.drawn(placed) {
            out.write_all(seq.as_bytes())?;
        }
        out.write_all(b"\x1b[c")?;
        out.flush()?;
        wait_da1(Duration::from_secs(10))
    };
    for i in 0..WARM_UP {
        draw(i)?;
    }
    let (t0, cpu0, b0) = (Instant::now(), crate::commands::bench::cpu_now(), count.load(std::sync::atomic::Ordering::Relaxed));
    for i in 0..FRAMES {
        draw(WARM_UP + i)?;
    }
    let (secs, cpu, bytes) = (t0.elapsed().as_secs_f64(), crate::commands::bench::cpu_now() - cpu0, count.load(std::sync::atomic::Ordering::Relaxed) - b0);
    drop(guard);
    let took = Took {
        kind: format!("{:?}", picture.kind()),
        pixels: px,
        fps: FRAMES as f64 / secs,
        cpu_ms: cpu * 1000.0 / FRAMES as f64,
        kb: bytes as f64 / FRAMES as f64 / 1000.0,
    };
    std::fs::write(out, serde_json::to_string(&took)?)?;
    Ok(())
}

/// Reads the terminal until a DA1 answer (`ESC [ ? … c`) came.
fn wait_da1(timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    let fd = std::io::stdin().as_raw_fd();
    let mut buf = [0u8; 256];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        // Straight from the fd: a buffered reader would keep the answer where poll cannot see it.
        if !probe::readable(fd, left)? {
            continue;
        }
        match probe::read(fd, &mut buf)? {
            0 => bail!("the terminal closed"),
            n => seen.extend_from_slice(&buf[..n]),
        }
        if crate::player::graphics::caps::parse(&seen).complete() {
            return Ok(());
        }
    }
    bail!("no DA1 answer in {timeout:?}")
}
