//! A slow, lossy link between two network namespaces the test makes, for kernels without
//! `sch_netem`: each namespace gets a TUN device, and this process carries the IP packets
//! between the two, dropping a share and delaying the rest — netem's `delay` and `loss` in
//! user space. Unlike the TURN relay (impair.rs), the peers talk to each other directly, as
//! they would across a real network: host candidates, no relay in the path.
//!
//! Namespace `a` has 10.77.0.1, namespace `b` has 10.77.0.2 (point-to-point). Nothing reaches
//! any other namespace or the machine's network (DESIGN §3).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::impair::{Counts, Impairment};

pub const A_ADDR: &str = "10.77.0.1";
pub const B_ADDR: &str = "10.77.0.2";

/// Runs `ip args…`; the error says what failed.
fn ip(args: &[&str]) -> Result<(), String> {
    let o = Command::new("ip").args(args).output().map_err(|e| format!("ip: {e}"))?;
    if o.status.success() { Ok(()) } else { Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&o.stderr).trim())) }
}

/// Two namespaces and the link between them; all of it goes when dropped.
pub struct TunLink {
    pub a: String,
    pub b: String,
    pub counts: Arc<Counts>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Drop for TunLink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // The threads hold the TUN files; they close them on the way out, which removes the
        // devices before their namespaces go.
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let _ = ip(&["netns", "del", &self.a]);
        let _ = ip(&["netns", "del", &self.b]);
    }
}

/// Opens a new TUN device named `dev` inside namespace `ns` (on a thread of its own, since
/// `setns` moves only the calling thread).
fn open_tun_in(ns: &str, dev: &str) -> Result<File, String> {
    let (ns, dev) = (ns.to_string(), dev.to_string());
    std::thread::spawn(move || -> Result<File, String> {
        let nsf = File::open(format!("/run/netns/{ns}")).map_err(|e| format!("namespace {ns}: {e}"))?;
        // SAFETY: plain syscalls on descriptors this thread owns; the ifreq is zeroed and the
        // name is shorter than IFNAMSIZ.
        unsafe {
            if libc::setns(nsf.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                return Err(format!("setns: {}", std::io::Error::last_os_error()));
            }
            let fd = libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(format!("/dev/net/tun: {}", std::io::Error::last_os_error()));
            }
            let tun = File::from_raw_fd(fd);
            let mut ifr: libc::ifreq = std::mem::zeroed();
            for (d, s) in ifr.ifr_name.iter_mut().zip(dev.bytes()) {
                *d = s as libc::c_char;
            }
            ifr.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
            if libc::ioctl(fd, libc::TUNSETIFF as _, &ifr) != 0 {
                return Err(format!("TUNSETIFF {dev}: {}", std::io::Error::last_os_error()));
            }
            Ok(tun)
        }
    })
    .join()
    .map_err(|_| "the TUN thread panicked".to_string())?
}

/// Waits up to 100 ms for `f` to become readable.
fn readable(f: &File) -> bool {
    let mut p = libc::pollfd { fd: f.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut p, 1, 100) > 0 }
}

/// Makes the namespaces and starts carrying packets: each is dropped with probability `loss`
/// and the rest delayed by `delay`, in each direction. `Err` says why it cannot be done here
/// (not root, no iproute2, no /dev/net/tun).
pub fn start(tag: &str, loss: f64, delay: Duration) -> Result<TunLink, String> {
    start_filtered(tag, loss, delay, Arc::new(|_: &[u8], _: bool| false))
}

/// Which packets a test drops on purpose (besides the random loss): `(packet, from a to b)`.
pub type Filter = Arc<dyn Fn(&[u8], bool) -> bool + Send + Sync>;

/// Like `start`, also dropping every packet `drop` picks.
pub fn start_filtered(tag: &str, loss: f64, delay: Duration, drop: Filter) -> Result<TunLink, String> {
    let (a, b) = (format!("syncy-{tag}-a"), format!("syncy-{tag}-b"));
    let _ = ip(&["netns", "del", &a]);
    let _ = ip(&["netns", "del", &b]);
    ip(&["netns", "add", &a])?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut link = TunLink { a: a.clone(), b: String::new(), counts: Arc::new(Counts::default()), stop: stop.clone(), threads: vec![] };
    ip(&["netns", "add", &b])?;
    link.b = b.clone();
    let tun_a = open_tun_in(&a, "syncy0")?;
    let tun_b = open_tun_in(&b, "syncy0")?;
    for (ns, me, peer) in [(&a, A_ADDR, B_ADDR), (&b, B_ADDR, A_ADDR)] {
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
        ip(&["-n", ns, "addr", "add", me, "peer", peer, "dev", "syncy0"])?;
        ip(&["-n", ns, "link", "set", "syncy0", "up"])?;
    }
    let (tun_a, tun_b) = (Arc::new(tun_a), Arc::new(tun_b));
    for (seed, from, to, a_to_b) in [(0x9E37_79B9_7F4A_7C15, tun_a.clone(), tun_b.clone(), true), (0x2545_F491_4F6C_DD1D, tun_b, tun_a, false)] {
        let drop = drop.clone();
        let (line, writer) = Impairment::start(loss, delay, seed, link.counts.clone(), stop.clone(), move |packet: Vec<u8>| {
            let _ = (&*to).write(&packet);
        });
        let stop = stop.clone();
        link.threads.push(writer);
        link.threads.push(std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while !stop.load(Ordering::Relaxed) {
                if readable(&from)
                    && let Ok(n) = (&*from).read(&mut buf)
                    && !drop(&buf[..n], a_to_b)
                {
                    line.offer(buf[..n].to_vec());
                }
            }
        }));
    }
    Ok(link)
}
