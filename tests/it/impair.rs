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
use std::thread::JoinHandle;
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

/// What both fault paths do to a packet (netem's `loss` and `delay`): drop a share, and
/// hand the rest to `deliver` after the delay, in order (the delay is constant, so a FIFO
/// keeps every packet's due time).
pub struct Impairment<T> {
    loss: f64,
    delay: Duration,
    rng: Mutex<Rng>,
    counts: Arc<Counts>,
    tx: Sender<(Instant, T)>,
}

impl<T: Send + 'static> Impairment<T> {
    /// Starts the delivering thread; it ends once `stop` is set.
    pub fn start(
        loss: f64,
        delay: Duration,
        seed: u64,
        counts: Arc<Counts>,
        stop: Arc<AtomicBool>,
        mut deliver: impl FnMut(T) + Send + 'static,
    ) -> (Arc<Self>, JoinHandle<()>) {
        let (tx, rx) = channel::<(Instant, T)>();
        let thread = std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let Ok((due, packet)) = rx.recv_timeout(Duration::from_millis(100)) else { continue };
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                deliver(packet);
            }
        });
        (Arc::new(Impairment { loss, delay, rng: Mutex::new(Rng(seed)), counts, tx }), thread)
    }

    /// Drops `packet` or queues it for delivery.
    pub fn offer(&self, packet: T) {
        if self.rng.lock().unwrap().chance(self.loss) {
            self.counts.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.counts.passed.fetch_add(1, Ordering::Relaxed);
        let _ = self.tx.send((Instant::now() + self.delay, packet));
    }
}

impl Counts {
    /// Checks that about `loss` of what crossed was dropped (±40%, over enough packets).
    pub fn assert_loss(&self, loss: f64, what: &str) {
        let (passed, dropped) = (self.passed.load(Ordering::Relaxed), self.dropped.load(Ordering::Relaxed));
        let share = dropped as f64 / (passed + dropped) as f64;
        eprintln!("{what}: {passed} passed, {dropped} dropped ({:.2}%)", share * 100.0);
        assert!(passed > 500 && share >= loss * 0.6 && share <= loss * 1.4, "{what}: {dropped} of {} dropped", passed + dropped);
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
    let (line, _) = Impairment::start(loss, delay, 0x9E37_79B9_7F4A_7C15, counts.clone(), stop.clone(), |d: Delayed| {
        let _ = d.socket.send_to(&d.data, d.to);
    });
    let pass = move |socket: &Arc<UdpSocket>, to: SocketAddr, data: &[u8]| line.offer(Delayed { socket: socket.clone(), to, data: data.to_vec() });
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
                    let (stop, front, up2, pass) = (stop.clone(), front.clone(), up.clone(), pass.clone());
                    std::thread::spawn(move || {
                        let mut buf = vec![0u8; 65536];
                        while !stop.load(Ordering::Relaxed) {
                            if let Ok((n, _)) = up2.recv_from(&mut buf) {
                                pass(&front, from, &buf[..n]);
                            }
                        }
                    });
                    up
                });
                let up = up.clone();
                pass(&up, upstream, &buf[..n]);
            }
        });
    }
    Impair { addr, counts, stop }
}
