//! Asking the terminal what it draws (`caps::QUERY`), before the view takes it over: raw
//! mode, the queries out, the answers read on this thread until DA1's (the last asked, which
//! every terminal gives) or the deadline. No reader thread is left behind to eat keys later,
//! and nothing is asked where the answer would not be the terminal's own.

use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use super::caps::{self, Place, Replies};

/// How long a terminal may take to answer (over SSH across the world, a round trip or two).
pub const TIMEOUT: Duration = Duration::from_millis(1000);

/// How long late answers are waited for before they are dropped.
const LATE: Duration = Duration::from_millis(200);

/// The most read back: the answers are a few hundred bytes.
const MAX_ANSWER: usize = 16 * 1024;

/// Whether asking is safe and useful: both ends a terminal that is not `dumb`, and no
/// multiplexer in between (tmux answers for itself).
pub fn worthwhile(place: Place) -> bool {
    use std::io::IsTerminal;
    let term = std::env::var("TERM").unwrap_or_default();
    // The Linux console draws no graphics, and might print what it does not know.
    io::stdin().is_terminal() && io::stdout().is_terminal() && !term.is_empty() && term != "dumb" && term != "linux" && !place.multiplexer
}

/// Asks the terminal on stdin/stdout; whatever came by the deadline is parsed (a terminal
/// that answers nothing gives empty replies).
pub fn ask(timeout: Duration) -> io::Result<Replies> {
    crossterm::terminal::enable_raw_mode()?;
    let answers = exchange(timeout);
    let replies = answers.as_deref().map(caps::parse).unwrap_or_default();
    if !replies.complete() {
        // Answers still on their way would reach the view as keys (a digit seeks the room):
        // what came so far and after is dropped.
        std::thread::sleep(LATE);
        // SAFETY: tcflush on stdin's fd, which is a terminal (`worthwhile`).
        unsafe { libc::tcflush(io::stdin().as_raw_fd(), libc::TCIFLUSH) };
        tracing::info!("the terminal did not answer within {timeout:?}");
    }
    crossterm::terminal::disable_raw_mode()?;
    let bytes = answers?;
    tracing::info!("terminal answers: {:?} → {replies:?}", String::from_utf8_lossy(&bytes));
    Ok(replies)
}

fn exchange(timeout: Duration) -> io::Result<Vec<u8>> {
    let mut out = io::stdout().lock();
    out.write_all(caps::QUERY)?;
    out.flush()?;
    let fd = io::stdin().as_raw_fd();
    let deadline = Instant::now() + timeout;
    let mut bytes = Vec::new();
    let mut buf = [0u8; 1024];
    while bytes.len() < MAX_ANSWER && !caps::parse(&bytes).complete() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || !readable(fd, left)? {
            break;
        }
        match read(fd, &mut buf)? {
            0 => break,
            n => bytes.extend_from_slice(&buf[..n]),
        }
    }
    Ok(bytes)
}

/// Waits up to `wait` for `fd` to have bytes (a signal meanwhile does not end the wait).
pub(crate) fn readable(fd: i32, wait: Duration) -> io::Result<bool> {
    let deadline = Instant::now() + wait;
    loop {
        let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        let ms = deadline.saturating_duration_since(Instant::now()).as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: one pollfd of ours.
        match unsafe { libc::poll(&mut p, 1, ms) } {
            n if n >= 0 => return Ok(n > 0),
            _ => match io::Error::last_os_error() {
                e if e.kind() == io::ErrorKind::Interrupted && Instant::now() < deadline => continue,
                e if e.kind() == io::ErrorKind::Interrupted => return Ok(false),
                e => return Err(e),
            },
        }
    }
}

/// Reads what `fd` has into `buf` (retrying after a signal).
pub(crate) fn read(fd: i32, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: reading into a buffer of ours, of its length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        match n {
            n if n >= 0 => return Ok(n as usize),
            _ => match io::Error::last_os_error() {
                e if e.kind() == io::ErrorKind::Interrupted => continue,
                e => return Err(e),
            },
        }
    }
}

/// The window's size in pixels as the kernel knows it (0×0 where the terminal does not say).
pub fn window_pixels() -> Option<(u32, u32)> {
    crossterm::terminal::window_size().ok().map(|w| (w.width as u32, w.height as u32)).filter(|&(w, h)| w > 0 && h > 0)
}
