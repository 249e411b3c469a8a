//! The picture in real terminals, under Xvfb: Debian's xterm as a VT340 (sixel) and kitty
//! (its graphics protocol; Debian 12's 0.26 has no Unicode placeholders), running
//! `syncy join LINK` as a user would (`--render auto`). With the room paused at a known
//! position, a screenshot of the picture must show the clip's frame there: its colour bars
//! where the frame decoded from the file has them, not a blank, not boxes.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use syncy::xlab::{self, Display, Shot, Term};

use super::harness::{Proc, bin, clip_sized, link_of};

/// Where the room is paused, seconds.
const AT: f64 = 5.0;

/// What a test needs, or why it cannot run (SKIPPED; a failure under CI).
fn ready(term: Term) -> Option<Display> {
    let missing = xlab::missing(term);
    let why = match missing[..] {
        [] => match Display::start() {
            Ok(d) => return Some(d),
            Err(e) => e,
        },
        _ => format!("{} not installed (scripts/setup-debian.sh installs them)", missing.join(", ")),
    };
    assert!(std::env::var_os("CI").is_none(), "a terminal test cannot run here and CI is set: {why}");
    eprintln!("SKIPPED: {why}");
    None
}

/// Where the participant put its picture, from its log: the protocol, one cell's pixels, the
/// cells (x, y, columns, rows) and the frames' pixels.
#[derive(Debug, Clone, PartialEq)]
struct Placed {
    kind: String,
    cell: (usize, usize),
    at: (usize, usize),
    cells: (usize, usize),
    frame: (u32, u32),
}

fn placed(log: &str) -> Option<Placed> {
    let nums = |s: &str| -> Vec<usize> { s.split(|c: char| !c.is_ascii_digit()).filter(|t| !t.is_empty()).filter_map(|t| t.parse().ok()).collect() };
    let pick = log.lines().rfind(|l| l.contains("syncy::player::picture: picture: "))?;
    let kind = pick.split("picture: ").last()?.split([' ', ',']).next()?.to_string();
    let cell = nums(pick.rsplit("cells of ").next()?);
    let fit = log.lines().rfind(|l| l.contains("picture at cells "))?;
    let n = nums(fit.rsplit("picture at cells ").next()?);
    Some(Placed { kind, cell: (cell[0], cell[1]), at: (n[0], n[1]), cells: (n[2], n[3]), frame: (n[4] as u32, n[5] as u32) })
}

/// The frames of `clip` around `at` seconds, decoded to `size` as the participant decodes.
fn frames_around(clip: &Path, size: (u32, u32), at: f64) -> Vec<Vec<u8>> {
    use syncy::media::decode::{FrameQueue, spawn};
    let q = FrameQueue::new(4, Some(size));
    let t = spawn(Box::new(std::fs::File::open(clip).unwrap()), q.clone());
    let mut near = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(q.eof() && q.is_empty()) && Instant::now() < deadline {
        match q.pop_until(i64::MAX) {
            Some(f) if (f.pts_us as f64 / 1e6 - at).abs() <= 0.5 && f.width == size.0 => near.push(f.rgb),
            Some(f) if f.pts_us as f64 / 1e6 > at + 0.5 => break,
            Some(_) => {}
            None => std::thread::sleep(Duration::from_millis(1)),
        }
    }
    q.close();
    let _ = t.join();
    near
}

/// How far the screenshot's `region` (x, y, w, h) is from `frame` (`fw`×`fh`): the mean
/// colour of each of 8×6 blocks compared, the mean and the worst difference (0-255).
fn difference(shot: &Shot, region: (usize, usize, usize, usize), frame: &[u8], fw: usize, fh: usize) -> (f64, f64) {
    let (sw, _, px) = shot;
    let mean = |get: &dyn Fn(usize, usize) -> [u8; 3], (w, h): (usize, usize), bx: usize, by: usize| {
        let (x0, x1, y0, y1) = (bx * w / 8, (bx + 1) * w / 8, by * h / 6, (by + 1) * h / 6);
        let mut sum = [0f64; 3];
        for y in y0..y1 {
            for x in x0..x1 {
                let c = get(x, y);
                (0..3).for_each(|k| sum[k] += c[k] as f64);
            }
        }
        let n = ((x1 - x0) * (y1 - y0)).max(1) as f64;
        sum.map(|s| s / n)
    };
    let (rx, ry, rw, rh) = region;
    let on_screen = |x: usize, y: usize| {
        let i = ((ry + y) * sw + rx + x) * 3;
        [px[i], px[i + 1], px[i + 2]]
    };
    let in_frame = |x: usize, y: usize| {
        let i = (y * fw + x) * 3;
        [frame[i], frame[i + 1], frame[i + 2]]
    };
    let mut diffs = Vec::new();
    for by in 0..6 {
        for bx in 0..8 {
            let (a, b) = (mean(&on_screen, (rw, rh), bx, by), mean(&in_frame, (fw, fh), bx, by));
            diffs.push((0..3).map(|k| (a[k] - b[k]).abs()).sum::<f64>() / 3.0);
        }
    }
    (diffs.iter().sum::<f64>() / diffs.len() as f64, diffs.iter().cloned().fold(0.0, f64::max))
}

/// `syncy join LINK` in `term` at `size` as a user would start it (`env`: a shell prefix),
/// its window id in `DIR/wid`, its log in `DIR/join.log`.
fn viewer(term: Term, size: (u16, u16), display: &Display, dir: &Path, link: &str, env: &str) -> xlab::Stopping {
    let (wid, log) = (dir.join("wid"), dir.join("join.log"));
    let cmd = format!("echo $WINDOWID > {}; {env} exec {} join '{link}' --no-sound --log {}", wid.display(), bin(), log.display());
    xlab::Stopping(
        term.command(size, display, dir, &cmd)
            .env("XDG_CONFIG_HOME", dir.join("xdg-config-viewer"))
            .env("RUST_LOG", "warn,syncy=info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("terminal.stderr")).unwrap())
            .spawn()
            .unwrap(),
    )
}

/// Runs the room and a participant in `term` at `size`; returns what it drew with once its
/// picture matched the clip's frame (panics when it never does).
fn picture_shows(tag: &str, term: Term, size: (u16, u16)) -> Option<String> {
    let _real_time = super::harness::real_time();
    let display = ready(term)?;
    let file = clip_sized("terminals.mp4", 10, "2Mb/s", "640x360");
    let dir = super::harness::test_dir();
    let mut host = Proc::host(&file, dir.path(), &[]);
    let link = link_of(&mut host);
    // The room starts paused; here, at a known frame.
    host.send(&format!("seek {AT}"));
    let (wid, log) = (dir.path().join("wid"), dir.path().join("join.log"));
    let viewer = viewer(term, size, &display, dir.path(), &link, "");
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut last = String::from("nothing yet");
    let mut expected: Option<(Placed, Vec<Vec<u8>>)> = None;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let (Some(p), Ok(wid)) = (placed(&text), std::fs::read_to_string(&wid)) else { continue };
        if expected.as_ref().is_none_or(|(e, _)| *e != p) {
            expected = Some((p.clone(), frames_around(&file, p.frame, AT)));
        }
        let Some(shot) = xlab::screenshot(&display, wid.trim()) else { continue };
        let (p, frames) = expected.as_ref().unwrap();
        // Sixel is drawn at its own size from the first cell; kitty and half-blocks fill their cells.
        let (x, y) = (p.at.0 * p.cell.0, p.at.1 * p.cell.1);
        let (w, h) = if p.kind.starts_with("Sixel") { (p.frame.0 as usize, p.frame.1 as usize) } else { (p.cells.0 * p.cell.0, p.cells.1 * p.cell.1) };
        if x + w > shot.0 || y + h > shot.1 {
            last = format!("the picture ({x},{y} {w}×{h}) is past the window ({}×{})", shot.0, shot.1);
            continue;
        }
        let best = frames.iter().map(|f| difference(&shot, (x, y, w, h), f, p.frame.0 as usize, p.frame.1 as usize)).min_by(|a, b| a.0.total_cmp(&b.0));
        match best {
            Some((mean, worst)) if mean < 20.0 && worst < 60.0 => {
                drop(viewer);
                assert_eq!(host.quit(), 0);
                return Some(p.kind.clone());
            }
            other => last = format!("{p:?}: difference (mean, worst) {other:?} from {} frames near {AT} s", frames.len()),
        }
        // Keep the last look for whoever reads the failure.
        let _ = xlab::save_ppm(&dir.path().join("last.ppm"), &shot);
    }
    drop(viewer);
    panic!(
        "the picture never matched the clip in {tag}: {last}; log:\n{}\n(the last screenshot: {}, kept with SYNCY_KEEP_TEST_DIR=1)",
        std::fs::read_to_string(&log).unwrap_or_default(),
        dir.path().join("last.ppm").display()
    );
}

#[test]
fn xterm_as_a_vt340_shows_the_picture_in_sixel_at_80x24() {
    if let Some(kind) = picture_shows("vt340-80x24", Term::Vt340, (80, 24)) {
        assert!(kind.starts_with("Sixel"), "{kind}");
    }
}

#[test]
fn xterm_as_a_vt340_shows_the_picture_in_sixel_at_150x48() {
    if let Some(kind) = picture_shows("vt340-150x48", Term::Vt340, (150, 48)) {
        assert!(kind.starts_with("Sixel"), "{kind}");
    }
}

#[test]
fn kitty_0_26_shows_the_picture_placed_directly() {
    if let Some(kind) = picture_shows("kitty-80x24", Term::Kitty, (80, 24)) {
        assert!(kind.starts_with("Kitty"), "{kind}");
    }
}

#[test]
fn an_xterm_without_sixel_gets_half_blocks_that_show() {
    if let Some(kind) = picture_shows("xterm-80x24", Term::Xterm, (80, 24)) {
        assert_eq!(kind, "Halfblocks");
    }
}

/// The view's own tally of what it sent the terminal: (bytes, seconds, pictures, scale) a line.
fn tallies(log: &str) -> Vec<(f64, f64, f64, f64)> {
    let num = |t: &str| t.trim_end_matches(',').parse::<f64>().ok();
    log.lines()
        .filter_map(|l| l.split("to the terminal: ").nth(1))
        .filter_map(|t| {
            let w: Vec<&str> = t.split_whitespace().collect();
            Some((num(w.first()?)?, num(w.get(3)?)?, num(w.get(5)?)?, num(w.get(9)?)?))
        })
        .collect()
}

#[test]
fn over_ssh_kitty_pictures_stay_under_the_default_byte_bound_smaller_not_stopped() {
    let _real_time = super::harness::real_time();
    let Some(display) = ready(Term::Kitty) else { return };
    // Long enough to play on however slowly kitty starts here.
    let file = clip_sized("terminals-long.mp4", 40, "2Mb/s", "640x360");
    let dir = super::harness::test_dir();
    let mut host = Proc::host(&file, dir.path(), &["--autoplay"]);
    let link = link_of(&mut host);
    // As under sshd (the address is never used): the default bound, 2 MiB/s, holds. Full
    // size, kitty's frames here are 544×306 px of base64 RGB, 667 KB: 3 a second would fit.
    let _viewer = viewer(Term::Kitty, (80, 24), &display, dir.path(), &link, "SSH_CONNECTION='192.0.2.1 50000 192.0.2.2 22'");
    let log = dir.path().join("join.log");
    let deadline = Instant::now() + Duration::from_secs(60);
    let seconds = loop {
        let t = tallies(&std::fs::read_to_string(&log).unwrap_or_default());
        // From the first second with pictures, two settle the scale; then five are measured.
        let first = t.iter().position(|s| s.2 > 0.0).unwrap_or(t.len());
        if t.len() >= first + 7 {
            break t[first + 2..first + 7].to_vec();
        }
        assert!(Instant::now() < deadline, "no five seconds of pictures; log:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(250));
    };
    let (bytes, secs, pictures) = seconds.iter().fold((0.0, 0.0, 0.0), |a, s| (a.0 + s.0, a.1 + s.1, a.2 + s.2));
    let bound = 2.0 * 1024.0 * 1024.0;
    // Within the bound (plus a quarter second's credit and one picture's overdraft).
    assert!(bytes <= bound * secs + bound / 4.0 + 700_000.0, "{bytes} B in {secs} s: {seconds:?}");
    assert!(pictures / secs >= 5.0, "pictures still go, smaller: {seconds:?}");
    assert!(seconds.iter().all(|s| s.3 < 1.0), "drawn smaller: {seconds:?}");
    assert_eq!(host.quit(), 0);
}
