//! Taking the terminal over and giving it back: raw mode, alternate screen, hidden cursor,
//! stderr parked, and everything restored on every exit path, panics included.

use std::io::{self, Stdout, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};

use crossterm::terminal::{EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode};
use crossterm::{cursor, execute};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;

/// The real stderr while the view is up (-1: not redirected).
static SAVED_STDERR: AtomicI32 = AtomicI32::new(-1);

/// C libraries (ALSA, FFmpeg) write their complaints straight to fd 2, which would land on
/// the picture: while the view is up, fd 2 goes to /dev/null (tracing has its own log file).
fn hide_stderr() {
    // SAFETY: plain fd juggling; on any failure stderr simply stays where it was.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if null < 0 {
            return;
        }
        let saved = libc::dup(2);
        if saved >= 0 && libc::dup2(null, 2) >= 0 {
            SAVED_STDERR.store(saved, Ordering::SeqCst);
        }
        libc::close(null);
    }
}

fn restore_stderr() {
    let saved = SAVED_STDERR.swap(-1, Ordering::SeqCst);
    if saved >= 0 {
        // SAFETY: `saved` is the fd we duplicated from stderr.
        unsafe {
            libc::dup2(saved, 2);
            libc::close(saved);
        }
    }
}

/// The name of the thread that encodes pictures, whose panics are caught.
pub const PICTURE_THREAD: &str = "picture";

/// The terminal is taken over (restore has work to do).
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Puts the terminal back as it was (raw mode off, main screen, cursor shown, stderr back),
/// once: the guard and the panic hook may both ask.
fn restore() {
    if !ACTIVE.swap(false, Ordering::SeqCst) {
        return;
    }
    let _ = disable_raw_mode();
    let _ = execute!(io::stdout(), LeaveAlternateScreen, cursor::Show);
    restore_stderr();
}

/// Restores the terminal when dropped.
pub struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

/// The view's terminal: what it writes is counted (pictures are paced by it).
pub type Term = Terminal<CrosstermBackend<Counted<Stdout>>>;

/// A writer that counts the bytes through it (in `count`, which the view keeps a handle of).
pub struct Counted<W> {
    inner: W,
    count: Arc<AtomicU64>,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Takes the terminal over; it is given back when the guard drops (or on a panic). The
/// counter counts the bytes the terminal is sent.
pub fn enter() -> io::Result<(Term, Arc<AtomicU64>, TerminalGuard)> {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        // The picture thread catches its panics (a frame not drawn): the view goes on.
        if std::thread::current().name() != Some(PICTURE_THREAD) {
            restore();
        }
        previous(info);
    }));
    enable_raw_mode()?;
    ACTIVE.store(true, Ordering::SeqCst);
    let guard = TerminalGuard;
    hide_stderr();
    execute!(io::stdout(), EnterAlternateScreen, cursor::Hide)?;
    let count = Arc::new(AtomicU64::new(0));
    let mut terminal = Terminal::new(CrosstermBackend::new(Counted { inner: io::stdout(), count: count.clone() }))?;
    terminal.clear()?;
    Ok((terminal, count, guard))
}

/// Asks the terminal to put `text` on the clipboard (OSC 52). Terminals and tmux that allow
/// it take it, over SSH too; others ignore the sequence.
pub fn copy_to_clipboard(text: &str) -> io::Result<()> {
    use base64::Engine;
    let mut out = io::stdout().lock();
    write!(out, "\x1b]52;c;{}\x07", base64::engine::general_purpose::STANDARD.encode(text))?;
    out.flush()
}
