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

/// The most read back: the answers are a few hundred bytes.
const MAX_ANSWER: usize = 16 * 1024;

/// Whether asking is safe and useful: both ends a terminal that is not `dumb`, and no
/// multiplexer in between (tmux answers for itself).
pub fn worthwhile(place: Place) -> bool {
    use std::io::IsTerminal;
    let term = std::env::var("TERM").unwrap_or_default();
    io::stdin().is_terminal() && io::stdout().is_terminal() && !term.is_empty() && term != "dumb" && !place.multiplexer
}

/// Asks the terminal on stdin/stdout; whatever came by the deadline is parsed (a terminal
/// that answers nothing gives empty replies).
pub fn ask(timeout: Duration) -> io::Result<Replies> {
    crossterm::terminal::enable_raw_mode()?;
    let answers = exchange(timeout);
    crossterm::terminal::disable_raw_mode()?;
    let bytes = answers?;
    let replies = caps::parse(&bytes);
    tracing::info!("terminal answers: {:?} → {replies:?}", String::from_utf8_lossy(&bytes));
    if !replies.complete() {
        tracing::info!("the terminal did not answer within {timeout:?}");
    }
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
        // SAFETY: reading into a buffer of ours, of its length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        match n {
            0 => break,
            n if n < 0 => match io::Error::last_os_error() {
                e if e.kind() == io::ErrorKind::Interrupted => continue,
                e => return Err(e),
            },
            n => bytes.extend_from_slice(&buf[..n as usize]),
        }
    }
    Ok(bytes)
}

/// Waits up to `wait` for `fd` to have bytes.
pub(crate) fn readable(fd: i32, wait: Duration) -> io::Result<bool> {
    let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    let ms = wait.as_millis().clamp(1, i32::MAX as u128) as i32;
    // SAFETY: one pollfd of ours.
    match unsafe { libc::poll(&mut p, 1, ms) } {
        n if n < 0 => match io::Error::last_os_error() {
            e if e.kind() == io::ErrorKind::Interrupted => Ok(false),
            e => Err(e),
        },
        n => Ok(n > 0),
    }
}

/// The window's size in pixels as the kernel knows it (0×0 where the terminal does not say).
pub fn window_pixels() -> Option<(u32, u32)> {
    crossterm::terminal::window_size().ok().map(|w| (w.width as u32, w.height as u32)).filter(|&(w, h)| w > 0 && h > 0)
}
