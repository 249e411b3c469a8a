//! A lossy, slow UDP path for tests, in user space: a relay on 127.0.0.1 in front of a TURN
//! server that drops a share of datagrams and delays the rest, both ways. Peers using the
//! TURN server through it (relay-only ICE) have every packet of their link cross it twice
//! per direction (peer → TURN, TURN → other peer), so each crossing gets half the delay and
//! about half the loss of the path wanted. Used where the kernel lacks `sch_netem`.
//!
//! Every datagram is treated alike: the TURN client's own requests are lost as often as
//! the peers' data.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Counters of what crossed the relay.
#[derive(Default)]
pub struct Counts {
    pub passed: AtomicU64,
    pub dropped: AtomicU64,
}

/// A running impairment relay; stops when dropped.
pub struct Impair {
    pub addr: SocketAddr,
    pub counts: Arc<Counts>,
    stop: Arc<AtomicBool>,
}

impl Drop for Impair {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

struct Delayed {
    due: Instant,
    socket: Arc<UdpSocket>,
    to: SocketAddr,
    data: Vec<u8>,
}

/// xorshift: reproducible loss without a dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn chance(&mut self, p: f64) -> bool {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// Relays UDP between clients on 127.0.0.1 and `upstream`, dropping each datagram with
/// probability `loss` and delaying the rest by `delay` (each way).
pub fn start(upstream: SocketAddr, loss: f64, delay: Duration) -> Impair {
    let front = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
    front.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let addr = front.local_addr().unwrap();
    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    // One sender thread: the delay is constant, so a FIFO keeps every datagram's due time.
    let (tx, rx) = channel::<Delayed>();
    {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while let Ok(d) = rx.recv() {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let now = Instant::now();
                if d.due > now {
                    std::thread::sleep(d.due - now);
                }
                let _ = d.socket.send_to(&d.data, d.to);
            }
        });
    }
    let rng = Arc::new(Mutex::new(Rng(0x9E37_79B9_7F4A_7C15)));
    let pass = {
        let (counts, rng) = (counts.clone(), rng.clone());
        move |tx: &Sender<Delayed>, socket: &Arc<UdpSocket>, to: SocketAddr, data: &[u8]| {
            if rng.lock().unwrap().chance(loss) {
                counts.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            counts.passed.fetch_add(1, Ordering::Relaxed);
            let _ = tx.send(Delayed { due: Instant::now() + delay, socket: socket.clone(), to, data: data.to_vec() });
        }
    };
    {
        let (stop, front, pass) = (stop.clone(), front.clone(), pass.clone());
        std::thread::spawn(move || {
            // One upstream socket per client, so the TURN server tells them apart.
            let mut clients: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
            let mut buf = vec![0u8; 65536];
            while !stop.load(Ordering::Relaxed) {
                let Ok((n, from)) = front.recv_from(&mut buf) else { continue };
                let up = clients.entry(from).or_insert_with(|| {
                    let up = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
                    up.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
                    let (stop, front, tx, up2, pass) = (stop.clone(), front.clone(), tx.clone(), up.clone(), pass.clone());
                    std::thread::spawn(move || {
                        let mut buf = vec![0u8; 65536];
                        while !stop.load(Ordering::Relaxed) {
                            if let Ok((n, _)) = up2.recv_from(&mut buf) {
                                pass(&tx, &front, from, &buf[..n]);
                            }
                        }
                    });
                    up
                });
                let up = up.clone();
                pass(&tx, &up, upstream, &buf[..n]);
            }
        });
    }
    Impair { addr, counts, stop }
}
