//! Standard output that may close under us (`syncy host FILE | head -1`): a write that fails
//! with a broken pipe, or the reader of a pipe going away (seen by `poll`), ends the program
//! quietly with exit code 0 instead of a panic or an error.

use std::io::Write;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

static CLOSED: AtomicBool = AtomicBool::new(false);

fn notify() -> &'static Notify {
    static N: OnceLock<Notify> = OnceLock::new();
    N.get_or_init(Notify::new)
}

fn mark_closed() {
    if !CLOSED.swap(true, Ordering::SeqCst) {
        notify().notify_waiters();
    }
}

/// Whether stdout's reader has gone away.
pub fn is_closed() -> bool {
    CLOSED.load(Ordering::SeqCst)
}

/// Writes `text` to stdout and flushes; false (and stdout marked closed) when it cannot.
pub fn write(text: &str) -> bool {
    if is_closed() {
        return false;
    }
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => true,
        Err(e) => {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                mark_closed();
            } else {
                tracing::warn!("cannot write to standard output: {e}");
            }
            false
        }
    }
}

/// Resolves once stdout's reader has gone away (never for a terminal or a file).
pub async fn closed() {
    loop {
        let wait = notify().notified();
        if is_closed() {
            return;
        }
        wait.await;
    }
}

/// Watches stdout when it is a pipe or a socket, so a reader that goes away is noticed even
/// while nothing is being written (a host prints its links, then little else).
pub fn watch() {
    // One watcher is enough however many callers ask.
    static STARTED: std::sync::Once = std::sync::Once::new();
    let mut first = false;
    STARTED.call_once(|| first = true);
    if !first || !is_pipe(libc::STDOUT_FILENO) {
        return;
    }
    std::thread::spawn(|| {
        let mut fd = libc::pollfd { fd: libc::STDOUT_FILENO, events: 0, revents: 0 };
        loop {
            // SAFETY: one valid pollfd, count 1. POLLERR and POLLHUP are reported even with
            // no events asked for; a pipe's write end gets POLLERR once its reader closes.
            let n = unsafe { libc::poll(&mut fd, 1, -1) };
            if n > 0 && fd.revents & (libc::POLLERR | libc::POLLHUP) != 0 {
                mark_closed();
                return;
            }
            if n < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                return;
            }
        }
    });
}

fn is_pipe(fd: libc::c_int) -> bool {
    // SAFETY: fstat fills a zeroed stat for a descriptor we only look at.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        libc::fstat(fd, &mut st) == 0 && matches!(st.st_mode & libc::S_IFMT, libc::S_IFIFO | libc::S_IFSOCK)
    }
}
