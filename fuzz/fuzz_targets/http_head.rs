//! What a stranger sends the host's HTTP fallback server (and mpv the participant's range
//! server) before any check: the request head, read with its size cap, and the Range header
//! resolved against a file size. Never a panic; a complete head names its method; a range that
//! resolves lies within the file.
//!
//! The input: 8 bytes of file size, 1 byte choosing the cap, then the bytes on the wire.
//! `head::read` reads a socket, so the bytes go through a loopback connection.
#![no_main]

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use syncy::net::http::head::{self, Request};
use syncy::net::http::range::{RangeAnswer, parse_range};

/// One listener and one runtime for every run.
struct Wire {
    listener: TcpListener,
    rt: tokio::runtime::Runtime,
}

fn wire() -> &'static Wire {
    static WIRE: OnceLock<Wire> = OnceLock::new();
    WIRE.get_or_init(|| Wire {
        listener: TcpListener::bind("127.0.0.1:0").expect("a loopback port"),
        rt: tokio::runtime::Builder::new_current_thread().enable_io().build().expect("a runtime"),
    })
}

/// Closes with a reset, not a FIN: millions of runs would otherwise use up the ports in
/// TIME_WAIT.
fn reset(sock: TcpStream) {
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: setsockopt reads the struct passed, on a socket this function owns.
    unsafe {
        libc::setsockopt(sock.as_raw_fd(), libc::SOL_SOCKET, libc::SO_LINGER, (&raw const linger).cast(), size_of::<libc::linger>() as libc::socklen_t);
    }
}

/// Sends `bytes` and reads them back as a request head of at most `max` bytes.
fn read_head(bytes: &[u8], max: usize) -> Request {
    let w = wire();
    let mut client = TcpStream::connect(w.listener.local_addr().expect("bound")).expect("connect");
    let (server, _) = w.listener.accept().expect("accept");
    // (Loopback buffers hold far more than a fuzz input: this never blocks.)
    client.write_all(bytes).expect("write");
    client.shutdown(std::net::Shutdown::Write).expect("shutdown");
    server.set_nonblocking(true).expect("nonblocking");
    let request = w.rt.block_on(async {
        let mut server = tokio::net::TcpStream::from_std(server).expect("register");
        head::read(&mut server, max).await.expect("read")
    });
    reset(client);
    request
}

/// A resolved range lies within a file of `size` bytes.
fn check_range(value: Option<&str>, size: u64) {
    match parse_range(value, size) {
        RangeAnswer::Partial(start, end) => assert!(start <= end && end < size, "{value:?} of {size}: {start}-{end}"),
        RangeAnswer::Whole | RangeAnswer::Unsatisfiable => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((size, rest)) = data.split_first_chunk::<8>() else { return };
    let Some((&cap, wire_bytes)) = rest.split_first() else { return };
    let size = u64::from_le_bytes(*size);
    // From a tiny cap to the fallback server's own (8 KiB).
    let max = 32 + usize::from(cap) * 32;
    // The parser alone, on any text at all.
    check_range(Some(&String::from_utf8_lossy(wire_bytes)), size);
    match read_head(wire_bytes, max) {
        Request::Head(h) => {
            assert!(!h.method.is_empty(), "a complete head names its method");
            check_range(h.header("range"), size);
        }
        // (A client that closes mid-head is `Closed` too.)
        Request::Closed | Request::Bad => {}
    }
});
