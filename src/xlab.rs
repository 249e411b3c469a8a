//! Real terminals on a virtual X display, for the terminal tests and the picture benchmark:
//! an Xvfb of our own (its display number chosen by the server, `-displayfd`), Debian's xterm
//! (as a VT340 for sixel, or plain) and kitty started at a size in cells with fixed fonts and
//! no border (the window's first pixel is the first cell's), and screenshots of a window.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// An X server of our own, stopped when dropped (its terminals go with it, and the programs
/// in them get SIGHUP).
pub struct Display {
    child: Child,
    name: String,
}

impl Display {
    /// Starts Xvfb (24-bit colour: its default, 8, would show no picture faithfully).
    pub fn start() -> Result<Display, String> {
        let mut child = Command::new("Xvfb")
            .args(["-displayfd", "1", "-screen", "0", "1600x1000x24", "-nolisten", "tcp", "-noreset"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start Xvfb: {e}"))?;
        let out = child.stdout.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(out).read_line(&mut line);
            let _ = tx.send(line);
        });
        match rx.recv_timeout(Duration::from_secs(20)).map(|l| l.trim().to_string()) {
            Ok(n) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => Ok(Display { child, name: format!(":{n}") }),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                Err("Xvfb did not say its display number".into())
            }
        }
    }

    /// `:N`, for `DISPLAY`.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Display {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child process, stopped when dropped (on every path, errors included).
pub struct Stopping(pub Child);

impl Drop for Stopping {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether a program is on PATH.
pub fn have(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

/// The programs missing for a terminal `term` and its screenshots.
pub fn missing(term: Term) -> Vec<&'static str> {
    ["Xvfb", "xwd", "convert", term.program()].into_iter().filter(|p| !have(p)).collect()
}

/// A terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Term {
    /// `xterm -ti vt340`: sixel.
    Vt340,
    /// Plain `xterm` (a VT420: no sixel).
    Xterm,
    /// kitty (Mesa's software GL).
    Kitty,
}

impl Term {
    /// Its program.
    pub fn program(self) -> &'static str {
        match self {
            Term::Vt340 | Term::Xterm => "xterm",
            Term::Kitty => "kitty",
        }
    }

    /// A `Command` that runs `sh -c script` in this terminal at `cols`×`rows` on `display`,
    /// kitty's config kept in `dir` (the user's is not read).
    pub fn command(self, (cols, rows): (u16, u16), display: &Display, dir: &Path, script: &str) -> Command {
        let geometry = format!("{cols}x{rows}+0+0");
        let mut c = Command::new(self.program());
        match self {
            Term::Vt340 | Term::Xterm => {
                if self == Term::Vt340 {
                    c.args(["-ti", "vt340"]);
                }
                // DejaVu Sans Mono 11: cells of 9×19, so 150 columns are 1350 px, past
                // xterm's largest sixel image (1000×1000).
                c.args(["-fa", "DejaVu Sans Mono", "-fs", "11", "-b", "0", "-geometry", &geometry, "-e", "sh", "-c", script]);
            }
            Term::Kitty => {
                for o in [
                    "font_size=10",
                    "window_padding_width=0",
                    &format!("initial_window_width={cols}c"),
                    &format!("initial_window_height={rows}c"),
                    "remember_window_size=no",
                ] {
                    c.args(["-o", o]);
                }
                c.args(["sh", "-c", script]).env("LIBGL_ALWAYS_SOFTWARE", "1").env("KITTY_CONFIG_DIRECTORY", dir);
            }
        }
        c.env("DISPLAY", display.name()).env_remove("TMUX").env_remove("STY").env_remove("SSH_CONNECTION").env_remove("SSH_TTY");
        c
    }
}

/// A screenshot: width, height, RGB.
pub type Shot = (usize, usize, Vec<u8>);

/// A screenshot of window `wid` (the terminal's `$WINDOWID`).
pub fn screenshot(display: &Display, wid: &str) -> Option<Shot> {
    let xwd = Command::new("xwd").args(["-silent", "-display", display.name(), "-id", wid]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().ok()?;
    let out = Command::new("convert").args(["xwd:-", "ppm:-"]).stdin(xwd.stdout?).stderr(Stdio::null()).output().ok()?;
    ppm(&out.stdout)
}

/// A binary PPM (P6, 8 bits a sample).
pub fn ppm(bytes: &[u8]) -> Option<Shot> {
    let mut fields = Vec::new();
    let mut i = 0;
    while fields.len() < 4 && i < bytes.len() {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        // A comment (ImageMagick writes `#xwdump` from an xwd) runs to the end of its line.
        if bytes.get(i) == Some(&b'#') {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        let start = i;
        while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        fields.push(std::str::from_utf8(&bytes[start..i]).ok()?.to_string());
    }
    let (w, h): (usize, usize) = (fields.get(1)?.parse().ok()?, fields.get(2)?.parse().ok()?);
    let data = bytes.get(i + 1..(i + 1).checked_add(w.checked_mul(h)?.checked_mul(3)?)?)?;
    (fields[0] == "P6" && fields[3] == "255").then(|| (w, h, data.to_vec()))
}

/// Writes a screenshot as a PPM (for a look after a failure).
pub fn save_ppm(path: &Path, (w, h, px): &Shot) -> std::io::Result<()> {
    let mut bytes = format!("P6\n{w} {h}\n255\n").into_bytes();
    bytes.extend_from_slice(px);
    std::fs::write(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ppm_headers_are_read_and_short_or_odd_ones_refused() {
        assert_eq!(ppm(b"P6\n2 1\n255\n\x01\x02\x03\x04\x05\x06"), Some((2, 1, vec![1, 2, 3, 4, 5, 6])));
        assert_eq!(ppm(b"P6\n2 1\n255\n\x01"), None);
        assert_eq!(ppm(b"P5\n1 1\n255\n\x01\x02\x03"), None);
        assert_eq!(ppm(b"P6\n99999999999 99999999999\n255\n"), None);
        assert_eq!(ppm(b""), None);
        assert_eq!(ppm(b"P6\n#xwdump\n1 1\n255\n\x01\x02\x03"), Some((1, 1, vec![1, 2, 3])), "as convert writes it from an xwd");
    }
}
