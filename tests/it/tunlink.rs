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
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use syncy::netlab::Netns;

use super::impair::{Counts, Impairment};

pub const A_ADDR: &str = "10.77.0.1";
pub const B_ADDR: &str = "10.77.0.2";

/// Two namespaces and the link between them; all of it goes when dropped.
pub struct TunLink {
    pub a: Netns,
    pub b: Netns,
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
    }
}

/// Opens a new TUN device named `dev` inside `ns`.
fn open_tun_in(ns: &Netns, dev: &str) -> Result<File, String> {
    let dev = dev.to_string();
    ns.run_in(move || -> Result<File, String> {
        // SAFETY: plain syscalls on a descriptor this thread owns; the ifreq is zeroed and the
        // name is shorter than IFNAMSIZ.
        unsafe {
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
    })?
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
    let (a, b) = (Netns::new(&format!("{tag}-a"))?, Netns::new(&format!("{tag}-b"))?);
    let tun_a = open_tun_in(&a, "syncy0")?;
    let tun_b = open_tun_in(&b, "syncy0")?;
    for (ns, me, peer) in [(&a, A_ADDR, B_ADDR), (&b, B_ADDR, A_ADDR)] {
        ns.ip(&["addr", "add", me, "peer", peer, "dev", "syncy0"])?;
        ns.ip(&["link", "set", "syncy0", "up"])?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut link = TunLink { a, b, counts: Arc::new(Counts::default()), stop: stop.clone(), threads: vec![] };
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
