//! The async runtime handed to webrtc-rs: tokio, with larger UDP socket buffers.
//!
//! At Linux's default 208 KiB receive buffer, a burst of SCTP packets on loopback overflows the
//! socket (`RcvbufErrors` in /proc/net/snmp) and SCTP's loss recovery then halves throughput at
//! random. Larger buffers (capped by the kernel at `net.core.rmem_max`) keep bursts whole.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use webrtc::runtime::{AsyncInterval, AsyncTcpListener, AsyncTcpStream, AsyncUdpSocket, JoinHandle, Runtime, TokioRuntime};

/// Socket buffer size asked for; the kernel may grant less.
pub const UDP_BUFFER: usize = 4 * 1024 * 1024;

/// Tokio with big UDP buffers.
#[derive(Debug)]
pub struct SyncyRuntime(TokioRuntime);

/// The one shared instance.
pub fn runtime() -> Arc<dyn Runtime> {
    static RT: OnceLock<Arc<dyn Runtime>> = OnceLock::new();
    RT.get_or_init(|| Arc::new(SyncyRuntime(TokioRuntime))).clone()
}

fn set_buffer(sock: &std::net::UdpSocket, opt: libc::c_int) {
    let size = UDP_BUFFER as libc::c_int;
    // SAFETY: a valid fd, a pointer to a c_int and its size, as setsockopt expects.
    let rc = unsafe {
        libc::setsockopt(sock.as_raw_fd(), libc::SOL_SOCKET, opt, &size as *const _ as *const libc::c_void, size_of::<libc::c_int>() as libc::socklen_t)
    };
    if rc != 0 {
        tracing::debug!("setsockopt({opt}) failed: {}", io::Error::last_os_error());
    }
}

impl Runtime for SyncyRuntime {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Box<dyn JoinHandle> {
        self.0.spawn(future)
    }
    fn spawn_reactor(&self, pool: usize, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Box<dyn JoinHandle> {
        self.0.spawn_reactor(pool, future)
    }
    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        set_buffer(&socket, libc::SO_RCVBUF);
        set_buffer(&socket, libc::SO_SNDBUF);
        self.0.wrap_udp_socket(socket)
    }
    fn wrap_tcp_listener(&self, listener: std::net::TcpListener) -> io::Result<Arc<dyn AsyncTcpListener>> {
        self.0.wrap_tcp_listener(listener)
    }
    fn connect_tcp<'a>(&'a self, remote_addr: SocketAddr) -> Pin<Box<dyn Future<Output = io::Result<Arc<dyn AsyncTcpStream>>> + Send + 'a>> {
        self.0.connect_tcp(remote_addr)
    }
    fn connect_tls<'a>(
        &'a self,
        remote_addr: SocketAddr,
        server_name: &'a str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Arc<dyn AsyncTcpStream>>> + Send + 'a>> {
        Box::pin(super::turn_tls::connect(remote_addr, server_name))
    }
    fn resolve_host<'a>(&'a self, host: &'a str) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        self.0.resolve_host(host)
    }
    fn now(&self) -> Instant {
        self.0.now()
    }
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        self.0.sleep(duration)
    }
    fn interval(&self, period: Duration) -> Box<dyn AsyncInterval> {
        self.0.interval(period)
    }
    fn block_on(&self, future: Pin<Box<dyn Future<Output = ()> + '_>>) {
        self.0.block_on(future)
    }
    fn yield_now(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        self.0.yield_now()
    }
}
